import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import gridgnn as gg
from gridgnn.nn import GridConv, GridConvTranspose1d, GridConvTranspose2d, GridConvTranspose3d, _dense, _native
from gridgnn.testing import assert_conv_equivalent

from helpers import conv_adjacency, graph_adjacency

TORCH = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
TWINS = {1: GridConvTranspose1d, 2: GridConvTranspose2d, 3: GridConvTranspose3d}
SIZES = {1: (7,), 2: (5, 4), 3: (3, 4, 3)}


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("k, s, p, op, d", [
    cfg for cfg in itertools.product([1, 2, 3], [1, 2, 3], [0, 1, 2], [0, 1, 2], [1, 2])
    if cfg[3] < max(cfg[1], cfg[4])][::4])
def test_drop_in_equals_torch_forward_and_backward(nd, k, s, p, op, d, device):
    if min((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n in SIZES[nd]) < 1:
        pytest.skip("torch rejects this geometry (empty output)")
    for groups, bias in ((1, True), (2, False), (4, True)):
        conv = TORCH[nd](4, 4 if groups == 4 else 6, k, s, p, op, groups, bias, d)
        for path in ("auto", "general"):
            assert_conv_equivalent(conv, TWINS[nd].from_conv(conv, path=path), SIZES[nd], dtype=torch.float64,
                                   device=device)


@given(nd=st.integers(1, 3), k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 3),
       groups=st.sampled_from([1, 2]), bias=st.booleans(), data=st.data())
def test_random_configurations(nd, k, s, p, d, groups, bias, data):
    op = data.draw(st.integers(0, max(s, d) - 1))
    size = tuple(data.draw(st.integers(1, 5)) for _ in range(nd))
    conv = TORCH[nd](2, 4, k, s, p, op, groups, bias, d)
    out = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n in size]
    if min(out) < 1:
        with pytest.raises(ValueError, match="which is not positive"):
            TWINS[nd].from_conv(conv)(torch.randn(1, 2, *size))
        return
    assert_conv_equivalent(conv, input_size=size, dtype=torch.float64)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_output_size_argument_and_torch_errors(nd):
    conv = TORCH[nd](3, 2, 3, stride=3, padding=1)
    twin = TWINS[nd].from_conv(conv)
    x = torch.randn(2, 3, *SIZES[nd])
    for extra in range(3):
        target = [(n - 1) * 3 - 2 + 3 + extra for n in SIZES[nd]]
        torch.testing.assert_close(twin(x, output_size=target), conv(x, output_size=target))
        assert twin(x, output_size=[2, 3] + target).shape[2:] == tuple(target)
    too_big = [(n - 1) * 3 + 1 + 3 for n in SIZES[nd]]
    with pytest.raises(ValueError, match="requested an output size"):
        twin(x, output_size=too_big)


def test_gradcheck_float64():
    twin = GridConvTranspose2d(2, 4, 3, stride=2, padding=1, output_padding=1, groups=2).double()
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: torch.func.functional_call(
        twin, {"weight": w, "bias": b}, (x,)), (x, twin.weight, twin.bias))
    assert torch.autograd.gradgradcheck(lambda x, w: torch.func.functional_call(
        twin, {"weight": w, "bias": twin.bias}, (x,)), (x, twin.weight))


def test_same_constructor_init_state_dict_repr_and_isinstance_as_torch():
    kwargs = dict(kernel_size=3, stride=2, padding=1, output_padding=1, groups=2, bias=False, dilation=1)
    torch.manual_seed(3)
    conv = nn.ConvTranspose2d(4, 6, **kwargs)
    torch.manual_seed(3)
    twin = GridConvTranspose2d(4, 6, **kwargs)
    assert torch.equal(conv.weight, twin.weight) and isinstance(twin, nn.ConvTranspose2d)
    assert list(conv.state_dict()) == list(twin.state_dict())
    assert repr(twin) == repr(conv).replace("ConvTranspose2d", "GridConvTranspose2d")
    assert "path='general'" in repr(GridConvTranspose2d(2, 2, 3, path="general"))


def test_unbatched_channels_last_and_cuda(device):
    conv = nn.ConvTranspose2d(3, 4, 3, stride=2).to(device)
    twin = GridConvTranspose2d.from_conv(conv)
    x = torch.randn(3, 5, 6, device=device)
    torch.testing.assert_close(twin(x), conv(x))
    cl = x[None].contiguous(memory_format=torch.channels_last)
    assert twin(cl).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(twin(cl), conv(cl))


