"""The native depthwise kernel (C, built by the install) and its pure-torch fallback: both equal torch's convs."""
import itertools
import os
import subprocess
import sys
import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gridgnn.nn import GridConv1d, GridConv2d, GridConv3d, _native
from gridgnn.testing import assert_conv_equivalent, compare, tolerance

from helpers import TORCH_CONVS, assert_gradients_of_two_orders

GRID_CONVS = {1: GridConv1d, 2: GridConv2d, 3: GridConv3d}
CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}


@pytest.fixture(autouse=True, scope="module")
def shifted_kernels():
    """The row and plane kernels run here on every CPU (by default only on AVX-512 ones, where they are faster).

    Module-scoped, as hypothesis runs no function-scoped fixture.
    """
    was, _native.SHIFTED_KERNELS = _native.SHIFTED_KERNELS, True
    yield
    _native.SHIFTED_KERNELS = was


@pytest.fixture(params=["native", "pure-torch"])
def kernel(request):
    """Each depthwise kernel in turn: the built C library (which the install must have built) and the fallback."""
    if request.param == "native":
        assert _native.available(), "the native depthwise kernel was not built by the install"
        yield request.param
    else:
        with _native.disabled():
            yield request.param


@pytest.fixture
def native_calls(monkeypatch, shell_only):
    """Counts the native kernel's forward and backward calls (the drop-ins' shell runs every call)."""
    calls = []
    for name in ("grouped_forward", "grouped_backward"):
        original = getattr(_native, name)

        def spy(*args, _original=original, _name=name):
            calls.append(_name)
            return _original(*args)
        monkeypatch.setattr(_native, name, spy)
    return calls


def _assert_close(got, want):
    """Normwise, with the tolerance table's entry for the dtype."""
    error = compare(got, want)
    assert error.within(tolerance(want.dtype)), error


def _run(conv, layer, x, grad):
    """Outputs and gradients (input, weight, bias) of ``conv`` and ``layer`` on copies of ``x``."""
    results = []
    for module in (conv, layer):
        module.zero_grad()
        xi = x.clone().requires_grad_()
        y = module(xi)
        y.backward(grad)
        results.append((y, xi.grad, module.weight.grad.reshape(conv.weight.shape), module.bias.grad))
    return results


@pytest.mark.parametrize("nd, channels, k, stride, padding, dilation, mode", [
    cfg for cfg in itertools.product([1, 2, 3], [1, 5, 21], [1, 3, 4], [1, 2], [0, 1, "same"], [1, 2],
                                     ["zeros", "reflect"])
    if not (cfg[4] == "same" and cfg[3] > 1) and not (cfg[4] == 0 and cfg[6] != "zeros")])
@pytest.mark.parametrize("innermost", [False, True], ids=["channel-major", "channels-innermost"])
def test_native_equals_torch(nd, channels, k, stride, padding, dilation, mode, innermost, native_calls):
    """Every geometry, channel counts below and beyond the kernel's 16-channel blocks, 1-3 grid axes.

    Both input layouts: the kernel buffers an NCHW image's blocks of 16 channels and sums a channels-last
    one in place. (The pure-torch kernel's sweep is in ``test_dense.py``.)
    """
    conv = TORCH_CONVS[nd](channels, channels, k, stride, padding, dilation, groups=channels,
                           padding_mode=mode).double()
    x = torch.randn(3, channels, *(9, 8, 7)[:nd], dtype=torch.float64)
    if innermost:
        x = x.movedim(1, -1).contiguous().movedim(-1, 1)
    (y_ref, *grads_ref), (y, *grads) = _run(conv, GRID_CONVS[nd].from_conv(conv), x,
                                           torch.randn(conv(x).shape, dtype=torch.float64))
    assert native_calls == ["grouped_forward", "grouped_backward"]
    for got, want in zip((y, *grads), (y_ref, *grads_ref)):
        _assert_close(got, want)


@pytest.mark.parametrize("nd, channels, k, padding", [
    cfg for cfg in itertools.product([1, 2, 3], [16, 48], [3, 5, 7], ["valid", "same", "full"])])
