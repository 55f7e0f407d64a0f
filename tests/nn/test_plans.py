"""Conv drop-in calls by cached plans: the shell's outputs and gradients bit for bit, torch's values and strides."""
import itertools

import pytest
import torch

import gridgnn
from gridgnn.errors import GridTypeError, GridValueError
from gridgnn.nn import GridConv1d, GridConv2d, GridConv3d, _native, _plans, compiled_kernels
from gridgnn.nn.conv_nd import _GridConvNd
from gridgnn.testing import compare, tolerance

from helpers import TORCH_CONVS

TWINS = {1: GridConv1d, 2: GridConv2d, 3: GridConv3d}
needs_native = pytest.mark.skipif(not _native.available(), reason="the native kernels are not built")
OFF_THE_CPU = ["meta"] + (["cuda"] if torch.cuda.is_available() else [])          # meta takes CUDA's routes


@pytest.fixture
def shell_calls(monkeypatch):
    """Counts the calls that run the image shell (the plans' fallback)."""
    calls = []
    shell = _GridConvNd._forward_image

    def counted(self, input, **options):
        calls.append(type(self).__name__)
        return shell(self, input, **options)

    monkeypatch.setattr(_GridConvNd, "_forward_image", counted)
    return calls


def _pair(nd, c_in, c_out, kernel, groups, stride=1, padding=None, dilation=1, bias=True, dtype=torch.float32):
    padding = kernel // 2 if padding is None else padding
    conv = TORCH_CONVS[nd](c_in, c_out, kernel, stride, padding, dilation, groups, bias, dtype=dtype)
    return conv, TWINS[nd].from_conv(conv)


def _image(nd, batch, channels, size, channels_last, dtype=torch.float32):
    x = torch.randn(batch, channels, *([size] * nd), dtype=dtype)
    if channels_last:                             # channels innermost in memory (1-D: a transposed [B, L, C])
        x = x.movedim(1, -1).contiguous().movedim(-1, 1)
    return x


# (nd, c_in, c_out, kernel, groups, stride, dilation): every planned kernel, 1-3 spatial dims
PLANNED = [
    (2, 24, 24, 3, 24, 1, 1),      # depthwise, channel planes (NCHW) or channels innermost
    (2, 24, 24, 5, 24, 2, 1),      # depthwise 5x5 stride 2
    (2, 16, 16, 7, 16, 1, 1),      # depthwise 7x7
    (1, 8, 8, 3, 8, 1, 2),         # depthwise 1-D, dilated
    (3, 8, 8, 3, 8, 1, 1),         # depthwise 3-D
    (2, 32, 32, 3, 8, 1, 1),       # 4 channels a group
    (2, 32, 32, 3, 2, 2, 1),       # 16 channels a group, stride 2
    (3, 16, 16, 3, 2, 1, 1),       # 8 channels a group, 3-D
    (2, 8, 40, 3, 1, 1, 1),        # dense (more than 32 output channels)
    (2, 8, 40, 3, 1, 2, 2),        # dense, strided and dilated
    (2, 12, 20, 1, 1, 1, 1),       # 1x1
    (2, 12, 20, 1, 4, 1, 1),       # grouped 1x1
    (1, 6, 10, 1, 1, 1, 1),        # 1x1, 1-D
    (3, 6, 10, 1, 2, 1, 1),        # grouped 1x1, 3-D
]


# (channels_last, batch, bias, dtype) of the calls: batches of 3 with a bias
CALLS = [combo for combo in itertools.product([False, True], [1, 3], [True, False], [torch.float32, torch.float64])
         if combo[2] or combo[1] == 1]


def _config_id(config):
    return "nd{}-{}to{}-k{}-g{}-s{}-d{}".format(*config)


def _call_of(config, channels_last, batch, bias, dtype):
    """The torch conv, its twin and an input image for one configuration and call."""
    nd, c_in, c_out, kernel, groups, stride, dilation = config
    conv, layer = _pair(nd, c_in, c_out, kernel, groups, stride, dilation=dilation, bias=bias, dtype=dtype)
    return conv, layer, _image(nd, batch, c_in, 9, channels_last, dtype)


