"""Run real CNNs as grid GNNs: swap every conv, transposed conv and pool for its graph twin.

:func:`convert` walks the module tree and replaces each layer with a twin in
:data:`gridgnn.nn.TWINS` (``nn.Conv2d`` -> :class:`~gridgnn.nn.GridConv2d`, ...) with
the same geometry. The twin takes over the layer's own parameters (in the copy, or
in the model itself with ``inplace=True``), so parameter names, shapes and
``state_dict`` keys are unchanged: a checkpoint of the original loads into the
converted model with ``converted.load_state_dict(original_state_dict)`` and the
other way round. :func:`gridgnn.verify` (:mod:`gridgnn.verification`) runs both
models and reports the error of every converted layer and of the output.
"""
from __future__ import annotations

import copy
import warnings
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .errors import GridTypeError, GridValueError
from .nn.twins import KINDS, is_twin, kind_of, twin_of, unsupported_reason

__all__ = ["convert", "converted_layers", "replace_modules", "functional_layers"]

_KIND_NAMES = tuple(KINDS)


def _check_kinds(kinds: Iterable[str]) -> Tuple[str, ...]:
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise GridValueError(f"kinds must name layer kinds among {_KIND_NAMES}, got {unknown}")
    return kinds


def _twin_or_none(module: nn.Module, path: str, unsupported: str, kinds: Tuple[str, ...]) -> Optional[nn.Module]:
    """The twin of ``module`` if it is a layer of one of ``kinds`` with a faithful twin; else None (warned)."""
    kind = kind_of(module)
    if kind is None or kind not in kinds or is_twin(module):
        return None
    reason = unsupported_reason(module)
    if reason is None:
        return twin_of(module)
    message = f"gridgnn.convert: not converting {path or 'the model'}: {reason}; it stays a torch op"
    if unsupported == "error":
        raise GridTypeError(message)
    if unsupported == "warn":
        warnings.warn(message, stacklevel=4)
    return None


def convert(model: nn.Module, inplace: bool = False, unsupported: str = "warn",
            kinds: Iterable[str] = _KIND_NAMES) -> nn.Module:
    r"""Replace every conv, transposed conv and pool in ``model`` by its grid-graph twin.

    Each ``nn.Conv{n}d`` :math:`y = b + \sum_t W_t \star x` becomes message passing over
    the offset-typed edges of its grid graph,
    :math:`\mathbf{y}_i = \mathbf{b} + \sum_{(j \to i, t)} \mathbf{W}_t \mathbf{x}_j`
    (:class:`~gridgnn.nn.GridConv2d` and friends), with every geometry torch allows;
    each ``nn.ConvTranspose{n}d`` the same on the reversed graph
    (:class:`~gridgnn.nn.GridConvTranspose2d`); each max / average / adaptive pool
    max or mean aggregation over its windows (:class:`~gridgnn.nn.GridMaxPool2d`, ...).
    The map is :data:`gridgnn.nn.TWINS`. Other modules are left alone.

    Args:
        model: any ``nn.Module`` (a bare layer too).
        inplace: convert ``model`` itself. Default: a deep copy; the original is
            untouched and shares nothing with the result.
        unsupported: what to do with layers that cannot be converted faithfully
            (subclasses overriding ``forward``, parametrized or uninitialised lazy
            convs, pools returning indices or without a twin such as ``LPPool2d``):
            ``"warn"`` (default; the module stays a torch op and the warning names it
            and why), ``"error"`` (``TypeError``) or ``"ignore"``.
        kinds: the kinds to convert, any of ``"conv"``, ``"conv_transpose"``, ``"pool"``
            (default: all three).

    Returns:
        The converted model. Every twin subclasses the layer it replaces
        (``isinstance(twin, nn.Conv2d)`` holds) and keeps its parameters, so
        ``state_dict`` keys are unchanged and checkpoints load both ways.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.MaxPool2d(2))
        >>> convert(net)
        Sequential(
          (0): GridConv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
          (1): GridMaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
        )
    """
    if unsupported not in ("warn", "error", "ignore"):
        raise GridValueError(f"unsupported must be 'warn', 'error' or 'ignore', got {unsupported!r}")
    if not isinstance(model, nn.Module):
        raise GridTypeError(f"convert expects an nn.Module, got {type(model).__name__}")
    kinds = _check_kinds(kinds)
    model = model if inplace else copy.deepcopy(model)
    return replace_modules(model, lambda module, path: _twin_or_none(module, path, unsupported, kinds))


