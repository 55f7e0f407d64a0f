"""Images, signals and volumes as grid graphs.

A convolution with kernel ``k``, stride ``s``, padding ``p``, dilation ``d`` and a
padding mode reads, for every output position ``o`` and kernel offset ``t``, one
input position (or a padded zero). :func:`grid_graph` turns exactly that into a
directed graph: an edge ``j -> i`` of type ``t`` for every output node ``i`` and
offset ``t`` whose input position ``j`` is a real pixel. Zero padding drops the
edge (a zero message changes nothing); circular, reflect and replicate padding
remap it to the pixel that torch's padding would copy.
"""
from __future__ import annotations

import functools
import math
import warnings
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ._types import Device
from .errors import GridValueError
from .geometry import ConvGeometry, IntOrTuple, Padding, ntuple, transposed_conv_geometry

if TYPE_CHECKING:
    import networkx

__all__ = ["GridGraph", "grid_graph", "graph_for", "to_nodes", "to_image", "clear_graph_cache",
           "set_graph_cache_size"]


class GridGraph:
    r"""The typed, directed graph a convolution runs on.

    Node ``j`` is an input position (row-major over ``in_size``), node ``i`` an
    output position (row-major over ``out_size``). An edge ``j -> i`` of type
    ``t`` means "output ``i`` reads input ``j`` through kernel offset ``t``", with
    ``t`` the row-major index into the kernel window, i.e. the index into
    ``conv.weight.flatten(2)[..., t]``. A convolution is then

    .. math::
        \mathbf{Y} = \mathbf{b} + \sum_{t} \mathbf{A}_t \mathbf{X} \mathbf{W}_t^{\top}
        \qquad
        \mathbf{y}_i = \mathbf{b} + \sum_{(j \to i,\, t) \in \mathcal{E}} \mathbf{W}_t \mathbf{x}_j

    where :math:`\mathbf{A}_t` is the 0/1 adjacency of the type-``t`` edges.

    Build one with :func:`grid_graph` or :func:`graph_for`; graphs made that way
    are *complete* (exactly the conv's geometry) and the layers may run them by a
    dense path. :meth:`mask` gives an incomplete graph (missing pixels), which
    the layers run by general message passing.

    Attributes:
        edge_index (LongTensor ``[2, E]``): row 0 source (input position), row 1 target (output position).
        edge_type (LongTensor ``[E]``): kernel offset id of each edge.
        geometry (ConvGeometry): the conv geometry the graph was built from.
        is_complete (bool): every edge the geometry defines is present, and no other.
        transposed (bool): the reversed graph of the geometry's conv (:meth:`transpose`).
        plans (dict): execution plans the layers derive from the edges (offset groups,
            CSR gather plans), built on first use and kept with the graph.

    Edges are stored offset-major (all edges of offset 0, then offset 1, ...),
    and within one offset by target node.

    :meth:`transpose` reverses every edge and keeps its type: the graph of the
    transposed convolution (``nn.ConvTranspose{1,2,3}d``), which scatters what
    the conv gathers. A transposed graph keeps the conv's ``geometry`` and has
    ``transposed = True``; its ``in_size`` is the conv's output size and its
    ``out_size`` the conv's input size.

    Example:
        >>> g = gg.grid_graph((4, 4), 3, padding=1)
        >>> g.num_src_nodes, g.num_dst_nodes, g.num_edges
        (16, 16, 100)
        >>> g.edge_index.shape, g.edge_type.shape
        (torch.Size([2, 100]), torch.Size([100]))
    """

    def __init__(self, geometry: ConvGeometry, edge_index: Tensor, edge_type: Tensor,
                 is_complete: bool = True, transposed: bool = False):
        if edge_index.dim() != 2 or edge_index.size(0) != 2 or edge_type.shape != edge_index.shape[1:]:
            raise GridValueError(f"edge_index must be [2, E] and edge_type [E], got {tuple(edge_index.shape)} "
                                 f"and {tuple(edge_type.shape)}")
        self.geometry = geometry
        self.edge_index = edge_index
        self.edge_type = edge_type
        self.is_complete = is_complete
        self.transposed = transposed
        self.plans: Dict[str, Any] = {}   # execution plans derived from the edges, built once per graph

    # -- geometry ------------------------------------------------------------
    @property
    def in_size(self) -> Tuple[int, ...]:
        """Spatial shape of the source nodes (the conv's output size when ``transposed``)."""
        return self.geometry.out_size if self.transposed else self.geometry.in_size

    @property
    def out_size(self) -> Tuple[int, ...]:
        """Spatial shape of the target nodes (the conv's input size when ``transposed``)."""
        return self.geometry.in_size if self.transposed else self.geometry.out_size

    kernel_size = property(lambda self: self.geometry.kernel_size, doc="Kernel shape.")
    stride = property(lambda self: self.geometry.stride, doc="Stride per dim.")
    padding = property(lambda self: self.geometry.padding, doc="(left, right) padding per dim.")
    dilation = property(lambda self: self.geometry.dilation, doc="Dilation per dim.")
    padding_mode = property(lambda self: self.geometry.padding_mode, doc="Padding mode.")
    ndim = property(lambda self: self.geometry.ndim, doc="Number of spatial dims.")
    num_offsets = property(lambda self: self.geometry.num_offsets, doc="Number of edge types (kernel offsets).")

    @property
    def num_src_nodes(self) -> int:
        return math.prod(self.in_size)

    @property
    def num_dst_nodes(self) -> int:
        return math.prod(self.out_size)

    @property
    def num_edges(self) -> int:
        return self.edge_index.size(1)

    @property
    def device(self) -> torch.device:
        return self.edge_index.device

    @property
    def shares_nodes(self) -> bool:
        """Source and target nodes are the same pixels (stride 1 and equal input/output size)."""
        return self.in_size == self.out_size and all(s == 1 for s in self.stride)

    @property
    def pos(self) -> Tensor:
        """FloatTensor ``[num_src_nodes, ndim]``: grid coordinates of the input positions."""
        return _grid_coords(self.in_size, self.device)

    @property
    def dst_pos(self) -> Tensor:
        """FloatTensor ``[num_dst_nodes, ndim]``: grid coordinates of the output positions."""
        return _grid_coords(self.out_size, self.device)

    @property
    def node_counts(self) -> Tuple[int, int]:
        """``(num_src_nodes, num_dst_nodes)``, PyG's ``size=`` argument for bipartite propagation."""
        return (self.num_src_nodes, self.num_dst_nodes)

    @property
    def size(self) -> Tuple[int, int]:
        """Deprecated name of :attr:`node_counts` (in gridgnn ``size`` is a spatial shape); goes in 0.3."""
        warnings.warn("GridGraph.size is now GridGraph.node_counts (size means a spatial shape in gridgnn, "
                      "e.g. in_size); size goes in 0.3", DeprecationWarning, stacklevel=2)
        return self.node_counts

    # -- derived graphs ------------------------------------------------------
    def to(self, device: Device) -> "GridGraph":
        """The same graph with its tensors on ``device``."""
        return GridGraph(self.geometry, self.edge_index.to(device), self.edge_type.to(device),
                         self.is_complete, self.transposed)

    def transpose(self) -> "GridGraph":
        r"""The reversed graph: every edge :math:`j \to i` of type :math:`t` becomes :math:`i \to j` of type :math:`t`.

        Message passing on it is the transposed convolution: with the conv's weight
        :math:`\mathbf{W}_t` it computes :math:`\mathbf{Y} = \sum_t \mathbf{A}_t^{\top} \mathbf{X}
        \mathbf{W}_t`, i.e. node-wise :math:`\mathbf{y}_j = \sum_{(i \to j,\, t)} \mathbf{W}_t^{\top} \mathbf{x}_i`,
        the adjoint of the conv (what ``nn.ConvTranspose{n}d`` computes). Transposing twice gives
        the original graph back.

        Example:
            >>> g = grid_graph((6, 6), 3, stride=2, padding=1)
            >>> g.in_size, g.out_size, g.transpose().in_size, g.transpose().out_size
            ((6, 6), (3, 3), (3, 3), (6, 6))
        """
        if self.is_complete:
            return graph_from_geometry(self.geometry, self.device, transposed=not self.transposed)
        return GridGraph(self.geometry, self.edge_index.flip(0), self.edge_type, False, not self.transposed)

    def mask(self, src_mask: Optional[Tensor] = None, dst_mask: Optional[Tensor] = None) -> "GridGraph":
        """Drop the edges leaving masked-out input pixels and/or entering masked-out outputs.

        Running a conv layer on ``g.mask(m)`` equals the conv on the image with the
        pixels where ``m`` is false set to zero. A ``dst_mask`` leaves the outputs it
        excludes with no messages (bias only), as sparse "submanifold" convs do.

        Args:
            src_mask (BoolTensor): ``[num_src_nodes]`` or shaped like ``in_size``.
            dst_mask (BoolTensor): ``[num_dst_nodes]`` or shaped like ``out_size``.
        """
        keep = torch.ones(self.num_edges, dtype=torch.bool, device=self.device)
        for name, m, n, row in (("src_mask", src_mask, self.num_src_nodes, 0),
                                ("dst_mask", dst_mask, self.num_dst_nodes, 1)):
            if m is None:
                continue
            if m.dtype != torch.bool or m.numel() != n:
                raise GridValueError(f"{name} must be a bool tensor with {n} entries (one per node), got "
                                     f"dtype {m.dtype} and shape {tuple(m.shape)}")
            keep &= m.reshape(-1).to(self.device)[self.edge_index[row]]
        return GridGraph(self.geometry, self.edge_index[:, keep], self.edge_type[keep], is_complete=False,
                         transposed=self.transposed)

    # -- interop -------------------------------------------------------------
    def to_pyg(self) -> "gridgnn.pyg.GridData":  # noqa: F821
        """A :class:`~gridgnn.pyg.GridData` (a PyG ``Data``) with ``edge_index``, ``edge_type``, ``pos``.

        When source and target are different pixel sets (strided or size-changing
        convs), ``pos`` holds the input positions, ``num_nodes`` counts them, and the data
        also carries ``dst_pos``, ``num_src_nodes`` and ``num_dst_nodes``; PyG's ``DataLoader``
        shifts each row of ``edge_index`` by its own side's count. Pass
        ``size=(data.num_src_nodes, data.num_dst_nodes)`` to a layer (also for a batch).
        The tensors are copies: editing them leaves the cached graph intact.
        """
        from .pyg import GridData

        data = GridData(edge_index=self.edge_index.clone(), edge_type=self.edge_type.clone(), pos=self.pos,
                        num_nodes=self.num_src_nodes)
        if not self.shares_nodes:
            data.dst_pos = self.dst_pos
            data.num_src_nodes = self.num_src_nodes
            data.num_dst_nodes = self.num_dst_nodes
        return data

    def to_networkx(self) -> "networkx.MultiDiGraph":
        """A ``networkx.MultiDiGraph`` ready to draw: ``nx.draw(G, nx.get_node_attributes(G, "pos"))``.

        Nodes are ints (row-major positions) when source and target share pixels, else
        ``("in", j)`` and ``("out", i)``. Each node carries ``coord`` (its index tuple on its own
        grid) and ``pos``, its place in drawing order -- x to the right along the last axis, y up
        (minus the row), z the depth of a volume -- in the units of the conv's *input* grid: a
        strided conv's output sits at the centre of its window, so a bipartite drawing lines up.
        Edges carry ``offset`` (the edge type) and ``kernel_index`` (the offset as a tuple over the
        window); parallel edges (reflect/replicate padding reading a pixel twice) are kept. A
        masked graph keeps only the nodes that still have an edge. ``G.graph`` holds the
        ``geometry`` (:class:`~gridgnn.ConvGeometry`), ``in_size``, ``out_size`` and ``transposed``.

        Example:
            >>> G = gg.grid_graph((4, 4), 3, stride=2, padding=1).to_networkx()
            >>> G.nodes[("in", 1)]["pos"], G.nodes[("out", 1)]["pos"]     # (x, y): column, minus row
            ((1.0, 0.0), (2.0, 0.0))
            >>> G.graph["out_size"]
            (2, 2)
        """
        import networkx as nx

        geom = self.geometry
        graph = nx.MultiDiGraph(geometry=geom, in_size=self.in_size, out_size=self.out_size,
                                transposed=self.transposed)
        src, dst = self.edge_index.tolist()
        types = self.edge_type.tolist()
        kernel_index = geom.kernel_indices()
        # the conv's input grid is the drawing's unit; its outputs sit at their windows' centres
        conv_in = _grid_coords(geom.in_size, self.device)
        conv_out = _grid_coords(geom.out_size, self.device) * torch.tensor(geom.stride, device=self.device) - \
            torch.tensor([left for left, _ in geom.padding], device=self.device) + \
            torch.tensor([d * (k - 1) / 2 for d, k in zip(geom.dilation, geom.kernel_size)], device=self.device)
        src_at, dst_at = (conv_out, conv_in) if self.transposed else (conv_in, conv_out)
        src_coord, dst_coord = self.pos.long().tolist(), self.dst_pos.long().tolist()
        used = (set(src), set(dst)) if not self.is_complete else None
        sides = [(None, src_coord, src_at)] if self.shares_nodes else [("in", src_coord, src_at),
                                                                       ("out", dst_coord, dst_at)]
        for k, (side, coords, at) in enumerate(sides):
            for n, (coord, p) in enumerate(zip(coords, _drawing_order(at).tolist())):
                if used is None or n in used[k] or (side is None and n in used[1]):
                    graph.add_node(n if side is None else (side, n), coord=tuple(coord), pos=tuple(p))
        if not self.shares_nodes:
            src, dst = [("in", j) for j in src], [("out", i) for i in dst]
        graph.add_edges_from((j, i, {"offset": t, "kernel_index": kernel_index[t]})
                             for j, i, t in zip(src, dst, types))
        return graph

    def __repr__(self) -> str:
        g = self.geometry
        extra = ("" if self.is_complete else ", masked") + (", transposed" if self.transposed else "")
        return (f"GridGraph(in_size={self.in_size}, out_size={self.out_size}, kernel_size={g.kernel_size}, "
                f"stride={g.stride}, padding={g.padding}, dilation={g.dilation}, "
                f"padding_mode='{g.padding_mode}', num_edges={self.num_edges}{extra})")


