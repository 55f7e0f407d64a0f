"""Every argument check of gridgnn, in one place and one message form: the argument, its value, the fix.

Messages read ``"<where>: <argument> must ..., got <value>; <how to fix>"`` (``where``
is the layer or function when it helps). Layers, graphs, flow specs and the
analysis helpers all validate through these functions.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .errors import GridTypeError, GridValueError

PADDING_MODES = ("zeros", "circular", "reflect", "replicate")


def _prefix(where: Optional[str]) -> str:
    return f"{where}: " if where else ""


def is_int(value) -> bool:
    """Whether ``value`` is an integer as torch's layers take one: an int, a numpy int, a SymInt; not a bool."""
    if isinstance(value, (int, torch.SymInt)):
        return not isinstance(value, bool)
    return hasattr(type(value), "__index__") and not isinstance(value, (float, str))


def positive_int(value, name: str, where: Optional[str] = None, minimum: int = 1) -> int:
    """``value`` if it is an int (numpy ints too, not bools) of at least ``minimum``, else an error naming ``name``.

    A non-int is a :class:`~gridgnn.errors.GridTypeError` (as torch's ``TypeError``), a small int a
    :class:`~gridgnn.errors.GridValueError`.
    """
    kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if not is_int(value):
        raise GridTypeError(f"{_prefix(where)}{name} must be {kind}, got {value!r}")
    if int(value) < minimum:
        raise GridValueError(f"{_prefix(where)}{name} must be {kind}, got {value!r}")
    return int(value)


def divides(groups: int, channels: int, name: str = "channels", where: Optional[str] = None) -> None:
    """A ``ValueError`` unless ``groups`` (a positive int) divides ``channels``."""
    positive_int(groups, "groups", where)
    if channels % groups:
        valid = [g for g in range(1, channels + 1) if channels % g == 0]
        raise GridValueError(f"{_prefix(where)}{name}={channels} is not divisible by groups={groups}; groups must "
                             f"divide it (valid: {valid})")


def check_groups(in_channels: int, out_channels: int, groups: int, where: Optional[str] = None) -> None:
    """Channel counts (zero allowed, as in torch) and a positive ``groups`` dividing both."""
    positive_int(in_channels, "in_channels", where, minimum=0)
    positive_int(out_channels, "out_channels", where, minimum=0)
    positive_int(groups, "groups", where)
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if value % groups:
            valid = [g for g in range(1, value + 1) if in_channels % g == 0 and out_channels % g == 0]
            raise GridValueError(f"{_prefix(where)}{name}={value} is not divisible by groups={groups}; groups must "
                                 f"divide both in_channels and out_channels (valid here: {valid})")


def check_padding_mode(padding_mode: str) -> str:
    """``padding_mode`` if torch's convs know it."""
    if padding_mode not in PADDING_MODES:
        raise GridValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    return padding_mode


def check_path(path: str, allowed: Sequence[str] = ("auto", "dense", "general")) -> str:
    """``path`` if it is one of the execution paths ``allowed``."""
    if path not in allowed:
        raise GridValueError(f"path must be one of {tuple(allowed)}, got {path!r}")
    return path


def check_torch_conv(conv: nn.Module, caller: str, ndim: Optional[int] = None) -> None:
    """``conv`` must be a (non-transposed) ``nn.Conv1d/2d/3d``, of ``ndim`` spatial dims if given."""
    if not isinstance(conv, nn.modules.conv._ConvNd) or conv.transposed:
        raise GridTypeError(f"{caller} expects an nn.Conv1d/2d/3d, got {type(conv).__name__}")
    if ndim is not None and len(conv.kernel_size) != ndim:
        raise GridTypeError(f"{caller} expects an nn.Conv{ndim}d, got {type(conv).__name__} with "
                            f"{len(conv.kernel_size)} spatial dims")


def check_torch_conv_transpose(conv: nn.Module, caller: str, ndim: Optional[int] = None) -> None:
    """``conv`` must be an ``nn.ConvTranspose1d/2d/3d`` (of ``ndim`` spatial dims if given)."""
    if not isinstance(conv, nn.modules.conv._ConvTransposeNd):
        raise GridTypeError(f"{caller} expects an nn.ConvTranspose1d/2d/3d, got {type(conv).__name__}")
    if ndim is not None and len(conv.kernel_size) != ndim:
        raise GridTypeError(f"{caller} expects an nn.ConvTranspose{ndim}d, got {type(conv).__name__} with "
                            f"{len(conv.kernel_size)} spatial dims")


