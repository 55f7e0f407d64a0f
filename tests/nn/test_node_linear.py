import itertools

import pytest
import torch

from gridgnn.nn import NodeLinear
from gridgnn.testing import assert_conv_equivalent


@pytest.mark.parametrize("cin, cout, groups, bias", [
    (c_in, c_out, g, b) for (c_in, c_out, g), b in itertools.product(
        [(4, 6, 1), (4, 6, 2), (6, 6, 3), (4, 4, 4), (4, 8, 4), (1, 5, 1)], [True, False])])
def test_equals_1x1_conv(cin, cout, groups, bias, device):
    conv = torch.nn.Conv2d(cin, cout, 1, groups=groups, bias=bias)
    for dtype in (torch.float32, torch.float64):
        assert_conv_equivalent(conv, NodeLinear.from_conv(conv), (5, 6), dtype=dtype, device=device)


@pytest.mark.parametrize("nd", [1, 3])
def test_equals_1x1_conv_other_dims(nd):
    conv = [None, torch.nn.Conv1d, None, torch.nn.Conv3d][nd](6, 4, 1, groups=2)
    assert_conv_equivalent(conv, NodeLinear.from_conv(conv), dtype=torch.float64)


def test_is_one_gemm_on_the_node_matrix():
    layer = NodeLinear(5, 3).double()
    x = torch.randn(7, 4, 5, dtype=torch.float64)
    expected = (x.reshape(-1, 5) @ layer.weight.T + layer.bias).reshape(7, 4, 3)
    torch.testing.assert_close(layer(x), expected)
    assert layer(torch.randn(5, dtype=torch.float64)).shape == (3,)  # any leading dims, even none


def test_same_init_as_conv():
    torch.manual_seed(3)
    conv = torch.nn.Conv2d(6, 4, 1, groups=2)
    torch.manual_seed(3)
    layer = NodeLinear(6, 4, groups=2)
    assert torch.equal(layer.weight, conv.weight.flatten(1)) and torch.equal(layer.bias, conv.bias)


def test_gradcheck():
    layer = NodeLinear(4, 6, groups=2).double()
    x = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    w = layer.weight.detach().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda w: torch.func.functional_call(layer, {"weight": w, "bias": layer.bias}, x), (w,))


def test_no_messages_between_nodes():
    """Changing one node changes only that node's output."""
    layer = NodeLinear(3, 3)
    x = torch.randn(10, 3)
    x2 = x.clone()
    x2[4] += 1
    changed = (layer(x2) - layer(x)).abs().sum(-1) > 0
    assert changed.tolist() == [i == 4 for i in range(10)]


def test_factory_kwargs_and_repr(device):
    layer = NodeLinear(4, 8, bias=False, groups=2, device=device, dtype=torch.float64)
    assert layer.weight.device.type == device and layer.weight.dtype == torch.float64
    assert repr(layer) == "NodeLinear(4, 8, groups=2, bias=False)"
    assert repr(NodeLinear(3, 5)) == "NodeLinear(3, 5)"


def test_errors():
    with pytest.raises(ValueError, match="in_channels=5 is not divisible by groups=2"):
        NodeLinear(5, 4, groups=2)
    layer = NodeLinear(4, 6)
    with pytest.raises(ValueError, match="3 channels on its last axis but the layer expects in_channels=4"):
        layer(torch.randn(2, 3))
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="dtype torch.float64 but the layer's weight has torch.float32"):
        layer(torch.ones(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="needs a 1x1 conv"):
        NodeLinear.from_conv(torch.nn.Conv2d(4, 6, 3))
    with pytest.raises(ValueError, match="stride 1 and no padding"):
        NodeLinear.from_conv(torch.nn.Conv2d(4, 6, 1, stride=2))
    with pytest.raises(TypeError, match="nn.Conv1d/2d/3d"):
        NodeLinear.from_conv(torch.nn.Linear(4, 6))
