"""Small classifiers built from the graph-native blocks of :mod:`gridgnn.nn`.

Both take images ``[B, C, H, W]`` (they turn them into node features once) and
return logits ``[B, num_classes]``. :func:`gridgnn.testing.to_torch_convs` gives
each its conv twin (same parameters, computing through torch's convs), and
:func:`gridgnn.training.train_twins` trains a model and its twin side by side on
:func:`gridgnn.training.digits_dataset` (scikit-learn's 8x8 digits).
"""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .graph import to_nodes
from .nn import Bottleneck, GridConv2d, InvertedResidual, NodeBatchNorm, ShuffleUnit

__all__ = ["GridResNet", "GridMobileShuffleNet"]


class _GridClassifier(nn.Module):
    """Stem conv + BN + ReLU, a sequence of blocks carried with their grid size, mean over nodes, linear head."""

    def __init__(self, in_channels: int, stem_channels: int, blocks: Sequence[nn.Module], head_channels: int,
                 num_classes: int):
        super().__init__()
        self.stem = GridConv2d(in_channels, stem_channels, 3, padding=1, bias=False)
        self.stem_bn = NodeBatchNorm(stem_channels)
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(head_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        size = tuple(x.shape[2:])
        h = F.relu(self.stem_bn(self.stem.forward_nodes(to_nodes(x), size)))   # [B, H*W, C]
        for block in self.blocks:
            h, size = block(h, size), block.out_size(size)
        return self.head(h.mean(-2))                                           # global mean over nodes


class GridResNet(_GridClassifier):
    r"""A ResNet-style classifier on grid graphs: stem, then one :class:`~gridgnn.nn.Bottleneck` per stage.

    Every stage after the first halves the grid (stride-2 3x3 message passing and
    a projection shortcut); the head averages node features and applies a linear
    map: :math:`\hat{\mathbf{y}} = \mathbf{W}_{fc}\,\tfrac{1}{N}\sum_i \mathbf{h}_i + \mathbf{b}_{fc}`.

    Args:
        num_classes (int, default 10), in_channels (int, default 1),
        widths (tuple): output channels per stage (bottleneck width = width / 4 + ...), groups: ResNeXt cardinality.

    Shapes:
        - **input:** ``[B, C_in, H, W]``; **output:** ``[B, num_classes]``

    Example:
        >>> from gridgnn.models import GridResNet
        >>> GridResNet(num_classes=10)(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, widths: Sequence[int] = (16, 32),
                 groups: int = 1):
        blocks, cin = [], widths[0]
        for i, width in enumerate(widths):
            blocks.append(Bottleneck(cin, max(width // 2, groups), width, stride=1 if i == 0 else 2, groups=groups))
            cin = width
        super().__init__(in_channels, widths[0], blocks, widths[-1], num_classes)


class GridMobileShuffleNet(_GridClassifier):
    r"""A MobileNetV2/ShuffleNet-style classifier: inverted residuals and ShuffleNet units on grid graphs.

    Per stage: an :class:`~gridgnn.nn.InvertedResidual` (stride 2 after the first
    stage) followed by a :class:`~gridgnn.nn.ShuffleUnit` (grouped 1x1 + shuffle
    + depthwise 3x3), then mean over nodes and a linear head.

    Args:
        num_classes (int, default 10), in_channels (int, default 1),
        widths (tuple, default (12, 24)): channels per stage (divisible by 4 * groups),
        groups (int, default 3), expand_ratio (int, default 4).

    Shapes:
        - **input:** ``[B, C_in, H, W]``; **output:** ``[B, num_classes]``

    Example:
        >>> from gridgnn.models import GridMobileShuffleNet
        >>> GridMobileShuffleNet(num_classes=10)(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, widths: Sequence[int] = (12, 24),
                 groups: int = 3, expand_ratio: int = 4):
        blocks, cin = [], widths[0]
        for i, width in enumerate(widths):
            blocks.append(InvertedResidual(cin, width, stride=1 if i == 0 else 2, expand_ratio=expand_ratio))
            blocks.append(ShuffleUnit(width, groups))
            cin = width
        super().__init__(in_channels, widths[0], blocks, widths[-1], num_classes)


def __getattr__(name: str):
    # the data set and the training loop live in gridgnn.training
    if name in ("digits_dataset", "train_twins", "TwinTraining"):
        import warnings

        warnings.warn(f"gridgnn.models.{name} moved to gridgnn.training.{name}; the old path goes in 0.3",
                      DeprecationWarning, stacklevel=2)
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
