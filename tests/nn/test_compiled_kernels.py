"""The opt-in inductor-compiled depthwise kernels: torch's values and gradients, the switch, the eager fallback."""
import warnings

import pytest
import torch

from gridgnn.nn import GridAvgPool2d, GridConv1d, GridConv2d, _compiled, compiled_kernels, twin_of


@pytest.fixture(autouse=True)
def _switch_restored():
    with compiled_kernels(False):
        yield


def _compiles(monkeypatch):
    """Count the kernels compiled while the test runs."""
    made = []
    original = _compiled._kernel
    monkeypatch.setattr(_compiled, "_kernel", lambda key: made.append(key) or original(key))
    return made


@pytest.mark.parametrize("channels_last", [True, False], ids=["channels-last", "nchw"])
@pytest.mark.parametrize("conv, size", [
    (torch.nn.Conv2d(6, 6, 3, padding=1, groups=6), (7, 9)),
    (torch.nn.Conv1d(4, 4, 3, stride=2, padding=2, dilation=2, groups=4, bias=False, padding_mode="reflect"), (11,)),
], ids=["2d", "1d-strided-dilated-reflect"])
def test_compiled_depthwise_equals_torch_forward_and_backward(conv, size, channels_last, monkeypatch, device):
    """Channels-last input and NCHW input (copied to channels-last for the kernel): torch's values, strides, grads."""
    made = _compiles(monkeypatch)
    layer = (GridConv2d if conv.weight.dim() == 4 else GridConv1d).from_conv(conv).to(device)
    conv = conv.to(device)
    x = torch.randn(2, conv.in_channels, *size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x.transpose(1, 2).contiguous().mT
    x.requires_grad_()
    with compiled_kernels():
        out = layer(x)
    assert made, "the compiled kernel did not run"
    assert all(key[1][-1] == 1 for key in made)                                  # it read channels innermost
    expected = conv(x)
    torch.testing.assert_close(out, expected)
    assert out.stride() == expected.stride()                                      # torch's memory format
    grad = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, (x, layer.weight), grad),
                    torch.autograd.grad(expected, (x, conv.weight), grad)):
        torch.testing.assert_close(a, b)
        assert a.stride() == b.stride()


def test_average_pools_run_on_the_compiled_kernel(monkeypatch):
    made = _compiles(monkeypatch)
    pool = torch.nn.AvgPool2d(3, stride=2, padding=1)
    twin = twin_of(pool)
    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    with compiled_kernels():
        out = twin(x)
    assert made and isinstance(twin, GridAvgPool2d)
    torch.testing.assert_close(out, pool(x))
    torch.testing.assert_close(torch.autograd.grad(out.sum(), x)[0], torch.autograd.grad(pool(x).sum(), x)[0])


def test_switch_is_off_by_default_a_call_and_a_context_manager():
    assert not compiled_kernels.enabled()
    with compiled_kernels():
        assert compiled_kernels.enabled()
        with compiled_kernels(False):
            assert not compiled_kernels.enabled()
        assert compiled_kernels.enabled()
    assert not compiled_kernels.enabled()
    compiled_kernels(True)
    assert compiled_kernels.enabled()
    compiled_kernels(False)
    with pytest.raises(TypeError, match="takes True or False"):
        compiled_kernels("yes")


def test_eager_kernels_run_under_transforms(monkeypatch):
    made = _compiles(monkeypatch)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1, groups=3)
    layer = GridConv2d.from_conv(conv)
    x = torch.randn(1, 3, 5, 5).contiguous(memory_format=torch.channels_last)
    with compiled_kernels():
        params = dict(layer.named_parameters())
        grads = torch.func.grad(lambda p: torch.func.functional_call(layer, p, (x,)).square().sum())(params)
        with torch.autograd.forward_ad.dual_level():                           # forward-mode AD: eager kernels
            dual = torch.autograd.forward_ad.make_dual(x, torch.ones_like(x))
            tangent = torch.autograd.forward_ad.unpack_dual(layer(dual)).tangent
    assert not made
    torch.testing.assert_close(grads["weight"], torch.autograd.grad(conv(x).square().sum(), conv.weight)[0])
    torch.testing.assert_close(tangent, torch.nn.functional.conv2d(torch.ones_like(x), conv.weight, padding=1,
                                                                   groups=3))                 # linear in x


def test_falls_back_to_eager_with_one_warning_when_inductor_cannot_compile(monkeypatch):
    monkeypatch.setattr(_compiled, "_unavailable", type(_compiled._unavailable)())      # this test's own flag
    monkeypatch.setattr(_compiled, "_kernels", {})
    conv = torch.nn.Conv2d(5, 5, 3, padding=1, groups=5)
    layer = GridConv2d.from_conv(conv)
    x = torch.randn(1, 5, 9, 11).contiguous(memory_format=torch.channels_last)
    patch = {"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False}
    with torch._inductor.config.patch(patch), compiled_kernels(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, second = layer(x), layer(x)
        assert not compiled_kernels.enabled()                                # given up for the process
    messages = [str(w.message) for w in caught if "compiled_kernels" in str(w.message)]
    assert len(messages) == 1 and "InvalidCxxCompiler" in messages[0] and "eager kernels run" in messages[0]
    torch.testing.assert_close(first, conv(x))
    torch.testing.assert_close(second, conv(x))
