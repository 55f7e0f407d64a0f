"""The 1x1 convolution as a node-wise linear map."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .._checks import check_groups, check_node_features, check_torch_conv, is_pointwise
from .._types import Device
from ..errors import GridValueError
from ._autocast import autocast_like_conv
from ._gemm import grouped_linear
from ._init import conv_parameters, copy_conv_parameters, reset_conv_parameters


class NodeLinear(nn.Module):
    r"""A 1x1 convolution seen on the grid graph: one linear map shared by all nodes.

    No messages pass between nodes; every node's channel vector is mapped on its own:

    .. math::
        \mathbf{Y} = \mathbf{X} \mathbf{W}^{\top} + \mathbf{b}
        \qquad
        \mathbf{y}_i = \mathbf{W} \mathbf{x}_i + \mathbf{b}

    With ``groups = g`` the weight is block-diagonal: channel block ``k`` of
    :math:`\mathbf{y}_i` reads only channel block ``k`` of :math:`\mathbf{x}_i`
    (``groups = in_channels`` is the depthwise case). Equal to
    ``nn.Conv2d(in_channels, out_channels, 1, groups=groups)`` applied to the image
    whose nodes are ``x``, with the same initialisation draw for draw.

    Args:
        in_channels (int): channels of each node, :math:`C_{in}`.
        out_channels (int): channels of each output node, :math:`C_{out}`.
        bias (bool, optional): learn an additive bias. (default: ``True``)
        groups (int, optional): number of channel blocks; must divide both
            channel counts. (default: ``1``)
        device, dtype: factory kwargs as in torch.

    Shapes:
        - **input:** node features :math:`(*, C_{in})`, e.g. ``[N, C_in]`` or ``[B, N, C_in]``
        - **output:** :math:`(*, C_{out})`
        - **weight:** :math:`(C_{out}, C_{in} / g)`, i.e. ``conv.weight[..., 0, 0]``; a 1x1 conv's
          ``state_dict`` loads directly (the trailing 1x1 is dropped).

    Example:
        >>> layer = NodeLinear(8, 16)
        >>> layer(torch.randn(2, 25, 8)).shape
        torch.Size([2, 25, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, groups: int = 1,
                 device: Device = None, dtype: Optional[torch.dtype] = None):
        super().__init__()
        check_groups(in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        conv_parameters(self, out_channels, in_channels // groups, (), bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_conv_parameters(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        with autocast_like_conv(x, self.weight, self.bias) as (x, weight, bias):
            check_node_features(x, self.in_channels, weight, "NodeLinear", ranks=None)
            return grouped_linear(x, weight, bias, self.groups)

    @classmethod
    def from_conv(cls, conv: nn.Module) -> "NodeLinear":
        """A NodeLinear with the weights of a 1x1 ``nn.Conv1d/2d/3d`` (stride 1, no padding)."""
        check_torch_conv(conv, "NodeLinear.from_conv")
        if not is_pointwise(conv.kernel_size):
            raise GridValueError(f"NodeLinear.from_conv needs a 1x1 conv, got kernel_size={conv.kernel_size}; "
                                 "use GridConv.from_conv for spatial kernels")
        if any(s != 1 for s in conv.stride) or conv.padding not in ("valid", "same") and any(conv.padding):
            raise GridValueError(f"NodeLinear.from_conv needs stride 1 and no padding (got stride={conv.stride}, "
                                 f"padding={conv.padding}): a strided or padded 1x1 conv is not a map on the input's "
                                 "nodes; use GridConv.from_conv with gridgnn.graph_for(conv, size)")
        layer = cls(conv.in_channels, conv.out_channels, conv.bias is not None, conv.groups,
                    device=conv.weight.device, dtype=conv.weight.dtype)
        return copy_conv_parameters(layer, conv)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # accept a 1x1 conv's checkpoint: weight [C_out, C_in/g, 1, ..., 1] -> [C_out, C_in/g]
        weight = state_dict.get(prefix + "weight")
        if weight is not None and weight.dim() > 2 and all(n == 1 for n in weight.shape[2:]):
            state_dict[prefix + "weight"] = weight.flatten(1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s

