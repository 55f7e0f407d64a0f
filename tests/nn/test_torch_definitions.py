"""torch's own test definitions, run against the gridgnn drop-ins.

Three sources that ship inside torch (``torch.testing._internal``, which needs ``expecttest``):

* ``common_modules.module_db``: the sample inputs of every ModuleInfo whose layer has a
  grid twin; the twin (same weights) must give torch's outputs and gradients;
* ``common_nn``'s module test dicts, run through ``NewModuleTest`` with the gridgnn class in
  place of torch's (jacobian checks, gradgrad, batched gradcheck, non-contiguous inputs,
  pickling, type conversions) -- the harness methods are those torch's own ``TestNN`` defines;
* the ``nn.functional.conv*d`` / pooling OpInfo error inputs, rebuilt as module calls: where
  torch raises, the twin raises an exception that ``except <torch's class>`` catches, at the
  same stage (constructor or forward); where torch runs, the twin runs and agrees.
"""
import copy

import pytest
import torch
from torch import nn
from torch.testing._internal.common_methods_invocations import op_db
from torch.testing._internal.common_modules import module_db
from torch.testing._internal.common_nn import NewModuleTest, NNTestCase, get_new_module_tests, module_tests
from torch.testing._internal.common_utils import freeze_rng_state

from gridgnn.nn import TWINS, twin_of
from gridgnn.testing import tolerance

TOL = tolerance(torch.float64)


def _close(actual, expected):
    torch.testing.assert_close(actual, expected, atol=TOL.atol, rtol=TOL.rtol)


# -- module_db samples ---------------------------------------------------------------------------------------

def _module_samples():
    for info in module_db:
        if info.module_cls not in TWINS:
            continue
        samples = info.module_inputs_func(info, device="cpu", dtype=torch.float64, requires_grad=True,
                                          training=True)
        for i, sample in enumerate(samples):
            if sample.constructor_input.kwargs.get("return_indices"):
                continue              # documented: max aggregation keeps no argmax (twin_of says so, tested apart)
            yield pytest.param(info, sample, id=f"{info.name}-{i}-{sample.desc or 'default'}")


@pytest.mark.parametrize("info, sample", list(_module_samples()))
def test_module_db_samples(info, sample):
    torch.manual_seed(0)
    ref = info.module_cls(*sample.constructor_input.args, **sample.constructor_input.kwargs).double()
    twin = twin_of(copy.deepcopy(ref))
    args, kwargs = sample.forward_input.args, sample.forward_input.kwargs
    inputs = [a.detach().clone().requires_grad_() for a in args]
    out_ref, out_twin = ref(*args, **kwargs), twin(*inputs, **kwargs)
    _close(out_twin, out_ref)
    assert out_twin.stride() == out_ref.stride()
    grad = torch.randn_like(out_ref)
    expected = torch.autograd.grad(out_ref, list(args) + list(ref.parameters()), grad)
    actual = torch.autograd.grad(out_twin, inputs + list(twin.parameters()), grad)
    for a, e in zip(actual, expected):
        _close(a, e)
        assert a.stride() == e.stride()


# -- common_nn through NewModuleTest ---------------------------------------------------------------------------

class _Harness(NNTestCase):
    """The methods torch's ``TestNN`` gives ``NewModuleTest`` (copied in behaviour, not in code)."""

    _do_cuda_memory_leak_check = False
    _do_cuda_non_default_stream = False

    def runTest(self):
        pass

    def _forward(self, module, input):
        with freeze_rng_state():
            return module(*input) if isinstance(input, tuple) else module(input)

    def _backward(self, module, input, output, grad_output, create_graph=False):
        output.backward(grad_output, retain_graph=True, create_graph=create_graph)
        if isinstance(input, tuple):
            return tuple(i.grad.data if i.grad is not None else None for i in input)
        return input.grad.data if input.grad is not None else None

    def _zero_grad_parameters(self, module):
        for p in module.parameters():
            if p.grad is not None:
                with torch.no_grad():
                    p.grad.zero_()
                p.grad.detach_()

    def _get_parameters(self, module):
        params = list(module.parameters())
        return params, [p.grad for p in params]