@needs_native
@pytest.mark.parametrize("config", PLANNED, ids=_config_id)
@pytest.mark.parametrize("channels_last, batch, bias, dtype", CALLS)
def test_planned_calls_are_the_shell_bit_for_bit(config, channels_last, batch, bias, dtype, shell_calls):
    nd, _, _, kernel, groups, _, _ = config
    conv, layer, x = _call_of(config, channels_last, batch, bias, dtype)
    with torch.no_grad():
        shell = layer._forward_image(x)
        expected = conv(x)
        shell_calls.clear()
        first, again = layer(x), layer(x)                                        # making the plan, then using it
    other_dense = groups == 1 and kernel > 1 and not (_native.DENSE_ISA and dtype == torch.float32)
    channels_innermost_1d = nd == 1 and channels_last             # torch's 1-D output is contiguous: a copy
    assert shell_calls == ([type(layer).__name__] * 2 if other_dense or channels_innermost_1d else [])
    for out in (first, again):
        assert torch.equal(out, shell) and out.stride() == shell.stride()
        error = compare(out.double(), expected.double())
        assert error.within(tolerance(dtype)), error


@needs_native
@pytest.mark.parametrize("make", [
    lambda: torch.no_grad(),
    lambda: torch.inference_mode(),
    lambda: torch.enable_grad(),                                  # with parameters that require no grad
], ids=["no_grad", "inference_mode", "frozen"])
def test_every_way_of_not_building_a_graph_is_planned(make, shell_calls):
    conv, layer = _pair(2, 16, 16, 3, 16)
    layer.requires_grad_(False)
    x = torch.randn(2, 16, 7, 7)
    with make():
        out = layer(x)
    assert shell_calls == [] and out.grad_fn is None
    torch.testing.assert_close(out, conv(x).detach())


@needs_native
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_calls_the_plans_do_not_fit_take_the_shell():
    """Autocast, torch.func, tracing, switches, the general path, other padding modes, unbatched input."""
    conv, layer = _pair(2, 16, 16, 3, 16)
    x = torch.randn(2, 16, 7, 7)
    with torch.no_grad():
        assert _plans.planned_call(layer, x) is not None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert _plans.planned_call(layer, x) is None and layer(x).dtype == torch.bfloat16
        seen = []
        torch.func.vmap(lambda image: seen.append(_plans.planned_call(layer, image[None])) or image)(x)
        with _native.disabled():
            assert _plans.planned_call(layer, x) is None
        with torch.autograd.forward_ad.dual_level():                             # forward-mode tangents
            tangent = torch.randn_like(x)
            dual = torch.autograd.forward_ad.make_dual(x, tangent)
            assert _plans.planned_call(layer, dual) is None
            got = torch.autograd.forward_ad.unpack_dual(layer(dual)).tangent
        torch.testing.assert_close(got, conv(tangent) - conv.bias.view(-1, 1, 1))
        with compiled_kernels():
            assert _plans.planned_call(layer, x) is None
        with torch.device("meta"):                                               # a torch-function mode
            assert _plans.planned_call(layer, x) is None
        assert _plans.planned_call(layer, x[0]) is None                      # unbatched
        assert _plans.planned_call(layer, x.double()) is None                # not the weight's dtype
        torch.testing.assert_close(torch.jit.trace(layer, x)(x), conv(x))
        general = GridConv2d.from_conv(conv, path="general")
        reflect = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16, padding_mode="reflect")
        for other in (general, GridConv2d.from_conv(reflect)):
            assert _plans.planned_call(other, x) is None
        torch.testing.assert_close(general(x), conv(x))
        torch.testing.assert_close(GridConv2d.from_conv(reflect)(x), reflect(x))
    assert seen == [None]


