"""Why a 1x1 map cannot see an edge and a 3x3 message-passing layer can."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..nn import GridConv2d


def step_image(size: int = 8, low: float = 0.0, high: float = 1.0) -> Tensor:
    """``[1, 1, size, size]``: a vertical step edge (left half ``low``, right half ``high``).

    Example:
        >>> from gridgnn import analysis
        >>> analysis.step_image(4)[0, 0]
        tensor([[0., 0., 1., 1.],
                [0., 0., 1., 1.],
                [0., 0., 1., 1.],
                [0., 0., 1., 1.]], dtype=torch.float64)
    """
    image = torch.full((1, 1, size, size), low, dtype=torch.float64)
    image[..., size // 2:] = high
    return image


@dataclass
class EdgeDemo:
    """What :func:`edge_detection_demo` fits: the image, the edge target and each fit's error."""

    image: Tensor          # [H, W]
    target: Tensor         # [H, W] horizontal central difference x[j+1] - x[j-1] (zero outside)
    best_1x1: Tensor       # [H, W] best affine per-pixel map a * x + b (least squares)
    conv_3x3: Tensor       # [H, W] a 3x3 GridConv2d computing the target exactly
    mse_1x1: float
    mse_3x3: float


def edge_detection_demo(size: int = 8) -> EdgeDemo:
    r"""Fit an edge detector with a 1x1 map and with a 3x3 :class:`~gridgnn.nn.GridConv2d`.

    The target is the horizontal central difference
    :math:`t_{h,w} = x_{h,w+1} - x_{h,w-1}`, non-zero only along the edge. A 1x1
    map gives :math:`y_i = a x_i + b`: two pixels with the same value get the
    same response wherever they are, so the best affine fit (least squares) keeps a
    positive error. A 3x3 conv reads the neighbours through its offset-typed
    edges and reproduces the target exactly (the kernel ``[[0,0,0],[-1,0,1],[0,0,0]]``).

    Example:
        >>> from gridgnn import analysis
        >>> demo = analysis.edge_detection_demo()
        >>> demo.mse_1x1 > 0.01, demo.mse_3x3 < 1e-10            # only a 3x3 kernel sees the edge
        (True, True)
    """
    image = step_image(size)
    conv = GridConv2d(1, 1, 3, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 0], conv.weight[0, 0, 1, 2] = -1.0, 1.0
        response = conv(image)[0, 0]
    x = image[0, 0]
    target = torch.zeros_like(x)
    target[:, 1:-1] = x[:, 2:] - x[:, :-2]
    target[:, 0], target[:, -1] = x[:, 1], -x[:, -2]
    design = torch.stack([x.flatten(), torch.ones(x.numel(), dtype=x.dtype)], dim=1)
    coef = torch.linalg.lstsq(design, target.flatten()[:, None]).solution
    best = (design @ coef).view_as(x)
    return EdgeDemo(x, target, best, response, float((best - target).pow(2).mean()),
                    float((response - target).pow(2).mean()))
