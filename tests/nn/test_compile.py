"""torch.compile: the layers trace without graph breaks (fullgraph=True) and run under the default backend."""
import warnings

import pytest
import torch

from gridgnn.nn import (
    ChannelShuffle,
    GridAdaptiveAvgPool1d,
    GridAdaptiveMaxPool2d,
    GridConv1d,
    GridConv2d,
    GridConv3d,
    GridMaxPool2d,
    NodeLinear,
)


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


@pytest.mark.parametrize("make", [
    lambda: GridAdaptiveMaxPool2d((3, 2)),                            # windows of 7 by 3 overlap: edges
    lambda: GridAdaptiveAvgPool1d(3, path="general"),
    lambda: GridMaxPool2d(3, 2, 1, ceil_mode=True, path="general"),
], ids=["adaptive_max", "adaptive_avg_general", "max_general"])
def test_pools_on_edges_compile_fullgraph_without_warnings(make):
    """The pools that reduce over edges build them inside the graph: no cache traced (dynamo warns of one)."""
    torch.compiler.reset()             # (the shells compiled by earlier tests count against dynamo's recompile limit)
    pool = make()
    x = torch.randn(2, 3, *([7] * pool._ndim), requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = torch.compile(pool, backend="aot_eager", fullgraph=True)(x)
        grad = torch.autograd.grad(y.sum(), x)[0]
    assert not [str(w.message) for w in caught]
    torch.testing.assert_close(y, pool(x))
    torch.testing.assert_close(grad, torch.autograd.grad(pool(x).sum(), x)[0])


def test_node_layers_compile_fullgraph():
    stack = torch.nn.Sequential(NodeLinear(6, 6, groups=3), ChannelShuffle(3), NodeLinear(6, 2))
    x = torch.randn(5, 7, 6)
    torch.testing.assert_close(torch.compile(stack, backend="aot_eager", fullgraph=True)(x), stack(x))


# -- the default backend (inductor): what users get from a plain torch.compile(model) ---------------------

def _tiny_cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.nn.ConvTranspose2d(8, 4, 2, stride=2),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))


@pytest.mark.parametrize("make", [
    lambda: NodeLinear(256, 256),                                    # oneDNN's GEMM in eager: F.linear compiled
    lambda: GridConv2d(32, 32, 3, padding=1),                        # shifted slices in eager
    lambda: GridConv2d(16, 16, 3, stride=2, padding=1, groups=4),    # gathered windows, thin groups
], ids=["node_linear_onednn", "dense", "strided_grouped"])
def test_default_backend_forward_and_backward(make, device):
    torch.manual_seed(0)
    layer = make().to(device)
    x = (torch.randn(4, 64, 256) if isinstance(layer, NodeLinear) else torch.randn(2, layer.in_channels, 8, 8))
    x = x.to(device).requires_grad_()
    y = torch.compile(layer)(x)
    grads = torch.autograd.grad(y.square().sum(), (x, layer.weight))
    expected = layer(x)
    expected_grads = torch.autograd.grad(expected.square().sum(), (x, layer.weight))
    torch.testing.assert_close(y, expected, atol=1e-4, rtol=1e-4)
    for a, b in zip(grads, expected_grads):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-4)


def test_converted_model_trains_under_default_compile_like_eager():
    """A converted CNN compiled with inductor trains three SGD steps exactly as it does in eager mode.

    Dense, strided grouped and depthwise convs, a transposed conv and an adaptive pool.
    """
    import copy

    import gridgnn
    torch.manual_seed(0)
    eager = gridgnn.convert(_tiny_cnn())
    compiled_model = copy.deepcopy(eager)
    step = torch.compile(compiled_model)
    x, target = torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4,))
    losses = []
    for model, run in ((eager, eager), (compiled_model, step)):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        history = []
        for _ in range(3):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(run(x), target)
            loss.backward()
            optimizer.step()
            history.append(loss.item())
        losses.append(history)
    torch.testing.assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), atol=1e-4, rtol=1e-4)
    for a, b in zip(compiled_model.parameters(), eager.parameters()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
