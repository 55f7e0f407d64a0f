"""Image-level drop-ins for ``nn.Conv1d/2d/3d`` that run as grid-graph message passing."""
from __future__ import annotations

from typing import Optional, Tuple

from torch import Tensor, nn

from .._checks import check_groups, check_padding_mode, check_path, check_torch_conv
from .._types import Device, DType, SpatialSize
from ..geometry import ConvGeometry, IntOrTuple, Padding, ntuple, resolve_padding
from ..graph import conv_geometry
from ._image import ImageLayer
from ._init import copy_conv_parameters
from ._plans import planned_call
from .functional import conv_nodes


class _GridConvNd(ImageLayer):
    """Shared body of :class:`GridConv1d`/``2d``/``3d``: torch's conv module, gridgnn's compute."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Device = None, dtype: DType = None, *, path: str = "auto"):
        nd = self._ndim
        check_groups(in_channels, out_channels, groups)
        check_path(path)
        # gridgnn's messages for what torch's constructor rejects ("same" with stride, unknown modes); the
        # numbers of the geometry are checked where torch checks them, in forward
        if isinstance(padding, str):
            resolve_padding(padding, ntuple(kernel_size, nd, "kernel_size"), ntuple(stride, nd, "stride"),
                            ntuple(dilation, nd, "dilation"))
        check_padding_mode(padding_mode)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)
        self.path = path

    def _image_forward(self, input: Tensor) -> Tensor:
        # inference on a native kernel or a 1x1 GEMM skips the shell, unless a subclass computes otherwise
        planned = type(self)._run_nodes is _GridConvNd._run_nodes
        out = planned_call(self, input) if planned else None
        return self._forward_image(input) if out is None else out

    def geometry(self, size: SpatialSize) -> ConvGeometry:
        """The :class:`ConvGeometry` of this layer for an input of spatial ``size``."""
        return conv_geometry(self, size)

    def _run_nodes(self, nodes: Tensor, size: Tuple[int, ...], weight: Tensor,
                   bias: Optional[Tensor]) -> Tuple[Tensor, Tuple[int, ...]]:
        geom = self.geometry(size)
        return conv_nodes(nodes, geom, weight, bias, self.groups, self.path), geom.out_size

    @classmethod
    def from_conv(cls, conv: nn.Module, **kwargs) -> "_GridConvNd":
        """The drop-in twin of ``conv`` (same geometry, a copy of its weights)."""
        check_torch_conv(conv, f"{cls.__name__}.from_conv", cls._ndim)
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                    device=conv.weight.device, dtype=conv.weight.dtype, **kwargs)
        return copy_conv_parameters(layer, conv)

    def extra_repr(self) -> str:
        s = super().extra_repr()                                   # torch's: only non-default arguments
        return s if self.path == "auto" else s + f", path='{self.path}'"


def _drop_in_doc(nd: int) -> str:
    return rf"""Drop-in for ``torch.nn.Conv{nd}d`` that computes as message passing on the grid graph.

    A subclass of ``nn.Conv{nd}d`` (so ``isinstance(layer, nn.Conv{nd}d)`` holds, and
    init loops, ``fuse_conv_bn_eval`` and FLOP counters treat it as the conv it is):
    the same constructor, parameters (``weight [C_out, C_in/g, *kernel]``, ``bias``),
    ``state_dict`` keys, initialisation and ``repr``; only the compute is swapped.
    Inside, the image becomes node features (:func:`gridgnn.to_nodes`) and runs
    through :func:`gridgnn.nn.functional.grid_conv` on :func:`gridgnn.grid_graph`
    of the conv's geometry:

    .. math::
        \mathbf{{Y}} = \mathbf{{1}}\mathbf{{b}}^{{\top}} + \sum_t \mathbf{{A}}_t \mathbf{{X}} \mathbf{{W}}_t^{{\top}}
        \qquad
        \mathbf{{y}}_i = \mathbf{{b}} + \sum_{{(j \to i,\, t)}} \mathbf{{W}}_t \mathbf{{x}}_j

    Inference calls on CPU that build no autograd graph (``torch.no_grad``, ``torch.inference_mode``
    or frozen parameters; eager, no autocast) and run one of gridgnn's native kernels or a 1x1 GEMM
    skip the per-call layout and dispatch steps: a plan made on the first such call for the input's
    shape and layout gives the same output, bit for bit, with little more than the kernel call left
    (an input no plan fits, a wrong one included, takes the full path and its error messages).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
        bias, padding_mode, device, dtype: exactly as ``torch.nn.Conv{nd}d``.
        path (str, keyword-only): ``"auto"`` (dense path on the complete grid) or
            ``"general"`` (edge-list message passing). (default: ``"auto"``)

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


class GridConv1d(_GridConvNd, nn.Conv1d):
    __doc__ = _drop_in_doc(1)
    _ndim = 1


class GridConv2d(_GridConvNd, nn.Conv2d):
    __doc__ = _drop_in_doc(2)
    _ndim = 2


class GridConv3d(_GridConvNd, nn.Conv3d):
    __doc__ = _drop_in_doc(3)
    _ndim = 3
