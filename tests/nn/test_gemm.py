"""The layers' GEMM: oneDNN's kernel on CPU float32 must equal F.linear, gradients of every order included."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gridgnn as gg
from gridgnn.nn import GridConv2d, NodeLinear, _gemm, _native
from gridgnn.nn._gemm import linear, uses_onednn
from gridgnn.testing import assert_conv_equivalent, tolerance

needs_onednn = pytest.mark.skipif(_gemm._ONEDNN_LINEAR is None, reason="this torch build has no oneDNN GEMM")


@needs_onednn
@pytest.mark.parametrize("shape", [(7, 5), (2, 3, 5), (0, 5)])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_onednn_linear_equals_f_linear_with_grads_of_two_orders(shape, with_bias, layout, monkeypatch):
    monkeypatch.setattr(_gemm, "ONEDNN_MIN_MACS", 0)                    # small shapes through oneDNN too
    monkeypatch.setattr(_gemm, "LINEAR_BY_ONEDNN", True)                # as on CPUs not made by Intel
    tol = tolerance(torch.float32)
    x = torch.randn(*shape[:-1], 2 * shape[-1])[..., ::2] if layout == "strided" else torch.randn(shape)
    x.requires_grad_()
    weight = torch.randn(4, 5, requires_grad=True)
    bias = torch.randn(4, requires_grad=True) if with_bias else None
    inputs = (x, weight) + ((bias,) if with_bias else ())
    results = []
    for fn in (linear, F.linear):
        y = fn(x, weight, bias)
        grads = torch.autograd.grad((y * y).sum(), inputs, create_graph=True)
        second = torch.autograd.grad(sum((g * g).sum() for g in grads), inputs, allow_unused=True)
        with torch.no_grad():                                           # the inference branch, no autograd
            torch.testing.assert_close(fn(x, weight, bias), y, atol=tol.atol, rtol=tol.rtol)
        results.append((y, grads, second))
    (y, grads, second), (y_ref, grads_ref, second_ref) = results
    torch.testing.assert_close(y, y_ref, atol=tol.atol, rtol=tol.rtol)
    for a, b in zip(grads + second, grads_ref + second_ref):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_falls_back_to_f_linear_off_cpu_float32(monkeypatch):
    w = torch.randn(3, 2, dtype=torch.float64)
    assert not uses_onednn(torch.randn(4, 2, dtype=torch.float64), w)
    assert not uses_onednn(torch.randn(0, 2), w.float())
    assert not uses_onednn(torch.randn(4, 2), w.float())                # too small to pay oneDNN's set-up
    monkeypatch.setattr(_gemm, "ONEDNN_MIN_MACS", 0)
    monkeypatch.setattr(_gemm, "LINEAR_BY_ONEDNN", False)               # as on Intel CPUs: MKL's GEMM
    assert not uses_onednn(torch.randn(4, 2), w.float())
    monkeypatch.setattr(_gemm, "LINEAR_BY_ONEDNN", True)
    assert uses_onednn(torch.randn(4, 2), w.float()) == (_gemm._ONEDNN_LINEAR is not None)
    with torch.backends.mkldnn.flags(enabled=False):      # the flags' own switch (global setters may be frozen)
        assert not uses_onednn(torch.randn(4, 2), w.float())
    x = torch.randn(4, 2, dtype=torch.float64)
    assert torch.equal(linear(x, w), F.linear(x, w))


@pytest.mark.parametrize("groups, width, c_out, rest", [(32, 4, 64, (3, 3)), (8, 3, 16, ()), (6, 5, 12, (2,)),
                                                        (4, 16, 8, (3, 3)), (3, 1, 6, ())])
def test_merge_groups_is_the_same_block_diagonal_map(groups, width, c_out, rest):
    weight = torch.randn(c_out, width, *rest, dtype=torch.float64)
    merged, merged_groups = _gemm.merge_groups(weight, groups)
    assert groups % merged_groups == 0
    assert merged.size(1) >= _gemm.MIN_GROUP_CHANNELS or merged_groups == 1 or width >= _gemm.MIN_GROUP_CHANNELS

    def dense(w, g):  # the full [C_out, C_in, *rest] weight a grouped weight stands for, built block by block
        out_g, in_g = w.size(0) // g, w.size(1)
        full = torch.zeros(w.size(0), in_g * g, *w.shape[2:], dtype=w.dtype)
        for k in range(g):
            full[k * out_g:(k + 1) * out_g, k * in_g:(k + 1) * in_g] = w[k * out_g:(k + 1) * out_g]
        return full

    assert torch.equal(dense(merged, merged_groups), dense(weight, groups))


@pytest.mark.parametrize("groups, channels, stride", [(32, 128, 1), (32, 256, 2), (8, 24, 1), (2, 64, 1)])
def test_thin_groups_equal_torch(groups, channels, stride):
    from gridgnn.nn import GridConv2d, NodeLinear
    from gridgnn.testing import assert_conv_equivalent

    conv3 = torch.nn.Conv2d(channels, channels, 3, stride, 1, groups=groups)
    assert_conv_equivalent(conv3, GridConv2d.from_conv(conv3), (6, 6), dtype=torch.float64)
    conv1 = torch.nn.Conv2d(channels, channels, 1, groups=groups)
    assert_conv_equivalent(conv1, NodeLinear.from_conv(conv1), (5, 5), dtype=torch.float64)


@pytest.mark.parametrize("layer", ["grouped3x3", "grouped1x1"])
@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_inf_and_nan_stay_in_their_group_as_in_torch(layer, bad):
    """Thin groups are merged block-diagonally for speed; 0 x inf must not leak into other groups."""
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=2) if layer == "grouped3x3" else nn.Conv2d(64, 64, 1, groups=16)
    x = torch.randn(2, conv.in_channels, 6, 6)
    x[0, 1, 2, 3] = bad
    paths = ("auto", "general")
    for path in paths:
        twin = GridConv2d.from_conv(conv, path=path)
        xr, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
        ref, out = conv(xr), twin(xt)
        torch.testing.assert_close(out, ref, equal_nan=True)
        ref.sum().backward()
        out.sum().backward()
        torch.testing.assert_close(xt.grad, xr.grad, equal_nan=True)
    node = NodeLinear.from_conv(conv) if layer == "grouped1x1" else None
    if node is not None:
        torch.testing.assert_close(gg.to_image(node(gg.to_nodes(x)), (6, 6)), conv(x), equal_nan=True)


@needs_onednn
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_shifted_slices_accumulate_through_onednn_as_torch(layout, monkeypatch):
    """``add_matmul_`` (oneDNN product + add, for K >= 64) in the shifted-slice path: torch's values and gradients."""
    monkeypatch.setattr(_gemm, "ONEDNN_MIN_MACS", 0)
    monkeypatch.setattr(_gemm, "ADD_BY_ONEDNN", True)                 # as on AVX-512 AMD CPUs
    monkeypatch.setattr(_gemm, "LINEAR_BY_ONEDNN", True)
    monkeypatch.setattr(_native, "DENSE_ISA", False)                  # the GEMM path, not the native dense kernel
    calls = []
    kernel = _gemm._ONEDNN_LINEAR
    monkeypatch.setattr(_gemm, "_ONEDNN_LINEAR", lambda *a: calls.append(a[0].shape) or kernel(*a))
    conv = nn.Conv2d(64, 64, 3, padding=1)
    layer = GridConv2d.from_conv(conv)
    x = torch.randn(2, 64, 9, 9).contiguous(memory_format=layout).requires_grad_()
    assert_conv_equivalent(conv, layer, (9, 9))                       # values and gradients, float32 table
    assert calls
    calls.clear()
    layer(x).sum().backward()
    assert len(calls) >= 8 + 9                       # the forward's 8 accumulated offsets, the backward's 9
    x_small = torch.randn(2, 32, 9, 9)                                  # K = 32 < ADD_ONEDNN_MIN_K: addmm_
    calls.clear()
    small = nn.Conv2d(32, 32, 3, padding=1)
    torch.testing.assert_close(GridConv2d.from_conv(small)(x_small), small(x_small), rtol=1e-4, atol=1e-4)
    assert not calls


