"""Which form of a layer's kernels runs: the fast custom autograd Functions, or the same math in plain torch ops.

The execution paths use :class:`torch.autograd.Function` subclasses for their fastest eager
kernels (in-place GEMM accumulation, clipped shifted views, fused gather-sums). In eager
mode those support reverse-mode autograd to every order, forward-mode AD (each has a
``jvp``) and batched gradients (``torch.autograd.grad(..., is_grads_batched=True)``, which
``gradcheck(check_batched_grad=True)`` uses). Two callers need plain torch ops instead,
and get the same arithmetic written with them:

* ``torch.func`` transforms (``grad``, ``vmap``, ``jvp``, ``jacrev``, ``jacfwd``), which
  transform plain ops by themselves;
* ``torch.compile`` and ``torch.export`` (any backend, inductor included), which cannot trace a
  Function with a custom ``jvp`` nor lower oneDNN's GEMM, and generate their own kernels from
  plain ops; ``torch.jit.trace`` (and the ONNX exporters built on tracing) likewise.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional, TypeVar

import torch
from torch import Tensor

_T = TypeVar("_T")

_is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
#: the batched gradients of ``torch.autograd.grad(..., is_grads_batched=True)`` (torch's legacy vmap)
_is_legacy_batched = getattr(torch._C._functorch, "is_legacy_batchedtensor", lambda t: False)


def plain_ops(*tensors: Optional[Tensor]) -> bool:
    """Whether compile, export or tracing is on, or a vmap (``torch.func``, batched gradients) holds ``tensors``."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return True
    return any(t is not None and (_is_wrapped(t) or _is_legacy_batched(t)) for t in tensors)


def under_functorch(*tensors: Optional[Tensor]) -> bool:
    """Whether a ``torch.func`` transform is transforming any of ``tensors`` (never while compile traces)."""
    return not torch.compiler.is_compiling() and any(t is not None and _is_wrapped(t) for t in tensors)


def cached_in_eager(maxsize: int) -> Callable[[Callable[..., _T]], Callable[..., _T]]:
    """``functools.lru_cache`` for eager calls of a function of hashable geometry, none under ``torch.compile``.

    Compiled, the function runs directly, so dynamo traces no cache (it warns when it does) and bakes
    the result into the graph once. The cached results must never reach a caller that could edit them
    in place.
    """
    def wrap(fn: Callable[..., _T]) -> Callable[..., _T]:
        cached = functools.lru_cache(maxsize=maxsize)(fn)

        @functools.wraps(fn)
        def call(*args):
            return fn(*args) if torch.compiler.is_compiling() else cached(*args)
        return call
    return wrap
