"""Graph layers: node-wise maps and offset-typed message passing, image-level drop-ins and blocks."""
from .blocks import (Bottleneck, GridBlock, InceptionBlock, InvertedResidual, NiNBlock, ProjectionShortcut,
                     ShuffleUnit, SqueezeExcitation)
from .conv_nd import GridConv1d, GridConv2d, GridConv3d
from .grid_conv import GridConv
from .node_linear import NodeLinear
from .norm import NodeBatchNorm
from .pool import GridMaxPool
from .shuffle import ChannelShuffle

__all__ = ["NodeLinear", "GridConv", "GridConv1d", "GridConv2d", "GridConv3d", "ChannelShuffle", "NodeBatchNorm",
           "GridMaxPool", "GridBlock", "ProjectionShortcut", "Bottleneck",
           "InceptionBlock", "InvertedResidual", "SqueezeExcitation", "NiNBlock", "ShuffleUnit"]
