"""Whole models: gridgnn.convert(model) against the original, forward and forward+backward, eval mode.

Six architectures written in reference_models.py (ResNet-50, MobileNetV2, EfficientNet-B0, a
ShuffleNet, ResNeXt-50 32x4d, ConvNeXt-T) at 224x224, batch 1 and 8. Usage:

    python benchmarks/models.py [--batch 1 8] [--size 224] [--models NAME ...] [--device cuda] [--tf32]
                                [--compiled-kernels] [--quick]

The original and the converted model are timed side by side (interleaved rounds, each one's
quietest round kept, so a noisy host's spells fall on both). Both input layouts are timed and
reported: NCHW (what the originals are fed and what converted models feed their layers) and each
side's best layout (NCHW or channels_last); the summary gives the median and worst ratio over the
architectures against the targets (median <= 1.3x, worst <= 1.6x).
The table also gives the seconds of each converted model's first calls (forward and forward+backward,
both layouts): with ``--compiled-kernels`` that includes compiling its depthwise kernels (inductor's
disk cache shortens it in later processes).
"""
from __future__ import annotations

import statistics
import sys
import time

import torch

import gridgnn as gg

from _common import (
    add_row,
    dtypes,
    markdown_table,
    min_run_time,
    parse_args,
    precision,
    timed_side_by_side,
    write_result,
)
from reference_models import ARCHITECTURES

PASSES = ("fwd", "fwd+bwd")


LAYOUTS = (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last))


def layout_steps(model, x, backward):
    """One call of ``model`` per input layout: NCHW (what a model's layers see after a NCHW stem) and channels_last."""
    steps = []
    for _, fmt in LAYOUTS:
        xf = x.contiguous(memory_format=fmt)
        if backward:
            steps.append(lambda xf=xf: model(xf).sum().backward())
        else:
            def step(xf=xf):
                with torch.no_grad():
                    model(xf)
            steps.append(step)
    return steps


def side_by_side(model, converted, x, backward, run_time):
    """Seconds per call ``{layout: (original, converted)}``, the four timed interleaved (:func:`timed_side_by_side`)."""
    seconds = timed_side_by_side(layout_steps(model, x, backward) + layout_steps(converted, x, backward), run_time)
    return {name: (seconds[i], seconds[i + len(LAYOUTS)]) for i, (name, _) in enumerate(LAYOUTS)}


def summary(rows, batches):
    """Median and worst ratio over the architectures, per batch and pass, for both layout columns."""
    lines = []
    for batch in batches:
        for pass_ in PASSES:
            picked = [r for r in rows if r[2] == batch and r[3] == pass_ and r[1] == "float32"]
            if not picked:
                continue
            nchw, best = [float(r[6]) for r in picked], [float(r[9]) for r in picked]
            lines.append((batch, pass_, f"{statistics.median(nchw):.2f}", f"{max(nchw):.2f}",
                          f"{statistics.median(best):.2f}", f"{max(best):.2f}"))
    return markdown_table(("batch", "pass", "median NCHW ratio", "worst NCHW ratio", "median best ratio",
                           "worst best ratio"), lines)


def _options(parser):
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--models", nargs="+", choices=[make.__name__ for make in ARCHITECTURES],
                        help="time these architectures only (default: all six; the summary covers those timed)")


def write_table(args, rows, batches, size):
    """The result table of the rows so far, with the median/worst summary over the architectures timed."""
    body = markdown_table(("model", "dtype", "batch", "pass", "original NCHW ms", "converted NCHW ms", "NCHW ratio",
                           "original best ms", "converted best ms", "best ratio",
                           "converted first calls s"), rows)
    body += (f"\n\nOver the {'six architectures' if not args.models else ', '.join(args.models)} "
             "(float32; targets: median <= 1.3, worst <= 1.6):\n\n"
             + summary(rows, batches))
    name = f"models_{args.device}" + (f"_{'-'.join(args.models)}" if args.models else "")
    return write_result(name, f"converted models vs originals ({args.device}, {size}x{size})", body)


def main(argv=None) -> int:
    args = parse_args(__doc__, "64x64 inputs, batch 1, short timing runs", argv, _options)
    size, batches = (64, (1,)) if args.quick else (args.size, args.batch)
    run_time = min_run_time(args, quick=0.05, full=1.0)
    rows = []
    with precision(args):
        for make in [make for make in ARCHITECTURES if not args.models or make.__name__ in args.models]:
            for dtype in dtypes(args):
                torch.manual_seed(0)
                model = make().eval().to(args.device, dtype)
                converted = gg.convert(model)
                for batch in batches:
                    x = torch.randn(batch, 3, size, size, device=args.device, dtype=dtype)
                    start = time.perf_counter()                                # first calls (compiles, if any)
                    for fmt in (torch.contiguous_format, torch.channels_last):
                        with torch.no_grad():
                            converted(x.contiguous(memory_format=fmt))
                        converted(x.contiguous(memory_format=fmt)).sum().backward()
                    first = time.perf_counter() - start
                    with torch.no_grad():                                      # sanity, any dtype
                        torch.testing.assert_close(converted(x), model(x), rtol=2e-2, atol=2e-2)
                    for pass_ in PASSES:
                        times = side_by_side(model, converted, x, pass_ != "fwd", run_time)
                        ref, conv = ({name: pair[i] for name, pair in times.items()} for i in (0, 1))
                        best_ref, best_conv = min(ref.values()), min(conv.values())
                        add_row(rows, (make.__name__, str(dtype).replace("torch.", ""), batch, pass_,
                                       f"{ref['nchw'] * 1e3:.1f}", f"{conv['nchw'] * 1e3:.1f}",
                                       f"{conv['nchw'] / ref['nchw']:.2f}", f"{best_ref * 1e3:.1f}",
                                       f"{best_conv * 1e3:.1f}", f"{best_conv / best_ref:.2f}", f"{first:.1f}"))
                path = write_table(args, rows, batches, size)          # after each model: a cut-off run keeps its rows
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
