"""Shared helpers for the benchmark scripts: environment header and result files."""
from __future__ import annotations

import argparse
import pathlib
import platform

import torch
from torch.utils.benchmark import Timer

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def environment() -> str:
    """One line naming the device and versions the numbers come from."""
    import torch_geometric

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    return (f"device: {device}; torch {torch.__version__} ({torch.get_num_threads()} threads); "
            f"torch_geometric {torch_geometric.__version__}; python {platform.python_version()}")


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_result(name: str, title: str, body: str, figure=None) -> pathlib.Path:
    """Write ``results/<name>.md`` (and ``<name>.png`` from ``figure``) and return the markdown path."""
    RESULTS.mkdir(exist_ok=True)
    text = f"# {title}\n\n{environment()}\n\n{body}\n"
    if figure is not None:
        figure.savefig(RESULTS / f"{name}.png", dpi=120, bbox_inches="tight")
        text += f"\n![{title}]({name}.png)\n"
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    return path


def timed(fn, min_run_time: float) -> float:
    """Median seconds of ``fn()`` over repeats, on all of torch's current threads.

    ``torch.utils.benchmark.Timer`` runs single-threaded unless told otherwise; the
    targets are stated for the thread count the scripts set (``--threads``).
    """
    timer = Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def parse_args(description: str, quick_help: str, argv=None) -> argparse.Namespace:
    """The scripts' shared options (``--device``, ``--quick``, ``--threads``); sets torch's thread count."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the targets are stated for 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args
