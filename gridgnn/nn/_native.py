"""gridgnn's native kernels (``_native_grouped.c``, ``_native_dense.c``), loaded by ctypes.

``pip install`` builds the C files with the package into one library (``setup.py``; no torch headers,
so a C compiler with OpenMP is all it needs; about two minutes on a 2-core host). On a complete
1-D/2-D/3-D grid on CPU it runs

* grid convs with thin groups (``w = C_in / groups = C_out / groups`` of 1, 2, 4, 8 or 16 channels;
  ``w = 1`` is depthwise) in float32 and float64, forward and backward, in one pass over the nodes
  with all kernel offsets at once (on NCHW input at stride 1 with "same"-length rows, by channel planes:
  ``_native_planes.h``; a depthwise conv's forward and input gradient on planes whose rows fit one
  vector, and its forward at stride 2 along such rows, by row kernels: ``_native_rows.h``; those two
  on AVX-512 CPUs only, :data:`SHIFTED_KERNELS`: elsewhere the buffered units ran faster);
* dense grid convs (``groups = 1``, any stride and dilation, zero padding read in place) in float32 on
  AVX-512 and AVX2 CPUs (:data:`DENSE_ISA`), from and to either node layout (:func:`dense_forward`;
  their backward is made of the same kernel, :mod:`gridgnn.nn._dense`).

Where the library is missing (no C compiler at install, a source checkout that was never built)
the pure-torch kernels run and a one-line warning says so once; ``GRIDGNN_NATIVE=0`` in the
environment switches it off without a warning, and :func:`disabled` switches it off in a block
(the tests run both kernels).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import math
import os
import threading
import warnings
from typing import Callable, Iterator, Optional, Tuple

import torch
from torch import Tensor

from ..geometry import ConvGeometry

_state = threading.local()            # the switch of :func:`disabled`, per thread
_DTYPES = {torch.float32: "f32", torch.float64: "f64"}
#: the channels a group the kernel takes (its blocks of 16 channels hold whole groups)
GROUP_WIDTHS = (1, 2, 4, 8, 16)


#: whether this CPU has AVX-512 (torch's report of it)
AVX512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")

#: whether the dense kernel runs on this CPU: it is written for AVX-512 (a tile's sums fill 24 of its 32 vector
#: registers) and AVX2 (a tile's sums in quarters, 12 of 16 registers); the generic build is for tests only
DENSE_ISA = AVX512 or torch.backends.cpu.get_cpu_capability().startswith("AVX2")

#: whether the grouped kernel's row and plane kernels run on this CPU (NCHW nodes at some geometries): they
#: shift and mask 16-lane vectors, one AVX-512 register each; without AVX-512 its buffered units ran 1.2-4.4x
#: faster (an AVX2 AMD EPYC host, NCHW, batch 8: 5x5 s2 C=672 @14 5.13 -> 1.16 ms, g16 C=256 @14 8.40 ->
#: 6.65 ms, depthwise 3x3 C=144 @56 9.82 -> 5.06 ms)
SHIFTED_KERNELS = AVX512


class _Geometry(ctypes.Structure):
    """``dw_geometry`` of the C file: sizes per axis padded to three (missing leading axes have size 1)."""

    _fields_ = [("batch", ctypes.c_int64), ("channels", ctypes.c_int64)] + [
        (name, ctypes.c_int64 * 3) for name in ("in_", "out", "kernel", "stride", "pad", "dilation")] + [
        (name, ctypes.c_int64) for name in ("channels_last", "group_width", "threads", "shifted")]


class _DenseGeometry(ctypes.Structure):
    """``dense_geometry`` of ``_native_dense.c``: sizes per axis padded to three (missing leading axes size 1)."""

    _fields_ = [("batch", ctypes.c_int64), ("c_in", ctypes.c_int64), ("c_out", ctypes.c_int64)] + [
        (name, ctypes.c_int64 * 3) for name in ("in_", "out", "kernel", "stride", "dilation", "pad")] + [
        (name, ctypes.c_int64) for name in ("x_major", "y_major", "w_out", "w_in", "w_tap", "threads")]


def _switched_off() -> bool:
    return os.environ.get("GRIDGNN_NATIVE", "1") == "0"


def _library_path() -> Optional[str]:
    """Where the built library is, or ``None``."""
    spec = importlib.util.find_spec("gridgnn.nn._native_kernels")
    return None if spec is None else spec.origin


def describe() -> str:
    """A line on the kernels' state, for ``python -m gridgnn info``, the dense one's CPU condition included."""
    if _switched_off():
        return "switched off (GRIDGNN_NATIVE=0): the pure-torch kernels run"
    path = _library_path()
    if not path:
        return "not built: the pure-torch kernels run"
    return f"built ({path}){'' if DENSE_ISA else '; the dense kernel needs AVX-512 or AVX2, not on this CPU'}"


@functools.lru_cache(maxsize=None)
def _library() -> Optional[ctypes.CDLL]:
    """The built kernel library, or ``None`` (warned once) where it is missing or will not load."""
    if _switched_off():
        return None
    path = _library_path()
    try:
        if path is None:
            raise OSError("not built; reinstall gridgnn with a C compiler present (pip install -e .)")
        library = ctypes.CDLL(path)
    except OSError as error:
        warnings.warn(f"gridgnn: the native conv kernels are unavailable ({error}); the slower "
                      f"pure-torch kernels run instead", RuntimeWarning, stacklevel=4)
        return None
    for suffix in _DTYPES.values():
        for name, pointers in (("forward", 4), ("backward", 5)):
            function = getattr(library, f"gridgnn_grouped_{name}_{suffix}")
            function.argtypes = [ctypes.POINTER(_Geometry)] + [ctypes.c_void_p] * pointers
            function.restype = ctypes.c_int
    library.gridgnn_dense_forward_f32.argtypes = [ctypes.POINTER(_DenseGeometry)] + [ctypes.c_void_p] * 4
    library.gridgnn_dense_forward_f32.restype = ctypes.c_int
    return library


def available() -> bool:
    """Whether the native kernel is built, loaded and not switched off."""
    return not getattr(_state, "disabled", False) and _library() is not None


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the pure-torch kernels instead of the native ones inside the block (this thread)."""
    previous = getattr(_state, "disabled", False)
    _state.disabled = True
    try:
        yield
    finally:
        _state.disabled = previous


