"""The dense path's custom autograd Functions: equal to torch's convs, with gradients of two orders."""
import itertools

import pytest
import torch

from gridgnn.nn import GridConv1d, GridConv2d, GridConv3d
from gridgnn.nn._depthwise import tap_boxes
from gridgnn.testing import assert_conv_equivalent

from helpers import TORCH_CONVS

GRID_CONVS = {1: GridConv1d, 2: GridConv2d, 3: GridConv3d}
MODES = ["zeros", "circular", "reflect", "replicate"]


@pytest.mark.parametrize("nd, k, stride, padding, dilation, mode", [
    cfg for cfg in itertools.product([1, 2, 3], [1, 2, 3], [1, 2, 3], [0, 1, 2], [1, 2], MODES)
    if not (cfg[4] == 2 and cfg[0] == 3) and not (cfg[3] == 0 and cfg[5] != "zeros")])
def test_depthwise_equals_torch(nd, k, stride, padding, dilation, mode):
    conv = TORCH_CONVS[nd](4, 4, k, stride, padding, dilation, groups=4, padding_mode=mode)
    assert_conv_equivalent(conv, GRID_CONVS[nd].from_conv(conv), (7,) * nd, dtype=torch.float64)


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
    layer = make().double()
    x = torch.randn(2, layer.in_channels, *([5] * layer._ndim), dtype=torch.float64, requires_grad=True)
    params = dict(layer.named_parameters())

    def fn(x, weight, bias):
        return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x,))

    inputs = (x, params["weight"].detach().requires_grad_(), params["bias"].detach().requires_grad_())
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)
