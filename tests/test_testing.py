import pytest
import torch

from gridgnn.nn import GridConv, GridConv2d, NodeLinear
from gridgnn.testing import (
    TOLERANCES,
    EquivalenceReport,
    Error,
    assert_conv_equivalent,
    check_conv_equivalent,
    compare,
    no_tf32,
    tolerance,
)


def test_tolerance_table():
    assert set(TOLERANCES) == {torch.float16, torch.bfloat16, torch.float32, torch.float64}
    assert tolerance(torch.float64).rtol < tolerance(torch.float32).rtol < tolerance(torch.bfloat16).rtol
    with pytest.raises(ValueError, match="no tolerance for dtype torch.int64"):
        tolerance(torch.int64)


def test_compare_is_normwise():
    err = compare(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]))
    assert err == Error(2.0, 0.5, 4.0)
    assert err.within(tolerance(torch.float32)) is False
    with pytest.raises(AssertionError, match="shape mismatch"):
        compare(torch.zeros(2), torch.zeros(3))


def test_passes_for_twins_of_every_kind():
    conv = torch.nn.Conv2d(4, 4, 1)
    for layer in (None, GridConv2d.from_conv(conv), GridConv.from_conv(conv), NodeLinear.from_conv(conv)):
        report = assert_conv_equivalent(conv, layer, dtype=torch.float64)
        assert report.passed and set(report.errors) == {"output", "grad_input", "grad_weight", "grad_bias"}


def test_catches_a_wrong_layer():
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    wrong_geometry = GridConv2d(4, 4, 3, padding=1, padding_mode="circular")
    with pytest.raises(AssertionError, match="output: max abs err"):
        assert_conv_equivalent(conv, wrong_geometry)
    wrong_weights = GridConv2d.from_conv(conv)
    report = check_conv_equivalent(conv, wrong_weights, copy_weights=False)  # from_conv copied the weights
    assert report.passed
    with torch.no_grad():
        wrong_weights.weight.mul_(1.001)
    report = check_conv_equivalent(conv, wrong_weights, copy_weights=False)
    assert not report.passed and "output" in report.failures()
    with pytest.raises(AssertionError, match="bias mismatch"):
        assert_conv_equivalent(conv, GridConv2d(4, 4, 3, padding=1, bias=False))


def test_leaves_arguments_untouched():
    conv = torch.nn.Conv2d(2, 2, 3)
    before = conv.weight.clone()
    assert_conv_equivalent(conv, dtype=torch.float64)
    assert conv.weight.dtype == torch.float32 and torch.equal(conv.weight, before) and conv.weight.grad is None


def test_no_tf32_restores_settings():
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with no_tf32():
            assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def test_empty_report():
    assert EquivalenceReport().passed and EquivalenceReport().max_abs == 0.0
