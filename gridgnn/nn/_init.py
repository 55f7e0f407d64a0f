"""Parameter creation and initialisation identical to ``torch.nn.Conv*d``.

With the same seed, a gridgnn layer draws exactly the numbers its torch twin
draws: ``kaiming_uniform_(a=sqrt(5))`` on the weight, then a bias uniform in
``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` with ``fan_in = in_channels / groups * prod(kernel)``.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from ..errors import GridTypeError, GridValueError


def conv_parameters(module: nn.Module, out_channels: int, in_per_group: int, kernel_size: Sequence[int],
                    bias: bool, device=None, dtype=None) -> None:
    """Register ``weight [C_out, C_in / groups, *kernel_size]`` and ``bias [C_out]`` (or None) on ``module``."""
    factory = {"device": device, "dtype": dtype}
    module.weight = nn.Parameter(torch.empty((out_channels, in_per_group, *kernel_size), **factory))
    if bias:
        module.bias = nn.Parameter(torch.empty(out_channels, **factory))
    else:
        module.register_parameter("bias", None)


def reset_conv_parameters(weight: torch.Tensor, bias: Optional[torch.Tensor]) -> None:
    """Torch's conv initialisation, draw for draw."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = weight[0].numel()
        if fan_in != 0:
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(bias, -bound, bound)


def copy_conv_parameters(layer: nn.Module, conv: nn.Module, weight: Optional[torch.Tensor] = None) -> nn.Module:
    """Copy ``conv.weight`` (or ``weight``, reshaped to ``layer.weight``'s shape) and ``conv.bias`` into ``layer``."""
    if (layer.bias is None) != (conv.bias is None):
        raise GridValueError(f"bias mismatch: {type(layer).__name__} "
                             f"{'has no' if layer.bias is None else 'has a'} bias "
                             f"but {type(conv).__name__} {'has no' if conv.bias is None else 'has a'} bias")
    for name, source in (("weight", conv.weight if weight is None else weight), ("bias", conv.bias)):
        target = getattr(layer, name)
        if source is not None and source.is_complex() and not target.is_complex():
            raise GridTypeError(f"{type(conv).__name__}.{name} is {source.dtype} but {type(layer).__name__}.{name} "
                                f"is {target.dtype}: copying would drop the imaginary part; build the layer with "
                                f"dtype={source.dtype}")
    with torch.no_grad():
        layer.weight.copy_((conv.weight if weight is None else weight).reshape(layer.weight.shape))
        if layer.bias is not None:
            layer.bias.copy_(conv.bias)
    return layer
