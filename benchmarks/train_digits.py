"""Train gridgnn's example models and their conv twins on scikit-learn's 8x8 digits, side by side.

Same init, same batches: the loss curves must coincide. In float64 (the
default) they agree to rounding (~1e-15); in float32 the two sides' different
summation orders give ~1e-7 differences that training amplifies over the steps,
so the curves drift apart slowly, as two cuDNN algorithms would. Writes a table
and a loss-curve plot to benchmarks/results/train_digits.{md,png}. Usage:

    python benchmarks/train_digits.py [--epochs 3] [--dtype float64]
"""
from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from gridgnn.models import GridMobileShuffleNet, GridResNet  # noqa: E402
from gridgnn.training import digits_dataset, train_twins  # noqa: E402

from _common import markdown_table, write_result  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    images, labels = digits_dataset(dtype)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    rows = []
    for ax, make in zip(axes, (GridResNet, GridMobileShuffleNet)):
        torch.manual_seed(0)
        run = train_twins(make().to(dtype), images, labels, epochs=args.epochs, progress=True)
        ax.plot(run.conv_losses, label="conv twin (torch convs)", lw=3, alpha=0.5)
        ax.plot(run.graph_losses, label="graph model (message passing)", lw=1)
        ax.set(title=make.__name__, xlabel="step", ylabel="cross-entropy")
        ax.legend()
        rows.append((make.__name__, len(run.graph_losses), f"{run.graph_losses[-1]:.4f}", f"{run.conv_losses[-1]:.4f}",
                     f"{run.max_loss_gap:.2e}", f"{run.graph_seconds:.2f}", f"{run.conv_seconds:.2f}"))
    body = markdown_table(("model", "steps", "final loss graph", "final loss conv", "max loss gap",
                           "graph s", "conv s"), rows)
    print(write_result("train_digits", f"digits training, graph model vs conv twin ({args.dtype})", body, fig)
          .read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
