"""Parameter and multiply-accumulate (MAC) counts of convs, pointwise layers and whole models.

The closed forms (:func:`conv_params`, :func:`conv_macs`) and the figures built on
them reproduce the classic arithmetic of 1x1 convolution; :func:`count_macs`
measures a real model with forward hooks, so a converted model counts exactly
as its original.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .._checks import check_groups
from .._hooks import forward_hooks
from .._types import ModelInput
from ..nn import GridConv, NodeLinear

KernelSize = Union[int, Sequence[int]]


def _kernel_numel(kernel_size: KernelSize) -> int:
    return kernel_size * kernel_size if isinstance(kernel_size, int) else math.prod(kernel_size)


def conv_params(in_channels: int, out_channels: int, kernel_size: KernelSize, groups: int = 1,
                bias: bool = False) -> int:
    r"""Weights of a conv: :math:`C_{out} \cdot (C_{in}/g) \cdot k^2` (plus :math:`C_{out}` with bias).

    An int ``kernel_size`` means a square 2-D kernel; pass a tuple for other shapes.

    Example:
        >>> conv_params(128, 256, 3), conv_params(128, 256, 1)
        (294912, 32768)
    """
    check_groups(in_channels, out_channels, groups)
    return out_channels * (in_channels // groups) * _kernel_numel(kernel_size) + (out_channels if bias else 0)


def conv_macs(in_channels: int, out_channels: int, kernel_size: KernelSize, groups: int = 1) -> int:
    r"""Multiply-accumulates per output position: :math:`C_{out} \cdot (C_{in}/g) \cdot k^2`.

    Example:
        >>> from gridgnn import analysis
        >>> analysis.conv_macs(64, 128, 3)                       # per output position: 64 * 128 * 9
        73728
    """
    return conv_params(in_channels, out_channels, kernel_size, groups)


def bottleneck_params(channels: int = 256, width: int = 64, kernel_size: int = 3) -> int:
    """ResNet bottleneck weights: 1x1 ``channels -> width``, ``k x k`` ``width -> width``, 1x1 ``width -> channels``.

    >>> bottleneck_params(256, 64), conv_params(256, 256, 3)
    (69632, 589824)
    """
    return (conv_params(channels, width, 1) + conv_params(width, width, kernel_size)
            + conv_params(width, channels, 1))


def separable_macs(in_channels: int, out_channels: int, kernel_size: int = 3) -> Tuple[int, int, int]:
    """Per output pixel: ``(depthwise MACs, pointwise MACs, standard conv MACs)``.

    >>> separable_macs(192, 384, 3)
    (1728, 73728, 663552)
    """
    return (conv_macs(in_channels, in_channels, kernel_size, groups=in_channels),
            conv_macs(in_channels, out_channels, 1), conv_macs(in_channels, out_channels, kernel_size))


def inception_reduce_params(in_channels: int = 256, reduce: int = 64, out_channels: int = 256,
                            kernel_size: int = 3) -> Tuple[int, int]:
    """``(with 1x1 reduce, without)``: weights of a ``k x k`` branch with and without a 1x1 reduction first.

    The often-quoted 163,840 is the 3x3 branch ``256 -(1x1)-> 64 -(3x3)-> 256``:
    ``256*64 + 9*64*256 = 16,384 + 147,456``, against ``9*256*256 = 589,824``
    without the reduction. (With a 5x5 kernel no integer width gives 163,840.)

    >>> inception_reduce_params(256, 64, 256, 3)
    (163840, 589824)
    """
    return (conv_params(in_channels, reduce, 1) + conv_params(reduce, out_channels, kernel_size),
            conv_params(in_channels, out_channels, kernel_size))


def inverted_residual_macs(in_channels: int, out_channels: int, expand_ratio: int, size: Tuple[int, int],
                           stride: int = 1, kernel_size: int = 3) -> Dict[str, int]:
    """MACs of a MobileNetV2 inverted residual on an ``H x W`` input: expand, depthwise, project and total.

    Example:
        >>> from gridgnn import analysis
        >>> analysis.inverted_residual_macs(16, 16, 6, (8, 8))   # 16 -> 96 -> depthwise 3x3 -> 16 on 64 pixels
        {'expand': 98304, 'depthwise': 55296, 'project': 98304, 'total': 251904}
    """
    h, w = size
    ho, wo = -(-h // stride), -(-w // stride)
    hidden = in_channels * expand_ratio
    expand = conv_macs(in_channels, hidden, 1) * h * w if expand_ratio != 1 else 0
    depthwise = conv_macs(hidden, hidden, kernel_size, groups=hidden) * ho * wo
    project = conv_macs(hidden, out_channels, 1) * ho * wo
    return {"expand": expand, "depthwise": depthwise, "project": project, "total": expand + depthwise + project}


def compound_scaling(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15) -> Dict[str, float]:
    r"""EfficientNet compound scaling: depth :math:`\alpha^\phi`, width :math:`\beta^\phi`, size :math:`\gamma^\phi`.

    Conv MACs grow linearly with depth and quadratically with width and
    resolution, so by :math:`(\alpha \beta^2 \gamma^2)^\phi \approx 2^\phi`.

    Example:
        >>> from gridgnn import analysis
        >>> analysis.compound_scaling(1.0)                       # MACs grow by alpha * beta^2 * gamma^2
        {'depth': 1.2, 'width': 1.1, 'resolution': 1.15, 'macs': 1.92027}
    """
    depth, width, resolution = alpha ** phi, beta ** phi, gamma ** phi
    return {"depth": depth, "width": width, "resolution": resolution, "macs": depth * width ** 2 * resolution ** 2}


# -- measured on modules -----------------------------------------------------------
def count_params(module: nn.Module) -> int:
    """Trainable parameters of ``module``.

    Example:
        >>> from gridgnn import analysis
        >>> analysis.count_params(nn.Conv2d(3, 8, 3))             # 3 * 8 * 9 weights + 8 biases
        224
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _layer_macs(module: nn.Module, inputs: Tuple, output: Tensor) -> int:
    """MACs of one forward call of a counted layer (a conv, transposed conv, linear, GridConv or NodeLinear)."""
    if isinstance(module, nn.modules.conv._ConvNd):
        # a conv: every output position reads a full (padded) window, as torch computes it; a transposed
        # conv: every input position sends a full window (one message per edge of the reversed graph and
        # per edge cropped by padding, as torch computes it)
        counted = inputs[0] if module.transposed else output
        positions = counted.numel() // counted.size(-len(module.kernel_size) - 1)
        return positions * conv_macs(module.in_channels, module.out_channels, module.kernel_size, module.groups)
    if isinstance(module, GridConv):
        x, edges = inputs[0], inputs[1]
        num_edges = edges.num_edges if hasattr(edges, "num_edges") else edges.size(1)
        batch = x.numel() // (x.size(-2) * x.size(-1))
        return batch * num_edges * module.out_channels * (module.in_channels // module.groups)
    if isinstance(module, NodeLinear):
        return (output.numel() // module.out_channels) * module.weight.numel()
    return (output.numel() // module.out_features) * module.weight.numel()     # nn.Linear


@dataclass
class LayerCount:
    """One counted layer of :func:`layer_counts`: its name, type, parameters, MACs and output shape."""

    name: str
    kind: str
    params: int
    macs: int
    output_shape: Tuple[int, ...]


def layer_counts(model: nn.Module, example_input: ModelInput) -> List[LayerCount]:
    """Per-layer parameters and MACs of the convs, linears and gridgnn layers ``model`` runs on ``example_input``.

    MACs are for the whole ``example_input`` batch. A graph-level ``GridConv`` on
    an explicit graph counts one message per edge (missing edges cost nothing);
    image-level layers count every (padded) window position as torch does.

    Example:
        >>> from gridgnn import analysis
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        >>> row = analysis.layer_counts(model, torch.randn(1, 3, 8, 8))[0]
        >>> row.kind, row.params, row.macs
        ('Conv2d', 224, 13824)
    """
    rows: List[LayerCount] = []
    counted = (nn.modules.conv._ConvNd, nn.Linear, GridConv, NodeLinear)

    def record(name: str, mod: nn.Module, args: Tuple, out: Tensor) -> None:
        rows.append(LayerCount(name or type(mod).__name__, type(mod).__name__,
                               sum(p.numel() for p in mod.parameters(recurse=False)), _layer_macs(mod, args, out),
                               tuple(out.shape)))

    modules = {name: m for name, m in model.named_modules() if isinstance(m, counted)}
    with forward_hooks(modules, record), torch.no_grad():
        model(*(example_input if isinstance(example_input, tuple) else (example_input,)))
    return rows


def count_macs(model: nn.Module, example_input: ModelInput) -> int:
    """Total MACs of ``model`` on ``example_input`` (see :func:`layer_counts`).

    Example:
        >>> from gridgnn import analysis
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
        >>> analysis.count_macs(model, torch.randn(1, 3, 8, 8))   # (216 + 32) MACs at each of 64 pixels
        15872
    """
    return sum(row.macs for row in layer_counts(model, example_input))


def layer_table(model: nn.Module, example_input: ModelInput) -> str:
    """A printable per-layer table of parameters, MACs and output shapes, with totals.

    Example:
        >>> from gridgnn import analysis
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
        >>> print(analysis.layer_table(model, torch.randn(1, 3, 8, 8)))
        layer  type               params           MACs  output
        0      Conv2d                224         13,824  [1, 8, 8, 8]
        2      Conv2d                 36          2,048  [1, 4, 8, 8]
        total                        260         15,872
    """
    rows = layer_counts(model, example_input)
    width = max([len(r.name) for r in rows] + [5])
    lines = [f"{'layer':<{width}}  {'type':<14} {'params':>10} {'MACs':>14}  output"]
    lines += [f"{r.name:<{width}}  {r.kind:<14} {r.params:>10,} {r.macs:>14,}  {list(r.output_shape)}" for r in rows]
    lines.append(f"{'total':<{width}}  {'':<14} {sum(r.params for r in rows):>10,} {sum(r.macs for r in rows):>14,}")
    return "\n".join(lines)
