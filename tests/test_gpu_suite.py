"""The one-command GPU suite runs end to end (here as the CPU smoke run), so it cannot rot before a GPU comes."""
import pathlib
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _suite(*args, timeout=900):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def test_gpu_suite_smoke_run_on_cpu_split_over_two_calls_makes_one_summary(tmp_path):
    common = ["--device", "cpu", "--quick", "--out", str(tmp_path)]
    first = _suite(*common, "--only", "tests", "verify")
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.strip().splitlines()[-1] == "2 passed, 0 failed"
    assert "| layers |" not in (tmp_path / "gpu_suite_cpu.md").read_text()
    second = _suite(*common, "--only", "layers", "models", "sparse", "decoder", "--min-run-time", "0.01")
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.strip().splitlines()[-1] == "4 passed, 0 failed"
    summary = (tmp_path / "gpu_suite_cpu.md").read_text()
    for step in ("tests", "verify", "layers", "models", "sparse", "decoder"):      # both calls' steps
        assert f"| {step} | pass |" in summary
    for table in ("layers_cpu_float32.md", "models_cpu.md", "sparse_cpu.md", "decoder_cpu.md"):
        assert (tmp_path / table).exists() and f"`{table}`: " in summary and "median" in summary
    assert not (ROOT / "benchmarks" / "results" / "gpu_suite_cpu.md").exists()      # results stay where asked


def test_gpu_suite_names_the_steps_when_asked_for_an_unknown_one(tmp_path):
    done = _suite("--device", "cpu", "--only", "tests", "layers_tf32", "--out", str(tmp_path), timeout=120)
    assert done.returncode == 2 and "no step named ['layers_tf32'] on cpu" in done.stderr
    assert "'decoder'" in done.stderr and not (tmp_path / "gpu_suite_logs").exists()


def test_cuda_plan_runs_the_cuda_tests_without_the_cpu_only_files(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_suite
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    plan = {step.name: step for step in gpu_suite.steps("cuda", quick=False, out=tmp_path)}
    assert list(plan) == ["tests", "verify"] + [f"{name}{tf32}" for name in ("layers", "models", "sparse", "decoder")
                                                for tf32 in ("", "_tf32")]
    command = plan["tests"].command
    assert command[command.index("-k") + 1] == "cuda"
    for cpu_only in ("tests/test_tutorials.py", "tests/test_docs.py", "tests/nn/test_torch_definitions.py"):
        assert f"--ignore={cpu_only}" in command and (ROOT / cpu_only).exists()
    assert plan["layers_tf32"].command[-1] == "--tf32"


def test_lease_plan_runs_every_test_and_the_full_sweep_with_quick_tables(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_suite
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    full = {step.name: step.command for step in gpu_suite.steps("cuda", quick=False, out=tmp_path)}
    lease = {step.name: step.command for step in gpu_suite.steps("cuda", quick=False, out=tmp_path, lease=True)}
    assert list(lease) == list(full)
    assert lease["tests"] == full["tests"] and lease["verify"] == full["verify"]         # nothing cut from these
    for name, command in lease.items():
        if name not in ("tests", "verify"):
            assert "--quick" in command and "--batch" not in command and "--quick" not in full[name]
            assert command[command.index("--min-run-time") + 1] == str(gpu_suite.LEASE_MIN_RUN_TIME)
    given = gpu_suite.steps("cuda", quick=False, out=tmp_path, run_time=0.2, lease=True)
    assert all(step.command[step.command.index("--min-run-time") + 1] == "0.2" for step in given[2:])


def test_gpu_suite_refuses_quick_and_lease_together(tmp_path):
    done = _suite("--device", "cpu", "--quick", "--lease", "--out", str(tmp_path), timeout=120)
    assert done.returncode == 2 and "--quick and --lease: choose one" in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the suite runs on it")
def test_gpu_suite_refuses_cuda_without_a_gpu(tmp_path):
    done = _suite("--device", "cuda", "--out", str(tmp_path), timeout=120)
    assert done.returncode == 2 and "CUDA is not available" in done.stdout
