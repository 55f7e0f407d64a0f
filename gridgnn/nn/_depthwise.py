"""Depthwise grid conv on a complete grid by clipped shifted views: no padding copy, no window gather.

With ``groups = C_in = C_out`` every message is a per-channel product,
``y_i = b + sum_t w_t * x_{j(i, t)}``. On a complete grid the edges of offset
``t`` join output ``i`` to input ``i * stride + o_t`` (``o_t = k_t * dilation -
pad_left`` per axis) wherever that input exists, so for each offset the
receiving outputs form a box and their sources a strided box of the input:

.. code-block:: text

    out[b, lo:hi, c]  +=  w[t, c] * x[b, lo*s + o : (hi-1)*s + o + 1 : s, c]     (per spatial axis)

Each offset is one in-place ``addcmul`` on two views. Zero padding needs no
padded copy (outputs beyond the box get no message from that offset, exactly
as the graph has no such edge); the other padding modes gather the padded
input once (:func:`~gridgnn.nn._padding.pad_nodes`) and run with no padding.
Batches are processed in cache-sized chunks, so an output chunk stays in cache
across the ``K`` offsets. The backward is the same boxes transposed
(:class:`ClippedShiftDepthwise`).
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..geometry import ConvGeometry
from ._padding import pad_nodes

#: floats of one output chunk (~2 MiB): big enough to amortise the per-op overhead, small enough for cache
CHUNK_ELEMENTS = 1 << 19

Box = Tuple[slice, ...]


def _axis_boxes(size_in: int, size_out: int, kernel: int, dilation: int, pad: int, stride: int):
    """Per kernel index along one axis: ``(out slice, in slice)``, or ``None`` where no output has that edge."""
    boxes = []
    for k in range(kernel):
        o = k * dilation - pad                                      # output i reads input i * stride + o
        lo = max(0, -(o // stride))                                 # ceil(-o / stride), at least 0
        hi = min(size_out, (size_in - 1 - o) // stride + 1)         # last i with i * stride + o <= size_in - 1
        boxes.append((slice(lo, hi), slice(lo * stride + o, (hi - 1) * stride + o + 1, stride)) if hi > lo
                     else None)
    return boxes


def tap_boxes(geom: ConvGeometry, in_size: Tuple[int, ...], zero_padded: bool) -> List[Tuple[int, Box, Box]]:
    """``[(t, out_box, in_box), ...]`` for each kernel offset ``t`` (row-major) that has edges.

    ``in_size`` is the size of the tensor the boxes index: the input itself when
    ``zero_padded`` (padding is implicit), else the explicitly padded input. Cached in
    eager mode (~40 us of Python a call); traced directly under ``torch.compile``, which
    bakes the boxes into the graph once.
    """
    if torch.compiler.is_compiling():
        return _tap_boxes(geom, in_size, zero_padded)
    return _cached_tap_boxes(geom, in_size, zero_padded)


def _tap_boxes(geom: ConvGeometry, in_size: Tuple[int, ...], zero_padded: bool) -> List[Tuple[int, Box, Box]]:
    per_axis = [_axis_boxes(n_in, n_out, k, dil, left if zero_padded else 0, s)
                for n_in, n_out, k, dil, (left, _), s in zip(in_size, geom.out_size, geom.kernel_size,
                                                              geom.dilation, geom.padding, geom.stride)]
    taps = []
    for t, axes in enumerate(itertools.product(*per_axis)):
        if all(a is not None for a in axes):
            taps.append((t, tuple(a[0] for a in axes), tuple(a[1] for a in axes)))
    return taps


_cached_tap_boxes = functools.lru_cache(maxsize=256)(_tap_boxes)


def _batch_chunks(batch: int, per_item: int):
    step = max(1, CHUNK_ELEMENTS // max(per_item, 1))
    return [slice(start, min(batch, start + step)) for start in range(0, batch, step)]


class ClippedShiftDepthwise(torch.autograd.Function):
    """``out[b, box_t] (+)= w_t * x[b, in_box_t]`` over the kernel offsets ``t``; backward by the same boxes."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor], out_size: Tuple[int, ...],
                taps: List[Tuple[int, Box, Box]]) -> Tensor:
        # x: [B, *S_in, C]; weight: [K, C]; returns [B, *S_out, C]
        out = x.new_empty(x.size(0), *out_size, x.size(-1))
        full = tuple(slice(0, n) for n in out_size)
        first = next((tap for tap in taps if tap[1] == full), None)       # an offset every output receives
        rest = [tap for tap in taps if tap is not first]
        for b in _batch_chunks(x.size(0), math.prod(out.shape[1:])):
            block, source = out[b], x[b]
            if first is not None:
                torch.mul(source[(slice(None),) + first[2]], weight[first[0]], out=block)
            else:
                block.zero_()
            for t, out_box, in_box in rest:
                block[(slice(None),) + out_box].addcmul_(source[(slice(None),) + in_box], weight[t])
        if bias is not None:
            out.add_(bias)
        ctx.save_for_backward(x, weight)
        ctx.taps, ctx.has_bias = taps, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        chunks = _batch_chunks(x.size(0), math.prod(grad_out.shape[1:]))
        if ctx.needs_input_grad[0]:
            grad_x = torch.zeros_like(x)
            for b in chunks:
                block, target = grad_out[b], grad_x[b]
                for t, out_box, in_box in ctx.taps:
                    target[(slice(None),) + in_box].addcmul_(block[(slice(None),) + out_box], weight[t])
        if ctx.needs_input_grad[1]:
            rows = [weight.new_zeros(weight.size(-1)) for _ in range(weight.size(0))]
            for b in chunks:
                block, source = grad_out[b], x[b]
                for t, out_box, in_box in ctx.taps:
                    product = source[(slice(None),) + in_box] * block[(slice(None),) + out_box]
                    rows[t] = rows[t] + product.flatten(0, -2).sum(0)
            grad_weight = torch.stack(rows)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_out.flatten(0, -2).sum(0)
        return grad_x, grad_weight, grad_bias, None, None


