"""What a layer call costs besides its arithmetic: no signature binding, cached geometries, no batch-of-one copy."""
import collections
import inspect

import pytest
import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

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


#: aten ops that make views (a batch of one takes a few more of them)
VIEWS = {f"aten.{name}" for name in ("view", "_unsafe_view", "permute", "squeeze", "unsqueeze", "expand", "slice",
                                      "select", "transpose", "t", "as_strided", "detach", "alias", "unbind")}


class _OpCount(TorchDispatchMode):
    """The aten ops a block of code dispatches that are not views, by name."""

    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func.overloadpacket) not in VIEWS:
            self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def _ops_of_a_training_call(layer: GridConv2d, x: Tensor) -> collections.Counter:
    """After a first call of the same shape (which builds the caches), gradients set to None before each."""
    counts = []
    for _ in range(2):
        layer.zero_grad(set_to_none=True)
        with _OpCount() as count:
            layer(x).sum().backward()
        counts.append(count.ops)
    return counts[-1]


@pytest.mark.parametrize("device", ["meta"] + (["cuda"] if torch.cuda.is_available() else []))
@pytest.mark.parametrize("channels, kernel, groups, size", [(96, 7, 96, 56), (64, 3, 1, 56), (128, 3, 32, 28)],
                         ids=["depthwise", "dense", "grouped"])
def test_off_the_cpu_a_call_dispatches_as_many_ops_at_batch_8_as_at_1(device, channels, kernel, groups, size):
    """GPUs pay per launch: no batch chunks or row blocks sized for a CPU's caches, one GEMM a dense or grouped conv.

    (The ``meta`` device takes the routes CUDA takes, without one.)
    """
    layer = GridConv2d.from_conv(torch.nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=groups)).to(
        device)
    one, eight = (_ops_of_a_training_call(layer, torch.randn(batch, channels, size, size, device=device,
                                                              requires_grad=True)) for batch in (1, 8))
    assert one == eight
    assert eight["aten.addcmul_"] <= 2 * kernel * kernel                   # forward and input gradient, per offset
    assert eight["aten.mm"] + eight["aten.addmm_"] + eight["aten.addmm"] <= 3 * kernel * kernel
    if groups == 1:                                                        # one im2col GEMM, not one per offset
        assert eight["aten.addmm_"] == 0 and eight["aten.mm"] + eight["aten.addmm"] <= 3
    elif groups < channels:
        assert eight["aten.mm"] == 0 and eight["aten.bmm"] <= 3            # forward and its two gradients
