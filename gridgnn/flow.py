r"""Message-flow graphs: which input channel (or pixel) can reach which output.

A stack of layers is a list of *specs*. Each spec maps channels to channels with
a known sparsity: a grouped pointwise conv connects channels inside a group, a
shuffle permutes them, a depthwise conv keeps each channel to itself. Stacked,
they form a layered DAG over (layer, channel) nodes; output channel ``o``
*depends on* input channel ``i`` iff a path joins them, i.e. iff entry
``(o, i)`` of the boolean product of the layers' connectivity matrices is true.

:func:`reachability` computes that product structurally: the reach matrix
``R [C_cur, C_in]`` (row ``c``: the inputs that channel ``c`` depends on) is
updated spec by spec with block ORs (grouped layers), row gathers (permutations)
and concatenations, never by float matrix products, so 4096 channels through
hundreds of specs take milliseconds per spec.

Closed form (checked in the tests): with group size :math:`n = C/g \ge 2`, each
grouped pointwise layer multiplies a channel's reach by at most :math:`n`, so
full mixing needs at least :math:`\lceil \log_n C \rceil` grouped layers; with
ShuffleNet's channel shuffle between them it takes exactly that many
(:func:`shuffle_mixing_layers`; checked against the graph for every
:math:`C \le 64` and every valid :math:`g` in the tests). Without a shuffle the
:math:`g` groups never meet.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, fields
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .nn.shuffle import check_shuffle, shuffle_permutation

__all__ = ["Spec", "Pointwise", "Conv", "Depthwise", "Shuffle", "Permute", "Identity", "Residual", "Concat",
           "Split", "from_module", "reachability", "reachability_by_depth", "mixing_depth", "path_counts",
           "connectivity", "flow_graph", "draw_flow_graph", "plot_reachability", "group_partition",
           "is_complementary", "shuffle_mixing_layers", "receptive_field"]


def _check_groups(channels: int, groups: int, out_channels: int, spec: "Spec") -> None:
    if channels % groups or out_channels % groups:
        raise ValueError(f"{spec!r}: groups={groups} must divide the input channels ({channels}) and the output "
                         f"channels ({out_channels})")


@dataclass(frozen=True)
class Reach:
    """What each current channel depends on, stored as distinct rows and an index.

    The reach matrix is ``rows[index]`` (``[C, C_in]``). Grouped layers leave one
    distinct row per group and permutations only move ``index``, so most specs
    cost O(C) or O(groups * C_in) instead of O(C * C_in).
    """

    rows: Tensor   # [R, C_in] bool, distinct dependency sets
    index: Tensor  # [C] long, row of each channel

    @classmethod
    def identity(cls, channels: int, device=None) -> "Reach":
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        return cls(torch.eye(channels, dtype=torch.bool, device=device), torch.arange(channels, device=device))

    @property
    def channels(self) -> int:
        return self.index.numel()

    def dense(self) -> Tensor:
        """BoolTensor ``[C, C_in]``."""
        return self.rows[self.index]

    def all(self) -> bool:
        """Every channel depends on every input."""
        return bool(self.rows[self.index.unique()].all())

    def select(self, index: Tensor) -> "Reach":
        """Channels ``index`` of this reach (a permutation, repeat or slice)."""
        return Reach(self.rows, self.index[index])

    def union(self, other: "Reach") -> "Reach":
        """Channel-wise OR with ``other`` (same channel count)."""
        key = self.index * other.rows.size(0) + other.index
        pairs, index = key.unique(return_inverse=True)
        rows = self.rows[pairs // other.rows.size(0)] | other.rows[pairs % other.rows.size(0)]
        return Reach(rows, index)

    @staticmethod
    def cat(parts: Sequence["Reach"]) -> "Reach":
        offsets = [0]
        for part in parts[:-1]:
            offsets.append(offsets[-1] + part.rows.size(0))
        return Reach(torch.cat([p.rows for p in parts]), torch.cat([p.index + o for p, o in zip(parts, offsets)]))


class Spec:
    """A layer's channel connectivity. Subclasses define :meth:`num_out` and :meth:`apply`."""

    def num_out(self, channels: int) -> int:
        """Channels this spec outputs for ``channels`` inputs (raises ``ValueError`` if they do not fit)."""
        raise NotImplementedError

    def apply(self, reach: Reach) -> Reach:
        """What each output channel depends on, given what each input channel depends on."""
        raise NotImplementedError


