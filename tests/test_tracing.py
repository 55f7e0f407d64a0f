"""Converted models trace and export: torch.fx, torch.jit.trace, torch.export and ONNX give the original's outputs."""
import copy

import pytest
import torch
from torch import nn

import gridgnn


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, groups=2, padding_mode="reflect", padding=1),
                         nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ConvTranspose2d(8, 4, 2, stride=2),
                         nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()


@pytest.fixture
def pair():
    model = _model()
    return model, gridgnn.convert(copy.deepcopy(model)).eval(), torch.randn(2, 3, 16, 16)


def _close(actual, expected):
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_fx_symbolic_trace(pair):
    model, twin, x = pair
    traced = torch.fx.symbolic_trace(twin)
    _close(traced(x), model(x))
    y = torch.randn(1, 3, 8, 8)                                    # another size: shapes are not baked in
    _close(traced(y), model(y))


def test_fx_symbolic_trace_of_a_conv_transpose_with_output_size():
    up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1)
    twin = gridgnn.convert(copy.deepcopy(up))

    class Up(nn.Module):
        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(x, output_size=[8, 8])

    x = torch.randn(1, 4, 4, 4)
    _close(torch.fx.symbolic_trace(Up(twin))(x), up(x, output_size=[8, 8]))


def test_jit_trace(pair):
    model, twin, x = pair
    traced = torch.jit.trace(twin, x)                            # the default trace check passes too
    _close(traced(x), model(x))


def test_torch_export(pair):
    model, twin, x = pair
    program = torch.export.export(twin, (x,))
    _close(program.module()(x), model(x))


def test_onnx_export_runs_in_onnxruntime(pair):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    model, twin, x = pair
    program = torch.onnx.export(twin, (x,), dynamo=True, verbose=False)
    session = ort.InferenceSession(program.model_proto.SerializeToString())
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    _close(torch.from_numpy(out), model(x))


def test_jit_script_is_not_supported_and_says_so(pair):
    """Documented in docs/design.md: TorchScript cannot compile the drop-ins' Python (use export or trace)."""
    _, twin, _ = pair
    with pytest.raises(torch.jit.frontend.NotSupportedError):
        torch.jit.script(twin)