def _common_nn_tests():
    for test in module_tests + get_new_module_tests():
        torch_cls = getattr(nn, test.get("module_name", ""), None)
        if torch_cls in TWINS and "constructor" not in test:
            yield pytest.param(dict(test), id=f"{test['module_name']}_{test.get('desc', 'default')}")


@pytest.mark.parametrize("params", list(_common_nn_tests()))
def test_common_nn_new_module_test(params):
    torch_cls = getattr(nn, params.pop("module_name"))
    params.pop("decorator", None)
    test = NewModuleTest(constructor=TWINS[torch_cls], module_name=TWINS[torch_cls].__name__, **params)
    test(_Harness())
    # and the values against torch's layer, which NewModuleTest does not compare
    dtype = params.get("default_dtype", torch.float64)
    torch.manual_seed(0)
    ref = torch_cls(*params.get("constructor_args", ()), **params.get("constructor_kwargs", {})).to(dtype)
    twin = twin_of(copy.deepcopy(ref))
    x = torch.randn(params["input_size"], dtype=dtype) if "input_size" in params else params["input_fn"]().to(dtype)
    torch.testing.assert_close(twin(x), ref(x), **dict(zip(("atol", "rtol"), tolerance(dtype))))


# -- OpInfo error inputs as module calls -----------------------------------------------------------------------

def _stage(fn):
    try:
        return fn(), None
    except Exception as error:  # noqa: BLE001 - any failure is compared with torch's
        return None, error


def assert_fails_like_torch(make_ref, make_twin, run):
    """Where torch's layer raises (constructor or forward), the twin raises a catchable kind at the same stage."""
    ref, error = _stage(make_ref)
    twin, twin_error = _stage(make_twin)
    if error is not None:
        assert isinstance(twin_error, type(error)), f"torch's constructor raised {error!r}, the twin {twin_error!r}"
        return
    assert twin_error is None, f"torch's constructor accepts this, the twin raised {twin_error!r}"
    out, error = _stage(lambda: run(ref))
    out_twin, twin_error = _stage(lambda: run(twin))
    if error is not None:
        assert isinstance(twin_error, type(error)), f"torch's forward raised {error!r}, the twin {twin_error!r}"
        return
    assert twin_error is None, f"torch's forward runs, the twin raised {twin_error!r}"
    _close(out_twin, out)


def _conv_module(nd: int, transposed: bool, weight, bias, kwargs):
    cls = getattr(nn, f"ConvTranspose{nd}d" if transposed else f"Conv{nd}d")
    groups = kwargs.get("groups", 1)
    in_ch, out_ch = (weight.size(0), weight.size(1) * groups) if transposed else \
        (weight.size(1) * groups, weight.size(0))
    torch.manual_seed(0)
    module = cls(in_ch, out_ch, tuple(weight.shape[2:]), bias=bias is not None, **kwargs).to(weight.dtype)
    if module.weight.shape == weight.shape:
        with torch.no_grad():
            module.weight.copy_(weight)
    return module


def _error_inputs():
    for op in op_db:
        for nd in (1, 2, 3):
            if op.name == f"nn.functional.conv{nd}d":
                for i, error in enumerate(op.error_inputs(device="cpu")):
                    yield pytest.param(nd, error.sample_input, id=f"{op.name}-{i}")


@pytest.mark.parametrize("nd, sample", list(_error_inputs()))
def test_opinfo_conv_error_inputs_as_modules(nd, sample):
    weight, bias = sample.args[0], sample.args[1] if len(sample.args) > 1 else None
    x = sample.input
    assert_fails_like_torch(lambda: _conv_module(nd, False, weight, bias, sample.kwargs),
                            lambda: twin_of(_conv_module(nd, False, weight, bias, sample.kwargs)),
                            lambda module: module(x))


