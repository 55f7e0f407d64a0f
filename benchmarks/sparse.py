"""Sparse pixel and voxel sets: GridConv on sparse grid graphs against torch's dense conv and PyG's RGCNConv.

* forward and forward+backward time against density (1-50%) for 2-D (512x512, C=32 and 64, 3x3) and 3-D
  (128^3, C=16 and 32, 3x3x3) submanifold convs, versus torch's dense conv of the whole zero-filled grid
  (best of NCHW and channels_last) and ``RGCNConv`` on the same typed edges; ``GridConv`` runs on the
  ``SparseGridGraph`` and on its raw ``edge_index``/``edge_type`` (what a PyG ``DataLoader`` batch gives);
* kernel-map build time and peak memory (CPU) against the number of active sites, up to 1M voxels in a 1024^3
  volume, each in a fresh process.

Usage:

    python benchmarks/sparse.py [--quick] [--device cuda]
"""
from __future__ import annotations

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn
from torch_geometric.nn import RGCNConv
from tqdm import tqdm

import gridgnn as gg
from gridgnn.nn import GridConv

from _common import add_row, markdown_table, min_run_time, parse_args, precision, timed, write_result

CASES = [(2, 512, 32), (2, 512, 64), (3, 128, 16), (3, 128, 32)]     # (dims, side, channels)
DENSITIES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def random_sites(nd, side, density, device):
    """Distinct random active sites: ``[M, nd]`` coordinates of a ``side^nd`` grid."""
    total = side ** nd
    keys = torch.randperm(total, device=device)[:max(1, int(density * total))].sort().values
    coords = torch.stack([(keys // side ** (nd - 1 - d)) % side for d in range(nd)], dim=1)
    return coords


def dense_time(conv, shape, backward, run_time, device):
    best = float("inf")
    for fmt in (torch.contiguous_format, torch.channels_last if len(shape) == 4 else torch.channels_last_3d):
        x = torch.randn(shape, device=device).contiguous(memory_format=fmt).requires_grad_(backward)
        if backward:
            best = min(best, timed(lambda x=x: conv(x).sum().backward(), run_time))
        else:
            with torch.no_grad():
                best = min(best, timed(lambda x=x: conv(x), run_time))
    return best


def bench_density(cases, densities, device, run_time, with_rgcn):
    rows = []
    for (nd, side, channels), density in tqdm([(c, d) for c in cases for d in densities], desc="density"):
        conv = (nn.Conv2d if nd == 2 else nn.Conv3d)(channels, channels, 3, padding=1, bias=False).to(device)
        coords = random_sites(nd, side, density, device)
        graph = gg.sparse_grid_graph(coords, 3, size=(side,) * nd, submanifold=True)
        layer = GridConv.from_conv(conv)
        feats = torch.randn(coords.size(0), channels, device=device)
        dense_shape = (1, channels) + (side,) * nd
        row = [f"{nd}-D {side}^{nd} C={channels}", f"{density:.0%}", coords.size(0), graph.num_edges]
        for backward in (False, True):
            ref = dense_time(conv, dense_shape, backward, run_time, device)
            f = feats.clone().requires_grad_(backward)
            if backward:
                ours = timed(lambda f=f: layer(f, graph).sum().backward(), run_time)
            else:
                with torch.no_grad():
                    ours = timed(lambda: layer(feats, graph), run_time)
            row += [f"{ref * 1e3:.1f}", f"{ours * 1e3:.1f}", f"{ours / ref:.3f}", f"{ours / (ref * density):.2f}"]
            if not backward:                                           # the target: 2 x density x dense + 1 ms
                row.append(f"{(2 * density * ref + 1e-3) * 1e3:.1f}" if density <= 0.2 else "-")
        if with_rgcn and coords.size(0) * channels <= 4e6:
            rgcn = RGCNConv(channels, channels, graph.num_offsets, aggr="add", root_weight=False, bias=False).to(device)
            with torch.no_grad():
                rg = timed(lambda: rgcn(feats, graph.edge_index, graph.edge_type), run_time)
                ours = timed(lambda: layer(feats, graph), run_time)
                raw = timed(lambda: layer(feats, graph.edge_index, graph.edge_type), run_time)
            row += [f"{rg * 1e3:.1f}", f"{rg / ours:.1f}", f"{raw * 1e3:.1f}", f"{rg / raw:.1f}"]
        else:
            row += ["-"] * 4
        add_row(rows, row)
    return rows


_BUILD = """
import pathlib, resource, sys, time, torch, gridgnn as gg

def peak_kib():  # this process's own high-water mark (ru_maxrss is inherited from the forking parent)
    status = pathlib.Path("/proc/self/status")
    if status.exists():
        return next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM"))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

m = int(sys.argv[1])
torch.manual_seed(0)
keys = torch.unique(torch.randint(0, 1024 ** 3, (int(m * 1.05),)))[:m]
coords = torch.stack([(keys // 1024 ** (2 - d)) % 1024 for d in range(3)], dim=1)
before = peak_kib()
start = time.perf_counter()
graph = gg.sparse_grid_graph(coords, 3, size=(1024,) * 3, submanifold=True)
seconds = time.perf_counter() - start
print(seconds, graph.num_edges, (peak_kib() - before) / 1024)
"""


def bench_build(sites):
    """Kernel-map build time and added peak memory (a fresh process each) for ``sites`` voxels in 1024^3."""
    rows = []
    for m in tqdm(sites, desc="build"):
        out = subprocess.run([sys.executable, "-c", _BUILD, str(m)], capture_output=True, text=True, check=True)
        seconds, edges, peak = out.stdout.split()
        add_row(rows, (f"{m:,}", f"{int(edges):,}", f"{float(seconds):.2f}", f"{float(peak):.0f}"))
    return rows


def plot(rows):
    fig, ax = plt.subplots(figsize=(7, 4))
    for case in dict.fromkeys(r[0] for r in rows):
        sel = [r for r in rows if r[0] == case]
        ax.plot([float(r[1].rstrip("%")) for r in sel], [float(r[6]) for r in sel], "o-", label=case)
    ax.plot([1, 50], [0.01, 0.5], "k--", lw=0.8, label="time = density x dense")
    ax.set(xscale="log", yscale="log", xlabel="active sites (%)", ylabel="GridConv time / dense conv time (fwd)",
           title="sparse grid graphs: cost follows the active sites")
    ax.legend(fontsize=7)
    return fig


def main(argv=None) -> int:
    args = parse_args(__doc__, "2-D C=32 only, three densities, short runs", argv)
    torch.manual_seed(0)
    cases, densities = (CASES[:1], (0.01, 0.1, 0.5)) if args.quick else (CASES, DENSITIES)
    run_time = min_run_time(args, quick=0.05, full=0.3)
    with precision(args):
        rows = bench_density(cases, densities, args.device, run_time, with_rgcn=True)
    header = ("case", "density", "sites", "edges", "dense fwd ms", "GridConv fwd ms", "fwd ratio",
              "fwd ratio / density", "fwd target ms", "dense fwd+bwd ms", "GridConv fwd+bwd ms", "fwd+bwd ratio",
              "fwd+bwd ratio / density", "RGCNConv fwd ms", "RGCN / GridConv", "raw edges fwd ms",
              "RGCN / raw edges")
    body = markdown_table(header, rows)
    build = bench_build((10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000))
    body += "\n\nKernel maps (3x3x3 submanifold) of random active voxels in a 1024^3 volume:\n\n"
    body += markdown_table(("active voxels", "edges", "build s", "peak memory added (MiB)"), build)
    print(write_result(f"sparse_{args.device}", f"sparse grid graphs vs dense conv and RGCNConv ({args.device})",
                       body, plot(rows)).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
