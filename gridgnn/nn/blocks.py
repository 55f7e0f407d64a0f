r"""CNN building blocks written natively on grid graphs.

Every block takes node features ``x`` (``[B, N, C]`` or ``[N, C]``) of a grid of
spatial ``size`` (a tuple, or a :class:`~gridgnn.GridGraph` whose ``in_size`` is
used) and returns node features of the grid ``block.out_size(size)``. Inside,
1x1 convs are :class:`NodeLinear` (node-wise maps), spatial convs are
:class:`GridConv2d` run on nodes (offset-typed message passing), BatchNorm is
:class:`NodeBatchNorm`.

**Weight mapping.** Parameter names follow the torch block each one mirrors
(listed in each docstring) and every shape is the torch conv's shape, except
that a :class:`NodeLinear` stores a 1x1 conv's ``[C_out, C_in/g, 1, 1]`` weight as
``[C_out, C_in/g]`` and loads the 4-D form directly. So a torch block with the
same attribute names loads with ``graph_block.load_state_dict(torch_block.state_dict())``.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..geometry import IntOrTuple
from ..graph import GridGraph, to_image, to_nodes
from .conv_nd import GridConv2d
from .node_linear import NodeLinear
from .norm import NodeBatchNorm
from .pool import GridMaxPool
from .shuffle import ChannelShuffle

SizeOrGraph = Union[Tuple[int, ...], GridGraph]   # a spatial size, or a GridGraph whose in_size it is

__all__ = ["GridBlock", "ProjectionShortcut", "Bottleneck", "InceptionBlock", "InvertedResidual",
           "SqueezeExcitation", "NiNBlock", "ShuffleUnit"]


def _size(size: SizeOrGraph) -> Tuple[int, ...]:
    return size.in_size if isinstance(size, GridGraph) else tuple(size)


class GridBlock(nn.Module):
    """Base of the blocks: ``forward(x, size)`` on node features, :meth:`out_size`, :meth:`forward_image`.

    Example:
        >>> block = Bottleneck(16, 4, 16)                          # any GridBlock runs on images too
        >>> block.forward_image(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 16, 8, 8])
    """

    def out_size(self, size: SizeOrGraph) -> Tuple[int, ...]:
        """Spatial size of the output grid for an input grid of ``size``."""
        return _size(size)

    def forward_image(self, x: Tensor) -> Tensor:
        """The block on an image ``[B, C, H, W]`` (via :func:`~gridgnn.to_nodes` / :func:`~gridgnn.to_image`)."""
        size = tuple(x.shape[2:])
        return to_image(self(to_nodes(x), size), self.out_size(size))


class ProjectionShortcut(GridBlock):
    r"""Projection shortcut: a strided 1x1 conv and BatchNorm where a residual changes shape.

    A strided 1x1 conv is message passing with one edge per target node,
    :math:`j = s \cdot i \to i`, then a node-wise map:

    .. math::
        \mathbf{Y} = \mathrm{BN}(\mathbf{S}\mathbf{X}\mathbf{W}^{\top})
        \qquad
        \mathbf{y}_i = \mathrm{BN}(\mathbf{W}\mathbf{x}_{s \cdot i})

    with :math:`\mathbf{S}` the 0/1 subsampling matrix.
    Parameters: ``conv`` (``GridConv2d``, 1x1, stride, no bias), ``bn``.

    Args:
        in_channels, out_channels (int): channels; stride (int): subsampling factor.

    Shapes:
        - **input:** ``[B, H*W, C_in]``; **output:** ``[B, ceil(H/s)*ceil(W/s), C_out]``

    Example:
        >>> shortcut = ProjectionShortcut(16, 32, stride=2)
        >>> shortcut(torch.randn(2, 64, 16), (8, 8)).shape
        torch.Size([2, 16, 32])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv = GridConv2d(in_channels, out_channels, 1, stride, bias=False)
        self.bn = NodeBatchNorm(out_channels)

    def out_size(self, size: SizeOrGraph) -> Tuple[int, ...]:
        return self.conv.geometry(_size(size)).out_size

    def forward(self, x: Tensor, size: SizeOrGraph) -> Tensor:
        return self.bn(self.conv.forward_nodes(x, _size(size)))


