import warnings

import pytest
import torch
from torch import nn

import gridgnn as gg
from gridgnn.convert import converted_layers
from gridgnn.nn import TWINS, GridConv2d
from model_zoo import ZOO


def count_convs(model):
    """Torch layers with a grid twin (convs, transposed convs, pools) still computing through torch."""
    return sum(type(m) in TWINS for m in model.modules())


@pytest.mark.parametrize("name", sorted(ZOO))
def test_converted_zoo_models_match_in_float64(name):
    make, shape = ZOO[name]
    torch.manual_seed(0)
    model = make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = gg.convert(model)
    assert count_convs(converted) == 0 and len(converted_layers(converted)) == count_convs(model)
    assert list(converted.state_dict()) == list(model.state_dict())
    report = gg.verify(model, torch.randn(shape), strict=True)
    assert report.passed and report.num_converted == count_convs(model)
    assert report.output.rel < 1e-10 and len(report.layers) == report.num_converted
    # the original is untouched and shares nothing with the result
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not {id(p) for p in model.parameters()} & {id(p) for p in converted.parameters()}
    # in float32 too, in train mode (batch statistics) with the default tolerance
    x = torch.randn(shape)
    model.train(), converted.train()
    torch.testing.assert_close(converted(x), model(x), rtol=1e-4, atol=1e-5)


def test_checkpoints_load_both_ways_and_inplace_shares_parameters():
    make, shape = ZOO["resnext"]
    model = make().eval()
    converted = gg.convert(make()).eval()
    converted.load_state_dict(model.state_dict())
    x = torch.randn(shape)
    torch.testing.assert_close(converted(x), model(x), rtol=1e-4, atol=1e-5)
    model.load_state_dict(converted.state_dict())
    params = {id(p) for p in model.parameters()}
    same = gg.convert(model, inplace=True)
    assert same is model and {id(p) for p in same.parameters()} == params


def test_convert_does_not_touch_the_global_rng():
    model = ZOO["mobilenet_v2"][0]()
    state = torch.random.get_rng_state()
    gg.convert(model)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_bare_conv_and_hooks():
    conv = nn.Conv2d(3, 4, 3)
    seen = []
    conv.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    twin = gg.convert(conv)
    assert isinstance(twin, GridConv2d)
    twin(torch.randn(1, 3, 5, 5))
    assert seen == [torch.Size([1, 4, 3, 3])]


def test_unsupported_convs_are_named_not_skipped_silently():
    class WeightStandardizedConv(nn.Conv2d):
        def forward(self, x):
            w = (self.weight - self.weight.mean()) / self.weight.std()
            return self._conv_forward(x, w, self.bias)

    patched = nn.Conv2d(4, 4, 1)
    patched.forward = lambda x: x
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(WeightStandardizedConv(4, 4, 3)),
                          nn.LPPool2d(2, 2), patched)
    with pytest.warns(UserWarning, match="not converting 1.0: WeightStandardizedConv subclasses Conv2d and overrides its forward"):
        converted = gg.convert(model)
    assert isinstance(converted[0], GridConv2d) and type(converted[1][0]) is WeightStandardizedConv
    with pytest.raises(TypeError, match="not converting 2: LPPool2d has no grid twin; it stays a torch op"):
        gg.convert(model, unsupported="error")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gg.convert(model, unsupported="ignore")
    assert not caught
    with pytest.warns(UserWarning, match="3: its forward was replaced"):
        gg.convert(nn.Sequential(nn.Identity(), nn.Identity(), nn.Identity(), patched))
    class TaggedConv(nn.Conv2d):  # adds an attribute only: converted
        tag = "stem"

    assert isinstance(gg.convert(nn.Sequential(TaggedConv(3, 3, 1)))[0], GridConv2d)
    with pytest.raises(ValueError, match="unsupported must be"):
        gg.convert(model, unsupported="skip")
    report = gg.verify(model, torch.randn(1, 3, 8, 8))
    assert report.num_converted == 1 and len(report.skipped) == 3


def test_verify_report_and_strict_failure(monkeypatch):
    make, shape = ZOO["ghostnet"]
    model = make()
    report = gg.verify(model, torch.randn(shape))
    text = str(report)
    assert "output" in text and "layers converted" in text and report.time_converted > 0
    # a wrong graph layer is caught and named
    from gridgnn.nn import conv_nd
    real = conv_nd.conv_nodes
    monkeypatch.setattr(conv_nd, "conv_nodes", lambda x, geom, w, b, g, path: real(x, geom, w * 1.01, b, g, path))
    bad = gg.verify(model, torch.randn(shape))
    assert not bad.passed and bad.worst_layer is not None
    with pytest.raises(AssertionError, match="worst layer"):
        gg.verify(model, torch.randn(shape), strict=True)


def test_converted_model_on_every_device(device):
    make, shape = ZOO["shufflenet_v2"]
    model = make().to(device)
    converted = gg.convert(model).to(device)
    report = gg.verify(model, torch.randn(shape, device=device), device=device)
    assert report.passed and report.device.startswith(device)
    assert next(converted.parameters()).device.type == device


def test_shared_convs_stay_shared():
    conv = nn.Conv2d(3, 3, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), conv, nn.Sequential(conv))
    converted = gg.convert(model)
    assert isinstance(converted[0], GridConv2d) and converted[0] is converted[2] is converted[3][0]
    assert len(list(converted.parameters())) == 2
    x = torch.randn(1, 3, 6, 6)
    torch.testing.assert_close(converted(x), model(x))
