"""Gradient flow through pointwise layers, with and without a residual."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from ..errors import GridValueError
from ..graph import to_image, to_nodes
from ..nn import GridConv2d, NodeLinear


def backward_singular_values(weight: Tensor, residual: bool = False) -> Tensor:
    r"""Singular values of the backward map of a pointwise layer.

    For :math:`\mathbf{y}_i = \mathbf{W}\mathbf{x}_i` the gradient flows back as
    :math:`\partial L/\partial \mathbf{x}_i = \mathbf{W}^{\top} \partial L/\partial \mathbf{y}_i`;
    with a residual :math:`\mathbf{y}_i = \mathbf{W}\mathbf{x}_i + \mathbf{x}_i` it
    is :math:`(\mathbf{W}^{\top} + \mathbf{I})`. Small singular values throttle learning.

    Args:
        weight: ``[C_out, C_in]`` (or a 1x1 conv weight); square when ``residual``.

    Example:
        >>> from gridgnn import analysis
        >>> analysis.backward_singular_values(0.5 * torch.eye(3))                  # W^T
        tensor([0.5000, 0.5000, 0.5000])
        >>> analysis.backward_singular_values(0.5 * torch.eye(3), residual=True)   # W^T + I
        tensor([1.5000, 1.5000, 1.5000])
    """
    w = weight.detach().flatten(1)
    back = w.t()
    if residual:
        if w.size(0) != w.size(1):
            raise GridValueError(f"a residual needs a square weight, got {tuple(w.shape)}")
        back = back + torch.eye(w.size(0), dtype=w.dtype, device=w.device)
    return torch.linalg.svdvals(back)


class SeparableStack(nn.Module):
    r"""``depth`` depthwise-separable layers on a grid graph: depthwise 3x3, then pointwise, optional residual.

    Layer :math:`\ell`: :math:`\mathbf{z} = \sum_t \mathbf{A}_t \mathbf{X}\,\mathrm{diag}(\mathbf{d}_t)`,
    :math:`\mathbf{X} \leftarrow \mathbf{z}\mathbf{W}^{\top} (+ \mathbf{z})`: the pointwise map is the only
    path between channels, so gradients cross channels only through :math:`\mathbf{W}^{\top}`.

    Args:
        channels (int), depth (int), residual (bool), weight_scale (float): std of the pointwise weights.

    Shapes:
        - **input / output:** images ``[B, C, H, W]``

    Example:
        >>> from gridgnn import analysis
        >>> analysis.SeparableStack(8, depth=4, residual=True)(torch.randn(2, 8, 6, 6)).shape
        torch.Size([2, 8, 6, 6])
    """

    def __init__(self, channels: int, depth: int, residual: bool, weight_scale: float = 0.1):
        super().__init__()
        self.residual = residual
        self.depthwise = nn.ModuleList(GridConv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
                                       for _ in range(depth))
        self.pointwise = nn.ModuleList(NodeLinear(channels, channels, bias=False) for _ in range(depth))
        with torch.no_grad():
            for layer in self.pointwise:
                layer.weight.normal_(0, weight_scale)

    def forward(self, x: Tensor) -> Tensor:
        for dw, pw in zip(self.depthwise, self.pointwise):
            z = dw(x)
            y = to_image(pw(to_nodes(z)), z.shape[2:])                           # pointwise on [B, N, C]
            x = y + z if self.residual else y
        return x


def channel_gradient_norms(channels: int = 16, depth: int = 8, size: Tuple[int, int] = (8, 8),
                           weight_scale: float = 0.1, seed: int = 0) -> dict:
    """Per-input-channel gradient norms through a :class:`SeparableStack`, without and with residuals.

    The loss is the squared norm of the output's first channel, so every other
    input channel receives gradient only across the pointwise maps.

    Returns:
        ``{"plain": Tensor[C], "residual": Tensor[C]}`` of ``||dL/dx_c||``.

    Example:
        >>> from gridgnn import analysis
        >>> norms = analysis.channel_gradient_norms(channels=16, depth=4)
        >>> sorted(norms), norms["residual"].shape
        (['plain', 'residual'], torch.Size([16]))
    """
    out = {}
    for name, residual in (("plain", False), ("residual", True)):
        torch.manual_seed(seed)
        stack = SeparableStack(channels, depth, residual, weight_scale).double()
        x = torch.randn(1, channels, *size, dtype=torch.float64, requires_grad=True)
        stack(x)[:, 0].pow(2).sum().backward()
        out[name] = x.grad[0].flatten(1).norm(dim=1)
    return out
