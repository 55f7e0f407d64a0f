"""The flow graph as a networkx DAG over (layer, channel) nodes, and its drawings."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

from .._types import Axes
from .reach import connectivity, reachability_by_depth
from .specs import Spec

if TYPE_CHECKING:
    import networkx

__all__ = ["flow_graph", "draw_flow_graph", "plot_reachability"]


def _pyplot():
    """``matplotlib.pyplot``, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("gridgnn.flow's drawings need matplotlib: pip install matplotlib "
                          "(or pip install gridgnn[tutorials])") from None
    return plt


def flow_graph(specs: Sequence[Spec], channels: int) -> "networkx.DiGraph":
    """``networkx.DiGraph`` with nodes ``(layer, channel)``; an edge where layer ``i``'s channel reads ``i-1``'s.

    Layer 0 is the input; node attribute ``pos`` places layers in columns, edge
    attribute ``spec`` names the layer.

    Example:
        >>> from gridgnn import flow
        >>> graph = flow.flow_graph([flow.Pointwise(2), flow.Shuffle(2)], 4)
        >>> graph.number_of_nodes(), graph.number_of_edges()       # 3 layers of 4 channels
        (12, 12)
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


def draw_flow_graph(specs: Sequence[Spec], channels: int, ax: Axes = None,
                    highlight: Optional[int] = None) -> Axes:
    """Draw the flow graph with layers in columns; ``highlight`` colours what input channel ``highlight`` reaches.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from gridgnn import flow
        >>> ax = flow.draw_flow_graph([flow.Pointwise(2), flow.Shuffle(2)], 4)
        >>> type(ax).__name__
        'Axes'
    """
    import networkx as nx

    plt = _pyplot()
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


def plot_reachability(specs: Sequence[Spec], channels: int, axes: Axes = None) -> Axes:
    """Heatmaps of the reach matrix after each spec (row: output channel, column: input channel).

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from gridgnn import flow
        >>> ax = flow.plot_reachability([flow.Pointwise(2), flow.Shuffle(2), flow.Pointwise(2)], 4)
    """
    plt = _pyplot()
    reaches = reachability_by_depth(specs, channels)[1:]
    if axes is None:
        _, axes = plt.subplots(1, len(reaches), figsize=(2.2 * len(reaches), 2.4), squeeze=False)
        axes = axes[0]
    for depth, (ax, reach) in enumerate(zip(axes, reaches), start=1):
        ax.imshow(reach.cpu().numpy(), cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"depth {depth}\n{reach.float().mean():.0%} reached", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    return axes
