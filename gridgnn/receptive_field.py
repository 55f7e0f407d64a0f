"""Receptive fields over pixels: which input pixels an output position depends on through grid graphs."""
from __future__ import annotations

import math
from typing import Sequence, Tuple, Union

import torch
from torch import Tensor

from .errors import GridValueError

__all__ = ["receptive_field"]


def _node_index(position: Union[int, Sequence[int]], size: Tuple[int, ...]) -> int:
    """The row-major node index of ``position`` (an index or coordinates) on a grid of ``size``."""
    if isinstance(position, int) and not isinstance(position, bool):
        if not 0 <= position < math.prod(size):
            raise GridValueError(f"position {position} is outside the {math.prod(size)} output nodes of size {size}")
        return position
    coords = tuple(int(c) for c in position)
    if len(coords) != len(size) or any(not 0 <= c < n for c, n in zip(coords, size)):
        raise GridValueError(f"position {tuple(position)} is not a coordinate of the output grid of size {size}")
    return sum(c * math.prod(size[d + 1:]) for d, c in enumerate(coords))


def receptive_field(graphs: Sequence, position: Union[int, Sequence[int]]) -> Tensor:
    """Input pixels an output position depends on, through a stack of grid graphs.

    Args:
        graphs: the :class:`~gridgnn.GridGraph` of each layer, first layer first
            (each layer's input is the previous layer's output).
        position: the output node (int) or its coordinates in the last graph's ``out_size``.

    Returns:
        BoolTensor shaped like the first graph's ``in_size``. A 1x1 layer's graph
        maps each node to itself, so it never grows the field.

    Example:
        >>> graphs = [gg.grid_graph((8, 8), 3, padding=1), gg.grid_graph((8, 8), 3, padding=1)]
        >>> int(gg.receptive_field(graphs, (4, 4)).sum())        # a 5x5 window after two 3x3 convs
        25
    """
    if not graphs:
        raise GridValueError("receptive_field needs at least one graph")
    for i, (prev, nxt) in enumerate(zip(graphs, graphs[1:])):
        if prev.out_size != nxt.in_size:
            raise GridValueError(f"graph {i} outputs {prev.out_size} but graph {i + 1} reads {nxt.in_size}")
    last = graphs[-1]
    index = _node_index(position, last.out_size)
    mask = torch.zeros(last.num_dst_nodes, dtype=torch.bool, device=last.device)
    mask[index] = True
    for g in reversed(graphs):
        src, dst = g.edge_index
        prev = torch.zeros(g.num_src_nodes, dtype=torch.bool, device=g.device)
        prev[src[mask[dst]]] = True
        mask = prev
    return mask.view(graphs[0].in_size)
