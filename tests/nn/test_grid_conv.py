import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import gridgnn as gg
from gridgnn.nn import GridConv
from gridgnn.testing import assert_conv_equivalent

from helpers import TORCH_CONVS, dense_typed_conv, graph_adjacency

MODES = ["zeros", "circular", "reflect", "replicate"]


@pytest.mark.parametrize("path", ["auto", "general"])
@pytest.mark.parametrize("k, s, p, d, groups, mode", [
    cfg for cfg in itertools.product([1, 2, 3], [1, 2], [0, 1, "same"], [1, 2], [1, 2], MODES)
    if not (cfg[2] == "same" and cfg[1] > 1)][::2])
def test_graph_level_equals_conv2d(k, s, p, d, groups, mode, path):
    conv = torch.nn.Conv2d(4, 6, k, s, p, d, groups, padding_mode=mode)
    layer = GridConv.from_conv(conv, path=path)
    assert_conv_equivalent(conv, layer, (7, 6), dtype=torch.float64)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("path", ["auto", "general"])
def test_all_dims_all_dtypes_on_every_device(nd, path, device):
    conv = TORCH_CONVS[nd](4, 8, 3, stride=2, padding=1, groups=4, padding_mode="circular")
    for dtype in (torch.float32, torch.float64):
        assert_conv_equivalent(conv, GridConv.from_conv(conv, path=path), (6,) * nd, dtype=dtype, device=device)


@given(nd=st.integers(1, 3), data=st.data())
def test_random_configurations(nd, data):
    draw = data.draw
    groups = draw(st.sampled_from([1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    mode = draw(st.sampled_from(MODES))
    size = tuple(draw(st.integers(max(3, (kk - 1) * dd + 1), 6)) for kk, dd in zip(k, dil))
    conv = TORCH_CONVS[nd](cin, cout, k, stride, pad, dil, groups, draw(st.booleans()), mode)
    try:
        conv(torch.zeros(1, cin, *size))
    except RuntimeError:
        return  # torch rejects this geometry (tested in test_graph)
    for path in ("auto", "general"):
        assert_conv_equivalent(conv, GridConv.from_conv(conv, path=path), size, dtype=torch.float64)


@pytest.mark.parametrize("path", ["auto", "general"])
def test_gradcheck(path):
    layer = GridConv(4, 4, 3, groups=2, path=path).double()
    g = gg.grid_graph((4, 5), 3, padding=1, padding_mode="reflect")
    x = torch.randn(2, 20, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: layer(x, g), (x,))
    w = layer.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda w: torch.func.functional_call(layer, {"weight": w, "bias": layer.bias}, (x.detach(), g)), (w,))


def test_unbatched_nodes_and_raw_edges():
    g = gg.grid_graph((5, 5), 3, padding=1)
    layer = GridConv(3, 4, 3).double()
    x = torch.randn(25, 3, dtype=torch.float64)
    torch.testing.assert_close(layer(x, g), layer(x[None], g)[0])
    torch.testing.assert_close(layer(x, g.edge_index, g.edge_type), layer(x, g))


def test_matches_pyg_rgcnconv():
    """The same typed grid edges through PyG's RGCNConv (sum aggregation, no root weight)."""
    from torch_geometric.nn import RGCNConv

    conv = torch.nn.Conv2d(3, 5, 3, padding=1, bias=False).double()
    g = gg.graph_for(conv, (6, 6))
    rgcn = RGCNConv(3, 5, num_relations=9, aggr="add", root_weight=False, bias=False).double()
    with torch.no_grad():
        rgcn.weight.copy_(conv.weight.flatten(2).permute(2, 1, 0))  # [K, C_in, C_out]
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    expected = gg.to_nodes(conv(x))[0]
    torch.testing.assert_close(rgcn(gg.to_nodes(x)[0], g.edge_index, g.edge_type), expected)
    torch.testing.assert_close(GridConv.from_conv(conv)(gg.to_nodes(x)[0], g), expected)


@pytest.mark.parametrize("mode", MODES)
def test_masked_grid_equals_conv_on_masked_image(mode, device):
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode=mode).double().to(device)
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64, device=device)
    mask = torch.rand(6, 7, device=device) > 0.4
    g = gg.graph_for(conv, (6, 7)).mask(mask)
    out = GridConv.from_conv(conv)(gg.to_nodes(x), g)
    expected = gg.to_nodes(conv(x * mask))
    torch.testing.assert_close(out, expected)