@pytest.mark.parametrize("kwargs", [dict(stride=2, padding=1, output_padding=1), dict(stride=3, dilation=2),
                                    dict(stride=1, padding=2, dilation=2)])
def test_transposed_graph_is_the_adjoint_of_torchs_conv_transpose(kwargs):
    """Per offset, the reversed grid graph's adjacency equals d ConvTranspose(x) / dx with a one-hot kernel."""
    size = (4, 3)
    convt = nn.ConvTranspose2d(1, 1, 3, bias=False, **kwargs).double()
    g = gg.graph_for(convt, size)
    assert g.transposed and g.in_size == size and g.transpose().transpose().edge_index.equal(g.edge_index)
    jac = []
    for t in range(9):
        with torch.no_grad():
            convt.weight.zero_()
            convt.weight.view(-1)[t] = 1.0
        j = torch.autograd.functional.jacobian(lambda x: convt(x[None, None]).flatten(),
                                               torch.zeros(size, dtype=torch.float64))
        jac.append(j.reshape(j.shape[0], -1))
    expected = torch.stack(jac)                                       # [K, N_out, N_in]
    adj = graph_adjacency(g.edge_index, g.edge_type, 9, g.num_dst_nodes, g.num_src_nodes)
    assert adj.shape == expected.shape and torch.equal(adj, expected)
    # and it is the conv's graph reversed: the transpose of the conv's per-offset adjacency
    conv_kwargs = {k: v for k, v in kwargs.items() if k != "output_padding"}
    conv_adj = conv_adjacency(dict(kernel_size=3, **conv_kwargs), g.out_size)
    forward = graph_adjacency(g.transpose().edge_index, g.edge_type, 9, g.num_src_nodes, g.num_dst_nodes)
    if "output_padding" not in kwargs:
        assert torch.equal(forward, conv_adj)


def test_grid_conv_on_the_transposed_graph_is_the_node_level_form():
    convt = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2).double()
    layer = GridConv.from_conv(convt)
    assert_conv_equivalent(convt, layer, (5, 4), dtype=torch.float64)
    g = gg.graph_for(convt, (5, 4))
    x = torch.randn(2, 4, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(gg.to_image(layer(gg.to_nodes(x), g), g.out_size), convt(x))
    masked = g.mask(torch.rand(g.num_src_nodes) > 0.5)
    assert masked.transposed and "transposed" in repr(masked)
    dense = GridConv.from_conv(convt, path="dense")(gg.to_nodes(x), g)
    torch.testing.assert_close(gg.to_image(dense, g.out_size), convt(x))
    with pytest.raises(ValueError, match="got a masked one"):
        GridConv.from_conv(convt, path="dense")(gg.to_nodes(x), masked)


def test_errors():
    with pytest.raises(ValueError, match="only padding_mode='zeros'"):
        GridConvTranspose2d(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="in_channels=3 is not divisible by groups=2"):
        GridConvTranspose2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="takes no padding strings|no padding strings"):
        GridConvTranspose2d(2, 2, 3, padding="same")
    with pytest.raises(ValueError, match="output_padding=\\(2, 2\\) must be smaller than either stride"):
        GridConvTranspose2d(2, 2, 3, stride=2, output_padding=2)(torch.randn(1, 2, 4, 4))
    with pytest.raises(ValueError, match="input has 3 channels"):
        GridConvTranspose2d(2, 2, 3)(torch.randn(1, 3, 4, 4))
    with pytest.raises(TypeError, match="expects an nn.ConvTranspose1d/2d/3d, got Conv2d"):
        GridConvTranspose2d.from_conv(nn.Conv2d(2, 2, 3))


NATIVE = pytest.mark.skipif(not _native.DENSE_ISA or not _native.available(),
                            reason="needs the native dense kernel (an AVX2 or AVX-512 CPU and the built library)")

#: (nd, kernel, stride, padding, output_padding) the phases run; the last has phases no tap reaches (the bias alone)
PHASE_CONFIGS = [(1, 3, 2, 1, 1), (1, 5, 3, 2, 0), (2, 3, 2, 1, 1), (2, 4, 2, 1, 0), (2, 7, 3, 2, 2), (2, 5, 2, 2, 1),
                 (2, 3, 1, 1, 0), (3, 3, 2, 1, 1), (3, 4, 2, 0, 0), (2, (1, 5), (2, 1), (0, 2), (1, 0))]
CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}


