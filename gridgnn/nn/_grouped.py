"""Grouped grid convs with thin groups on a complete grid, by the native kernel (:mod:`gridgnn.nn._native`).

A grouped conv with ``w = C_in / groups = C_out / groups`` channels a group is, node-wise,
``y_i = b + sum_{(j -> i, t)} W_t x_j`` with every ``W_t`` block-diagonal (``groups`` blocks of
``w x w``). Through GEMMs a group of 4 channels is 4 x 4 products (or a block-diagonal merge that
multiplies zeros); the native kernel instead runs blocks of 16 channels, whole groups each, with all
kernel offsets per node at once (:class:`NativeGroupedConv`). Used for eager CPU float32/float64
calls with zero padding and ``w`` in :data:`~gridgnn.nn._native.GROUP_WIDTHS`; every other call keeps
the GEMM paths of :mod:`gridgnn.nn._dense`.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor

from ..geometry import ConvGeometry
from . import _native
from ._function import Function, recomputed_grads, save_bilinear
from ._gemm import sum_tangents
from ._transforms import plain_ops

#: ``reference(x, weight)``: the same conv (no bias) in plain torch ops, ``[B, *S_in, C] -> [B, *S_out, C]``
Reference = Callable[[Tensor, Tensor], Tensor]


class NativeGroupedConv(Function):
    """``[B, *S_in, C] -> [B, *S_out, C]`` by the native kernel; first-order backward by it too.

    A backward that must itself be differentiable (``create_graph=True``) or that receives batched
    gradients recomputes the conv with ``reference`` (plain torch ops) and differentiates that.
    Bilinear in ``x`` and ``weight``, so the ``jvp`` is the same conv on the tangents.
    """

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Optional[Tensor], geom: ConvGeometry, width: int,
                reference: Reference) -> Tensor:
        # x: [B, *S_in, C]; weight: [C, width, *kernel]; returns [B, *S_out, C], laid out as x
        return _native.grouped_forward(x, weight, bias, geom, True, width)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, bias, ctx.geom, ctx.width, ctx.reference = inputs
        save_bilinear(ctx, x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_weight = ctx.needs_input_grad[:2]
        grad_bias = grad_out.sum(tuple(range(grad_out.dim() - 1))) if ctx.has_bias and ctx.needs_input_grad[2] \
            else None
        if not torch.is_grad_enabled() and not plain_ops(grad_out) and grad_out.dtype == x.dtype:
            grad_x, grad_weight = _native.grouped_backward(x, weight, grad_out, ctx.geom, True, need_x, need_weight,
                                                           ctx.width)
            return grad_x, grad_weight, grad_bias, None, None, None
        grad_x, grad_weight = recomputed_grads(ctx.reference, x, weight, grad_out, need_x, need_weight)
        return grad_x, grad_weight, grad_bias, None, None, None

    @staticmethod
    def jvp(ctx, x_t: Optional[Tensor], weight_t: Optional[Tensor], bias_t: Optional[Tensor], *_) -> Tensor:
        x, weight = ctx.saved_tensors
        args = (ctx.geom, ctx.width, ctx.reference)
        terms = [NativeGroupedConv.apply(x_t, weight, None, *args) if x_t is not None else None,
                 NativeGroupedConv.apply(x, weight_t, None, *args) if weight_t is not None else None, bias_t]
        return sum_tangents(terms, (x.size(0), *ctx.geom.out_size, x.size(-1)), x)


def native_grouped_applies(image: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor],
                           groups: int) -> bool:
    """Whether the native kernel runs this grouped conv (eager CPU, zero padding, thin groups, ``C_in = C_out``)."""
    c_in, c_out = image.size(-1), weight.size(0)
    return (groups > 1 and c_in == c_out and c_in // groups in _native.GROUP_WIDTHS
            and geom.padding_mode == "zeros" and _native.applies(image, weight, bias))


def native_grouped_conv(image: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor],
                        reference: Reference) -> Tensor:
    """The grouped conv ``[B, *S_in, C] -> [B, N_out, C]`` by :class:`NativeGroupedConv` (where it applies)."""
    out = NativeGroupedConv.apply(image, weight, bias, geom, weight.size(1), reference)     # [B, *S_out, C]
    return out.reshape(image.size(0), math.prod(geom.out_size), out.size(-1))