def test_a_subclass_with_its_own_compute_keeps_it():
    class Doubled(GridConv2d):
        def _run_nodes(self, nodes, size, weight, bias):
            out, out_size = super()._run_nodes(nodes, size, weight, bias)
            return 2 * out, out_size

    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(Doubled.from_conv(conv)(x), 2 * conv(x))


@pytest.mark.parametrize("device", ["cpu"] + OFF_THE_CPU)
@pytest.mark.parametrize("kernel, groups", [(3, 8), (1, 1), (3, 1)], ids=["depthwise", "1x1", "dense"])
@pytest.mark.parametrize("bias", [True, False])
def test_bad_input_keeps_the_shells_messages(device, kernel, groups, bias):
    layer = GridConv2d(8, 8, kernel, padding=kernel // 2, groups=groups, bias=bias).to(device)
    with torch.no_grad():
        layer(torch.randn(1, 8, 5, 5, device=device))                          # a plan for this shape
        with pytest.raises(GridValueError, match="input has 4 channels"):
            layer(torch.randn(1, 4, 5, 5, device=device))
        with pytest.raises(GridValueError, match="expects an input"):
            layer(torch.randn(5, 5, device=device))
        for dtype in (torch.float64, torch.float16):
            with pytest.raises(GridTypeError, match=f"input has dtype {dtype} but the layer's weight has"):
                layer(torch.randn(1, 8, 5, 5, dtype=dtype, device=device))


@needs_native
def test_plans_follow_the_layer_and_its_parameters(shell_calls):
    """In-place weight edits, a changed geometry, new parameters and thread counts: torch's output every time."""
    conv, layer = _pair(2, 16, 16, 3, 4)
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), conv(x))
        for module in (conv, layer):
            module.weight.mul_(-2)
            module.bias.add_(1)
        torch.testing.assert_close(layer(x), conv(x))
        for module in (conv, layer):                                             # another geometry, same shapes
            module.padding, module.dilation = (2, 2), (2, 2)
        torch.testing.assert_close(layer(x), conv(x))
        for module in (conv, layer):
            module.stride = [1, 1]                                                   # a list: unhashable
        torch.testing.assert_close(layer(x), conv(x))
        for module in (conv, layer):
            module.stride, module.bias = (1, 1), None
        torch.testing.assert_close(layer(x), conv(x))
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            torch.testing.assert_close(layer(x), conv(x))
        finally:
            torch.set_num_threads(threads)
    assert shell_calls == ["GridConv2d"]                                         # the call with a list


@needs_native
def test_a_channels_last_weight_gives_torchs_output_format():
    """An NCHW input with a channels-last weight: torch returns channels-last, which the kernel does not write."""
    conv = torch.nn.Conv2d(8, 40, 3, padding=1).to(memory_format=torch.channels_last)
    layer = GridConv2d.from_conv(conv).to(memory_format=torch.channels_last)
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        for _ in range(2):
            out, expected = layer(x), conv(x)
            assert out.stride() == expected.stride()
            torch.testing.assert_close(out, expected)


@needs_native
def test_planned_outputs_are_fresh_and_carry_inf_and_nan():
    conv, layer = _pair(2, 8, 8, 3, 8)
    x = torch.randn(1, 8, 6, 6)
    x[0, 1, 2, 3], x[0, 5, 0, 0] = float("inf"), float("nan")
    with torch.no_grad():
        first = layer(x)
        torch.testing.assert_close(first, conv(x), equal_nan=True)
        first.zero_()                                                            # edited by the caller
        second = layer(x)
    assert second.data_ptr() != first.data_ptr()
    torch.testing.assert_close(second, conv(x), equal_nan=True)


@needs_native
def test_the_plan_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(_plans, "_PLANS", {})
    monkeypatch.setattr(_plans, "MAX_PLANS", 3)
    layer = GridConv2d(4, 4, 3, padding=1, groups=4)
    with torch.no_grad():
        for size in range(4, 10):
            layer(torch.randn(1, 4, size, size))
            assert 1 <= len(_plans._PLANS) <= 3