def depthwise_grid_conv(image: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """Depthwise grid conv: ``[B, *S_in, C] -> [B, N_out, C]``, ``weight`` ``[C, 1, *kernel]``."""
    zero_padded = geom.padding_mode == "zeros"
    source = image if zero_padded else pad_nodes(image, geom)                     # [B, *S, C]
    taps = tap_boxes(geom, tuple(source.shape[1:-1]), zero_padded)
    w = weight.flatten(1).t().contiguous()                                         # [K, C]
    out = ClippedShiftDepthwise.apply(source, w, bias, tuple(geom.out_size), taps)  # [B, *S_out, C]
    return out.reshape(image.size(0), math.prod(geom.out_size), out.size(-1))


class ClippedShiftMax(torch.autograd.Function):
    r"""Max pooling on a complete grid by clipped boxes: ``out[b, box_t] = max(out[b, box_t], x[b, in_box_t])``.

    Node-wise :math:`\mathbf{y}_i = \max_{(j \to i)} \mathbf{x}_j` (:math:`-\infty` for a window with no
    pixel). The backward sends each output's gradient to the inputs equal to its maximum, shared
    equally between exact ties.
    """

    @staticmethod
    def forward(ctx, x: Tensor, out_size: Tuple[int, ...], taps: List[Tuple[int, Box, Box]]) -> Tensor:
        # x: [B, *S_in, C]; returns [B, *S_out, C]
        full = tuple(slice(0, n) for n in out_size)
        first = next((tap for tap in taps if tap[1] == full), None)
        if first is not None:
            out = x[(slice(None),) + first[2]].clone(memory_format=torch.contiguous_format)
        else:
            out = x.new_full((x.size(0), *out_size, x.size(-1)), -math.inf)
        for tap in taps:
            if tap is not first:
                block = out[(slice(None),) + tap[1]]
                torch.maximum(block, x[(slice(None),) + tap[2]], out=block)
        ctx.save_for_backward(x, out)
        ctx.taps = taps
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, out = ctx.saved_tensors
        boxes = [((slice(None),) + out_box, (slice(None),) + in_box) for _, out_box, in_box in ctx.taps]
        winners = [x[in_box] == out[out_box] for out_box, in_box in boxes]       # per tap: does it hold the max
        count = torch.zeros_like(out)
        for (out_box, _), won in zip(boxes, winners):
            count[out_box] += won
        share = torch.where(count > 0, grad_out / count.clamp(min=1), 0)          # per window, per winner
        grad_x = torch.zeros_like(x)
        for (out_box, in_box), won in zip(boxes, winners):
            grad_x[in_box] += torch.where(won, share[out_box], 0)
        return grad_x, None, None


def window_max(image: Tensor, geom: ConvGeometry) -> Tensor:
    """Max over every window of ``geom`` (zero padding = no pixel): ``[B, *S_in, C] -> [B, N_out, C]``."""
    taps = tap_boxes(geom, tuple(image.shape[1:-1]), True)
    out = ClippedShiftMax.apply(image, tuple(geom.out_size), taps)                  # [B, *S_out, C]
    return out.reshape(image.size(0), math.prod(geom.out_size), out.size(-1))


def window_sum(image: Tensor, geom: ConvGeometry) -> Tensor:
    """Sum over every window of ``geom``: the depthwise grid conv with unit weights, ``[B, N_out, C]``."""
    ones = image.new_ones(image.size(-1), 1, *geom.kernel_size)
    return depthwise_grid_conv(image, geom, ones, None)
