"""The native dense kernel (convs with ``groups = 1``): torch's values and gradients, and where it runs.

It runs only on AVX-512 and AVX2 CPUs (:data:`gridgnn.nn._native.DENSE_ISA`; each has its own tiles); the
library's generic build computes the same sums anywhere, so these tests switch it on on every x86 host to check it.
"""
import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from gridgnn.nn import GridConv, GridConv1d, GridConv2d, GridConv3d, _dense, _native
from gridgnn.testing import compare, tolerance

from helpers import TORCH_CONVS

GRID_CONVS = {1: GridConv1d, 2: GridConv2d, 3: GridConv3d}
CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}


@pytest.fixture
def dense_calls(monkeypatch, shell_only):
    """The native dense kernel switched on (as on AVX-512 and AVX2 CPUs), its calls counted (all through the shell)."""
    assert _native.available(), "the native kernels were not built by the install"
    monkeypatch.setattr(_native, "DENSE_ISA", True)
    calls = []
    original = _native.dense_forward

    def spy(x, weight, *args, **kwargs):
        calls.append((*weight.shape[:2], kwargs.get("transposed", False)))     # (C_out, C_in, input gradient)
        return original(x, weight, *args, **kwargs)
    monkeypatch.setattr(_native, "dense_forward", spy)
    return calls


def _assert_close(got, want):
    error = compare(got, want)
    assert error.within(tolerance(want.dtype)), error


def _run(module, x, grad, create_graph=False):
    """Output and first-order gradients (input, weight, bias) of ``module`` on a copy of ``x``."""
    x = x.clone().requires_grad_()
    y = module(x)
    grads = torch.autograd.grad(y, (x, module.weight, module.bias), grad, create_graph=create_graph)
    return y, grads


def _assert_twin_equals_torch(conv, x):
    """Forward, input/weight/bias gradients and the output's strides of the twin equal torch's."""
    layer = GRID_CONVS[x.dim() - 2].from_conv(conv)
    grad = torch.randn_like(conv(x))
    (y_ref, grads_ref), (y, grads) = _run(conv, x, grad), _run(layer, x, grad)
    assert y.stride() == y_ref.stride()
    assert [g.stride() for g in grads] == [g.stride() for g in grads_ref]
    for got, want in zip((y, *grads), (y_ref, *grads_ref)):
        _assert_close(got, want)


@pytest.mark.parametrize("nd, c_in, c_out, k, padding, dilation, mode, layout", [
    cfg for cfg in itertools.product([1, 2, 3], [16, 48], [40, 80], [2, 3, 5], [0, "same"], [1, 2],
                                     ["zeros", "reflect", "circular"], ["nchw", "channels_last"])
    if not (cfg[0] == 1 and cfg[-1] == "channels_last") and not (cfg[4] == 0 and cfg[6] != "zeros")
    and not (cfg[0] == 3 and cfg[3] == 5)])
def test_dense_kernel_equals_torch(nd, c_in, c_out, k, padding, dilation, mode, layout, dense_calls):
    """Stride-1 convs on 1-3 grid axes, every padding mode, both layouts, one or two 64-channel output blocks.

    Forward and backward run the kernel: the output, then the input gradient (the flipped, transposed conv of
    the output gradient, reading the forward's weight in place).
    """
    conv = TORCH_CONVS[nd](c_in, c_out, k, 1, padding, dilation, padding_mode=mode)
    x = torch.randn(2, c_in, *{1: (25,), 2: (9, 25), 3: (6, 6, 22)}[nd])         # output rows of 16 nodes or more
    if layout == "channels_last":
        x = x.contiguous(memory_format=CHANNELS_LAST[nd])
    _assert_twin_equals_torch(conv, x)
    assert dense_calls == [(c_out, c_in, False), (c_out, c_in, True)]


@given(nd=st.integers(1, 3), c_in=st.sampled_from([3, 16, 32, 64]), c_out=st.sampled_from([40, 96, 144]),
       batch=st.integers(2, 3), k=st.integers(1, 4), dilation=st.integers(1, 2), padding=st.integers(0, 3),
       extra=st.lists(st.integers(0, 9), min_size=3, max_size=3), last=st.booleans())