@pytest.fixture
def phase_calls(monkeypatch):
    """The calls of the native phases (:func:`~gridgnn.nn._dense.native_conv_transpose`), counted."""
    calls = []
    phases = _dense.native_conv_transpose
    monkeypatch.setattr(_dense, "native_conv_transpose", lambda *a, **kw: calls.append(1) or phases(*a, **kw))
    return calls


@NATIVE
@pytest.mark.parametrize("nd, k, s, p, op, channels_last", [
    (*cfg, last) for cfg in PHASE_CONFIGS for last in (False, True) if cfg[0] > 1 or not last], ids=str)
def test_native_phases_equal_torch_in_float32(nd, k, s, p, op, channels_last, phase_calls, monkeypatch):
    """Ungrouped, in float32: each phase of targets is a stride-1 conv on the native kernel, in both layouts.

    Forward, input, weight and bias gradients against torch's transposed conv; the phases ran (counted),
    as the native kernel's strided conv in the backward.
    """
    monkeypatch.setattr(_dense, "PHASES_MIN_SOURCES", 1)                 # (small grids, for the test's speed)
    torch.manual_seed(0)
    reference = TORCH[nd](40, 36, k, s, p, op)
    twin = TWINS[nd].from_conv(reference)
    x = torch.randn(2, 40, *({1: (13,), 2: (7, 6), 3: (4, 3, 5)}[nd]))
    layout = CHANNELS_LAST[nd] if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=layout)
    x_twin, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = twin(x_twin), reference(x_ref)
    grad = torch.randn_like(expected)
    grads = torch.autograd.grad(out, [x_twin, twin.weight, twin.bias], grad)
    expected_grads = torch.autograd.grad(expected, [x_ref, reference.weight, reference.bias], grad)
    tol = gg.testing.TOLERANCES[torch.float32]
    for a, b in zip((out, *grads), (expected, *expected_grads)):
        torch.testing.assert_close(a, b, rtol=tol.rtol, atol=tol.atol * (1 + b.abs().max().item()))
    assert phase_calls and out.is_contiguous(memory_format=layout)


@NATIVE
@pytest.mark.parametrize("k, s, p", [(3, 2, 1), (5, 2, 2), (7, 2, 3), (4, 3, 1)])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_strided_convs_send_the_input_gradient_back_by_phases(k, s, p, channels_last, phase_calls, monkeypatch):
    """A strided conv's input gradient on the native kernel is its transposed conv, phase by phase."""
    monkeypatch.setattr(_dense, "PHASES_MIN_SOURCES", 1)                 # (small grids, for the test's speed)
    torch.manual_seed(0)
    reference = nn.Conv2d(24, 40, k, s, p)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 24, 15, 14).contiguous(memory_format=layout)
    x_twin, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad = torch.randn_like(reference(x))
    got = torch.autograd.grad(gg.nn.GridConv2d.from_conv(reference)(x_twin), x_twin, grad)[0]
    expected = torch.autograd.grad(reference(x_ref), x_ref, grad)[0]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * (1 + expected.abs().max().item()))
    assert phase_calls and got.is_contiguous(memory_format=layout)


@NATIVE
@pytest.mark.parametrize("kwargs", [dict(kernel_size=2, stride=2), dict(kernel_size=3, stride=3),
                                    dict(kernel_size=3, stride=2, dilation=2), dict(kernel_size=3, stride=2, groups=2),
                                    dict(out_channels=3, kernel_size=3, stride=2), dict(kernel_size=3, stride=2)],
                         ids=["tap_a_phase", "3x3_stride_3", "dilated", "grouped", "rgb", "small_grid"])
def test_transposed_convs_the_phases_do_not_pay_for_keep_the_scatter(kwargs, phase_calls, monkeypatch):
    """One tap a phase, dilation, groups, few target channels and small grids keep the GEMM and scatter (exact)."""
    if kwargs != dict(kernel_size=3, stride=2):                 # (the others: excluded whatever the grid's size)
        monkeypatch.setattr(_dense, "PHASES_MIN_SOURCES", 1)
    reference = nn.ConvTranspose2d(**{"in_channels": 32, "out_channels": 32, **kwargs})
    assert_conv_equivalent(reference, input_size=(6, 5))
    assert not phase_calls


@NATIVE
def test_large_grids_take_the_phases_by_default(phase_calls):
    """From :data:`~gridgnn.nn._dense.PHASES_MIN_SOURCES` source nodes an image (here 32 x 32) the phases run."""
    assert_conv_equivalent(nn.ConvTranspose2d(32, 24, 4, 2, 1), input_size=(32, 32), batch_size=1)
    assert phase_calls