class Bottleneck(GridBlock):
    r"""ResNet / ResNeXt bottleneck: 1x1 reduce, (grouped) 3x3, 1x1 expand, residual.

    .. math::
        \mathbf{Y} = \mathrm{ReLU}\big(\mathrm{BN}_3(\mathrm{BN}_2'(\textstyle\sum_t \mathbf{A}_t
            \,\mathrm{BN}_1'(\mathbf{X}\mathbf{W}_1^{\top})\,\mathbf{W}_{2,t}^{\top})\,\mathbf{W}_3^{\top})
            + \mathrm{P}(\mathbf{X})\big)
        \qquad
        \mathbf{y}_i = \mathrm{ReLU}\big(\mathbf{W}_3\,\mathbf{h}_i + \mathrm{P}(\mathbf{x})_i\big),\;
        \mathbf{h}_i = \textstyle\sum_{(j \to i, t)} \mathbf{W}_{2,t}\,\mathrm{ReLU}(\mathbf{W}_1 \mathbf{x}_j)

    (BatchNorms folded into the node-wise form for brevity; ``BN'`` = BN + ReLU.)
    ``P`` is the identity or a :class:`ProjectionShortcut` when stride or channels change.
    Parameters: ``conv1, bn1, conv2, bn2, conv3, bn3`` and ``shortcut.conv, shortcut.bn``.

    Args:
        in_channels (int), width (int): bottleneck channels, out_channels (int),
        stride (int, default 1), groups (int, default 1; ResNeXt cardinality).

    Shapes:
        - **input:** ``[B, H*W, C_in]``; **output:** ``[B, H'*W', C_out]``, ``H' = ceil(H/stride)``

    Example:
        >>> block = Bottleneck(16, 4, 16)
        >>> block(torch.randn(2, 64, 16), (8, 8)).shape
        torch.Size([2, 64, 16])
    """

    def __init__(self, in_channels: int, width: int, out_channels: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv1, self.bn1 = NodeLinear(in_channels, width, bias=False), NodeBatchNorm(width)
        self.conv2 = GridConv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = NodeBatchNorm(width)
        self.conv3, self.bn3 = NodeLinear(width, out_channels, bias=False), NodeBatchNorm(out_channels)
        self.shortcut = ProjectionShortcut(in_channels, out_channels, stride) \
            if stride != 1 or in_channels != out_channels else None

    def out_size(self, size: SizeOrGraph) -> Tuple[int, ...]:
        return self.conv2.geometry(_size(size)).out_size

    def forward(self, x: Tensor, size: SizeOrGraph) -> Tensor:
        size = _size(size)
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2.forward_nodes(y, size)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x, size)))


class InceptionBlock(GridBlock):
    r"""GoogLeNet Inception block with 1x1 reductions before the 3x3 and 5x5 convs.

    Four branches concatenated on the channel axis:

    .. math::
        \mathbf{y}_i = \big[\,\mathbf{W}_1\mathbf{x}_i \;\|\;
            \textstyle\sum_{t} \mathbf{W}_{3,t}\mathbf{r}^{(3)}_{j_t(i)} \;\|\;
            \textstyle\sum_{t} \mathbf{W}_{5,t}\mathbf{r}^{(5)}_{j_t(i)} \;\|\;
            \mathbf{W}_p \max_{j \in \mathcal{N}(i)} \mathbf{x}_j \,\big]

    with :math:`\mathbf{r}^{(k)}_j = \mathrm{ReLU}(\mathbf{R}_k \mathbf{x}_j)` the 1x1
    reductions (ReLU after every conv, biases included; matrix form: each branch
    is ``sum_t A_t X W_t^T`` on its own grid graph). Parameters: ``branch1``,
    ``reduce3``, ``conv3``, ``reduce5``, ``conv5``, ``pool_proj``.

    Args:
        in_channels, c1, c3_reduce, c3, c5_reduce, c5, pool_proj (int): branch widths.

    Shapes:
        - **input:** ``[B, N, C_in]``; **output:** ``[B, N, c1 + c3 + c5 + pool_proj]``

    Example:
        >>> block = InceptionBlock(16, 8, 4, 8, 2, 4, 4)
        >>> block(torch.randn(2, 64, 16), (8, 8)).shape            # 8 + 8 + 4 + 4 channels
        torch.Size([2, 64, 24])
    """

    def __init__(self, in_channels: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int,
                 pool_proj: int):
        super().__init__()
        self.branch1 = NodeLinear(in_channels, c1)
        self.reduce3, self.conv3 = NodeLinear(in_channels, c3_reduce), GridConv2d(c3_reduce, c3, 3, padding=1)
        self.reduce5, self.conv5 = NodeLinear(in_channels, c5_reduce), GridConv2d(c5_reduce, c5, 5, padding=2)
        self.pool = GridMaxPool(3, 1, 1)
        self.pool_proj = NodeLinear(in_channels, pool_proj)

    def forward(self, x: Tensor, size: SizeOrGraph) -> Tensor:
        size = _size(size)
        b3 = self.conv3.forward_nodes(F.relu(self.reduce3(x)), size)
        b5 = self.conv5.forward_nodes(F.relu(self.reduce5(x)), size)
        b4 = self.pool_proj(self.pool(x, size))
        return F.relu(torch.cat([self.branch1(x), b3, b5, b4], dim=-1))