def test_dense_kernel_random_configurations(nd, c_in, c_out, batch, k, dilation, padding, extra, last):
    """Random geometries: rows of 16 nodes or more, any count of 6-node tiles and 64-channel output blocks.

    (Batches of 2 or more: for one image of 1x1xN nodes torch's 3-D conv answers channels-last input in NCDHW.)
    """
    _native.DENSE_ISA, was = True, _native.DENSE_ISA           # (hypothesis runs no function-scoped fixture)
    try:
        span = (k - 1) * dilation + 1
        size = tuple(max(1, span - 2 * padding) + e for e in extra[:nd - 1]) + (span - 2 * padding + 15 + extra[-1],)
        conv = TORCH_CONVS[nd](c_in, c_out, k, 1, padding, dilation)
        x = torch.randn(batch, c_in, *size)
        if last and nd > 1:
            x = x.contiguous(memory_format=CHANNELS_LAST[nd])
        _assert_twin_equals_torch(conv, x)
    finally:
        _native.DENSE_ISA = was


def test_message_passing_layer_on_the_grid_graph_runs_it(dense_calls):
    """``GridConv`` on a complete grid's graph takes the same dense path."""
    import gridgnn as gg

    conv = torch.nn.Conv2d(32, 48, 3, padding=1)
    graph = gg.graph_for(conv, (6, 20))
    x = torch.randn(2, 32, 6, 20)
    y = gg.to_image(GridConv.from_conv(conv)(gg.to_nodes(x), graph), graph.out_size)
    _assert_close(y, conv(x))
    assert dense_calls == [(48, 32, False)]


@pytest.mark.parametrize("nd, c_in, c_out, k, stride, padding, mode, layout", [
    cfg for cfg in itertools.product([1, 2, 3], [3, 16], [40, 80], [2, 3], [2, 3], [0, 1], ["zeros", "reflect"],
                                     ["nchw", "channels_last"])
    if not (cfg[0] == 1 and cfg[-1] == "channels_last") and not (cfg[5] == 0 and cfg[6] != "zeros")])
def test_strided_convs_and_any_channel_count(nd, c_in, c_out, k, stride, padding, mode, layout, dense_calls,
                                             monkeypatch):
    """Strided convs, channel counts that are not multiples of 16 (e.g. an RGB stem), a partial 64-channel block.

    The forward runs the kernel; the input gradient is the transposed conv: on the kernel, phase by phase,
    where it has more kernel offsets than phases and 16 target channels or more, else back along the
    reversed grid graph (one GEMM and box scatters); the weight gradient contracts the output gradient
    with the gathered windows.
    """
    monkeypatch.setattr(_dense, "PHASES_MIN_SOURCES", 1)                 # (small grids, for the test's speed)
    conv = TORCH_CONVS[nd](c_in, c_out, k, stride, padding, padding_mode=mode)
    x = torch.randn(2, c_in, *{1: (13,), 2: (7, 12), 3: (5, 6, 7)}[nd])
    if layout == "channels_last":
        x = x.contiguous(memory_format=CHANNELS_LAST[nd])
    _assert_twin_equals_torch(conv, x)
    phases = c_in >= 16 and k > stride                                  # (k ** nd offsets, stride ** nd phases)
    assert dense_calls[0] == (c_out, c_in, False) and bool(dense_calls[1:]) == phases
    assert all(call == (c_out, c_in, True) for call in dense_calls[1:])                 # [C_out, C_in, *taps]


@pytest.mark.parametrize("c_in, c_out, stride, size, layout", [
    cfg for cfg in itertools.product([65, 144], [40, 80], [1, 2], [(5, 13), (64, 64)], ["nchw", "channels_last"])
    if cfg[3] == (5, 13) or cfg[:3] == (65, 80, 1)])
