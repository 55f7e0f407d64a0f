"""The k x k convolution as message passing over offset-typed edges."""
from __future__ import annotations

import math
import warnings
from typing import Any, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing

from .._checks import check_edges, check_groups, check_node_features, check_path, positive_int
from ..errors import GridTypeError, GridValueError
from ..geometry import ntuple
from ..graph import GridGraph
from ..sparse import SparseGridGraph
from ._autocast import autocast_like_conv
from ._gemm import linear
from ._init import conv_parameters, copy_conv_parameters, reset_conv_parameters
from ._offset_plan import typed_edges
from .functional import grid_conv, transposed_message_weight


def _count(n: Any) -> Optional[int]:
    """A node count as ``size`` may give it: None, an int, or a batch's per-graph counts (a tensor, summed)."""
    if n is None or isinstance(n, int):
        return n
    if isinstance(n, Tensor):
        return int(n.sum())
    return positive_int(n, "size entry", minimum=0)


def _bipartite(x: Any, size: Optional[Tuple[Any, Any]]) -> Tuple[Tensor, Optional[Tuple[Optional[int], ...]]]:
    """PyG's bipartite ``x=(x_src, x_dst)`` and ``size`` forms as ``(x_src, (N_src, N_dst))``."""
    if size is not None:
        if len(size) != 2:
            raise GridValueError(f"size must be (num_src_nodes, num_dst_nodes), got {size!r}")
        size = (_count(size[0]), _count(size[1]))
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise GridValueError(f"x must be node features or PyG's pair (x_src, x_dst), got {len(x)} tensors")
        x, x_dst = x
        if x_dst is not None:
            num_dst = x_dst.size(-2)
            if size is not None and size[1] is not None and size[1] != num_dst:
                raise GridValueError(f"size[1]={size[1]} but x_dst has {num_dst} nodes")
            size = (None if size is None else size[0], num_dst)
    return x, size


