"""Time gridgnn.flow.reachability for C in {64, 256, 1024, 4096} channels through 10-200 specs.

The stack repeats ShuffleNet units (grouped pointwise, shuffle, depthwise, with
every fourth unit residual), g = C / 16 groups. Usage:

    python benchmarks/flow_reachability.py [--device cuda]
"""
from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from gridgnn import flow  # noqa: E402

from _common import markdown_table, timed, write_result  # noqa: E402

CHANNELS = (64, 256, 1024, 4096)
DEPTHS = (10, 50, 100, 200)


def stack(channels: int, depth: int):
    g = channels // 16
    unit = [flow.Pointwise(g), flow.Shuffle(g), flow.Depthwise(), flow.Residual(flow.Pointwise(g))]
    return (unit * (depth // len(unit) + 1))[:depth]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    rows, times = [], {}
    for c, d in tqdm(list((c, d) for c in CHANNELS for d in DEPTHS), desc="reachability"):
        specs = stack(c, d)
        times[c, d] = timed(lambda: flow.reachability(specs, c, args.device), 0.3)
        rows.append((c, d, f"{times[c, d] * 1e3:.2f}", flow.mixing_depth(specs, c, args.device)))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for c in CHANNELS:
        ax.plot(DEPTHS, [times[c, d] * 1e3 for d in DEPTHS], marker="o", label=f"C={c}")
    ax.set(xlabel="specs", ylabel="median time [ms]", yscale="log", title=f"flow.reachability ({args.device})")
    ax.legend()
    body = markdown_table(("channels", "specs", "median ms", "mixing depth"), rows)
    path = write_result(f"flow_reachability_{args.device}", "flow.reachability timing", body, fig)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
