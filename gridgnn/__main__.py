"""Command line: ``python -m gridgnn verify`` runs the equivalence sweep; ``info`` prints the set-up."""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import List, Optional

import torch
from tqdm import tqdm

from . import __version__
from .sweep import all_configs, available_devices, checks, sweep

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
HEADER = f"{'config':<64} {'path':<8} {'device':<6} {'dtype':<8} {'max abs err':>11} {'max rel err':>11}  result"


def _row(result) -> str:
    dtype = str(result.dtype).replace("torch.", "")
    if result.error:
        return (f"{result.config.label():<64} {result.path:<8} {result.device:<6} {dtype:<8} {'-':>11} {'-':>11}  "
                f"FAIL ({result.error.splitlines()[0]})")
    rep = result.report
    return (f"{result.config.label():<64} {result.path:<8} {result.device:<6} {dtype:<8} {rep.max_abs:11.2e} "
            f"{rep.max_rel:11.2e}  {'pass' if rep.passed else 'FAIL'}")


def _load_model(spec: str, input_shape: Optional[str]):
    """``module:callable`` or ``path/to/file.py:callable`` -> (model, example input).

    The callable returns a model or ``(model, input)``.
    """
    import importlib
    import importlib.util
    import pathlib

    if ":" not in spec:
        raise SystemExit(f"error: --model must be 'module:callable' or 'path/to/file.py:callable', got {spec!r}")
    module_name, attr = spec.rsplit(":", 1)
    try:
        if module_name.endswith(".py") or "/" in module_name:
            path = pathlib.Path(module_name)
            if not path.is_file():
                raise SystemExit(f"error: --model {spec!r}: no file {path}")
            loader = importlib.util.spec_from_file_location(path.stem, path)
            factory = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(factory)
        else:
            sys.path.insert(0, "")
            factory = importlib.import_module(module_name)
        for part in attr.split("."):
            factory = getattr(factory, part)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"error: --model {spec!r}: {type(exc).__name__}: {exc}") from None
    made = factory()
    model, example = made if isinstance(made, tuple) else (made, None)
    if input_shape:
        example = torch.randn(*[int(n) for n in input_shape.split(",")])
    if example is None:
        raise SystemExit("error: --input-shape B,C,H,W is needed unless the callable returns (model, input)")
    return model, example


def cmd_verify_model(args: argparse.Namespace) -> int:
    """``verify --model module:callable``: :func:`gridgnn.verify` on every device and dtype asked for."""
    from .verification import verify

    model, example = _load_model(args.model, args.input_shape)
    failed = 0
    for device in args.device or available_devices():
        for dtype in args.dtype:
            report = verify(model, example, dtype=_DTYPES[dtype], device=device)
            print(f"== {args.model} on {device}, {dtype}\n{report}")
            failed += not report.passed
    print(f"{(len(args.device or available_devices()) * len(args.dtype)) - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``verify``: the equivalence sweep, one row per check and a final ``N passed, N failed`` line."""
    devices = args.device or available_devices()
    if "cuda" in devices and not torch.cuda.is_available():
        print("error: --device cuda asked for, but CUDA is not available here", file=sys.stderr)
        return 2
    if args.model:
        sweep_only = [flag for flag, used in (("--quick", args.quick), ("--dims", args.dims != [1, 2, 3]),
                                              ("--path", args.path != ["auto", "general"]),
                                              ("--kinds", args.kinds != ["conv", "conv_transpose", "pool"]))
                      if used]
        if sweep_only:
            print(f"error: {', '.join(sweep_only)} apply to the sweep, not to --model", file=sys.stderr)
            return 2
        return cmd_verify_model(args)
    # torch's reference convs warn that even "same" kernels pad by a copy; that is the reference's business
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths")
    configs = all_configs(args.dims, quick=args.quick, kinds=args.kinds)
    dtypes = [_DTYPES[d] for d in args.dtype]
    total = len(checks(configs, devices, dtypes, args.path))
    print(f"gridgnn {__version__} equivalence sweep: {len(configs)} configurations ({', '.join(args.kinds)}) x "
          f"devices {devices} x dtypes {args.dtype} x their paths among {args.path} = {total} checks (forward and "
          "all gradients vs torch)")
    print(HEADER)
    passed = failed = 0
    with tqdm(total=total, desc="verify", unit="cfg", file=sys.stderr, disable=args.no_progress or None) as bar:
        for result in sweep(configs, devices, dtypes, args.path):
            ok = result.passed
            passed, failed = passed + ok, failed + (not ok)
            if not args.failures_only or not ok:
                bar.write(_row(result), file=sys.stdout)
            bar.update()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_info(args: argparse.Namespace) -> int:
    """``info``: versions, devices and whether the native kernels are built."""
    import networkx
    import torch_geometric

    from .nn import _native

    print(f"gridgnn {__version__}\ntorch {torch.__version__}\ntorch_geometric {torch_geometric.__version__}\n"
          f"networkx {networkx.__version__}\ndevices {available_devices()}\n"
          f"native kernels (depthwise, thin-group and dense convs, CPU) {_native.describe()}")
    if torch.cuda.is_available():
        print(f"cuda device {torch.cuda.get_device_name()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (``verify`` and ``info``)."""
    parser = argparse.ArgumentParser(prog="python -m gridgnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="check the grid twins (convs, transposed convs, pools) against torch "
                                           "over a sweep")
    verify.add_argument("--device", action="append", choices=["cpu", "cuda"],
                        help="device to check (repeatable; default: every available device)")
    verify.add_argument("--dtype", nargs="+", choices=sorted(_DTYPES), default=["float32", "float64"])
    verify.add_argument("--path", nargs="+", choices=["auto", "general"], default=["auto", "general"],
                        help="GridConv execution paths to check")
    verify.add_argument("--dims", nargs="+", type=int, choices=[1, 2, 3], default=[1, 2, 3])
    verify.add_argument("--kinds", nargs="+", choices=["conv", "conv_transpose", "pool"],
                        default=["conv", "conv_transpose", "pool"], help="layer kinds to sweep")
    verify.add_argument("--quick", action="store_true", help="every 6th configuration only")
    verify.add_argument("--failures-only", action="store_true", help="print only the failing rows")
    verify.add_argument("--no-progress", action="store_true", help="no progress bar")
    verify.add_argument("--model", help="verify a model instead of the sweep: 'module:callable' returning a "
                                        "model or (model, example_input)")
    verify.add_argument("--input-shape", help="example input shape for --model, e.g. 2,3,32,32")
    verify.set_defaults(func=cmd_verify)
    info = sub.add_parser("info", help="print versions and devices")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command in ``argv`` (default: ``sys.argv``) and return its exit status."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
