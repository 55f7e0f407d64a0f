"""Reading specs off real module stacks."""
from __future__ import annotations

from typing import List

from torch import nn

from ..errors import GridTypeError, GridValueError
from .specs import Conv, Depthwise, Identity, Pointwise, Shuffle, Spec

__all__ = ["from_module"]

_CHANNELWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
                nn.Hardsigmoid, nn.Mish, nn.ELU, nn.PReLU, nn.Identity, nn.modules.dropout._DropoutNd,
                nn.Upsample, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
                nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)


def from_module(module: nn.Module, in_channels: int) -> List[Spec]:
    """The specs of a real module stack, checked against ``in_channels``.

    Reads ``nn.Conv1d/2d/3d`` (any groups), ``nn.ChannelShuffle``, gridgnn's
    ``NodeLinear``, ``GridConv`` (and ``GridConv1d/2d/3d``) and ``ChannelShuffle``,
    transposed convs, ``nn.GroupNorm`` (mixes within its groups), channel-wise layers
    (activations incl. PReLU, BatchNorm and InstanceNorm, pooling, dropout, upsampling:
    :class:`Identity`) and ``nn.Sequential`` nesting.

    Raises:
        TypeError: for any other module, naming its path in ``module``.
        ValueError: when a layer's channels do not match what reaches it.

    Example:
        >>> from gridgnn import flow
        >>> stack = nn.Sequential(nn.Conv2d(8, 8, 1, groups=2), nn.ChannelShuffle(2), nn.Conv2d(8, 8, 1, groups=2))
        >>> [type(spec).__name__ for spec in flow.from_module(stack, in_channels=8)]
        ['Pointwise', 'Shuffle', 'Pointwise']
    """
    from ..nn import ChannelShuffle, GridConv, NodeLinear

    specs: List[Spec] = []
    channels = in_channels

    def visit(mod: nn.Module, path: str) -> None:
        nonlocal channels
        if isinstance(mod, nn.Sequential):
            for name, child in mod.named_children():
                visit(child, f"{path}.{name}" if path else name)
            return
        label = path or type(mod).__name__
        if isinstance(mod, (nn.modules.conv._ConvNd, GridConv, NodeLinear)):
            # a transposed conv connects the same channel groups as a conv (weight [C_in, C_out/g, *k])
            if mod.in_channels != channels:
                raise GridValueError(f"flow.from_module: {label} expects {mod.in_channels} input channels but "
                                     f"{channels} reach it")
            kernel = getattr(mod, "kernel_size", (1,))
            if all(k == 1 for k in kernel):
                spec = Pointwise(mod.groups, mod.out_channels)
            elif mod.groups == mod.in_channels:
                spec = Depthwise(tuple(kernel), mod.out_channels // mod.in_channels)
            else:
                spec = Conv(tuple(kernel), mod.groups, mod.out_channels)
        elif isinstance(mod, (nn.ChannelShuffle, ChannelShuffle)):
            spec = Shuffle(mod.groups)
        elif isinstance(mod, nn.GroupNorm):
            spec = Pointwise(mod.num_groups)
        elif isinstance(mod, _CHANNELWISE):
            spec = Identity()
        else:
            raise GridTypeError(f"flow.from_module: unsupported module {label} ({type(mod).__name__}); supported: "
                                "convs, channel shuffles, NodeLinear, GridConv, GroupNorm, channel-wise layers and "
                                "nn.Sequential. Write its specs by hand (Residual, Concat, Split, Permute)")
        channels = spec.num_out(channels)
        specs.append(spec)

    visit(module, "")
    return specs
