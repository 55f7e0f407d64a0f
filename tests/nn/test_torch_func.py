"""torch.func transforms, forward-mode AD and batched gradients through every execution path.

Each case is a torch layer and its gridgnn twin (``twin_of`` on a deep copy: same weights).
Every transform is applied to both and the results compared with the float64 tolerance
of :mod:`gridgnn.testing`; torch's own layer is the reference throughout.
"""
import copy

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch import nn
from torch.func import functional_call, grad, jacfwd, jacrev, jvp, vmap

from gridgnn.nn import NodeLinear, twin_of
from gridgnn.testing import tolerance

TOL = tolerance(torch.float64)

# (name, torch layer, input shape [C, *spatial]); names say which execution path the twin takes
CASES = [
    ("shifted_slices", lambda: nn.Conv2d(3, 4, 3, padding=1), (3, 5, 5)),
    ("gathered_windows", lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), (3, 6, 5)),
    ("grouped_thin", lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2), (4, 5, 4)),
    ("depthwise", lambda: nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4), (4, 5, 5)),
    ("depthwise_strided_1d", lambda: nn.Conv1d(3, 3, 5, stride=2, padding=2, groups=3), (3, 9)),
    ("reflect", lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (3, 5, 4)),
    ("circular_3d", lambda: nn.Conv3d(2, 3, 3, padding=1, padding_mode="circular"), (2, 3, 4, 3)),
    ("pointwise", lambda: nn.Conv2d(5, 3, 1), (5, 4, 4)),
    ("transposed", lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), (3, 3, 4)),
    ("transposed_grouped", lambda: nn.ConvTranspose1d(4, 6, 4, stride=2, groups=2), (4, 5)),
    ("max_pool", lambda: nn.MaxPool2d(3, 2, 1), (3, 6, 5)),
    ("avg_pool", lambda: nn.AvgPool2d(2, count_include_pad=False, padding=1), (3, 5, 5)),
    ("adaptive_avg", lambda: nn.AdaptiveAvgPool2d((2, 3)), (2, 5, 7)),
]
GENERAL = [("general_" + name, make, shape) for name, make, shape in CASES[:5]]   # the edge-list path


def _pair(make, path="auto"):
    torch.manual_seed(0)
    ref = make().double()
    twin = twin_of(copy.deepcopy(ref))
    if path != "auto":
        twin.path = path
    return ref, twin


def _close(actual, expected):
    for a, e in zip(torch.utils._pytree.tree_leaves(actual), torch.utils._pytree.tree_leaves(expected)):
        torch.testing.assert_close(a, e, atol=TOL.atol, rtol=TOL.rtol)


def _cases():
    return [pytest.param((make, shape, "auto"), id=name) for name, make, shape in CASES] + \
        [pytest.param((make, shape, "general"), id=name) for name, make, shape in GENERAL]


@pytest.fixture(params=_cases())
def case(request):
    make, shape, path = request.param
    ref, twin = _pair(make, path)
    x = torch.randn(3, *shape, dtype=torch.float64)
    return ref, twin, x


def _loss(module):
    def loss(params, x):
        return functional_call(module, params, (x[None],)).square().sum()
    return loss


def test_grad_and_per_sample_grads(case):
    ref, twin, x = case
    params_ref, params_twin = dict(ref.named_parameters()), dict(twin.named_parameters())
    _close(grad(_loss(twin), argnums=(0, 1))(params_twin, x[0]), grad(_loss(ref), argnums=(0, 1))(params_ref, x[0]))
    per_sample = vmap(grad(_loss(twin)), in_dims=(None, 0))(params_twin, x)       # per-sample gradients
    _close(per_sample, vmap(grad(_loss(ref)), in_dims=(None, 0))(params_ref, x))


def test_vmap_over_batch(case):
    ref, twin, x = case
    _close(vmap(twin)(x[:, None]), vmap(ref)(x[:, None]))


