"""torch.compile traces the layers' dense paths without graph breaks (fullgraph=True)."""
import pytest
import torch

from gridgnn.nn import ChannelShuffle, GridConv1d, GridConv2d, GridConv3d, NodeLinear


@pytest.mark.parametrize("make", [
    lambda: GridConv2d(4, 6, 3, padding=1),
    lambda: GridConv2d(4, 4, 3, padding=1, groups=4, padding_mode="reflect"),
    lambda: GridConv2d(4, 6, 3, stride=2, padding=1, groups=2),
    lambda: GridConv2d(4, 6, 3, stride=2, padding=1),
    lambda: GridConv1d(4, 4, 2, padding="same", dilation=2, padding_mode="circular"),
    lambda: GridConv3d(4, 4, 3, padding=1, padding_mode="replicate"),
], ids=["dense", "depthwise-reflect", "strided-grouped", "strided-im2col", "1d-same", "3d-replicate"])
def test_drop_ins_compile_fullgraph_forward_and_backward(make):
    layer = make()
    x = torch.randn(2, 4, *([6] * layer._ndim), requires_grad=True)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    y = compiled(x)
    grad_c = torch.autograd.grad(y.sum(), (x, layer.weight))
    grad_e = torch.autograd.grad(layer(x).sum(), (x, layer.weight))
    torch.testing.assert_close(y, layer(x))
    for a, b in zip(grad_c, grad_e):
        torch.testing.assert_close(a, b)


def test_node_layers_compile_fullgraph():
    stack = torch.nn.Sequential(NodeLinear(6, 6, groups=3), ChannelShuffle(3), NodeLinear(6, 2))
    x = torch.randn(5, 7, 6)
    torch.testing.assert_close(torch.compile(stack, backend="aot_eager", fullgraph=True)(x), stack(x))