def _drawing_order(coords: Tensor) -> Tensor:
    """Grid coordinates ``[N, D]`` (row-major axes) as drawing positions: x = last axis, y = minus the one before.

    1-D: ``(x, 0)``; 2-D ``(row, col) -> (col, -row)``; 3-D ``(depth, row, col) -> (col, -row, depth)``.
    """
    if coords.size(1) == 1:
        return torch.cat([coords, torch.zeros_like(coords)], 1)
    flipped = torch.stack([coords[:, -1], 0.0 - coords[:, -2] + 0.0], 1)        # + 0.0: no -0.0
    return flipped if coords.size(1) == 2 else torch.cat([flipped, coords[:, :1]], 1)


def _grid_coords(size: Tuple[int, ...], device: Device) -> Tensor:
    axes = [torch.arange(n, device=device, dtype=torch.float) for n in size]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(size))  # [N, ndim]


#: the most (target, offset) slots a complete grid graph is built with: 2^31 edges hold 48 GiB of int64 indices
MAX_GRAPH_EDGES = 2 ** 31


def _build_edges(geom: ConvGeometry, device: torch.device) -> Tuple[Tensor, Tensor]:
    """All (source, target, offset) triples of ``geom``, vectorised over nodes and offsets."""
    slots = math.prod(geom.out_size) * geom.num_offsets
    if slots > MAX_GRAPH_EDGES:
        raise GridValueError(f"the grid graph of input size {geom.in_size} with kernel {geom.kernel_size} would "
                             f"hold up to {slots:.3g} edges ({slots * 24 / 2 ** 30:.3g} GiB of int64 indices), "
                             f"more than {MAX_GRAPH_EDGES:.3g}; run the drop-in layers (GridConv2d, ...), "
                             "which need no edge tensors on complete grids, or gridgnn.sparse_grid_graph "
                             "on the active sites")
    ndim = geom.ndim
    in_strides = [math.prod(geom.in_size[d + 1:]) for d in range(ndim)]
    src = torch.zeros((), dtype=torch.long, device=device)
    valid = torch.ones((), dtype=torch.bool, device=device)
    for d in range(ndim):
        coord, ok = geom.remap(geom.window_coords(d, device), d)  # [O_d, K_d] each
        shape = [1] * (2 * ndim)
        shape[d], shape[ndim + d] = geom.kernel_size[d], geom.out_size[d]
        # lay out as [K_1, ..., K_n, O_1, ..., O_n]: offset-major, then target row-major
        src = src + coord.t().reshape(shape) * in_strides[d]
        valid = valid & ok.t().reshape(shape)
    num_k, num_out = geom.num_offsets, math.prod(geom.out_size)
    src = src.expand(*geom.kernel_size, *geom.out_size).reshape(num_k, num_out)
    valid = valid.expand(*geom.kernel_size, *geom.out_size).reshape(num_k, num_out)
    dst = torch.arange(num_out, device=device).expand(num_k, num_out)
    edge_type = torch.arange(num_k, device=device)[:, None].expand(num_k, num_out)
    edge_index = torch.stack([src[valid], dst[valid]])  # [2, E]
    return edge_index, edge_type[valid]


