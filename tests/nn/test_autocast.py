"""torch.autocast: the layers cast as torch casts its own layers (output dtype and values), on every path."""
import copy

import pytest
import torch
from torch import nn

import gridgnn
from gridgnn.nn import GridConv, NodeLinear, twin_of
from gridgnn.testing import compare, tolerance

CASES = {
    "shifted_slices": lambda: nn.Conv2d(8, 16, 3, padding=1),
    "gathered_windows": lambda: nn.Conv2d(8, 16, 3, stride=2, padding=1),
    "grouped": lambda: nn.Conv2d(8, 16, 3, padding=1, groups=4),
    "depthwise_reflect": lambda: nn.Conv2d(8, 8, 3, padding=1, groups=8, padding_mode="reflect"),
    "pointwise": lambda: nn.Conv2d(8, 16, 1),
    "conv1d": lambda: nn.Conv1d(8, 4, 3),
    "conv3d": lambda: nn.Conv3d(8, 4, 3, padding=1),
    "transposed": lambda: nn.ConvTranspose2d(8, 4, 2, stride=2),
    "max_pool": lambda: nn.MaxPool2d(2),
    "avg_pool": lambda: nn.AvgPool2d(2),
    "adaptive_max": lambda: nn.AdaptiveMaxPool2d(3),
}


def _input(module, dtype):
    nd = 1 if "1d" in type(module).__name__ else 3 if "3d" in type(module).__name__ else 2
    return torch.randn(2, 8, *([6] * nd)).to(dtype)


def _assert_like(actual, expected, dtype):
    assert actual.dtype == expected.dtype
    error = compare(actual.double(), expected.double())
    assert error.within(tolerance(dtype)), error


@pytest.mark.parametrize("path", ["auto", "general"])
@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", list(CASES))
def test_layers_follow_autocast(name, input_dtype, path, device):
    torch.manual_seed(0)
    ref = CASES[name]().to(device)
    twin = twin_of(copy.deepcopy(ref))
    twin.path = path
    x = _input(ref, input_dtype).to(device)
    with torch.autocast(device, dtype=torch.bfloat16):
        _assert_like(twin(x), ref(x), torch.bfloat16)


def test_node_level_layers_follow_autocast():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, padding=1)
    graph = gridgnn.graph_for(conv, (6, 6))
    layer, linear = GridConv.from_conv(conv), NodeLinear(8, 16)
    x = torch.randn(2, 8, 6, 6)
    nodes = gridgnn.to_nodes(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(nodes, graph)
        raw = layer(nodes, graph.edge_index, graph.edge_type)                # a PyG-style batch
        expected = conv(x)
        out_linear = linear(nodes)
        expected_linear = torch.nn.functional.linear(nodes, linear.weight, linear.bias)
    _assert_like(gridgnn.to_image(out, (6, 6)), expected, torch.bfloat16)
    _assert_like(gridgnn.to_image(raw, (6, 6)), expected, torch.bfloat16)
    _assert_like(out_linear, expected_linear, torch.bfloat16)


def test_converted_model_trains_under_autocast():
    """Forward in bfloat16, float32 parameter gradients close to the original model's under the same autocast."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, groups=2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    twin = gridgnn.convert(copy.deepcopy(model))
    x = torch.randn(4, 3, 8, 8)
    grads = []
    for m in (twin, model):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = m(x).float().square().mean()
        loss.backward()
        grads.append([p.grad for p in m.parameters()])
    for actual, expected in zip(*grads):
        assert actual.dtype == expected.dtype == torch.float32
        _assert_like(actual, expected, torch.bfloat16)
