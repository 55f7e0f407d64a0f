"""Reachability through a spec stack: which output channel depends on which input channel."""
from __future__ import annotations

from collections import deque
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from .._types import Device
from ..errors import GridValueError
from .specs import Reach, Spec

__all__ = ["reachability", "reachability_by_depth", "mixing_depth", "connectivity", "path_counts"]


def _walk(specs: Sequence[Spec], channels: int, device: Device = None):
    """Yield the :class:`Reach` after each spec, with a clear error for a spec that does not fit."""
    reach = Reach.identity(channels, device)
    for i, spec in enumerate(specs):
        try:
            spec.num_out(reach.channels)
        except ValueError as exc:
            raise GridValueError(f"spec {i} ({spec!r}) does not fit the {reach.channels} channels reaching it: "
                                 f"{exc}") from None
        reach = spec.apply(reach)
        yield reach


def reachability_by_depth(specs: Sequence[Spec], channels: int, device: Device = None) -> List[Tensor]:
    """The reach matrix after each prefix of ``specs``: ``[R_0 = I, R_1, ..., R_L]``, each ``[C_i, C_in]``.

    Example:
        >>> from gridgnn import flow
        >>> specs = [flow.Pointwise(4), flow.Shuffle(4), flow.Pointwise(4)]
        >>> [int(r.sum()) for r in flow.reachability_by_depth(specs, 16)]     # depth 0 is the identity
        [16, 64, 64, 256]
    """
    return [Reach.identity(channels, device).dense()] + [r.dense() for r in _walk(specs, channels, device)]


def reachability(specs: Sequence[Spec], channels: int, device: Device = None) -> Tensor:
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

    Example:
        >>> from gridgnn import flow
        >>> bool(flow.reachability([flow.Pointwise(4), flow.Shuffle(4), flow.Pointwise(4)], 16).all())
        True
    """
    last = deque(_walk(specs, channels, device), maxlen=1)   # keep only the final reach
    return (last[0] if last else Reach.identity(channels, device)).dense()


def mixing_depth(specs: Sequence[Spec], channels: int, device: Device = None) -> Optional[int]:
    r"""The smallest number of leading specs after which every output depends on every input; None if never.

    .. math::
        d^\ast = \min \{ d : \mathbf{M}_d \odot \cdots \odot \mathbf{M}_1 = \mathbf{1}\mathbf{1}^{\top} \}

    i.e. the first depth at which every node ``(d, o)`` of :func:`flow_graph` is reachable
    from every input node ``(0, i)``. ``0`` when ``channels == 1``.

    Args:
        specs: the layer specs, first layer first.
        channels (int): input channels.
        device: where to compute.

    Example:
        >>> from gridgnn import flow
        >>> flow.mixing_depth([flow.Pointwise(4), flow.Shuffle(4), flow.Pointwise(4)], 16)
        3
        >>> flow.mixing_depth([flow.Pointwise(4), flow.Pointwise(4)], 16) is None   # no shuffle: never mixes
        True
    """
    if Reach.identity(channels, device).all():
        return 0
    for depth, reach in enumerate(_walk(specs, channels, device), start=1):
        if reach.all():
            return depth
    return None


def connectivity(spec: Spec, channels: int) -> Tensor:
    """One spec's own connectivity ``[C_out, C_in]`` (its reach from the identity).

    Example:
        >>> from gridgnn import flow
        >>> flow.connectivity(flow.Pointwise(), 2).int().tolist()
        [[1, 1], [1, 1]]
    """
    return reachability([spec], channels)


def path_counts(specs: Sequence[Spec], channels: int) -> Tensor:
    """LongTensor ``[C_out, C_in]``: number of distinct paths through the flow graph (integer products).

    Raises:
        OverflowError: when a count exceeds int64 (e.g. 16 channels through 16 dense layers: 16^16 paths),
            naming the layer; counts are never wrapped around silently.

    Example:
        >>> from gridgnn import flow
        >>> flow.path_counts([flow.Pointwise(), flow.Pointwise()], 2).tolist()   # 2 paths between any two channels
        [[2, 2], [2, 2]]
    """
    counts = torch.eye(channels, dtype=torch.long)
    limit = torch.iinfo(torch.long).max
    for layer, spec in enumerate(specs, start=1):
        conn = connectivity(spec, counts.size(0)).long()
        # each entry sums at most (row sum of conn) terms of at most max(counts): bound it before multiplying
        if conn.sum(1).max().item() * counts.max().item() > limit:
            raise OverflowError(f"path_counts: the number of paths exceeds int64 at spec {layer} ({spec!r}); "
                                "use reachability() for whether a path exists")
        counts = conn @ counts
    return counts