def test_sparse_pixel_set_and_dropped_edges_match_dense_reference():
    """Any typed graph: a sparse pixel set, and a to_pyg() graph with random edges dropped."""
    layer = GridConv(4, 6, 3, groups=2).double()
    g = gg.grid_graph((6, 6), 3, padding=1, padding_mode="circular")
    active = torch.rand(36) > 0.6
    sparse = g.mask(active, active)
    data = g.to_pyg()
    keep = torch.rand(data.num_edges) > 0.3
    x = torch.randn(2, 36, 4, dtype=torch.float64)
    for edge_index, edge_type in ((sparse.edge_index, sparse.edge_type),
                                  (data.edge_index[:, keep], data.edge_type[keep])):
        adj = graph_adjacency(edge_index, edge_type, 9, 36, 36)
        expected = dense_typed_conv(x, adj, layer.weight, layer.bias, 2)
        torch.testing.assert_close(layer(x, edge_index, edge_type), expected)
        perm = torch.randperm(edge_type.numel())  # edge order does not matter
        torch.testing.assert_close(layer(x, edge_index[:, perm], edge_type[perm]), expected)


def test_bipartite_size_and_both_general_variants():
    """More targets than sources and fewer: both general-path variants against the dense reference."""
    torch.manual_seed(1)
    for n_src, n_dst, cin, cout in [(10, 4, 2, 8), (4, 10, 8, 2)]:
        layer = GridConv(cin, cout, (2,), ndim=1).double()
        edge_index = torch.stack([torch.randint(n_src, (30,)), torch.randint(n_dst, (30,))])
        edge_type = torch.randint(2, (30,))
        x = torch.randn(n_src, cin, dtype=torch.float64)
        adj = graph_adjacency(edge_index, edge_type, 2, n_dst, n_src)
        expected = dense_typed_conv(x, adj, layer.weight, layer.bias, 1)
        torch.testing.assert_close(layer(x, edge_index, edge_type, size=(n_src, n_dst)), expected)


def test_torus_graph_is_circular_conv():
    conv = torch.nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular", bias=False).double()
    g = gg.grid_graph((5, 5), 3, padding=1, padding_mode="circular")
    # on a torus every node has exactly one in-edge per offset
    assert torch.equal(torch.bincount(g.edge_index[1] * 9 + g.edge_type), torch.ones(225, dtype=torch.long))
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(GridConv.from_conv(conv)(gg.to_nodes(x), g), gg.to_nodes(conv(x)))


def test_nodes_without_edges_get_bias_only():
    layer = GridConv(2, 3, 3)
    g = gg.grid_graph((4, 4), 3, padding=1).mask(dst_mask=torch.zeros(16, dtype=torch.bool))
    out = layer(torch.randn(16, 2), g)
    torch.testing.assert_close(out, layer.bias.expand(16, 3))


def test_same_init_as_conv_and_repr():
    torch.manual_seed(5)
    conv = torch.nn.Conv2d(4, 6, 3, groups=2)
    torch.manual_seed(5)
    layer = GridConv(4, 6, 3, groups=2)
    assert torch.equal(layer.weight, conv.weight) and torch.equal(layer.bias, conv.bias)
    assert repr(layer) == "GridConv(4, 6, kernel_size=(3, 3), groups=2)"
    assert repr(GridConv(2, 2, 3, ndim=1, bias=False, path="general")) == \
        "GridConv(2, 2, kernel_size=(3,), bias=False, path='general')"
    assert GridConv(2, 2, 3, ndim=3).weight.shape == (2, 2, 3, 3, 3)


