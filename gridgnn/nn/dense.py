"""Dense execution of a grid conv on a complete grid graph.

On a complete grid the messages a node receives are its kernel window, so they
can be gathered for all nodes at once with strided views of the node tensor
``[B, *S, C]`` (padding remapped exactly as the graph's edges are), laid out as
``[B * N_out, C_in * K]`` and contracted with the weight in one (grouped) GEMM.
No torch conv op is involved.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..geometry import ConvGeometry


def pad_nodes(x: Tensor, geom: ConvGeometry) -> Tensor:
    """Pad the spatial axes of a channels-last tensor ``[B, *S, C]`` as ``geom`` says.

    Zero padding appends zeros; the other modes gather the pixels the graph's
    remapped edges point at (:meth:`ConvGeometry.remap`), so both agree by construction.
    """
    if all(left == 0 and right == 0 for left, right in geom.padding):
        return x
    if geom.padding_mode == "zeros":
        pads = [0, 0]  # channel axis (last)
        for left, right in reversed(geom.padding):
            pads += [left, right]
        return F.pad(x, pads)
    for d, (left, right) in enumerate(geom.padding):
        if left or right:
            coord = torch.arange(-left, geom.in_size[d] + right, device=x.device)
            src, _ = geom.remap(coord, d)
            x = x.index_select(1 + d, src)
    return x


def gather_windows(x: Tensor, geom: ConvGeometry) -> Tensor:
    """Kernel windows of every output node: ``[B, *S_in, C] -> [B, *S_out, C, *kernel]`` (a strided view)."""
    x = pad_nodes(x, geom)
    for d in range(geom.ndim):
        span = geom.dilation[d] * (geom.kernel_size[d] - 1) + 1
        x = x.unfold(1 + d, span, geom.stride[d])            # new trailing axis of length span
        if geom.dilation[d] > 1:
            x = x[..., ::geom.dilation[d]]
    return x


def dense_grid_conv(x: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor],
                    groups: int) -> Tensor:
    """Grid conv by gathered windows and one GEMM.

    Args:
        x: node features ``[B, N_in, C_in]`` with ``N_in = prod(geom.in_size)``.
        weight: ``[C_out, C_in / groups, *kernel]`` (torch's conv layout).

    Returns:
        node features ``[B, N_out, C_out]``.
    """
    b, c_in = x.size(0), x.size(-1)
    c_out, num_k = weight.size(0), geom.num_offsets
    windows = gather_windows(x.view(b, *geom.in_size, c_in), geom)   # [B, *S_out, C_in, *K]
    n_out = windows[0].numel() // (c_in * num_k)
    if groups == 1:
        cols = windows.reshape(b * n_out, c_in * num_k)              # [B*N_out, C_in*K], im2col
        out = torch.addmm(bias, cols, weight.view(c_out, -1).t()) if bias is not None \
            else cols @ weight.view(c_out, -1).t()                   # [B*N_out, C_out]
    else:
        cols = windows.reshape(b * n_out, groups, (c_in // groups) * num_k)       # [B*N_out, G, C_in/G*K]
        wg = weight.view(groups, c_out // groups, -1)                              # [G, C_out/G, C_in/G*K]
        out = torch.einsum("ngi,goi->ngo", cols, wg).reshape(b * n_out, c_out)     # [B*N_out, C_out]
        if bias is not None:
            out = out + bias
    return out.view(b, n_out, c_out)
