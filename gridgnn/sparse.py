r"""Sparse grid graphs: only the active sites (pixels, voxels) are nodes.

Images and volumes where most sites are empty (pen strokes, masks, occupancy
voxels) are a set of integer coordinates with features. A conv on the
zero-filled grid only ever reads active sites, so its grid graph restricted to
them is the whole computation: an edge :math:`j \to i` of type :math:`t`
wherever output site :math:`i` reads active input site :math:`j` through kernel
offset :math:`t` (the "kernel map" of sparse conv engines). Edge types are the
offset ids of :func:`gridgnn.grid_graph`, so the same :class:`~gridgnn.nn.GridConv`
weights (and ``GridConv.from_conv``) apply.

Edges are built from the coordinates alone, in :math:`O(M K \log M)` (linearised
keys, sorted once, looked up with ``searchsorted``), on the coordinates' device;
nothing of the full grid's size is allocated.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor

from ._types import Device, SpatialSize
from .errors import GridTypeError, GridValueError
from .geometry import IntOrTuple, kernel_indices, ntuple, resolve_padding
from .graph import _drawing_order

__all__ = ["SparseGridGraph", "sparse_grid_graph", "to_sparse", "to_dense"]


class SparseGridGraph:
    r"""The typed, directed graph of a conv restricted to active sites.

    Node ``j`` is input site ``j`` (row ``j`` of the coordinates), node ``i`` output
    site ``i`` (row ``i`` of ``out_coords``). An edge ``j -> i`` of type ``t`` means
    "output site ``i`` reads input site ``j`` through kernel offset ``t``", so

    .. math::
        \mathbf{Y} = \sum_t \mathbf{A}_t \mathbf{X} \mathbf{W}_t^{\top}
        \qquad
        \mathbf{y}_i = \sum_{(j \to i,\, t)} \mathbf{W}_t \mathbf{x}_j

    equals torch's conv of the zero-filled grid, read at the output sites.

    Attributes:
        edge_index (LongTensor ``[2, E]``): row 0 input site, row 1 output site.
        edge_type (LongTensor ``[E]``): kernel offset id (row-major over the window).
        coords, batch: the input sites ``[M, D]`` and their samples ``[M]`` (or None).
        out_coords, out_batch: the output sites ``[M_out, D]`` and their samples.
        in_size, out_size: the spatial sizes the input and output coordinates live in.
        kernel_size (tuple): the kernel; ``num_offsets = prod(kernel_size)`` edge types.
        transposed (bool): the reversed graph (:meth:`transpose`).
        plans (dict): execution plans the layers derive from the edges, built once.

    Example:
        >>> coords = torch.tensor([[0, 0], [0, 1], [3, 3]])
        >>> g = gg.sparse_grid_graph(coords, 3, padding=1, submanifold=True)
        >>> g.num_src_nodes, g.num_dst_nodes, g.num_edges       # (0,0) and (0,1) see each other
        (3, 3, 5)
    """

    is_complete = False

    def __init__(self, edge_index: Tensor, edge_type: Tensor, coords: Tensor, batch: Optional[Tensor],
                 out_coords: Tensor, out_batch: Optional[Tensor], in_size: Tuple[int, ...],
                 out_size: Tuple[int, ...], kernel_size: Tuple[int, ...], transposed: bool = False):
        self.edge_index, self.edge_type = edge_index, edge_type
        self.coords, self.batch = coords, batch
        self.out_coords, self.out_batch = out_coords, out_batch
        self.in_size, self.out_size = in_size, out_size
        self.kernel_size = kernel_size
        self.transposed = transposed
        self.plans: Dict[str, Any] = {}

    ndim = property(lambda self: len(self.kernel_size), doc="Number of spatial dims.")
    num_offsets = property(lambda self: math.prod(self.kernel_size), doc="Number of edge types.")
    num_src_nodes = property(lambda self: self.coords.size(0), doc="Input sites ``M``.")
    num_dst_nodes = property(lambda self: self.out_coords.size(0), doc="Output sites ``M_out``.")
    num_edges = property(lambda self: self.edge_index.size(1), doc="Number of edges.")
    device = property(lambda self: self.edge_index.device, doc="Where the edge tensors live.")

    def to(self, device: Device) -> "SparseGridGraph":
        """The same graph with its tensors on ``device``."""
        def move(t: Optional[Tensor]) -> Optional[Tensor]:
            return None if t is None else t.to(device)

        return SparseGridGraph(move(self.edge_index), move(self.edge_type), move(self.coords), move(self.batch),
                               move(self.out_coords), move(self.out_batch), self.in_size, self.out_size,
                               self.kernel_size, self.transposed)

    def transpose(self) -> "SparseGridGraph":
        """The reversed graph (edges ``i -> j``, same types): the inverse map, from output sites back to inputs.

        Message passing on it is the transposed conv read at the input sites (the
        decoder half of a sparse U-Net); ``GridConv.from_conv(conv_transpose)`` holds its weights.
        """
        return SparseGridGraph(self.edge_index.flip(0), self.edge_type, self.out_coords, self.out_batch,
                               self.coords, self.batch, self.out_size, self.in_size, self.kernel_size,
                               not self.transposed)

    def to_pyg(self) -> "gridgnn.pyg.GridData":  # noqa: F821
        """A :class:`~gridgnn.pyg.GridData` of this graph (batches correctly in PyG's ``DataLoader``).

        It holds ``edge_index``, ``edge_type``, ``pos`` (input coordinates), ``batch`` and both node
        counts; ``num_nodes`` counts the input sites.
        """
        from .pyg import GridData

        data = GridData(edge_index=self.edge_index, edge_type=self.edge_type, pos=self.coords.float(),
                        num_nodes=self.num_src_nodes)
        data.num_src_nodes, data.num_dst_nodes = self.num_src_nodes, self.num_dst_nodes
        if self.batch is not None:
            data.batch = self.batch
        return data

    def to_networkx(self) -> "networkx.MultiDiGraph":  # noqa: F821
        """A ``networkx.MultiDiGraph`` of this graph.

        Nodes ``("in", j)`` and ``("out", i)`` carry ``coord`` (their grid coordinates), ``pos`` (the
        same in drawing order, as :meth:`gridgnn.GridGraph.to_networkx`: x right along the last axis,
        y up) and ``batch``; edges carry ``offset`` (the edge type).
        """
        import networkx as nx

        graph = nx.MultiDiGraph()
        for side, coords, batch in (("in", self.coords, self.batch), ("out", self.out_coords, self.out_batch)):
            samples = [0] * coords.size(0) if batch is None else batch.tolist()
            drawn = _drawing_order(coords.double()).tolist()
            graph.add_nodes_from(((side, n), {"coord": tuple(c), "pos": tuple(p), "batch": b})
                                 for n, (c, p, b) in enumerate(zip(coords.tolist(), drawn, samples)))
        src, dst = self.edge_index.tolist()
        types = self.edge_type.tolist()
        graph.add_edges_from((("in", j), ("out", i), {"offset": t}) for j, i, t in zip(src, dst, types))
        return graph

    def __repr__(self) -> str:
        return (f"SparseGridGraph(num_src_nodes={self.num_src_nodes}, num_dst_nodes={self.num_dst_nodes}, "
                f"num_edges={self.num_edges}, kernel_size={self.kernel_size}, in_size={self.in_size}, "
                f"out_size={self.out_size}{', transposed' if self.transposed else ''})")


def _check_coords(coords: Tensor, batch: Optional[Tensor], size: Optional[SpatialSize]) -> Tuple[int, ...]:
    """Validate coordinates (and batch); return the spatial size they live in."""
    if not isinstance(coords, Tensor) or coords.dim() != 2 or not 1 <= coords.size(1) <= 3:
        shape = tuple(coords.shape) if isinstance(coords, Tensor) else type(coords).__name__
        raise GridValueError(f"coords must be an integer tensor [M, D] with D = 1, 2 or 3, got {shape}")
    if coords.is_floating_point() or coords.is_complex() or coords.dtype == torch.bool:
        raise GridTypeError(f"coords must be an integer tensor (torch.long), got {coords.dtype}; use coords.long() "
                            "after rounding")
    if batch is not None:
        if not isinstance(batch, Tensor) or batch.dim() != 1 or batch.numel() != coords.size(0):
            raise GridValueError(f"batch must be a LongTensor [M] with one entry per site (M = {coords.size(0)}), got "
                                 f"{tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__}")
        if batch.numel() and int(batch.min()) < 0:
            raise GridValueError("batch must hold sample indices >= 0")
    if coords.numel() and int(coords.min()) < 0:
        raise GridValueError(f"coords must be non-negative, got a minimum of {int(coords.min())}")
    d = coords.size(1)
    if size is None:
        if coords.size(0) == 0:
            raise GridValueError("an empty coordinate set needs size= (the spatial size it lives in)")
        return tuple(int(v) + 1 for v in coords.max(0).values.tolist())
    size = ntuple(size, d, "size")
    if coords.numel() and any(int(m) >= n for m, n in zip(coords.max(0).values.tolist(), size)):
        raise GridValueError(f"coords reach {tuple(int(m) for m in coords.max(0).values.tolist())} but size={size}; "
                             "every coordinate must be < size in its dim")
    return size


def _keys(coords: Tensor, batch: Optional[Tensor], size: Tuple[int, ...]) -> Tensor:
    """One int64 key per site: ``batch`` then the coordinates, row-major over ``size``."""
    key = torch.zeros(coords.size(0), dtype=torch.long, device=coords.device) if batch is None else batch.long()
    for d, n in enumerate(size):
        key = key * n + coords[:, d].long()
    return key


def _from_keys(keys: Tensor, size: Tuple[int, ...]) -> Tuple[Tensor, Tensor]:
    """The inverse of :func:`_keys`: ``(coords [M, D], batch [M])``."""
    coords = []
    for n in reversed(size):
        coords.append(keys % n)
        keys = keys // n
    return torch.stack(coords[::-1], dim=1), keys


def sparse_grid_graph(coords: Tensor, kernel_size: IntOrTuple, stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                      dilation: IntOrTuple = 1, *, size: Optional[SpatialSize] = None, batch: Optional[Tensor] = None,
                      submanifold: bool = False, device: Device = None) -> SparseGridGraph:
    r"""The grid graph of a conv restricted to the active sites ``coords``.

    Args:
        coords (LongTensor ``[M, D]``): the active sites, ``D`` = 1, 2 or 3; no duplicates (per sample).
        kernel_size, stride, padding, dilation: as ``torch.nn.Conv{D}d`` (ints or tuples; ``padding``
            may be ``"same"``/``"valid"``).
        size: the spatial size the coordinates live in (default: ``coords.max(0) + 1``).
        batch (LongTensor ``[M]``, optional): the sample of each site (PyG style); samples never connect.
        submanifold (bool): outputs at the input sites, with torch's ``padding="same"`` geometry
            (stride 1), as submanifold sparse convs. Otherwise outputs at every site of torch's output
            grid (``size``, stride, padding, dilation) that receives at least one edge.
        device: where to build the graph (default: the coordinates' device).

    Returns:
        :class:`SparseGridGraph`; ``GridConv(...)(feats, graph)`` equals torch's conv of the zero-filled
        grid at the output sites.

    Shapes:
        - **coords:** :math:`(M, D)`, **batch:** :math:`(M)`; node features :math:`(M, C_{in})`
        - **edge_index:** :math:`(2, E)`, **edge_type:** :math:`(E)`, at most :math:`M K` edges
        - **out_coords:** :math:`(M_{out}, D)`; output features :math:`(M_{out}, C_{out})`

    Example:
        >>> coords = torch.tensor([[0, 0], [0, 1], [3, 3]])
        >>> g = sparse_grid_graph(coords, 3, padding=1, submanifold=True)
        >>> g.num_dst_nodes, g.num_edges        # (0,0) and (0,1) see each other; (3,3) only itself
        (3, 5)
    """
    if device is not None:
        coords = coords.to(device)
        batch = None if batch is None else batch.to(device)
    in_size = _check_coords(coords, batch, size)
    nd = len(in_size)
    kernel = ntuple(kernel_size, nd, "kernel_size")
    stride_t, dil = ntuple(stride, nd, "stride"), ntuple(dilation, nd, "dilation")
    for name, values in (("kernel_size", kernel), ("stride", stride_t), ("dilation", dil)):
        if any(v < 1 for v in values):
            raise GridValueError(f"{name} must be positive, got {values}")
    if submanifold:
        padding = "same"
    pads = resolve_padding(padding if isinstance(padding, str) else ntuple(padding, nd, "padding"), kernel,
                           stride_t, dil)
    out_size = tuple((n + left + right - d * (k - 1) - 1) // s + 1
                     for n, (left, right), k, s, d in zip(in_size, pads, kernel, stride_t, dil))
    if any(n < 1 for n in out_size):
        raise GridValueError(f"size {in_size} with padding {pads} is smaller than the dilated kernel {kernel} "
                             f"(dilation {dil}): the conv's output would be empty")
    keys = _keys(coords, batch, in_size)
    sorted_keys, order = keys.sort()
    if sorted_keys.numel() > 1 and bool((sorted_keys[1:] == sorted_keys[:-1]).any()):
        raise GridValueError("coords hold duplicate sites (in the same sample); merge their features first, "
                             "e.g. with torch_geometric.utils.coalesce")

    left = torch.tensor([p[0] for p in pads], device=coords.device)
    step, dil_t = torch.tensor(stride_t, device=coords.device), torch.tensor(dil, device=coords.device)
    limit = torch.tensor(out_size, device=coords.device)
    sources, types, targets = [], [], []
    for t, index in enumerate(kernel_indices(kernel)):            # one offset at a time: O(M) memory
        # output o reads input c = o * s - p_left + t * d  <=>  o = (c + p_left - t * d) / s
        numer = coords + (left - torch.tensor(index, device=coords.device) * dil_t)          # [M, D]
        out_t = torch.div(numer, step, rounding_mode="floor")
        valid = ((numer % step) == 0).all(-1) & ((out_t >= 0) & (out_t < limit)).all(-1)
        src_t = valid.nonzero().flatten()
        out_t = out_t[src_t]
        if submanifold:                              # outputs are the input sites: keep edges landing on one
            target_keys = _keys(out_t, None if batch is None else batch[src_t], in_size)
            pos = torch.searchsorted(sorted_keys, target_keys).clamp(max=max(keys.numel() - 1, 0))
            hit = sorted_keys[pos] == target_keys
            src_t, out_t = src_t[hit], order[pos[hit]]                   # out_t: the target site's row
        sources.append(src_t)
        targets.append(out_t)
        types.append(torch.full_like(src_t, t))
    src, t, out = torch.cat(sources), torch.cat(types), torch.cat(targets)
    if submanifold:
        dst, out_coords, out_batch = out, coords, batch
    else:                                            # outputs are the distinct sites the edges reach
        sample = None if batch is None else batch[src]
        target_keys = _keys(out, sample, out_size)
        unique_keys, dst = torch.unique(target_keys, return_inverse=True)
        out_coords, out_batch = _from_keys(unique_keys, out_size)
        out_batch = None if batch is None else out_batch
    edge_order = torch.argsort(t * max(len(out_coords), 1) + dst, stable=True)            # offset-major, by target
    edge_index = torch.stack([src, dst])[:, edge_order]
    return SparseGridGraph(edge_index, t[edge_order], coords, batch, out_coords, out_batch, in_size, out_size,
                           kernel)


def to_sparse(x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Image or volume ``[B, C, *S]`` to its active sites: ``(feats [M, C], coords [M, D], batch [M])``.

    A site is active when any of its channels is non-zero; sites are ordered by
    sample, then row-major. :func:`to_dense` is the inverse.

    Example:
        >>> x = torch.zeros(1, 2, 4, 4); x[0, :, 1, 2] = 1.0
        >>> feats, coords, batch = to_sparse(x)
        >>> feats.shape, coords.tolist(), batch.tolist()
        (torch.Size([1, 2]), [[1, 2]], [0])
    """
    if not isinstance(x, Tensor) or not 3 <= x.dim() <= 5:
        raise GridValueError(f"to_sparse expects [B, C, *S] with 1-3 spatial dims, got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    active = (x != 0).any(1)                                                               # [B, *S]
    index = active.nonzero()                                                               # [M, 1 + D]
    feats = x.movedim(1, -1)[active]                                                       # [M, C]
    return feats, index[:, 1:], index[:, 0]


def to_dense(feats: Tensor, coords: Tensor, batch: Optional[Tensor], size: SpatialSize,
             batch_size: Optional[int] = None) -> Tensor:
    """Scatter sparse features back to a zero-filled ``[B, C, *size]`` tensor (the inverse of :func:`to_sparse`).

    Args:
        feats: ``[M, C]``; coords: ``[M, D]``; batch: ``[M]`` or None (one sample).
        size: the spatial size; batch_size: ``B`` (default: ``batch.max() + 1``).

    Example:
        >>> image = torch.zeros(1, 2, 4, 4)
        >>> image[0, :, 1, 2] = 1.0
        >>> features, coords, batch = gg.to_sparse(image)
        >>> torch.equal(gg.to_dense(features, coords, batch, (4, 4), batch_size=1), image)
        True
    """
    if feats.dim() != 2 or feats.size(0) != coords.size(0):
        raise GridValueError(f"feats must be [M, C] with M = coords.size(0) = {coords.size(0)}, got "
                             f"{tuple(feats.shape)}")
    size = _check_coords(coords, batch, size)
    if batch_size is None:
        batch_size = 1 if batch is None or batch.numel() == 0 else int(batch.max()) + 1
    out = feats.new_zeros(batch_size, *size, feats.size(1))
    index = (torch.zeros_like(coords[:, 0]) if batch is None else batch,) + tuple(coords.t())
    out[index] = feats
    return out.movedim(-1, 1)
