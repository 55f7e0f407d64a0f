"""Inference calls of the conv drop-ins by a plan made once per layer configuration and input layout.

A drop-in's call runs through its image shell (:class:`~gridgnn.nn._image.ImageLayer`): input checks,
the image's node view, memory formats, autocast, autograd Functions, the choice of kernel. On a 2-core
CPU those are some 20 Python steps of 2-10 us each, 0.1-0.2 ms a call: at batch 1 as much as the
kernel (a depthwise 3x3 of 576 channels at 14 x 14 runs in about 0.11 ms).

A call that builds no autograd graph (``torch.no_grad``, ``torch.inference_mode``, or nothing in it
requires grad), carries no forward-mode tangents and runs eagerly on CPU (no ``torch.compile``, tracing,
``torch.func`` transform, torch-function mode, autocast or compiled kernels) on a batched image, and
that the shell would run by one of these kernels on the image where it lies, runs a plan instead:

* the native grouped kernel (depthwise, or thin groups: :mod:`gridgnn.nn._native`),
* the native dense kernel,
* a 1x1 conv: GEMMs on an NCHW image's columns (:func:`~gridgnn.nn._dense.pointwise_columns`) or on a
  channels-last image's rows (:func:`~gridgnn.nn._gemm.grouped_linear`).

The plan is made on the first such call by the shell's own decisions (:func:`~gridgnn.nn._dense.dense_route`
on that call's tensors) and kept per input shape and strides, dtype, weight and bias layout, layer
class, geometry, groups and thread count. A planned call allocates the output with the strides the
shell would return (checked on the plan's first run) and runs the kernel on the tensors' memory, so
its output is the shell's bit for bit. Every other call, and every call the plan does not fit (the
wrong channel count, an unbatched image), takes the shell, with its checks and messages.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional

import torch
from torch import Tensor
from torch.autograd import forward_ad

from ..graph import conv_geometry, to_nodes
from . import _native
from ._compiled import compiled_kernels
from ._dense import dense_route, pointwise_columns
from ._gemm import grouped_linear
from ._image import conv_memory_format, in_format

#: ``plan(x, weight, bias) -> output image``
Plan = Callable[[Tensor, Tensor, Optional[Tensor]], Tensor]

#: plans by call signature (None: the shell runs such calls); cleared when it holds MAX_PLANS
_PLANS: Dict[tuple, Optional[Plan]] = {}
MAX_PLANS = 4096
_UNTRIED = object()


def plain_inference(x: object, weight: Tensor, bias: Optional[Tensor]) -> bool:
    """Whether a call on these tensors may run a plan: no autograd graph, eager CPU, nothing transforming it."""
    if type(x) is not Tensor or not (x.is_cpu and weight.is_cpu and (bias is None or bias.is_cpu)):
        return False
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                    or (bias is not None and bias.requires_grad)):
        return False
    return not (forward_ad._current_level >= 0 or torch._C._are_functorch_transforms_active()   # dual tensors
                or torch.compiler.is_compiling()
                or torch.jit.is_tracing() or torch._C._is_torch_function_mode_enabled()
                or torch.is_autocast_enabled("cpu") or compiled_kernels.enabled() or not _native.available())


def planned_call(layer, x: object) -> Optional[Tensor]:
    """``layer(x)`` by its plan, or None where the shell must run the call (see the module's docstring)."""
    weight, bias = layer.weight, layer.bias
    if not plain_inference(x, weight, bias):
        return None
    key = plan_key(layer, x, weight, bias)
    try:
        plan = _PLANS.get(key, _UNTRIED)
    except TypeError:                                      # an unhashable geometry (a list): the shell copes
        return None
    if plan is None:
        return None
    if plan is not _UNTRIED:
        return plan(x, weight, bias)
    plan, memory_format = make_plan(layer, x, weight, bias)
    out = None if plan is None else plan(x, weight, bias)
    if out is not None and in_format(out, memory_format) is not out:    # not the strides the shell returns
        plan = out = None
    if len(_PLANS) >= MAX_PLANS:
        _PLANS.clear()
    _PLANS[key] = plan
    return out


def plan_key(layer, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> tuple:
    """What a plan depends on: the input's and parameters' shapes, strides and dtypes, the layer's configuration."""
    return (x.shape, x.stride(), x.dtype, weight.shape, weight.stride(), weight.dtype,
            None if bias is None else (bias.shape, bias.stride(), bias.dtype), type(layer), layer.kernel_size,
            layer.stride, layer.padding, layer.dilation, layer.groups, layer.padding_mode, layer.path,
            torch.get_num_threads())


def make_plan(layer, x: Tensor, weight: Tensor, bias: Optional[Tensor]):
    """``(plan, the output's memory format)`` for ``layer(x)``, or ``(None, None)`` where no kernel is planned."""
    nd = layer._ndim
    if (x.dim() != nd + 2 or x.size(0) == 0 or x.size(1) != layer.in_channels or layer.path == "general"
            or layer.padding_mode != "zeros" or not weight.is_contiguous()
            or (bias is not None and not bias.is_contiguous())):
        return None, None
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
    if route == "pointwise_columns":                                              # [B, C_in, N] -> [B, C_out, N]
        columns, image_shape = (b, x.size(1), n), (b, c_out, *out_size)
        return (lambda x, weight, bias: pointwise_columns(x.view(columns), weight, bias, groups).view(image_shape),
                memory_format)
    if route == "pointwise_rows":                                                 # [B, N, C_in] -> [B, N, C_out]
        rows, nodes_shape = (b, n, x.size(1)), (b, *out_size, c_out)
        return (lambda x, weight, bias: grouped_linear(x.movedim(1, -1).view(rows), weight.flatten(1), bias,
                                                       groups).view(nodes_shape).movedim(-1, 1), memory_format)
    if route in ("depthwise", "native_grouped"):
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

    def plan(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        out = torch.empty_strided(shape, strides, dtype=dtype)
        _native.run_kernel(kernel, name, x, weight, bias, out)
        return out

    return plan, memory_format


def _native_output(batch: int, channels: int, size: tuple, major: bool):
    """Shape and strides of the output image a native kernel writes: NCHW (``major``) or channels-last."""
    nodes = _native._empty_nodes(torch.empty(0), batch, size, channels, major)    # [B, *S, C], no data read
    image = nodes.movedim(-1, 1)                                                  # [B, C, *S]
    return tuple(image.shape), image.stride()
