"""Whole models: gridgnn.convert(model) against the original, forward, eval mode.

ResNet-50 and MobileNetV2 (written in reference_models.py) at 224x224; the
original runs in its faster layout (NCHW or channels_last). Usage:

    python benchmarks/models.py [--batch 1] [--device cuda]
"""
from __future__ import annotations

import argparse
import sys

import torch

import gridgnn as gg
from gridgnn.testing import no_tf32

from _common import markdown_table, timed, write_result
from reference_models import mobilenet_v2, resnet50


def best_time(model, x, min_run_time):
    times = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        xf = x.contiguous(memory_format=fmt)
        with torch.no_grad():
            times.append(timed(lambda xf=xf: model(xf), min_run_time))
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-run-time", type=float, default=2.0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtypes = [torch.float32] + ([torch.bfloat16] if args.device == "cuda" else [])
    rows = []
    with no_tf32():
        for make in (resnet50, mobilenet_v2):
            for dtype in dtypes:
                torch.manual_seed(0)
                model = make().eval().to(args.device, dtype)
                converted = gg.convert(model)
                for batch in args.batch:
                    x = torch.randn(batch, 3, 224, 224, device=args.device, dtype=dtype)
                    torch.testing.assert_close(converted(x), model(x), rtol=2e-2, atol=2e-2)  # sanity, any dtype
                    ref, conv = best_time(model, x, args.min_run_time), best_time(converted, x, args.min_run_time)
                    rows.append((make.__name__, str(dtype).replace("torch.", ""), batch, f"{ref * 1e3:.1f}",
                                 f"{conv * 1e3:.1f}", f"{conv / ref:.2f}"))
                    print(rows[-1], flush=True)
    body = markdown_table(("model", "dtype", "batch", "original ms", "converted ms", "ratio"), rows)
    print(write_result(f"models_{args.device}", f"converted models vs originals ({args.device})", body).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
