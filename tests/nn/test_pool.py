import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import gridgnn as gg
import gridgnn.nn as gnn
from gridgnn.nn import (
    GridAdaptiveAvgPool2d,
    GridAdaptiveMaxPool2d,
    GridAvgPool2d,
    GridAvgPool3d,
    GridMaxPool,
    GridMaxPool2d,
    twin_of,
)
from gridgnn.nn.functional import adaptive_pool_graph, adaptive_pool_nodes
from gridgnn.testing import assert_conv_equivalent


def _pair(name, nd):
    return getattr(nn, f"{name}{nd}d"), getattr(gnn, f"Grid{name}{nd}d")


MAX = {nd: _pair("MaxPool", nd) for nd in (1, 2, 3)}
AVG = {nd: _pair("AvgPool", nd) for nd in (1, 2, 3)}
ADAPTIVE = {(kind, nd): _pair(f"Adaptive{kind.capitalize()}Pool", nd) for kind in ("avg", "max") for nd in (1, 2, 3)}
SIZES = {1: (11,), 2: (7, 8), 3: (5, 6, 7)}


def tie_free(shape, dtype=torch.float64):
    """Distinct values (a permutation), so every max is unique and gradients have one destination."""
    n = torch.Size(shape).numel()
    return (torch.randperm(n).to(dtype) / n).reshape(shape)