def _canonical_device(device: Device) -> torch.device:
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _versions(graph: GridGraph) -> Tuple[int, int]:
    return graph.edge_index._version, graph.edge_type._version


class _GraphCache:
    """Complete grid graphs by (geometry, device, transposed); the least recently used leave first.

    A hit whose edge tensors were edited in place since they were built (``Tensor._version``) is
    rebuilt, so an edit made through a graph a user holds never reaches later ``grid_graph`` calls.
    """

    def __init__(self, maxsize: int = 128):
        self.maxsize = maxsize
        self._graphs: "OrderedDict[tuple, Tuple[GridGraph, Tuple[int, int]]]" = OrderedDict()

    def get(self, geom: ConvGeometry, device: torch.device, transposed: bool) -> GridGraph:
        key = (geom, device, transposed)
        entry = self._graphs.get(key)
        if entry is not None and (torch.compiler.is_compiling() or _versions(entry[0]) == entry[1]):
            self._graphs.move_to_end(key)
            return entry[0]
        if transposed:
            forward = self.get(geom, device, False)
            graph = GridGraph(geom, forward.edge_index.flip(0), forward.edge_type.clone(), True, True)
        elif device.type == "meta":      # shapes only: the edge count depends on the geometry, so count on the CPU
            graph = GridGraph(geom, *(t.to(device) for t in _build_edges(geom, torch.device("cpu"))),
                              is_complete=True)
        else:
            graph = GridGraph(geom, *_build_edges(geom, device), is_complete=True)
        self._graphs[key] = (graph, _versions(graph))
        while len(self._graphs) > self.maxsize:
            self._graphs.popitem(last=False)
        return graph

    def clear(self) -> None:
        self._graphs.clear()

    def resize(self, maxsize: int) -> None:
        self.maxsize = int(maxsize)
        while len(self._graphs) > self.maxsize:
            self._graphs.popitem(last=False)

    def __len__(self) -> int:
        return len(self._graphs)


