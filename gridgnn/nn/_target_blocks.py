"""The per-offset order of the general path, blocked by targets: gather, GEMM, then a fused gather-sum.

Message passing over typed edges, ``y_i = sum_{(j -> i, t)} W_t x_j``, costs one message per
edge. Written in plain ops (:func:`per_offset_conv`, the form ``torch.func``, compile and
tracing see) each offset's messages are scattered into the output with ``index_add``, which
on CPU is an element-wise serial loop, through ``E_t x C`` buffers that large graphs
page-fault in afresh on every call. Eager calls (:class:`TargetBlockConv`) cut the targets
into contiguous blocks of about :func:`block_rows` in-edges instead, and for each block:

1. every offset ``t`` with edges into the block gathers its sources ``x_j`` and multiplies
   by ``W_t`` into one message buffer ``[E_block, C_out]`` (``index_select`` and ``mm``
   writing in place into buffers reused from block to block and, on the CPU, kept per
   thread between calls: :func:`scratch`);
2. one fused gather-sum (``embedding_bag``'s CSR kernel, parallel over targets) adds each
   target's messages and writes the block's rows of the output.

Exactly ``E * C_in/g * C_out`` MACs, as per offset, with at most one block's messages in
memory. The backward is the same map on the reversed edges with the transposed weights
(:func:`~gridgnn.nn._offset_plan.transposed_message_weight`) plus a per-offset weight gradient,
written with differentiable ops, so gradients of every order exist.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import cumsum, index_sort

from ._function import Function, save_bilinear
from ._gemm import linear, sum_tangents
from ._offset_plan import TypedEdges, cached_plan, transposed_message_weight
from ._transforms import plain_ops

#: bytes of one block's message buffer on CPU: large enough that the per-block Python loop costs
#: little, small enough to keep the scratch (:func:`scratch`) modest; 8-16 MB measured best on CPU
BLOCK_BYTES = 1 << 23

#: the fewest in-edges a CPU block holds, whatever the width of a row
MIN_BLOCK_ROWS = 1024


@dataclass(frozen=True)
class TargetBlock:
    """The in-edges of targets ``lo .. hi-1``: per offset ``(t, src_t, dst_t)``, and their gather-sum."""

    lo: int
    hi: int
    offsets: Tuple[Tuple[int, Tensor, Tensor], ...]       # (t, sources [E_bt], targets [E_bt]), offset-major
    runs: Tuple[int, ...]                                 # per offset: its first source if the sources are
    #                                                       first, first+1, ... (read as a slice), else -1
    index: Tensor                                         # [E_b] message rows in target order
    ptr: Tensor                                           # [hi - lo + 1] CSR of the targets over ``index``

    @property
    def num_rows(self) -> int:
        return self.index.numel()


def block_rows(row_bytes: int, device: torch.device) -> int:
    """In-edges a block holds: one block on GPUs (cached allocator), else a power of two near :data:`BLOCK_BYTES`."""
    if device.type != "cpu":
        return 1 << 62
    rows = max(1, BLOCK_BYTES // max(1, row_bytes))
    return max(MIN_BLOCK_ROWS, 1 << (rows.bit_length() - 1))


def target_blocks(x: Tensor, graph: Any, weight: Tensor) -> Tuple[TargetBlock, ...]:
    """``graph``'s targets in blocks sized for ``x`` ``[*, N_src, C_in]`` (cached on ``graph``; one host sync).

    The block size depends only on the shapes, dtype and device of ``x`` and ``weight`` (and is
    the same for the reversed graph of the backward), so the eager call builds the plan that a
    later compiled call of the same shapes reads.
    """
    width = x.shape[:-2].numel() * max(x.size(-1), weight.size(0), weight.size(1))
    rows = block_rows(width * x.element_size(), x.device)

    def build() -> Tuple[TargetBlock, ...]:
        src, dst = graph.edge_index
        n_dst, k, n_edges = graph.num_dst_nodes, graph.num_offsets, graph.num_edges
        ptr = cumsum(torch.bincount(dst, minlength=n_dst))                       # [N_dst + 1] in-edge CSR
        cuts = torch.searchsorted(ptr, torch.arange(1, max(1, -(-n_edges // rows)), device=dst.device) * rows)
        bounds = torch.cat([cuts.new_zeros(1), cuts, cuts.new_full((1,), n_dst)]).unique_consecutive()
        block = torch.searchsorted(bounds, dst, right=True) - 1                  # [E] block of each edge's target
        _, order = torch.sort((block * k + graph.edge_type) * n_dst + dst, stable=True)
        src, dst, block = src[order], dst[order], block[order]                   # block-, offset-, target-major
        _, by_target = index_sort(dst, max_value=n_dst, stable=True)             # message rows in target order
        group = block * k + graph.edge_type[order]                                # [E] (block, offset) of each edge
        counts = torch.bincount(group, minlength=(bounds.numel() - 1) * k)
        steps = (src[1:] == src[:-1] + 1) & (group[1:] == group[:-1])            # consecutive sources in a group
        is_run = torch.bincount(group[1:][steps], minlength=counts.numel()) == counts - 1
        starts = cumsum(counts)[:-1].clamp(max=max(n_edges - 1, 0))             # [groups] first edge of each
        runs = torch.where(is_run & (counts > 0), src[starts] if n_edges else starts, -1)
        bounds_list, counts_list, runs_list = bounds.tolist(), counts.view(-1, k).tolist(), runs.view(-1, k).tolist()
        blocks, start = [], 0                                                     # (the sync above)
        for b, per_offset in enumerate(counts_list):
            lo, hi, stop = bounds_list[b], bounds_list[b + 1], start + sum(per_offset)
            offsets, block_runs, first = [], [], start
            for t, count in enumerate(per_offset):
                if count:
                    offsets.append((t, src[first:first + count], dst[first:first + count]))
                    block_runs.append(runs_list[b][t])
                first += count
            blocks.append(TargetBlock(lo, hi, tuple(offsets), tuple(block_runs), by_target[start:stop] - start,
                                      ptr[lo:hi + 1] - ptr[lo]))
            start = stop
        return tuple(blocks)

    return cached_plan(graph, f"target_blocks_{rows}", build)


def reversed_edges(graph: Any) -> TypedEdges:
    """``graph`` with every edge turned around (same offsets): the backward's graph (cached on ``graph``)."""
    return cached_plan(graph, "reversed", lambda: TypedEdges(
        graph.edge_index.flip(0), graph.edge_type, graph.num_dst_nodes, graph.num_src_nodes, graph.num_offsets))