def is_pointwise(kernel_size: Union[int, Sequence[int]]) -> bool:
    """Whether a kernel (an int or a tuple) is 1 in every dim: a 1x1 conv, a node-wise map."""
    return all(k == 1 for k in ((kernel_size,) if isinstance(kernel_size, int) else kernel_size))


def is_compiling() -> bool:
    return torch.compiler.is_compiling()


def check_node_features(x: Tensor, in_channels: int, weight: Tensor, layer: str, ranks=(2, 3)) -> None:
    """Node features ``x`` must be floating, ``[N, C]`` or ``[B, N, C]``, on the weight's device and dtype.

    ``C == in_channels``; any rank if ``ranks`` is None.
    """
    if not isinstance(x, Tensor):
        raise GridTypeError(f"{layer}: x must be a tensor of node features, got {type(x).__name__}")
    if not x.is_floating_point():
        raise GridTypeError(f"{layer}: x must be a floating-point tensor, got dtype {x.dtype}; "
                            f"convert it with x.to({weight.dtype})")
    if ranks is not None and x.dim() not in ranks or x.dim() == 0:
        raise GridValueError(f"{layer}: x must be node features [N, C] or [B, N, C], got shape {tuple(x.shape)}; "
                             "turn an image into nodes with gridgnn.to_nodes(x)")
    if x.size(-1) != in_channels:
        raise GridValueError(f"{layer}: x has {x.size(-1)} channels on its last axis but the layer expects "
                             f"in_channels={in_channels}")
    check_like_weight(x, weight, layer)


def check_like_weight(x: Tensor, weight: Tensor, layer: str) -> None:
    if x.device != weight.device:
        raise GridValueError(f"{layer}: input is on {x.device} but the layer's weight is on {weight.device}; "
                             f"move one of them, e.g. layer.to('{x.device}')")
    if x.dtype != weight.dtype:
        raise GridTypeError(f"{layer}: input has dtype {x.dtype} but the layer's weight has {weight.dtype}; "
                            f"cast one of them, e.g. layer.to({x.dtype})")


def check_edges(x: Tensor, edge_index: Tensor, edge_type: Tensor, num_offsets: int,
                num_src: int, num_dst: int, layer: str) -> None:
    """Shapes, dtypes, devices and index ranges of user-given typed edges."""
    for name, t, dims in (("edge_index", edge_index, 2), ("edge_type", edge_type, 1)):
        if not isinstance(t, Tensor):
            raise GridTypeError(f"{layer}: {name} must be a tensor, got {type(t).__name__}")
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise GridTypeError(f"{layer}: {name} must be an integer tensor (torch.long), got {t.dtype}")
        if t.dim() != dims:
            raise GridValueError(f"{layer}: {name} must have {dims} dims, got shape {tuple(t.shape)}")
        if t.device != x.device:
            raise GridValueError(f"{layer}: {name} is on {t.device} but x is on {x.device}; put node and edge "
                                 f"tensors on one device, e.g. {name}.to('{x.device}')")
    if edge_index.size(0) != 2 or edge_type.size(0) != edge_index.size(1):
        raise GridValueError(f"{layer}: edge_index must be [2, E] and edge_type [E], got {tuple(edge_index.shape)} "
                             f"and {tuple(edge_type.shape)}")
    if edge_type.numel() == 0 or is_compiling():
        return
    # one host sync for all range checks; GridGraph inputs skip this (validated when built)
    t_min, t_max, s_min, s_max, d_min, d_max = torch.stack([
        edge_type.min(), edge_type.max(), edge_index[0].min(), edge_index[0].max(),
        edge_index[1].min(), edge_index[1].max()]).tolist()
    if t_min < 0 or t_max >= num_offsets:
        raise GridValueError(f"{layer}: edge_type must lie in [0, {num_offsets}) (one type per kernel offset), "
                         f"got values in [{t_min}, {t_max}]")
    if s_min < 0 or s_max >= num_src:
        raise GridValueError(f"{layer}: source indices edge_index[0] must lie in [0, {num_src}) (the nodes of x), "
                         f"got [{s_min}, {s_max}]")
    if d_min < 0 or d_max >= num_dst:
        raise GridValueError(f"{layer}: target indices edge_index[1] must lie in [0, {num_dst}), got "
                         f"[{d_min}, {d_max}]; pass size=(num_src_nodes, num_dst_nodes) for bipartite graphs")