def test_native_channels_last_runs_of_interior_nodes(nd, channels, k, padding, native_calls):
    """Channels-last input, whole 16-channel blocks, 3/5/7 taps along rows of 4 or more interior nodes.

    There the kernel loads each node once for four neighbours (forward and input gradient).
    """
    pad = {"valid": 0, "same": k // 2, "full": k - 1}[padding]
    conv = TORCH_CONVS[nd](channels, channels, k, 1, pad, groups=channels).double()
    x = torch.randn(2, channels, *(7, 8, 13)[3 - nd:], dtype=torch.float64).movedim(1, -1).contiguous().movedim(-1, 1)
    (y_ref, *grads_ref), (y, *grads) = _run(conv, GRID_CONVS[nd].from_conv(conv), x,
                                           torch.randn(conv(x).shape, dtype=torch.float64))
    assert native_calls == ["grouped_forward", "grouped_backward"]
    for got, want in zip((y, *grads), (y_ref, *grads_ref)):
        _assert_close(got, want)


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("nd", [2, 3])
def test_native_reads_every_input_layout(nd, layout, dtype, native_calls):
    """NCHW and channels-last inputs are read in place, any other strides copied; 2-D outputs laid out as torch's."""
    conv = TORCH_CONVS[nd](24, 24, 3, 2, 1, groups=24).to(dtype)
    layer = GRID_CONVS[nd].from_conv(conv)
    x = torch.randn(2, 24, *(11,) * nd, dtype=dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=CHANNELS_LAST[nd])
    elif layout == "strided":
        x = torch.randn(2, 48, *(11,) * nd, dtype=dtype)[:, ::2]
    grad = torch.randn_like(conv(x))
    (y_ref, *grads_ref), (y, *grads) = _run(conv, layer, x, grad)
    assert native_calls == ["grouped_forward", "grouped_backward"]
    if nd == 2:                           # (torch's 3-D depthwise conv answers channels-last input in NCDHW)
        assert y.stride() == y_ref.stride()
    for got, want in zip((y, *grads), (y_ref, *grads_ref)):
        _assert_close(got, want)


@given(nd=st.integers(1, 3), channels=st.integers(1, 40), batch=st.integers(1, 3), k=st.integers(1, 5),
       stride=st.integers(1, 3), dilation=st.integers(1, 2), padding=st.integers(0, 3),
       extra=st.lists(st.integers(0, 4), min_size=3, max_size=3), last=st.booleans())
def test_native_random_configurations(nd, channels, batch, k, stride, dilation, padding, extra, last):
    """Random geometries (padding up to past the kernel, sizes from the smallest that fits)."""
    span = (k - 1) * dilation + 1
    size = tuple(max(1, span - 2 * padding) + e for e in extra[:nd])
    conv = TORCH_CONVS[nd](channels, channels, k, stride, padding, dilation, groups=channels).double()
    x = torch.randn(batch, channels, *size, dtype=torch.float64)
    if last and nd > 1:
        x = x.contiguous(memory_format=CHANNELS_LAST[nd])
    (y_ref, *grads_ref), (y, *grads) = _run(conv, GRID_CONVS[nd].from_conv(conv), x,
                                           torch.randn(conv(x).shape, dtype=torch.float64))
    for got, want in zip((y, *grads), (y_ref, *grads_ref)):
        _assert_close(got, want)


@pytest.mark.parametrize("nd", [1, 2])
def test_native_gradients(nd, kernel):
    """First order by the native kernel; the double backward (``create_graph``) by the pure-torch kernel."""
    assert_gradients_of_two_orders(GRID_CONVS[nd](6, 6, 3, stride=2, padding=1, groups=6), (6,) * nd)


def test_native_thread_counts_agree():
    """The per-thread weight-gradient accumulators add up to the one-thread result."""
    conv = torch.nn.Conv2d(40, 40, 5, padding=2, groups=40).double()
    layer = GridConv2d.from_conv(conv)
    x = torch.randn(3, 40, 9, 9, dtype=torch.float64)
    grad = torch.randn(3, 40, 9, 9, dtype=torch.float64)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            results.append(_run(conv, layer, x, grad)[1])
    finally:
        torch.set_num_threads(threads)
    for got, want in zip(*results):
        _assert_close(got, want)


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_inf_and_nan_stay_in_their_channel_as_in_torch(bad, kernel):
    conv = torch.nn.Conv2d(20, 20, 3, padding=1, groups=20)
    x = torch.randn(2, 20, 6, 6)
    x[0, 17, 2, 3] = bad
    (y_ref, x_grad_ref, *_), (y, x_grad, *_) = _run(conv, GridConv2d.from_conv(conv), x, torch.ones(2, 20, 6, 6))
    torch.testing.assert_close(y, y_ref, equal_nan=True)
    torch.testing.assert_close(x_grad, x_grad_ref, equal_nan=True)
    assert torch.isfinite(y[:, :17]).all() and torch.isfinite(y[:, 18:]).all()


def test_missing_library_warns_once_and_falls_back(monkeypatch):
    """A checkout whose C library was not built runs the pure-torch kernels, with one warning."""
    monkeypatch.setattr(_native, "_library_path", lambda: None)
    _native._library.cache_clear()
    assert _native.describe() == "not built: the pure-torch kernels run"
    conv = torch.nn.Conv2d(4, 4, 3, padding=1, groups=4).double()
    try:
        with pytest.warns(RuntimeWarning, match="native conv kernels are unavailable"):
            assert_conv_equivalent(conv, GridConv2d.from_conv(conv), (5, 5), dtype=torch.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert_conv_equivalent(conv, GridConv2d.from_conv(conv), (5, 5), dtype=torch.float64)
    finally:
        _native._library.cache_clear()


def test_environment_switch_turns_it_off_silently():
    code = ("import warnings, torch; import gridgnn.nn as gnn; from gridgnn.nn import _native; "
            "warnings.simplefilter('error', RuntimeWarning); "
            "gnn.GridConv2d(3, 3, 3, groups=3)(torch.randn(1, 3, 5, 5)); "
            "print(_native.available())")
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "GRIDGNN_NATIVE": "0"},
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# grouped convs with thin groups: the same kernel with groups of 2-16 channels

@pytest.mark.parametrize("nd, width, groups, k, stride, padding, dilation", [
    cfg for cfg in itertools.product([1, 2, 3], [2, 4, 16], [1, 3], [1, 3], [1, 2], [0, 1, "same"], [1, 2])
    if not (cfg[5] == "same" and cfg[4] > 1)])
def test_native_grouped_equals_torch(nd, width, groups, k, stride, padding, dilation, native_calls):
    """Groups of 2-16 channels (1-3 groups; with 3 groups of 16, a block boundary inside nothing)."""
    channels = width * groups
    conv = TORCH_CONVS[nd](channels, channels, k, stride, padding, dilation, groups=groups)
    assert_conv_equivalent(conv, GRID_CONVS[nd].from_conv(conv), (9, 8, 7)[:nd], dtype=torch.float64,
                           batch_size=2)
    pointwise = k == 1 and stride == 1 and padding in (0, "same")          # an NCHW 1x1: one GEMM per image
    assert native_calls == ([] if groups == 1 or pointwise else ["grouped_forward", "grouped_backward"])


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("width", [4, 8, 16])
@pytest.mark.parametrize("k, stride", [(3, 1), (5, 2)])
@pytest.mark.parametrize("size", [10, 14])
def test_native_grouped_layouts_float32(layout, width, k, stride, size, native_calls):
    """Float32 thin groups, output rows of 10, 14, 5 and 7 nodes.

    On AVX2 CPUs groups of 16 sum by broadcasts in register blocks of 6 nodes and tails of 4, 2 and 1:
    10 = 6 + 4, 14 = 6 + 6 + 2, 5 = 4 + 1, 7 = 6 + 1.
    """
    conv = torch.nn.Conv2d(8 * width, 8 * width, k, stride, k // 2, groups=8)
    x = torch.randn(2, 8 * width, size, size)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(conv(x))
    (y_ref, *grads_ref), (y, *grads) = _run(conv, GridConv2d.from_conv(conv), x, grad)
    assert native_calls == ["grouped_forward", "grouped_backward"]
    assert y.stride() == y_ref.stride()
    for got, want in zip((y, *grads), (y_ref, *grads_ref)):
        _assert_close(got, want)


# NCHW at stride 1 with output rows as long as the input's: the channel-plane kernels (_native_planes.h), tiles
# of 16 nodes running across rows, masked where a source lies outside the grid

PLANE_CASES = [  # (size, kernel, padding, dilation): rows shorter and longer than a tile, tail tiles, leading axes
    ((7, 9), 3, 1, 1), ((3, 5), 3, 1, 2), ((5, 20), (3, 5), (0, 2), 1), ((16, 16), 5, "same", 1),
    ((40,), 3, 1, 1), ((33,), 4, "same", 3), ((3, 4, 5), 3, 1, 1), ((2, 3, 17), (1, 3, 3), (0, 2, 1), (1, 1, 2)),
    ((20, 17), 3, 1, 1)]  # planes of over 256 nodes: depthwise convs of up to 9 taps only


@pytest.mark.parametrize("width, groups", [(1, 13), (1, 8), (2, 7), (4, 3), (8, 2), (16, 2)])
@pytest.mark.parametrize("size, k, padding, dilation", PLANE_CASES)
def test_native_channel_planes_equal_torch(size, k, padding, dilation, width, groups, native_calls):
    """Depthwise and thin groups, group counts that leave tail steps (13 = 8 + 4 + 1), three images."""
    channels, nd = width * groups, len(size)
    conv = TORCH_CONVS[nd](channels, channels, k, 1, padding, dilation, groups=groups)
    assert_conv_equivalent(conv, GRID_CONVS[nd].from_conv(conv), size, dtype=torch.float64, batch_size=3)
    assert native_calls == ["grouped_forward", "grouped_backward"]


ROW_CASES = [  # (size, kernel, padding, dilation): rows of up to 16 nodes, 5 or 7 taps along them
    ((14, 14), 7, 3, 1), ((14, 14), 5, 2, 1), ((16, 16), 5, 2, 1), ((9, 9), 7, 3, 1), ((16, 9), 7, 3, 1),
    ((3, 12), 5, (4, 2), (2, 1)), ((9, 12), (1, 7), (0, 3), 1), ((6, 10), (3, 5), (4, 2), (3, 1)),
    ((11,), 7, 3, 1), ((1, 16), 5, 2, 1),
    # rows of up to 8 nodes, two a vector: odd row counts, rows of 2-4 nodes, up to 32 rows
    ((7, 7), 7, 3, 1), ((7, 7), 5, 2, 1), ((9, 4), 7, 3, 1), ((3, 2), 5, 2, 1), ((31, 6), 5, 2, 1),
    ((6, 8), 5, (4, 2), (2, 1)), ((5,), 7, 3, 1),
    ((17, 13), 5, 2, 1), ((33, 6), 5, 2, 1), ((14, 14), 3, 1, 1), ((7, 7), 3, 1, 1)]  # the last four: planes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch, bias", [(1, True), (3, False)])
@pytest.mark.parametrize("size, k, padding, dilation", ROW_CASES)
def test_native_row_kernels_equal_torch(size, k, padding, dilation, batch, bias, dtype, native_calls):
    """Depthwise forward and input gradient on NCHW planes of rows that fit a vector (``_native_rows.h``).

    Planes of more than 16 rows of over 8 nodes, or 32 of at most 8 (half that in float64), take the
    channel-plane kernels, as do 3-tap kernel rows and every weight gradient.
    """
    nd, channels = len(size), 5
    conv = TORCH_CONVS[nd](channels, channels, k, 1, padding, dilation, groups=channels, bias=bias, dtype=dtype)
    assert_conv_equivalent(conv, GRID_CONVS[nd].from_conv(conv), size, dtype=dtype, batch_size=batch)
    assert native_calls == ["grouped_forward", "grouped_backward"]


ROW_STRIDE_CASES = [  # (size, kernel, stride, padding, dilation): stride 2 along rows of 1-16 output nodes
    ((28, 28), 5, 2, 2, 1), ((28, 28), 3, 2, 1, 1), ((26, 26), 7, 2, 3, 1), ((9, 20), 5, 2, (2, 4), 1),
    ((12, 30), 3, (1, 2), (1, 0), (2, 1)), ((13, 32), 3, 2, 0, 1), ((6, 29), 3, 2, 1, 1), ((27,), 5, 2, 2, 1),
    # output rows of up to 8 nodes, two a vector: odd row counts, rows of 2 nodes, up to 32 rows
    ((14, 14), 5, 2, 2, 1), ((14, 14), 3, 2, 1, 1), ((13, 9), 7, 2, 3, 1), ((5, 3), 3, 2, 1, 1),
    ((5, 7), (3, 7), (3, 2), (1, 3), 1), ((40, 12), 5, 2, 2, 1), ((20, 14), 5, (3, 2), 2, 1),
    ((33, 28), 5, 2, 2, 1), ((28, 30), 5, 2, 2, 1), ((8, 31), 3, 2, 1, 1), ((66, 12), 3, 2, 1, 1)]  # buffered


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch, bias", [(1, True), (3, False)])
@pytest.mark.parametrize("size, k, stride, padding, dilation", ROW_STRIDE_CASES)
def test_native_stride2_row_kernels_equal_torch(size, k, stride, padding, dilation, batch, bias, dtype,
                                                native_calls):
    """Depthwise forward at stride 2 along NCHW rows whose padded source fits two vectors (``_native_rows.h``).

    Source rows exactly two vectors wide, rows of an odd count of nodes, padding wider than half the kernel,
    any stride across the rows. Output rows of over 16 nodes, planes of over 16 output rows of over 8 nodes
    or 32 of at most 8 (half that in float64) take the buffered units, as does every backward at stride 2.
    """
    nd, channels = len(size), 5
    conv = TORCH_CONVS[nd](channels, channels, k, stride, padding, dilation, groups=channels, bias=bias,
                           dtype=dtype)
    assert_conv_equivalent(conv, GRID_CONVS[nd].from_conv(conv), size, dtype=dtype, batch_size=batch)
    assert native_calls == ["grouped_forward", "grouped_backward"]


@given(kx=st.sampled_from([3, 5, 7]), ky=st.integers(1, 7), sy=st.integers(1, 3), sx=st.integers(1, 2),
       dy=st.integers(1, 2), py=st.integers(0, 4), px=st.integers(0, 4), rows=st.integers(1, 40),
       columns=st.integers(1, 36), batch=st.integers(1, 3), double=st.booleans())
def test_native_row_kernels_random_geometries(kx, ky, sy, sx, dy, py, px, rows, columns, batch, double):
    """Random depthwise geometries around the row kernels' bounds: torch's values and gradients.

    Rows of 1-36 nodes, 1-40 rows, strides 1-2 along the rows and 1-3 across them, "same" column padding at
    stride 1 as the row kernels take it; each geometry runs on whichever kernel takes it.
    """
    px = kx // 2 if sx == 1 else px
    rows, columns = max(rows, (ky - 1) * dy + 1 - 2 * py), max(columns, kx - 2 * px)
    dtype = torch.float64 if double else torch.float32
    conv = torch.nn.Conv2d(3, 3, (ky, kx), (sy, sx), (py, px), (dy, 1), groups=3, dtype=dtype)
    x = torch.randn(batch, 3, rows, columns, dtype=dtype)
    (y_ref, *grads_ref), (y, *grads) = _run(conv, GridConv2d.from_conv(conv), x,
                                           torch.randn(conv(x).shape, dtype=dtype))
    for got, want in zip((y, *grads), (y_ref, *grads_ref)):
        _assert_close(got, want)


@pytest.mark.parametrize("k, stride, size", [(5, 1, 14), (7, 1, 12), (7, 1, 7), (5, 2, 28), (3, 2, 14)])
def test_row_kernels_mask_the_neighbouring_rows_they_read(k, stride, size):
    """Infs beside a row the row kernels read give torch's infs and NaNs and nowhere else.

    A source row is read as two whole vectors that reach into the rows (and planes) beside it; the infs sit
    at the first and last nodes of planes and rows, in the input and in the output gradient (the input
    gradient's source at stride 1).
    """
    conv = torch.nn.Conv2d(3, 3, k, stride, k // 2, groups=3)
    x = torch.randn(2, 3, size, size)
    x[0, 1, 0, 0] = x[0, 1, -1, -1] = x[1, 0, 3, 0] = x[1, 2, 5, -1] = float("inf")
    grad = torch.ones_like(conv(x))
    grad[0, 0, -1, -1] = grad[1, 1, 0, 0] = grad[1, 2, 2, 0] = float("inf")
    (y_ref, x_grad_ref, *_), (y, x_grad, *_) = _run(conv, GridConv2d.from_conv(conv), x, grad)
    for reference in (y_ref, x_grad_ref):
        assert not torch.isfinite(reference).all() and torch.isfinite(reference).any()
    torch.testing.assert_close(y, y_ref, equal_nan=True)
    torch.testing.assert_close(x_grad, x_grad_ref, equal_nan=True)


@pytest.mark.parametrize("width", [1, 4])
def test_channel_planes_mask_the_neighbouring_planes_they_read(width):
    """A tile's loads run past its plane into the next one's nodes: an inf there must not leak through.

    Group 1's input holds infs at its first and last nodes, group 3's output gradient at its first: the
    outputs and weight gradients of groups 0 and 2, whose loads reach those nodes, stay finite. (Group 3's
    weight gradient is compared only up to there: its inf gradient times a masked-out source is NaN at the
    taps that leave the grid, where torch, skipping them, sums infs.)
    """
    conv = torch.nn.Conv2d(4 * width, 4 * width, 3, padding=1, groups=4)
    x = torch.randn(2, 4 * width, 6, 7)
    x[0, width, 0, 0] = x[1, 2 * width - 1, 5, 6] = float("inf")
    grad = torch.ones_like(conv(x))
    grad[0, 3 * width, 0, 0] = float("inf")
    (y_ref, x_grad_ref, w_grad_ref, _), (y, x_grad, w_grad, _) = _run(conv, GridConv2d.from_conv(conv), x, grad)
    for got, expected in ((y, y_ref), (x_grad, x_grad_ref), (w_grad[:3 * width], w_grad_ref[:3 * width])):
        torch.testing.assert_close(got, expected, equal_nan=True)
    for group in (0, 2):
        assert torch.isfinite(y[:, group * width:(group + 1) * width]).all()
        assert torch.isfinite(w_grad[group * width:(group + 1) * width]).all()


@pytest.mark.parametrize("channels, groups, mode", [(12, 4, "zeros"), (64, 2, "zeros"), (8, 4, "reflect")])
def test_grouped_convs_the_kernel_does_not_take_keep_the_gemm_paths(channels, groups, mode, native_calls):
    """Groups of 3 or 32 channels and padding modes other than zeros: torch's values, without the kernel."""
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, groups=groups, padding_mode=mode)
    assert_conv_equivalent(conv, GridConv2d.from_conv(conv), (6, 6), dtype=torch.float64)
    assert native_calls == []


def test_native_grouped_gradients_of_two_orders_and_batched():
    """First order by the kernel; double backward and batched gradients by recomputing in plain ops."""
    assert_gradients_of_two_orders(GridConv2d(8, 8, 3, stride=2, padding=1, groups=2), (6, 6),
                                   check_batched_grad=True, check_forward_ad=True)


def test_native_takes_only_cpu_operands_of_the_input_dtype():
    """The kernel reads raw CPU pointers: a weight or bias elsewhere, or of another dtype, is never handed to it."""
    x, weight = torch.randn(1, 5, 5, 4), torch.randn(4, 9)
    assert _native.applies(x, weight, torch.randn(4))
    assert not _native.applies(x, weight.to("meta"), None)
    assert not _native.applies(x, weight, torch.randn(4, device="meta"))
    assert not _native.applies(x, weight.double(), None)
    assert not _native.applies(x.half(), weight.half(), None)


@pytest.mark.parametrize("channels, groups, k, stride", [(48, 48, 5, 2), (32, 32, 7, 1), (64, 16, 3, 1),
                                                         (24, 12, 3, 1)])
def test_buffered_units_equal_the_row_and_plane_kernels(channels, groups, k, stride, native_calls):
    """Both routes of NCHW convs that the row and plane kernels take, equal to torch's and to each other.

    ``SHIFTED_KERNELS`` (AVX-512 CPUs) picks the row and plane kernels, else the buffered units run; outputs
    and input/weight/bias gradients are compared.
    """
    conv = torch.nn.Conv2d(channels, channels, k, stride, k // 2, groups=groups)
    layer = GridConv2d.from_conv(conv)
    x = torch.randn(3, channels, 14, 14)
    grad = torch.randn_like(conv(x))
    results = {}
    for shifted in (True, False):
        _native.SHIFTED_KERNELS = shifted                          # (the module's fixture puts it back)
        want, got = _run(conv, layer, x, grad)
        for g, w in zip(got, want):
            _assert_close(g, w)
        results[shifted] = got
    _native.SHIFTED_KERNELS = True
    for a, b in zip(results[True], results[False]):
        _assert_close(a, b)
    assert native_calls == ["grouped_forward", "grouped_backward"] * 2
