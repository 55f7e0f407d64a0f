"""Batch normalisation of node features."""
from __future__ import annotations

from torch import Tensor, nn


class NodeBatchNorm(nn.BatchNorm1d):
    r"""BatchNorm over the channel axis of node features: ``nn.BatchNorm2d`` seen on the grid graph.

    Statistics run over every node of every graph in the batch, per channel, so
    on ``to_nodes(image)`` it equals ``nn.BatchNorm2d`` on ``image`` (train and
    eval), with the same parameters, buffers and ``state_dict`` keys:

    .. math::
        \mathbf{Y} = \frac{\mathbf{X} - \boldsymbol{\mu}}{\sqrt{\boldsymbol{\sigma}^2 + \epsilon}}
            \odot \boldsymbol{\gamma} + \boldsymbol{\beta}
        \qquad
        \mathbf{y}_i = \frac{\mathbf{x}_i - \boldsymbol{\mu}}{\sqrt{\boldsymbol{\sigma}^2 + \epsilon}}
            \odot \boldsymbol{\gamma} + \boldsymbol{\beta}

    Args: as ``nn.BatchNorm1d`` (``num_features`` = channels).

    Shapes:
        - **input / output:** :math:`(*, C)`, e.g. ``[B, N, C]``

    Example:
        >>> norm = NodeBatchNorm(8)
        >>> norm(torch.randn(2, 16, 8)).shape
        torch.Size([2, 16, 8])
    """

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.reshape(-1, x.size(-1))).view(x.shape)
