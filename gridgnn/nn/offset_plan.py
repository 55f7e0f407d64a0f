"""Edges grouped by kernel offset, once per graph, for the general path of :class:`GridConv`.

Message passing over typed edges, ``y_i = b + sum_{(j -> i, t)} W_t x_j``, is
computed offset by offset: gather the sources of the type-``t`` edges, one GEMM
with ``W_t``, scatter-add into the targets. That costs exactly ``E * C_in/g *
C_out`` MACs (one message per edge, whatever the stride or mask) and never holds
more than one offset's messages. The grouping (a stable sort of the edges by
type) is cached on the :class:`~gridgnn.GridGraph`, which is immutable.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor

from ..graph import GridGraph


def offset_groups(graph: GridGraph) -> List[Tuple[int, Tensor, Tensor]]:
    """``[(t, src_t, dst_t), ...]`` for every offset ``t`` with at least one edge (cached on ``graph``)."""
    groups = getattr(graph, "_offset_groups", None)
    if groups is None:
        order = torch.argsort(graph.edge_type, stable=True)
        counts = torch.bincount(graph.edge_type, minlength=graph.num_offsets).tolist()  # one sync per graph
        chunks = graph.edge_index[:, order].split(counts, dim=1)                 # [2, E_t] per offset
        groups = graph._offset_groups = [(t, c[0], c[1]) for t, c in enumerate(chunks) if c.size(1)]
    return groups


def per_offset_conv(x: Tensor, graph: GridGraph, weight: Tensor, groups: int) -> Tensor:
    """``[*, N_src, C_in] -> [*, N_dst, C_out]``: per-offset gather, (grouped) GEMM, scatter-add."""
    c_out, c_in = weight.size(0), x.size(-1)
    w = weight.flatten(2)                                                        # [C_out, C_in/G, K]
    out = x.new_zeros(*x.shape[:-2], graph.num_dst_nodes, c_out)
    for t, src, dst in offset_groups(graph):
        messages = x.index_select(-2, src)                                       # [*, E_t, C_in]
        if groups == 1:
            messages = messages @ w[..., t].t()                                  # [*, E_t, C_out]
        elif groups == c_in == c_out:                                            # depthwise
            messages = messages * w[:, 0, t]
        else:
            wg = w[..., t].view(groups, c_out // groups, c_in // groups)         # [G, C_out/G, C_in/G]
            messages = torch.einsum("...gi,goi->...go", messages.unflatten(-1, (groups, -1)), wg).flatten(-2)
        out.index_add_(-2, dst, messages)
    return out
