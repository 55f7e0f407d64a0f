"""Layer benchmarks: gridgnn's graph layers against torch's convs and PyG's RGCNConv, side by side.

* NodeLinear vs 1x1 ``nn.Conv2d`` (NCHW and channels_last) on ResNet-50 / MobileNetV2 pointwise shapes and a
  ShuffleNet grouped 1x1;
* GridConv2d (dense path) vs ``nn.Conv2d`` (NCHW and channels_last): ResNet-50 3x3s, depthwise 3x3 / 5x5 stride 2 /
  7x7 (MobileNetV2, EfficientNet-B0, ConvNeXt-T) and ResNeXt / RegNet grouped 3x3s;
* the same graphs through GridConv's general path, an edge-list gather/scatter ``propagate`` and PyG's ``RGCNConv``;
* masked grids (30/50/70/90% of pixels kept): general path vs RGCNConv.

Forward and forward+backward, batch 1/8/32, median of repeats (torch.utils.benchmark), TF32 off,
fp32 (and bf16 on CUDA). Usage:

    python benchmarks/layers.py [--quick] [--device cuda] [--only dw] [--compiled-kernels]
"""
from __future__ import annotations

import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch_geometric.data import Batch  # noqa: E402
from torch_geometric.nn import RGCNConv  # noqa: E402
from tqdm import tqdm  # noqa: E402

import gridgnn as gg  # noqa: E402
from gridgnn.nn import GridConv, GridConv2d, NodeLinear  # noqa: E402

from _common import (  # noqa: E402
    add_row,
    dtypes,
    markdown_table,
    min_run_time,
    parse_args,
    precision,
    timed,
    timed_side_by_side,
    write_result,
)

# (C_in, C_out, size, groups): ResNet-50 and MobileNetV2 pointwise layers, a ShuffleNet grouped 1x1
POINTWISE = [(256, 64, 56, 1), (512, 128, 28, 1), (1024, 256, 14, 1), (96, 576, 14, 1), (240, 240, 28, 3)]
# (C, groups, size, kernel, stride): ResNet-50 3x3s, MobileNetV2 depthwise 3x3s (one at stride 2), EfficientNet-B0
# 5x5 stride-2 depthwise (at 28x28 and 14x14), ConvNeXt-T 7x7 depthwise, a ResNeXt-50 32x4d grouped 3x3 and a
# RegNet-like one (16 channels a group)
SPATIAL = [(64, 1, 56, 3, 1), (128, 1, 28, 3, 1), (256, 1, 14, 3, 1), (512, 1, 7, 3, 1), (144, 144, 56, 3, 1),
           (576, 576, 14, 3, 1), (240, 240, 28, 5, 2), (144, 144, 56, 3, 2), (672, 672, 14, 5, 2), (96, 96, 56, 7, 1),
           (384, 384, 14, 7, 1), (128, 32, 56, 3, 1), (256, 16, 14, 3, 1)]


def layout_steps(module, layouts, backward):
    """One warmed-up call of ``module`` per input ``layouts()`` gives, forward or forward+backward."""
    steps = []
    for x in layouts():
        if backward:
            x.requires_grad_(True)

            def step(module=module, x=x):
                module(x).sum().backward()
        else:
            def step(module=module, x=x):
                with torch.no_grad():
                    module(x)
        step()                                                     # warm-up (compiles, with --compiled-kernels)
        steps.append(step)
    return steps


def run_sides(sides, backward, run_time):
    """Seconds per call of each ``(module, layouts)`` side on each of its layouts: ``[[t_0, t_1, ...], ...]``.

    All sides' calls are timed side by side (interleaved rounds, :func:`timed_side_by_side`), so the
    ratios between them do not carry this host's drift from minute to minute.
    """
    steps = [layout_steps(module, layouts, backward) for module, layouts in sides]
    times = iter(timed_side_by_side([step for side in steps for step in side], run_time))
    return [[next(times) for _ in side] for side in steps]


def image_layouts(shape, device, dtype):
    x = torch.randn(shape, device=device, dtype=dtype)
    return lambda: [x.clone(), x.clone().contiguous(memory_format=torch.channels_last)]


def _label(kind, spec):
    if kind == "1x1":
        cin, cout, size, groups = spec
        return f"1x1 {cin}->{cout}{f' g{groups}' if groups > 1 else ''} @{size}"
    c, groups, size, k, stride = spec
    return (f"{k}x{k}{f' s{stride}' if stride > 1 else ''} C={c}"
            f"{' dw' if groups == c else f' g{groups}' if groups > 1 else ''} @{size}")


