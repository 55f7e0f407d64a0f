"""One command for a GPU: tests, the equivalence sweep and every benchmark on one device, with a summary.

    python benchmarks/gpu_suite.py                    # on CUDA: about 25 minutes on one H200 (see below)
    python benchmarks/gpu_suite.py --lease            # every test, the full sweep, the --quick tables
    python benchmarks/gpu_suite.py --only tests verify             # some steps (a later call adds the rest)
    python benchmarks/gpu_suite.py --device cpu --quick --out /tmp/suite     # the smoke run the test suite does

Steps, each a subprocess with its own time limit and log:

1. ``tests``: the test suite (``pytest``; its device fixture adds "cuda" when CUDA is there). On CUDA
   it runs the CUDA-parametrised tests (``-k cuda``): the CPU ones, the tutorials and the docs build
   are the CI's;
2. ``verify``: ``python -m gridgnn verify --device <device>`` (every twin against torch's layer, fwd and bwd);
3. the layer, model, sparse and decoder benchmarks in float32 with TF32 off, again with TF32 on
   (CUDA only: ``*_tf32`` steps and tables), and in bfloat16 (CUDA; inside the layer and model tables).

Step times on one H200 (torch 2.11, 2026-12): tests 94 s (1063 CUDA tests, 8 workers), verify 47 s;
the full layer table at ``--min-run-time 0.05`` about 1.6 s a row (108 rows a dtype, float32 and
bfloat16: ~6 minutes), models at 224x224 batch 1 and 8 ~4 minutes a dtype pair; ``layers.py --quick``
127 s and ``models.py --quick`` 74 s. ``--lease`` (the full tests and sweep, every benchmark's
``--quick`` tables at ``--min-run-time 0.03``) is meant for a lease of device minutes: run it in two
calls, ``--lease --only tests verify layers models`` then ``--lease --only layers_tf32 models_tf32
sparse sparse_tf32 decoder decoder_tf32``; the summary adds them up.

Tables go to ``--out`` (default ``benchmarks/results``) as ``*_<device>*.md``, each step's log and
record to ``<out>/gpu_suite_logs/``. The summary ``gpu_suite_<device>.md`` lists every step recorded
in that folder (so runs split over several calls with ``--only`` add up to one summary), each with
its result and time, and the ratio columns of every table (median and worst); the run ends with an
``N passed, N failed`` line for the steps it ran (exit 1 on a failed step).
"""
from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import statistics
import subprocess
import sys
import time
from typing import List, NamedTuple, Optional

import torch

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


#: test files with no CUDA case that need more than a GPU machine may have (expecttest, a docs toolchain)
CPU_ONLY_TEST_FILES = ("test_tutorials.py", "test_docs.py", "nn/test_torch_definitions.py")


#: seconds each benchmark timing runs for under ``--lease`` (the scripts' own defaults run 0.05-1 s)
LEASE_MIN_RUN_TIME = 0.03


class Step(NamedTuple):
    name: str
    command: List[str]
    limit_s: int


class Outcome(NamedTuple):
    step: Step
    passed: bool
    seconds: float
    last_line: str


def steps(device: str, quick: bool, out: pathlib.Path, run_time: Optional[float] = None,
          lease: bool = False) -> List[Step]:
    """The suite's steps; ``quick`` is the smoke run, ``lease`` the full tests with the ``--quick`` tables."""
    python = sys.executable
    if lease and run_time is None:
        run_time = LEASE_MIN_RUN_TIME
    tests = ["tests/nn/test_node_linear.py"] if quick else ["tests", "gridgnn"]
    parallel = [] if quick else ["-n", "8"]
    if device == "cuda":      # the CPU tests, tutorials, docs build and torch's CPU test definitions are the CI's
        tests += ["-k", "cuda", *(f"--ignore=tests/{cpu_only}" for cpu_only in CPU_ONLY_TEST_FILES)]
    plan = [Step("tests", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not tutorials",
                           "--ignore=tests/test_gpu_suite.py", *parallel, *tests], 900),
            Step("verify", [python, "-m", "gridgnn", "verify", "--device", device, "--no-progress",
                            "--failures-only", *(["--quick", "--dims", "1"] if quick else [])], 600)]
    common = ["--device", device, "--results", str(out), *(["--quick"] if quick or lease else []),
              *(["--min-run-time", str(run_time)] if run_time is not None else [])]
    benchmarks = [("layers", []), ("models", [] if quick or lease else ["--batch", "1", "8"]), ("sparse", []),
                  ("decoder", [])]
    for name, extra in benchmarks:
        plan.append(Step(name, [python, str(HERE / f"{name}.py"), *common, *extra], 600))
        if device == "cuda":                         # TF32 changes CUDA float32 only: a second table beside
            plan.append(Step(f"{name}_tf32", [python, str(HERE / f"{name}.py"), *common, *extra, "--tf32"], 600))
    return plan


