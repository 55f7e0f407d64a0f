"""Transposed convs, pools and a whole U-Net: gridgnn's twins against torch, side by side.

* ``GridConvTranspose2d`` vs ``nn.ConvTranspose2d`` on U-Net decoder up-convolutions (2x2 stride 2) and an
  autoencoder's 3x3 stride-2 up-convolution;
* max, average and global average pool twins vs torch's pools (U-Net encoder and ResNet stem shapes);
* ``gridgnn.convert(UNet)`` vs the original U-Net (``tests/model_zoo.py``, width 32, depth 3, 128x128).

Every row is timed on NCHW input (what a converted model feeds its layers) and on channels_last input,
each side in each layout; the ratio columns compare like with like and the best layout of each side.
Forward and forward+backward, batch 1 and 8, fp32, TF32 off. Usage:

    python benchmarks/decoder.py [--quick] [--device cuda]
"""
from __future__ import annotations

import pathlib
import sys

import torch
from torch import nn
from tqdm import tqdm

import gridgnn as gg

from _common import add_row, markdown_table, min_run_time, parse_args, precision, timed, write_result

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from model_zoo import UNet  # noqa: E402  (the U-Net the tests convert and train)

LAYOUTS = {"NCHW": torch.contiguous_format, "NHWC": torch.channels_last}
# (label, torch layer, input shape without batch)
LAYERS = [
    ("convT 2x2 s2 256->128 @16", nn.ConvTranspose2d(256, 128, 2, 2), (256, 16, 16)),
    ("convT 2x2 s2 128->64 @32", nn.ConvTranspose2d(128, 64, 2, 2), (128, 32, 32)),
    ("convT 2x2 s2 64->32 @64", nn.ConvTranspose2d(64, 32, 2, 2), (64, 64, 64)),
    ("convT 3x3 s2 p1 op1 64->32 @32", nn.ConvTranspose2d(64, 32, 3, 2, 1, 1), (64, 32, 32)),
    ("maxpool 2 C=32 @128", nn.MaxPool2d(2), (32, 128, 128)),
    ("maxpool 2 C=64 @64", nn.MaxPool2d(2), (64, 64, 64)),
    ("maxpool 3 s2 p1 C=64 @56", nn.MaxPool2d(3, 2, 1), (64, 56, 56)),
    ("avgpool 2 C=128 @32", nn.AvgPool2d(2), (128, 32, 32)),
    ("global avgpool C=512 @7", nn.AdaptiveAvgPool2d(1), (512, 7, 7)),
]


def layout_times(module, x, backward, run_time):
    """Median seconds of ``module`` on ``x`` in each layout of :data:`LAYOUTS`."""
    times = {}
    for name, fmt in LAYOUTS.items():
        xf = x.contiguous(memory_format=fmt).requires_grad_(backward)
        if backward:
            def step(xf=xf):
                module(xf).sum().backward()
        else:
            def step(xf=xf):
                with torch.no_grad():
                    module(xf)
        times[name] = timed(step, run_time)
    return times


def compare_row(label, batch, backward, reference, twin, x, run_time):
    ref, graph = layout_times(reference, x, backward, run_time), layout_times(twin, x, backward, run_time)
    best_ref, best_graph = min(ref.values()), min(graph.values())
    return (label, batch, "fwd+bwd" if backward else "fwd", f"{ref['NCHW'] * 1e3:.2f}", f"{graph['NCHW'] * 1e3:.2f}",
            f"{graph['NCHW'] / ref['NCHW']:.2f}", f"{best_ref * 1e3:.2f}", f"{best_graph * 1e3:.2f}",
            f"{best_graph / best_ref:.2f}")


def main(argv=None) -> int:
    args = parse_args(__doc__, "batch 1 only, shorter timing runs", argv)
    batches = (1,) if args.quick else (1, 8)
    run_time = min_run_time(args, quick=0.05, full=0.3)
    rows = []
    jobs = [(spec, b, bw) for spec in LAYERS for b in batches for bw in (False, True)]
    with precision(args):
        for (label, layer, shape), batch, backward in tqdm(jobs, desc="decoder layers"):
            layer = layer.to(args.device)
            x = torch.randn(batch, *shape, device=args.device)
            add_row(rows, compare_row(label, batch, backward, layer, gg.nn.twin_of(layer), x, run_time))
        torch.manual_seed(0)
        unet = UNet(3, 2, width=8 if args.quick else 32, depth=3).to(args.device)
        converted = gg.convert(unet).eval()
        inputs = {batch: torch.randn(batch, 3, 128, 128, device=args.device) for batch in batches}
        for x in inputs.values():   # sanity, before train-mode timing moves each model's BatchNorm statistics
            torch.testing.assert_close(converted(x), unet.eval()(x), rtol=1e-4, atol=1e-4)
        for batch, x in inputs.items():
            unet.eval(), converted.eval()
            add_row(rows, compare_row("U-Net (eval)", batch, False, unet, converted, x, run_time))
            unet.train(), converted.train()
            add_row(rows, compare_row("U-Net (train)", batch, True, unet, converted, x, run_time))
    header = ("layer", "batch", "pass", "torch NCHW ms", "gridgnn NCHW ms", "ratio NCHW", "torch best ms",
              "gridgnn best ms", "ratio best")
    body = markdown_table(header, rows)
    print(write_result(f"decoder_{args.device}", f"transposed convs, pools and a U-Net vs torch ({args.device})",
                       body).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
