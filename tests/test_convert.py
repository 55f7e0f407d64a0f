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
    with pytest.warns(UserWarning,
                      match="not converting 1.0: WeightStandardizedConv subclasses Conv2d and overrides its forward"):
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["mobilenet_v2", "resnext", "convnext"])
def test_converted_models_replay_as_cuda_graphs(name):
    """Captured once and replayed (how GPU users cut launch costs): no host sync inside, the original's values."""
    make, shape = ZOO[name]
    model = make().cuda().eval()
    converted = gg.convert(model).cuda().eval()
    static_x = torch.randn(shape, device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with gg.testing.no_tf32():
        with torch.cuda.stream(stream), torch.no_grad():               # warm-up: plans, caches, cuBLAS handles
            for _ in range(3):
                converted(static_x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.no_grad():
            static_out = converted(static_x)
    for _ in range(2):
        x = torch.randn(shape, device="cuda")
        static_x.copy_(x)
        graph.replay()
        with torch.no_grad(), gg.testing.no_tf32():
            want = model(x)
        error = gg.testing.compare(static_out, want)
        assert error.within(gg.testing.tolerance(torch.float32)), error


def test_shared_convs_stay_shared():
    conv = nn.Conv2d(3, 3, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), conv, nn.Sequential(conv))
    converted = gg.convert(model)
    assert isinstance(converted[0], GridConv2d) and converted[0] is converted[2] is converted[3][0]
    assert len(list(converted.parameters())) == 2
    x = torch.randn(1, 3, 6, 6)
    torch.testing.assert_close(converted(x), model(x))


@pytest.mark.parametrize("name", ["unet", "autoencoder_1d", "net_3d"])
def test_encoder_decoder_and_3d_models_convert_whole_and_train_alike(name):
    """Convs, transposed convs and pools all become twins; a few SGD steps stay equal to the original's."""
    make, shape = ZOO[name]
    torch.manual_seed(0)
    model = make().double()
    converted = gg.convert(model)
    assert count_convs(converted) == 0, "a conv, transposed conv or pool stayed a torch op"
    kinds = {type(m).__name__.rstrip("123d") for m in converted.modules() if type(m) in TWINS.values()}
    assert kinds >= {"GridConv", "GridConvTranspose"} or kinds >= {"GridConv", "GridMaxPool"}
    opts = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for m in (model, converted)]
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        losses = []
        for net, opt in zip((model, converted), opts):
            opt.zero_grad()
            loss = net(x).square().mean()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-10, atol=1e-12)
    for (name_a, a), (name_b, b) in zip(model.named_parameters(), converted.named_parameters()):
        assert name_a == name_b
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-11)


def test_convert_kinds_and_unsupported_pools():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.ConvTranspose2d(2, 1, 2, 2),
                          nn.MaxPool2d(2, return_indices=False), nn.AvgPool2d(2))
    only_convs = gg.convert(model, kinds=["conv"])
    assert [type(m).__name__ for m in only_convs] == ["GridConv2d", "MaxPool2d", "ConvTranspose2d", "MaxPool2d",
                                                      "AvgPool2d"]
    assert count_convs(gg.convert(model, kinds=("conv", "conv_transpose", "pool"))) == 0
    with pytest.raises(ValueError, match="kinds must name layer kinds among"):
        gg.convert(model, kinds=["convs"])
    with pytest.warns(UserWarning, match="not converting 0: MaxPool2d returns indices"):
        kept = gg.convert(nn.Sequential(nn.MaxPool2d(2, return_indices=True)))
    assert type(kept[0]) is nn.MaxPool2d
    with pytest.warns(UserWarning, match="LazyConv2d is lazy and not initialised yet; run one forward pass"):
        gg.convert(nn.Sequential(nn.LazyConv2d(4, 3)))
    parametrized = nn.utils.parametrizations.weight_norm(nn.Conv2d(2, 2, 3))
    with pytest.warns(UserWarning, match="is parametrized \\(weight\\); remove the parametrization"):
        gg.convert(nn.Sequential(parametrized))


def test_twins_are_instances_of_the_torch_layers_they_replace():
    model = gg.convert(nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ConvTranspose2d(4, 2, 2),
                                     nn.AdaptiveAvgPool2d(1)))
    assert isinstance(model[0], nn.Conv2d) and isinstance(model[2], nn.ConvTranspose2d)
    assert isinstance(model[3], nn.AdaptiveAvgPool2d)
    fused = torch.nn.utils.fusion.fuse_conv_bn_eval(model[0].eval(), model[1].eval())
    assert type(fused).__name__ == "GridConv2d"
    x = torch.randn(1, 2, 6, 6)
    torch.testing.assert_close(fused(x), model[1](model[0](x)))


class _FunctionalNet(torch.nn.Module):
    """A conv as a module, then a functional conv and a functional pool in forward."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.weight = torch.nn.Parameter(torch.randn(4, 4, 3, 3))

    def forward(self, x):
        return torch.nn.functional.max_pool2d(torch.nn.functional.conv2d(self.conv(x), self.weight), 2)


def test_functional_calls_are_found_and_reported_by_verify():
    from gridgnn.convert import functional_layers
    assert functional_layers(_FunctionalNet()) == ["F.conv2d in the model", "F.max_pool2d in the model"]
    assert functional_layers(gg.convert(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)))) == []
    with pytest.warns(UserWarning, match="2 functional conv/pool call"):
        report = gg.verify(_FunctionalNet(), torch.randn(1, 3, 8, 8))
    assert report.passed and report.num_converted == 1
    assert "F.conv2d in the model (a functional call in forward)" in report.skipped
    assert "not converted: " in str(report)


def test_functional_layers_says_none_for_models_it_cannot_trace():
    from gridgnn.convert import functional_layers

    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    assert functional_layers(DataDependent()) is None