def _bad_calls():
    """The bad inputs users meet, each as (torch layer factory, input)."""
    x4 = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    return {
        "wrong_channels": (lambda: nn.Conv2d(3, 8, 3), x4),
        "wrong_rank": (lambda: nn.Conv2d(4, 8, 3), x4[0, 0]),
        "rank_5": (lambda: nn.Conv2d(4, 8, 3), x4[None]),
        "smaller_than_dilated_kernel": (lambda: nn.Conv2d(4, 8, 3, dilation=3), x4),
        "reflect_padding_too_large": (lambda: nn.Conv2d(4, 8, 3, padding=6, padding_mode="reflect"), x4),
        "circular_padding_too_large": (lambda: nn.Conv2d(4, 8, 3, padding=7, padding_mode="circular"), x4),
        "zero_stride": (lambda: nn.Conv2d(4, 8, 3, stride=0), x4),
        "negative_padding": (lambda: nn.Conv2d(4, 8, 3, padding=-1), x4),
        "zero_dilation": (lambda: nn.Conv2d(4, 8, 3, dilation=0), x4),
        "non_tensor_input": (lambda: nn.Conv2d(4, 8, 3), [[1.0]]),
        "integer_input": (lambda: nn.Conv2d(4, 8, 3), torch.ones(2, 4, 6, 6, dtype=torch.long)),
        "float32_input": (lambda: nn.Conv2d(4, 8, 3), x4.float()),
        "float_channels": (lambda: nn.Conv2d(4.0, 8, 3), x4),
        "groups_not_dividing": (lambda: nn.Conv2d(4, 6, 3, groups=4), x4),
        "zero_groups": (lambda: nn.Conv2d(4, 8, 3, groups=0), x4),
        "bad_padding_mode": (lambda: nn.Conv2d(4, 8, 3, padding_mode="mirror"), x4),
        "same_with_stride": (lambda: nn.Conv2d(4, 8, 3, stride=2, padding="same"), x4),
        "bad_padding_string": (lambda: nn.Conv2d(4, 8, 3, padding="full"), x4),
        "float_padding": (lambda: nn.Conv2d(4, 8, 3, padding=1.5), x4),
        "empty_batch": (lambda: nn.Conv2d(4, 8, 3), x4[:0]),
        "transposed_wrong_channels": (lambda: nn.ConvTranspose2d(3, 8, 3, stride=2), x4),
        "transposed_output_padding_too_large": (lambda: nn.ConvTranspose2d(4, 8, 3, stride=2, output_padding=2), x4),
        "max_pool_padding_too_large": (lambda: nn.MaxPool2d(2, padding=2), x4),
        "max_pool_window_too_large": (lambda: nn.MaxPool2d(7), x4),
        "avg_pool_zero_stride": (lambda: nn.AvgPool2d(2, stride=0), x4),
        "adaptive_zero_output": (lambda: nn.AdaptiveAvgPool2d(0), x4),
    }


@pytest.mark.parametrize("name", list(_bad_calls()))
def test_bad_inputs_fail_like_torch(name):
    make, x = _bad_calls()[name]

    def make_twin():
        torch.manual_seed(0)
        return twin_of(make().double())

    def make_ref():
        torch.manual_seed(0)
        return make().double()

    assert_fails_like_torch(make_ref, make_twin, lambda module: module(x))


def test_zero_in_channels():
    """``Conv2d(0, 6, 3)`` constructs as in torch; with no input channel every output is the bias.

    (torch's CPU kernel returns a tensor of 0 channels here; the twin returns the 6 the layer has.)
    """
    torch.manual_seed(0)
    twin = twin_of(nn.Conv2d(0, 6, 3))
    out = twin(torch.randn(2, 0, 6, 6))
    assert out.shape == (2, 6, 4, 4)
    torch.testing.assert_close(out, twin.bias.detach().view(1, 6, 1, 1).expand(2, 6, 4, 4))
