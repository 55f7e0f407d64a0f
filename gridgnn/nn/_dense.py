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

:func:`dense_grid_conv` picks the fastest for the shape. On the reversed graph
of a complete grid (a transposed conv), :func:`dense_conv_transpose` transforms
every source by every :math:`\mathbf{W}_t` in one GEMM and scatters each
offset's messages onto a strided box of the targets.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..geometry import ConvGeometry
from ._depthwise import Box, depthwise_grid_conv, tap_boxes
from ._gemm import linear, with_merged_groups
from ._offset_plan import node_transform
from ._padding import pad_nodes

# below this many input channels per GEMM the in-place slice GEMMs beat the gathered copy (measured on CPU)
SHIFT_MAX_CHANNELS = 128


class ShiftedSliceConv(torch.autograd.Function):
    """``out[p] = sum_t W_t x[p + off_t]`` over a flattened padded node tensor, forward and backward by slice GEMMs.

    ``weight`` is ``[K, C_in, C_out]``: one GEMM per offset, accumulated in place.
    Only rows ``< L = M - max(offsets)`` of the output are computed (the rest are
    padding positions the caller crops).
    """

    @staticmethod
    def forward(ctx, flat: Tensor, weight: Tensor, bias: Optional[Tensor], offsets: List[int]) -> Tensor:
        rows, length = flat.size(0), max(flat.size(0) - max(offsets), 0)
        out = flat.new_empty(rows, weight.size(-1))
        acc = out[:length]
        first = flat[offsets[0]:offsets[0] + length]                              # [L, C_in]
        if bias is None:
            torch.mm(first, weight[0], out=acc)                                   # the first offset writes,
        else:
            torch.addmm(bias, first, weight[0], out=acc)                          # no separate zero-fill pass
        for t, off in enumerate(offsets[1:], 1):
            acc.addmm_(flat[off:off + length], weight[t])                         # [L, C_in] @ [C_in, C_out]
        out[length:].zero_()
        ctx.save_for_backward(flat, weight)
        ctx.offsets, ctx.has_bias = offsets, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        flat, weight = ctx.saved_tensors
        offsets = ctx.offsets
        length = max(flat.size(0) - max(offsets), 0)
        grad = grad_out[:length]
        grad_flat = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_flat = torch.zeros_like(flat)
            for t, off in enumerate(offsets):
                grad_flat[off:off + length].addmm_(grad, weight[t].t())
        if ctx.needs_input_grad[1]:
            grad_weight = torch.stack([flat[off:off + length].t() @ grad for off in offsets])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(0)
        return grad_flat, grad_weight, grad_bias, None


def _shifted_slice_conv(x: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """Stride-1 grid conv by :class:`ShiftedSliceConv`: ``[B, *S_in, C_in] -> [B, N_out, C_out]``."""
    b, c_out = x.size(0), weight.size(0)
    padded = pad_nodes(x, geom)                                                  # [B, *P, C_in]
    size = padded.shape[1:-1]
    strides = [math.prod(size[d + 1:]) for d in range(geom.ndim)]
    offsets = [sum(k * dil * st for k, dil, st in zip(index, geom.dilation, strides))
               for index in geom.kernel_indices()]                                # row-major, as edge_type
    w = weight.flatten(2).permute(2, 1, 0)                                       # [K, C_in, C_out]
    flat = padded.reshape(-1, padded.size(-1))                                   # [B*prod(P), C_in]
    out = ShiftedSliceConv.apply(flat, w.contiguous(), bias, offsets)            # [B*prod(P), C_out]
    out = out.view(b, *size, c_out)[(slice(None),) + tuple(slice(0, n) for n in geom.out_size)]
    return out.reshape(b, math.prod(geom.out_size), c_out)


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


def _gathered_window_conv(x: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor],
                          groups: int) -> Tensor:
    """Grid conv by gathered windows and one GEMM per group: ``[B, *S_in, C_in] -> [B, N_out, C_out]``."""
    b, c_out = x.size(0), weight.size(0)
    n_out = math.prod(geom.out_size)
    windows = gather_windows(x, geom)                                             # [B, *S_out, *K, C_in]

    def per_group(weight: Tensor, groups: int) -> Tensor:
        w = weight.flatten(2).transpose(1, 2).reshape(groups, c_out // groups, -1)   # [G, C_out/G, K*C_in/G]
        rows, cols = b * n_out, w.size(-1)
        if groups == 1:                                                           # im2col [B*N_out, K*C_in]
            return linear(windows.reshape(rows, cols), w[0], bias).view(b, n_out, c_out)
        # im2col per channel group, [B*N_out, K*C_in/G], and one GEMM each
        out = torch.cat([linear(win.reshape(rows, cols), wg) for win, wg in zip(windows.chunk(groups, -1), w)], -1)
        out = out if bias is None else out + bias
        return out.view(b, n_out, c_out)

    return with_merged_groups(per_group, weight, groups)                           # thin groups block-diagonal


def dense_grid_conv(x: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor],
                    groups: int) -> Tensor:
    """Grid conv on the complete grid of ``geom``.

    Args:
        x: node features ``[B, N_in, C_in]`` with ``N_in = prod(geom.in_size)``.
        weight: ``[C_out, C_in / groups, *kernel]`` (torch's conv layout).

    Returns:
        node features ``[B, N_out, C_out]``.
    """
    b, c_in = x.size(0), x.size(-1)
    c_out = weight.size(0)
    image = x.reshape(b, *geom.in_size, c_in)                                     # [B, *S_in, C_in]
    if groups == c_in == c_out:
        return depthwise_grid_conv(image, geom, weight, bias)
    if groups == 1 and c_in < SHIFT_MAX_CHANNELS and all(s == 1 for s in geom.stride):
        return _shifted_slice_conv(image, geom, weight, bias)
    return _gathered_window_conv(image, geom, weight, bias, groups)


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