_CACHE = _GraphCache()


def graph_from_geometry(geom: ConvGeometry, device: Device = None, transposed: bool = False) -> GridGraph:
    """The complete :class:`GridGraph` of ``geom`` on ``device`` (reversed if ``transposed``), cached."""
    return _CACHE.get(geom, _canonical_device(device), transposed)


def clear_graph_cache() -> None:
    """Drop every cached grid graph (and the execution plans kept with them).

    Example:
        >>> g = gg.grid_graph((6, 6), 3)
        >>> gg.clear_graph_cache()
        >>> gg.grid_graph((6, 6), 3) is g                          # built anew
        False
    """
    _CACHE.clear()


def set_graph_cache_size(maxsize: int) -> None:
    """Keep at most ``maxsize`` complete grid graphs cached (default 128; 0 disables the cache).

    Each cached graph holds its edge tensors, 24 bytes per edge (``edge_index`` and ``edge_type``
    as int64), plus the plans the layers build on it (about as much again): a 3x3 conv on a
    224x224 input has 450k edges, ~11 MB. :func:`grid_graph` in a training loop hits the cache,
    so the bound is what a model's distinct input sizes and geometries need.

    Example:
        >>> gg.set_graph_cache_size(16)                            # keep at most 16 graphs
        >>> gg.set_graph_cache_size(128)
    """
    _CACHE.resize(maxsize)


