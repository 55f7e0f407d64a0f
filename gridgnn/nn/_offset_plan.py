"""Execution plans for the general path of :class:`GridConv` on a :class:`~gridgnn.GridGraph`.

Message passing over typed edges, ``y_i = b + sum_{(j -> i, t)} W_t x_j``, is
computed in one of two orders, both planned once per graph and kept in ``graph.plans``:

* **per offset**, blocked by targets (:mod:`gridgnn.nn._target_blocks`): gather the
  sources of the type-``t`` edges, one GEMM with ``W_t``, sum into the targets.
  Exactly ``E * C_in/g * C_out`` MACs (one message per edge, whatever the stride or
  mask).
* **transform first** (:func:`transform_first_conv`): one GEMM computes ``W_t
  x_j`` for every *active* source ``j`` (one with at least one out-edge) and
  every offset ``t``; each target then sums the rows its edges name, a fused
  gather-sum (:class:`GatherSum`, ``embedding_bag``'s CSR kernel). It costs
  ``N_active * K * C_in * C_out`` MACs, which equals the per-offset count when
  every active source sends ``K`` edges (complete grids, masked *input* pixels)
  and exceeds it when sources send fewer (strides, masked outputs).

:func:`gridgnn.nn._general.general_conv` chooses between them.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Callable, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import index_sort
from torch_geometric.utils.sparse import index2ptr, ptr2index

from ..graph import GridGraph, on_batched_nodes
from ._function import Function
from ._gemm import linear
from ._transforms import plain_ops

#: The transform-first order runs when its GEMM rows (active sources x offsets)
#: are at most this many times the edges: its one wide GEMM and fused gather-sum
#: run faster per MAC than K narrow GEMMs with a gather and a scatter each.
TRANSFORM_FIRST_MAX_ROWS_PER_EDGE = 1.25


def cached_plan(graph: GridGraph, name: str, build: Callable[[], Any]) -> Any:
    """``graph.plans[name]``, built by ``build()`` once, and again if the edge tensors were edited in place."""
    entry = graph.plans.get(name)
    if torch.compiler.is_compiling():                         # versions are not traceable: use the eager plan
        return entry[1] if entry is not None else build()
    versions = (graph.edge_index._version, graph.edge_type._version)
    if entry is None or entry[0] != versions:
        entry = graph.plans[name] = (versions, build())
    return entry[1]


def node_transform(x: Tensor, weight: Tensor, groups: int) -> Tensor:
    """``W_t x_n`` for every node ``n`` and offset ``t``: ``[*, N, C_in] -> [*, N, K, C_out]``."""
    c_out, k = weight.size(0), weight[0, 0].numel()
    w = weight.flatten(2)                                                        # [C_out, C_in/G, K]
    if groups == 1:
        y = linear(x, w.permute(2, 0, 1).reshape(k * c_out, x.size(-1)))        # [*, N, K*C_out]
        return y.unflatten(-1, (k, c_out))
    wg = w.view(groups, c_out // groups, -1, k)                                  # [G, C_out/G, C_in/G, K]
    y = torch.einsum("...ngi,goik->...nkgo", x.unflatten(-1, (groups, -1)), wg)  # [*, N, K, G, C_out/G]
    return y.flatten(-2)


@dataclass(frozen=True)
class Segments:
    """A 0/1 matrix ``A`` ``[num_bags, num_rows]`` in CSR form: bag ``i`` sums rows ``index[ptr[i]:ptr[i+1]]``."""

    index: Tensor                                                                # [nnz]
    ptr: Tensor                                                                  # [num_bags + 1]
    num_rows: int

    @classmethod
    def from_pairs(cls, bag: Tensor, row: Tensor, num_bags: int, num_rows: int) -> "Segments":
        """CSR of the pairs ``(bag[e], row[e])`` (PyG's ``index_sort`` and ``index2ptr``, as in ``RGCNConv``)."""
        sorted_bag, order = index_sort(bag, max_value=num_bags, stable=True)
        return cls(row[order], index2ptr(sorted_bag, num_bags), num_rows)

    def batched(self, batch: int) -> Tuple[Tensor, Tensor]:
        """``(index, offsets)`` of the block-diagonal ``I_batch (x) A`` for ``embedding_bag``."""
        if batch == 1:
            return self.index, self.ptr
        nnz = self.index.numel()
        shift = torch.arange(batch, device=self.index.device)[:, None]           # [B, 1]
        index = (self.index + shift * self.num_rows).flatten()                   # [B*nnz]
        offsets = torch.cat([(self.ptr[:-1] + shift * nnz).flatten(), self.ptr.new_full((1,), batch * nnz)])
        return index, offsets

    def apply(self, y: Tensor) -> Tensor:
        """``A y`` per batch item: ``[B, num_rows, C] -> [B, num_bags, C]`` (one fused gather-sum)."""
        index, offsets = self.batched(y.size(0))
        out = F.embedding_bag(index, y.reshape(-1, y.size(-1)), offsets, mode="sum", include_last_offset=True)
        return out.view(y.size(0), -1, y.size(-1))


class GatherSum(Function):
    r"""``out = A y`` with ``A`` a 0/1 :class:`Segments` matrix; the backward is ``A^T g``, the same op transposed.

    Node-wise, :math:`\mathbf{out}_{b,i} = \sum_{r \in \mathrm{bag}(i)} \mathbf{y}_{b,r}` for
    ``y`` ``[B, num_rows, C]`` and ``out`` ``[B, num_bags, C]``.

    Written as its own adjoint pair, so gradients of every order exist (``embedding_bag``'s
    own backward is not differentiable) and both directions run the fused CSR kernel; linear,
    so the ``jvp`` is the op on the tangent.
    """

    @staticmethod
    def forward(y: Tensor, a: Segments, a_t: Segments) -> Tensor:
        return a.apply(y)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.segments = inputs[1:]

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, a_t = ctx.segments
        return GatherSum.apply(grad, a_t, a), None, None

    @staticmethod
    def jvp(ctx, y_t: Tensor, *_) -> Tensor:
        return ctx.segments[0].apply(y_t)


def gather_sum(y: Tensor, a: Segments, a_t: Segments) -> Tensor:
    """:class:`GatherSum`, or the same sum by ``index_add`` (plain torch ops: torch.func, compile, complex)."""
    if not (plain_ops(y) or y.is_complex()):                                   # embedding_bag has no complex kernel
        return GatherSum.apply(y, a, a_t)
    bag = ptr2index(a.ptr, a.index.numel())                                      # [nnz] bag of each entry
    return y.new_zeros(y.size(0), a.ptr.numel() - 1, y.size(-1)).index_add(1, bag, y.index_select(1, a.index))


@dataclass(frozen=True)
class TransformPlan:
    """Active sources and the (target <- source, offset) sums of the transform-first order."""

    active: Tensor            # [N_active] source nodes with an out-edge
    gather: Segments          # [N_dst, N_active*K]: target i sums rows (j, t) of its in-edges
    scatter: Segments         # its transpose, for the backward


def transform_plan(graph: GridGraph) -> TransformPlan:
    """The :class:`TransformPlan` of ``graph`` (cached on it; one host sync when built)."""
    def build() -> TransformPlan:
        src, dst = graph.edge_index
        k = graph.num_offsets
        is_active = torch.zeros(graph.num_src_nodes, dtype=torch.bool, device=graph.device)
        is_active[src] = True
        active = is_active.nonzero().flatten()
        num_rows = active.numel() * k                                              # the sync
        position = torch.cumsum(is_active, 0) - 1                                  # node -> its active rank
        row = position[src] * k + graph.edge_type                                  # [E] rows of y [N_active*K]
        return TransformPlan(active, Segments.from_pairs(dst, row, graph.num_dst_nodes, num_rows),
                             Segments.from_pairs(row, dst, num_rows, graph.num_dst_nodes))

    return cached_plan(graph, "transform", build)


def transform_first_conv(x: Tensor, graph: GridGraph, weight: Tensor, groups: int) -> Tensor:
    """``[*, N_src, C_in] -> [*, N_dst, C_out]``: one GEMM over active sources x offsets, then a fused gather-sum."""
    plan = transform_plan(graph)

    def run(batched: Tensor) -> Tensor:                                          # [B, N_src, C_in]
        if plan.active.numel() < graph.num_src_nodes:                            # skip inactive sources
            batched = batched.index_select(1, plan.active)                       # [B, N_active, C_in]
        y = node_transform(batched, weight, groups).flatten(1, 2)                # [B, N_active*K, C_out]
        return gather_sum(y, plan.gather, plan.scatter)                     # [B, N_dst, C_out]

    return on_batched_nodes(run, x)


def transposed_message_weight(weight: Tensor, groups: int) -> Tensor:
    r"""A transposed conv's weight ``[C_in, C_out/g, *k]`` as per-edge messages ``[C_out, C_in/g, *k]``.

    The message along a reversed edge of type ``t`` is :math:`\mathbf{W}_t^{\top} \mathbf{x}`,
    block by block for grouped layers.

    Example:
        >>> from gridgnn.nn.functional import transposed_message_weight
        >>> transposed_message_weight(torch.randn(4, 3, 2, 2), groups=1).shape   # [C_in, C_out, k, k] in
        torch.Size([3, 4, 2, 2])
    """
    c_in, c_out_g, kernel = weight.size(0), weight.size(1), weight.shape[2:]
    blocks = weight.reshape(groups, c_in // groups, c_out_g, *kernel)               # [G, C_in/G, C_out/G, *k]
    return blocks.transpose(1, 2).reshape(groups * c_out_g, c_in // groups, *kernel)


class TypedEdges:
    """A user's typed edge list seen as a graph by the general path (what a PyG ``DataLoader`` batch gives).

    Holds ``edge_index``, ``edge_type``, the node counts of both sides and the plans built
    from them (:attr:`plans`, as on a GridGraph). :func:`typed_edges` keeps one per edge tensor,
    so a batch's plan is built once however many layers run on it.
    """

    is_complete = False
    transposed = False

    def __init__(self, edge_index: Tensor, edge_type: Tensor, num_src_nodes: int, num_dst_nodes: int,
                 num_offsets: int):
        self.edge_index, self.edge_type = edge_index.long(), edge_type.long()
        self.num_src_nodes, self.num_dst_nodes, self.num_offsets = num_src_nodes, num_dst_nodes, num_offsets
        self.plans: Dict[str, Any] = {}

    num_edges = property(lambda self: self.edge_index.size(1))
    device = property(lambda self: self.edge_index.device)


#: id(edge_index) -> (weak reference to it, what the plan was built from, the TypedEdges); entries leave
#: with their tensor (tensors compare element-wise, so a WeakKeyDictionary cannot key on them)
_TYPED_EDGES: Dict[int, Tuple[Any, tuple, TypedEdges]] = {}


def typed_edges(edge_index: Tensor, edge_type: Tensor, num_src_nodes: int, num_dst_nodes: int,
                num_offsets: int) -> TypedEdges:
    """The :class:`TypedEdges` of these tensors, kept while ``edge_index`` lives and rebuilt if either is edited."""
    key = (edge_index._version, id(edge_type), edge_type._version, num_src_nodes, num_dst_nodes, num_offsets)
    cached = _TYPED_EDGES.get(id(edge_index))
    if cached is None or cached[0]() is not edge_index or cached[1] != key:
        ident = id(edge_index)
        ref = weakref.ref(edge_index, lambda _, ident=ident, table=_TYPED_EDGES: table.pop(ident, None))
        cached = _TYPED_EDGES[ident] = (ref, key, TypedEdges(edge_index, edge_type, num_src_nodes, num_dst_nodes,
                                                             num_offsets))
    return cached[2]
