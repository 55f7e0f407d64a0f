"""The one map from torch layer types to their grid-graph twins, and how a twin takes a layer's place.

:data:`~gridgnn.nn.TWINS` is used by :func:`gridgnn.convert`, :func:`gridgnn.to_torch_convs`,
:mod:`gridgnn.testing` and the ``python -m gridgnn verify`` sweep. Every twin
subclasses the torch layer it replaces and swaps only the compute, so
:func:`twin_of` moves a layer's whole state (parameters, buffers, hooks, training
flag, constructor arguments) onto the twin's class: nothing is copied or
re-initialised, and ``state_dict`` keys stay the same.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from torch import nn
from torch.nn.utils import parametrize

from ..errors import GridTypeError
from . import conv_nd, conv_transpose, pool

__all__ = ["TWINS", "KINDS", "kind_of", "unsupported_reason", "twin_of", "torch_base", "is_twin"]

_FAMILIES = {"Conv": conv_nd, "ConvTranspose": conv_transpose, "MaxPool": pool, "AvgPool": pool,
             "AdaptiveAvgPool": pool, "AdaptiveMaxPool": pool}

#: torch layer type -> its grid-graph twin (a subclass of that type): ``nn.Conv2d -> GridConv2d``,
#: ``nn.ConvTranspose1d -> GridConvTranspose1d``, ``nn.MaxPool3d -> GridMaxPool3d``, ... for 1-3 spatial dims.
TWINS: Dict[type, type] = {getattr(nn, f"{family}{nd}d"): getattr(module, f"Grid{family}{nd}d")
                           for family, module in _FAMILIES.items() for nd in (1, 2, 3)}

#: The kinds of layer :func:`gridgnn.convert` swaps, by the torch base classes of each.
KINDS: Dict[str, Tuple[type, ...]] = {
    "conv": (nn.modules.conv._ConvNd,),
    "conv_transpose": (nn.modules.conv._ConvTransposeNd,),
    "pool": (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
             nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
             nn.modules.pooling._LPPoolNd, nn.FractionalMaxPool2d, nn.FractionalMaxPool3d),
}

_GRID_TYPES = tuple(TWINS.values())


def kind_of(module: nn.Module) -> Optional[str]:
    """``"conv"``, ``"conv_transpose"`` or ``"pool"`` for a torch layer of those kinds, else None.

    Example:
        >>> from gridgnn.nn.twins import kind_of
        >>> kind_of(nn.Conv2d(3, 4, 3)), kind_of(nn.MaxPool2d(2)), kind_of(nn.ReLU())
        ('conv', 'pool', None)
    """
    if isinstance(module, KINDS["conv_transpose"]):          # (a transposed conv is also a _ConvNd)
        return "conv_transpose"
    return next((kind for kind, bases in KINDS.items() if isinstance(module, bases)), None)


def torch_base(module: nn.Module) -> Optional[type]:
    """The :data:`~gridgnn.nn.TWINS` key ``module`` is an instance of (its torch layer type), or None.

    Example:
        >>> from gridgnn.nn.twins import torch_base
        >>> torch_base(GridConv2d(3, 4, 3)) is nn.Conv2d
        True
    """
    return next((base for base in TWINS if isinstance(module, base)), None)


def unsupported_reason(module: nn.Module) -> Optional[str]:
    """Why ``module`` (a torch layer of a convertible kind) has no faithful twin, or None if it has one.

    Example:
        >>> from gridgnn.nn.twins import unsupported_reason
        >>> unsupported_reason(nn.Conv2d(3, 4, 3)) is None
        True
    """
    name = type(module).__name__
    base = torch_base(module)
    if base is None:
        return f"{name} has no grid twin"
    if parametrize.is_parametrized(module):
        return (f"{name} is parametrized ({', '.join(module.parametrizations)}); remove the parametrization "
                "first (e.g. torch.nn.utils.parametrize.remove_parametrizations) to convert it")
    if isinstance(module, nn.modules.lazy.LazyModuleMixin) and module.has_uninitialized_params():
        return f"{name} is lazy and not initialised yet; run one forward pass before converting"
    overridden = [m for m in ("forward", "_conv_forward") if getattr(type(module), m, None) is not
                  getattr(base, m, None)]
    if overridden:
        return f"{name} subclasses {base.__name__} and overrides its {overridden[0]}"
    if "forward" in vars(module):
        return "its forward was replaced on the instance"
    if getattr(module, "return_indices", False):
        return f"{name} returns indices (return_indices=True), which max aggregation does not keep"
    if isinstance(module, nn.modules.conv._ConvTransposeNd) and module.padding_mode != "zeros":
        return f"{name} has padding_mode={module.padding_mode!r}, which torch itself rejects for transposed convs"
    return None


def twin_of(module: nn.Module) -> nn.Module:
    """The grid twin of a torch conv, transposed conv or pool, taking over its whole state.

    The twin is a new module object of the twin class whose attributes are those of
    ``module``: the same ``Parameter`` objects, buffers, hooks and arguments, so
    optimisers, weight tying and checkpoints see no difference.

    Raises:
        TypeError: naming the reason (see :func:`~gridgnn.nn.twins.unsupported_reason`) if there is no faithful twin.

    Example:
        >>> twin_of(torch.nn.MaxPool2d(2))
        GridMaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    """
    reason = unsupported_reason(module)
    if reason is not None:
        raise GridTypeError(f"no grid twin for {type(module).__name__}: {reason}")
    twin_cls = TWINS[torch_base(module)]
    twin = twin_cls.__new__(twin_cls)
    state = dict(vars(module))
    for slot in ("_parameters", "_buffers", "_modules"):           # own dicts, the same tensors in them
        state[slot] = dict(state[slot])
    twin.__dict__.update(state)
    twin.path = "auto"
    return twin


def is_twin(module: nn.Module) -> bool:
    """Whether ``module`` is one of gridgnn's twins (already computing on grid graphs).

    Example:
        >>> from gridgnn.nn.twins import is_twin
        >>> is_twin(GridConv2d(3, 4, 3)), is_twin(nn.Conv2d(3, 4, 3))
        (True, False)
    """
    return isinstance(module, _GRID_TYPES)