def check_both_paths(reference, twin_cls, size, dtype=torch.float64, device="cpu", **kwargs):
    for path in ("auto", "general"):
        twin = twin_of(reference)
        twin.path = path
        assert_conv_equivalent(reference, twin, size, dtype=dtype, device=device, **kwargs)
        if isinstance(reference, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
            x = tie_free((2, 3, *size), dtype).to(device)
            assert torch.equal(twin.to(device)(x), reference.to(device)(x))  # max pooling: no arithmetic, bit-exact
    assert isinstance(twin, twin_cls)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("k, s, p, d, ceil", list(itertools.product([2, 3], [None, 1, 2, 3], [0, 1], [1, 2],
                                                                     [False, True]))[::2])
def test_max_pool_equals_torch(nd, k, s, p, d, ceil, device):
    torch_cls, twin_cls = MAX[nd]
    check_both_paths(torch_cls(k, s, p, d, ceil_mode=ceil), twin_cls, SIZES[nd], device=device)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("k, s, p, ceil, include, divisor", [
    cfg for cfg in itertools.product([1, 2, 3], [None, 2, 3], [0, 1], [False, True], [False, True], [None, 5])
    if cfg[2] <= cfg[0] // 2][::2])
def test_avg_pool_equals_torch(nd, k, s, p, ceil, include, divisor, device):
    torch_cls, twin_cls = AVG[nd]
    if nd == 1 and divisor is not None:
        pytest.skip("AvgPool1d has no divisor_override")
    args = (k, s, p, ceil, include) + ((divisor,) if nd > 1 else ())
    check_both_paths(torch_cls(*args), twin_cls, SIZES[nd], device=device)


@pytest.mark.parametrize("kind, nd", list(ADAPTIVE))
@pytest.mark.parametrize("out", [1, 2, 3, 4, 5, 7])
def test_adaptive_pools_equal_torch(kind, nd, out, device):
    torch_cls, twin_cls = ADAPTIVE[kind, nd]
    check_both_paths(torch_cls(out), twin_cls, SIZES[nd], device=device)
    if nd > 1:
        check_both_paths(torch_cls((None,) + (out,) * (nd - 1)), twin_cls, SIZES[nd], device=device)


@given(nd=st.integers(1, 3), k=st.integers(1, 4), s=st.integers(1, 4), d=st.integers(1, 3), ceil=st.booleans(),
       data=st.data())
def test_random_max_and_avg_pools(nd, k, s, d, ceil, data):
    p = data.draw(st.integers(0, k // 2))
    size = tuple(data.draw(st.integers(1, 9)) for _ in range(nd))
    torch_max, torch_avg = MAX[nd][0](k, s, p, d, ceil_mode=ceil), AVG[nd][0](k, s, p, ceil)
    for reference in (torch_max, torch_avg):
        if reference is torch_max and _has_empty_window(torch_max, size):
            continue
        try:
            expected = reference(torch.zeros(1, 1, *size))
        except RuntimeError:                                     # torch rejects the geometry: so must gridgnn
            with pytest.raises(ValueError, match="smaller than the pooling window"):
                twin_of(reference)(torch.zeros(1, 1, *size))
            continue
        assert twin_of(reference)(torch.zeros(1, 1, *size)).shape == expected.shape
        assert_conv_equivalent(reference, input_size=size, dtype=torch.float64)


def _has_empty_window(pool, size):
    try:
        g = twin_of(pool).graph(size)
    except ValueError:
        return False
    return bool((torch.bincount(g.edge_index[1], minlength=g.num_dst_nodes) == 0).any())


def test_windows_entirely_in_the_padding_are_minus_infinity():
    """With dilation a max-pool window can read only padding: -inf there, on both paths, and a zero gradient.

    torch returns -inf too (and its backward then writes out of bounds).
    """
    x = torch.randn(1, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    for path in ("auto", "general"):
        out = GridMaxPool2d(2, 1, 1, dilation=3, path=path)(x)
        assert out.shape == (1, 1, 1, 1) and out.item() == -float("inf")
        assert torch.equal(torch.autograd.grad(out.sum(), x)[0], torch.zeros_like(x))
    with torch.no_grad():
        assert nn.MaxPool2d(2, 1, 1, dilation=3)(x).item() == -float("inf")


def test_gradcheck_float64():
    x = tie_free((1, 2, 5, 6)).requires_grad_()
    for pool in (GridMaxPool2d(3, 2, 1, ceil_mode=True), GridAvgPool2d(3, 2, 1, count_include_pad=False),
                 GridAdaptiveAvgPool2d((2, 4)), GridAdaptiveMaxPool2d(4, path="general")):
        assert torch.autograd.gradcheck(pool, (x,))
    assert torch.autograd.gradgradcheck(GridAvgPool2d(2, ceil_mode=True), (x,))


def test_ties_split_the_gradient_where_torch_picks_one():
    """At exact ties max aggregation gives each tied input an equal share; the window's total equals torch's."""
    x = torch.ones(1, 1, 4, 4, requires_grad=True)
    GridMaxPool2d(2)(x).sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 0.25))
    x_ref = torch.ones(1, 1, 4, 4, requires_grad=True)
    nn.MaxPool2d(2)(x_ref).sum().backward()
    assert torch.equal(x.grad.view(2, 2, 2, 2).sum((1, 3)), x_ref.grad.view(2, 2, 2, 2).sum((1, 3)))


@pytest.mark.parametrize("reference", [nn.AdaptiveMaxPool1d(3), nn.AdaptiveMaxPool2d((2, 3)), nn.MaxPool2d(3, 2, 1),
                                       nn.AdaptiveMaxPool2d(1)], ids=["adaptive1d", "adaptive2d", "max", "global"])
@pytest.mark.parametrize("path", ["auto", "general"])
def test_a_window_whose_maximum_is_zero_passes_on_its_whole_gradient(reference, path):
    """Maxima of exactly 0 (common after a ReLU) keep their whole gradient: PyG's scatter max halved it.

    Its backward counted the zero the reduction started from as one more tie. Adaptive windows of 7 by 3
    overlap, so the scatter route (not equal windows) runs on both paths.
    """
    size = (7,) if isinstance(reference, nn.AdaptiveMaxPool1d) else (7, 8)
    twin = twin_of(reference)
    twin.path = path
    x = -tie_free((2, 3, *size))                                # values in (-1, 0]: one 0, the largest, unique
    x_twin, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad_out = torch.rand_like(reference(x)) + 1
    twin(x_twin).backward(grad_out)
    reference(x_ref).backward(grad_out)
    torch.testing.assert_close(x_twin.grad, x_ref.grad)        # (overlapping windows add in another order)
    zeros = torch.zeros(2, 3, *size, requires_grad=True)       # every value tied at 0: the totals still agree
    twin(zeros).backward(grad_out.float())
    spatial = tuple(range(2, 2 + len(size)))
    torch.testing.assert_close(zeros.grad.sum(spatial), grad_out.float().sum(spatial))


def test_adaptive_pool_graph_is_the_callers_to_edit():
    """Editing the edges ``adaptive_pool_graph`` returns in place changes no later pool of that size."""
    x = torch.randn(2, 3, 7, 5)
    pool = GridAdaptiveMaxPool2d((3, 2), path="general")
    before = pool(x)
    edges = adaptive_pool_graph((7, 5), (3, 2))
    edges.zero_()
    assert adaptive_pool_graph((7, 5), (3, 2)).any()
    assert torch.equal(pool(x), before)
    assert torch.equal(before, nn.AdaptiveMaxPool2d((3, 2))(x))


def test_nan_and_inf_propagate_like_torch():
    x = torch.randn(1, 2, 6, 6)
    x[0, 0, 1, 1], x[0, 1, 4, 4] = float("nan"), float("inf")
    for reference in (nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(4), nn.AdaptiveMaxPool2d(3)):
        for path in ("auto", "general"):
            twin = twin_of(reference)
            twin.path = path
            torch.testing.assert_close(twin(x), reference(x), equal_nan=True)


def test_repr_isinstance_unbatched_channels_last_and_device(device):
    pool = GridMaxPool2d(3, 2, 1, ceil_mode=True)
    assert isinstance(pool, nn.MaxPool2d) and repr(pool) == repr(nn.MaxPool2d(3, 2, 1, ceil_mode=True)).replace(
        "MaxPool2d", "GridMaxPool2d")
    assert "path='general'" in repr(GridAvgPool3d(2, path="general"))
    x = torch.randn(3, 7, 6, device=device)
    torch.testing.assert_close(pool(x), nn.MaxPool2d(3, 2, 1, ceil_mode=True)(x))
    cl = x[None].contiguous(memory_format=torch.channels_last)
    assert GridAvgPool2d(2)(cl).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(GridAdaptiveAvgPool2d(1)(cl), nn.AdaptiveAvgPool2d(1)(cl))


def test_node_level_forms():
    x = torch.randn(2, 3, 6, 7)
    pool = GridAvgPool2d(3, 2, 1)
    nodes = pool.forward_nodes(gg.to_nodes(x), (6, 7))
    torch.testing.assert_close(gg.to_image(nodes, pool.geometry((6, 7)).out_size), nn.AvgPool2d(3, 2, 1)(x))
    g = GridMaxPool2d(3, 2, 1).graph((6, 7))
    assert g.out_size == (3, 4) and g.num_offsets == 9
    node_pool = GridMaxPool(3, 2, 1)
    torch.testing.assert_close(gg.to_image(node_pool(gg.to_nodes(x), (6, 7)), node_pool.out_size((6, 7))),
                               nn.MaxPool2d(3, 2, 1)(x))
    with pytest.raises(ValueError, match="x has 42 nodes but size=\\(6, 6\\) has 36"):
        pool.forward_nodes(gg.to_nodes(x), (6, 6))


def test_errors():
    with pytest.raises(ValueError, match="return_indices=True is not supported"):
        GridMaxPool2d(2, return_indices=True)
    with pytest.raises(ValueError, match="return_indices=True is not supported"):
        GridAdaptiveMaxPool2d(2, return_indices=True)
    with pytest.raises(ValueError, match="padding=\\(2, 2\\) must be at most half of kernel_size"):
        GridMaxPool2d(3, padding=2)(torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="smaller than the pooling window"):
        GridAvgPool2d(5)(torch.randn(1, 1, 3, 8))
    with pytest.raises(ValueError, match="divisor_override must be a non-zero int"):
        GridAvgPool2d(2, divisor_override=0)
    with pytest.raises(ValueError, match="output_size must hold non-negative ints"):
        GridAdaptiveAvgPool2d((-1, 2))(torch.randn(1, 1, 4, 4))
    assert GridAdaptiveAvgPool2d((0, 2))(torch.randn(1, 1, 4, 4)).shape == (1, 1, 0, 2)   # empty, as in torch
    with pytest.raises(ValueError, match="reduce must be 'max' or 'mean', got 'avg'"):
        adaptive_pool_nodes(torch.randn(1, 16, 2), (4, 4), 2, "avg")
    with pytest.raises(ValueError, match="expects an input \\[B, C, 2 spatial dims\\]"):
        GridMaxPool2d(2)(torch.randn(4, 4))
    with pytest.raises(TypeError, match="from_module expects an nn.MaxPool2d"):
        GridMaxPool2d.from_module(nn.AvgPool2d(2))
    assert GridMaxPool2d.from_module(nn.MaxPool2d(3, 1, 1, ceil_mode=True)).ceil_mode
