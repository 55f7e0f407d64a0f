r"""Message-flow graphs over channels: which input channel can reach which output channel.

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

Modules: ``specs`` (layer specs and :class:`Reach`),
``modules`` (:func:`from_module`), ``reach``
(reachability, mixing depth, path counts), ``drawing`` (the
networkx flow graph and its plots), ``partitions`` (group
partitions, IGC's complementary condition, the shuffle's closed form). The
receptive field over *pixels* is :func:`gridgnn.receptive_field`.
"""
from __future__ import annotations

import warnings
from typing import Sequence, Union

from torch import Tensor

from ..graph import GridGraph
from .drawing import draw_flow_graph, flow_graph, plot_reachability
from .modules import from_module
from .partitions import group_partition, is_complementary, shuffle_mixing_layers
from .reach import connectivity, mixing_depth, path_counts, reachability, reachability_by_depth
from .specs import Concat, Conv, Depthwise, Identity, Permute, Pointwise, Reach, Residual, Shuffle, Spec, Split

__all__ = ["Spec", "Reach", "Pointwise", "Conv", "Depthwise", "Shuffle", "Permute", "Identity", "Residual", "Concat",
           "Split", "from_module", "reachability", "reachability_by_depth", "mixing_depth", "path_counts",
           "connectivity", "flow_graph", "draw_flow_graph", "plot_reachability", "group_partition",
           "is_complementary", "shuffle_mixing_layers", "receptive_field"]


def receptive_field(graphs: Sequence[GridGraph], position: Union[int, Sequence[int]]) -> Tensor:
    """Deprecated alias of :func:`gridgnn.receptive_field` (pixels are not channels); removed in 0.3."""
    from ..receptive_field import receptive_field as _receptive_field

    warnings.warn("gridgnn.flow.receptive_field moved to gridgnn.receptive_field; the old name goes in 0.3",
                  DeprecationWarning, stacklevel=2)
    return _receptive_field(graphs, position)