def test_input_channels_in_spans_and_work_items(c_in, c_out, stride, size, layout, dense_calls):
    """More than 64 input channels (spans of 64, the last one partial), the sums going out and back between them.

    At 64x64 (2 x 4096 output nodes) every thread runs several work items of up to 3072 nodes.
    """
    conv = torch.nn.Conv2d(c_in, c_out, 3, stride, 1)
    x = torch.randn(2, c_in, *size)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    _assert_twin_equals_torch(conv, x)
    assert dense_calls[0] == (c_out, c_in, False)


@pytest.mark.parametrize("c_out, groups, dtype", [(48, 2, torch.float32), (48, 1, torch.float64),
                                                  (32, 1, torch.float32)])
def test_other_convs_keep_the_torch_paths(c_out, groups, dtype, dense_calls, monkeypatch):
    """Grouped convs, float64 and, on AVX-512, 32 or fewer output channels run the GEMM paths.

    (An AVX-512 tile's 64 channels would be mostly padding.)
    """
    monkeypatch.setattr(_dense, "NATIVE_DENSE_MIN_OUT", 32)                    # (AVX-512's; AVX2's is 0)
    conv = torch.nn.Conv2d(32, c_out, 3, 1, 1, groups=groups).to(dtype)
    _assert_twin_equals_torch(conv, torch.randn(2, 32, 6, 20, dtype=dtype))
    assert dense_calls == []


@pytest.mark.parametrize("c_out", [1, 8, 16, 20, 32])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_narrow_outputs_fill_part_of_a_block(c_out, layout, dense_calls, monkeypatch):
    """Below AVX-512's threshold of output channels the kernel's sums are torch's too.

    (AVX2 tiles compute only the 16-channel quarters that hold some: here the first, partial or whole.)
    """
    monkeypatch.setattr(_dense, "NATIVE_DENSE_MIN_OUT", 0)
    conv = torch.nn.Conv2d(24, c_out, 3, 1, 1)
    x = torch.randn(2, 24, 7, 19)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    _assert_twin_equals_torch(conv, x)
    assert dense_calls[0] == (c_out, 24, False)


def test_off_avx512_or_switched_off_the_gemm_path_runs(monkeypatch):
    conv = torch.nn.Conv2d(32, 32, 3, padding=1)
    x = torch.randn(2, 32, 5, 20)
    calls = []
    monkeypatch.setattr(_native, "dense_forward", lambda *args: calls.append(1))
    monkeypatch.setattr(_native, "DENSE_ISA", False)
    _assert_twin_equals_torch(conv, x)
    monkeypatch.setattr(_native, "DENSE_ISA", True)
    with _native.disabled():
        _assert_twin_equals_torch(conv, x)
    assert calls == []


def test_double_backward_and_batched_gradients_recompute_in_torch_ops(dense_calls):
    """``create_graph=True`` and ``is_grads_batched`` differentiate the plain-ops conv: torch's second order."""
    conv = torch.nn.Conv2d(16, 48, 3, padding=1, padding_mode="reflect")
    layer = GridConv2d.from_conv(conv)
    x = torch.randn(2, 16, 5, 18)
    grad = torch.randn(2, 48, 5, 18)
    results = []
    for module in (conv, layer):
        xi = x.clone().requires_grad_()
        _, grads = _run(module, xi, grad, create_graph=True)
        second = torch.autograd.grad(sum((g * g).sum() for g in grads), (xi, module.weight))
        batched = torch.autograd.grad(module(xi), xi, torch.stack([grad, -2 * grad]), is_grads_batched=True)[0]
        results.append((*grads, *second, batched))
    for got, want in zip(results[1], results[0]):
        _assert_close(got, want)
    assert dense_calls                                         # the forwards ran the kernel