def grid_graph(size: IntOrTuple, kernel_size: IntOrTuple, stride: IntOrTuple = 1, padding: Padding = 0,
               dilation: IntOrTuple = 1, padding_mode: str = "zeros", device: Device = None) -> GridGraph:
    r"""The grid graph of a convolution on an input of spatial shape ``size``.

    Arguments follow ``torch.nn.Conv{1,2,3}d`` exactly (ints broadcast over the
    spatial dims; ``padding`` may be ``"same"`` or ``"valid"``). The graph has one
    edge :math:`j \to i` of type :math:`t` for each output node :math:`i` and kernel
    offset :math:`t` that reads a real input pixel :math:`j`:

    .. math::
        j = \mathrm{pad}(i \cdot s - p_{\mathrm{left}} + t \cdot d)

    where ``pad`` drops the edge for zero padding and remaps it for circular
    (torus), reflect and replicate padding. Graphs are cached by geometry and
    device, so calling this in a forward pass costs a dictionary look-up.

    Args:
        size (int or tuple): input spatial shape (1, 2 or 3 dims).
        kernel_size, stride, padding, dilation, padding_mode: as in ``torch.nn.Conv2d``.
        device: where the edge tensors live (default CPU).

    Shapes:
        - **edge_index**: ``[2, E]``, **edge_type**: ``[E]`` with
          ``E = num_dst_nodes * num_offsets`` for non-zero padding modes.

    Example:
        >>> g = grid_graph((4, 4), 3, padding=1)
        >>> g.num_src_nodes, g.num_offsets, g.num_edges
        (16, 9, 100)
    """
    geom = ConvGeometry.create(size, kernel_size, stride, padding, dilation, padding_mode)
    return graph_from_geometry(geom, device)