#: per thread and dtype, the CPU buffer :func:`scratch` hands out (kept between calls)
_SCRATCH = threading.local()

#: the largest CPU scratch buffer kept between calls, in bytes; larger ones are allocated per call
SCRATCH_KEEP_BYTES = 1 << 26


def scratch(like: Tensor, *shapes: Tuple[int, ...]) -> List[Tensor]:
    """Uninitialised tensors of ``shapes`` (``like``'s dtype and device), views of one buffer.

    On the CPU the buffer is kept per thread and dtype between calls (up to
    :data:`SCRATCH_KEEP_BYTES`): a freshly allocated buffer of a few MB comes from ``mmap``
    and costs its page faults again on every call, as much as the block's GEMMs. Callers
    use the views before they return and never hand them out.
    """
    sizes = [math.prod(shape) for shape in shapes]
    total = sum(sizes)
    if like.device.type != "cpu" or total * like.element_size() > SCRATCH_KEEP_BYTES:
        buffer = like.new_empty(total)
    else:
        kept = _SCRATCH.__dict__.setdefault("buffers", {})
        buffer = kept.get(like.dtype)
        if buffer is None or buffer.numel() < total:
            buffer = kept[like.dtype] = like.new_empty(total)
    views, start = [], 0
    for shape, size in zip(shapes, sizes):
        views.append(buffer[start:start + size].view(shape))
        start += size
    return views