@needs_native
def test_a_converted_model_in_eval_runs_on_plans(shell_calls):
    """MobileNet-style blocks at batch 1: every conv planned, the model's output torch's."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 48, 3, 2, 1), torch.nn.ReLU6(),
        torch.nn.Conv2d(48, 48, 3, 1, 1, groups=48), torch.nn.BatchNorm2d(48), torch.nn.ReLU6(),
        torch.nn.Conv2d(48, 24, 1), torch.nn.Conv2d(24, 24, 3, 1, 1, groups=6)).eval()
    twin = gridgnn.convert(model)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x))
    if _native.DENSE_ISA:
        assert shell_calls == []


# the native kernels' configurations of PLANNED (all but the 1x1s): the ones training calls plan
TRAINED = [config for config in PLANNED if config[3] > 1]


def _training_call(call, x, layer, grad):
    """``call(x)``'s output and the gradients of ``<output, grad>`` for ``x``, the weight and the bias."""
    x = x.detach().requires_grad_()
    out = call(x)
    params = [layer.weight] + ([layer.bias] if layer.bias is not None else [])
    return (out, *torch.autograd.grad(out, [x, *params], grad))


@needs_native
@pytest.mark.parametrize("config", TRAINED, ids=_config_id)
@pytest.mark.parametrize("channels_last, batch, bias, dtype", CALLS)
def test_training_calls_are_the_shell_bit_for_bit(config, channels_last, batch, bias, dtype, shell_calls):
    """Outputs and input/weight gradients equal to the shell's, with its strides; all of them torch's values."""
    nd, groups = config[0], config[4]
    conv, layer, x = _call_of(config, channels_last, batch, bias, dtype)
    out = conv(x)
    grad = torch.randn(*reversed(out.shape), dtype=dtype).permute(*reversed(range(out.dim())))    # neither layout
    shell = _training_call(layer._forward_image, x, layer, grad)
    expected = _training_call(conv, x, conv, grad)
    shell_calls.clear()
    planned = [_training_call(layer, x, layer, grad) for _ in range(2)]         # making the plan, then using it
    other_dense = groups == 1 and not (_native.DENSE_ISA and dtype == torch.float32)
    channels_innermost_1d = nd == 1 and channels_last             # torch's 1-D output is contiguous: a copy
    shell_runs = other_dense or channels_innermost_1d
    assert shell_calls == ([type(layer).__name__] * 2 if shell_runs else [])
    for got in planned:
        assert (type(got[0].grad_fn).__name__ == "PlannedConvBackward") != shell_runs
        for value, want, reference in zip(got, shell, expected):
            assert value.stride() == want.stride()
            if value.dim() > 1:                                 # the bias gradient sums in another order
                assert torch.equal(value, want)
            error = compare(value.double(), reference.double())
            assert error.within(tolerance(dtype)), error


@needs_native
def test_training_plans_leave_the_other_kernels_to_the_shell(shell_calls):
    """1x1s build their graphs through the shell; forward-mode AD too."""
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    for config in [(2, 8, 16, 1, 1, 1, 1), (2, 8, 16, 1, 2, 1, 1)]:
        conv, layer = _pair(*config[:5], stride=config[5], dilation=config[6])
        assert _plans.planned_call(layer, x) is None
        torch.testing.assert_close(layer(x), conv(x))
    conv, layer = _pair(2, 8, 8, 3, 8)
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(x, torch.ones_like(x))
        assert _plans.planned_call(layer, dual) is None
    assert _plans.planned_call(layer, x) is not None


@needs_native
@pytest.mark.parametrize("groups, c_out, dtype", [(16, 16, torch.float64), (4, 16, torch.float64),
                                                  (1, 40, torch.float32)], ids=["depthwise", "4-a-group", "dense"])
