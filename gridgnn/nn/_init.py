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


def check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    """Raise a ``ValueError`` naming the argument unless ``groups`` divides both channel counts."""
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if value % groups:
            valid = [g for g in range(1, value + 1) if in_channels % g == 0 and out_channels % g == 0]
            raise ValueError(f"{name}={value} is not divisible by groups={groups}; groups must divide both "
                             f"in_channels and out_channels (valid here: {valid})")


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


def copy_conv_parameters(layer: nn.Module, conv: nn.Module) -> nn.Module:
    """Copy ``conv.weight`` (reshaped to ``layer.weight``'s shape) and ``conv.bias`` into ``layer``."""
    with torch.no_grad():
        layer.weight.copy_(conv.weight.reshape(layer.weight.shape))
        if layer.bias is not None:
            layer.bias.copy_(conv.bias)
    return layer


def check_torch_conv(conv: nn.Module, caller: str, ndim=None) -> None:
    """``conv`` must be a (non-transposed) ``nn.Conv1d/2d/3d``, of ``ndim`` spatial dims if given."""
    if not isinstance(conv, nn.modules.conv._ConvNd) or conv.transposed:
        raise TypeError(f"{caller} expects an nn.Conv1d/2d/3d, got {type(conv).__name__}")
    if ndim is not None and len(conv.kernel_size) != ndim:
        raise TypeError(f"{caller} expects an nn.Conv{ndim}d, got {type(conv).__name__} with "
                        f"{len(conv.kernel_size)} spatial dims")
