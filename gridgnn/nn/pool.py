r"""Pooling as aggregation over grid-graph windows: max, average and adaptive, 1-D to 3-D.

A pooling window is the neighbourhood of an output node in the grid graph of the
pool's geometry (kernel, stride, padding, dilation, ``ceil_mode``). Max pooling is
max aggregation over those edges, average pooling sum aggregation divided by
torch's window count, adaptive pooling the same over one window per output cell.
Padding carries no edges, which is torch's :math:`-\infty` padding for max pooling
and zero padding for average pooling.

The image-level twins subclass torch's pooling modules (same constructor,
``repr`` and ``isinstance``) and swap only the compute; each also runs on node
features with :meth:`forward_nodes`, and :class:`GridMaxPool` is the node-level
max pool used inside graph-native blocks.
"""
from __future__ import annotations

from typing import Optional, Tuple

from torch import Tensor, nn

from .._checks import check_path
from .._types import Device, SpatialSize
from ..errors import GridTypeError, GridValueError
from ..geometry import ConvGeometry, IntOrTuple
from ..graph import GridGraph, graph_from_geometry, on_batched_nodes
from ._image import ImageLayer
from .functional import AdaptiveSize, adaptive_pool_nodes, avg_pool_nodes, max_pool_nodes, pool_geometry

_PATHS = ("auto", "general")
_PATH_DOC = """path (str, keyword-only): ``"auto"`` (windows gathered by strided views on the complete grid) or
            ``"general"`` (PyG scatter over the window edges). (default: ``"auto"``)"""


class _GridPool(ImageLayer):
    """Shared body of the pooling twins: the ``path`` option, ``repr`` and :meth:`from_module`."""

    def _set_path(self, path: str) -> None:
        self.path = check_path(path, _PATHS)

    @classmethod
    def from_module(cls, pool: nn.Module, **kwargs) -> "_GridPool":
        """The twin of a torch pooling module with the same arguments."""
        torch_cls = next(b for b in cls.__mro__ if b.__module__.startswith("torch.nn"))
        if not isinstance(pool, torch_cls):
            raise GridTypeError(f"{cls.__name__}.from_module expects an nn.{torch_cls.__name__}, got "
                                f"{type(pool).__name__}")
        names = [n for n in cls._torch_args if hasattr(pool, n)]
        return cls(**{n: getattr(pool, n) for n in names}, **kwargs)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.path == "auto" else s + f", path='{self.path}'"


def _no_indices(layer: nn.Module, return_indices: bool) -> None:
    if return_indices:
        raise GridValueError(f"{type(layer).__name__}: return_indices=True is not supported (max aggregation keeps "
                             f"no argmax); keep torch's layer where indices feed nn.MaxUnpool")


