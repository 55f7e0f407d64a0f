"""Training utilities: scikit-learn's digits as images, and a graph model trained beside its conv twin."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

__all__ = ["digits_dataset", "train_twins", "TwinTraining"]


def digits_dataset(dtype: torch.dtype = torch.float32) -> Tuple[Tensor, Tensor]:
    """scikit-learn's 8x8 digits as images ``[1797, 1, 8, 8]`` scaled to [0, 1] and labels ``[1797]``.

    Ships with scikit-learn (the ``tutorials`` extra): no download.

    Example:
        >>> from gridgnn.training import digits_dataset
        >>> images, labels = digits_dataset()
        >>> images.shape, labels.shape                           # scikit-learn's 8x8 digits
        (torch.Size([1797, 1, 8, 8]), torch.Size([1797]))
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("digits_dataset needs scikit-learn: pip install 'gridgnn[tutorials]'") from exc
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=dtype).unsqueeze(1) / 16.0
    return images, torch.tensor(digits.target, dtype=torch.long)


@dataclass
class TwinTraining:
    """Per-step losses of a graph model and its conv twin trained side by side, and their wall times.

    Example:
        >>> from gridgnn.training import digits_dataset, train_twins
        >>> from gridgnn.models import GridResNet
        >>> images, labels = digits_dataset()
        >>> run = train_twins(GridResNet(widths=(8,)), images[:64], labels[:64], progress=False)
        >>> abs(run.graph_losses[-1] - run.conv_losses[-1]) < 1e-4    # the two twins train alike
        True
    """

    graph_losses: List[float]
    conv_losses: List[float]
    graph_seconds: float
    conv_seconds: float

    @property
    def max_loss_gap(self) -> float:
        return max(abs(a - b) for a, b in zip(self.graph_losses, self.conv_losses))


def train_twins(model: nn.Module, images: Tensor, labels: Tensor, epochs: int = 1, batch_size: int = 64,
                lr: float = 0.05, seed: int = 0, progress: bool = False) -> TwinTraining:
    """Train ``model`` and its conv twin (:func:`~gridgnn.testing.to_torch_convs`) from one init on one batch order.

    Both use SGD with momentum and cross-entropy; the batch order comes from one
    seeded permutation per epoch. Equal loss curves (up to rounding) show the
    graph model *is* the CNN, in training as in inference.

    Example:
        >>> from gridgnn.training import digits_dataset, train_twins
        >>> from gridgnn.models import GridResNet
        >>> images, labels = digits_dataset()
        >>> run = train_twins(GridResNet(widths=(8,)), images[:128], labels[:128], progress=False)
        >>> len(run.graph_losses) == len(run.conv_losses) == 2
        True
    """
    from .testing import to_torch_convs

    twin = to_torch_convs(model)
    gen = torch.Generator().manual_seed(seed)
    batches = [perm for _ in range(epochs) for perm in torch.randperm(len(labels), generator=gen).split(batch_size)]
    result = {}
    for name, net in (("graph", model), ("conv", twin)):
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
        losses, start = [], time.perf_counter()
        for idx in tqdm(batches, desc=f"train {name}", disable=not progress):
            opt.zero_grad()
            loss = F.cross_entropy(net(images[idx]), labels[idx])
            loss.backward()
            opt.step()
            losses.append(loss.item())
        result[name] = (losses, time.perf_counter() - start)
    return TwinTraining(result["graph"][0], result["conv"][0], result["graph"][1], result["conv"][1])