def test_errors():
    g = gg.grid_graph((4, 4), 3, padding=1)
    layer = GridConv(4, 6, 3)
    x = torch.randn(16, 4)
    with pytest.raises(ValueError, match="out_channels=5 is not divisible by groups=2"):
        GridConv(4, 5, 3, groups=2)
    with pytest.raises(ValueError, match="path must be one of"):
        GridConv(4, 4, 3, path="fast")
    with pytest.raises(ValueError, match="expects in_channels=4"):
        layer(torch.randn(16, 3), g)
    with pytest.raises(ValueError, match="x has 9 nodes but the graph has 16 source nodes"):
        layer(torch.randn(9, 4), g)
    with pytest.raises(ValueError, match="built for kernel_size=\\(5, 5\\)"):
        layer(x, gg.grid_graph((4, 4), 5, padding=2))
    with pytest.raises(ValueError, match="pass ndim=1"):
        layer(torch.randn(16, 4), gg.grid_graph(16, 3, padding=1))
    with pytest.raises(ValueError, match="edge_type must lie in \\[0, 9\\)"):
        layer(x, g.edge_index, g.edge_type + 1)
    with pytest.raises(ValueError, match="source indices"):
        layer(x, g.edge_index + 1, g.edge_type)
    with pytest.raises(ValueError, match="pass edge_type"):
        layer(x, g.edge_index)
    with pytest.raises(TypeError, match="integer tensor"):
        layer(x, g.edge_index.float(), g.edge_type)
    with pytest.raises(TypeError, match="floating-point"):
        layer(x.long(), g)
    with pytest.raises(ValueError, match="\\[N, C\\] or \\[B, N, C\\]"):
        layer(torch.randn(1, 1, 16, 4), g)
    with pytest.raises(ValueError, match="path='dense' needs a complete GridGraph"):
        GridConv(4, 6, 3, path="dense")(x, g.edge_index, g.edge_type)
    with pytest.raises(ValueError, match="path='dense' needs a complete GridGraph, got a masked one"):
        GridConv(4, 6, 3, path="dense")(x, g.mask(torch.rand(16) > 0.5))
    with pytest.raises(ValueError, match="carries its own edge types"):
        layer(x, g, g.edge_type)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_mismatch_errors():
    g = gg.grid_graph((4, 4), 3, padding=1)
    layer = GridConv(4, 6, 3).cuda()
    with pytest.raises(ValueError, match="graph is on cpu but x is on cuda"):
        layer(torch.randn(16, 4, device="cuda"), g)
    with pytest.raises(ValueError, match="edge_index is on cpu but x is on cuda"):
        layer(torch.randn(16, 4, device="cuda"), g.edge_index, g.edge_type.cuda())
    with pytest.raises(ValueError, match="weight is on cuda"):
        layer(torch.randn(16, 4), g)


def test_device_mismatch_error_without_cuda():
    layer = GridConv(4, 6, 3).to("meta")
    with pytest.raises(ValueError, match="input is on cpu but the layer's weight is on meta"):
        layer(torch.randn(16, 4), gg.grid_graph((4, 4), 3, padding=1))


def test_renamed_arguments_warn():
    with pytest.warns(DeprecationWarning, match="GridConv\\(ndim=...\\)"):
        assert GridConv(2, 2, 3, dim=1).kernel_size == (3,)
    g = gg.grid_graph((4, 4), 3, stride=2)
    assert g.node_counts == (16, 1)
    with pytest.warns(DeprecationWarning, match="GridGraph.node_counts"):
        assert g.size == (16, 1)


def test_raw_edges_run_the_planned_path_once_per_edge_tensor():
    g = gg.grid_graph((7, 6), 3, padding=1).mask(torch.rand(42) < 0.7)
    layer = GridConv(4, 6, 3).double()
    x = torch.randn(2, 42, 4, dtype=torch.float64)
    ei, et = g.edge_index.clone(), g.edge_type.clone()
    torch.testing.assert_close(layer(x, ei, et), layer(x, g))
    from gridgnn.nn._offset_plan import typed_edges
    first = typed_edges(ei, et, 42, 42, 9)
    assert typed_edges(ei, et, 42, 42, 9) is first                     # kept while the tensors are unchanged
    et[0] = (et[0] + 1) % 9                                             # an in-place edit rebuilds the plan
    assert typed_edges(ei, et, 42, 42, 9) is not first
    reference = GridConv(4, 6, 3).double()
    reference.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(x, ei, et), reference(x, gg.GridGraph(g.geometry, ei, et, is_complete=False)))


def test_channels_first_node_views_equal_contiguous_features():
    image = torch.randn(2, 4, 7, 6, dtype=torch.float64)
    g = gg.grid_graph((7, 6), 3, padding=1).mask(torch.rand(42) < 0.5)
    layer = GridConv(4, 6, 3).double()
    view = gg.to_nodes(image)                                           # strided: channels are N apart
    assert not view.is_contiguous()
    torch.testing.assert_close(layer(view, g), layer(view.contiguous(), g))
