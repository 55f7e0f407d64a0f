"""Network-in-Network: what one linear 1x1 layer cannot do and a 1x1 MLP can; block order."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import GridValueError
from ..nn import NodeLinear

XOR_INPUTS = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)  # 4 nodes, 2 channels
XOR_TARGETS = torch.tensor([[0.0], [1.0], [1.0], [0.0]], dtype=torch.float64)


def xor_linear_mse() -> float:
    r"""Best MSE of one linear 1x1 layer (with bias) fitting XOR of two channels: exactly 0.25.

    Solved in closed form by least squares on :math:`[\mathbf{x}_i, 1]`; the
    optimum is the constant 0.5.

    Example:
        >>> from gridgnn import analysis
        >>> analysis.xor_linear_mse()                            # the best linear map predicts 0.5 everywhere
        0.25
    """
    design = torch.cat([XOR_INPUTS, torch.ones(4, 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, XOR_TARGETS).solution
    return float((design @ solution - XOR_TARGETS).pow(2).mean())


def xor_mlp_exact() -> nn.Sequential:
    r"""1x1 -> ReLU -> 1x1 with weights that fit XOR exactly.

    :math:`y = h_1 - 2 h_2`, :math:`h_1 = \mathrm{ReLU}(x_1 + x_2)`, :math:`h_2 = \mathrm{ReLU}(x_1 + x_2 - 1)`.

    Example:
        >>> from gridgnn import analysis
        >>> analysis.xor_mlp_exact()(analysis.XOR_INPUTS).flatten().tolist()
        [0.0, 1.0, 1.0, 0.0]
    """
    first, second = NodeLinear(2, 2).double(), NodeLinear(2, 1).double()
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
        first.bias.copy_(torch.tensor([0.0, -1.0]))
        second.weight.copy_(torch.tensor([[1.0, -2.0]]))
        second.bias.zero_()
    return nn.Sequential(first, nn.ReLU(), second)


def xor_mlp_train(hidden: int = 8, steps: int = 2000, lr: float = 0.05,
                  seed: int = 0) -> Tuple[nn.Module, float, List[float]]:
    """Train 1x1 -> ReLU -> 1x1 (NodeLinears) on XOR with Adam; returns ``(model, mse, losses)``.

    Example:
        >>> from gridgnn import analysis
        >>> model, loss, history = analysis.xor_mlp_train(steps=500)
        >>> loss < 1e-3, len(history)
        (True, 500)
    """
    torch.manual_seed(seed)
    model = nn.Sequential(NodeLinear(2, hidden), nn.ReLU(), NodeLinear(hidden, 1)).double()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.mse_loss(model(XOR_INPUTS), XOR_TARGETS)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        mse = float(F.mse_loss(model(XOR_INPUTS), XOR_TARGETS))
    return model, mse, losses


@dataclass
class Collapsed:
    """A two-layer linear block collapsed to one conv: its ``weight`` ``[C_out, C_in, k, k]``, ``bias`` and ``rank``."""

    weight: Tensor
    bias: Tensor
    rank: int
    bottleneck: int


def collapse_block(first: nn.Module, second: nn.Module) -> Collapsed:
    r"""Collapse ``first`` then ``second`` (no non-linearity between) into one conv, and report its rank.

    Either order of a 1x1 and a ``k x k`` conv (zero padding ``k // 2``, stride 1,
    groups 1) composes to one ``k x k`` conv:

    * 1x1 (:math:`\mathbf{A}`, ``m x C_in``) then k x k (:math:`\mathbf{B}_t`):
      :math:`\mathbf{W}_t = \mathbf{B}_t \mathbf{A}`, so stacking the :math:`\mathbf{W}_t`
      as a :math:`(k^2 C_{out}) \times C_{in}` matrix has rank :math:`\le m`;
    * k x k (:math:`\mathbf{A}_t`) then 1x1 (:math:`\mathbf{B}`):
      :math:`\mathbf{W}_t = \mathbf{B}\mathbf{A}_t`, a :math:`C_{out} \times (k^2 C_{in})` matrix of rank :math:`\le m`.

    Either way a low-rank k x k conv, with :math:`m` the bottleneck width. With a
    ReLU between them the two orders compute different function classes. The
    collapsed conv is exact everywhere except one case: a 1x1 *with bias* before a
    zero-padded k x k, where border windows see padding zeros instead of the bias.

    Args:
        first, second: ``nn.Conv2d`` or ``GridConv2d`` layers (one of them 1x1).

    Example:
        >>> from gridgnn import analysis
        >>> collapsed = analysis.collapse_block(nn.Conv2d(4, 8, 1), nn.Conv2d(8, 4, 1))   # no activation between
        >>> collapsed.weight.shape, collapsed.rank <= 4
        (torch.Size([4, 4, 1, 1]), True)
    """
    for layer in (first, second):
        if layer.groups != 1 or any(s != 1 for s in layer.stride) or layer.padding_mode != "zeros":
            raise GridValueError("collapse_block needs stride-1, groups-1, zero-padded convs")
    if first.out_channels != second.in_channels:
        raise GridValueError(f"first outputs {first.out_channels} channels but second reads {second.in_channels}")
    a, b = first.weight.detach(), second.weight.detach()
    bias_a = first.bias.detach() if first.bias is not None else torch.zeros(a.size(0), dtype=a.dtype)
    bias_b = second.bias.detach() if second.bias is not None else torch.zeros(b.size(0), dtype=b.dtype)
    m = first.out_channels
    if all(k == 1 for k in first.kernel_size):        # 1x1 then k x k
        weight = torch.einsum("omhw,mc->ochw", b, a.flatten(1))
        matrix = weight.permute(0, 2, 3, 1).reshape(-1, weight.size(1))          # [k*k*C_out, C_in]
        # the 1x1 bias passes through every tap: exact away from the zero-padded border
        bias = bias_b + torch.einsum("omhw,m->o", b, bias_a)
    elif all(k == 1 for k in second.kernel_size):     # k x k then 1x1
        weight = torch.einsum("om,mchw->ochw", b.flatten(1), a)
        matrix = weight.flatten(1)                                                 # [C_out, C_in*k*k]
        bias = bias_b + b.flatten(1) @ bias_a
    else:
        raise GridValueError("collapse_block needs one 1x1 conv and one k x k conv")
    return Collapsed(weight, bias, int(torch.linalg.matrix_rank(matrix)), m)
