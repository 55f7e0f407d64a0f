"""Pooling as aggregation over grid-graph neighbourhoods."""
from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.utils import scatter

from ..geometry import IntOrTuple, Padding
from ..graph import grid_graph


class GridMaxPool(nn.Module):
    r"""Max pooling as message passing with max aggregation on the grid graph.

    .. math::
        \mathbf{y}_i = \max_{j \in \mathcal{N}(i)} \mathbf{x}_j

    where :math:`\mathcal{N}(i)` are the real pixels under the pooling window of
    output :math:`i` (zero padding drops edges, which is torch's :math:`-\infty`
    padding). Equals ``nn.MaxPool{n}d(kernel_size, stride, padding)`` on the image.

    Args:
        kernel_size, stride (default: ``kernel_size``), padding: as ``nn.MaxPool2d``.

    Shapes:
        - **input:** node features ``[B, N_in, C]`` of a grid of spatial ``size``
        - **output:** ``[B, N_out, C]``; :meth:`out_size` gives the new grid
    """

    def __init__(self, kernel_size: IntOrTuple, stride=None, padding: Padding = 0):
        super().__init__()
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride

    def graph(self, size, device=None):
        return grid_graph(tuple(size), self.kernel_size, self.stride, self.padding, device=device)

    def out_size(self, size):
        return self.graph(size).out_size

    def forward(self, x: Tensor, size) -> Tensor:
        g = self.graph(size, x.device)
        src, dst = g.edge_index
        return scatter(x.index_select(-2, src), dst, dim=-2, dim_size=g.num_dst_nodes, reduce="max")

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

