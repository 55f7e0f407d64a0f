"""Shared helpers for the benchmark scripts: environment header and result files."""
from __future__ import annotations

import argparse
import contextlib
import pathlib
import platform
from typing import Iterator

import torch
from torch.utils.benchmark import Timer
from tqdm import tqdm

from gridgnn.nn import compiled_kernels
from gridgnn.testing import no_tf32

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
_OPTIONS = {"results": RESULTS, "tf32": False, "compiled_kernels": False}


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), so tables from different hosts can be told apart."""
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def environment() -> str:
    """One line naming the device and versions the numbers come from."""
    import torch_geometric

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_name()
    return (f"device: {device}; torch {torch.__version__} ({torch.get_num_threads()} threads); "
            f"torch_geometric {torch_geometric.__version__}; python {platform.python_version()}")


def markdown_table(header, rows) -> str:
    lines = [markdown_row(header), "|" + "---|" * len(header)]
    lines += [markdown_row(row) for row in rows]
    return "\n".join(lines)


def markdown_row(row) -> str:
    """One row of a markdown table."""
    return "| " + " | ".join(str(c) for c in row) + " |"


def add_row(rows: list, row) -> None:
    """Append ``row`` to ``rows`` and print it at once as a markdown row (above any progress bar).

    A run stopped by a time limit (a short lease of a GPU) so leaves every finished row in its log.
    """
    rows.append(row)
    tqdm.write(markdown_row(row))


def write_result(name: str, title: str, body: str, figure=None) -> pathlib.Path:
    """Write ``<results>/<name>.md`` (and ``<name>.png`` from ``figure``) and return the markdown path.

    ``<results>`` is ``benchmarks/results`` unless ``--results`` says otherwise; with ``--tf32``
    the name and title say so (``<name>_tf32``), and with ``--compiled-kernels`` (``<name>_compiled``).
    """
    results = _OPTIONS["results"]
    results.mkdir(parents=True, exist_ok=True)
    if _OPTIONS["tf32"]:
        name, title = f"{name}_tf32", f"{title}, TF32 on"
    if _OPTIONS["compiled_kernels"]:
        name, title = f"{name}_compiled", f"{title}, gridgnn.nn.compiled_kernels on"
    text = f"# {title}\n\n{environment()}\n\n{body}\n"
    if figure is not None:
        figure.savefig(results / f"{name}.png", dpi=120, bbox_inches="tight")
        text += f"\n![{title}]({name}.png)\n"
    path = results / f"{name}.md"
    path.write_text(text)
    return path


def timed(fn, min_run_time: float) -> float:
    """Median seconds of ``fn()`` over repeats, on all of torch's current threads.

    ``torch.utils.benchmark.Timer`` runs single-threaded unless told otherwise; the
    targets are stated for the thread count the scripts set (``--threads``).
    """
    timer = Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def timed_side_by_side(fns, min_run_time: float, rounds: int = 3) -> list:
    """Seconds per call of each of ``fns``: :func:`timed` in turn, ``rounds`` times; each one's least median.

    Interleaving puts every function under the same spells of host noise (on shared CPU hosts runs
    drift by 20-30% from minute to minute); the least of its medians is each one's quietest spell.
    """
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], timed(fn, min_run_time / rounds))
    return best


def parse_args(description: str, quick_help: str, argv=None, extra=None) -> argparse.Namespace:
    """The scripts' shared options; sets torch's thread count, the results folder and the TF32 mode.

    ``--device``, ``--quick``, ``--threads``, ``--results DIR`` (where tables go), ``--tf32``
    (run float32 with TF32 allowed on CUDA; tables are named ``*_tf32``), ``--compiled-kernels``
    (:class:`gridgnn.nn.compiled_kernels` on; tables are named ``*_compiled``) and ``--min-run-time``
    (read through :func:`min_run_time`). ``extra(parser)`` adds a script's own options.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the targets are stated for 2)")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS, help="folder for the result tables")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 for float32 matmuls and convs (CUDA)")
    parser.add_argument("--compiled-kernels", action="store_true",
                        help="gridgnn's depthwise layers as inductor-compiled kernels (gridgnn.nn.compiled_kernels)")
    parser.add_argument("--min-run-time", type=float, default=None,
                        help="seconds each timing runs for (default: the script's; GPU timings settle in 0.1)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    _OPTIONS.update(results=args.results, tf32=args.tf32, compiled_kernels=args.compiled_kernels)
    compiled_kernels(args.compiled_kernels)
    return args


def min_run_time(args: argparse.Namespace, quick: float, full: float) -> float:
    """Seconds each timing runs for: ``--min-run-time`` if given, else the script's quick or full default."""
    if args.min_run_time is not None:
        return args.min_run_time
    return quick if args.quick else full


def dtypes(args: argparse.Namespace) -> list:
    """float32, and bfloat16 beside it on CUDA; a ``--tf32`` run times float32 alone (TF32 changes no other dtype)."""
    extra = args.device == "cuda" and not args.tf32
    return [torch.float32] + ([torch.bfloat16] if extra else [])


@contextlib.contextmanager
def precision(args: argparse.Namespace) -> Iterator[None]:
    """TF32 off (the default: exact float32 on both sides), or on for both sides with ``--tf32``."""
    if not args.tf32:
        with no_tf32():
            yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=True):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