def test_training_plans_differentiate_twice_and_batch_gradients(groups, c_out, dtype):
    """``create_graph=True`` and ``is_grads_batched=True`` backwards: torch's conv's values; gradcheck in float64."""
    conv, layer = _pair(2, 16, c_out, 3, groups, dtype=dtype)
    x = torch.randn(2, 16, 5, 5, dtype=dtype, requires_grad=True)
    grads = []
    for module in (conv, layer):
        out = module(x)
        grad_x, = torch.autograd.grad(out.square().sum(), x, create_graph=True)
        grads.append(torch.autograd.grad(grad_x.square().sum(), (x, module.weight)))
        batched = torch.randn(3, *out.shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
        grads.append(torch.autograd.grad(module(x), (x, module.weight), batched, is_grads_batched=True))
    planned = groups > 1 or _native.DENSE_ISA                   # (the dense kernel: float32, AVX-512 or AVX2)
    assert (type(layer(x).grad_fn).__name__ == "PlannedConvBackward") == planned
    for got, want in zip(grads[2:], grads[:2]):
        for g, w in zip(got, want):
            error = compare(g.double(), w.double())
            assert error.within(tolerance(dtype)), error
    if dtype != torch.float64:                                     # (the dense kernel is float32 only)
        return
    small = x[:1, :, :4, :4].detach().requires_grad_()
    assert torch.autograd.gradcheck(layer, (small,), check_batched_grad=True)
    assert torch.autograd.gradgradcheck(layer, (small,))


@needs_native
def test_training_plans_keep_autograds_rules():
    """A constant input, frozen weights, the bias alone, retain_graph, inf/NaN, an input edited in place later."""
    conv, layer = _pair(2, 8, 8, 3, 8)
    x = torch.randn(1, 8, 6, 6)
    x[0, 1, 2, 3], x[0, 5, 0, 0] = float("inf"), float("nan")
    out = layer(x)                                                # the input needs no gradient: the weights do
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (layer.weight, layer.bias), grad, retain_graph=True)
    again = torch.autograd.grad(out, (layer.weight, layer.bias), grad)
    want = torch.autograd.grad(conv(x), (conv.weight, conv.bias), grad)
    for g, a, w in zip(got, again, want):
        torch.testing.assert_close(g, a, rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(g, w, equal_nan=True)
    layer.weight.requires_grad_(False)                            # the bias alone
    torch.testing.assert_close(torch.autograd.grad(layer(x), layer.bias, grad)[0], grad.sum((0, 2, 3)))
    layer.requires_grad_(False)
    y = torch.randn(1, 8, 6, 6, requires_grad=True)
    out = layer(y)
    torch.testing.assert_close(torch.autograd.grad(out, y, grad)[0], torch.autograd.grad(conv(y), y, grad)[0])
    leaf = y.detach().requires_grad_()
    edited = leaf * 1
    out = layer(edited)
    with torch.no_grad():
        edited.mul_(2)                                            # the saved input changed: autograd refuses
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


@needs_native
def test_training_plans_give_torchs_gradient_strides_for_odd_batch_strides():
    """A batch of one whose batch stride is not torch's: the input gradient has torch's strides.

    The NCHW one is planned; torch counts the channels-last one as contiguous, so the shell runs it.
    """
    conv, layer = _pair(2, 8, 8, 3, 8)
    for channels_last in (False, True):
        x = _image(2, 1, 8, 6, channels_last)
        odd = x.as_strided(x.shape, (7,) + x.stride()[1:]).detach().requires_grad_()
        grads = [torch.autograd.grad(module(odd).sum(), odd)[0] for module in (conv, layer)]
        planned = type(layer(odd).grad_fn).__name__ == "PlannedConvBackward"
        assert planned != channels_last
        assert grads[1].stride() == grads[0].stride()
        torch.testing.assert_close(grads[1], grads[0])


# 1x1 (grouped too), dense strided, depthwise dilated, grouped and 3-D layers
OFF_THE_CPU_CONFIGS = [(2, 12, 20, 1, 1, 1, 1), (2, 12, 20, 1, 4, 1, 1), (2, 12, 20, 3, 1, 2, 1),
                       (2, 12, 12, 3, 12, 1, 2), (2, 16, 16, 3, 4, 1, 1), (3, 4, 6, 3, 2, 1, 1)]


@pytest.mark.parametrize("device", OFF_THE_CPU)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("config", OFF_THE_CPU_CONFIGS, ids=_config_id)
def test_off_the_cpu_inference_calls_run_plans(device, channels_last, config, shell_calls):
    """A GPU pays per op dispatched: inference calls skip the shell there, with its outputs' strides.

    (The ``meta`` device takes the paths CUDA takes, without values.)
    """
    nd, c_in, c_out, kernel, groups, stride, dilation = config
    conv, layer = _pair(nd, c_in, c_out, kernel, groups, stride, dilation=dilation)
    conv, layer = conv.to(device), layer.to(device)
    x = _image(nd, 3, c_in, 9, channels_last).to(device)
    with torch.no_grad():
        shell = layer._forward_image(x)
        shell_calls.clear()
        first, again = layer(x), layer(x)                                        # making the plan, then using it
    assert shell_calls == []
    for out in (first, again):
        assert (out.shape, out.stride(), out.device) == (shell.shape, shell.stride(), shell.device)
        if device != "meta":
            torch.testing.assert_close(out, conv(x))


@pytest.mark.parametrize("device", OFF_THE_CPU)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("config", OFF_THE_CPU_CONFIGS, ids=_config_id)
def test_off_the_cpu_training_calls_run_plans_with_the_shells_gradients(device, channels_last, config, shell_calls):
    """Training calls off the CPU skip the shell's checks too.

    Outputs and gradients are the shell's, strides included, and torch's conv's values.
    """
    nd, c_in, c_out, kernel, groups, stride, dilation = config
    conv, layer = _pair(nd, c_in, c_out, kernel, groups, stride, dilation=dilation)
    conv, layer = conv.to(device), layer.to(device)
    x = _image(nd, 3, c_in, 9, channels_last).to(device).requires_grad_()
    shell = layer._forward_image(x)
    grad = torch.randn_like(shell).transpose(-1, -2).contiguous().transpose(-1, -2)  # neither NCHW nor channels-last
    shell_grads = torch.autograd.grad(shell, (x, layer.weight, layer.bias), grad)
    expected = conv(x)
    torch_grads = torch.autograd.grad(expected, (x, conv.weight, conv.bias), grad)
    shell_calls.clear()
    for _ in range(2):                                                           # making the plan, then using it
        out = layer(x)
        grads = torch.autograd.grad(out, (x, layer.weight, layer.bias), grad)
        for got, want, torchs in zip((out, *grads), (shell, *shell_grads), (expected, *torch_grads)):
            assert (got.shape, got.stride()) == (want.shape, want.stride())
            if device != "meta":
                assert torch.equal(got, want)
                error = compare(got.double(), torchs.double())
                assert error.within(tolerance(torch.float32)), error
    assert shell_calls == []


@needs_native
@pytest.mark.parametrize("device", OFF_THE_CPU)
def test_a_plan_made_on_the_cpu_is_not_run_on_another_device(device, shell_calls):
    """Plans are kept per device: the same layer and input shape on another device makes its own."""
    conv, layer = _pair(2, 16, 16, 3, 16)
    x = torch.randn(2, 16, 7, 7)
    _plans._PLANS.clear()
    with torch.no_grad():
        layer(x), layer(x)                                                       # the CPU's native-kernel plan
        assert len(_plans._PLANS) == 1
        out = layer.to(device)(x.to(device))
    assert len(_plans._PLANS) == 2 and shell_calls == []
    assert out.device.type == device and out.shape == (2, 16, 7, 7)
    if device != "meta":
        torch.testing.assert_close(out, conv.to(device)(x.to(device)))


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_autocast_on_the_inputs_device_keeps_the_shell(device, shell_calls):
    conv, layer = _pair(2, 12, 20, 1, 1)
    conv, layer = conv.to(device), layer.to(device)
    x = torch.randn(2, 12, 5, 5, device=device)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        out = layer(x)
        want = conv(x)
    assert shell_calls == ["GridConv2d"] and out.dtype == want.dtype == torch.bfloat16
