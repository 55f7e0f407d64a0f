"""Image-level drop-ins for ``nn.Conv1d/2d/3d`` that run as grid-graph message passing."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..geometry import PADDING_MODES, ConvGeometry, IntOrTuple, Padding, ntuple, resolve_padding
from ..graph import conv_geometry, graph_from_geometry, to_image, to_nodes
from ._checks import check_like_weight, check_node_features
from ._init import check_torch_conv, copy_conv_parameters
from .dense import dense_grid_conv
from .grid_conv import GridConv

_MEMORY_FORMATS = {1: torch.contiguous_format, 2: torch.channels_last, 3: torch.channels_last_3d}


class _GridConvNd(GridConv):
    _ndim: int = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None, *, path: str = "auto"):
        nd = self._ndim
        super().__init__(in_channels, out_channels, ntuple(kernel_size, nd, "kernel_size"), groups, bias,
                         dim=nd, path=path, device=device, dtype=dtype)
        self.stride = ntuple(stride, nd, "stride")
        self.dilation = ntuple(dilation, nd, "dilation")
        self.padding = padding if isinstance(padding, str) else ntuple(padding, nd, "padding")
        # reject bad padding strings, "same" with stride and unknown modes up front, as torch does
        resolve_padding(self.padding, self.kernel_size, self.stride, self.dilation)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode

    def geometry(self, size) -> ConvGeometry:
        """The :class:`ConvGeometry` of this layer for an input of spatial ``size``."""
        return conv_geometry(self, size)

    def forward(self, input: Tensor) -> Tensor:
        nd, name = self._ndim, type(self).__name__
        if not isinstance(input, Tensor) or input.dim() not in (nd + 1, nd + 2):
            shape = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"{name} expects an input [B, C, {nd} spatial dims] or [C, {nd} spatial dims], "
                             f"got {shape}")
        unbatched = input.dim() == nd + 1
        x = input.unsqueeze(0) if unbatched else input
        if not x.is_floating_point():
            raise TypeError(f"{name}: input must be floating point, got {x.dtype}")
        check_like_weight(x, self.weight, name)
        if x.size(1) != self.in_channels:
            hint = f" (a {nd + 1}-dim input is read as unbatched [C, *spatial])" if unbatched else ""
            raise ValueError(f"{name}: input has {x.size(1)} channels (dim 1) but the layer expects "
                             f"in_channels={self.in_channels}{hint}")
        geom = self.geometry(x.shape[2:])
        out = self._run_nodes(to_nodes(x), geom)                             # [B, N_out, C_out]
        out = to_image(out, geom.out_size)                                   # [B, C_out, *S_out] channels-last view
        fmt = _MEMORY_FORMATS[nd] if x.is_contiguous(memory_format=_MEMORY_FORMATS[nd]) and \
            not x.is_contiguous() else torch.contiguous_format
        out = out.contiguous(memory_format=fmt)
        return out.squeeze(0) if unbatched else out

    def forward_nodes(self, x: Tensor, size) -> Tensor:
        """The layer on node features: ``[B, N_in, C_in]`` (or ``[N_in, C_in]``) of a grid of spatial
        ``size`` -> ``[B, N_out, C_out]``, ``N_out = prod(self.geometry(size).out_size)``."""
        check_node_features(x, self.in_channels, self.weight, type(self).__name__)
        geom = self.geometry(size)
        if x.size(-2) != math.prod(geom.in_size):
            raise ValueError(f"{type(self).__name__}: x has {x.size(-2)} nodes but size={geom.in_size} has "
                             f"{math.prod(geom.in_size)}")
        batched = x if x.dim() == 3 else x.unsqueeze(0)
        out = self._run_nodes(batched, geom)
        return out if x.dim() == 3 else out.squeeze(0)

    def _run_nodes(self, nodes: Tensor, geom: ConvGeometry) -> Tensor:
        if self.path == "general":
            return GridConv.forward(self, nodes, graph_from_geometry(geom, nodes.device))
        return dense_grid_conv(nodes, geom, self.weight, self.bias, self.groups)  # complete grid: no edge tensors

    @classmethod
    def from_conv(cls, conv: torch.nn.Module, **kwargs) -> "_GridConvNd":
        """The drop-in twin of ``conv`` (same geometry, a copy of its weights)."""
        check_torch_conv(conv, f"{cls.__name__}.from_conv", cls._ndim)
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                    device=conv.weight.device, dtype=conv.weight.dtype, **kwargs)
        return copy_conv_parameters(layer, conv)

    def extra_repr(self) -> str:
        # torch's Conv extra_repr: only non-default arguments
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._ndim:
            s += f", padding={self.padding!r}"
        if self.dilation != (1,) * self._ndim:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        if self.path != "auto":
            s += f", path='{self.path}'"
        return s


def _drop_in_doc(nd: int) -> str:
    return rf"""Drop-in for ``torch.nn.Conv{nd}d`` that computes as message passing on the grid graph.

    Same constructor, parameters (``weight [C_out, C_in/g, *kernel]``, ``bias``),
    state_dict keys, initialisation and forward as ``nn.Conv{nd}d``; inside,
    the image becomes node features (:func:`gridgnn.to_nodes`) and runs through
    :class:`GridConv` on :func:`gridgnn.grid_graph` of the conv's geometry:

    .. math::
        \mathbf{{Y}} = \mathbf{{1}}\mathbf{{b}}^{{\top}} + \sum_t \mathbf{{A}}_t \mathbf{{X}} \mathbf{{W}}_t^{{\top}}
        \qquad
        \mathbf{{y}}_i = \mathbf{{b}} + \sum_{{(j \to i,\, t)}} \mathbf{{W}}_t \mathbf{{x}}_j

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
        bias, padding_mode, device, dtype: exactly as ``torch.nn.Conv{nd}d``.
        path (str, keyword-only): ``"auto"`` (dense path on the complete grid) or
            ``"general"`` (edge-list message passing). (default: :obj:`"auto"`)

    Shapes:
        - **input:** :math:`(B, C_{{in}}, *S_{{in}})` or :math:`(C_{{in}}, *S_{{in}})` with {nd} spatial dims
        - **output:** :math:`(B, C_{{out}}, *S_{{out}})`, channels-last if the input is, else contiguous

    Example:
        >>> conv = torch.nn.Conv{nd}d(4, 8, 3, padding=1)
        >>> twin = GridConv{nd}d.from_conv(conv)
        >>> x = torch.randn(2, 4, *([6] * {nd}))
        >>> torch.allclose(twin(x), conv(x), atol=1e-5)
        True
    """


class GridConv1d(_GridConvNd):
    __doc__ = _drop_in_doc(1)
    _ndim = 1


class GridConv2d(_GridConvNd):
    __doc__ = _drop_in_doc(2)
    _ndim = 2


class GridConv3d(_GridConvNd):
    __doc__ = _drop_in_doc(3)
    _ndim = 3
