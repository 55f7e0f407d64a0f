"""Calls of the conv drop-ins by a plan made once per layer configuration, input layout and mode.

A drop-in's call runs through its image shell (:class:`~gridgnn.nn._image.ImageLayer`): input checks,
the image's node view, memory formats, autocast, autograd Functions, the choice of kernel. On a 2-core
CPU those are some 20 Python steps of 2-10 us each, 0.1-0.2 ms a call: at batch 1 as much as the
kernel (a depthwise 3x3 of 576 channels at 14 x 14 runs in about 0.11 ms). A training call pays for
them twice, with the backward of each of those steps.

A call that runs eagerly (no ``torch.compile``, tracing, ``torch.func`` transform, forward-mode
tangents, torch-function mode, autocast or compiled kernels) on a batched image, and that the shell
would run on the image where it lies by one of these kernels, runs a plan instead (on a GPU, whose
calls cost what the host dispatches, inference calls run the 1x1 plans below, and every other call
runs as the shell computes it, without its checks: autograd differentiates that, the input and
weight gradients in torch's memory format as the shell gives them):

* **inference** (no autograd graph: ``torch.no_grad``, ``torch.inference_mode``, or nothing in it
  requires grad): the native grouped kernel (depthwise, or thin groups: :mod:`gridgnn.nn._native`), the
  native dense kernel, or a 1x1 conv's GEMMs on an NCHW image's columns
  (:func:`~gridgnn.nn._dense.pointwise_columns`) or a channels-last image's rows
  (:func:`~gridgnn.nn._gemm.grouped_linear`);
* **training** (an autograd graph is built): the native grouped or dense kernel, as one autograd Function
  (:class:`PlannedConv`) whose forward is the inference plan's kernel call and whose backward lays the
  output gradient out as the input, sums the bias gradient and runs the native kernels for the input and
  weight gradients (the grouped backward kernel; the dense kernel and its GEMMs).

The plan is made on the first such call by the shell's own decisions (:func:`~gridgnn.nn._dense.dense_route`
on that call's tensors) and kept per mode, input shape and strides, dtype, weight and bias layout, layer
class, geometry, groups and thread count. A planned call allocates the output with the strides the
shell would return (checked on the plan's first run) and runs the kernel on the tensors' memory, so
its output is the shell's bit for bit; a training plan's input and weight gradients are the shell's bit
for bit too, in the memory formats torch's conv gives them. A backward that must itself be
differentiable (``create_graph=True``) or that receives batched gradients differentiates the shell's own
computation instead. Every other call, and every call the plan does not fit (the wrong channel count, an
unbatched image), takes the shell, with its checks and messages.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd import forward_ad

from ..geometry import ConvGeometry
from ..graph import conv_geometry, to_image, to_nodes
from . import _native
from ._autocast import autocast_dtype
from ._compiled import compiled_kernels
from ._dense import dense_route, native_dense_grads, pointwise_columns
from ._function import Function, recomputed_grads
from ._gemm import grouped_linear
from ._image import conv_memory_format, grad_in_format, in_format
from ._transforms import plain_ops
from .functional import conv_nodes

#: ``plan(x, weight, bias) -> output image``
Plan = Callable[[Tensor, Tensor, Optional[Tensor]], Tensor]

#: plans by mode and call signature (None: the shell runs such calls); cleared when it holds MAX_PLANS
_PLANS: Dict[tuple, Optional[Plan]] = {}
MAX_PLANS = 4096
_UNTRIED = object()


def plain_call(x: object, weight: Tensor, bias: Optional[Tensor]) -> Optional[bool]:
    """Whether a call on these tensors builds an autograd graph, or None where no plan may run it.

    None unless it runs eagerly with its tensors on one device and nothing transforming it (no compile,
    tracing, ``torch.func``, forward-mode tangents, torch-function mode, autocast, compiled kernels);
    on the CPU only with the native kernels built.
    """
    if type(x) is not Tensor or weight.device != x.device or (bias is not None and bias.device != x.device):
        return None
    if (forward_ad._current_level >= 0 or torch._C._are_functorch_transforms_active()   # dual tensors
            or torch.compiler.is_compiling()
            or torch.jit.is_tracing() or torch._C._is_torch_function_mode_enabled()
            or autocast_dtype(x.device.type) is not None or compiled_kernels.enabled()
            or (x.is_cpu and not _native.available())):
        return None
    return torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                        or (bias is not None and bias.requires_grad))


def planned_call(layer, x: object) -> Optional[Tensor]:
    """``layer(x)`` by its plan, or None where the shell must run the call (see the module's docstring)."""
    weight, bias = layer.weight, layer.bias
    training = plain_call(x, weight, bias)
    if training is None:
        return None
    key = plan_key(layer, x, weight, bias, training)
    try:
        plan = _PLANS.get(key, _UNTRIED)
    except TypeError:                                      # an unhashable geometry (a list): the shell copes
        return None
    if plan is None:
        return None
    if plan is not _UNTRIED:
        return plan(x, weight, bias)
    plan, memory_format = make_plan(layer, x, weight, bias, training)
    out = None if plan is None else plan(x, weight, bias)
    if out is not None and in_format(out, memory_format) is not out:    # not the strides the shell returns
        plan = out = None
    if len(_PLANS) >= MAX_PLANS:
        _PLANS.clear()
    _PLANS[key] = plan
    return out


def plan_key(layer, x: Tensor, weight: Tensor, bias: Optional[Tensor], training: bool) -> tuple:
    """What a plan depends on: mode, device, the input's and parameters' shapes, strides and dtypes, layer setup."""
    return (training, x.device, x.shape, x.stride(), x.dtype, weight.shape, weight.stride(), weight.dtype,
            None if bias is None else (bias.shape, bias.stride(), bias.dtype), type(layer), layer.kernel_size,
            layer.stride, layer.padding, layer.dilation, layer.groups, layer.padding_mode, layer.path,
            torch.get_num_threads())


def make_plan(layer, x: Tensor, weight: Tensor, bias: Optional[Tensor], training: bool = False):
    """``(plan, the output's memory format)`` for ``layer(x)``, or ``(None, None)`` where no kernel is planned."""
    nd = layer._ndim
    if (x.dim() != nd + 2 or x.size(0) == 0 or x.size(1) != layer.in_channels or layer.path == "general"
            or layer.padding_mode != "zeros" or not weight.is_contiguous() or weight.dtype != x.dtype
            or (bias is not None and (not bias.is_contiguous() or bias.dtype != x.dtype))):
        return None, None                                      # (the shell says what is wrong with a bad call)
    try:
        geom = conv_geometry(layer, tuple(x.shape[2:]))
    except (ValueError, TypeError):                              # the shell says what is wrong (gridgnn's errors too)
        return None, None
    nodes = to_nodes(x)                                                           # [B, N_in, C_in], a view
    image = nodes.reshape(x.size(0), *geom.in_size, x.size(1))                    # [B, *S_in, C_in]
    if image.data_ptr() != x.data_ptr():
        return None, None
    route = dense_route(nodes, image, geom, weight, bias, layer.groups)
    b, c_out, out_size = x.size(0), weight.size(0), tuple(geom.out_size)
    memory_format = conv_memory_format(x, weight, nd)
    groups, n = layer.groups, math.prod(geom.in_size)
    grouped = route in ("depthwise", "native_grouped")
    if route == "pointwise_columns" and not training:                            # [B, C_in, N] -> [B, C_out, N]
        columns, image_shape = (b, x.size(1), n), (b, c_out, *out_size)
        return (lambda x, weight, bias: pointwise_columns(x.view(columns), weight, bias, groups).view(image_shape),
                memory_format)
    if route == "pointwise_rows" and not training:                               # [B, N, C_in] -> [B, N, C_out]
        rows, nodes_shape = (b, n, x.size(1)), (b, *out_size, c_out)
        return (lambda x, weight, bias: grouped_linear(x.movedim(1, -1).view(rows), weight.flatten(1), bias,
                                                       groups).view(nodes_shape).movedim(-1, 1), memory_format)
    if not x.is_cpu:                                 # a GPU: the shell's computation without its checks
        path = layer.path

        def computed(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
            if training:                             # gradients in torch's memory format, as the shell gives them
                x, weight = grad_in_format(x, memory_format), grad_in_format(weight, memory_format)
            nodes = conv_nodes(to_nodes(x), geom, weight, bias, groups, path)       # [B, N_out, C_out]
            return in_format(to_image(nodes, out_size), memory_format)
        return computed, memory_format
    if grouped:
        if not _native.applies(image, weight, bias):
            return None, None
        source, major = _native.in_layout(image)
        kernel = _native.grouped_kernel("forward", source, geom, True, major, weight.size(1))
        name = "grouped-conv forward"
    elif route == "native_dense":
        source, major = _native.in_layout(image)
        kernel = _native.dense_kernel(source, weight, out_size, geom.stride, tuple(left for left, _ in geom.padding),
                                      geom.dilation, major, major)
        name = "dense conv"
    else:
        return None, None
    if source is not image:                                                       # the shell would copy it
        return None, None
    shape, strides = _native_output(b, c_out, out_size, major)
    dtype = x.dtype

    def forward(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        out = torch.empty_strided(shape, strides, dtype=dtype)
        _native.run_kernel(kernel, name, x, weight, bias, out)
        return out

    if not training:
        return forward, memory_format
    if major != (memory_format == torch.contiguous_format):       # gradients the kernel would not lay out as torch
        return None, None
    plan = TrainingPlan(forward, _native_grads(source, weight, geom, major, grouped), memory_format, geom, groups)
    return (lambda x, weight, bias: PlannedConv.apply(x, weight, bias, plan)), memory_format


def _native_grads(source: Tensor, weight: Tensor, geom: ConvGeometry, major: bool, grouped: bool):
    """A training plan's ``grads``: the native kernels' input and weight gradients (:class:`TrainingPlan`).

    ``source`` is the nodes ``[B, *S, C]`` of the plan's input (channel-major if ``major``), ``grouped``
    whether the conv runs the grouped kernel (else the dense one).
    """
    if grouped:
        backward = _native.grouped_kernel("backward", source, geom, True, major, weight.size(1))

        def grads(x: Tensor, weight: Tensor, grad: Tensor, need_x: bool, need_weight: bool):
            grad_x = torch.empty_like(x) if need_x else None
            grad_weight = torch.empty_like(weight) if need_weight else None
            _native.run_kernel(backward, "grouped-conv backward", x, weight, grad, grad_x, grad_weight)
            return grad_x, grad_weight
        return grads

    def grads(x: Tensor, weight: Tensor, grad: Tensor, need_x: bool, need_weight: bool):
        grad_x, grad_weight = native_dense_grads(x.movedim(1, -1), weight, grad.movedim(1, -1), geom,
                                                 need_x, need_weight)                  # on the nodes [B, *S, C]
        return None if grad_x is None else grad_x.movedim(-1, 1), grad_weight
    return grads


def _native_output(batch: int, channels: int, size: tuple, major: bool):
    """Shape and strides of the output image a native kernel writes: NCHW (``major``) or channels-last."""
    nodes = _native._empty_nodes(torch.empty(0), batch, size, channels, major)    # [B, *S, C], no data read
    image = nodes.movedim(-1, 1)                                                  # [B, C, *S]
    return tuple(image.shape), image.stride()


@dataclass(frozen=True)
class TrainingPlan:
    """What :class:`PlannedConv` runs for one layer configuration and input layout.

    ``forward(x, weight, bias)`` is the inference plan's kernel call; ``grads(x, weight, grad, need_x,
    need_weight)`` the first-order input and weight gradients by the native kernels, from an output
    gradient laid out as ``x`` (the native grouped backward kernel, or :func:`~gridgnn.nn._dense.native_dense_grads`);
    ``memory_format`` the input's, the output's and the gradients' (torch's for the conv).
    """

    forward: Plan
    grads: Callable[[Tensor, Tensor, Tensor, bool, bool], Tuple[Optional[Tensor], Optional[Tensor]]]
    memory_format: torch.memory_format
    geom: ConvGeometry
    groups: int

    def shell(self, x: Tensor, weight: Tensor) -> Tensor:
        """The shell's computation of the conv without its bias, differentiable: ``[B, C, *S] -> [B, C, *S_out]``."""
        return to_image(conv_nodes(to_nodes(x), self.geom, weight, None, self.groups), self.geom.out_size)


class PlannedConv(Function):
    r"""A training call of a drop-in on a native kernel (grouped, depthwise or dense), on the image where it lies.

    Matrix form :math:`\mathbf{Y} = \mathbf{1}\mathbf{b}^{\top} + \sum_t \mathbf{A}_t \mathbf{X} \mathbf{W}_t^{\top}`
    (:math:`\mathbf{W}_t` block-diagonal with ``groups`` blocks); node-wise
    :math:`\mathbf{y}_i = \mathbf{b} + \sum_{(j \to i,\, t)} \mathbf{W}_t \mathbf{x}_j`. The forward is the
    native kernel (:class:`TrainingPlan`); the backward lays the output gradient out as the input, sums
    the bias gradient over its nodes and runs the native kernels for the input and weight gradients,
    returned in the plan's memory format.

    Shapes:
        - **x:** :math:`(B, C_{in}, *S_{in})`, contiguous in ``plan.memory_format``
        - **weight:** :math:`(C_{out}, C_{in} / groups, *kernel)`, contiguous; **bias:** :math:`(C_{out})` or None
        - **output:** :math:`(B, C_{out}, *S_{out})` in ``plan.memory_format``
    """

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Optional[Tensor], plan: TrainingPlan) -> Tensor:
        return plan.forward(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, bias, ctx.plan = inputs
        ctx.save_for_backward(x, weight)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        plan = ctx.plan
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        if not (need_x or need_weight):                                           # the bias alone
            grad_x = grad_weight = None
        elif torch.is_grad_enabled() or forward_ad._current_level >= 0 or plain_ops(grad) or grad.dtype != x.dtype:
            grad_x, grad_weight = recomputed_grads(plan.shell, x, weight, grad, need_x, need_weight)
        else:
            grad = in_format(grad, plan.memory_format)                            # as the input lies, dense
            grad_x, grad_weight = plan.grads(x, weight, grad, need_x, need_weight)
        grad_bias = grad.sum((0, *range(2, grad.dim()))) if need_bias else None
        return (None if grad_x is None else in_format(grad_x, plan.memory_format),
                None if grad_weight is None else in_format(grad_weight, plan.memory_format), grad_bias, None)

