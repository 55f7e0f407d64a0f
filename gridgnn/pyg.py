"""PyTorch Geometric data for grid graphs whose source and target pixel sets differ, batched correctly."""
from __future__ import annotations

from typing import Any

import torch
from torch_geometric.data import Data

__all__ = ["GridData"]


class GridData(Data):
    r"""A ``torch_geometric.data.Data`` of a grid graph that PyG's ``DataLoader`` batches correctly.

    A strided, unpadded or transposed conv reads one pixel set and writes another: row 0 of
    ``edge_index`` indexes the ``num_src_nodes`` input pixels, row 1 the ``num_dst_nodes`` output
    pixels. When graphs are batched, each row is shifted by its own side's count (PyG's bipartite
    ``__inc__``), so every edge stays inside its image. ``num_nodes`` (and so ``batch`` and the
    node features ``x`` you attach) counts the source side; ``dst_pos`` holds the targets' coordinates.
    In a batch, ``num_src_nodes`` and ``num_dst_nodes`` are per-graph counts;
    :class:`~gridgnn.nn.GridConv` accepts them as ``size`` (it sums them).

    Example:
        >>> from torch_geometric.loader import DataLoader
        >>> conv = nn.Conv2d(2, 3, 3, stride=2)
        >>> images = [torch.randn(2, 7, 7), torch.randn(2, 5, 9)]
        >>> datas = []
        >>> for image in images:
        ...     data = gg.graph_for(conv, image.shape[1:]).to_pyg()
        ...     data.x = gg.to_nodes(image[None])[0]                       # [N_src, C] source features
        ...     datas.append(data)
        >>> batch = next(iter(DataLoader(datas, batch_size=2)))
        >>> layer = GridConv.from_conv(conv)
        >>> out = layer(batch.x, batch.edge_index, batch.edge_type, size=(batch.num_src_nodes, batch.num_dst_nodes))
        >>> first, second = out.split(batch.num_dst_nodes.tolist())
        >>> torch.allclose(gg.to_image(second[None], (2, 4)), conv(images[1][None]), atol=1e-5)
        True
    """

    def __inc__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key == "edge_index" and "num_dst_nodes" in self:
            return torch.tensor([[self.num_src_nodes], [self.num_dst_nodes]])
        return super().__inc__(key, value, *args, **kwargs)