def run(step: Step, logs: pathlib.Path) -> Outcome:
    start = time.perf_counter()
    try:
        done = subprocess.run(step.command, cwd=ROOT, capture_output=True, text=True, timeout=step.limit_s)
        output, passed = done.stdout + done.stderr, done.returncode == 0
        stdout = done.stdout
    except subprocess.TimeoutExpired as expired:
        stdout = output = f"{expired.stdout or ''}{expired.stderr or ''}\ntimed out after {step.limit_s} s"
        passed = False
    (logs / f"{step.name}.log").write_text(output)
    lines = [line.strip() for line in (stdout or output).splitlines() if line.strip()]    # not progress bars
    outcome = Outcome(step, passed, time.perf_counter() - start, lines[-1] if lines else "")
    record = {"passed": outcome.passed, "seconds": outcome.seconds, "last_line": outcome.last_line}
    (logs / f"{step.name}.json").write_text(json.dumps(record))
    return outcome


def recorded(plan: List[Step], logs: pathlib.Path) -> List[Outcome]:
    """The outcome of every step of ``plan`` that has a record in ``logs``, this run's or an earlier one's."""
    outcomes = []
    for step in plan:
        path = logs / f"{step.name}.json"
        if path.exists():
            record = json.loads(path.read_text())
            outcomes.append(Outcome(step, record["passed"], record["seconds"], record["last_line"]))
    return outcomes


def ratio_summary(table: pathlib.Path) -> str:
    """Median and worst of every ``ratio`` column of the first markdown table in a result file."""
    lines = table.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
    rows = [line.strip("|").split("|") for line in itertools.takewhile(lambda x: x.startswith("|"), lines[start:])]
    if len(rows) < 3:
        return ""
    header, body = [h.strip() for h in rows[0]], rows[2:]
    parts = []
    for i, name in enumerate(header):
        if "ratio" in name:
            values = []
            for row in body:
                try:
                    values.append(float(row[i]))
                except (ValueError, IndexError):
                    pass
            if values:
                parts.append(f"{name}: median {statistics.median(values):.2f}, worst {max(values):.2f}")
    return "; ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="a smoke run: a test file, the quick sweep and "
                                                             "quick benchmarks")
    parser.add_argument("--lease", action="store_true", help="the full tests and sweep with every benchmark's "
                        f"--quick tables at --min-run-time {LEASE_MIN_RUN_TIME} (unless given): for a short "
                        "lease of a GPU, split over two calls with --only")
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "results", help="folder for tables and logs")
    parser.add_argument("--only", nargs="+", metavar="STEP", help="run these steps alone: tests, verify, layers, "
                        "models, sparse, decoder (and on CUDA layers_tf32, ...)")
    parser.add_argument("--min-run-time", type=float, help="seconds each benchmark timing runs for (default: "
                                                           "each script's)")
    args = parser.parse_args(argv)
    if args.quick and args.lease:
        parser.error("--quick and --lease: choose one (--quick is the smoke run, --lease the full tests with "
                     "quick tables)")
    plan = steps(args.device, args.quick, args.out, args.min_run_time, args.lease)
    unknown = set(args.only or ()) - {step.name for step in plan}
    if unknown:
        parser.error(f"--only: no step named {sorted(unknown)} on {args.device}; the steps are "
                     f"{[step.name for step in plan]}")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available on this machine: run with --device cpu, or on a machine with a GPU")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "gpu_suite_logs"
    logs.mkdir(exist_ok=True)
    outcomes = []
    for step in plan:
        if args.only and step.name not in args.only:
            continue
        outcomes.append(run(step, logs))
        outcome = outcomes[-1]
        print(f"{step.name:<14} {'pass' if outcome.passed else 'FAIL'} {outcome.seconds:7.1f} s  {outcome.last_line}",
              flush=True)
    tables = sorted(p for p in args.out.glob(f"*_{args.device}*.md") if not p.name.startswith("gpu_suite"))
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    mode = " --quick" if args.quick else " --lease" if args.lease else ""
    lines = [f"# gpu_suite on {args.device} ({device_name}){mode}", "",
             f"torch {torch.__version__}", "", "| step | result | seconds | last line |", "|---|---|---|---|"]
    lines += [f"| {o.step.name} | {'pass' if o.passed else 'FAIL'} | {o.seconds:.1f} | "
              f"{o.last_line.replace('|', '/')} |" for o in recorded(plan, logs)]
    lines += ["", "## Ratios (gridgnn time / torch time; lower is better)", ""]
    lines += [f"- `{t.name}`: {ratio_summary(t) or 'no ratio column'}" for t in tables]
    summary = args.out / f"gpu_suite_{args.device}.md"
    summary.write_text("\n".join(lines) + "\n")
    passed = sum(o.passed for o in outcomes)
    print(f"summary: {summary}")
    print(f"{passed} passed, {len(outcomes) - passed} failed")
    return 0 if passed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
