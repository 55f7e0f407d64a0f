"""Padding a channels-last node tensor exactly as a grid graph's edges read it, and its per-offset views."""
from __future__ import annotations

from typing import List

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


def shifted_views(x: Tensor, geom: ConvGeometry, fill: float = 0.0) -> List[Tensor]:
    """Per kernel offset (row-major, as ``edge_type``), its edges' sources: ``[B, *S_in, C] -> K x [B, *S_out, C]``.

    Output node ``i`` of offset ``t``'s view holds the input its edge of type ``t`` reads: one strided
    slice of the padded tensor (:func:`pad_nodes`, padding filled with ``fill``) per offset, no copy.
    """
    padded = pad_nodes(x, geom, fill)                                             # [B, *P, C]
    return [padded[(slice(None),) + tuple(slice(k * d, k * d + (n - 1) * s + 1, s) for k, d, n, s in
                                          zip(index, geom.dilation, geom.out_size, geom.stride))]
            for index in geom.kernel_indices()]
