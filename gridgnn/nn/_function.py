"""The base of gridgnn's custom autograd Functions: torch's ``Function`` without its per-call signature binding.

``torch.autograd.Function.apply`` binds every call's arguments to ``forward``'s signature
(``inspect.signature``, ~75 us a call on CPU) so that defaults can be filled in. gridgnn's
Functions have no defaulted arguments and are always called with every argument, so
:class:`Function` hands them straight to the C++ ``apply`` when nothing else needs
torch's Python path: no ``torch.func`` transform is active, no argument is a functorch-wrapped
tensor and no compiler is tracing. Otherwise it is ``torch.autograd.Function.apply`` itself.
A converted batch-1 model calls one to three Functions a layer, so this is a few milliseconds a pass.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from ._transforms import _is_wrapped


class Function(torch.autograd.Function):
    """``torch.autograd.Function`` whose ``apply`` skips the signature binding (every argument is passed)."""

    @classmethod
    def apply(cls, *args):
        if (torch._C._are_functorch_transforms_active() or torch.compiler.is_compiling()
                or any(isinstance(a, Tensor) and _is_wrapped(a) for a in args)):
            return super().apply(*args)
        return super(torch.autograd.Function, cls).apply(*args)        # the C++ apply of torch's base class


def save_bilinear(ctx, x: Tensor, weight: Tensor, bias) -> None:
    """Save the operands of a map bilinear in ``x`` and ``weight`` (plus ``bias``) for its backward and ``jvp``."""
    ctx.save_for_backward(x, weight)
    ctx.save_for_forward(x, weight)
    ctx.has_bias = bias is not None


def recomputed_grads(compute: Callable[[Tensor, Tensor], Tensor], x: Tensor, weight: Tensor, grad: Tensor,
                     need_x: bool, need_weight: bool) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """The gradients of ``<compute(x, weight), grad>`` for ``x`` and ``weight`` (where asked for), by autograd.

    For a Function's backward that must itself be differentiable (``create_graph=True``: grad mode is on)
    or that receives batched gradients: ``compute`` recomputes its forward in differentiable ops.
    """
    inputs = [t for t, need in ((x, need_x), (weight, need_weight)) if need]
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        grads = iter(torch.autograd.grad(compute(x, weight), inputs, grad, create_graph=create_graph))
    return next(grads) if need_x else None, next(grads) if need_weight else None
