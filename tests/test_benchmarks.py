"""The benchmark scripts' options: which rows they time and where their tables go (quick CPU runs)."""
import pathlib
import subprocess
import sys

import gridgnn.nn as gnn

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def _run(script, *args, timeout=600):
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--device", "cpu", "--quick",
                           "--min-run-time", "0.01", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _rows(table: pathlib.Path):
    lines = [line for line in table.read_text().splitlines() if line.startswith("| ")]
    return [line.strip("|").split("|")[0].strip() for line in lines[1:]]              # first column, no header


def test_layers_only_times_the_layers_named(tmp_path):
    done = _run("layers.py", "--only", "C=576 dw", "7x7 C=384", "--results", str(tmp_path))  # the small ones
    table = tmp_path / "layers_cpu_float32_C-576-dw_7x7-C-384.md"                         # words made file-safe
    labels = _rows(table)
    assert set(labels) == {"3x3 C=576 dw @14", "7x7 C=384 dw @14"} and len(labels) == 4   # fwd, fwd+bwd each
    rows = [line for line in table.read_text().splitlines() if line.startswith("| 3x3") or line.startswith("| 7x7")]
    for row in rows:                                  # printed as it was timed, and again in the table at the end
        assert done.stdout.count(row) == 2, done.stdout
    assert not (tmp_path / "graph_paths_cpu.md").exists()


def test_models_times_the_architectures_named(tmp_path):
    _run("models.py", "--models", "shufflenet_g3", "--results", str(tmp_path))
    text = (tmp_path / "models_cpu_shufflenet_g3.md").read_text()
    assert "| shufflenet_g3 | float32 | 1 | fwd |" in text and "| resnet50 |" not in text
    assert "Over the shufflenet_g3 (float32" in text


def test_compiled_kernels_option_switches_them_on_and_names_the_tables(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import _common
    monkeypatch.setattr(_common, "_OPTIONS", dict(_common._OPTIONS))
    with gnn.compiled_kernels(False):
        _common.parse_args("test", "quick", ["--compiled-kernels", "--results", str(tmp_path)])
        assert gnn.compiled_kernels.enabled()
        path = _common.write_result("layers_cpu_float32", "a title", "a body")
        assert path.name == "layers_cpu_float32_compiled.md" and "compiled_kernels on" in path.read_text()
        _common.parse_args("test", "quick", ["--results", str(tmp_path)])
        assert not gnn.compiled_kernels.enabled()


def test_models_refuses_an_unknown_architecture():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "models.py"), "--models", "vgg16"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "invalid choice: 'vgg16'" in done.stderr