class _Grouped(Spec):
    """Shared flow of grouped convs: output group ``k`` reads every channel of input group ``k``."""

    def num_out(self, channels: int) -> int:
        out = channels if self.out_channels is None else self.out_channels
        _check_groups(channels, self.groups, out, self)
        return out

    def __repr__(self) -> str:  # omit the default out_channels=None
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                 if not (f.name == "out_channels" and self.out_channels is None)]
        return f"{type(self).__name__}({', '.join(shown)})"

    def apply(self, reach: Reach) -> Reach:
        c, g = reach.channels, self.groups
        out = self.num_out(c)
        num_rows = reach.rows.size(0)
        if g * num_rows < c:  # few distinct rows: OR the rows each group uses
            uses = torch.zeros(g, num_rows, dtype=torch.bool, device=reach.rows.device)
            uses[torch.arange(c, device=uses.device) // (c // g), reach.index] = True     # [g, R]
            rows = (uses[:, :, None] & reach.rows[None]).any(1)                          # [g, C_in]
        else:
            rows = reach.dense().view(g, c // g, -1).any(1)                               # [g, C_in]
        return Reach(rows, torch.arange(g, device=rows.device).repeat_interleave(out // g))


@dataclass(frozen=True, repr=False)
class Pointwise(_Grouped):
    """1x1 conv with ``groups`` channel blocks (``groups=1``: dense); ``out_channels`` defaults to the input's."""

    groups: int = 1
    out_channels: Optional[int] = None


@dataclass(frozen=True, repr=False)
class Conv(_Grouped):
    """A k x k conv with ``groups``: across channels the same flow as :class:`Pointwise`."""

    kernel_size: Union[int, Tuple[int, ...]] = 3
    groups: int = 1
    out_channels: Optional[int] = None


@dataclass(frozen=True)
class Depthwise(Spec):
    """Depthwise conv (groups = channels): each output reads one input channel; ``multiplier`` outputs each."""

    kernel_size: int = 3
    multiplier: int = 1

    def num_out(self, channels: int) -> int:
        return channels * self.multiplier

    def apply(self, reach: Reach) -> Reach:
        if self.multiplier == 1:
            return reach
        return reach.select(torch.arange(reach.channels, device=reach.index.device).repeat_interleave(self.multiplier))


@dataclass(frozen=True)
class Shuffle(Spec):
    """ShuffleNet's channel shuffle with ``groups`` groups (``torch.nn.ChannelShuffle``)."""

    groups: int

    def num_out(self, channels: int) -> int:
        check_shuffle(channels, self.groups)
        return channels

    def apply(self, reach: Reach) -> Reach:
        return reach.select(torch.tensor(shuffle_permutation(reach.channels, self.groups), device=reach.index.device))


@dataclass(frozen=True)
class Permute(Spec):
    """A general channel permutation: output ``i`` is input ``perm[i]``."""

    perm: Tuple[int, ...]

    def __init__(self, perm: Sequence[int]):
        object.__setattr__(self, "perm", tuple(int(p) for p in perm))

    def num_out(self, channels: int) -> int:
        if sorted(self.perm) != list(range(channels)):
            raise ValueError(f"Permute: perm must be a permutation of range({channels}), got {len(self.perm)} "
                             "entries" + ("" if len(self.perm) != channels else " with repeats or gaps"))
        return channels

    def apply(self, reach: Reach) -> Reach:
        self.num_out(reach.channels)
        return reach.select(torch.tensor(self.perm, device=reach.index.device))


@dataclass(frozen=True)
class Identity(Spec):
    """A channel-wise layer (activation, BatchNorm, pooling): each channel reads itself."""

    def num_out(self, channels: int) -> int:
        return channels

    def apply(self, reach: Reach) -> Reach:
        return reach


def _apply_all(specs: Sequence[Spec], reach: Reach) -> Reach:
    for spec in specs:
        reach = spec.apply(reach)
    return reach


def _num_out_all(specs: Sequence[Spec], channels: int) -> int:
    for spec in specs:
        channels = spec.num_out(channels)
    return channels


@dataclass(frozen=True)
class Residual(Spec):
    """``y = body(x) + x``: the body's flow plus the identity (the body must keep the channel count)."""

    body: Tuple[Spec, ...]

    def __init__(self, *body: Spec):
        object.__setattr__(self, "body", tuple(body))

    def num_out(self, channels: int) -> int:
        out = _num_out_all(self.body, channels)
        if out != channels:
            raise ValueError(f"Residual: the body maps {channels} channels to {out}; a residual needs equal counts")
        return channels

    def apply(self, reach: Reach) -> Reach:
        return _apply_all(self.body, reach).union(reach)


@dataclass(frozen=True)
class Concat(Spec):
    """Branches that each read the full input, outputs concatenated (e.g. a stride-2 ShuffleNetV2 unit)."""

    branches: Tuple[Tuple[Spec, ...], ...]

    def __init__(self, *branches: Sequence[Spec]):
        object.__setattr__(self, "branches", tuple(tuple(b) for b in branches))

    def num_out(self, channels: int) -> int:
        return sum(_num_out_all(b, channels) for b in self.branches)

    def apply(self, reach: Reach) -> Reach:
        return Reach.cat([_apply_all(b, reach) for b in self.branches])


@dataclass(frozen=True)
class Split(Spec):
    """Channels split into chunks of ``sizes``, branch ``i`` on chunk ``i``, outputs concatenated.

    ShuffleNetV2's basic unit is ``Split((C/2, C/2), [], [Pointwise(), Depthwise(), Pointwise()])``
    followed by ``Shuffle(2)``; an empty branch passes its chunk through.
    """

    sizes: Tuple[int, ...]
    branches: Tuple[Tuple[Spec, ...], ...]

    def __init__(self, sizes: Sequence[int], *branches: Sequence[Spec]):
        if len(sizes) != len(branches):
            raise ValueError(f"Split: {len(sizes)} chunk sizes but {len(branches)} branches")
        object.__setattr__(self, "sizes", tuple(sizes))
        object.__setattr__(self, "branches", tuple(tuple(b) for b in branches))

    def num_out(self, channels: int) -> int:
        if sum(self.sizes) != channels:
            raise ValueError(f"Split: chunk sizes {self.sizes} sum to {sum(self.sizes)}, not the {channels} channels")
        return sum(_num_out_all(b, n) for b, n in zip(self.branches, self.sizes))

    def apply(self, reach: Reach) -> Reach:
        self.num_out(reach.channels)
        chunks = torch.arange(reach.channels, device=reach.index.device).split(list(self.sizes))
        return Reach.cat([_apply_all(b, reach.select(idx)) for b, idx in zip(self.branches, chunks)])


# -- reading specs off real modules ------------------------------------------------
_CHANNELWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
                nn.Hardsigmoid, nn.Mish, nn.ELU, nn.Identity, nn.Dropout, nn.modules.batchnorm._BatchNorm,
                nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)


def from_module(module: nn.Module, in_channels: int) -> List[Spec]:
    """The specs of a real module stack, checked against ``in_channels``.

    Reads ``nn.Conv1d/2d/3d`` (any groups), ``nn.ChannelShuffle``, gridgnn's
    ``NodeLinear``, ``GridConv`` (and ``GridConv1d/2d/3d``) and ``ChannelShuffle``,
    ``nn.GroupNorm`` (mixes within its groups), channel-wise layers (activations,
    BatchNorm, pooling, dropout: :class:`Identity`) and ``nn.Sequential`` nesting.

    Raises:
        TypeError: for any other module, naming its path in ``module``.
        ValueError: when a layer's channels do not match what reaches it.
    """
    from .nn import ChannelShuffle, GridConv, NodeLinear

    specs: List[Spec] = []
    channels = in_channels

    def visit(mod: nn.Module, path: str) -> None:
        nonlocal channels
        if isinstance(mod, nn.Sequential):
            for name, child in mod.named_children():
                visit(child, f"{path}.{name}" if path else name)
            return
        label = path or type(mod).__name__
        if isinstance(mod, (nn.modules.conv._ConvNd, GridConv, NodeLinear)):
            if getattr(mod, "transposed", False):
                raise TypeError(f"flow.from_module: {label} is a transposed conv ({type(mod).__name__}), "
                                "which flow does not model")
            if mod.in_channels != channels:
                raise ValueError(f"flow.from_module: {label} expects {mod.in_channels} input channels but "
                                 f"{channels} reach it")
            kernel = getattr(mod, "kernel_size", (1,))
            if all(k == 1 for k in kernel):
                spec = Pointwise(mod.groups, mod.out_channels)
            elif mod.groups == mod.in_channels:
                spec = Depthwise(tuple(kernel), mod.out_channels // mod.in_channels)
            else:
                spec = Conv(tuple(kernel), mod.groups, mod.out_channels)
        elif isinstance(mod, (nn.ChannelShuffle, ChannelShuffle)):
            spec = Shuffle(mod.groups)
        elif isinstance(mod, nn.GroupNorm):
            spec = Pointwise(mod.num_groups)
        elif isinstance(mod, _CHANNELWISE):
            spec = Identity()
        else:
            raise TypeError(f"flow.from_module: unsupported module {label} ({type(mod).__name__}); supported: "
                            "convs, channel shuffles, NodeLinear, GridConv, GroupNorm, channel-wise layers and "
                            "nn.Sequential. Write its specs by hand (Residual, Concat, Split, Permute)")
        channels = spec.num_out(channels)
        specs.append(spec)

    visit(module, "")
    return specs


# -- reachability ------------------------------------------------------------------
def _walk(specs: Sequence[Spec], channels: int, device=None):
    """Yield the :class:`Reach` after each spec, with a clear error for a spec that does not fit."""
    reach = Reach.identity(channels, device)
    for i, spec in enumerate(specs):
        try:
            spec.num_out(reach.channels)
        except ValueError as exc:
            raise ValueError(f"spec {i} ({spec!r}) does not fit the {reach.channels} channels reaching it: "
                             f"{exc}") from None
        reach = spec.apply(reach)
        yield reach


def reachability_by_depth(specs: Sequence[Spec], channels: int, device=None) -> List[Tensor]:
    """The reach matrix after each prefix of ``specs``: ``[R_0 = I, R_1, ..., R_L]``, each ``[C_i, C_in]``."""
    return [Reach.identity(channels, device).dense()] + [r.dense() for r in _walk(specs, channels, device)]


def reachability(specs: Sequence[Spec], channels: int, device=None) -> Tensor:
    r"""BoolTensor ``[C_out, C_in]``: true iff output channel ``o`` depends on input channel ``i``.

    With :math:`\mathbf{M}_\ell` the 0/1 connectivity of spec :math:`\ell`
    (:func:`connectivity`), the reach is the boolean product

    .. math::
        \mathbf{R} = \mathbf{M}_L \odot \cdots \odot \mathbf{M}_1,
        \qquad
        R_{oi} = 1 \iff \text{a path } (0, i) \to \dots \to (L, o) \text{ exists in } :func:`flow_graph`,

    equal to the non-zero pattern of the stack's Jacobian (for generic weights).
    Computed structurally (:class:`Reach`: block ORs and row gathers), never by
    float matrix products.

    Args:
        specs: the layer specs, first layer first.
        channels (int): input channels :math:`C_{in}`.
        device: where to compute (CUDA works too).

    Shapes:
        - **output:** ``[C_out, C_in]`` bool, ``C_out`` the channels after the last spec
    """
    last = deque(_walk(specs, channels, device), maxlen=1)   # keep only the final reach
    return (last[0] if last else Reach.identity(channels, device)).dense()


def mixing_depth(specs: Sequence[Spec], channels: int, device=None) -> Optional[int]:
    r"""The smallest number of leading specs after which every output depends on every input; None if never.

    .. math::
        d^\ast = \min \{ d : \mathbf{M}_d \odot \cdots \odot \mathbf{M}_1 = \mathbf{1}\mathbf{1}^{\top} \}

    i.e. the first depth at which every node ``(d, o)`` of :func:`flow_graph` is reachable
    from every input node ``(0, i)``. ``0`` when ``channels == 1``.

    Args:
        specs: the layer specs, first layer first.
        channels (int): input channels.
        device: where to compute.
    """
    if Reach.identity(channels, device).all():
        return 0
    for depth, reach in enumerate(_walk(specs, channels, device), start=1):
        if reach.all():
            return depth
    return None


def connectivity(spec: Spec, channels: int) -> Tensor:
    """One spec's own connectivity ``[C_out, C_in]`` (its reach from the identity)."""
    return reachability([spec], channels)


def path_counts(specs: Sequence[Spec], channels: int) -> Tensor:
    """LongTensor ``[C_out, C_in]``: number of distinct paths through the flow graph (integer products)."""
    counts = torch.eye(channels, dtype=torch.long)
    for spec in specs:
        counts = connectivity(spec, counts.size(0)).long() @ counts
    return counts


# -- the flow graph ----------------------------------------------------------------
def flow_graph(specs: Sequence[Spec], channels: int):
    """``networkx.DiGraph`` with nodes ``(layer, channel)``; an edge where layer ``i``'s channel reads ``i-1``'s.

    Layer 0 is the input; node attribute ``pos`` places layers in columns, edge
    attribute ``spec`` names the layer.
    """
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(((0, c), {"pos": (0, -c)}) for c in range(channels))
    for layer, spec in enumerate(specs, start=1):
        conn = connectivity(spec, channels)                                   # [C_out, C_in]
        graph.add_nodes_from(((layer, c), {"pos": (layer, -c)}) for c in range(conn.size(0)))
        out_idx, in_idx = conn.nonzero(as_tuple=True)
        graph.add_edges_from(((layer - 1, i), (layer, o), {"spec": repr(spec)})
                             for o, i in zip(out_idx.tolist(), in_idx.tolist()))
        channels = conn.size(0)
    return graph


def draw_flow_graph(specs: Sequence[Spec], channels: int, ax=None, highlight: Optional[int] = None):
    """Draw the flow graph with layers in columns; ``highlight`` colours what input channel ``highlight`` reaches."""
    import matplotlib.pyplot as plt
    import networkx as nx

    graph = flow_graph(specs, channels)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 * (len(specs) + 1), 0.35 * channels + 1))
    colors = "tab:gray"
    if highlight is not None:
        reached = nx.descendants(graph, (0, highlight)) | {(0, highlight)}
        colors = ["tab:red" if n in reached else "lightgray" for n in graph.nodes]
    nx.draw_networkx(graph, nx.get_node_attributes(graph, "pos"), ax=ax, node_size=60, with_labels=False,
                     node_color=colors, edge_color="lightgray", arrows=False)
    ax.set_xticks(range(len(specs) + 1), ["input"] + [repr(s) for s in specs], rotation=30, ha="right", fontsize=7)
    ax.tick_params(left=False, bottom=True, labelbottom=True)
    ax.set_title(f"message flow over {channels} channels")
    return ax


def plot_reachability(specs: Sequence[Spec], channels: int, axes=None):
    """Heatmaps of the reach matrix after each spec (row: output channel, column: input channel)."""
    import matplotlib.pyplot as plt

    reaches = reachability_by_depth(specs, channels)[1:]
    if axes is None:
        _, axes = plt.subplots(1, len(reaches), figsize=(2.2 * len(reaches), 2.4), squeeze=False)
        axes = axes[0]
    for depth, (ax, reach) in enumerate(zip(axes, reaches), start=1):
        ax.imshow(reach.cpu().numpy(), cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"depth {depth}\n{reach.float().mean():.0%} reached", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    return axes


# -- group partitions and interleaved group convolutions --------------------------
def group_partition(channels: int, groups: int, perm: Optional[Sequence[int]] = None) -> Tensor:
    """LongTensor ``[C]``: the group of each channel of a grouped layer, read through ``perm``.

    Without ``perm``, channel ``c`` is in group ``c // (C / groups)``. With the
    permutation a shuffle applies before the layer (``out[i] = in[perm[i]]``),
    the labels are expressed on the channels *before* the shuffle.
    """
    if channels % groups:
        raise ValueError(f"groups={groups} must divide channels={channels}")
    labels = torch.arange(channels) // (channels // groups)
    if perm is None:
        return labels
    out = torch.empty_like(labels)
    out[torch.as_tensor(list(perm))] = labels
    return out


def _as_labels(partition) -> Tensor:
    if isinstance(partition, Tensor):
        return partition.long()
    labels = {}
    for k, block in enumerate(partition):
        for c in block:
            if c in labels:
                raise ValueError(f"channel {c} appears in two blocks of the partition")
            labels[c] = k
    if sorted(labels) != list(range(len(labels))):
        raise ValueError("a partition must cover channels 0..C-1 exactly once")
    return torch.tensor([labels[c] for c in range(len(labels))])


def is_complementary(partition_a, partition_b) -> bool:
    """The interleaved-group-convolution complementary condition on two partitions of the same channels.

    ``partition_a`` groups the channels as the first grouped layer writes them,
    ``partition_b`` as the second reads them (labels ``[C]`` or lists of
    channel blocks). Complementary: every block of A meets every block of B in
    exactly one channel. Then the two grouped layers are together dense, with
    exactly one path from each input to each output (Zhang et al., *Interleaved
    Group Convolutions*, 2017; IGCV2, 2018).
    """
    a, b = _as_labels(partition_a), _as_labels(partition_b)
    if a.shape != b.shape:
        raise ValueError(f"the partitions cover different channel counts: {a.numel()} and {b.numel()}")
    meet = torch.zeros(int(a.max()) + 1, int(b.max()) + 1, dtype=torch.long)
    meet.index_put_((a, b), torch.ones_like(a), accumulate=True)
    return bool((meet == 1).all())


def shuffle_mixing_layers(channels: int, groups: int) -> Optional[int]:
    r"""Closed form: grouped pointwise layers needed to mix all channels with shuffles between them.

    With group size :math:`n = C/g`, every grouped layer multiplies a channel's
    reach by at most :math:`n`, so :math:`L \ge \lceil \log_n C \rceil`, and the
    ShuffleNet shuffle attains the bound (e.g. :math:`L = 2` whenever
    :math:`g \le n`). ``None`` when :math:`n = 1` (depthwise: never mixes).
    In specs, ``[Pointwise(g), Shuffle(g)] * (L - 1) + [Pointwise(g)]`` has
    ``mixing_depth == 2 * L - 1``.
    """
    if channels % groups:
        raise ValueError(f"groups={groups} must divide channels={channels}")
    n = channels // groups
    if n == 1:
        return None if channels > 1 else 1
    layers, reach = 1, n
    while reach < channels:
        layers, reach = layers + 1, reach * n
    return layers


# -- spatial flow ------------------------------------------------------------------
def receptive_field(graphs: Sequence, position: Union[int, Sequence[int]]) -> Tensor:
    """Input pixels an output position depends on, through a stack of grid graphs.

    Args:
        graphs: the :class:`~gridgnn.GridGraph` of each layer, first layer first
            (each layer's input is the previous layer's output).
        position: the output node (int) or its coordinates in the last graph's ``out_size``.

    Returns:
        BoolTensor shaped like the first graph's ``in_size``. A 1x1 layer's graph
        maps each node to itself, so it never grows the field.
    """
    if not graphs:
        raise ValueError("receptive_field needs at least one graph")
    for i, (prev, nxt) in enumerate(zip(graphs, graphs[1:])):
        if prev.out_size != nxt.in_size:
            raise ValueError(f"graph {i} outputs {prev.out_size} but graph {i + 1} reads {nxt.in_size}")
    last = graphs[-1]
    index = position if isinstance(position, int) else \
        int(torch.tensor(position) @ torch.tensor([math.prod(last.out_size[d + 1:]) for d in range(last.ndim)]))
    mask = torch.zeros(last.num_dst_nodes, dtype=torch.bool, device=last.device)
    mask[index] = True
    for g in reversed(graphs):
        src, dst = g.edge_index
        prev = torch.zeros(g.num_src_nodes, dtype=torch.bool, device=g.device)
        prev[src[mask[dst]]] = True
        mask = prev
    return mask.view(graphs[0].in_size)
