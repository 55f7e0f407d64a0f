"""Comparing tensors against a reference: the one tolerance table, normwise errors, TF32 off.

Used by :func:`gridgnn.verify` and by the test helpers in :mod:`gridgnn.testing`, which
re-exports every name here.
"""
from __future__ import annotations

import contextlib
import inspect
from typing import Dict, Iterator, NamedTuple

import torch
from torch import Tensor

from .errors import GridValueError

__all__ = ["Tolerance", "TOLERANCES", "tolerance", "no_tf32", "Error", "compare"]


class Tolerance(NamedTuple):
    """Normwise tolerance: ``max|a - b| <= atol + rtol * max|b|``.

    Example:
        >>> from gridgnn.testing import Tolerance, compare
        >>> compare(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-6])).within(Tolerance(atol=1e-5, rtol=0.0))
        True
    """

    atol: float
    rtol: float


#: The one tolerance table for every equivalence check in gridgnn, per dtype.
TOLERANCES: Dict[torch.dtype, Tolerance] = {
    torch.float64: Tolerance(atol=1e-12, rtol=1e-10),
    torch.float32: Tolerance(atol=1e-5, rtol=1e-5),
    torch.float16: Tolerance(atol=1e-3, rtol=2e-3),
    torch.bfloat16: Tolerance(atol=1e-2, rtol=2e-2),
}


def tolerance(dtype: torch.dtype) -> Tolerance:
    """The :data:`~gridgnn.testing.TOLERANCES` entry for ``dtype`` (a clear error for dtypes without one).

    Example:
        >>> from gridgnn.testing import tolerance
        >>> tolerance(torch.float64)
        Tolerance(atol=1e-12, rtol=1e-10)
    """
    if dtype not in TOLERANCES:
        raise GridValueError(f"no tolerance for dtype {dtype}; floating dtypes with one: {list(TOLERANCES)}")
    return TOLERANCES[dtype]


def _current_cudnn_flags() -> Dict[str, object]:
    """The cuDNN settings ``torch.backends.cudnn.flags`` takes (other than TF32), as they are now."""
    cudnn = torch.backends.cudnn
    names = inspect.signature(cudnn.flags).parameters
    return {n: getattr(cudnn, n) for n in names if n not in ("allow_tf32", "fp32_precision") and hasattr(cudnn, n)}


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Switch TF32 off for matmuls and cuDNN inside the block, restoring the settings after.

    cuDNN's switch goes through ``torch.backends.cudnn.flags``, the one way that also works
    after ``torch.testing._internal`` has frozen the global cuDNN flags.

    Example:
        >>> from gridgnn.testing import no_tf32
        >>> with no_tf32():
        ...     torch.backends.cuda.matmul.allow_tf32
        False
    """
    cudnn = torch.backends.cudnn
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with cudnn.flags(allow_tf32=False, **_current_cudnn_flags()):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


class Error(NamedTuple):
    """``abs = max|a - b|``, ``scale = max|b|`` and the normwise ``rel = abs / scale``.

    Example:
        >>> from gridgnn.testing import compare
        >>> compare(torch.tensor([1.0, 4.0]), torch.tensor([1.0, 2.0]))    # abs, rel = abs / max|expected|, scale
        Error(abs=2.0, rel=1.0, scale=2.0)
    """

    abs: float
    rel: float
    scale: float

    def within(self, tol: Tolerance) -> bool:
        return self.abs <= tol.atol + tol.rtol * self.scale


def compare(actual: Tensor, expected: Tensor) -> Error:
    """The :class:`Error` of ``actual`` against ``expected`` (shapes must match).

    Example:
        >>> from gridgnn.testing import compare
        >>> compare(torch.tensor([0.0, 3.0]), torch.tensor([0.0, 4.0])).rel
        0.25
    """
    if actual.shape != expected.shape:
        raise AssertionError(f"shape mismatch: got {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    if actual.numel() == 0:
        return Error(0.0, 0.0, 0.0)
    err = (actual.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    return Error(err, err / scale if scale > 0 else err, scale)
