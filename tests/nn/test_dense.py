"""The dense path's custom autograd Functions: equal to torch's convs, with gradients of two orders."""
import itertools

import pytest
import torch

from gridgnn.nn import GridConv1d, GridConv2d, GridConv3d
from gridgnn.nn._depthwise import tap_boxes
from gridgnn.testing import assert_conv_equivalent, compare, tolerance

from helpers import TORCH_CONVS, assert_gradients_of_two_orders

GRID_CONVS = {1: GridConv1d, 2: GridConv2d, 3: GridConv3d}
MODES = ["zeros", "circular", "reflect", "replicate"]


@pytest.mark.parametrize("nd, k, stride, padding, dilation, mode", [
    cfg for cfg in itertools.product([1, 2, 3], [1, 2, 3], [1, 2, 3], [0, 1, 2], [1, 2], MODES)
    if not (cfg[4] == 2 and cfg[0] == 3) and not (cfg[3] == 0 and cfg[5] != "zeros")])
def test_depthwise_equals_torch(nd, k, stride, padding, dilation, mode, device):
    conv = TORCH_CONVS[nd](4, 4, k, stride, padding, dilation, groups=4, padding_mode=mode)
    assert_conv_equivalent(conv, GRID_CONVS[nd].from_conv(conv), (7,) * nd, dtype=torch.float64, device=device)


def test_depthwise_offsets_that_reach_no_output_are_skipped():
    """A dilated kernel wider than the padded input: some offsets have no edges at all."""
    conv = torch.nn.Conv2d(3, 3, 3, padding=4, dilation=5, groups=3)
    layer = GridConv2d.from_conv(conv)
    taps = tap_boxes(layer.geometry((3, 3)), (3, 3), True)
    assert 0 < len(taps) < 9
    assert_conv_equivalent(conv, layer, (3, 3), dtype=torch.float64)


@pytest.mark.parametrize("make", [
    lambda: GridConv2d(3, 3, 3, padding=1, groups=3),                                    # depthwise, zeros
    lambda: GridConv2d(3, 3, 3, stride=2, padding=2, dilation=2, groups=3, padding_mode="reflect"),
    lambda: GridConv1d(2, 2, 3, padding=1, groups=2, padding_mode="circular"),
    lambda: GridConv2d(3, 4, 3, padding=1),                                              # shifted slices
    lambda: GridConv3d(2, 3, 2, padding=1, padding_mode="replicate"),
    lambda: GridConv2d(3, 4, 3, stride=2, padding=1),                                    # gathered windows
], ids=["depthwise", "depthwise-strided-reflect", "depthwise-1d-circular", "shifted", "shifted-3d", "windows"])
def test_gradients_of_two_orders(make):
    layer = make()
    assert_gradients_of_two_orders(layer, [5] * layer._ndim)


@pytest.mark.parametrize("nd, c_in, c_out, groups, bias", [
    cfg for cfg in itertools.product([1, 2, 3], [4], [6], [1, 2], [True, False])] + [(2, 3, 5, 1, True)])
def test_pointwise_on_nchw_input_reads_it_in_place(nd, c_in, c_out, groups, bias, monkeypatch):
    """A 1x1 conv on NCHW input is ``W X`` per image on the channel-major nodes: torch's values, strides, gradients."""
    import gridgnn.nn._dense as dense
    calls = []
    original = dense._channel_major_pointwise
    monkeypatch.setattr(dense, "_channel_major_pointwise", lambda *a: calls.append(1) or original(*a))
    conv = TORCH_CONVS[nd](c_in, c_out, 1, groups=groups, bias=bias).double()
    layer = GRID_CONVS[nd].from_conv(conv)
    x = torch.randn(3, c_in, *([5] * nd), dtype=torch.float64, requires_grad=True)
    y = layer(x)
    assert calls and y.is_contiguous()                                       # no copy to or from channels-last
    torch.testing.assert_close(y, conv(x))
    assert_conv_equivalent(conv, layer, (5,) * nd, dtype=torch.float64)
    params = dict(layer.named_parameters())

    def fn(x, weight):
        return torch.func.functional_call(layer, {**params, "weight": weight}, (x,))

    assert torch.autograd.gradcheck(fn, (x, params["weight"].detach().requires_grad_()))


@pytest.mark.parametrize("nd, batch, bias, groups", [
    cfg for cfg in itertools.product([1, 2, 3], [1, 3], [True, False], [1, 3]) if cfg[:2] != (3, 1)])
