"""Mahalanobis out-of-distribution scores on node (1x1-layer) activations."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._hooks import forward_hooks
from ..errors import GridValueError


@dataclass
class MahalanobisScorer:
    r"""Class-conditional Gaussians with one shared covariance, fitted on feature vectors.

    .. math::
        \boldsymbol{\mu}_k = \tfrac{1}{N_k}\textstyle\sum_{y_i = k} \mathbf{f}_i,\quad
        \boldsymbol{\Sigma} = \tfrac{1}{N}\textstyle\sum_i (\mathbf{f}_i - \boldsymbol{\mu}_{y_i})
            (\mathbf{f}_i - \boldsymbol{\mu}_{y_i})^{\top},\quad
        s(\mathbf{f}) = \min_k (\mathbf{f} - \boldsymbol{\mu}_k)^{\top}
            \boldsymbol{\Sigma}^{-1}(\mathbf{f} - \boldsymbol{\mu}_k)

    A large score means far from every class: out of distribution (Lee et al., 2018).

    Example:
        >>> from gridgnn import analysis
        >>> features, labels = torch.randn(100, 4), torch.randint(0, 2, (100,))
        >>> scorer = analysis.MahalanobisScorer.fit(features, labels)
        >>> scorer.score(torch.randn(3, 4)).shape
        torch.Size([3])
    """

    means: Tensor       # [K, D]
    precision: Tensor   # [D, D]

    @classmethod
    def fit(cls, features: Tensor, labels: Tensor, eps: float = 1e-6) -> "MahalanobisScorer":
        """Fit on ``features [N, D]`` with integer ``labels [N]``; ``eps`` regularises the covariance."""
        if features.dim() != 2 or labels.shape != features.shape[:1]:
            raise GridValueError(f"features must be [N, D] and labels [N], got {tuple(features.shape)} and "
                                 f"{tuple(labels.shape)}")
        classes = labels.unique()
        means = torch.stack([features[labels == k].mean(0) for k in classes])      # [K, D]
        centered = features - means[torch.searchsorted(classes, labels)]
        cov = centered.T @ centered / len(features)
        cov = cov + eps * torch.eye(cov.size(0), dtype=cov.dtype, device=cov.device)
        return cls(means, torch.linalg.inv(cov))

    def score(self, features: Tensor) -> Tensor:
        """``[M]``: the smallest squared Mahalanobis distance of each feature vector to a class mean."""
        diff = features[:, None, :] - self.means[None]                              # [M, K, D]
        dist = torch.einsum("mkd,de,mke->mk", diff, self.precision, diff)
        return dist.min(dim=1).values


def mahalanobis_score(train_features: Tensor, train_labels: Tensor, features: Tensor) -> Tensor:
    """Fit a :class:`MahalanobisScorer` on ``train_features`` and score ``features``.

    Example:
        >>> from gridgnn import analysis
        >>> features, labels = torch.randn(100, 4), torch.randint(0, 2, (100,))
        >>> near, far = analysis.mahalanobis_score(features, labels, torch.stack([features[0], 100 * features[0]]))
        >>> bool(far > near)                                     # larger: further from every class
        True
    """
    return MahalanobisScorer.fit(train_features, train_labels).score(features)


def node_activations(model: nn.Module, layer: nn.Module, inputs: Tensor) -> Tensor:
    """Mean over nodes of ``layer``'s output while ``model`` runs on ``inputs``: ``[B, C]`` features.

    Works for node features ``[B, N, C]`` (gridgnn layers) and images ``[B, C, *S]``.

    Example:
        >>> from gridgnn import analysis
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        >>> analysis.node_activations(model, model[0], torch.randn(2, 3, 4, 4)).shape
        torch.Size([2, 8])
    """
    captured = []
    with forward_hooks({"layer": layer}, lambda name, mod, args, out: captured.append(out.detach())), \
            torch.no_grad():
        model(inputs)
    if not captured:
        raise GridValueError("the layer did not run in the model's forward pass")
    out = captured[-1]
    # node features [B, N, C] from gridgnn layers; images [B, C, *S] from torch layers
    if out.dim() == 3 and not isinstance(layer, nn.modules.conv._ConvNd):
        return out.mean(-2)                                                       # node features [B, N, C]
    return out.flatten(2).mean(-1)                                                # images [B, C, *S]
