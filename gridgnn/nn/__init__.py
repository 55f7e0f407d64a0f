"""Graph layers: node-wise maps and offset-typed message passing, image-level drop-ins, pools and blocks."""
from . import functional
from ._compiled import compiled_kernels
from .blocks import (
                     Bottleneck,
                     GridBlock,
                     InceptionBlock,
                     InvertedResidual,
                     NiNBlock,
                     ProjectionShortcut,
                     ShuffleUnit,
                     SqueezeExcitation,
)
from .conv_nd import GridConv1d, GridConv2d, GridConv3d
from .conv_transpose import GridConvTranspose1d, GridConvTranspose2d, GridConvTranspose3d
from .grid_conv import GridConv
from .node_linear import NodeLinear
from .norm import NodeBatchNorm
from .pool import (
                     GridAdaptiveAvgPool1d,
                     GridAdaptiveAvgPool2d,
                     GridAdaptiveAvgPool3d,
                     GridAdaptiveMaxPool1d,
                     GridAdaptiveMaxPool2d,
                     GridAdaptiveMaxPool3d,
                     GridAvgPool1d,
                     GridAvgPool2d,
                     GridAvgPool3d,
                     GridMaxPool,
                     GridMaxPool1d,
                     GridMaxPool2d,
                     GridMaxPool3d,
)
from .shuffle import ChannelShuffle, shuffle_permutation
from .twins import TWINS, twin_of

__all__ = ["functional", "compiled_kernels", "NodeLinear", "GridConv", "GridConv1d", "GridConv2d", "GridConv3d",
           "GridConvTranspose1d", "GridConvTranspose2d", "GridConvTranspose3d",
           "GridMaxPool1d", "GridMaxPool2d", "GridMaxPool3d", "GridAvgPool1d", "GridAvgPool2d", "GridAvgPool3d",
           "GridAdaptiveAvgPool1d", "GridAdaptiveAvgPool2d", "GridAdaptiveAvgPool3d",
           "GridAdaptiveMaxPool1d", "GridAdaptiveMaxPool2d", "GridAdaptiveMaxPool3d", "GridMaxPool",
           "ChannelShuffle", "shuffle_permutation", "NodeBatchNorm", "TWINS", "twin_of",
           "GridBlock", "ProjectionShortcut", "Bottleneck",
           "InceptionBlock", "InvertedResidual", "SqueezeExcitation", "NiNBlock", "ShuffleUnit"]