def replace_modules(model: nn.Module, replacement: Callable[[nn.Module, str], Optional[nn.Module]]) -> nn.Module:
    """Swap each module for ``replacement(module, path)`` where that is not None (the root too), in place.

    A module registered in several places (weight tying) gets one replacement, shared the same way.

    Example:
        >>> from gridgnn.convert import replace_modules
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> net = replace_modules(net, lambda module, path: nn.GELU() if isinstance(module, nn.ReLU) else None)
        >>> type(net[1]).__name__
        'GELU'
    """
    root = replacement(model, "")
    if root is not None:
        return root
    done = {}
    for path, module in list(model.named_modules()):
        for name, child in list(module._modules.items()):   # every reference, not only the first
            if child is None:
                continue
            if id(child) not in done:
                done[id(child)] = replacement(child, f"{path}.{name}" if path else name)
            if done[id(child)] is not None:
                setattr(module, name, done[id(child)])
    return model


def converted_layers(model: nn.Module) -> List[str]:
    """Paths of the grid-graph twins (convs, transposed convs, pools) in ``model``.

    Example:
        >>> from gridgnn.convert import converted_layers
        >>> net = gg.convert(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AvgPool2d(2)))
        >>> list(converted_layers(net))
        ['0', '2']
    """
    return [path for path, m in model.named_modules() if is_twin(m)]


def __getattr__(name: str):
    # to_torch_convs builds reference models for tests: it lives with the test helpers now
    if name in ("to_torch_convs", "TorchPointwiseOnNodes"):
        warnings.warn(f"gridgnn.convert.{name} moved to gridgnn.testing.{name}; the old path goes in 0.3",
                      DeprecationWarning, stacklevel=2)
        from . import testing

        return getattr(testing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _functional_targets() -> Dict[Callable, str]:
    """The functional conv, transposed-conv and pooling ops a forward may call directly, by name."""
    names = [f"{op}{nd}d" for nd in (1, 2, 3) for op in ("conv", "conv_transpose", "max_pool", "avg_pool",
                                                          "adaptive_max_pool", "adaptive_avg_pool")]
    targets = {}
    for name in names:
        for namespace, prefix in ((F, "F."), (torch, "torch.")):
            op = getattr(namespace, name, None)
            if op is not None:
                targets.setdefault(op, prefix + name)          # F.conv2d is torch.conv2d: keep the F name
    return targets


def functional_layers(model: nn.Module) -> Optional[List[str]]:
    """The functional conv / pooling calls in ``model``'s forward that :func:`~gridgnn.convert` cannot swap.

    Found by ``torch.fx.symbolic_trace``: a call such as ``F.conv2d(x, self.weight)`` written in
    a ``forward`` is not a module, so it stays a torch op after conversion. Returns
    ``"<op> in <module path>"`` for each, or None when the model cannot be traced symbolically
    (data-dependent control flow), so nothing can be said.

    Example:
        >>> from gridgnn.convert import functional_layers
        >>> class Net(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.weight = nn.Parameter(torch.randn(4, 3, 3, 3))
        ...     def forward(self, x):
        ...         return F.conv2d(x, self.weight)
        >>> functional_layers(Net())
        ['F.conv2d in the model']
        >>> functional_layers(gg.convert(nn.Sequential(nn.Conv2d(3, 4, 3))))
        []
    """
    targets = _functional_targets()
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - any tracing failure means "cannot tell"
        return None
    found = []
    for node in graph.nodes:
        if node.op == "call_function" and node.target in targets:
            stack = node.meta.get("nn_module_stack") or {}
            where = next(reversed(list(stack)), "") if stack else ""
            found.append(f"{targets[node.target]} in {where or 'the model'}")
    return found
