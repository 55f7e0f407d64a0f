import re

import pytest
import torch

from gridgnn import __main__ as cli
from gridgnn import sweep
from gridgnn.sweep import conv_configs


def test_sweep_covers_every_geometry_axis():
    configs = conv_configs()
    assert len(configs) >= 200
    for attr, values in [("ndim", {1, 2, 3}), ("kernel_size", {1, 2, 3}), ("stride", {1, 2}),
                         ("padding", {0, 1, "same", "valid"}), ("dilation", {1, 2}), ("groups", {1, 2, 4}),
                         ("bias", {True, False}), ("padding_mode", {"zeros", "circular", "reflect", "replicate"})]:
        assert {getattr(c, attr) for c in configs} == values, attr
    assert {(c.groups, c.bias) for c in configs} == {(g, b) for g in (1, 2, 4) for b in (True, False)}
    assert not any(c.padding == "same" and c.stride > 1 for c in configs)


def test_verify_prints_table_and_summary(capsys):
    code = cli.main(["verify", "--quick", "--dims", "1", "--dtype", "float64", "--device", "cpu", "--no-progress"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("1d ")]
    assert code == 0 and rows and all(line.endswith("pass") for line in rows)
    assert re.search(rf"^{len(rows)} passed, 0 failed$", out, re.M)
    assert "max abs err" in out


def test_verify_fails_with_exit_1(monkeypatch, capsys):
    real = sweep.check_conv_equivalent

    def broken(conv, layer, *args, **kwargs):
        with torch.no_grad():
            layer.weight.add_(1.0)
        return real(conv, layer, *args, copy_weights=False, **kwargs)

    monkeypatch.setattr(sweep, "check_conv_equivalent", broken)
    code = cli.main(["verify", "--quick", "--dims", "2", "--dtype", "float32", "--path", "auto", "--no-progress",
                     "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL" in out and re.search(r"^0 passed, \d+ failed$", out, re.M)


def test_verify_reports_crashes_as_failures(monkeypatch, capsys):
    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(sweep, "check_conv_equivalent", crash)
    code = cli.main(["verify", "--quick", "--dims", "1", "--dtype", "float32", "--path", "auto", "--no-progress"])
    assert code == 1 and "FAIL (RuntimeError: boom)" in capsys.readouterr().out


def test_info(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch_geometric" in out and "native kernels (depthwise, thin-group and dense convs, CPU) built (" in out


def test_verify_a_users_model(capsys, monkeypatch, tmp_path):
    (tmp_path / "my_models.py").write_text(
        "import torch\n"
        "def small():\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),\n"
        "                               torch.nn.Conv2d(4, 2, 1))\n"
        "def with_input():\n"
        "    return small(), torch.randn(1, 3, 6, 6)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.main(["verify", "--model", "my_models:small", "--input-shape", "2,3,8,8", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "2 layers converted" in out and re.search(r"^2 passed, 0 failed$", out, re.M)
    assert cli.main(["verify", "--model", "my_models:with_input", "--dtype", "float64", "--device", "cpu"]) == 0


def test_model_option_errors_and_file_paths(capsys, tmp_path):
    (tmp_path / "net.py").write_text(
        "import torch\ndef make():\n    return torch.nn.Conv2d(2, 2, 3), torch.randn(1, 2, 5, 5)\n")
    assert cli.main(["verify", "--model", f"{tmp_path}/net.py:make", "--dtype", "float64", "--device", "cpu"]) == 0
    assert re.search(r"^1 passed, 0 failed$", capsys.readouterr().out, re.M)
    assert cli.main(["verify", "--model", f"{tmp_path}/net.py:make", "--quick", "--device", "cpu"]) == 2
    assert "--quick apply to the sweep, not to --model" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no file"):
        cli.main(["verify", "--model", f"{tmp_path}/missing.py:make", "--device", "cpu"])
    with pytest.raises(SystemExit, match="AttributeError"):
        cli.main(["verify", "--model", f"{tmp_path}/net.py:nope", "--device", "cpu"])
    if not torch.cuda.is_available():
        assert cli.main(["verify", "--model", f"{tmp_path}/net.py:make", "--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
