"""Graph layers: node-wise maps and offset-typed message passing, plus image-level drop-ins."""
from .conv_nd import GridConv1d, GridConv2d, GridConv3d
from .grid_conv import GridConv
from .node_linear import NodeLinear
from .shuffle import ChannelShuffle

__all__ = ["NodeLinear", "GridConv", "GridConv1d", "GridConv2d", "GridConv3d", "ChannelShuffle"]