def conv_geometry(conv: nn.Module, size: IntOrTuple) -> ConvGeometry:
    """The :class:`ConvGeometry` of a torch conv (or gridgnn image layer) for input ``size``.

    For a transposed conv it is the geometry of the conv it transposes (see
    :func:`~gridgnn.geometry.transposed_conv_geometry`).
    """
    ndim = len(conv.kernel_size)
    if getattr(conv, "transposed", False):
        args = (transposed_conv_geometry, ntuple(size, ndim, "size"), conv.kernel_size, conv.stride, conv.padding,
                conv.output_padding, conv.dilation)
    else:
        args = (ConvGeometry.create, ntuple(size, ndim, "size"), conv.kernel_size, conv.stride, conv.padding,
                conv.dilation, conv.padding_mode)
    try:
        hash(args)
    except TypeError:                                                   # an unhashable argument (a list)
        return args[0](*args[1:])
    if torch.compiler.is_compiling():                   # traced once into the graph; dynamo cannot call the cache
        return args[0](*args[1:])
    return _cached_geometry(*args)


@functools.lru_cache(maxsize=1024)
def _cached_geometry(make: Callable[..., ConvGeometry], *args) -> ConvGeometry:
    """``make(*args)``, once per layer configuration and input size (~35 us of validation a layer call)."""
    return make(*args)


