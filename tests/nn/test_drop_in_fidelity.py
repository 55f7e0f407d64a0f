"""What a drop-in must share with torch's layer beyond its values: layouts, dtypes, reprs, edge cases."""
import copy
import itertools

import pytest
import torch
from torch import nn

import gridgnn
from gridgnn.nn import GridConv1d, GridConv2d, twin_of
from gridgnn.testing import tolerance

CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}
LAYERS = {"conv2d": (nn.Conv2d, 2), "conv_transpose2d": (nn.ConvTranspose2d, 2), "conv3d": (nn.Conv3d, 3),
          "conv1d": (nn.Conv1d, 1)}


@pytest.mark.parametrize("layer, groups, kernel, x_channels_last, w_channels_last, spatial", [
    pytest.param(name, *rest, id=f"{name}-g{rest[0]}-k{rest[1]}-x{'CL' if rest[2] else 'C'}-w{'CL' if rest[3] else 'C'}"
                 f"-s{rest[4]}")
    for name, *rest in itertools.product(LAYERS, (1, 4), (1, 3), (False, True), (False, True), (1, 5))])
def test_output_and_gradients_in_torchs_memory_format(layer, groups, kernel, x_channels_last, w_channels_last,
                                                      spatial):
    """Outputs, input and weight gradients have exactly the strides torch's layer gives them.

    1x1 kernels and 1x1 images, whose strides fit both formats, included.
    """
    torch_cls, nd = LAYERS[layer]
    torch_strides, twin_strides = _strides_of_torch_and_twin(
        lambda: torch_cls(8, 8, kernel, padding=kernel // 2, groups=groups), (2, 8, *([spatial] * nd)),
        nd > 1 and x_channels_last, nd > 1 and w_channels_last)
    assert twin_strides == torch_strides


def _strides_of_torch_and_twin(make, shape, x_channels_last, w_channels_last):
    """Strides of the output, input gradient and weight gradient of ``make()`` and of its twin."""
    strides = []
    for make_twin in (False, True):
        torch.manual_seed(0)
        module = twin_of(make()) if make_twin else make()
        memory_format = CHANNELS_LAST[len(shape) - 2] if len(shape) > 3 else None
        if w_channels_last:
            module = module.to(memory_format=memory_format)
        x = torch.randn(shape)
        if x_channels_last:
            x = x.contiguous(memory_format=memory_format)
        x.requires_grad_()
        out = module(x)
        grad_x, grad_w = torch.autograd.grad(out.sum(), (x, module.weight))
        strides.append((out.stride(), grad_x.stride(), grad_w.stride()))
    return strides


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("x_channels_last, w_channels_last", itertools.product((False, True), repeat=2))
@pytest.mark.parametrize("nd", [2, 3])
def test_padding_modes_keep_torchs_memory_format(nd, mode, x_channels_last, w_channels_last):
    """The twins give the strides torch gives, with every padding mode.

    Torch pads circularly into a contiguous copy: its output follows the weight's format and the input
    gradient comes back contiguous. The other modes keep the input's format.
    """
    torch_strides, twin_strides = _strides_of_torch_and_twin(
        lambda: (nn.Conv2d, nn.Conv3d)[nd - 2](8, 8, 3, padding=1, padding_mode=mode), (2, 8, *(5,) * nd),
        x_channels_last, w_channels_last)
    assert twin_strides == torch_strides


@pytest.mark.parametrize("make, path", [
    (lambda: nn.Conv2d(3, 6, 3), "auto"), (lambda: nn.Conv2d(3, 6, 3, stride=2), "auto"),
    (lambda: nn.Conv2d(3, 3, 3, padding=1, groups=3), "auto"), (lambda: nn.Conv2d(3, 6, 3, groups=3), "auto"),
    (lambda: nn.Conv2d(3, 6, 3, padding=1, padding_mode="reflect"), "auto"),
    (lambda: nn.Conv2d(3, 6, 3, padding=1), "general"), (lambda: nn.ConvTranspose2d(3, 6, 3, stride=2), "auto"),
], ids=["shifted_slices", "gathered", "depthwise", "grouped", "reflect", "general", "transposed"])
def test_complex_values_and_gradients(make, path):
    """Complex convs, as torch runs them: outputs and conjugate (Wirtinger) gradients of input, weight, bias."""
    torch.manual_seed(0)
    ref = make().to(torch.complex128)
    twin = twin_of(copy.deepcopy(ref))
    twin.path = path
    x = torch.randn(2, 3, 7, 7, dtype=torch.complex128, requires_grad=True)
    tol = tolerance(torch.float64)
    outs = [module(x) for module in (twin, ref)]
    torch.testing.assert_close(outs[0], outs[1], atol=tol.atol, rtol=tol.rtol)
    grads = [torch.autograd.grad(out.abs().sum(), (x, m.weight, m.bias)) for out, m in zip(outs, (twin, ref))]
    for actual, expected in zip(*grads):
        torch.testing.assert_close(actual, expected, atol=tol.atol * 10, rtol=tol.rtol)


def test_from_conv_refuses_to_drop_an_imaginary_part():
    conv = nn.Conv2d(3, 4, 3)
    conv.bias = nn.Parameter(torch.randn(4, dtype=torch.complex64))
    with pytest.raises(TypeError, match="imaginary part"):
        GridConv2d.from_conv(conv)


@pytest.mark.parametrize("path", ["auto", "general"])
def test_empty_batch_on_every_path(path):
    torch.manual_seed(0)
    layer = GridConv1d(3, 4, 3, path=path)
    x = torch.randn(0, 3, 8, requires_grad=True)
    out = layer(x)
    assert out.shape == nn.Conv1d(3, 4, 3)(x).shape == (0, 4, 6)
    out.sum().backward()
    assert x.grad.shape == x.shape and torch.equal(layer.weight.grad, torch.zeros_like(layer.weight))


@pytest.mark.parametrize("kwargs", [dict(padding="same"), dict(padding="valid"), dict(padding=(1, 2), stride=2),
                                    dict(padding_mode="circular", padding=1, dilation=2, groups=2, bias=False)])
def test_repr_matches_torch(kwargs):
    assert repr(GridConv2d(4, 6, 3, **kwargs)) == "Grid" + repr(nn.Conv2d(4, 6, 3, **kwargs))


def test_numpy_int_arguments_as_torch_accepts_them():
    np = pytest.importorskip("numpy")
    layer = GridConv2d(np.int64(4), np.int64(6), np.int64(3), padding=np.int64(1), groups=np.int64(2))
    ref = nn.Conv2d(np.int64(4), np.int64(6), np.int64(3), padding=np.int64(1), groups=np.int64(2))
    layer.load_state_dict(ref.state_dict())
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(layer(x), ref(x))


def test_error_classes_are_caught_the_torch_way():
    """The documented rule of :mod:`gridgnn.errors`: value errors are RuntimeErrors too, type errors as well."""
    assert issubclass(gridgnn.GridValueError, ValueError) and issubclass(gridgnn.GridValueError, RuntimeError)
    assert issubclass(gridgnn.GridTypeError, TypeError) and issubclass(gridgnn.GridTypeError, RuntimeError)
    with pytest.raises(RuntimeError, match="in_channels=4"):
        GridConv2d(4, 8, 3)(torch.randn(1, 3, 8, 8))
    with pytest.raises(RuntimeError, match="dtype"):
        GridConv2d(4, 8, 3)(torch.randn(1, 4, 8, 8, dtype=torch.float64))