class BoxScatter(torch.autograd.Function):
    """``out[b, target_box_t] += y[b, source_box_t, t]`` for every offset: ``[B, *S_src, K, C] -> [B, *S_dst, C]``.

    Its adjoint is :class:`BoxGather` (each backward calls the other), so gradients of every order exist.
    """

    @staticmethod
    def forward(ctx, y: Tensor, dst_size: Tuple[int, ...], taps: List[Tuple[int, Box, Box]], tiles: bool) -> Tensor:
        if tiles:                       # every target in exactly one box (e.g. 2x2 stride 2): copies, no zero-fill
            out = y.new_empty(y.size(0), *dst_size, y.size(-1))
            for t, source_box, target_box in taps:
                out[(slice(None),) + target_box] = y[(slice(None),) + source_box + (t,)]
        else:
            out = y.new_zeros(y.size(0), *dst_size, y.size(-1))
            for t, source_box, target_box in taps:
                out[(slice(None),) + target_box] += y[(slice(None),) + source_box + (t,)]
        ctx.src_shape, ctx.taps, ctx.tiles = tuple(y.shape[1:-1]), taps, tiles
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        return BoxGather.apply(grad, ctx.src_shape, ctx.taps, ctx.tiles), None, None, None


class BoxGather(torch.autograd.Function):
    """``y[b, source_box_t, t] = g[b, target_box_t]``, zero elsewhere: the adjoint of :class:`BoxScatter`."""

    @staticmethod
    def forward(ctx, grad: Tensor, src_shape: Tuple[int, ...], taps: List[Tuple[int, Box, Box]],
                tiles: bool) -> Tensor:
        y = grad.new_zeros(grad.size(0), *src_shape, grad.size(-1))
        for t, source_box, target_box in taps:
            y[(slice(None),) + source_box + (t,)] = grad[(slice(None),) + target_box]
        ctx.dst_size, ctx.taps, ctx.tiles = tuple(grad.shape[1:-1]), taps, tiles
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        return BoxScatter.apply(grad_y, ctx.dst_size, ctx.taps, ctx.tiles), None, None, None


def dense_conv_transpose(x: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor],
                         groups: int) -> Tensor:
    r"""Message passing on the reversed complete grid graph of ``geom``: ``[B, N_src, C_in] -> [B, N_dst, C_out]``.

    The sources are the conv's output positions, the targets its input positions. One GEMM
    computes :math:`\mathbf{W}_t \mathbf{x}_i` for every source :math:`i` and offset :math:`t`;
    the messages of offset :math:`t` then land on a strided box of targets (positions
    :math:`i s - p + t d`) by :class:`BoxScatter`. ``weight`` is in message layout
    ``[C_out, C_in / groups, *kernel]``.
    """
    b, c_out = x.size(0), weight.size(0)
    y = node_transform(x, weight, groups)                                         # [B, N_src, K, C_out]
    y = y.view(b, *geom.out_size, geom.num_offsets, c_out)
    taps = tap_boxes(geom, geom.in_size, True)
    out = BoxScatter.apply(y, tuple(geom.in_size), taps, _tiles(geom, taps))    # [B, *S_dst, C_out]
    out = out.view(b, -1, c_out)
    return out if bias is None else out + bias
