"""The general path's choice of order for one layer call on a graph (:func:`general_conv`).

* **transform first** (:func:`~gridgnn.nn._offset_plan.transform_first_conv`) for ``groups = 1``
  when its GEMM rows (active sources x offsets) are at most
  :data:`~gridgnn.nn._offset_plan.TRANSFORM_FIRST_MAX_ROWS_PER_EDGE` times the edges: complete
  grids and masked input pixels, where every active source sends about ``K`` edges;
* **per offset by target blocks** (:func:`~gridgnn.nn._target_blocks.target_block_conv`)
  otherwise: sparse pixel and voxel sets, strides, masked outputs, grouped and depthwise layers.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor

from ._offset_plan import TRANSFORM_FIRST_MAX_ROWS_PER_EDGE, transform_first_conv, transform_plan
from ._target_blocks import target_block_conv


def general_conv(x: Tensor, graph: Any, weight: Tensor, groups: int) -> Tensor:
    """``[*, N_src, C_in] -> [*, N_dst, C_out]`` on a GridGraph or typed edges, in the order with fewer wasted MACs."""
    if groups == 1 and graph.num_edges:
        plan = transform_plan(graph)
        if plan.gather.num_rows <= TRANSFORM_FIRST_MAX_ROWS_PER_EDGE * graph.num_edges:
            return transform_first_conv(x, graph, weight, groups)
    return target_block_conv(x, graph, weight, groups)
