r"""Dense execution of a grid conv on a complete grid graph.

On a complete grid every node receives one message per kernel offset, from the
node at a fixed displacement. Three ways to compute all messages at once, none
a torch conv op:

* **shifted slices** (stride 1): pad the node tensor ``[B, *S, C]`` as the
  graph's edges say and flatten it to ``[M, C]``. The source of every edge of
  offset ``t`` is then the node ``off_t`` rows further on, so the messages of
  offset ``t`` are one contiguous slice ``flat[off_t : off_t + L]`` and the layer
  is ``K`` GEMMs accumulated in place, ``Y += X_t W_t^T``, with no gathered copy.
  Outputs computed at padding positions are cropped. Backward is the same
  pattern transposed (:class:`ShiftedSliceConv`).
* **gathered windows** (any stride, any groups): gather each node's window
  with strided views into ``[B * N_out, K * C_in]`` (channels innermost, so the
  gather copies contiguous runs) and contract with the weight in one GEMM.
* **clipped shifted views** (depthwise, any stride/padding/dilation): one
  in-place per-channel product per offset (:mod:`gridgnn.nn._depthwise`).

On AVX-512 and AVX2 CPUs, float32 convs with ``groups = 1`` (any stride, dilation and
padding) run gridgnn's native dense kernel instead (:class:`NativeDenseConv`,
:mod:`gridgnn.nn._native`): register tiles of output nodes that read every
message's source in place, zero padding and NCHW layout included (on AVX2 an
NCHW input of 8 channels or more through a copy, channels innermost, of each
work item's nodes).

:func:`dense_grid_conv` picks the fastest for the shape. On the reversed graph
of a complete grid (a transposed conv), :func:`dense_conv_transpose` transforms
every source by every :math:`\mathbf{W}_t` in one GEMM and scatters each
offset's messages onto a strided box of the targets.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..geometry import ConvGeometry, kernel_indices
from . import _native
from ._depthwise import Box, depthwise_grid_conv, empty_like_layout, is_channel_major, tap_boxes
from ._function import Function, recomputed_grads, save_bilinear
from ._gemm import add_matmul_, grouped_linear, linear, sum_tangents, with_merged_groups
from ._grouped import native_grouped_applies, native_grouped_conv
from ._offset_plan import node_transform
from ._padding import pad_nodes, shifted_views
from ._transforms import plain_ops

# below this many input channels per GEMM the in-place slice GEMMs beat the gathered copy (measured on CPU; off the
# CPU the gathered route's one GEMM always runs: on an H200 the 3x3 C=128 @28 batch 8 (gathered) ran its forward in
# 0.20 ms and the C=64 @56 of the same MACs (shifted, then 269 ops a call) in 2.27 ms)
SHIFT_MAX_CHANNELS = 128

#: the native dense kernel runs convs with more output channels than this. On AVX-512 its tiles always compute
#: 64, so at 32 or fewer the GEMM paths ran faster (side by side, an AVX-512 Xeon: C_in=64 56x56 batch 8,
#: C_out=32 9.2 vs 8.4 ms, C_out=16 9.2 vs 6.5 ms; at C_out=64 10.2 vs 16.2 ms; an RGB stem 3->64 8.2 vs 27.9 ms).
#: AVX2 tiles compute only the quarters of 16 channels that hold output channels, and ran faster at every
#: C_out (an AVX2 AMD EPYC host, same shape: C_out=16 0.65x and C_out=32 0.73x the GEMM path's time)
NATIVE_DENSE_MIN_OUT = 32 if _native.AVX512 else 0

#: the native dense kernel's weight gradient at stride 1 on grids of at most this many nodes an image: one GEMM
#: on the gathered windows (as at any stride), not a GEMM per offset over the padded grid, whose padding rows
#: are a large share there and whose channel-major rows are one short image each (side by side, an AVX2 AMD
#: EPYC host, 3x3 batch 8 / 1 from NCHW: C=512 @7 0.68x / 0.40x the time, C=256 @14 0.88x / 0.67x, C=128 @28
#: 1.20x at batch 8; channels innermost: @7 0.63x / 0.48x, @14 0.82x / 0.79x, @16 0.92x, @28 0.97x)
GATHERED_WEIGHT_GRAD_MAX_NODES = 256

#: transposed convs (and strided convs' input gradients) run phase by phase on the native kernel from source
#: grids of at least this many nodes an image: there the scatter's GEMM is thin for the grid. Side by side on an
#: AVX2 EPYC, 3x3 stride 2: 64 -> 32 from 32x32 at batch 8 0.62-0.78x the scatter's time (a 4x4 kernel
#: 0.50-0.58x), C=64 from 56x56 at batch 1 0.69-0.73x; from 28x28 (C=128) 0.84-1.10x, 14x14 (C=256) 0.96-1.16x
#: and 7x7 (C=512) 1.04-1.42x
PHASES_MIN_SOURCES = 1024

#: output elements a row chunk of :func:`shifted_matmul_` accumulates (1 MiB of float32: stays in a core's L2)
SHIFT_CHUNK_ELEMENTS = 1 << 18


@functools.lru_cache(maxsize=256)
def _chunk_plan(rows: int, sources: int, offsets: Tuple[int, ...], step: int, writes: bool):
    """Per row chunk of :func:`shifted_matmul_`: ``(start, stop, first, adds)``, spans ``(t, lo, hi, off)``.

    ``first`` is an offset whose sources cover the whole chunk (it writes the chunk; ``None`` when
    there is none or ``writes`` is off), ``adds`` the spans accumulated after it.
    """
    plan = []
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        spans = [(t, max(start, -off), min(stop, sources - off), off) for t, off in enumerate(offsets)]
        spans = [span for span in spans if span[2] > span[1]]
        first = next((span for span in spans if writes and span[1:3] == (start, stop)), None)
        plan.append((start, stop, first, [span for span in spans if span is not first]))
    return plan


def shifted_matmul_(out: Tensor, src: Tensor, weight: Tensor, offsets: List[int],
                    bias: Optional[Tensor] = None) -> Tensor:
    """``out[p] = bias + sum_t src[p + off_t] @ weight[t]``, rows of ``src`` outside it counting as zeros.

    ``out`` ``[R, C_out]``, ``src`` ``[M, C_in]``, ``weight`` ``[K, C_in, C_out]``; offsets may be negative.
    The rows of ``out`` are processed in chunks of about :data:`SHIFT_CHUNK_ELEMENTS`, so each chunk
    stays in cache while its ``K`` GEMMs accumulate into it (on 2 CPU threads 1.2-2x faster than
    accumulating whole-tensor GEMMs, measured in ``benchmarks/README.md``). In each chunk an offset that
    reaches every row writes it (one ``mm`` with ``out=``, no zero-fill); the others add in place.
    """
    step = max(1, SHIFT_CHUNK_ELEMENTS // max(out.size(-1), 1))
    writes = not plain_ops(out, src)                         # batched (vmapped) gradients: zero-fill and add
    weight = weight.unbind(0)                                                     # K x [C_in, C_out]
    for start, stop, first, adds in _chunk_plan(out.size(0), src.size(0), tuple(offsets), step, writes):
        block = out[start:stop]
        if first is not None:
            t, lo, hi, off = first
            if bias is None:
                torch.mm(src[lo + off:hi + off], weight[t], out=block)
            else:
                torch.addmm(bias, src[lo + off:hi + off], weight[t], out=block)
        elif bias is None:
            block.zero_()
        else:
            block.copy_(bias.expand_as(block))
        for t, lo, hi, off in adds:
            add_matmul_(out[lo:hi], src[lo + off:hi + off], weight[t])        # [rows, C_in] @ [C_in, C_out]
    return out


class ShiftedSliceConv(Function):
    """``out[p] = sum_t W_t x[p + off_t]`` over a flattened padded node tensor, forward and backward by slice GEMMs.

    ``weight`` is ``[K, C_in, C_out]``: one GEMM per offset, accumulated in place in cache-sized row
    chunks (:func:`shifted_matmul_`). Only rows ``< L = M - max(offsets)`` of the output are computed
    (the rest are padding positions the caller crops, returned as zeros). The map is bilinear, so its
    ``jvp`` is the same kernel on the tangents.
    """

    @staticmethod
    def forward(flat: Tensor, weight: Tensor, bias: Optional[Tensor], offsets: List[int]) -> Tensor:
        rows, length = flat.size(0), max(flat.size(0) - max(offsets), 0)
        out = flat.new_empty(rows, weight.size(-1))
        shifted_matmul_(out[:length], flat, weight, offsets, bias)                # [L, C_out]
        out[length:].zero_()
        return out

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        flat, weight, bias, offsets = inputs
        ctx.save_for_backward(flat, weight)
        ctx.save_for_forward(flat, weight)
        ctx.offsets, ctx.has_bias = offsets, bias is not None

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        flat, weight = ctx.saved_tensors
        offsets = ctx.offsets
        length = max(flat.size(0) - max(offsets), 0)
        grad = grad_out[:length]
        grad_flat = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_flat = grad_out.new_empty(flat.shape)       # from the gradient: batched when it is (vmap)
            # grad_flat[q] = sum_t grad[q - off_t] W_t^H: the forward's kernel on negated offsets (mH: complex too)
            shifted_matmul_(grad_flat, grad, weight.mH, [-off for off in offsets])
        if ctx.needs_input_grad[1]:
            grad_weight = torch.stack([flat[off:off + length].mH @ grad for off in offsets])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(0)
        return grad_flat, grad_weight, grad_bias, None

    @staticmethod
    def jvp(ctx, flat_t: Optional[Tensor], weight_t: Optional[Tensor], bias_t: Optional[Tensor], _) -> Tensor:
        flat, weight = ctx.saved_tensors
        if flat_t is None and bias_t is not None:                # the bias reaches the computed rows only
            flat_t = torch.zeros_like(flat)
        terms = [ShiftedSliceConv.apply(flat_t, weight, bias_t, ctx.offsets) if flat_t is not None else None,
                 ShiftedSliceConv.apply(flat, weight_t, None, ctx.offsets) if weight_t is not None else None]
        return sum_tangents(terms, (flat.size(0), weight.size(-1)), flat)


class _NativeBilinearMap(Function):
    """Shared body of the native kernels' grid maps ``(image, weight, bias, geom) -> image``, bilinear in both.

    A subclass gives the forward, :meth:`native_grads` (the first-order input and weight gradients on the
    native kernels), :meth:`plain` (the same map in differentiable torch ops, for a backward that must
    itself be differentiable, ``create_graph=True``, or that receives batched gradients) and
    :meth:`out_shape`. The bias gradient sums the output gradient over the nodes; the ``jvp`` is the map
    on the tangents.
    """

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        image, weight, bias, ctx.geom = inputs
        save_bilinear(ctx, image, weight, bias)

    @classmethod
    def backward(cls, ctx, grad: Tensor):
        image, weight = ctx.saved_tensors
        geom = ctx.geom
        need_x, need_weight = ctx.needs_input_grad[:2]
        grad_bias = grad.sum(tuple(range(grad.dim() - 1))) if ctx.has_bias and ctx.needs_input_grad[2] else None
        if torch.is_grad_enabled() or plain_ops(grad):
            def compute(image: Tensor, weight: Tensor) -> Tensor:
                return cls.plain(image, weight, geom).view(grad.shape)
            grad_x, grad_weight = recomputed_grads(compute, image, weight, grad, need_x, need_weight)
        else:
            grad_x, grad_weight = cls.native_grads(image, weight, grad, geom, need_x, need_weight)
        return grad_x, grad_weight, grad_bias, None

    @classmethod
    def jvp(cls, ctx, image_t: Optional[Tensor], weight_t: Optional[Tensor], bias_t: Optional[Tensor], _) -> Tensor:
        image, weight = ctx.saved_tensors
        terms = [cls.apply(image_t, weight, None, ctx.geom) if image_t is not None else None,
                 cls.apply(image, weight_t, None, ctx.geom) if weight_t is not None else None, bias_t]
        return sum_tangents(terms, cls.out_shape(image, weight, ctx.geom), image)


class NativeDenseConv(_NativeBilinearMap):
    """``[B, *S_in, C_in] -> [B, *S_out, C_out]``: a zero-padded grid conv (``groups = 1``) by the native kernel.

    ``image`` is read where it lies, channels innermost or channel-major (an NCHW image's nodes), and the
    output is written in the same layout; ``weight`` is torch's ``[C_out, C_in, *kernel]``. The backward
    is made of the same kernel at stride 1: the input gradient is the conv of the output gradient with
    the flipped, transposed weights, padded by ``(kernel - 1) dilation - padding``; the weight gradient is
    one GEMM per offset over the padded grid's rows (:func:`_offset_products`), or on small grids
    (:data:`GATHERED_WEIGHT_GRAD_MAX_NODES`) one GEMM of the output gradient and the gathered windows.
    Strided convs send the output gradient back over the reversed grid graph (:func:`dense_conv_transpose`:
    the transposed conv, phase by phase on the same kernel where :func:`native_transpose_applies`) and
    contract it with the gathered windows for the weight gradient. A backward that must itself be differentiable
    (``create_graph=True``) or that receives batched gradients recomputes the conv in plain torch ops
    (:func:`plain_window_conv`) and differentiates that. Bilinear in ``image`` and ``weight``, so the
    ``jvp`` is the same conv on the tangents.
    """

    @staticmethod
    def forward(image: Tensor, weight: Tensor, bias: Optional[Tensor], geom: ConvGeometry) -> Tensor:
        return _native.dense_forward(image, weight, bias, geom.out_size, geom.stride,
                                     tuple(left for left, _ in geom.padding), geom.dilation)

    @staticmethod
    def native_grads(image: Tensor, weight: Tensor, grad: Tensor, geom: ConvGeometry, need_x: bool,
                     need_weight: bool) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        return native_dense_grads(image, weight, grad, geom, need_x, need_weight)

    @staticmethod
    def plain(image: Tensor, weight: Tensor, geom: ConvGeometry) -> Tensor:
        return plain_window_conv(image, geom, weight, None, 1)

    @staticmethod
    def out_shape(image: Tensor, weight: Tensor, geom: ConvGeometry) -> Tuple[int, ...]:
        return (image.size(0), *geom.out_size, weight.size(0))


def native_conv_transpose(x: Tensor, weight: Tensor, bias: Optional[Tensor], geom: ConvGeometry,
                          major: Optional[bool] = None) -> Tensor:
    r"""The adjoint of the conv of ``geom`` (``groups = 1``, dilation 1) by the native kernel, one phase at a time.

    ``x`` ``[B, *S_out, C_out]`` lies on the conv's output positions and ``weight`` is the conv's
    ``[C_out, C_in, *kernel]`` (a transposed conv's own weight is that of the conv it transposes); the
    result ``[B, *S_in, C_in]`` is laid out as ``x`` (channel-major or channels innermost), or as ``major`` says.

    Node-wise :math:`\mathbf{y}_q = \mathbf{b} + \sum_{(i, t):\, i s + t - p = q} \mathbf{W}_t^{\top} \mathbf{x}_i`
    per axis. The targets of one phase :math:`r = (q + p) \bmod s` receive only the taps :math:`t = r + j s`:
    target :math:`q_0 + m s` reads source :math:`c + m - j`, with :math:`c = (q_0 + p - r) / s`, which is
    a stride-1 conv of ``x`` with those taps flipped and transposed (the kernel reads them so in place),
    padded by :math:`J - 1 - c` for :math:`J` taps. Each phase's output lands on its strided box of targets;
    a phase that no tap reaches holds the bias. The same multiply-adds as the scatter of every
    :math:`\mathbf{W}_t^{\top} \mathbf{x}_i` (:func:`dense_conv_transpose`), in the native kernel's tiles.
    """
    nd = geom.ndim
    b, c = x.size(0), weight.size(1)
    major = is_channel_major(x) if major is None else major
    out = x.new_empty(b, c, *geom.in_size).movedim(1, -1) if major else x.new_empty(b, *geom.in_size, c)
    ones = (1,) * nd
    taps_last = weight.reshape(*weight.shape[:2], -1)                 # [C_out, C_in, K]: one copy at most a call
    for phase in itertools.product(*(range(s) for s in geom.stride)):
        first = [(r - left) % s for r, (left, _), s in zip(phase, geom.padding, geom.stride)]
        count = [-(-(n - q) // s) for n, q, s in zip(geom.in_size, first, geom.stride)]   # targets per axis
        if min(count) <= 0:
            continue
        targets = out[(slice(None), *(slice(q, None, s) for q, s in zip(first, geom.stride)), slice(None))]
        taps = [-(-(k - r) // s) for k, r, s in zip(geom.kernel_size, phase, geom.stride)]  # J per axis
        if min(taps) <= 0:
            targets.copy_(bias.expand_as(targets)) if bias is not None else targets.zero_()
            continue
        phase_weight = taps_last.index_select(2, _phase_taps(geom.kernel_size, geom.stride, phase,
                                                             weight.device)).view(*weight.shape[:2], *taps)
        pad = tuple(j - 1 - (q + left - r) // s
                    for j, q, (left, _), r, s in zip(taps, first, geom.padding, phase, geom.stride))
        targets.copy_(_native.dense_forward(x, phase_weight, bias, tuple(count), ones, pad, ones, transposed=True,
                                            major=major))                         # [B, *count, C_in]
    return out


def _phase_taps(kernel: Tuple[int, ...], stride: Tuple[int, ...], phase: Tuple[int, ...],
                device: torch.device) -> Tensor:
    """The flat (row-major) ids of the kernel offsets ``t = r + j s`` of ``phase`` ``r`` on every axis.

    (One ``index_select`` of them copied a 3x3 C=256 phase's weights 7x faster than a strided slice's copy.)
    """
    return torch.arange(math.prod(kernel), device=device).view(kernel)[
        tuple(slice(r, None, s) for r, s in zip(phase, stride))].flatten()


def native_transpose_applies(x: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor],
                             groups: int) -> bool:
    """Whether :class:`NativeConvTranspose` runs the transposed conv of ``geom`` on nodes ``x``.

    ``weight`` is the conv's ``[C_out, C_in, *kernel]``: ``groups = 1``, dilation 1, more kernel offsets than
    phases (a 2x2 or 1x1 kernel at stride 2 has one tap a phase: a GEMM each, no faster than the scatter's
    one GEMM, 0.9-1.4x its time), at least 16 target channels (and more than :data:`NATIVE_DENSE_MIN_OUT`;
    an RGB image's gradient through a 7x7 stride-2 stem took 1.6-1.7x the scatter's time), at least
    :data:`PHASES_MIN_SOURCES` source nodes an image, and the native dense kernel's tensors.
    """
    return (groups == 1 and all(d == 1 for d in geom.dilation) and geom.num_offsets > math.prod(geom.stride)
            and weight.size(1) >= 16 and weight.size(1) > NATIVE_DENSE_MIN_OUT
            and math.prod(geom.out_size) >= PHASES_MIN_SOURCES
            and not plain_ops(x, weight, bias) and _native.dense_applies(x, weight, bias))


class NativeConvTranspose(_NativeBilinearMap):
    """``[B, *S_out, C_out] -> [B, *S_in, C_in]``: the transposed conv of ``geom`` (its adjoint) by the native kernel.

    ``weight`` is the conv's ``[C_out, C_in, *kernel]``. The forward is :func:`native_conv_transpose`; the
    input gradient is the conv itself (the native kernel at the conv's stride), the weight gradient the
    conv's weight gradient with the input and the output gradient in each other's place
    (:func:`native_dense_grads`). A backward that must itself be differentiable or that receives batched
    gradients differentiates the scatter form (:func:`dense_conv_transpose`) instead. Bilinear in ``image``
    and ``weight``, so the ``jvp`` is the same map on the tangents.
    """

    @staticmethod
    def forward(image: Tensor, weight: Tensor, bias: Optional[Tensor], geom: ConvGeometry) -> Tensor:
        return native_conv_transpose(image, weight, bias, geom)

    @staticmethod
    def native_grads(image: Tensor, weight: Tensor, grad: Tensor, geom: ConvGeometry, need_x: bool,
                     need_weight: bool) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        grad_x = grad_weight = None
        if need_x:                                                     # the conv of the gradient, as image lies
            grad_x = _native.dense_forward(grad, weight, None, geom.out_size, geom.stride,
                                           tuple(left for left, _ in geom.padding), geom.dilation,
                                           major=is_channel_major(image))
        if need_weight:
            grad_weight = native_dense_grads(grad, weight, image, geom, False, True)[1]
        return grad_x, grad_weight

    @staticmethod
    def plain(image: Tensor, weight: Tensor, geom: ConvGeometry) -> Tensor:
        nodes = image.reshape(image.size(0), -1, image.size(-1)).contiguous()
        return _scattered_conv_transpose(nodes, geom, weight.transpose(0, 1), None, 1)

    @staticmethod
    def out_shape(image: Tensor, weight: Tensor, geom: ConvGeometry) -> Tuple[int, ...]:
        return (image.size(0), *geom.in_size, weight.size(1))


def native_dense_grads(image: Tensor, weight: Tensor, grad_out: Tensor, geom: ConvGeometry, need_x: bool,
                       need_weight: bool) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """The input and weight gradients of :class:`NativeDenseConv` (first order), where asked for.

    ``image`` ``[B, *S_in, C_in]`` and ``grad_out`` ``[B, *S_out, C_out]`` lie channels innermost or
    channel-major (an NCHW image's nodes); the input gradient is laid out as ``image``.
    """
    b, c_in, c_out = image.size(0), image.size(-1), weight.size(0)
    grad_x = grad_weight = None
    strided = any(s > 1 for s in geom.stride)
    if need_x and strided and native_transpose_applies(grad_out, geom, weight, None, 1):   # phase by phase
        grad_x = native_conv_transpose(grad_out, weight, None, geom, major=is_channel_major(image))
    elif need_x and strided:                            # messages back along the reversed grid graph
        grad_x = dense_conv_transpose(grad_out.reshape(b, -1, c_out), geom, weight.transpose(0, 1), None, 1)
        grad_x = grad_x.view(image.shape)
    elif need_x:                          # the full conv of the gradient with the flipped, transposed weights
        pad = [(k - 1) * d - left for k, d, (left, _) in zip(geom.kernel_size, geom.dilation, geom.padding)]
        grad_x = _native.dense_forward(grad_out, weight, None, geom.in_size, (1,) * geom.ndim, pad,
                                       geom.dilation, transposed=True, major=is_channel_major(image))
    if need_weight and (strided or math.prod(geom.in_size) <= GATHERED_WEIGHT_GRAD_MAX_NODES):   # dW = g^T [windows]
        windows = gather_windows(image, geom).reshape(grad_out.numel() // c_out, -1)
        grad_weight = (grad_out.reshape(-1, c_out).mT @ windows).view(c_out, -1, c_in)       # [C_out, K, C_in]
        grad_weight = grad_weight.transpose(1, 2).reshape(weight.shape)
    elif need_weight:
        grad_weight = _offset_products(_zero_padded(image, geom), grad_out, geom.kernel_size, geom.dilation)
    return grad_x, grad_weight


def _zero_padded(image: Tensor, geom: ConvGeometry) -> Tensor:
    """``image`` ``[B, *S, C]`` zero-padded as ``geom`` says, in its own layout (an NCHW image's as planes)."""
    if not is_channel_major(image):
        return pad_nodes(image, geom).contiguous()
    pads = [p for left, right in reversed(geom.padding) for p in (left, right)]
    return F.pad(image.movedim(-1, 1), pads).movedim(1, -1)                      # (not a transposing copy)


def _offsets_in_rows(size: Tuple[int, ...], kernel: Tuple[int, ...], dilation: Tuple[int, ...]) -> List[int]:
    """Per kernel offset (row-major, as ``edge_type``), how many rows further on its source lies in a flat grid."""
    strides = [math.prod(size[d + 1:]) for d in range(len(size))]
    return [sum(k * dil * st for k, dil, st in zip(index, dilation, strides))
            for index in kernel_indices(kernel)]


def _offset_products(padded: Tensor, grad: Tensor, kernel: Tuple[int, ...], dilation: Tuple[int, ...]) -> Tensor:
    """``dW_t = sum_i g_i x_{i + off_t}^T``: the weight gradient ``[C_out, C_in, *kernel]`` of a stride-1 conv.

    The output gradient ``[B, *S_out, C_out]`` is laid on the padded grid ``[B, *P, C_out]`` (zeros at
    the padding positions), so offset ``t``'s sources are the input nodes ``off_t`` further on: one
    ``[C_out, L] x [L, C_in]`` GEMM per offset on contiguous slices of the flattened grid. Channel-major
    nodes (an NCHW image's, padded as planes) take the same slices along each image's flattened planes,
    one batched GEMM per offset, so no layout copy is made.
    """
    b, size, c_in, c_out = padded.size(0), padded.shape[1:-1], padded.size(-1), grad.size(-1)
    offsets = _offsets_in_rows(tuple(size), tuple(kernel), tuple(dilation))
    inner = tuple(slice(0, n) for n in grad.shape[1:-1])
    if is_channel_major(padded):
        on_grid = grad.new_zeros(b, c_out, *size)
        on_grid[(slice(None), slice(None)) + inner] = grad.movedim(-1, 1)
        rows = on_grid.view(b, c_out, -1)                                       # [B, C_out, prod(P)]
        planes = padded.movedim(-1, 1).reshape(b, c_in, -1)                     # [B, C_in, prod(P)]
        length = planes.size(-1) - max(offsets)
        products = [torch.bmm(rows[..., :length], planes[..., off:off + length].mT).sum(0) for off in offsets]
    else:
        on_grid = grad.new_zeros(b, *size, c_out)
        on_grid[(slice(None),) + inner] = grad
        rows = on_grid.reshape(-1, c_out)                                        # [B*prod(P), C_out]
        flat = padded.reshape(-1, c_in)                                          # [B*prod(P), C_in]
        length = flat.size(0) - max(offsets)
        products = [rows[:length].mT @ flat[off:off + length] for off in offsets]
    return torch.stack(products, -1).view(c_out, c_in, *kernel)                # [C_out, C_in, *kernel]


def _shifted_conv_of_padded(padded: Tensor, weight: Tensor, bias: Optional[Tensor],
                            dilation: Tuple[int, ...]) -> Tensor:
    """Stride-1 conv of an already padded input by :class:`ShiftedSliceConv`: ``[B, *P, C_in] -> [B, *S_out, C_out]``.

    A cropped view of the padded-grid result (every row of the flattened grid is computed; the
    padding positions' rows are dropped).
    """
    b, size, c_out = padded.size(0), padded.shape[1:-1], weight.size(0)
    offsets = _offsets_in_rows(tuple(size), tuple(weight.shape[2:]), tuple(dilation))
    w = weight.flatten(2).permute(2, 1, 0)                                       # [K, C_in, C_out]
    flat = padded.reshape(math.prod(padded.shape[:-1]), padded.size(-1))         # [B*prod(P), C_in]
    out = ShiftedSliceConv.apply(flat, w.contiguous(), bias, offsets)            # [B*prod(P), C_out]
    out_size = [p - (k - 1) * d for p, k, d in zip(size, weight.shape[2:], dilation)]
    return out.view(b, *size, c_out)[(slice(None),) + tuple(slice(0, n) for n in out_size)]


def _shifted_slice_conv(x: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """Stride-1 grid conv by shifted slice GEMMs on the padded grid: ``[B, *S_in, C_in] -> [B, N_out, C_out]``."""
    b, c_out, n_out = x.size(0), weight.size(0), math.prod(geom.out_size)
    out = _shifted_conv_of_padded(pad_nodes(x, geom), weight, bias, tuple(geom.dilation))   # a cropped view
    # one copy crops and lays the output out as the input (an NCHW image's nodes stay channel-major)
    result = empty_like_layout(x, tuple(out.shape)).copy_(out)                   # [B, *S_out, C_out]
    return result.view(b, n_out, c_out)                                          # a view in either layout


def _native_dense_conv(x: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """Grid conv by the native dense kernel in ``x``'s layout: ``[B, *S_in, C_in] -> [B, N_out, C_out]``.

    The kernel pads with zeros as it reads; the other padding modes are padded first (:func:`pad_nodes`).
    """
    if geom.padding_mode != "zeros":                          # the same conv on the padded grid, unpadded
        x = pad_nodes(x, geom)
        geom = dataclasses.replace(geom, in_size=tuple(x.shape[1:-1]), padding=((0, 0),) * geom.ndim,
                                   padding_mode="zeros")
    out = NativeDenseConv.apply(x, weight, bias, geom)                            # [B, *S_out, C_out]
    return out.reshape(x.size(0), -1, weight.size(0))                            # a view in either layout


def gather_windows(x: Tensor, geom: ConvGeometry) -> Tensor:
    """Kernel windows of every output node: ``[B, *S_in, C] -> [B, *S_out, *kernel, C]`` (a strided view)."""
    x = pad_nodes(x, geom)
    for d in range(geom.ndim):
        span = geom.dilation[d] * (geom.kernel_size[d] - 1) + 1
        x = x.unfold(1 + d, span, geom.stride[d])            # new trailing axis of length span
        if geom.dilation[d] > 1:
            x = x[..., ::geom.dilation[d]]
    nd = geom.ndim
    # [B, *S_out, C, *K] -> [B, *S_out, *K, C]: channels innermost, matching edge_type order then channel
    return x.permute(0, *range(1, 1 + nd), *range(2 + nd, 2 + 2 * nd), 1 + nd)


def batched_group_gemm(device: torch.device) -> bool:
    """Whether grouped gathered-window convs run one ``bmm`` for all groups (off the CPU) or a GEMM per group.

    A GPU pays per launch (one ``mm`` per group made a 32-group layer host-bound); on 2 CPU threads
    oneDNN's GEMM per group ran 1.15-1.17x faster than one MKL ``bmm`` (side by side, 2-8 groups).
    """
    return device.type != "cpu"


def _gathered_window_conv(x: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor],
                          groups: int) -> Tensor:
    """Grid conv by gathered windows and one (batched) GEMM: ``[B, *S_in, C_in] -> [B, N_out, C_out]``."""
    b, c_out = x.size(0), weight.size(0)
    n_out = math.prod(geom.out_size)
    windows = gather_windows(x, geom)                                             # [B, *S_out, *K, C_in]

    def per_group(weight: Tensor, groups: int) -> Tensor:
        w = weight.flatten(2).transpose(1, 2).reshape(groups, c_out // groups, -1)   # [G, C_out/G, K*C_in/G]
        rows, cols = b * n_out, w.size(-1)
        if groups == 1:                                                           # im2col [B*N_out, K*C_in]
            return linear(windows.reshape(rows, cols), w[0], bias).view(b, n_out, c_out)
        if batched_group_gemm(windows.device):
            # im2col group-major, [G, B*N_out, K*C_in/G] (one copy), and one batched GEMM for all groups
            columns = windows.unflatten(-1, (groups, -1)).movedim(-2, 0).reshape(groups, rows, cols)
            out = torch.bmm(columns, w.transpose(1, 2)).transpose(0, 1).reshape(rows, c_out)   # [B*N_out, C_out]
        else:                                  # im2col per channel group, [B*N_out, K*C_in/G], and one GEMM each
            out = torch.cat([linear(win.reshape(rows, cols), wg) for win, wg in zip(windows.chunk(groups, -1), w)], -1)
        out = out if bias is None else out + bias
        return out.view(b, n_out, c_out)

    return with_merged_groups(per_group, weight, groups, x)                         # thin groups block-diagonal


def stacked_windows(x: Tensor, geom: ConvGeometry, fill: float = 0.0) -> Tensor:
    """Kernel windows by plain slicing: ``[B, *S_in, C] -> [B, *S_out, K, C]``, one strided slice per offset.

    The plain-ops counterpart of :func:`gather_windows` (no ``unfold``, whose backward some
    compilers mishandle); padding is filled with ``fill``.
    """
    return torch.stack(shifted_views(x, geom, fill), dim=-2)


def plain_window_conv(image: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor],
                      groups: int) -> Tensor:
    """Any dense grid conv in plain torch ops (for torch.func): gathered windows, one contraction per group.

    ``[B, *S_in, C_in] -> [B, N_out, C_out]``; each group's channels meet only its own weights,
    so an inf or NaN stays in its group.
    """
    b, c_in, c_out = image.size(0), image.size(-1), weight.size(0)
    n_out, k = math.prod(geom.out_size), geom.num_offsets
    windows = stacked_windows(image, geom).reshape(b * n_out, k, groups, c_in // groups)  # [B*N_out, K, G, C_in/G]
    w = weight.flatten(2).view(groups, c_out // groups, c_in // groups, k)                # [G, C_out/G, C_in/G, K]
    out = torch.einsum("nkgi,goik->ngo", windows, w).reshape(b, n_out, c_out)
    return out if bias is None else out + bias


def plain_window_reduce(image: Tensor, geom: ConvGeometry, reduce: str) -> Tensor:
    """Max or sum over every window in plain torch ops (for torch.func): ``[B, *S_in, C] -> [B, N_out, C]``.

    The max of a window with no pixel is ``-inf``; its gradient is shared equally between tied maxima,
    as in :class:`~gridgnn.nn._depthwise.ClippedShiftMax`.
    """
    fill = -math.inf if reduce == "max" else 0.0
    windows = stacked_windows(image, geom, fill)                                          # [B, *S_out, K, C]
    out = windows.amax(-2) if reduce == "max" else windows.sum(-2)
    return out.reshape(image.size(0), math.prod(geom.out_size), image.size(-1))


def dense_grid_conv(x: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor],
                    groups: int) -> Tensor:
    """Grid conv on the complete grid of ``geom``, by the kernel :func:`dense_route` names.

    Args:
        x: node features ``[B, N_in, C_in]`` with ``N_in = prod(geom.in_size)``.
        weight: ``[C_out, C_in / groups, *kernel]`` (torch's conv layout).

    Returns:
        node features ``[B, N_out, C_out]``.
    """
    b, c_in, c_out = x.size(0), x.size(-1), weight.size(0)
    image = x.reshape(b, *geom.in_size, c_in)                                     # [B, *S_in, C_in]
    route = dense_route(x, image, geom, weight, bias, groups)
    if route == "pointwise_columns":
        return _channel_major_pointwise(x, weight, bias, groups)
    if route == "pointwise_rows":                                                 # GEMMs in place
        return grouped_linear(x, weight.flatten(1), bias, groups)
    if route == "plain":
        return plain_window_conv(image, geom, weight, bias, groups)
    if route == "depthwise":
        return depthwise_grid_conv(image, geom, weight, bias)
    if route == "native_grouped":
        def reference(x: Tensor, w: Tensor) -> Tensor:                            # [B, *S_out, C], for its backward
            return _gathered_window_conv(x, geom, w, None, groups).view(b, *geom.out_size, c_out)
        return native_grouped_conv(image, geom, weight, bias, reference)
    if route == "native_dense":
        return _native_dense_conv(image, geom, weight, bias)
    if route == "shifted":
        return _shifted_slice_conv(image, geom, weight, bias)
    return _gathered_window_conv(image, geom, weight, bias, groups)


def dense_route(x: Tensor, image: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor],
                groups: int) -> str:
    """The kernel :func:`dense_grid_conv` runs on nodes ``x`` ``[B, N_in, C_in]`` (``image``: their grid view).

    One of ``"pointwise_columns"`` (a 1x1 conv on an NCHW image's nodes: GEMMs on its columns),
    ``"pointwise_rows"`` (on channels-innermost nodes), ``"plain"`` (plain torch ops, for compile,
    tracing and ``torch.func``), ``"depthwise"``, ``"native_grouped"`` (thin groups), ``"native_dense"``,
    ``"shifted"`` (shifted slices) or ``"gathered"`` (gathered windows).
    """
    c_in, c_out = x.size(-1), weight.size(0)
    plain = plain_ops(x, weight, bias)
    if not plain and _is_pointwise(geom) and weight.size(1) > 1:      # (not 1-channel groups: their elementwise
        if x.transpose(1, 2).is_contiguous():                          # products stay below)
            return "pointwise_columns"
        if x.is_contiguous():
            return "pointwise_rows"
    if plain:
        return "plain"
    if groups == c_in == c_out:
        return "depthwise"
    if native_grouped_applies(image, geom, weight, bias, groups):
        return "native_grouped"
    if (groups == 1 and geom.num_offsets > 1 and c_out > NATIVE_DENSE_MIN_OUT     # (1x1: one GEMM either way)
            and _native.dense_applies(image, weight, bias)):
        return "native_dense"
    if groups == 1 and all(s == 1 for s in geom.stride) and c_in < SHIFT_MAX_CHANNELS and x.device.type == "cpu":
        return "shifted"                           # (a GPU pays per launch: one im2col GEMM beats K GEMMs there)
    return "gathered"


def _is_pointwise(geom: ConvGeometry) -> bool:
    """Whether ``geom`` is a 1x1 conv that keeps the grid: every node maps to itself."""
    return all(k == 1 for k in geom.kernel_size) and all(s == 1 for s in geom.stride) and not any(
        left or right for left, right in geom.padding)


def _channel_major_pointwise(x: Tensor, weight: Tensor, bias: Optional[Tensor], groups: int) -> Tensor:
    r"""A 1x1 conv on channel-major nodes ``[B, N, C_in]`` (an NCHW image's node view) with no layout copy.

    Returns ``[B, N, C_out]``, channel-major like the input, so the NCHW output image is a view
    (:func:`pointwise_columns` on ``x``'s columns).
    """
    return pointwise_columns(x.transpose(1, 2), weight, bias, groups).transpose(1, 2)


def pointwise_columns(columns: Tensor, weight: Tensor, bias: Optional[Tensor], groups: int) -> Tensor:
    r"""A 1x1 conv on the columns of an NCHW image: ``[B, C_in, N] -> [B, C_out, N]``, contiguous.

    Matrix form per image, :math:`\mathbf{Y}^{\top} = \mathbf{W} \mathbf{X}^{\top} + \mathbf{b}`,
    with ``X^T`` ``[C_in, N]`` read where it lies (node-wise still ``y_i = W x_i + b`` for every node,
    one GEMM per image and group).
    """
    b, c_in, n = columns.shape
    c_out = weight.size(0)
    if groups == 1:
        w = weight.reshape(1, c_out, c_in).expand(b, c_out, c_in)
        return torch.bmm(w, columns) if bias is None else torch.baddbmm(bias.view(1, c_out, 1), w, columns)
    w = weight.reshape(groups, c_out // groups, c_in // groups)                   # [G, C_out/G, C_in/G]
    out = torch.matmul(w, columns.view(b, groups, c_in // groups, n)).view(b, c_out, n)   # no block-diagonal merge
    return out if bias is None else out + bias.view(c_out, 1)


def _tiles(geom: ConvGeometry, taps: List[Tuple[int, Box, Box]]) -> bool:
    """Whether the taps' target boxes cover the conv's input grid exactly once.

    Per dim, two kernel offsets ``t != t'`` land on different positions modulo the stride unless
    ``(t - t') d`` is a multiple of ``s``; when that never happens the boxes are disjoint, and
    their sizes then add up to the grid exactly when every position is covered.
    """
    disjoint = all((delta * d) % s for k, s, d in zip(geom.kernel_size, geom.stride, geom.dilation)
                   for delta in range(1, k))
    covered = sum(math.prod(len(range(n)[slc]) for n, slc in zip(geom.in_size, box)) for _, _, box in taps)
    return disjoint and covered == math.prod(geom.in_size)


def box_scatter(y: Tensor, dst_size: Tuple[int, ...], taps: List[Tuple[int, Box, Box]], tiles: bool) -> Tensor:
    """``out[b, target_box_t] += y[b, source_box_t, t]`` for every offset: ``[B, *S_src, K, C] -> [B, *S_dst, C]``.

    Plain torch ops (slice copies and adds into a fresh tensor). With ``tiles`` every target lies
    in exactly one box (e.g. 2x2 stride 2): copies, no zero-fill.
    """
    if tiles:
        out = y.new_empty(y.size(0), *dst_size, y.size(-1))
        for t, source_box, target_box in taps:
            out[(slice(None),) + target_box] = y[(slice(None),) + source_box + (t,)]
    else:
        out = y.new_zeros(y.size(0), *dst_size, y.size(-1))
        for t, source_box, target_box in taps:
            out[(slice(None),) + target_box] += y[(slice(None),) + source_box + (t,)]
    return out


def box_gather(grad: Tensor, src_shape: Tuple[int, ...], taps: List[Tuple[int, Box, Box]]) -> Tensor:
    """``y[b, source_box_t, t] = g[b, target_box_t]``, zero elsewhere: the adjoint of :func:`box_scatter`."""
    y = grad.new_zeros(grad.size(0), *src_shape, grad.size(-1))
    for t, source_box, target_box in taps:
        y[(slice(None),) + source_box + (t,)] = grad[(slice(None),) + target_box]
    return y


class BoxScatter(Function):
    """:func:`box_scatter` as one autograd node; its adjoint is :class:`BoxGather` (each backward calls the other).

    Both are linear, so gradients of every order exist and the ``jvp`` is the op on the tangent.
    """

    @staticmethod
    def forward(y: Tensor, dst_size: Tuple[int, ...], taps: List[Tuple[int, Box, Box]], tiles: bool) -> Tensor:
        return box_scatter(y, dst_size, taps, tiles)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        y, dst_size, ctx.taps, ctx.tiles = inputs
        ctx.src_shape, ctx.dst_size = tuple(y.shape[1:-1]), dst_size

    @staticmethod
    def backward(ctx, grad: Tensor):
        return BoxGather.apply(grad, ctx.src_shape, ctx.taps, ctx.tiles), None, None, None

    @staticmethod
    def jvp(ctx, y_t: Tensor, *_) -> Tensor:
        return box_scatter(y_t, ctx.dst_size, ctx.taps, ctx.tiles)


class BoxGather(Function):
    """:func:`box_gather` as one autograd node, the adjoint of :class:`BoxScatter`."""

    @staticmethod
    def forward(grad: Tensor, src_shape: Tuple[int, ...], taps: List[Tuple[int, Box, Box]], tiles: bool) -> Tensor:
        return box_gather(grad, src_shape, taps)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        grad, ctx.src_shape, ctx.taps, ctx.tiles = inputs
        ctx.dst_size = tuple(grad.shape[1:-1])

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        return BoxScatter.apply(grad_y, ctx.dst_size, ctx.taps, ctx.tiles), None, None, None

    @staticmethod
    def jvp(ctx, grad_t: Tensor, *_) -> Tensor:
        return box_gather(grad_t, ctx.src_shape, ctx.taps)


def dense_conv_transpose(x: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor],
                         groups: int) -> Tensor:
    r"""Message passing on the reversed complete grid graph of ``geom``: ``[B, N_src, C_in] -> [B, N_dst, C_out]``.

    The sources are the conv's output positions, the targets its input positions. One GEMM
    computes :math:`\mathbf{W}_t \mathbf{x}_i` for every source :math:`i` and offset :math:`t`;
    the messages of offset :math:`t` then land on a strided box of targets (positions
    :math:`i s - p + t d`) by :class:`BoxScatter`. ``weight`` is in message layout
    ``[C_out, C_in / groups, *kernel]``. Where the native dense kernel applies (``groups = 1``, dilation 1:
    :func:`native_transpose_applies`) it runs phase by phase instead (:class:`NativeConvTranspose`), in
    ``x``'s layout.
    """
    b, c_out = x.size(0), weight.size(0)
    conv_weight = weight.transpose(0, 1) if groups == 1 else None                # the conv's [C_in, C_out, *k]
    if conv_weight is not None and native_transpose_applies(x, geom, conv_weight, bias, groups):
        image = x.reshape(b, *geom.out_size, x.size(-1))                           # a view in either layout
        return NativeConvTranspose.apply(image, conv_weight, bias, geom).reshape(b, -1, c_out)
    return _scattered_conv_transpose(x.contiguous(), geom, weight, bias, groups)


def _scattered_conv_transpose(x: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor],
                              groups: int) -> Tensor:
    """:func:`dense_conv_transpose` by one GEMM and the scatter of each offset's messages (differentiable)."""
    b, c_out = x.size(0), weight.size(0)
    y = node_transform(x, weight, groups)                                         # [B, N_src, K, C_out]
    y = y.view(b, *geom.out_size, geom.num_offsets, c_out)
    taps = tap_boxes(geom, geom.in_size, True)
    scatter = box_scatter if plain_ops(y) else BoxScatter.apply
    out = scatter(y, tuple(geom.in_size), taps, _tiles(geom, taps))               # [B, *S_dst, C_out]
    out = out.view(b, -1, c_out)
    return out if bias is None else out + bias