def applies(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> bool:
    """Whether the native kernel takes these tensors: plain CPU float32/float64 ones of up to 3 grid axes."""
    return (x.dtype in _DTYPES and all(t is None or (t.device.type == "cpu" and t.dtype == x.dtype)
                                       for t in (x, weight, bias))
            and 3 <= x.dim() <= 5 and x.numel() > 0 and available())      # (it reads raw CPU pointers)


def in_layout(t: Tensor, like: Optional[Tensor] = None) -> Tuple[Tensor, bool]:
    """``t`` ``[B, *S, C]`` contiguous channels innermost or channel-major (an NCHW image's nodes), and which.

    ``t`` stays as it lies when it is either (channel-major if ``like`` is); otherwise it is copied
    to ``like``'s layout, or to channels innermost.
    """
    if like is None:
        if t.is_contiguous():
            return t, False
        major = t.movedim(-1, 1).is_contiguous()
        return (t, True) if major else (t.contiguous(), False)
    major = not like.is_contiguous()
    return (t.movedim(-1, 1).contiguous().movedim(1, -1), True) if major else (t.contiguous(), False)


@functools.lru_cache(maxsize=512)
def _geometry(batch: int, channels: int, in_size: Tuple[int, ...], geom: ConvGeometry, zero_padded: bool,
              major: bool, width: int, threads: int, shifted: bool) -> _Geometry:
    missing = 3 - len(in_size)                                                    # leading axes of size 1
    pads = tuple(left if zero_padded else 0 for left, _ in geom.padding)
    axes = [(1,) * missing + tuple(v) for v in (in_size, geom.out_size, geom.kernel_size, geom.stride)]
    axes += [(0,) * missing + pads, (1,) * missing + tuple(geom.dilation)]
    return _Geometry(batch, channels, *((ctypes.c_int64 * 3)(*v) for v in axes), 0 if major else 1, width, threads,
                     int(shifted))


@functools.lru_cache(maxsize=None)
def _function(name: str, dtype: torch.dtype):
    return getattr(_library(), f"gridgnn_grouped_{name}_{_DTYPES[dtype]}")


def grouped_kernel(name: str, x: Tensor, geom: ConvGeometry, zero_padded: bool, major: bool,
                   width: int) -> Callable[..., int]:
    """The grouped-conv ``name`` ("forward" or "backward") for nodes shaped as ``x`` (``major``: channel-major).

    It takes the tensors' data pointers (None for a missing one) in :func:`run_kernel`'s order and
    returns nonzero when out of memory.
    """
    g = _geometry(x.size(0), x.size(-1), x.shape[1:-1], geom, zero_padded, major, width, torch.get_num_threads(),
                  SHIFTED_KERNELS)
    return functools.partial(_function(name, x.dtype), ctypes.byref(g))


def run_kernel(kernel: Callable[..., int], name: str, *tensors: Optional[Tensor]) -> None:
    """``kernel`` on the data of ``tensors`` (None passed as a null pointer); MemoryError if it could not allocate."""
    if kernel(*(None if t is None else t.data_ptr() for t in tensors)):
        raise MemoryError(f"gridgnn's native {name} could not allocate its buffers")


def _call(name: str, x: Tensor, geom: ConvGeometry, zero_padded: bool, major: bool, width: int,
          *tensors: Optional[Tensor]):
    run_kernel(grouped_kernel(name, x, geom, zero_padded, major, width), f"grouped-conv {name}", *tensors)


def _empty_nodes(like: Tensor, batch: int, size: Tuple[int, ...], channels: int, major: bool) -> Tensor:
    """Output nodes ``[B, *S, C]`` for a kernel to write: channel-major (an NCHW image's) or channels innermost."""
    if major:
        return like.new_empty((batch, channels, *size)).movedim(1, -1)
    return like.new_empty((batch, *size, channels))


def grouped_forward(x: Tensor, weight: Tensor, bias: Optional[Tensor], geom: ConvGeometry,
                    zero_padded: bool, width: int = 1) -> Tensor:
    """``conv(x, weight) + bias``: ``[B, *S_in, C] -> [B, *S_out, C]`` laid out as ``x``.

    ``weight`` is torch's conv weight ``[C, width, *kernel]`` (or any tensor with its memory, e.g. ``[C, K]``
    for depthwise), ``width`` the channels a group (:data:`GROUP_WIDTHS`).

    ``x``'s padding is ``geom``'s when ``zero_padded``, else already in ``x``. It is read as it lies
    when contiguous channel-major (an NCHW image) or channels innermost, else copied to the latter.
    """
    x, major = in_layout(x)
    b, c = x.size(0), x.size(-1)
    out = _empty_nodes(x, b, tuple(geom.out_size), c, major)
    _call("forward", x, geom, zero_padded, major, width, x, weight.contiguous(),
          None if bias is None else bias.contiguous(), out)
    return out


def grouped_backward(x: Tensor, weight: Tensor, grad_out: Tensor, geom: ConvGeometry, zero_padded: bool,
                     need_x: bool, need_weight: bool, width: int = 1) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """The gradients of :func:`grouped_forward` with respect to ``x`` and ``weight`` (where asked for)."""
    x, major = in_layout(x)
    grad_out, _ = in_layout(grad_out, x)
    grad_x = torch.empty_like(x) if need_x else None
    grad_w = torch.empty_like(weight) if need_weight else None
    _call("backward", x, geom, zero_padded, major, width, x, weight.contiguous(), grad_out, grad_x, grad_w)
    return grad_x, grad_w


def dense_applies(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> bool:
    """Whether the dense kernel takes these tensors: plain CPU float32 on an AVX-512 or AVX2 CPU."""
    return DENSE_ISA and x.dtype == torch.float32 and applies(x, weight, bias)


@functools.lru_cache(maxsize=512)
def _dense_geometry(batch: int, c_in: int, c_out: int, in_size: Tuple[int, ...], out_size: Tuple[int, ...],
                    kernel: Tuple[int, ...], stride: Tuple[int, ...], dilation: Tuple[int, ...],
                    pad: Tuple[int, ...], x_major: bool, y_major: bool, transposed: bool,
                    threads: int) -> _DenseGeometry:
    missing = 3 - len(in_size)                                                    # leading axes of size 1
    axes = [(1,) * missing + tuple(v) for v in (in_size, out_size, kernel, stride, dilation)]
    axes.append((0,) * missing + tuple(pad))
    taps = math.prod(kernel)
    # W[o][i][t] of torch's [C_out, C_in, *k], or of its flipped transpose W'[o][i][t] = W[i][o][K - 1 - t]
    strides = (taps, c_out * taps, -1) if transposed else (c_in * taps, taps, 1)
    return _DenseGeometry(batch, c_in, c_out, *((ctypes.c_int64 * 3)(*v) for v in axes), int(x_major), int(y_major),
                          *strides, threads)


def dense_forward(x: Tensor, weight: Tensor, bias: Optional[Tensor], out_size: Tuple[int, ...],
                  stride: Tuple[int, ...], pad: Tuple[int, ...], dilation: Tuple[int, ...],
                  transposed: bool = False, major: Optional[bool] = None) -> Tensor:
    """``conv(x, weight) + bias`` with zero padding: ``[B, *S_in, C_in] -> [B, *out_size, C_out]``.

    ``x`` is read as it lies when contiguous channels innermost or channel-major (an NCHW image's nodes),
    else copied to the former; the output is written in ``x``'s layout unless ``major`` says which.
    ``weight`` is torch's ``[C_out, C_in, *kernel]``, or with ``transposed`` the forward weight
    ``[C_in, C_out, *kernel]`` of the conv whose input gradient this is: the kernel reads it flipped and
    transposed in place. Source node ``i s + k d - pad`` on every axis; sources outside ``x`` are zeros.
    """
    x, x_major = in_layout(x)
    weight = weight.contiguous()
    y_major = x_major if major is None else major
    kernel = dense_kernel(x, weight, out_size, stride, pad, dilation, x_major, y_major, transposed)
    out = _empty_nodes(x, x.size(0), tuple(out_size), weight.size(1) if transposed else weight.size(0), y_major)
    taps = math.prod(weight.shape[2:])
    weight_start = weight.data_ptr() + (4 * (taps - 1) if transposed else 0)   # W' starts at tap K - 1
    bias = None if bias is None else bias.contiguous()
    if kernel(x.data_ptr(), weight_start, None if bias is None else bias.data_ptr(), out.data_ptr()):
        raise MemoryError("gridgnn's native dense conv could not allocate its buffers")
    return out


def dense_kernel(x: Tensor, weight: Tensor, out_size: Tuple[int, ...], stride: Tuple[int, ...],
                 pad: Tuple[int, ...], dilation: Tuple[int, ...], x_major: bool, y_major: bool,
                 transposed: bool = False) -> Callable[..., int]:
    """The kernel of :func:`dense_forward` for nodes shaped as ``x`` (``x_major``: channel-major).

    It takes the data pointers of ``(x, weight, bias or None, out)`` and returns nonzero when out of
    memory (see :func:`run_kernel`).
    """
    b, c_in, kernel = x.size(0), x.size(-1), tuple(weight.shape[2:])
    c_out = weight.size(1) if transposed else weight.size(0)
    g = _dense_geometry(b, c_in, c_out, tuple(x.shape[1:-1]), tuple(out_size), kernel, tuple(stride),
                        tuple(dilation), tuple(pad), x_major, y_major, transposed, torch.get_num_threads())
    return functools.partial(_library().gridgnn_dense_forward_f32, ctypes.byref(g))