def test_forward_mode_gradient_equals_torch(dense_calls):
    """The ``jvp`` (forward-mode AD, dual tensors): the kernel on the tangents, as torch's conv."""
    import torch.autograd.forward_ad as fwAD

    conv = torch.nn.Conv2d(32, 48, 3, padding=1)
    layer = GridConv2d.from_conv(conv)
    x, x_t = torch.randn(2, 32, 4, 18), torch.randn(2, 32, 4, 18)
    tangents = []
    for module in (conv, layer):
        with fwAD.dual_level():
            tangents.append(fwAD.unpack_dual(module(fwAD.make_dual(x, x_t))).tangent)
    _assert_close(tangents[1], tangents[0])
    assert (48, 32, False) in dense_calls


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_inf_and_nan_reach_what_torch_reaches(bad, dense_calls):
    conv = torch.nn.Conv2d(16, 48, 3, padding=1)
    x = torch.randn(2, 16, 5, 17)
    x[0, 3, 2, 5] = bad
    y = GridConv2d.from_conv(conv)(x)
    torch.testing.assert_close(y, conv(x), equal_nan=True)
    assert torch.isfinite(y[1]).all()                          # the other image stays finite
    assert dense_calls


@pytest.mark.parametrize("c_in, c_out, size", [(32, 64, (5, 21)), (130, 130, (5, 21)), (130, 130, (40, 40))])
def test_thread_counts_agree(c_in, c_out, size, dense_calls):
    """1, 2 and 3 threads give torch's output and gradients, forward and input-gradient kernels alike.

    A call of one work item a thread whose 64-channel blocks divide among the threads runs each block on one
    thread (130 channels, 3 blocks: 1 and 3 threads); the others share each block (2 threads, and 2 x 40 x 40
    nodes: more than one work item a thread).
    Tiles start at the same nodes in every mode and sum in the same order, so the kernel's output and input
    gradient are bitwise equal at every thread count (the weight gradient is torch's GEMM: not asked).
    """
    conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1)
    layer = GridConv2d.from_conv(conv)
    x = torch.randn(2, c_in, *size)
    grad = torch.randn_like(conv(x))
    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            _assert_twin_equals_torch(conv, x)
            runs.append(_run(layer, x, grad))
    finally:
        torch.set_num_threads(threads)
    (y, (grad_x, *_)), *others = runs
    for y_n, (grad_x_n, *_) in others:
        assert torch.equal(y, y_n) and torch.equal(grad_x, grad_x_n)
    assert dense_calls == [(c_out, c_in, False), (c_out, c_in, True)] * 6


@pytest.mark.parametrize("major", [False, True, None])
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
def test_kernel_reads_either_layout_in_place_and_writes_either(layout, major):
    """:func:`dense_forward` reads nodes channel-major or channels innermost as they lie, others copied.

    Zero padding is read, not copied; the output is written in the input's layout (``major=None``) or the
    one asked for.
    """
    image = torch.randn(2, 16, 9, 10)
    weight, bias = torch.randn(80, 16, 3, 3), torch.randn(80)
    x = {"nchw": image, "channels_last": image.contiguous(memory_format=torch.channels_last),
         "strided": image[..., ::2]}[layout].permute(0, 2, 3, 1)                 # [B, H, W, C] nodes
    size = tuple(x.shape[1:3])
    out = _native.dense_forward(x, weight, bias, size, (1, 1), (1, 1), (1, 1), major=major)   # [B, H, W, C_out]
    assert out.shape == (2, *size, 80)
    channel_major = layout == "nchw" if major is None else major
    assert out.movedim(-1, 1).is_contiguous() if channel_major else out.is_contiguous()
    _assert_close(out.permute(0, 3, 1, 2), F.conv2d(x.permute(0, 3, 1, 2), weight, bias, padding=1))


@pytest.mark.parametrize("pad", [0, 2, 3])
def test_transposed_reads_the_weight_flipped_and_transposed(pad):
    """``transposed=True`` convolves with the flipped, transposed weight, read in place (the input gradient).

    Padding beyond the kernel's reach (3 > 2) gives output nodes with no source at all: zeros.
    """
    weight = torch.randn(48, 16, 3, 3)
    grad = torch.randn(2, 48, 7, 9)
    size = (7 - 2 + 2 * pad, 9 - 2 + 2 * pad)
    got = _native.dense_forward(grad.movedim(1, -1), weight, None, size, (1, 1), (pad, pad), (1, 1), transposed=True)
    _assert_close(got.movedim(-1, 1), F.conv2d(grad, weight.flip(2, 3).transpose(0, 1), padding=pad))