def bench_pointwise_and_spatial(batches, device, dtype, run_time, only=()):
    """Rows of the layer table; ``only`` keeps the layers whose label holds one of its words (e.g. ``dw``)."""
    rows = []
    jobs = [("1x1", p, b, bw) for p in POINTWISE for b in batches for bw in (False, True)]
    jobs += [("kxk", s, b, bw) for s in SPATIAL for b in batches for bw in (False, True)]
    if only:
        jobs = [job for job in jobs if any(word in _label(*job[:2]) for word in only)]
    for kind, spec, batch, backward in tqdm(jobs, desc=f"layers {dtype}"):
        if kind == "1x1":
            cin, cout, size, groups = spec
            conv = torch.nn.Conv2d(cin, cout, 1, groups=groups, bias=False).to(device, dtype)
            graph = NodeLinear.from_conv(conv)
            x = torch.randn(batch, cin, size, size, device=device, dtype=dtype)
            def nodes(x=x):
                return [gg.to_nodes(x.contiguous(memory_format=torch.channels_last)).clone()]
            # and the NCHW row: the drop-in a converted model holds, fed the NCHW image
            nchw = image_layouts(x.shape, device, dtype)
            refs, (cand,), (cand_nchw,) = run_sides(
                [(conv, image_layouts(x.shape, device, dtype)), (graph, nodes),
                 (GridConv2d.from_conv(conv), lambda: nchw()[:1])], backward, run_time)
        else:
            c, groups, size, k, stride = spec
            conv = torch.nn.Conv2d(c, c, k, stride, k // 2, groups=groups, bias=False).to(device, dtype)
            graph = GridConv2d.from_conv(conv)
            layouts = image_layouts((batch, c, size, size), device, dtype)
            refs, cands = run_sides([(conv, layouts), (graph, layouts)], backward, run_time)
            cand, cand_nchw = min(cands), cands[0]
        ref, ref_nchw = min(refs), refs[0]                               # each side's best layout, and NCHW
        add_row(rows, (_label(kind, spec), batch, "fwd+bwd" if backward else "fwd", f"{ref_nchw * 1e3:.2f}",
                       f"{cand_nchw * 1e3:.2f}", f"{cand_nchw / ref_nchw:.2f}", f"{ref * 1e3:.2f}",
                       f"{cand * 1e3:.2f}", f"{cand / ref:.2f}"))
    return rows


def bench_graph_paths(device, run_time, densities=(1.0, 0.9, 0.7, 0.5, 0.3)):
    """GridConv general path vs edge-list propagate vs RGCNConv on (masked) 3x3 grid graphs, forward.

    RGCNConv runs both ways a PyG user would batch: per sample, and once on the disjoint union of the
    batch's graphs (``torch_geometric.data.Batch``); the speed-up is against the faster of the two.
    """
    rows = []
    for (c, size), density in tqdm([(s, d) for s in ((64, 28), (64, 56), (256, 14)) for d in densities],
                                   desc="graph paths"):
        batch = 8 if size <= 28 else 1
        torch.manual_seed(0)
        graph = gg.grid_graph((size, size), 3, padding=1, device=device)
        if density < 1:
            graph = graph.mask(torch.rand(size * size, device=device) < density)
        layer = GridConv(c, c, 3, bias=False, path="general").to(device)
        rgcn = RGCNConv(c, c, 9, aggr="add", root_weight=False, bias=False).to(device)
        x = torch.randn(batch, size * size, c, device=device)
        ei, et = graph.edge_index, graph.edge_type
        union = Batch.from_data_list([graph.to_pyg()] * batch)
        with torch.no_grad():
            general = timed(lambda: layer(x, graph), run_time)
            edge_list = timed(lambda: layer(x, ei, et), run_time)
            looped = timed(lambda: [rgcn(x[i], ei, et) for i in range(batch)], run_time)
            batched = timed(lambda: rgcn(x.reshape(-1, c), union.edge_index, union.edge_type), run_time)
        add_row(rows, (f"C={c} @{size} B={batch}", f"{density:.0%}", graph.num_edges, f"{general * 1e3:.2f}",
                       f"{edge_list * 1e3:.2f}", f"{looped * 1e3:.2f}", f"{batched * 1e3:.2f}",
                       f"{min(looped, batched) / general:.2f}"))
    return rows


def plot_ratios(rows, title):
    fig, ax = plt.subplots(figsize=(9, max(4.0, 1.0 + 0.15 * len(rows))))    # a readable line per row
    labels = [f"{r[0]} B{r[1]} {r[2]}" for r in rows]
    y = range(len(rows))
    ax.barh([i - 0.2 for i in y], [float(r[5]) for r in rows], height=0.4, color="tab:orange",
            label="NCHW input (both sides)")
    ax.barh([i + 0.2 for i in y], [float(r[-1]) for r in rows], height=0.4, color="tab:blue",
            label="each side's best layout")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.legend(fontsize=6)
    ax.set_yticks(range(len(rows)), labels, fontsize=6)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set(xlabel="gridgnn time / torch time (lower is better)", title=title)
    return fig


def _options(parser):
    parser.add_argument("--only", nargs="+", default=[], metavar="WORD",
                        help="time only the layers whose label holds one of these words (e.g. dw, g32, 1x1); "
                             "the table is named after them and the graph-path table is skipped")


def main(argv=None) -> int:
    args = parse_args(__doc__, "batch 8 only, shorter timing runs", argv, _options)
    batches = (8,) if args.quick else (1, 8, 32)
    run_time = min_run_time(args, quick=0.1, full=0.3)
    with precision(args):
        for dtype in dtypes(args):
            rows = bench_pointwise_and_spatial(batches, args.device, dtype, run_time, args.only)
            words = "".join(f"_{re.sub(r'[^A-Za-z0-9]+', '-', word)}" for word in args.only)     # file-safe
            name = f"layers_{args.device}_{str(dtype).replace('torch.', '')}{words}"
            body = markdown_table(("layer", "batch", "pass", "torch NCHW ms", "gridgnn NCHW ms", "NCHW ratio",
                                   "torch best ms", "gridgnn best ms", "best ratio"), rows)
            print(write_result(name, f"NodeLinear / GridConv2d vs torch conv ({args.device}, {dtype})", body,
                               plot_ratios(rows, f"{args.device} {dtype}")).read_text())
        if args.only:
            return 0
        rows = bench_graph_paths(args.device, run_time)
        body = markdown_table(("graph", "pixels kept", "edges", "general ms", "edge-list propagate ms",
                               "RGCNConv per sample ms", "RGCNConv batched ms", "best RGCN / general"), rows)
        print(write_result(f"graph_paths_{args.device}", f"general path vs RGCNConv ({args.device})", body)
              .read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
