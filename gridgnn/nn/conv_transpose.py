"""Image-level drop-ins for ``nn.ConvTranspose1d/2d/3d``: message passing on the conv's reversed grid graph."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from .._checks import check_groups, check_path, check_torch_conv_transpose
from .._types import Device, DType, SpatialSize
from ..errors import GridValueError
from ..geometry import IntOrTuple, ntuple
from ..graph import GridGraph, graph_for
from ._image import ImageLayer, image_layer_call
from ._init import copy_conv_parameters
from .functional import conv_transpose_nodes

torch.fx.wrap("image_layer_call")           # a leaf call for torch.fx here too (see gridgnn.nn._image)

class _GridConvTransposeNd(ImageLayer):
    """Shared body of :class:`GridConvTranspose1d`/``2d``/``3d``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: IntOrTuple = 0, output_padding: IntOrTuple = 0, groups: int = 1, bias: bool = True,
                 dilation: IntOrTuple = 1, padding_mode: str = "zeros", device: Device = None, dtype: DType = None, *,
                 path: str = "auto"):
        nd = self._ndim
        check_groups(in_channels, out_channels, groups)
        check_path(path, ("auto", "general"))
        if padding_mode != "zeros":
            raise GridValueError(f"{type(self).__name__}: only padding_mode='zeros' is defined for transposed convs "
                                 f"(as in torch), got {padding_mode!r}")
        for name, value in (("padding", padding), ("output_padding", output_padding)):
            if isinstance(value, str):
                raise GridValueError(f"{type(self).__name__}: {name} must be an int or a tuple of {nd} ints "
                                     f"(torch's transposed convs take no padding strings), got {value!r}")
            ntuple(value, nd, name)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
                         dilation, padding_mode, device=device, dtype=dtype)
        self.path = path

    def forward(self, input: Tensor, output_size: Optional[List[int]] = None) -> Tensor:
        """``input`` ``[B, C_in, *S_in]`` -> ``[B, C_out, *S_out]``.

        ``output_size`` picks among the sizes a strided transposed conv can produce, as in torch.
        """
        return image_layer_call(self, input, output_size)

    def _image_forward(self, input: Tensor, output_size: Optional[List[int]] = None) -> Tensor:
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = tuple(self._output_padding(input, output_size, list(self.stride),
                                                        list(self.padding), list(self.kernel_size),
                                                        self._ndim, list(self.dilation)))
        return self._forward_image(input, output_padding=output_padding)

    def _run_nodes(self, nodes: Tensor, size: Tuple[int, ...], weight: Tensor, bias: Optional[Tensor],
                   output_padding: Optional[Tuple[int, ...]] = None) -> Tuple[Tensor, Tuple[int, ...]]:
        output_padding = self.output_padding if output_padding is None else output_padding
        return conv_transpose_nodes(nodes, size, weight, bias, self.stride, self.padding,
                                    output_padding, self.groups, self.dilation, self.path)

    def graph(self, size: SpatialSize) -> GridGraph:
        """The transposed :class:`~gridgnn.GridGraph` this layer runs on for an input of spatial ``size``."""
        return graph_for(self, size)

    @classmethod
    def from_conv(cls, conv: nn.Module, **kwargs) -> "_GridConvTransposeNd":
        """The drop-in twin of ``conv`` (an ``nn.ConvTranspose{n}d``: same geometry, a copy of its weights)."""
        check_torch_conv_transpose(conv, f"{cls.__name__}.from_conv", cls._ndim)
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.output_padding, conv.groups, conv.bias is not None, conv.dilation, conv.padding_mode,
                    device=conv.weight.device, dtype=conv.weight.dtype, **kwargs)
        return copy_conv_parameters(layer, conv)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.path == "auto" else s + f", path='{self.path}'"


def _drop_in_doc(nd: int) -> str:
    return rf"""Drop-in for ``torch.nn.ConvTranspose{nd}d``: message passing on the reversed grid graph.

    The transposed conv scatters what the conv gathers. On the conv's grid graph
    reversed (:meth:`gridgnn.GridGraph.transpose`: every edge :math:`j \to i` of type
    :math:`t` becomes :math:`i \to j`, same type) each input node sends
    :math:`\mathbf{{W}}_t^{{\top}} \mathbf{{x}}_i` to the output nodes its kernel covers:

    .. math::
        \mathbf{{Y}} = \mathbf{{1}}\mathbf{{b}}^{{\top}} + \sum_t \mathbf{{A}}_t^{{\top}} \mathbf{{X}} \mathbf{{W}}_t
        \qquad
        \mathbf{{y}}_j = \mathbf{{b}} + \sum_{{(i \to j,\, t)}} \mathbf{{W}}_t^{{\top}} \mathbf{{x}}_i

    with :math:`\mathbf{{A}}_t` the conv's type-:math:`t` adjacency and
    :math:`\mathbf{{W}}_t` = ``weight[..., t]`` (``[C_in, C_out/g]`` per group). A subclass of
    ``nn.ConvTranspose{nd}d``: the same constructor, ``weight [C_in, C_out/g, *kernel]``,
    ``bias``, ``state_dict``, initialisation, ``repr`` and ``forward(input, output_size=None)``.
    ``GridConv.from_conv(conv_transpose)`` on :func:`gridgnn.graph_for` ``(conv_transpose, size)``
    is the node-level form.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, output_padding, groups,
        bias, dilation, padding_mode (``"zeros"`` only, as torch), device, dtype: as
        ``torch.nn.ConvTranspose{nd}d``.
        path (str, keyword-only): ``"auto"`` (one GEMM, then each offset's messages added
            onto a strided box of the output grid) or ``"general"`` (edge-list message
            passing on the reversed graph). (default: ``"auto"``)

    Shapes:
        - **input:** :math:`(B, C_{{in}}, *S_{{in}})` or :math:`(C_{{in}}, *S_{{in}})` with {nd} spatial dims
        - **output:** :math:`(B, C_{{out}}, *S_{{out}})`,
          :math:`S_{{out}} = (S_{{in}} - 1) s - 2 p + d (k - 1) + \mathrm{{output\_padding}} + 1`

    Example:
        >>> up = torch.nn.ConvTranspose{nd}d(4, 2, 3, stride=2, padding=1, output_padding=1)
        >>> twin = GridConvTranspose{nd}d.from_conv(up)
        >>> x = torch.randn(2, 4, *([5] * {nd}))
        >>> twin(x).shape[2:] == up(x).shape[2:], torch.allclose(twin(x), up(x), atol=1e-5)
        (True, True)
    """


class GridConvTranspose1d(_GridConvTransposeNd, nn.ConvTranspose1d):
    __doc__ = _drop_in_doc(1)
    _ndim = 1


class GridConvTranspose2d(_GridConvTransposeNd, nn.ConvTranspose2d):
    __doc__ = _drop_in_doc(2)
    _ndim = 2


class GridConvTranspose3d(_GridConvTransposeNd, nn.ConvTranspose3d):
    __doc__ = _drop_in_doc(3)
    _ndim = 3