def graph_for(conv: nn.Module, size: IntOrTuple) -> GridGraph:
    """The :class:`GridGraph` with ``conv``'s geometry for an input of spatial ``size``.

    Args:
        conv: an ``nn.Conv1d/2d/3d``, ``nn.ConvTranspose1d/2d/3d`` (the graph is then
            :meth:`GridGraph.transpose` of its conv's) or one of their gridgnn twins.
        size: the input's spatial shape (``x.shape[2:]``).

    Example:
        >>> conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        >>> graph_for(conv, (8, 8)).out_size
        (4, 4)
    """
    return graph_from_geometry(conv_geometry(conv, size), conv.weight.device,
                               transposed=getattr(conv, "transposed", False))


def on_batched_nodes(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``fn`` on node features with a batch dim: ``[N, C]`` inputs get one for the call and lose it after.

    ``fn`` maps ``[B, N, C]`` to ``[B, N', C']``; ``x`` is ``[B, N, C]`` or ``[N, C]``.
    """
    out = fn(x if x.dim() == 3 else x.unsqueeze(0))
    return out if x.dim() == 3 else out.squeeze(0)


def to_nodes(x: Tensor) -> Tensor:
    """Image to node features: ``[B, C, *S] -> [B, N, C]`` with ``N = prod(S)`` row-major.

    Always a view (no copy). For a channels-last ``x`` it is contiguous: each
    node's channel vector is adjacent in memory, the node matrix layout GEMMs
    want. For an NCHW ``x`` it is strided (a node's channels lie ``N`` apart),
    and a layer that needs contiguous rows copies it once.

    Example:
        >>> to_nodes(torch.zeros(2, 3, 4, 5)).shape
        torch.Size([2, 20, 3])
    """
    if x.dim() < 3:
        raise GridValueError(f"to_nodes expects an image [B, C, *spatial] with 1-3 spatial dims, got shape "
                             f"{tuple(x.shape)}; add a batch dim with x[None] for a single image")
    b, c = x.shape[:2]
    return x.movedim(1, -1).reshape(b, math.prod(x.shape[2:]), c)


def to_image(x: Tensor, size: Union[int, Sequence[int]]) -> Tensor:
    """Node features to image: ``[B, N, C] -> [B, C, *size]``; the inverse of :func:`to_nodes`.

    Returns a channels-last view of ``x`` (no copy).

    Example:
        >>> x = torch.randn(2, 3, 4, 5)
        >>> torch.equal(gg.to_image(gg.to_nodes(x), (4, 5)), x)
        True
    """
    size = (size,) if isinstance(size, int) else tuple(size)
    if x.dim() != 3 or x.size(1) != math.prod(size):
        raise GridValueError(f"to_image expects node features [B, N, C] with N = prod(size) = {math.prod(size)}, "
                             f"got shape {tuple(x.shape)}")
    return x.reshape(x.size(0), *size, x.size(2)).movedim(-1, 1)