def test_jacobians(case):
    ref, twin, x = case
    _close(jacrev(lambda xi: twin(xi[None]))(x[0]), jacrev(lambda xi: ref(xi[None]))(x[0]))
    _close(jacfwd(lambda xi: twin(xi[None]))(x[0]), jacfwd(lambda xi: ref(xi[None]))(x[0]))


def test_jvp_of_input_and_weights(case):
    ref, twin, x = case
    tangent = torch.randn_like(x)
    _close(jvp(twin, (x,), (tangent,)), jvp(ref, (x,), (tangent,)))
    params_ref, params_twin = dict(ref.named_parameters()), dict(twin.named_parameters())
    if params_ref:
        tangents = {name: torch.randn_like(p) for name, p in params_ref.items()}
        _close(jvp(lambda p: functional_call(twin, p, (x,)), (params_twin,), (tangents,)),
               jvp(lambda p: functional_call(ref, p, (x,)), (params_ref,), (tangents,)))


def test_forward_ad(case):
    """``torch.autograd.forward_ad`` in eager mode runs the custom Functions' own ``jvp``."""
    ref, twin, x = case
    tangent = torch.randn_like(x)
    outs = []
    for module in (twin, ref):
        with fwAD.dual_level():
            out = module(fwAD.make_dual(x, tangent))
            outs.append(tuple(t.clone() for t in fwAD.unpack_dual(out)[:2]))
    _close(outs[0], outs[1])


def test_gradcheck_batched_and_forward(case):
    ref, twin, x = case
    inputs = (x[:2].clone().requires_grad_(),)
    assert torch.autograd.gradcheck(twin, inputs, check_batched_grad=True, check_forward_ad=True)
    weight = getattr(twin, "weight", None)
    if weight is not None:                        # the weight's gradient and tangent through the same kernels
        def of_weight(w):
            return functional_call(twin, {"weight": w}, (x[:2],))
        assert torch.autograd.gradcheck(of_weight, (weight.detach().clone().requires_grad_(),),
                                        check_batched_grad=True, check_forward_ad=True)


@pytest.mark.parametrize("shape, groups, dtype", [((2, 6, 8), 1, torch.float64), ((2, 6, 8), 2, torch.float64),
                                                  ((64 * 64 * 4, 64), 1, torch.float32)])
def test_node_linear_transforms(shape, groups, dtype):
    """NodeLinear under grad, vmap, jvp, forward-mode AD and gradcheck.

    Grouped, and in float32 one size large enough for oneDNN's GEMM on CPU.
    """
    torch.manual_seed(0)
    c_in = shape[-1]
    layer = NodeLinear(c_in, 12 if groups > 1 else c_in, groups=groups).to(dtype)
    x = torch.randn(*shape, dtype=dtype)
    tol = tolerance(dtype)

    def close(actual, expected):
        for a, e in zip(torch.utils._pytree.tree_leaves(actual), torch.utils._pytree.tree_leaves(expected)):
            torch.testing.assert_close(a, e, atol=tol.atol * 10, rtol=tol.rtol * 10)   # sums of 64 products

    def reference(params, x):                    # a grouped linear map written out, per group
        w = params["weight"].view(groups, -1, c_in // groups)
        y = torch.einsum("...gi,goi->...go", x.unflatten(-1, (groups, -1)), w).flatten(-2)
        return y + params["bias"]

    params = dict(layer.named_parameters())
    close(grad(lambda p: functional_call(layer, p, (x,)).mean())(params),
          grad(lambda p: reference(p, x).mean())(params))
    tangent = torch.randn_like(x)
    expected = jvp(lambda x: reference(params, x), (x,), (tangent,))
    close(jvp(layer, (x,), (tangent,)), expected)
    with fwAD.dual_level():
        close(fwAD.unpack_dual(layer(fwAD.make_dual(x, tangent)))[:2], expected)
    if x.dim() == 3:
        close(vmap(layer)(x), reference(params, x))
        assert torch.autograd.gradcheck(layer, (x.clone().requires_grad_(),), check_batched_grad=True,
                                        check_forward_ad=True)
