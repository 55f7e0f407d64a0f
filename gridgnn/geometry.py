"""Convolution geometry exactly as ``torch.nn.Conv{1,2,3}d`` defines it.

A :class:`ConvGeometry` fixes everything a grid graph needs: input size, kernel
size, stride, the per-side padding, dilation and the padding mode. It is the
single place where torch's argument conventions (ints or tuples, ``"same"`` and
``"valid"``, asymmetric ``"same"`` padding for even kernels, the limits torch puts
on circular and reflect padding) are resolved, so that the graph builder and the
dense execution path agree by construction.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple, Union

import torch
from torch import Tensor

from ._checks import PADDING_MODES, check_padding_mode, is_int  # noqa: F401  (PADDING_MODES: part of this module's API)
from ._types import Device
from .errors import GridTypeError, GridValueError

__all__ = ["ConvGeometry", "resolve_padding", "transposed_conv_geometry", "kernel_indices", "ntuple"]

IntOrTuple = Union[int, Sequence[int]]
Padding = Union[str, int, Sequence[int]]



def ntuple(value: IntOrTuple, ndim: int, name: str) -> Tuple[int, ...]:
    """``value`` as a tuple of ``ndim`` non-negative ints (numpy ints too), else an error naming ``name``.

    A non-integer (a float, a bool, a string) is a :class:`~gridgnn.errors.GridTypeError`; a tuple of the
    wrong length or a negative entry a :class:`~gridgnn.errors.GridValueError`.

    Example:
        >>> from gridgnn.geometry import ntuple
        >>> ntuple(2, 3, "stride"), ntuple((1, 2), 2, "padding")
        ((2, 2, 2), (1, 2))
    """
    items = tuple(value) if isinstance(value, (tuple, list, torch.Size)) else (value,)
    if not all(is_int(v) for v in items):
        raise GridTypeError(f"{name} must be an int or a tuple of {ndim} ints, got {value!r}")
    out = tuple(int(v) for v in items)
    if len(out) == 1 and ndim > 1:
        out = out * ndim
    if len(out) != ndim:
        raise GridValueError(f"{name} must be an int or a tuple of {ndim} ints, got {value!r}")
    if any(v < 0 for v in out):
        raise GridValueError(f"{name} must be non-negative, got {value!r}")
    return out


def kernel_indices(kernel_size: Sequence[int]) -> List[Tuple[int, ...]]:
    """Every offset of a kernel window as an index tuple, row-major: offset ``t`` is entry ``t`` (``edge_type``).

    Example:
        >>> from gridgnn.geometry import kernel_indices
        >>> kernel_indices((2, 2))                                         # offset t is entry t
        [(0, 0), (0, 1), (1, 0), (1, 1)]
    """
    return list(itertools.product(*(range(k) for k in kernel_size)))


def infer_ndim(*values) -> int:
    """Number of spatial dims: the length of the first tuple among ``values`` (1 if all are ints)."""
    for v in values:
        if isinstance(v, (tuple, list, torch.Size)) and len(v) > 1:
            return len(v)
    return 1


def resolve_padding(padding: Padding, kernel_size: Tuple[int, ...], stride: Tuple[int, ...],
                    dilation: Tuple[int, ...]) -> Tuple[Tuple[int, int], ...]:
    """Per-dimension ``(left, right)`` padding as torch's conv layers apply it.

    ``"same"`` pads ``dilation * (kernel - 1)`` in total, ``total // 2`` on the left
    and the rest on the right (so an even kernel pads one more on the right), and,
    as in torch, is only defined for stride 1.

    Example:
        >>> from gridgnn.geometry import resolve_padding
        >>> resolve_padding("same", (4,), (1,), (1,))                      # an even kernel pads one more on the right
        ((1, 2),)
    """
    ndim = len(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim
        if padding == "same":
            if any(s != 1 for s in stride):
                raise GridValueError(
                    f"padding='same' is only defined for stride 1 (as in torch), got stride={stride}; "
                    "pass an explicit integer padding for strided convolutions")
            out = []
            for k, d in zip(kernel_size, dilation):
                total = d * (k - 1)
                out.append((total // 2, total - total // 2))
            return tuple(out)
        raise GridValueError(f"padding must be 'same', 'valid', an int or a tuple of ints, got {padding!r}")
    return tuple((p, p) for p in ntuple(padding, ndim, "padding"))


@dataclass(frozen=True)
class ConvGeometry:
    """The geometry of one convolution applied to an input of spatial size ``in_size``.

    Args:
        in_size: input spatial shape, one entry per spatial dim.
        kernel_size, stride, dilation: per-dim ints.
        padding: per-dim ``(left, right)`` pairs (see :func:`~gridgnn.geometry.resolve_padding`).
        padding_mode: one of ``"zeros"``, ``"circular"``, ``"reflect"``, ``"replicate"``.

    Use :meth:`create` to build one from torch-style arguments with validation.

    Example:
        >>> geom = gg.grid_graph((5, 5), 3, stride=2, padding=1).geometry
        >>> geom.out_size, geom.num_offsets
        ((3, 3), 9)
    """

    in_size: Tuple[int, ...]
    kernel_size: Tuple[int, ...]
    stride: Tuple[int, ...]
    padding: Tuple[Tuple[int, int], ...]
    dilation: Tuple[int, ...]
    padding_mode: str = "zeros"

    @classmethod
    def create(cls, size: IntOrTuple, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
               padding: Padding = 0, dilation: IntOrTuple = 1,
               padding_mode: str = "zeros") -> "ConvGeometry":
        """Validate torch-style conv arguments and resolve them for input ``size``."""
        ndim = infer_ndim(size, kernel_size, stride, padding, dilation)
        if ndim > 3:
            raise GridValueError(f"gridgnn supports 1, 2 or 3 spatial dims, got {ndim} from size={size!r}")
        in_size = ntuple(size, ndim, "size")
        kernel_size = ntuple(kernel_size, ndim, "kernel_size")
        stride = ntuple(stride, ndim, "stride")
        dilation = ntuple(dilation, ndim, "dilation")
        if any(k < 1 for k in kernel_size):
            raise GridValueError(f"kernel_size must be positive, got {kernel_size}")
        if any(s < 1 for s in stride):
            raise GridValueError(f"stride must be positive, got {stride}")
        if any(d < 1 for d in dilation):
            raise GridValueError(f"dilation must be positive, got {dilation}")
        if any(n < 1 for n in in_size):
            raise GridValueError(f"size must be positive in every dim, got {in_size}")
        check_padding_mode(padding_mode)
        pads = resolve_padding(padding, kernel_size, stride, dilation)
        geom = cls(in_size, kernel_size, stride, pads, dilation, padding_mode)
        geom._validate()
        return geom

    def _validate(self) -> None:
        for d, (n, (left, right)) in enumerate(zip(self.in_size, self.padding)):
            if self.padding_mode == "reflect" and max(left, right) >= n:
                raise GridValueError(
                    f"reflect padding ({left}, {right}) in spatial dim {d} must be smaller than the input "
                    f"size {n} there; use a larger input, less padding or padding_mode='replicate'")
            if self.padding_mode == "circular" and max(left, right) > n:
                raise GridValueError(
                    f"circular padding ({left}, {right}) in spatial dim {d} wraps around more than once "
                    f"for input size {n}; use padding <= {n} or a larger input")
        for d, (n, (left, right), k, dil) in enumerate(zip(self.in_size, self.padding, self.kernel_size,
                                                           self.dilation)):
            span = dil * (k - 1) + 1
            if n + left + right < span:
                raise GridValueError(
                    f"input size {n} in spatial dim {d} (padded to {n + left + right}) is smaller than the "
                    f"dilated kernel extent {span} (kernel_size={k}, dilation={dil}); use an input of at "
                    f"least {span - left - right} there or more padding")

    @property
    def ndim(self) -> int:
        return len(self.in_size)

    def __post_init__(self) -> None:             # out_size is read several times a layer call: computed once
        object.__setattr__(self, "_out_size", tuple(
            (n + left + right - d * (k - 1) - 1) // s + 1
            for n, (left, right), k, s, d in zip(self.in_size, self.padding, self.kernel_size, self.stride,
                                                 self.dilation)))

    @property
    def out_size(self) -> Tuple[int, ...]:
        """Output spatial shape, ``floor((n + l + r - dil * (k - 1) - 1) / s) + 1`` per dim."""
        return self._out_size

    @property
    def num_offsets(self) -> int:
        return math.prod(self.kernel_size)

    def kernel_indices(self) -> List[Tuple[int, ...]]:
        """Every kernel offset as an index tuple, in ``edge_type`` order (row-major over the window)."""
        return kernel_indices(self.kernel_size)

    def window_coords(self, dim: int, device: Device = None) -> Tensor:
        """Unpadded input coordinate read by (output position, kernel offset) in one dim.

        Returns a LongTensor ``[out_size[dim], kernel_size[dim]]`` with
        ``o * stride - left + k * dilation``; entries outside ``[0, in_size)`` lie in
        the padding.
        """
        out = torch.arange(self.out_size[dim], device=device) * self.stride[dim] - self.padding[dim][0]
        offs = torch.arange(self.kernel_size[dim], device=device) * self.dilation[dim]
        return out[:, None] + offs[None, :]  # [O_d, K_d]

    def remap(self, coord: Tensor, dim: int) -> Tuple[Tensor, Tensor]:
        """Map padded coordinates in one dim to input coordinates by the padding mode.

        Returns ``(source_coord, valid)``: ``valid`` is false only for zero padding
        (those positions read a zero and carry no edge); other modes remap into
        the input as ``torch.nn.functional.pad`` does (circular wraps, reflect
        mirrors without repeating the border, replicate clamps).
        """
        n = self.in_size[dim]
        inside = (coord >= 0) & (coord < n)
        if self.padding_mode == "zeros":
            return coord.clamp(0, n - 1), inside
        if self.padding_mode == "circular":
            src = torch.remainder(coord, n)
        elif self.padding_mode == "reflect":
            src = torch.where(coord < 0, -coord, torch.where(coord >= n, 2 * (n - 1) - coord, coord))
        else:  # replicate
            src = coord.clamp(0, n - 1)
        return src, torch.ones_like(inside)


def transposed_conv_geometry(size: IntOrTuple, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                             padding: IntOrTuple = 0, output_padding: IntOrTuple = 0,
                             dilation: IntOrTuple = 1) -> ConvGeometry:
    """The geometry of the conv whose transpose is ``nn.ConvTranspose{n}d`` on an input of spatial ``size``.

    A transposed conv maps ``n`` to ``(n - 1) * s - 2 p + d (k - 1) + output_padding + 1``
    positions per dim: it is the adjoint of the conv with the same kernel, stride,
    padding and dilation that maps that many positions back to ``n``. The returned
    geometry is that conv's (its ``in_size`` is the transposed conv's output size, its
    ``out_size`` is ``size``), with ``output_padding`` taken off its right padding so
    that the extra positions receive edges only from real inputs, exactly as in torch.

    Example:
        >>> transposed_conv_geometry((4, 4), 3, stride=2, padding=1, output_padding=1).in_size
        (8, 8)
    """
    ndim = infer_ndim(size, kernel_size, stride, padding, output_padding, dilation)
    if ndim > 3:
        raise GridValueError(f"gridgnn supports 1, 2 or 3 spatial dims, got {ndim} from size={size!r}")
    in_size = ntuple(size, ndim, "size")
    kernel_size, stride = ntuple(kernel_size, ndim, "kernel_size"), ntuple(stride, ndim, "stride")
    dilation, pads = ntuple(dilation, ndim, "dilation"), ntuple(padding, ndim, "padding")
    output_padding = ntuple(output_padding, ndim, "output_padding")
    for name, values in (("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation),
                         ("size", in_size)):
        if any(v < 1 for v in values):
            raise GridValueError(f"{name} must be positive, got {values}")
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise GridValueError(f"output_padding={output_padding} must be smaller than either stride={stride} or "
                                 f"dilation={dilation} in every dim (as in torch)")
    out = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1
                for n, s, p, d, k, op in zip(in_size, stride, pads, dilation, kernel_size, output_padding))
    if any(n < 1 for n in out):
        raise GridValueError(f"a transposed conv with kernel_size={kernel_size}, stride={stride}, padding={pads}, "
                             f"dilation={dilation} maps size {in_size} to {out}, which is not positive; "
                             "use less padding or a larger input")
    return ConvGeometry(out, kernel_size, stride, tuple((p, p - op) for p, op in zip(pads, output_padding)),
                        dilation, "zeros")
