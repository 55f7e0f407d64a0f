"""Layer specs: the channel connectivity of each kind of layer, and :class:`Reach`, what channels depend on."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .._checks import check_groups, positive_int
from .._types import Device
from ..errors import GridValueError
from ..nn.shuffle import check_shuffle, shuffle_permutation

__all__ = ["Reach", "Spec", "Pointwise", "Conv", "Depthwise", "Shuffle", "Permute", "Identity", "Residual", "Concat",
           "Split"]


def _check_groups(channels: int, groups: int, out_channels: int, spec: "Spec") -> None:
    check_groups(channels, out_channels, groups, repr(spec))


@dataclass(frozen=True)
class Reach:
    """What each current channel depends on, stored as distinct rows and an index.

    The reach matrix is ``rows[index]`` (``[C, C_in]``). Grouped layers leave one
    distinct row per group and permutations only move ``index``, so most specs
    cost O(C) or O(groups * C_in) instead of O(C * C_in).

    Example:
        >>> from gridgnn import flow
        >>> reach = flow.Pointwise(2).apply(flow.Reach.identity(4))
        >>> reach.dense().int().tolist()                          # [C_out, C_in]
        [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    """

    rows: Tensor   # [R, C_in] bool, distinct dependency sets
    index: Tensor  # [C] long, row of each channel

    @classmethod
    def identity(cls, channels: int, device: Device = None) -> "Reach":
        positive_int(channels, "channels")
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
    """A layer's channel connectivity. Subclasses define :meth:`num_out` and :meth:`apply`.

    Example:
        >>> from gridgnn import flow
        >>> isinstance(flow.Pointwise(2), flow.Spec), flow.Pointwise(2).num_out(8)
        (True, 8)
    """

    def num_out(self, channels: int) -> int:
        """Channels this spec outputs for ``channels`` inputs (raises ``ValueError`` if they do not fit)."""
        raise NotImplementedError

    def apply(self, reach: Reach) -> Reach:
        """What each output channel depends on, given what each input channel depends on."""
        raise NotImplementedError


class _Grouped(Spec):
    """Shared flow of grouped convs: output group ``k`` reads every channel of input group ``k``."""

    def __post_init__(self):
        positive_int(self.groups, "groups", type(self).__name__)
        if self.out_channels is not None:
            positive_int(self.out_channels, "out_channels", type(self).__name__)

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
    """1x1 conv with ``groups`` channel blocks (``groups=1``: dense); ``out_channels`` defaults to the input's.

    Example:
        >>> from gridgnn import flow
        >>> flow.connectivity(flow.Pointwise(2), 4).int().tolist()     # two groups: block-diagonal
        [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    """

    groups: int = 1
    out_channels: Optional[int] = None


@dataclass(frozen=True, repr=False)
class Conv(_Grouped):
    """A k x k conv with ``groups``: across channels the same flow as :class:`Pointwise`.

    Example:
        >>> from gridgnn import flow
        >>> flow.connectivity(flow.Conv(3, groups=2), 4).int().tolist()   # channels mix as a grouped pointwise map
        [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    """

    kernel_size: Union[int, Tuple[int, ...]] = 3
    groups: int = 1
    out_channels: Optional[int] = None


@dataclass(frozen=True)
class Depthwise(Spec):
    """Depthwise conv (groups = channels): each output reads one input channel; ``multiplier`` outputs each.

    Example:
        >>> from gridgnn import flow
        >>> flow.connectivity(flow.Depthwise(3), 3).int().tolist()       # every channel keeps to itself
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    """

    kernel_size: int = 3
    multiplier: int = 1

    def __post_init__(self):
        positive_int(self.multiplier, "multiplier", "Depthwise")

    def num_out(self, channels: int) -> int:
        return channels * self.multiplier

    def apply(self, reach: Reach) -> Reach:
        if self.multiplier == 1:
            return reach
        return reach.select(torch.arange(reach.channels, device=reach.index.device).repeat_interleave(self.multiplier))


@dataclass(frozen=True)
class Shuffle(Spec):
    """ShuffleNet's channel shuffle with ``groups`` groups (``torch.nn.ChannelShuffle``).

    Example:
        >>> from gridgnn import flow
        >>> flow.connectivity(flow.Shuffle(2), 4).int().tolist()
        [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
    """

    groups: int

    def num_out(self, channels: int) -> int:
        check_shuffle(channels, self.groups)
        return channels

    def apply(self, reach: Reach) -> Reach:
        return reach.select(torch.tensor(shuffle_permutation(reach.channels, self.groups), device=reach.index.device))


@dataclass(frozen=True)
class Permute(Spec):
    """A general channel permutation: output ``i`` is input ``perm[i]``.

    Example:
        >>> from gridgnn import flow
        >>> flow.connectivity(flow.Permute([2, 0, 1]), 3).int().tolist()    # [C_out, C_in]
        [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    """

    perm: Tuple[int, ...]

    def __init__(self, perm: Sequence[int]):
        object.__setattr__(self, "perm", tuple(int(p) for p in perm))

    def num_out(self, channels: int) -> int:
        if sorted(self.perm) != list(range(channels)):
            raise GridValueError(f"Permute: perm must be a permutation of range({channels}), got {len(self.perm)} "
                                 "entries" + ("" if len(self.perm) != channels else " with repeats or gaps"))
        return channels

    def apply(self, reach: Reach) -> Reach:
        self.num_out(reach.channels)
        return reach.select(torch.tensor(self.perm, device=reach.index.device))


@dataclass(frozen=True)
class Identity(Spec):
    """A channel-wise layer (activation, BatchNorm, pooling): each channel reads itself.

    Example:
        >>> from gridgnn import flow
        >>> flow.connectivity(flow.Identity(), 2).int().tolist()
        [[1, 0], [0, 1]]
    """

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
    """``y = body(x) + x``: the body's flow plus the identity (the body must keep the channel count).

    Example:
        >>> from gridgnn import flow
        >>> flow.connectivity(flow.Residual(flow.Shuffle(2)), 4).int().tolist()   # identity OR the body
        [[1, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]]
    """

    body: Tuple[Spec, ...]

    def __init__(self, *body: Spec):
        object.__setattr__(self, "body", tuple(body))

    def num_out(self, channels: int) -> int:
        out = _num_out_all(self.body, channels)
        if out != channels:
            raise GridValueError(f"Residual: the body maps {channels} channels to {out}; a residual needs equal counts")
        return channels

    def apply(self, reach: Reach) -> Reach:
        return _apply_all(self.body, reach).union(reach)


@dataclass(frozen=True)
class Concat(Spec):
    """Branches that each read the full input, outputs concatenated (e.g. a stride-2 ShuffleNetV2 unit).

    Example:
        >>> from gridgnn import flow
        >>> flow.Concat([flow.Pointwise(1, 2)], [flow.Identity()]).num_out(3)   # 2 + 3 channels
        5
    """

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

    Example:
        >>> from gridgnn import flow
        >>> flow.Split([2, 2], [flow.Identity()], [flow.Pointwise(1)]).num_out(4)
        4
    """

    sizes: Tuple[int, ...]
    branches: Tuple[Tuple[Spec, ...], ...]

    def __init__(self, sizes: Sequence[int], *branches: Sequence[Spec]):
        if len(sizes) != len(branches):
            raise GridValueError(f"Split: {len(sizes)} chunk sizes but {len(branches)} branches")
        object.__setattr__(self, "sizes", tuple(sizes))
        object.__setattr__(self, "branches", tuple(tuple(b) for b in branches))

    def num_out(self, channels: int) -> int:
        if sum(self.sizes) != channels:
            raise GridValueError(f"Split: chunk sizes {self.sizes} sum to {sum(self.sizes)}, "
                                 f"not the {channels} channels")
        return sum(_num_out_all(b, n) for b, n in zip(self.branches, self.sizes))

    def apply(self, reach: Reach) -> Reach:
        self.num_out(reach.channels)
        chunks = torch.arange(reach.channels, device=reach.index.device).split(list(self.sizes))
        return Reach.cat([_apply_all(b, reach.select(idx)) for b, idx in zip(self.branches, chunks)])
