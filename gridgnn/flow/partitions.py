"""Group partitions of channels, the interleaved-group-convolution condition and the shuffle's closed form."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .._checks import divides
from ..errors import GridValueError

#: a partition of channels: a label per channel, or the channel blocks
Partition = Union[Tensor, Sequence[Sequence[int]]]

__all__ = ["group_partition", "is_complementary", "shuffle_mixing_layers"]


def group_partition(channels: int, groups: int, perm: Optional[Sequence[int]] = None) -> Tensor:
    """LongTensor ``[C]``: the group of each channel of a grouped layer, read through ``perm``.

    Without ``perm``, channel ``c`` is in group ``c // (C / groups)``. With the
    permutation a shuffle applies before the layer (``out[i] = in[perm[i]]``),
    the labels are expressed on the channels *before* the shuffle.

    Example:
        >>> from gridgnn import flow
        >>> flow.group_partition(4, 2).tolist()                    # the group of each channel
        [0, 0, 1, 1]
    """
    divides(groups, channels)
    labels = torch.arange(channels) // (channels // groups)
    if perm is None:
        return labels
    out = torch.empty_like(labels)
    out[torch.as_tensor(list(perm))] = labels
    return out


def _as_labels(partition: Partition) -> Tensor:
    if isinstance(partition, Tensor):
        return partition.long()
    labels = {}
    for k, block in enumerate(partition):
        for c in block:
            if c in labels:
                raise GridValueError(f"channel {c} appears in two blocks of the partition")
            labels[c] = k
    if sorted(labels) != list(range(len(labels))):
        raise GridValueError("a partition must cover channels 0..C-1 exactly once")
    return torch.tensor([labels[c] for c in range(len(labels))])


def is_complementary(partition_a: Partition, partition_b: Partition) -> bool:
    """The interleaved-group-convolution complementary condition on two partitions of the same channels.

    ``partition_a`` groups the channels as the first grouped layer writes them,
    ``partition_b`` as the second reads them (labels ``[C]`` or lists of
    channel blocks). Complementary: every block of A meets every block of B in
    exactly one channel. Then the two grouped layers are together dense, with
    exactly one path from each input to each output (Zhang et al., *Interleaved
    Group Convolutions*, 2017; IGCV2, 2018).

    Example:
        >>> from gridgnn import flow
        >>> a = flow.group_partition(4, 2)
        >>> flow.is_complementary(a, a), flow.is_complementary(a, torch.tensor([0, 1, 0, 1]))
        (False, True)
    """
    a, b = _as_labels(partition_a), _as_labels(partition_b)
    if a.shape != b.shape:
        raise GridValueError(f"the partitions cover different channel counts: {a.numel()} and {b.numel()}")
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

    Example:
        >>> from gridgnn import flow
        >>> flow.shuffle_mixing_layers(16, 4)                      # grouped pointwise layers until all channels mix
        2
    """
    divides(groups, channels)
    n = channels // groups
    if n == 1:
        return None if channels > 1 else 1
    layers, reach = 1, n
    while reach < channels:
        layers, reach = layers + 1, reach * n
    return layers
