"""Reading specs off real module stacks: layer by layer, or through torch.fx for custom forwards."""
from __future__ import annotations

import operator
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GridTypeError, GridValueError
from .specs import Concat, Conv, Depthwise, Identity, Pointwise, Residual, Shuffle, Spec

__all__ = ["from_module"]

_CHANNELWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
                nn.Hardsigmoid, nn.Mish, nn.ELU, nn.PReLU, nn.Identity, nn.modules.dropout._DropoutNd,
                nn.Upsample, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
                nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)


def _layer_spec(mod: nn.Module) -> Optional[Spec]:
    """The spec of one layer gridgnn can read, or None (a container or an unknown module)."""
    from ..nn import ChannelShuffle, GridConv, NodeLinear

    if isinstance(mod, (nn.modules.conv._ConvNd, GridConv, NodeLinear)):
        # a transposed conv connects the same channel groups as a conv (weight [C_in, C_out/g, *k])
        kernel = getattr(mod, "kernel_size", (1,))
        if all(k == 1 for k in kernel):
            return Pointwise(mod.groups, mod.out_channels)
        if mod.groups == mod.in_channels:
            return Depthwise(tuple(kernel), mod.out_channels // mod.in_channels)
        return Conv(tuple(kernel), mod.groups, mod.out_channels)
    if isinstance(mod, (nn.ChannelShuffle, ChannelShuffle)):
        return Shuffle(mod.groups)
    if isinstance(mod, nn.GroupNorm):
        return Pointwise(mod.num_groups)
    if isinstance(mod, _CHANNELWISE):
        return Identity()
    return None


def from_module(module: nn.Module, in_channels: int) -> List[Spec]:
    """The specs of a real module stack, checked against ``in_channels``.

    Reads ``nn.Conv1d/2d/3d`` (any groups), ``nn.ChannelShuffle``, gridgnn's
    ``NodeLinear``, ``GridConv`` (and ``GridConv1d/2d/3d``) and ``ChannelShuffle``,
    transposed convs, ``nn.GroupNorm`` (mixes within its groups), channel-wise layers
    (activations incl. PReLU, BatchNorm and InstanceNorm, pooling, dropout, upsampling:
    :class:`Identity`), ``nn.Sequential`` and ``nn.ModuleList`` (read in order). Any other
    module is traced with ``torch.fx``: its forward may chain the layers above, apply
    channel-wise functions (``F.relu``, ...), add a residual (``x + body(x)``:
    :class:`Residual`) and concatenate branches along channels (``torch.cat(..., 1)``:
    :class:`Concat`).

    Raises:
        TypeError: for a module or an operation it cannot read, naming its path in ``module``.
        ValueError: when a layer's channels do not match what reaches it.

    Example:
        >>> from gridgnn import flow
        >>> stack = nn.Sequential(nn.Conv2d(8, 8, 1, groups=2), nn.ChannelShuffle(2), nn.Conv2d(8, 8, 1, groups=2))
        >>> [type(spec).__name__ for spec in flow.from_module(stack, in_channels=8)]
        ['Pointwise', 'Shuffle', 'Pointwise']
        >>> class Block(nn.Module):                                 # a residual in a custom forward
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.conv = nn.Conv2d(8, 8, 1, groups=4)
        ...     def forward(self, x):
        ...         return x + F.relu(self.conv(x))
        >>> flow.from_module(Block(), in_channels=8)
        [Residual(body=(Pointwise(groups=4, out_channels=8),))]
    """
    specs: List[Spec] = []
    channels = in_channels

    def visit(mod: nn.Module, path: str) -> None:
        nonlocal channels
        if isinstance(mod, (nn.Sequential, nn.ModuleList)):
            for name, child in mod.named_children():
                visit(child, f"{path}.{name}" if path else name)
            return
        label = path or type(mod).__name__
        spec = _layer_spec(mod)
        if spec is None and type(mod).__module__.startswith("torch."):        # a torch layer it cannot read
            raise GridTypeError(f"flow.from_module: unsupported module {label} ({type(mod).__name__}); supported: "
                                "convs, channel shuffles, NodeLinear, GridConv, GroupNorm, channel-wise layers, "
                                "containers and custom forwards of these. Write its specs by hand (Residual, "
                                "Concat, Split, Permute)")
        if spec is None:
            traced = _traced_specs(mod, channels, label)
            specs.extend(traced)
            channels = _num_out(traced, channels)
            return
        if hasattr(mod, "in_channels") and mod.in_channels != channels:
            raise GridValueError(f"flow.from_module: {label} expects {mod.in_channels} input channels but "
                                 f"{channels} reach it")
        channels = spec.num_out(channels)
        specs.append(spec)

    visit(module, "")
    return specs


def _num_out(specs: List[Spec], channels: int) -> int:
    for spec in specs:
        channels = spec.num_out(channels)
    return channels


#: functions and methods that act on each channel alone (or only move pixels): Identity in the flow
_CHANNELWISE_CALLS = {F.relu, F.relu6, F.leaky_relu, F.silu, F.gelu, F.elu, F.hardswish, F.hardsigmoid, F.mish,
                      F.dropout, F.dropout2d, F.interpolate, F.max_pool1d, F.max_pool2d, F.max_pool3d,
                      F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, torch.relu, torch.sigmoid, torch.tanh,
                      torch.clamp, operator.neg, "relu", "sigmoid", "tanh", "clamp", "contiguous",
                      "clone", "float", "to"}


class _LayerTracer(torch.fx.Tracer):
    """Keeps every layer :func:`from_module` reads as one call; traces into everything else."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return _layer_spec(m) is not None


def _traced_specs(module: nn.Module, in_channels: int, label: str) -> List[Spec]:
    """Specs of a custom ``forward``: a chain of layers with residual adds and channel concatenations."""
    try:
        graph = _LayerTracer().trace(module)
    except Exception as error:  # noqa: BLE001 - any tracing failure: say which module and why
        raise GridTypeError(f"flow.from_module: cannot read {label} ({type(module).__name__}): torch.fx could not "
                            f"trace its forward ({type(error).__name__}: {error}); write its specs by hand "
                            "(Residual, Concat, Split, Permute)") from error
    values: Dict[torch.fx.Node, Tuple[Spec, ...]] = {}       # each value: the specs from the input to it
    modules = dict(module.named_modules())

    def unsupported(node: torch.fx.Node) -> GridTypeError:
        return GridTypeError(f"flow.from_module: {label} calls {node.target} ({node.format_node()}), which is "
                             "not a channel-wise op, a residual add or a channel concat; write its specs by hand "
                             "(Residual, Concat, Split, Permute)")

    output = None
    for node in graph.nodes:
        tensors = [a for a in node.args if isinstance(a, torch.fx.Node)]
        if node.op == "placeholder":
            if values:
                raise GridTypeError(f"flow.from_module: {label} takes more than one input")
            values[node] = ()
        elif node.op == "call_module":
            sub = modules[node.target]
            channels = _num_out(list(values[tensors[0]]), in_channels)
            values[node] = values[tensors[0]] + tuple(from_module(sub, channels))
        elif node.op in ("call_function", "call_method") and node.target in (operator.add, torch.add, "add"):
            a, b = (values[t] for t in tensors[:2]) if len(tensors) >= 2 else (values[tensors[0]],) * 2
            short, long = sorted((a, b), key=len)
            if long[:len(short)] != short:
                raise unsupported(node)
            values[node] = short + ((Residual(*long[len(short):]),) if len(long) > len(short) else ())
        elif node.op == "call_function" and node.target is torch.cat:
            branches = [values[t] for t in node.args[0]]
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            if dim != 1:
                raise unsupported(node)
            common = 0
            while all(len(b) > common and b[common] == branches[0][common] for b in branches):
                common += 1
            values[node] = branches[0][:common] + (Concat(*(b[common:] for b in branches)),)
        elif node.op in ("call_function", "call_method") and node.target in _CHANNELWISE_CALLS and len(tensors) == 1:
            values[node] = values[tensors[0]]
        elif node.op == "output":
            output = values[node.args[0]] if isinstance(node.args[0], torch.fx.Node) else None
        else:
            raise unsupported(node)
    if output is None:
        raise GridTypeError(f"flow.from_module: {label} does not return one tensor")
    return list(output)
