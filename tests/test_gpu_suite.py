"""The one-command GPU suite runs end to end (here as the CPU smoke run), so it cannot rot before a GPU comes."""
import pathlib
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_gpu_suite_smoke_run_on_cpu(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--device", "cpu", "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "6 passed, 0 failed"
    summary = (tmp_path / "gpu_suite_cpu.md").read_text()
    for step in ("tests", "verify", "layers", "models", "sparse", "decoder"):
        assert f"| {step} | pass |" in summary
    for table in ("layers_cpu_float32.md", "models_cpu.md", "sparse_cpu.md", "decoder_cpu.md"):
        assert (tmp_path / table).exists() and f"`{table}`: " in summary and "median" in summary
    assert not (ROOT / "benchmarks" / "results" / "gpu_suite_cpu.md").exists()      # results stay where asked


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the suite runs on it")
def test_gpu_suite_refuses_cuda_without_a_gpu(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--device", "cuda",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "CUDA is not available" in done.stdout
