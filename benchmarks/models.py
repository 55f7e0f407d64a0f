"""Whole models: gridgnn.convert(model) against the original, forward, eval mode.

ResNet-50 and MobileNetV2 (written in reference_models.py) at 224x224; the
original runs in its faster layout (NCHW or channels_last). Usage:

    python benchmarks/models.py [--batch 1 8] [--device cuda] [--tf32] [--quick]

Both input layouts are timed and reported: NCHW (what converted models feed their
layers) and each side's best layout.
"""
from __future__ import annotations

import sys

import torch

import gridgnn as gg

from _common import markdown_table, parse_args, precision, timed, write_result
from reference_models import mobilenet_v2, resnet50


def layout_times(model, x, min_run_time):
    """Forward seconds with NCHW input (what a model's layers see after a NCHW stem) and with channels_last."""
    times = {}
    for name, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
        xf = x.contiguous(memory_format=fmt)
        with torch.no_grad():
            times[name] = timed(lambda xf=xf: model(xf), min_run_time)
    return times


def _options(parser):
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--min-run-time", type=float, default=2.0)


def main(argv=None) -> int:
    args = parse_args(__doc__, "64x64 inputs, batch 1, short timing runs", argv, _options)
    size, batches = (64, (1,)) if args.quick else (224, args.batch)
    min_run_time = 0.05 if args.quick else args.min_run_time
    dtypes = [torch.float32] + ([torch.bfloat16] if args.device == "cuda" else [])
    rows = []
    with precision(args):
        for make in (resnet50, mobilenet_v2):
            for dtype in dtypes:
                torch.manual_seed(0)
                model = make().eval().to(args.device, dtype)
                converted = gg.convert(model)
                for batch in batches:
                    x = torch.randn(batch, 3, size, size, device=args.device, dtype=dtype)
                    torch.testing.assert_close(converted(x), model(x), rtol=2e-2, atol=2e-2)  # sanity, any dtype
                    ref, conv = layout_times(model, x, min_run_time), layout_times(converted, x, min_run_time)
                    best_ref, best_conv = min(ref.values()), min(conv.values())
                    rows.append((make.__name__, str(dtype).replace("torch.", ""), batch,
                                 f"{ref['nchw'] * 1e3:.1f}", f"{conv['nchw'] * 1e3:.1f}",
                                 f"{conv['nchw'] / ref['nchw']:.2f}", f"{best_ref * 1e3:.1f}",
                                 f"{best_conv * 1e3:.1f}", f"{best_conv / best_ref:.2f}"))
                    print(rows[-1], flush=True)
    body = markdown_table(("model", "dtype", "batch", "original NCHW ms", "converted NCHW ms", "NCHW ratio",
                           "original best ms", "converted best ms", "best ratio"), rows)
    print(write_result(f"models_{args.device}", f"converted models vs originals ({args.device}, {size}x{size})",
                       body).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