class GridConv(MessagePassing):
    r"""Convolution as relational message passing: one weight matrix per kernel offset.

    Every edge :math:`j \to i` carries a type :math:`t` (its kernel offset), and
    node :math:`i` sums the messages :math:`\mathbf{W}_t \mathbf{x}_j` of its
    incoming edges, as in R-GCN (`Schlichtkrull et al., 2018
    <https://arxiv.org/abs/1703.06103>`_) with sum aggregation and no
    normalisation or root weight:

    .. math::
        \mathbf{Y} = \mathbf{1}\mathbf{b}^{\top}
            + \sum_{t=0}^{K-1} \mathbf{A}_t \, \mathbf{X} \, \mathbf{W}_t^{\top}
        \qquad
        \mathbf{y}_i = \mathbf{b} + \sum_{t} \sum_{j \in \mathcal{N}_t(i)} \mathbf{W}_t \mathbf{x}_j

    with :math:`\mathbf{A}_t` the adjacency of type-:math:`t` edges and
    :math:`\mathbf{W}_t` = ``weight.flatten(2)[..., t]``. On the complete graph
    of :func:`gridgnn.grid_graph` this is exactly ``nn.Conv{1,2,3}d`` with that
    geometry; on any other typed graph (masked grids, sparse pixel sets, tori,
    edges dropped after :meth:`~gridgnn.GridGraph.to_pyg`) it is the same rule applied
    to the edges that exist. With ``groups = g``, each :math:`\mathbf{W}_t` is
    block-diagonal over ``g`` channel blocks (``g = in_channels``: depthwise).

    Execution paths (``path``): ``"general"`` works on any typed graph. On a
    :class:`~gridgnn.GridGraph` it plans once per graph (cached on it) and runs either,
    per offset, gather -> GEMM with :math:`\mathbf{W}_t` -> scatter-add (one
    message per edge), or one GEMM transforming every active source by every
    :math:`\mathbf{W}_t` followed by a fused per-target gather-sum; the second
    when it wastes few MACs, i.e. when sources send about ``K`` edges each
    (complete grids, masked inputs; ``gridgnn.nn._offset_plan``). On raw ``edge_index``
    (a PyG batch) it runs the same planned orders, the plan kept per edge tensor;
    when there are fewer targets than sources it aggregates per (target, offset)
    first through :class:`~torch_geometric.nn.conv.MessagePassing`'s ``propagate``
    and transforms after. On a :class:`~gridgnn.SparseGridGraph` (active sites only)
    it runs the general path. ``"dense"`` runs complete grids with shifted slices or gathered
    windows and GEMMs, or, depthwise, one per-channel product per offset on clipped views
    (``gridgnn.nn._dense``). ``"auto"`` takes the dense path whenever the graph is a
    complete :class:`~gridgnn.GridGraph`.

    Args:
        in_channels (int): input node channels :math:`C_{in}`.
        out_channels (int): output node channels :math:`C_{out}`.
        kernel_size (int or tuple): the kernel window; ``K = prod(kernel_size)``
            edge types. An int means a ``dim``-dimensional square kernel.
        groups (int, optional): channel blocks, dividing both channel counts. (default: ``1``)
        bias (bool, optional): learn an additive bias. (default: ``True``)
        ndim (int, optional): spatial dims an int ``kernel_size`` spans (``dim`` is its
            deprecated name). (default: ``2``)
        path (str, optional): ``"auto"``, ``"dense"`` or ``"general"``. (default: ``"auto"``)
        device, dtype: factory kwargs as in torch.

    Shapes:
        - **input:** node features :math:`(N_{src}, C_{in})` or :math:`(B, N_{src}, C_{in})`,
          and either a :class:`~gridgnn.GridGraph` or ``edge_index`` :math:`(2, E)` with
          ``edge_type`` :math:`(E)` and optional ``size=(N_src, N_dst)`` (node counts, PyG's
          convention for ``forward``; everywhere else in gridgnn ``size`` is a spatial shape)
        - **output:** :math:`(N_{dst}, C_{out})` or :math:`(B, N_{dst}, C_{out})`
        - **weight:** :math:`(C_{out}, C_{in}/g, *\text{kernel\_size})`, torch's conv layout

    Example:
        >>> g = gridgnn.grid_graph((8, 8), 3, padding=1)
        >>> conv = GridConv(4, 6, 3)
        >>> conv(torch.randn(2, 64, 4), g).shape
        torch.Size([2, 64, 6])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Union[int, Tuple[int, ...]],
                 groups: int = 1, bias: bool = True, *, ndim: int = 2, path: str = "auto",
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None,
                 dim: Optional[int] = None):
        super().__init__(aggr="add", node_dim=-2)
        if dim is not None:
            warnings.warn("GridConv(dim=...) is now GridConv(ndim=...) (spatial dims, as GridGraph.ndim); "
                          "dim goes in 0.3", DeprecationWarning, stacklevel=2)
            ndim = dim
        check_groups(in_channels, out_channels, groups)
        check_path(path)
        kernel_size = ntuple(kernel_size, ndim if isinstance(kernel_size, int) else len(kernel_size),
                             "kernel_size")
        if any(k < 1 for k in kernel_size):
            raise GridValueError(f"kernel_size must be positive, got {kernel_size}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = kernel_size
        self.path = path
        conv_parameters(self, out_channels, in_channels // groups, kernel_size, bias, device, dtype)
        self.reset_parameters()

    @property
    def num_offsets(self) -> int:
        return math.prod(self.kernel_size)

    def reset_parameters(self) -> None:
        reset_conv_parameters(self.weight, self.bias)

    # -- forward -------------------------------------------------------------
    def forward(self, x: Union[Tensor, Tuple[Tensor, Optional[Tensor]]], edge_index: Union[Tensor, GridGraph],
                edge_type: Optional[Tensor] = None, size: Optional[Tuple[Any, Any]] = None) -> Tensor:
        """Run the layer on node features ``x`` over a :class:`~gridgnn.GridGraph` or typed ``edge_index``.

        As PyG's convs, it also takes the bipartite form ``x=(x_src, x_dst)`` (``x_dst`` only
        gives the number of targets; it may be None) and ``size=(N_src, N_dst)``, whose entries
        may be the per-graph counts of a ``DataLoader`` batch (summed).
        """
        x, size = _bipartite(x, size)
        with autocast_like_conv(x, self.weight, self.bias) as (x, weight, bias):
            return self._forward(x, edge_index, edge_type, size, weight, bias)

    def _forward(self, x: Tensor, edge_index: Union[Tensor, GridGraph], edge_type: Optional[Tensor],
                 size: Optional[Tuple[int, int]], weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        name = type(self).__name__
        check_node_features(x, self.in_channels, weight, name)
        if isinstance(edge_index, (GridGraph, SparseGridGraph)):
            graph = edge_index
            self._check_graph(x, graph, edge_type, size)
            if self.path == "dense" and not graph.is_complete:
                raise GridValueError(f"{name}: path='dense' needs a complete GridGraph, got a masked one; use "
                                     "path='general' or 'auto'")
            return grid_conv(x, graph, weight, bias, self.groups, self.path)
        else:
            if edge_type is None:
                raise GridValueError(f"{name}: pass edge_type (the kernel offset of each edge) with edge_index, "
                                     "or pass a GridGraph")
            if self.path == "dense":
                raise GridValueError(f"{name}: path='dense' needs a complete GridGraph; raw edge_index runs on "
                                     "path='general'")
            num_src = x.size(-2)
            num_dst = num_src if size is None or size[1] is None else size[1]
            if size is not None and size[0] is not None and size[0] != num_src:
                raise GridValueError(f"{name}: size[0]={size[0]} but x has {num_src} nodes")
            check_edges(x, edge_index, edge_type, self.num_offsets, num_src, num_dst, name)
            size = (num_src, num_dst)
        return self._propagate_typed(x, edge_index, edge_type, size, weight, bias)

    def _check_graph(self, x: Tensor, graph: GridGraph, edge_type: Optional[Tensor],
                     size: Optional[Tuple[int, int]]) -> None:
        name = type(self).__name__
        counts = (graph.num_src_nodes, graph.num_dst_nodes)
        if edge_type is not None or (size is not None and any(n is not None and n != c for n, c in zip(size, counts))):
            raise GridValueError(f"{name}: a GridGraph carries its own edge types and node counts {counts}; pass "
                                 f"only (x, graph), got edge_type={'given' if edge_type is not None else None}, "
                                 f"size={size}")
        if graph.kernel_size != self.kernel_size:
            hint = (f"; an int kernel_size means a {len(self.kernel_size)}-D kernel, pass ndim={graph.ndim} (or "
                    f"kernel_size={graph.kernel_size}) for this graph" if graph.ndim != len(self.kernel_size) else "")
            raise GridValueError(f"{name}: the graph was built for kernel_size={graph.kernel_size} but the layer "
                                 f"has kernel_size={self.kernel_size}; build it with grid_graph(size, "
                                 f"{self.kernel_size}, ...){hint}")
        if x.size(-2) != graph.num_src_nodes:
            raise GridValueError(f"{name}: x has {x.size(-2)} nodes but the graph has {graph.num_src_nodes} source "
                                 f"nodes (in_size={graph.in_size}); build the graph for this input, e.g. "
                                 "gridgnn.grid_graph(image.shape[2:], ...)")
        if graph.device != x.device:
            raise GridValueError(f"{name}: the graph is on {graph.device} but x is on {x.device}; use "
                                 f"graph.to('{x.device}') or build it with device='{x.device}'")

    def _propagate_typed(self, x: Tensor, edge_index: Tensor, edge_type: Tensor, size: Tuple[int, int],
                         weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        """General path on raw typed edges.

        With fewer targets than sources (``N_dst C_in < N_src C_out``) it aggregates ``x_j`` per
        (target, offset) through PyG's ``propagate`` and transforms once; otherwise it runs the
        planned general path of GridGraphs (``gridgnn.nn._offset_plan``), its plan kept per
        edge tensor, so a PyG ``DataLoader`` batch runs like a GridGraph.
        """
        num_src, num_dst = size
        num_k = self.num_offsets
        if num_dst * self.in_channels < num_src * self.out_channels:
            src, dst = edge_index.long()
            slots = torch.stack([src, dst * num_k + edge_type.long()])
            agg = self.propagate(slots, x=x, size=(num_src, num_dst * num_k))    # [*, N_dst*K, C_in]
            out = self._window_transform(agg.unflatten(-2, (num_dst, num_k)), weight)    # [*, N_dst, C_out]
            return out if bias is None else out + bias
        edges = typed_edges(edge_index, edge_type, num_src, num_dst, num_k)
        return grid_conv(x, edges, weight, bias, self.groups, "general")

    def message(self, x_j: Tensor) -> Tensor:
        return x_j

    def _window_transform(self, agg: Tensor, weight: Tensor) -> Tensor:
        """``sum_t W_t a_{n,t}`` for aggregated windows: ``[*, N, K, C_in] -> [*, N, C_out]``."""
        g, k = self.groups, self.num_offsets
        w = weight.flatten(2)                                                # [C_out, C_in/G, K]
        if g == 1:
            return linear(agg.flatten(-2), w.permute(0, 2, 1).reshape(self.out_channels, k * self.in_channels))
        wg = w.view(g, self.out_channels // g, -1, k)                             # [G, C_out/G, C_in/G, K]
        y = torch.einsum("...nkgi,goik->...ngo", agg.unflatten(-1, (g, -1)), wg)  # [*, N, G, C_out/G]
        return y.flatten(-2)

    # -- construction from torch -------------------------------------------------
    @classmethod
    def from_conv(cls, conv: torch.nn.Module, **kwargs) -> "GridConv":
        r"""A GridConv with the weights of ``conv`` (``nn.Conv1d/2d/3d`` or ``nn.ConvTranspose1d/2d/3d``).

        The conv's stride, padding and dilation live in the graph, not the layer:
        run it on ``gridgnn.graph_for(conv, size)``. For a transposed conv that graph is
        the conv's reversed (:meth:`~gridgnn.GridGraph.transpose`), and the layer's
        :math:`\mathbf{W}_t` are the transposed conv's per-offset blocks transposed.
        """
        if not isinstance(conv, torch.nn.modules.conv._ConvNd):
            raise GridTypeError(f"{cls.__name__}.from_conv expects an nn.Conv1d/2d/3d or nn.ConvTranspose1d/2d/3d, "
                                f"got {type(conv).__name__}")
        weight = transposed_message_weight(conv.weight, conv.groups) if conv.transposed else conv.weight
        layer = cls(conv.in_channels, conv.out_channels, tuple(conv.kernel_size), conv.groups,
                    conv.bias is not None, device=weight.device, dtype=weight.dtype, **kwargs)
        return copy_conv_parameters(layer, conv, weight)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.path != "auto":
            s += f", path='{self.path}'"
        return s
