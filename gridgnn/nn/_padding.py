"""Padding a channels-last node tensor exactly as a grid graph's edges read it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..geometry import ConvGeometry


def pad_nodes(x: Tensor, geom: ConvGeometry, fill: float = 0.0) -> Tensor:
    """Pad the spatial axes of a channels-last tensor ``[B, *S, C]`` as ``geom`` says.

    Zero padding appends ``fill`` (zeros unless asked); the other modes gather the pixels the graph's remapped
    edges point at (:meth:`ConvGeometry.remap`), so both agree by construction.
    """
    if all(left == 0 and right == 0 for left, right in geom.padding):
        return x
    if geom.padding_mode == "zeros":
        pads = [0, 0]  # channel axis (last)
        for left, right in reversed(geom.padding):
            pads += [left, right]
        return F.pad(x, pads, value=fill)
    for d, (left, right) in enumerate(geom.padding):
        if left or right:
            coord = torch.arange(-left, geom.in_size[d] + right, device=x.device)
            src, _ = geom.remap(coord, d)
            x = x.index_select(1 + d, src)
    return x