class InvertedResidual(GridBlock):
    r"""MobileNetV2 inverted residual: 1x1 expand (ratio t), depthwise 3x3, linear 1x1 projection.

    .. math::
        \mathbf{y}_i = [\mathbf{x}_i] + \mathrm{BN}\big(\mathbf{W}_p\,
            \mathrm{ReLU6}(\mathrm{BN}(\textstyle\sum_{(j \to i, t)} \mathbf{w}_t \odot
            \mathrm{ReLU6}(\mathrm{BN}(\mathbf{W}_e \mathbf{x}_j))))\big)

    (the residual term only with stride 1 and equal channels; depthwise weights
    :math:`\mathbf{w}_t` act channel-wise). Matrix form:
    :math:`\mathbf{Y} = [\mathbf{X}] + \mathrm{BN}(\phi(\sum_t \mathbf{A}_t \phi(\mathbf{X}\mathbf{W}_e^{\top})
    \mathrm{diag}(\mathbf{w}_t))\mathbf{W}_p^{\top})`.
    Parameters: ``expand, bn1`` (absent for t=1), ``depthwise, bn2, project, bn3``.

    Args:
        in_channels, out_channels (int), stride (int, default 1), expand_ratio (int, default 6).

    Shapes:
        - **input:** ``[B, H*W, C_in]``; **output:** ``[B, H'*W', C_out]``

    Example:
        >>> block = InvertedResidual(16, 16)
        >>> block(torch.randn(2, 64, 16), (8, 8)).shape
        torch.Size([2, 64, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expand_ratio: int = 6):
        super().__init__()
        hidden = in_channels * expand_ratio
        self.use_residual = stride == 1 and in_channels == out_channels
        if expand_ratio != 1:
            self.expand, self.bn1 = NodeLinear(in_channels, hidden, bias=False), NodeBatchNorm(hidden)
        else:
            self.expand = self.bn1 = None
        self.depthwise = GridConv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
        self.bn2 = NodeBatchNorm(hidden)
        self.project, self.bn3 = NodeLinear(hidden, out_channels, bias=False), NodeBatchNorm(out_channels)

    def out_size(self, size: SizeOrGraph) -> Tuple[int, ...]:
        return self.depthwise.geometry(_size(size)).out_size

    def forward(self, x: Tensor, size: SizeOrGraph) -> Tensor:
        y = x if self.expand is None else F.relu6(self.bn1(self.expand(x)))
        y = F.relu6(self.bn2(self.depthwise.forward_nodes(y, _size(size))))
        y = self.bn3(self.project(y))
        return x + y if self.use_residual else y


class SqueezeExcitation(GridBlock):
    r"""Squeeze-and-excitation: a gate per channel from the mean over all nodes.

    The two layers are 1x1 convs on a 1x1 map, i.e. node-wise maps on the one
    pooled node:

    .. math::
        \mathbf{s} = \sigma\big(\mathbf{W}_2\,\delta(\mathbf{W}_1 \bar{\mathbf{x}} + \mathbf{b}_1) + \mathbf{b}_2\big),
        \quad \bar{\mathbf{x}} = \tfrac{1}{N}\textstyle\sum_j \mathbf{x}_j
        \qquad
        \mathbf{y}_i = \mathbf{s} \odot \mathbf{x}_i
        \qquad
        \mathbf{Y} = \mathbf{X}\,\mathrm{diag}(\mathbf{s})

    Parameters: ``reduce``, ``expand`` (with biases).

    Args:
        channels (int), reduced (int): bottleneck width, activation: :math:`\delta`
        (default ``nn.ReLU``; EfficientNet uses ``nn.SiLU``).

    Shapes:
        - **input / output:** ``[B, N, C]`` or ``[N, C]``; ``size`` is not needed (any grid)

    Example:
        >>> se = SqueezeExcitation(16, 4)
        >>> se(torch.randn(2, 64, 16), (8, 8)).shape
        torch.Size([2, 64, 16])
    """

    def __init__(self, channels: int, reduced: int, activation: Callable[[], nn.Module] = nn.ReLU):
        super().__init__()
        self.reduce, self.expand = NodeLinear(channels, reduced), NodeLinear(reduced, channels)
        self.activation = activation()

    def forward(self, x: Tensor, size: Optional[SizeOrGraph] = None) -> Tensor:
        pooled = x.mean(-2, keepdim=True)                                          # [B, 1, C]
        return x * torch.sigmoid(self.expand(self.activation(self.reduce(pooled))))


class NiNBlock(GridBlock):
    r"""Network-in-Network "mlpconv": a spatial conv followed by a per-node MLP of two 1x1 layers.

    .. math::
        \mathbf{y}_i = \mathrm{ReLU}(\mathbf{W}_3\,\mathrm{ReLU}(\mathbf{W}_2\,
            \mathrm{ReLU}(\textstyle\sum_{(j \to i, t)} \mathbf{W}_{1,t}\mathbf{x}_j + \mathbf{b}_1)
            + \mathbf{b}_2) + \mathbf{b}_3)
        \qquad
        \mathbf{Y} = \phi(\phi(\phi(\textstyle\sum_t \mathbf{A}_t \mathbf{X}\mathbf{W}_{1,t}^{\top})
            \mathbf{W}_2^{\top})\mathbf{W}_3^{\top})

    Parameters: ``conv``, ``mlp1``, ``mlp2``.

    Args:
        in_channels, out_channels (int), kernel_size, stride, padding: of the spatial conv.

    Shapes:
        - **input:** ``[B, N_in, C_in]``; **output:** ``[B, N_out, C_out]``

    Example:
        >>> block = NiNBlock(3, 16, 3, padding=1)
        >>> block(torch.randn(2, 64, 3), (8, 8)).shape
        torch.Size([2, 64, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple = 3, stride: IntOrTuple = 1,
                 padding: IntOrTuple = 0):
        super().__init__()
        self.conv = GridConv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.mlp1, self.mlp2 = NodeLinear(out_channels, out_channels), NodeLinear(out_channels, out_channels)

    def out_size(self, size: SizeOrGraph) -> Tuple[int, ...]:
        return self.conv.geometry(_size(size)).out_size

    def forward(self, x: Tensor, size: SizeOrGraph) -> Tensor:
        y = F.relu(self.conv.forward_nodes(x, _size(size)))
        return F.relu(self.mlp2(F.relu(self.mlp1(y))))


class ShuffleUnit(GridBlock):
    r"""ShuffleNet (v1) unit, stride 1: grouped 1x1, channel shuffle, depthwise 3x3, grouped 1x1, residual.

    .. math::
        \mathbf{y}_i = \mathrm{ReLU}\big(\mathbf{x}_i + \mathrm{BN}(\mathbf{G}_2
            \,\mathrm{BN}(\textstyle\sum_{(j \to i, t)} \mathbf{w}_t \odot
            \mathbf{P}\,\mathrm{ReLU}(\mathrm{BN}(\mathbf{G}_1 \mathbf{x}_j))))\big)

    with block-diagonal :math:`\mathbf{G}_1, \mathbf{G}_2` (``groups`` blocks) and the
    shuffle permutation :math:`\mathbf{P}`; matrix form
    :math:`\mathbf{Y} = \phi(\mathbf{X} + \mathrm{BN}(\sum_t \mathbf{A}_t\,\phi(\mathbf{X}\mathbf{G}_1^{\top})
    \mathbf{P}^{\top}\mathrm{diag}(\mathbf{w}_t)\,\mathbf{G}_2^{\top}))`.
    Parameters: ``gconv1, bn1, depthwise, bn2, gconv2, bn3``.

    Args:
        channels (int), groups (int, default 3), bottleneck_ratio (int, default 4): mid = channels / ratio.

    Shapes:
        - **input / output:** ``[B, N, C]``

    Example:
        >>> unit = ShuffleUnit(24, groups=3)
        >>> unit(torch.randn(2, 64, 24), (8, 8)).shape
        torch.Size([2, 64, 24])
    """

    def __init__(self, channels: int, groups: int = 3, bottleneck_ratio: int = 4):
        super().__init__()
        mid = channels // bottleneck_ratio
        self.gconv1, self.bn1 = NodeLinear(channels, mid, bias=False, groups=groups), NodeBatchNorm(mid)
        self.shuffle = ChannelShuffle(groups)
        self.depthwise = GridConv2d(mid, mid, 3, 1, 1, groups=mid, bias=False)
        self.bn2 = NodeBatchNorm(mid)
        self.gconv2, self.bn3 = NodeLinear(mid, channels, bias=False, groups=groups), NodeBatchNorm(channels)

    def forward(self, x: Tensor, size: SizeOrGraph) -> Tensor:
        y = self.shuffle(F.relu(self.bn1(self.gconv1(x))))
        y = self.bn2(self.depthwise.forward_nodes(y, _size(size)))
        return F.relu(x + self.bn3(self.gconv2(y)))