def _messages(gathered: Tensor, weight_t: Tensor, c_in: int, groups: int, out: Tensor) -> None:
    """``out <- W_t x`` for gathered rows ``[E, B * C_in]`` into ``out`` ``[E, B * C_out]``, no allocation for g=1.

    ``weight_t`` is one offset's slice of :func:`_message_weights`: ``[C_in, C_out]``, ``[1, C]``
    (depthwise) or ``[G, C_in/G, C_out/G]``.
    """
    rows = gathered.view(-1, c_in)                                               # [E*B, C_in]
    if groups == 1:
        torch.mm(rows, weight_t, out=out.view(rows.size(0), -1))
    elif weight_t.dim() == 2:                                                    # depthwise: [1, C]
        torch.mul(rows, weight_t, out=out.view_as(rows))
    else:                                                                        # [G, C_in/G, C_out/G]
        out.view(rows.size(0), groups, -1).copy_(torch.einsum("ngi,gio->ngo", rows.view(-1, groups, c_in // groups),
                                                              weight_t))


def _message_weights(weight: Tensor, groups: int) -> Tensor:
    """``W_t`` laid out for :func:`_messages`: ``[K, C_in, C_out]``, ``[K, 1, C]`` or ``[K, G, C_in/G, C_out/G]``."""
    c_out, k = weight.size(0), weight[0, 0].numel()
    w = weight.reshape(groups, c_out // groups, -1, k)                           # [G, C_out/G, C_in/G, K]
    if groups == 1:
        return w[0].permute(2, 1, 0).contiguous()
    if groups == c_out and w.size(2) == 1:                                       # depthwise
        return w.reshape(c_out, k).t().unsqueeze(1).contiguous()
    return w.permute(3, 0, 2, 1).contiguous()


def per_offset_conv(x: Tensor, graph: Any, weight: Tensor, groups: int) -> Tensor:
    """``[*, N_src, C_in] -> [*, N_dst, C_out]`` in plain ops: per offset, gather, (grouped) GEMM, scatter-add."""
    c_out, c_in = weight.size(0), x.size(-1)
    w = weight.flatten(2)                                                        # [C_out, C_in/G, K]
    out = x.new_zeros(*x.shape[:-2], graph.num_dst_nodes, c_out)
    for block in target_blocks(x, graph, weight):
        for t, src, dst in block.offsets:
            messages = x.index_select(-2, src)                                   # [*, E_bt, C_in]
            if groups == 1:
                messages = linear(messages, w[..., t])                           # [*, E_bt, C_out]
            elif groups == c_in == c_out:                                        # depthwise
                messages = messages * w[:, 0, t]
            else:                  # no block-diagonal merge: a NaN stays in its group; no einsum (legacy vmap)
                wg = w[..., t].reshape(groups, c_out // groups, c_in // groups)  # [G, C_out/G, C_in/G]
                rows = messages.reshape(*messages.shape[:-1], groups, 1, c_in // groups)  # [*, E_bt, G, 1, C_in/G]
                messages = torch.matmul(rows, wg.transpose(1, 2)).reshape(*messages.shape[:-1], c_out)
            out = out.index_add(-2, dst, messages)
    return out


def run_blocks(x: Tensor, graph: Any, weight: Tensor, groups: int) -> Tensor:
    """``[B, N_src, C_in] -> [B, N_dst, C_out]`` by target blocks (no autograd: see :class:`TargetBlockConv`)."""
    batch, c_in, c_out = x.size(0), x.size(-1), weight.size(0)
    nodes = x.transpose(0, 1).reshape(x.size(1), batch * c_in)                   # [N_src, B*C_in] node-major
    weights = _message_weights(weight, groups).unbind(0)                         # W_t per offset t
    blocks = target_blocks(x, graph, weight)
    widest = max(b.num_rows for b in blocks)
    gathered, messages = scratch(x, (widest, batch * c_in), (widest, batch * c_out))  # reused by every block
    out = x.new_empty(graph.num_dst_nodes, batch * c_out)
    for block in blocks:
        first = 0
        for (t, src, _), run in zip(block.offsets, block.runs):
            stop = first + src.size(0)
            if run >= 0:                                                         # consecutive sources: no gather
                rows = nodes[run:run + stop - first]
            else:
                rows = torch.index_select(nodes, 0, src, out=gathered[first:stop])
            _messages(rows, weights[t], c_in, groups, messages[first:stop])
            first = stop
        out[block.lo:block.hi] = F.embedding_bag(block.index, messages[:first], block.ptr, mode="sum",
                                                 include_last_offset=True)
    return out.view(-1, batch, c_out).transpose(0, 1).contiguous()


def weight_grad(x: Tensor, grad: Tensor, graph: Any, weight: Tensor, groups: int) -> Tensor:
    """``dL/dW_t = sum_{(j -> i, t)} g_i x_j^T`` per offset, by target block (differentiable ops)."""
    c_in, c_out, k = x.size(-1), weight.size(0), weight[0, 0].numel()
    per_offset: List[Any] = [None] * k
    for block in target_blocks(x, graph, weight):
        for t, src, dst in block.offsets:
            # matmul and reshape, as the legacy vmap of batched gradients has no einsum nor unflatten
            xs = x.index_select(1, src).reshape(-1, groups, c_in // groups).transpose(0, 1)   # [G, B*E_bt, C_in/G]
            gs = grad.index_select(1, dst).reshape(-1, groups, c_out // groups).transpose(0, 1)  # [G, B*E_bt, C_out/G]
            term = torch.matmul(gs.transpose(1, 2), xs).reshape(c_out, -1)                   # [C_out, C_in/G]
            per_offset[t] = term if per_offset[t] is None else per_offset[t] + term
    zero = weight.new_zeros(weight.shape[:2])
    return torch.stack([zero if w is None else w for w in per_offset], -1).view_as(weight)


class TargetBlockConv(Function):
    r"""Typed message passing by target blocks: :math:`\mathbf{Y} = \sum_t \mathbf{A}_t \mathbf{X} \mathbf{W}_t^{\top}`.

    Node-wise, :math:`\mathbf{y}_{b,i} = \sum_{(j \to i,\, t)} \mathbf{W}_t \mathbf{x}_{b,j}` for ``x``
    ``[B, N_src, C_in]`` and ``y`` ``[B, N_dst, C_out]``. Bilinear in ``x`` and ``weight``: the
    backward runs the same Function on the reversed edges (:math:`\mathbf{A}_t^{\top}`) with
    the transposed weights, and the ``jvp`` is the map on each tangent.
    """

    @staticmethod
    def forward(x: Tensor, weight: Tensor, graph: Any, groups: int) -> Tensor:
        return run_blocks(x.detach(), graph, weight.detach(), groups)   # out= kernels: no dual tensors

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, ctx.graph, ctx.groups = inputs
        save_bilinear(ctx, x, weight, None)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()                     # the gathers below read rows of it (``sum``'s is expanded)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = target_block_conv(grad, reversed_edges(ctx.graph),
                                       transposed_message_weight(weight, ctx.groups), ctx.groups)
        if ctx.needs_input_grad[1]:
            grad_w = weight_grad(x, grad, ctx.graph, weight, ctx.groups)
        return grad_x, grad_w, None, None

    @staticmethod
    def jvp(ctx, x_t: Tensor, w_t: Tensor, *_) -> Tensor:
        x, weight = ctx.saved_tensors
        terms = [TargetBlockConv.apply(x_t, weight, ctx.graph, ctx.groups) if x_t is not None else None,
                 TargetBlockConv.apply(x, w_t, ctx.graph, ctx.groups) if w_t is not None else None]
        return sum_tangents(terms, (x.size(0), ctx.graph.num_dst_nodes, weight.size(0)), x)


def target_block_conv(x: Tensor, graph: Any, weight: Tensor, groups: int) -> Tensor:
    """``[*, N_src, C_in] -> [*, N_dst, C_out]`` by :class:`TargetBlockConv`, or per offset in plain ops.

    :func:`per_offset_conv` runs instead under ``torch.func`` transforms, compile and tracing
    (:func:`~gridgnn.nn._transforms.plain_ops`), for complex dtypes (``embedding_bag`` has no
    complex kernel) and for empty graphs, batches or channels.
    """
    if plain_ops(x, weight) or x.is_complex() or not (graph.num_edges and x.numel() and weight.numel()):
        return per_offset_conv(x, graph, weight, groups)
    lead, (n_src, c_in) = x.shape[:-2], x.shape[-2:]
    out = TargetBlockConv.apply(x.reshape(-1, n_src, c_in), weight, graph, groups)
    return out.view(*lead, *out.shape[-2:])
