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
On a CPU batches are processed in cache-sized chunks, so an output chunk stays in
cache across the ``K`` offsets (a GPU takes the whole batch: it pays per launch).
The backward is the same boxes transposed (:class:`ClippedShiftDepthwise`).

Where gridgnn's native kernel is built (:mod:`gridgnn.nn._native`), plain eager CPU calls in
float32/float64 run it instead: the same sum in one pass over the nodes, all ``K`` offsets
at once. The boxes above stay the kernel of every other call (CUDA, other dtypes,
``create_graph=True`` backwards, batched gradients) and the fallback where it is not built.
"""
from __future__ import annotations

import itertools
import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..geometry import ConvGeometry
from . import _native
from ._compiled import compiled_depthwise
from ._function import Function, save_bilinear
from ._gemm import sum_tangents
from ._padding import pad_nodes
from ._transforms import cached_in_eager, plain_ops

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


@cached_in_eager(maxsize=256)
def tap_boxes(geom: ConvGeometry, in_size: Tuple[int, ...], zero_padded: bool) -> List[Tuple[int, Box, Box]]:
    """``[(t, out_box, in_box), ...]`` for each kernel offset ``t`` (row-major) that has edges.

    ``in_size`` is the size of the tensor the boxes index: the input itself when
    ``zero_padded`` (padding is implicit), else the explicitly padded input. Cached in
    eager mode (~40 us of Python a call); traced directly under ``torch.compile``, which
    bakes the boxes into the graph once.
    """
    per_axis = [_axis_boxes(n_in, n_out, k, dil, left if zero_padded else 0, s)
                for n_in, n_out, k, dil, (left, _), s in zip(in_size, geom.out_size, geom.kernel_size,
                                                              geom.dilation, geom.padding, geom.stride)]
    taps = []
    for t, axes in enumerate(itertools.product(*per_axis)):
        if all(a is not None for a in axes):
            taps.append((t, tuple(a[0] for a in axes), tuple(a[1] for a in axes)))
    return taps



def view_of(t: Tensor, box: Box, batch: slice = slice(None)) -> Tensor:
    """``t[batch, *box]``, or ``t`` itself when that spans all of it.

    (vmap has no batching rule for the alias that a full-range index makes.)
    """
    index = (batch,) + box
    if all(s.step in (None, 1) and s.start in (None, 0) and (s.stop is None or s.stop >= n)
           for s, n in zip(index, t.shape)):
        return t
    return t[index]


def is_channel_major(x: Tensor) -> bool:
    """Whether the nodes ``[B, *S, C]`` lie channel-major in memory, as the node view of an NCHW image does."""
    return x.dim() > 2 and x.size(-1) > 1 and x.stride(-1) != 1 and x.stride(-2) == 1


def empty_like_layout(x: Tensor, shape: Tuple[int, ...], zero: bool = False) -> Tensor:
    """A ``[B, *S, C]`` tensor laid out in memory as ``x`` is.

    Channels innermost, or, for the node view of an NCHW image, channels before the spatial
    axes: every shifted product then runs along contiguous rows of both operands.
    """
    if not is_channel_major(x):
        return x.new_zeros(shape) if zero else x.new_empty(shape)
    moved = (shape[0], shape[-1], *shape[1:-1])                                   # [B, C, *S]
    return (x.new_zeros(moved) if zero else x.new_empty(moved)).movedim(1, -1)


def _batch_chunks(x: Tensor, per_item: int) -> List[slice]:
    """Batch slices of about :data:`CHUNK_ELEMENTS` output elements on a CPU; the whole batch elsewhere.

    A CPU keeps a chunk's output in cache across the offsets; a GPU pays per kernel launch instead
    (chunks of 2 MiB made a depthwise 7x7 at batch 8 launch 8x the ``addcmul_`` s, host-bound).
    """
    if x.device.type != "cpu":
        return [slice(None)]
    batch, step = x.size(0), max(1, CHUNK_ELEMENTS // max(per_item, 1))
    return [slice(start, min(batch, start + step)) for start in range(0, batch, step)]


class ClippedShiftDepthwise(Function):
    """``out[b, box_t] (+)= w_t * x[b, in_box_t]`` over the kernel offsets ``t``; backward by the same boxes.

    ``native`` is ``(geometry, zero_padded)`` where the native kernel may run (forward and
    first-order backward), else ``None``. Bilinear in ``x`` and ``weight``, so the ``jvp`` is the
    same kernel on the tangents.
    """

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Optional[Tensor], out_size: Tuple[int, ...],
                taps: List[Tuple[int, Box, Box]], native: Optional[Tuple[ConvGeometry, bool]]) -> Tensor:
        # x: [B, *S_in, C]; weight: [C, K]; returns [B, *S_out, C], laid out as x
        if native is not None and _native.applies(x, weight, bias):
            return _native.grouped_forward(x, weight, bias, *native)
        out = empty_like_layout(x, (x.size(0), *out_size, x.size(-1)))
        full = tuple(slice(0, n) for n in out_size)
        first = next((tap for tap in taps if tap[1] == full), None)       # an offset every output receives
        rest = [tap for tap in taps if tap is not first]
        columns = weight.unbind(1)                                            # K x [C]: one op, not K selects
        for b in _batch_chunks(x, math.prod(out.shape[1:])):
            block, source = view_of(out, (), b), view_of(x, (), b)
            if first is not None:
                torch.mul(view_of(source, first[2]), columns[first[0]], out=block)
            else:
                block.zero_()
            for t, out_box, in_box in rest:
                view_of(block, out_box).addcmul_(view_of(source, in_box), columns[t])
        if bias is not None:
            out.add_(bias)
        return out

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, bias, ctx.out_size, ctx.taps, ctx.native = inputs
        save_bilinear(ctx, x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum(tuple(range(grad_out.dim() - 1)))
        if (ctx.native is not None and not torch.is_grad_enabled() and not plain_ops(grad_out)
                and grad_out.dtype == x.dtype and _native.applies(x, weight, None)):  # first order, unbatched
            grad_x, grad_weight = _native.grouped_backward(x, weight, grad_out, *ctx.native,
                                                             *ctx.needs_input_grad[:2])
            return grad_x, grad_weight, grad_bias, None, None, None
        chunks = _batch_chunks(x, math.prod(grad_out.shape[1:]))
        if ctx.needs_input_grad[0]:
            grad_x = empty_like_layout(grad_out, tuple(x.shape), zero=True)   # batched when grad_out is (vmap)
            columns = weight.conj().unbind(1)                                 # K x [C]
            for b in chunks:
                block, target = view_of(grad_out, (), b), view_of(grad_x, (), b)
                for t, out_box, in_box in ctx.taps:
                    view_of(target, in_box).addcmul_(view_of(block, out_box), columns[t])
        if ctx.needs_input_grad[1]:
            rows = [None] * weight.size(1)
            for b in chunks:
                block, source = view_of(grad_out, (), b), view_of(x, (), b)
                for t, out_box, in_box in ctx.taps:
                    product = view_of(source, in_box).conj() * view_of(block, out_box)   # [b, *box, C]
                    total = product.sum(tuple(range(product.dim() - 1)))                  # no flatten: vmap-safe
                    rows[t] = total if rows[t] is None else rows[t] + total
            zero = grad_out.new_zeros(weight.size(0))
            grad_weight = torch.stack([zero if row is None else row for row in rows], 1)
        return grad_x, grad_weight, grad_bias, None, None, None

    @staticmethod
    def jvp(ctx, x_t: Optional[Tensor], weight_t: Optional[Tensor], bias_t: Optional[Tensor], *_) -> Tensor:
        x, weight = ctx.saved_tensors
        terms = [ClippedShiftDepthwise.apply(x_t, weight, None, ctx.out_size, ctx.taps, ctx.native)
                 if x_t is not None else None,
                 ClippedShiftDepthwise.apply(x, weight_t, None, ctx.out_size, ctx.taps, ctx.native)
                 if weight_t is not None else None, bias_t]
        return sum_tangents(terms, (x.size(0), *ctx.out_size, x.size(-1)), x)


def depthwise_grid_conv(image: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """Depthwise grid conv: ``[B, *S_in, C] -> [B, N_out, C]``, ``weight`` ``[C, 1, *kernel]``.

    By the inductor-compiled kernel when :class:`~gridgnn.nn.compiled_kernels` is on, else by
    :class:`ClippedShiftDepthwise`.
    """
    compiled = compiled_depthwise(image, geom, weight, bias)                       # [B, *S_out, C] or None
    if compiled is not None:
        return compiled.reshape(image.size(0), math.prod(geom.out_size), compiled.size(-1))
    zero_padded = geom.padding_mode == "zeros"
    source = image if zero_padded else pad_nodes(image, geom)                     # [B, *S, C]
    taps = tap_boxes(geom, tuple(source.shape[1:-1]), zero_padded)
    out = ClippedShiftDepthwise.apply(source, weight.flatten(1), bias, tuple(geom.out_size), taps,
                                      (geom, zero_padded))                         # [B, *S_out, C]
    return out.reshape(image.size(0), math.prod(geom.out_size), out.size(-1))


class ClippedShiftMax(Function):
    r"""Max pooling on a complete grid by clipped boxes: ``out[b, box_t] = max(out[b, box_t], x[b, in_box_t])``.

    Node-wise :math:`\mathbf{y}_i = \max_{(j \to i)} \mathbf{x}_j` (:math:`-\infty` for a window with no
    pixel). The backward sends each output's gradient to the inputs equal to its maximum, shared
    equally between exact ties; the ``jvp`` is the matching mean of the winners' tangents.
    """

    @staticmethod
    def forward(x: Tensor, out_size: Tuple[int, ...], taps: List[Tuple[int, Box, Box]]) -> Tensor:
        # x: [B, *S_in, C]; returns [B, *S_out, C]
        full = tuple(slice(0, n) for n in out_size)
        first = next((tap for tap in taps if tap[1] == full), None)
        if first is not None:
            out = empty_like_layout(x, (x.size(0), *out_size, x.size(-1))).copy_(view_of(x, first[2]))
        else:
            out = empty_like_layout(x, (x.size(0), *out_size, x.size(-1))).fill_(-math.inf)
        for tap in taps:
            if tap is not first:
                block = view_of(out, tap[1])
                torch.maximum(block, view_of(x, tap[2]), out=block)
        return out

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, _, ctx.taps = inputs
        ctx.save_for_backward(x, output)
        ctx.save_for_forward(x, output)

    @staticmethod
    def _winners(ctx):
        """Per tap: the output and input boxes and where the input holds its window's max; the tie counts."""
        x, out = ctx.saved_tensors
        boxes = [(out_box, in_box) for _, out_box, in_box in ctx.taps]
        winners = [view_of(x, in_box) == view_of(out, out_box) for out_box, in_box in boxes]
        count = torch.zeros_like(out)
        for (out_box, _), won in zip(boxes, winners):
            view_of(count, out_box).add_(won)
        return boxes, winners, count.clamp(min=1)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        boxes, winners, count = ClippedShiftMax._winners(ctx)
        share = grad_out / count                                                 # per window, per winner
        grad_x = empty_like_layout(grad_out, tuple(ctx.saved_tensors[0].shape), zero=True)   # batched as grad_out
        for (out_box, in_box), won in zip(boxes, winners):
            view_of(grad_x, in_box).add_(torch.where(won, view_of(share, out_box), 0))
        return grad_x, None, None

    @staticmethod
    def jvp(ctx, x_t: Tensor, *_) -> Tensor:
        boxes, winners, count = ClippedShiftMax._winners(ctx)
        out_t = empty_like_layout(ctx.saved_tensors[0], tuple(count.shape), zero=True)   # the output's layout
        for (out_box, in_box), won in zip(boxes, winners):
            view_of(out_t, out_box).add_(torch.where(won, view_of(x_t, in_box), 0))
        return out_t / count


def window_max(image: Tensor, geom: ConvGeometry) -> Tensor:
    """Max over every window of ``geom`` (zero padding = no pixel): ``[B, *S_in, C] -> [B, N_out, C]``."""
    taps = tap_boxes(geom, tuple(image.shape[1:-1]), True)
    out = ClippedShiftMax.apply(image, tuple(geom.out_size), taps)                  # [B, *S_out, C]
    return out.reshape(image.size(0), math.prod(geom.out_size), out.size(-1))


def window_sum(image: Tensor, geom: ConvGeometry) -> Tensor:
    """Sum over every window of ``geom``: the depthwise grid conv with unit weights, ``[B, N_out, C]``."""
    ones = image.new_ones(image.size(-1), 1, *geom.kernel_size)
    return depthwise_grid_conv(image, geom, ones, None)
