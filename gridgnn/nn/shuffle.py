"""Channel shuffle on node features (the channel axis is last)."""
from __future__ import annotations

from torch import Tensor, nn

from .._checks import divides


def shuffle_permutation(channels: int, groups: int) -> list:
    """``perm`` with ``out[..., i] = in[..., perm[i]]`` for a shuffle of ``groups`` groups.

    Input channel ``a * (C / g) + b`` (group ``a``, index ``b``) moves to output ``b * g + a``,
    exactly as ``torch.nn.ChannelShuffle``.

    Example:
        >>> shuffle_permutation(6, 2)                              # output channel i reads input perm[i]
        [0, 3, 1, 4, 2, 5]
    """
    check_shuffle(channels, groups)
    per_group = channels // groups
    return [(i % groups) * per_group + i // groups for i in range(channels)]


def check_shuffle(channels: int, groups: int) -> None:
    """Raise a ``ValueError`` unless ``groups`` is a positive int dividing ``channels``."""
    divides(groups, channels, "channels", "channel shuffle")


class ChannelShuffle(nn.Module):
    r"""Channel shuffle (ShuffleNet) on the last axis of node features.

    Splits the :math:`C` channels into :math:`g` groups of :math:`n = C/g` and
    transposes the :math:`g \times n` arrangement, so that the next grouped layer's
    every group receives channels from every group of the previous one. A fixed
    permutation matrix :math:`\mathbf{P}`, the same at every node:

    .. math::
        \mathbf{Y} = \mathbf{X} \mathbf{P}^{\top}
        \qquad
        \mathbf{y}_i[b g + a] = \mathbf{x}_i[a n + b],\quad 0 \le a < g,\ 0 \le b < n

    Equal to ``torch.nn.ChannelShuffle(groups)`` on the image whose nodes are ``x``.

    Args:
        groups (int): number of groups :math:`g`; must divide the channel count.

    Shapes:
        - **input:** :math:`(*, C)` node features, e.g. ``[N, C]`` or ``[B, N, C]``
        - **output:** :math:`(*, C)`

    Example:
        >>> ChannelShuffle(2)(torch.arange(6.).view(1, 6))
        tensor([[0., 3., 1., 4., 2., 5.]])
    """

    def __init__(self, groups: int):
        super().__init__()
        check_shuffle(groups, groups)
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        check_shuffle(x.size(-1), self.groups)
        return x.unflatten(-1, (self.groups, -1)).transpose(-1, -2).flatten(-2)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