@pytest.mark.parametrize("shape", [(5, 48), (2, 3, 48)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_sliced_grouped_linear_equals_per_group_products_to_two_orders(shape, with_bias, monkeypatch):
    """Groups of 16 channels (left unmerged) through the sliced GEMMs.

    The per-group products' values, gradients of two orders, batched gradients and forward-mode derivatives.
    """
    calls = []
    original = _gemm.sliced_group_matmul
    monkeypatch.setattr(_gemm, "sliced_group_matmul", lambda *a: calls.append(1) or original(*a))
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(9, 16, dtype=torch.float64, requires_grad=True)             # 3 groups: 16 -> 3 each
    bias = torch.randn(9, dtype=torch.float64, requires_grad=True) if with_bias else None
    inputs = (x, weight) + ((bias,) if with_bias else ())

    def grouped(x, weight, *bias):
        return _gemm.grouped_linear(x, weight, bias[0] if bias else None, 3)

    blocks = weight.detach().view(3, 3, 16)
    expected = torch.cat([xg @ w.t() for xg, w in zip(x.detach().chunk(3, -1), blocks)], -1)
    if with_bias:
        expected = expected + bias.detach()
    torch.testing.assert_close(grouped(*inputs), expected)
    assert calls
    assert torch.autograd.gradcheck(grouped, inputs, check_batched_grad=True, check_forward_ad=True)
    assert torch.autograd.gradgradcheck(grouped, inputs)


def test_complex_grouped_products_keep_their_conjugate_gradients():
    """Complex groups of 16 channels: the gradients of the per-group products (conjugated weights and inputs)."""
    x = torch.randn(2, 5, 48, dtype=torch.complex128, requires_grad=True)
    weight = torch.randn(9, 16, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: _gemm.grouped_linear(x, w, None, 3), (x, weight))