def test_pointwise_on_channels_last_input_is_gemms_in_place(nd, batch, bias, groups, monkeypatch):
    """A 1x1 conv on channels-last input is ``X W^T`` (a GEMM a group) on the nodes where they lie, with no copy.

    Torch's values, strides, gradients and their strides (float32: in float64 torch's 3-D convs answer
    channels-last input contiguously, a known difference of the drop-ins, as for a 3-D batch of one).
    """
    from gridgnn.nn import _gemm
    calls = []
    name = "linear" if groups == 1 else "sliced_group_matmul"
    original = getattr(_gemm, name)
    monkeypatch.setattr(_gemm, name, lambda x, *a: calls.append(x.data_ptr()) or original(x, *a))
    conv = TORCH_CONVS[nd](48, 36, 1, bias=bias, groups=groups)                # (16 channels a group: unmerged)
    layer = GRID_CONVS[nd].from_conv(conv)
    x = torch.randn(batch, 48, *(4, 5, 6)[:nd]).movedim(1, -1).contiguous().movedim(-1, 1)
    grad = torch.randn(batch, 36, *(4, 5, 6)[:nd])
    results, tol = [], tolerance(torch.float32)
    for module in (conv, layer):
        xi = x.detach().clone().requires_grad_()
        y = module(xi)
        forward_calls = list(calls)
        y.backward(grad)
        results.append((y, xi.grad, module.weight.grad.reshape(conv.weight.shape)))
    for got, want in zip(results[1], results[0]):
        error = compare(got, want)                                      # normwise, the tolerance table's
        assert error.within(tol), error
        assert [s for s, n in zip(got.stride(), got.shape) if n > 1] == [
            s for s, n in zip(want.stride(), want.shape) if n > 1]        # (size-1 axes' strides are free)
    assert forward_calls == [xi.data_ptr()]                            # the forward's GEMMs read the input's memory


@pytest.mark.parametrize("chunk", [1, 7 * 5, 7 * 80])
@pytest.mark.parametrize("nd, padding, dilation, mode", [(2, 1, 1, "zeros"), (2, 2, 2, "reflect"),
                                                         (1, 1, 1, "circular"), (3, 1, 1, "zeros")])
def test_shifted_slices_in_row_chunks_equal_torch(chunk, nd, padding, dilation, mode, monkeypatch):
    """Row chunks of the shifted-slice GEMMs (forward and the backward's negated offsets) split anywhere.

    A chunk of one row, of a few rows (some offsets then reach only part of a chunk, the backward's first
    chunks none whole) and of several images: torch's values and gradients, and float64 gradients.
    """
    import gridgnn.nn._dense as dense
    monkeypatch.setattr(dense, "SHIFT_CHUNK_ELEMENTS", chunk)
    calls = []
    original = dense.shifted_matmul_
    monkeypatch.setattr(dense, "shifted_matmul_", lambda *a: calls.append(1) or original(*a))
    conv = TORCH_CONVS[nd](5, 7, 3, 1, padding, dilation, padding_mode=mode).double()
    layer = GRID_CONVS[nd].from_conv(conv)
    assert_conv_equivalent(conv, layer, (6 if nd < 3 else 4,) * nd, dtype=torch.float64)
    assert calls                                                             # the shifted-slice path ran
    x = torch.randn(1, 5, *([3 if nd < 3 else 2] * nd), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))


@pytest.mark.parametrize("batched", [False, True], ids=["gemm-per-group", "one-bmm"])
@pytest.mark.parametrize("stride, mode", [(1, "zeros"), (2, "reflect")])
def test_gathered_grouped_convs_equal_torch_by_either_gemm(batched, stride, mode, monkeypatch):
    """Both GEMM forms of grouped gathered-window convs (a GEMM per group on the CPU, one ``bmm`` elsewhere).

    Groups of 16 input channels (not merged) and C_in != C_out (not the native kernel): torch's values and
    gradients, a NaN that stays in its group, and float64 gradients of two orders' first.
    """
    import gridgnn.nn._dense as dense
    calls = []
    monkeypatch.setattr(dense, "batched_group_gemm", lambda device: calls.append(device) or batched)
    bmm = []
    original_bmm = torch.bmm
    monkeypatch.setattr(torch, "bmm", lambda *a, **k: bmm.append(1) or original_bmm(*a, **k))
    conv = torch.nn.Conv2d(32, 48, 3, stride, 1, groups=2, padding_mode=mode).double()
    layer = GridConv2d.from_conv(conv)
    assert_conv_equivalent(conv, layer, (7, 7), dtype=torch.float64)
    assert calls and bool(bmm) == batched                                  # the gathered route ran, in that form
    x = torch.randn(2, 32, 5, 5, dtype=torch.float64)
    x[0, 3, 2, 2] = float("nan")                                           # group 0's input channel
    out = layer(x)
    torch.testing.assert_close(out, conv(x), equal_nan=True)
    assert out[0, 24:].isfinite().all() and out[0, :24].isnan().any()      # group 1's outputs stay finite
    x = torch.randn(1, 32, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
