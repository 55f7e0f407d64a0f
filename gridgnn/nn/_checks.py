"""Input validation shared by the graph layers: errors that name the argument and the fix."""
from __future__ import annotations

import torch
from torch import Tensor


def is_compiling() -> bool:
    return torch.compiler.is_compiling()


def check_node_features(x: Tensor, in_channels: int, weight: Tensor, layer: str, ranks=(2, 3)) -> None:
    """Node features ``x`` must be floating, ``[N, C]`` or ``[B, N, C]``, on the weight's device and dtype.

    ``C == in_channels``; any rank if ``ranks`` is None.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: x must be a tensor of node features, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{layer}: x must be a floating-point tensor, got dtype {x.dtype}; "
                        f"convert it with x.to({weight.dtype})")
    if ranks is not None and x.dim() not in ranks or x.dim() == 0:
        raise ValueError(f"{layer}: x must be node features [N, C] or [B, N, C], got shape {tuple(x.shape)}; "
                         "turn an image into nodes with gridgnn.to_nodes(x)")
    if x.size(-1) != in_channels:
        raise ValueError(f"{layer}: x has {x.size(-1)} channels on its last axis but the layer expects "
                         f"in_channels={in_channels}")
    check_like_weight(x, weight, layer)


def check_like_weight(x: Tensor, weight: Tensor, layer: str) -> None:
    if x.device != weight.device:
        raise ValueError(f"{layer}: input is on {x.device} but the layer's weight is on {weight.device}; "
                         f"move one of them, e.g. layer.to('{x.device}')")
    if x.dtype != weight.dtype:
        raise TypeError(f"{layer}: input has dtype {x.dtype} but the layer's weight has {weight.dtype}; "
                        f"cast one of them, e.g. layer.to({x.dtype})")


def check_edges(x: Tensor, edge_index: Tensor, edge_type: Tensor, num_offsets: int,
                num_src: int, num_dst: int, layer: str) -> None:
    """Shapes, dtypes, devices and index ranges of user-given typed edges."""
    for name, t, dims in (("edge_index", edge_index, 2), ("edge_type", edge_type, 1)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{layer}: {name} must be a tensor, got {type(t).__name__}")
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{layer}: {name} must be an integer tensor (torch.long), got {t.dtype}")
        if t.dim() != dims:
            raise ValueError(f"{layer}: {name} must have {dims} dims, got shape {tuple(t.shape)}")
        if t.device != x.device:
            raise ValueError(f"{layer}: {name} is on {t.device} but x is on {x.device}; put node and edge "
                             f"tensors on one device, e.g. {name}.to('{x.device}')")
    if edge_index.size(0) != 2 or edge_type.size(0) != edge_index.size(1):
        raise ValueError(f"{layer}: edge_index must be [2, E] and edge_type [E], got {tuple(edge_index.shape)} "
                         f"and {tuple(edge_type.shape)}")
    if edge_type.numel() == 0 or is_compiling():
        return
    # one host sync for all range checks; GridGraph inputs skip this (validated when built)
    t_min, t_max, s_min, s_max, d_min, d_max = torch.stack([
        edge_type.min(), edge_type.max(), edge_index[0].min(), edge_index[0].max(),
        edge_index[1].min(), edge_index[1].max()]).tolist()
    if t_min < 0 or t_max >= num_offsets:
        raise ValueError(f"{layer}: edge_type must lie in [0, {num_offsets}) (one type per kernel offset), "
                         f"got values in [{t_min}, {t_max}]")
    if s_min < 0 or s_max >= num_src:
        raise ValueError(f"{layer}: source indices edge_index[0] must lie in [0, {num_src}) (the nodes of x), "
                         f"got [{s_min}, {s_max}]")
    if d_min < 0 or d_max >= num_dst:
        raise ValueError(f"{layer}: target indices edge_index[1] must lie in [0, {num_dst}), got "
                         f"[{d_min}, {d_max}]; pass size=(num_src_nodes, num_dst_nodes) for bipartite graphs")
