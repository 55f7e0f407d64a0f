"""Low-rank (truncated SVD) compression of pointwise layers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Union

import torch
from torch import Tensor, nn

from ..errors import GridTypeError, GridValueError
from ..nn import NodeLinear

Pointwise = Union[NodeLinear, nn.Conv1d, nn.Conv2d, nn.Conv3d]


def _pointwise_weight(layer: nn.Module) -> Tensor:
    if isinstance(layer, NodeLinear):
        groups = layer.groups
    elif isinstance(layer, nn.modules.conv._ConvNd) and not layer.transposed and \
            all(k == 1 for k in layer.kernel_size):
        if any(s != 1 for s in layer.stride) or any(p != 0 for p in layer._reversed_padding_repeated_twice):
            raise GridValueError(f"low_rank needs a 1x1 conv with stride 1 and no padding, got {layer}")
        groups = layer.groups
    else:
        raise GridTypeError(f"low_rank expects a NodeLinear or a 1x1 nn.Conv1d/2d/3d, got {type(layer).__name__}")
    if groups != 1:
        raise GridValueError(f"low_rank needs groups=1 (a dense channel map), got groups={groups}")
    return layer.weight.detach().flatten(1)                                        # [C_out, C_in]


@dataclass
class LowRank:
    """The factorised layer, the singular values and the Frobenius error of the truncation."""

    module: nn.Module
    singular_values: Tensor
    error: float


def low_rank(layer: Pointwise, rank: int) -> LowRank:
    r"""Replace a dense pointwise layer by two thinner ones from the truncated SVD of its weight.

    With :math:`\mathbf{W} = \mathbf{U}\boldsymbol{\Sigma}\mathbf{V}^{\top}` and rank :math:`r`,

    .. math::
        \mathbf{W} \approx (\mathbf{U}_r \boldsymbol{\Sigma}_r)(\mathbf{V}_r^{\top})
        \qquad
        \mathbf{y}_i = \mathbf{U}_r \boldsymbol{\Sigma}_r (\mathbf{V}_r^{\top} \mathbf{x}_i) + \mathbf{b}

    which is Eckart-Young optimal: the Frobenius error is
    :math:`\sqrt{\sum_{k > r} \sigma_k^2}`. Parameters drop from
    :math:`C_{out} C_{in}` to :math:`r (C_{in} + C_{out})`.

    Args:
        layer: a ``NodeLinear`` (returns two NodeLinears) or a 1x1 ``nn.Conv{n}d``
            (returns two 1x1 convs of the same kind), ``groups=1``.
        rank: kept singular values, ``1 <= rank <= min(C_in, C_out)``.

    Returns:
        ``LowRank`` with ``module`` (an ``nn.Sequential`` of the two layers).

    Example:
        >>> from gridgnn import analysis
        >>> from gridgnn.nn import NodeLinear
        >>> compressed = analysis.low_rank(NodeLinear(8, 8), rank=2)
        >>> compressed.module                                    # 8 -> 2 -> 8: two thin node-wise maps
        Sequential(
          (0): NodeLinear(8, 2, bias=False)
          (1): NodeLinear(2, 8)
        )
    """
    weight = _pointwise_weight(layer)
    c_out, c_in = weight.shape
    if not 1 <= rank <= min(c_in, c_out):
        raise GridValueError(f"rank must be between 1 and min(C_in, C_out) = {min(c_in, c_out)}, got {rank}")
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    first, second = vh[:rank], u[:, :rank] * s[:rank]                             # [r, C_in], [C_out, r]
    bias = layer.bias is not None
    factory = {"device": weight.device, "dtype": weight.dtype}
    if isinstance(layer, NodeLinear):
        a, b = NodeLinear(c_in, rank, bias=False, **factory), NodeLinear(rank, c_out, bias=bias, **factory)
    else:
        conv = type(layer)
        a, b = conv(c_in, rank, 1, bias=False, **factory), conv(rank, c_out, 1, bias=bias, **factory)
    with torch.no_grad():
        a.weight.copy_(first.reshape(a.weight.shape))
        b.weight.copy_(second.reshape(b.weight.shape))
        if bias:
            b.bias.copy_(layer.bias)
    error = float(s[rank:].pow(2).sum().sqrt())
    return LowRank(nn.Sequential(a, b), s, error)


@dataclass
class RankCurve:
    """Relative error (and parameter count) of a low-rank compression at each rank tried."""

    ranks: List[int]
    relative_error: List[float]
    params: List[int]
    dense_params: int


def low_rank_curve(layer: Pointwise) -> RankCurve:
    """Relative Frobenius error and parameter count of the rank-``r`` factorisation, for every ``r``.

    Example:
        >>> from gridgnn import analysis
        >>> from gridgnn.nn import NodeLinear
        >>> curve = analysis.low_rank_curve(NodeLinear(8, 8))
        >>> float(curve.relative_error[-1]) < 1e-6               # full rank: exact
        True
    """
    weight = _pointwise_weight(layer)
    c_out, c_in = weight.shape
    s = torch.linalg.svdvals(weight)
    total = s.pow(2).sum()
    tail = s.pow(2).flip(0).cumsum(0).flip(0)                                      # sum_{k >= r} sigma_k^2
    ranks = list(range(1, len(s) + 1))
    errors = [float((tail[r] / total).sqrt()) if r < len(s) else 0.0 for r in ranks]
    return RankCurve(ranks, errors, [r * (c_in + c_out) for r in ranks], c_in * c_out)
