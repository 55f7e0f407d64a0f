import itertools

import pytest
import torch

from gridgnn.nn import GridConv1d, GridConv2d, GridConv3d
from gridgnn.testing import assert_conv_equivalent

from helpers import TORCH_CONVS

DROP_INS = {1: GridConv1d, 2: GridConv2d, 3: GridConv3d}
MODES = ["zeros", "circular", "reflect", "replicate"]
SIZES = {1: (9,), 2: (7, 6), 3: (5, 6, 5)}


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("k, s, p, d, mode", [
    cfg for cfg in itertools.product([1, 2, 3], [1, 2], [0, 1, "same", "valid"], [1, 2], MODES)
    if not (cfg[2] == "same" and cfg[1] > 1)][::3])
def test_drop_in_equals_torch(nd, k, s, p, d, mode, device):
    for groups, bias in ((1, True), (2, False), (4, True)):
        conv = TORCH_CONVS[nd](4, 8, k, s, p, d, groups, bias, mode)
        for path in ("auto", "general"):
            assert_conv_equivalent(conv, DROP_INS[nd].from_conv(conv, path=path), SIZES[nd],
                                   dtype=torch.float64, device=device)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_same_constructor_init_state_dict_and_repr_as_torch(nd):
    kwargs = dict(kernel_size=3, stride=2, padding=1, dilation=1, groups=2, bias=False, padding_mode="reflect")
    torch.manual_seed(7)
    conv = TORCH_CONVS[nd](4, 6, **kwargs)
    torch.manual_seed(7)
    twin = DROP_INS[nd](4, 6, **kwargs)
    assert torch.equal(conv.weight, twin.weight)
    assert list(conv.state_dict()) == list(twin.state_dict())
    twin.load_state_dict(conv.state_dict())  # checkpoints load both ways
    conv.load_state_dict(twin.state_dict())
    assert repr(twin) == repr(conv).replace(f"Conv{nd}d", f"GridConv{nd}d")
    plain = TORCH_CONVS[nd](3, 5, 2)
    assert repr(DROP_INS[nd].from_conv(plain)) == repr(plain).replace(f"Conv{nd}d", f"GridConv{nd}d")


def test_on_every_device(device):
    conv = torch.nn.Conv2d(8, 16, 3, padding="same", groups=8, padding_mode="replicate")
    for dtype in (torch.float32, torch.float64):
        assert_conv_equivalent(conv, input_size=(9, 10), dtype=dtype, device=device)


def test_unbatched_and_memory_format():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    twin = GridConv2d.from_conv(conv)
    x = torch.randn(3, 6, 6)
    torch.testing.assert_close(twin(x), conv(x))
    assert twin(x[None]).is_contiguous()
    cl = x[None].contiguous(memory_format=torch.channels_last)
    out = twin(cl)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, conv(cl))
    assert twin(x[None]).view(1, -1).shape == (1, 144)  # users' .view() after a conv keeps working


def test_same_padding_even_kernel_matches_torch():
    conv = torch.nn.Conv1d(2, 2, 4, padding="same", dilation=3, padding_mode="circular")
    assert_conv_equivalent(conv, input_size=12, dtype=torch.float64)


def test_errors():
    with pytest.raises(ValueError, match="stride 1"):
        GridConv2d(4, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        GridConv2d(4, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="in_channels=3 is not divisible by groups=2"):
        GridConv2d(3, 4, 3, groups=2)
    twin = GridConv2d(4, 4, 3, padding=3, padding_mode="reflect")
    with pytest.raises(ValueError, match="reflect padding \\(3, 3\\) in spatial dim 0 must be smaller"):
        twin(torch.randn(1, 4, 3, 8))
    with pytest.raises(ValueError, match="input has 5 channels"):
        GridConv2d(4, 4, 3)(torch.randn(1, 5, 8, 8))
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        GridConv2d(4, 4, 5)(torch.randn(1, 4, 3, 8))
    with pytest.raises(ValueError, match="2 spatial dims"):
        GridConv2d(4, 4, 3)(torch.randn(4, 8))
    with pytest.raises(ValueError, match="read as unbatched"):
        GridConv2d(4, 4, 3)(torch.randn(1, 4, 8))
    with pytest.raises(TypeError, match="floating point"):
        GridConv2d(4, 4, 3)(torch.ones(1, 4, 8, 8, dtype=torch.int64))
    with pytest.raises(TypeError, match="expects an nn.Conv2d"):
        GridConv2d.from_conv(torch.nn.Conv1d(2, 2, 3))
    with pytest.raises(TypeError, match="nn.Conv1d/2d/3d"):
        GridConv2d.from_conv(torch.nn.ConvTranspose2d(2, 2, 3))


@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(padding=1, groups=4), dict(stride=2)])
def test_empty_batch(kwargs):
    conv = torch.nn.Conv2d(4, 4, 3, **kwargs)
    x = torch.randn(0, 4, 6, 6, requires_grad=True)
    out = GridConv2d.from_conv(conv)(x)
    assert out.shape == conv(x).shape
    out.sum().backward()
    assert x.grad.shape == x.shape


def test_bfloat16_on_cpu():
    conv = torch.nn.Conv2d(8, 8, 3, padding=1).bfloat16()
    assert_conv_equivalent(conv, dtype=torch.bfloat16, backward=False)