class _GridMaxPoolNd(_GridPool):
    _torch_args = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")

    def __init__(self, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None, padding: IntOrTuple = 0,
                 dilation: IntOrTuple = 1,
                 return_indices: bool = False, ceil_mode: bool = False, *, path: str = "auto"):
        _no_indices(self, return_indices)
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode)
        self._set_path(path)

    def geometry(self, size: SpatialSize) -> ConvGeometry:
        """The window geometry for an input of spatial ``size``."""
        return pool_geometry(tuple(size), self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def graph(self, size: SpatialSize, device: Device = None) -> GridGraph:
        """The pooling windows as a :class:`~gridgnn.GridGraph` (edge ``j -> i``: pixel ``j`` is in window ``i``)."""
        return graph_from_geometry(self.geometry(size), device)

    def _run_nodes(self, nodes: Tensor, size: Tuple[int, ...], weight: None,
                   bias: None) -> Tuple[Tensor, Tuple[int, ...]]:
        geom = self.geometry(size)
        return max_pool_nodes(nodes, geom, self.path), geom.out_size


class _GridAvgPoolNd(_GridPool):
    _torch_args = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")

    def geometry(self, size: SpatialSize) -> ConvGeometry:
        """The window geometry for an input of spatial ``size``."""
        return pool_geometry(tuple(size), self.kernel_size, self.stride, self.padding, 1, self.ceil_mode)

    def graph(self, size: SpatialSize, device: Device = None) -> GridGraph:
        """The pooling windows as a :class:`~gridgnn.GridGraph` (edge ``j -> i``: pixel ``j`` is in window ``i``)."""
        return graph_from_geometry(self.geometry(size), device)

    def _run_nodes(self, nodes: Tensor, size: Tuple[int, ...], weight: None,
                   bias: None) -> Tuple[Tensor, Tuple[int, ...]]:
        geom = self.geometry(size)
        if self._ndim == 3 and any(n < k for n, k in zip(size, geom.kernel_size)):
            # torch's avg_pool3d (unlike 1-D and 2-D) rejects inputs smaller than the kernel, padding or not
            raise GridValueError(f"{type(self).__name__}: input size {size} is smaller than the pooling window "
                                 f"kernel_size={geom.kernel_size} (torch's AvgPool3d needs the unpadded input to "
                                 "cover the kernel)")
        padding = tuple(left for left, _ in geom.padding)
        divisor = getattr(self, "divisor_override", None)
        out = avg_pool_nodes(nodes, geom, padding, self.count_include_pad, divisor, self.path)
        return out, geom.out_size


class _GridAdaptivePoolNd(_GridPool):
    _torch_args = ("output_size", "return_indices")
    _reduce = "mean"

    def _run_nodes(self, nodes: Tensor, size: Tuple[int, ...], weight: None,
                   bias: None) -> Tuple[Tensor, Tuple[int, ...]]:
        return adaptive_pool_nodes(nodes, size, self.output_size, self._reduce, self.path)


def _max_doc(nd: int) -> str:
    return rf"""Drop-in for ``torch.nn.MaxPool{nd}d``: max aggregation over the window edges of the grid graph.

    .. math::
        \mathbf{{y}}_i = \max_{{j \in \mathcal{{N}}(i)}} \mathbf{{x}}_j

    with :math:`\mathcal{{N}}(i)` the real pixels under output :math:`i`'s (dilated)
    window; padding has no edges (torch's :math:`-\infty`). Matrix form: the
    element-wise maximum over :math:`\mathbf{{A}}_t \mathbf{{X}}` for the window offsets
    :math:`t`. Gradients flow to the maximum of each window (split evenly between
    exact ties, where torch picks one).

    Args:
        kernel_size, stride, padding, dilation, ceil_mode: as ``torch.nn.MaxPool{nd}d``.
        return_indices: must be ``False`` (a clear error otherwise).
        {_PATH_DOC}

    Shapes:
        - **input:** :math:`(B, C, *S_{{in}})` or :math:`(C, *S_{{in}})`; **output:** :math:`(B, C, *S_{{out}})`

    Example:
        >>> x = torch.randn(2, 3, *([6] * {nd}))
        >>> torch.equal(GridMaxPool{nd}d(3, 2, 1)(x), torch.nn.MaxPool{nd}d(3, 2, 1)(x))
        True
    """


def _avg_doc(nd: int) -> str:
    return rf"""Drop-in for ``torch.nn.AvgPool{nd}d``: sum aggregation over window edges, over torch's count.

    .. math::
        \mathbf{{y}}_i = \frac{{1}}{{c_i}} \sum_{{j \in \mathcal{{N}}(i)}} \mathbf{{x}}_j

    with :math:`c_i` the window's size inside the padded input (``count_include_pad``),
    its number of real pixels, or ``divisor_override``. Matrix form:
    :math:`\mathbf{{Y}} = \mathbf{{C}}^{{-1}} \sum_t \mathbf{{A}}_t \mathbf{{X}}`.

    Args:
        kernel_size, stride, padding, ceil_mode, count_include_pad{", divisor_override" if nd > 1 else ""}:
            as ``torch.nn.AvgPool{nd}d``.
        {_PATH_DOC}

    Shapes:
        - **input:** :math:`(B, C, *S_{{in}})` or :math:`(C, *S_{{in}})`; **output:** :math:`(B, C, *S_{{out}})`

    Example:
        >>> x = torch.randn(2, 3, *([6] * {nd}))
        >>> torch.allclose(GridAvgPool{nd}d(3, 2, 1)(x), torch.nn.AvgPool{nd}d(3, 2, 1)(x), atol=1e-6)
        True
    """


def _adaptive_doc(nd: int, kind: str) -> str:
    agg = r"\max_{j \in \mathcal{N}(i)} \mathbf{x}_j" if kind == "Max" else \
        r"\frac{1}{|\mathcal{N}(i)|} \sum_{j \in \mathcal{N}(i)} \mathbf{x}_j"
    matrix = r"\mathbf{Y}_{ic} = \max_j A_{ij} \odot \mathbf{X}_{jc}" if kind == "Max" else \
        r"\mathbf{Y} = \mathbf{D}^{-1} \mathbf{A} \mathbf{X}"
    return rf"""Drop-in for ``torch.nn.Adaptive{kind}Pool{nd}d``: one window of edges per output cell.

    .. math::
        {matrix}
        \qquad
        \mathbf{{y}}_i = {agg}

    with output :math:`i`'s window :math:`[\lfloor i n / o \rfloor, \lceil (i + 1) n / o \rceil)`
    per dim (torch's), :math:`\mathbf{{A}}` the 0/1 window adjacency and :math:`\mathbf{{D}}` its
    in-degrees (window sizes). ``output_size=1`` is global pooling over each grid (PyG's
    ``global_{kind.lower().replace("avg", "mean")}_pool`` with one graph per image).

    Args:
        output_size: as ``torch.nn.Adaptive{kind}Pool{nd}d`` (``None`` entries keep the input size).
        {"return_indices: must be ``False``." if kind == "Max" else ""}
        {_PATH_DOC}

    Shapes:
        - **input:** :math:`(B, C, *S_{{in}})` or :math:`(C, *S_{{in}})`; **output:** :math:`(B, C, *output\_size)`

    Example:
        >>> x = torch.randn(2, 3, *([7] * {nd}))
        >>> torch.allclose(GridAdaptive{kind}Pool{nd}d(3)(x), torch.nn.Adaptive{kind}Pool{nd}d(3)(x), atol=1e-6)
        True
    """


class GridMaxPool1d(_GridMaxPoolNd, nn.MaxPool1d):
    __doc__ = _max_doc(1)
    _ndim = 1


class GridMaxPool2d(_GridMaxPoolNd, nn.MaxPool2d):
    __doc__ = _max_doc(2)
    _ndim = 2


class GridMaxPool3d(_GridMaxPoolNd, nn.MaxPool3d):
    __doc__ = _max_doc(3)
    _ndim = 3


class GridAvgPool1d(_GridAvgPoolNd, nn.AvgPool1d):
    __doc__ = _avg_doc(1)
    _ndim = 1

    def __init__(self, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None, padding: IntOrTuple = 0,
                 ceil_mode: bool = False,
                 count_include_pad: bool = True, *, path: str = "auto"):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self._set_path(path)


class _GridAvgPoolWithDivisor(_GridAvgPoolNd):
    def __init__(self, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None, padding: IntOrTuple = 0,
                 ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: Optional[int] = None, *, path: str = "auto"):
        if divisor_override is not None and (isinstance(divisor_override, bool) or divisor_override == 0):
            raise GridValueError(f"{type(self).__name__}: divisor_override must be a non-zero int or None, got "
                                 f"{divisor_override!r}")
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
        self._set_path(path)


class GridAvgPool2d(_GridAvgPoolWithDivisor, nn.AvgPool2d):
    __doc__ = _avg_doc(2)
    _ndim = 2


class GridAvgPool3d(_GridAvgPoolWithDivisor, nn.AvgPool3d):
    __doc__ = _avg_doc(3)
    _ndim = 3


class _GridAdaptiveAvgPoolNd(_GridAdaptivePoolNd):
    def __init__(self, output_size: AdaptiveSize, *, path: str = "auto"):
        super().__init__(output_size)
        self._set_path(path)


class _GridAdaptiveMaxPoolNd(_GridAdaptivePoolNd):
    _reduce = "max"

    def __init__(self, output_size: AdaptiveSize, return_indices: bool = False, *, path: str = "auto"):
        _no_indices(self, return_indices)
        super().__init__(output_size, return_indices)
        self._set_path(path)


class GridAdaptiveAvgPool1d(_GridAdaptiveAvgPoolNd, nn.AdaptiveAvgPool1d):
    __doc__ = _adaptive_doc(1, "Avg")
    _ndim = 1


class GridAdaptiveAvgPool2d(_GridAdaptiveAvgPoolNd, nn.AdaptiveAvgPool2d):
    __doc__ = _adaptive_doc(2, "Avg")
    _ndim = 2


class GridAdaptiveAvgPool3d(_GridAdaptiveAvgPoolNd, nn.AdaptiveAvgPool3d):
    __doc__ = _adaptive_doc(3, "Avg")
    _ndim = 3


class GridAdaptiveMaxPool1d(_GridAdaptiveMaxPoolNd, nn.AdaptiveMaxPool1d):
    __doc__ = _adaptive_doc(1, "Max")
    _ndim = 1


class GridAdaptiveMaxPool2d(_GridAdaptiveMaxPoolNd, nn.AdaptiveMaxPool2d):
    __doc__ = _adaptive_doc(2, "Max")
    _ndim = 2


class GridAdaptiveMaxPool3d(_GridAdaptiveMaxPoolNd, nn.AdaptiveMaxPool3d):
    __doc__ = _adaptive_doc(3, "Max")
    _ndim = 3


class GridMaxPool(nn.Module):
    r"""Node-level max pooling: max aggregation over the pooling windows of a grid of spatial ``size``.

    .. math::
        \mathbf{Y}_{ic} = \max_j A_{ij} \odot \mathbf{X}_{jc}
        \qquad
        \mathbf{y}_i = \max_{j \in \mathcal{N}(i)} \mathbf{x}_j

    with :math:`\mathbf{A}` the 0/1 window adjacency (the max over the entries it selects).

    The node-feature form of :class:`GridMaxPool2d` (any number of spatial dims), used
    by graph-native blocks that pass ``(x, size)``. Equals ``nn.MaxPool{n}d(kernel_size,
    stride, padding)`` on the image whose nodes are ``x``.

    Args:
        kernel_size, stride (default: ``kernel_size``), padding: as ``nn.MaxPool2d``.

    Shapes:
        - **input:** node features ``[B, N_in, C]`` of a grid of spatial ``size``
        - **output:** ``[B, N_out, C]``; ``out_size(size)`` gives the new grid

    Example:
        >>> GridMaxPool(2)(torch.randn(1, 16, 3), (4, 4)).shape
        torch.Size([1, 4, 3])
    """

    def __init__(self, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None, padding: IntOrTuple = 0):
        super().__init__()
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride

    def geometry(self, size: SpatialSize) -> ConvGeometry:
        return pool_geometry(tuple(size), self.kernel_size, self.stride, self.padding)

    def graph(self, size: SpatialSize, device: Device = None) -> GridGraph:
        return graph_from_geometry(self.geometry(size), device)

    def out_size(self, size: SpatialSize) -> Tuple[int, ...]:
        return self.geometry(size).out_size

    def forward(self, x: Tensor, size: SpatialSize) -> Tensor:
        return on_batched_nodes(lambda batched: max_pool_nodes(batched, self.geometry(size)), x)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
