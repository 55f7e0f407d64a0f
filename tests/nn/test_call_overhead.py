"""What a layer call costs besides its arithmetic: no signature binding, cached geometries, no batch-of-one copy."""
import inspect

import pytest
import torch

from gridgnn.graph import conv_geometry
from gridgnn.nn import GridConv2d
from gridgnn.nn._gemm import OneDNNLinear
from gridgnn.nn._image import in_format


@pytest.mark.parametrize("groups, kernel", [(1, 3), (4, 3), (1, 1)], ids=["shifted", "depthwise", "pointwise"])
def test_custom_functions_skip_torchs_signature_binding(groups, kernel, monkeypatch):
    """Forward and backward through the eager Functions, with ``inspect.signature`` made to fail: torch's values."""
    conv = torch.nn.Conv2d(4, 4, kernel, padding=kernel // 2, groups=groups)
    layer = GridConv2d.from_conv(conv)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    expected = conv(x)
    expected_grads = torch.autograd.grad(expected.square().sum(), (x, conv.weight))

    def refuse(*args, **kwargs):
        raise AssertionError("inspect.signature was called")

    monkeypatch.setattr(inspect, "signature", refuse)
    out = layer(x)
    assert out.grad_fn is not None
    torch.testing.assert_close(out, expected)
    for got, want in zip(torch.autograd.grad(out.square().sum(), (x, layer.weight)), expected_grads):
        torch.testing.assert_close(got, want)


def test_functions_take_torchs_apply_under_torch_func():
    """Inside ``torch.func.grad`` (wrapped tensors) a Function takes torch's own apply: F.linear's grads."""
    x, weight, bias = torch.randn(5, 3), torch.randn(2, 3), torch.randn(2)

    def loss(layer_call, w):
        return layer_call(x, w, bias).square().sum()

    got = torch.func.grad(lambda w: loss(OneDNNLinear.apply, w))(weight)
    torch.testing.assert_close(got, torch.func.grad(lambda w: loss(torch.nn.functional.linear, w))(weight))


def test_a_batch_of_one_is_restrided_without_a_copy():
    """Strides that differ only on size-1 axes: the same memory with torch's strides (a view)."""
    t = torch.randn(1, 8, 16).transpose(1, 2).reshape(1, 4, 4, 8).movedim(-1, 1)     # odd batch stride
    assert t.stride() == (16, 16, 4, 1)
    view = in_format(t, torch.contiguous_format)
    assert view.data_ptr() == t.data_ptr() and view.stride() == torch.empty(1, 8, 4, 4).stride() == (128, 16, 4, 1)
    torch.testing.assert_close(view, t)
    nhwc = torch.randn(4, 4, 8).as_strided((1, 4, 4, 8), (5, 32, 8, 1)).permute(0, 3, 1, 2)   # channels-last memory
    view = in_format(nhwc, torch.channels_last)
    assert view.data_ptr() == nhwc.data_ptr() and view.stride() == (128, 1, 32, 8)
    torch.testing.assert_close(view, nhwc)
    copied = in_format(t, torch.channels_last)                                   # a real layout change copies
    assert copied.data_ptr() != t.data_ptr() and copied.is_contiguous(memory_format=torch.channels_last)


def test_batch_one_layer_output_has_torchs_strides():
    conv = torch.nn.Conv2d(8, 16, 1)
    x = torch.randn(1, 8, 5, 5, requires_grad=True)
    out, expected = GridConv2d.from_conv(conv)(x), conv(x)
    assert out.stride() == expected.stride()
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    assert torch.autograd.grad(out, x, grad)[0].stride() == torch.autograd.grad(expected, x, grad)[0].stride()


def test_geometries_are_cached_per_configuration_and_size():
    layer = GridConv2d(3, 3, 3, padding=1)
    assert conv_geometry(layer, (5, 6)) is conv_geometry(layer, (5, 6))
    assert conv_geometry(layer, (5, 7)).out_size == (5, 7)
    other = GridConv2d(3, 3, 3, padding=1, stride=2)
    assert conv_geometry(other, (5, 6)).out_size == (3, 3)

    class Listed:                                          # unhashable arguments: built uncached, same geometry
        kernel_size, stride, padding, dilation, padding_mode = [3, 3], [1, 1], [1, 1], [1, 1], "zeros"

    assert conv_geometry(Listed(), (5, 6)) == conv_geometry(layer, (5, 6))
