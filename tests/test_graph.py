import itertools

import networkx as nx
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import gridgnn as gg
import gridgnn.nn as gridgnn_nn

from helpers import TORCH_CONVS, conv_adjacency, graph_adjacency

MODES = ["zeros", "circular", "reflect", "replicate"]

GEOMETRIES = [
    dict(kernel_size=k, stride=s, padding=p, dilation=d, padding_mode=m)
    for k, s, p, d, m in itertools.product([1, 2, 3], [1, 2], [0, 1, "same"], [1, 2], MODES)
    if not (p == "same" and s > 1)
]


@pytest.mark.parametrize("size", [(7,), (5, 6), (3, 5, 4)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("geo", GEOMETRIES, ids=str)
def test_adjacency_equals_torch_conv_jacobian(size, geo):
    """Every offset's adjacency (with multiplicities) equals the Jacobian of torch's conv.

    A geometry torch rejects for this size is rejected with a ValueError.
    """
    try:
        TORCH_CONVS[len(size)](1, 1, **geo)(torch.zeros(1, 1, *size))
    except RuntimeError:
        with pytest.raises(ValueError):
            gg.grid_graph(size, **geo)
        return
    g = gg.grid_graph(size, **geo)
    expected = conv_adjacency(geo, size)
    actual = graph_adjacency(g.edge_index, g.edge_type, g.num_offsets, g.num_dst_nodes, g.num_src_nodes)
    assert g.out_size == tuple(TORCH_CONVS[len(size)](1, 1, **geo)(torch.zeros(1, 1, *size)).shape[2:])
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


@given(ndim=st.integers(1, 3), data=st.data())
def test_random_geometry_matches_torch(ndim, data):
    k = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
    d = tuple(data.draw(st.integers(1, 2)) for _ in range(ndim))
    s = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
    p = tuple(data.draw(st.integers(0, 2)) for _ in range(ndim))
    mode = data.draw(st.sampled_from(MODES))
    size = tuple(data.draw(st.integers(max(3, (kk - 1) * dd + 1), 6)) for kk, dd in zip(k, d))
    geo = dict(kernel_size=k, stride=s, padding=p, dilation=d, padding_mode=mode)
    g = gg.grid_graph(size, **geo)
    expected = conv_adjacency(geo, size)
    actual = graph_adjacency(g.edge_index, g.edge_type, g.num_offsets, g.num_dst_nodes, g.num_src_nodes)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_in_degree_is_conv_of_ones():
    """Zero padding: a node's in-degree is the number of real pixels under its window."""
    g = gg.grid_graph((6, 7), 3, padding=2, dilation=2)
    ones = torch.nn.functional.conv2d(torch.ones(1, 1, 6, 7), torch.ones(1, 1, 3, 3), padding=2, dilation=2)
    degree = torch.bincount(g.edge_index[1], minlength=g.num_dst_nodes)
    assert torch.equal(degree.float(), ones.flatten())
    full = gg.grid_graph((6, 7), 3, padding=2, dilation=2, padding_mode="circular")
    assert full.num_edges == full.num_dst_nodes * 9


def test_edge_type_is_row_major_kernel_offset():
    g = gg.grid_graph((5, 5), (2, 3), padding=0)
    # target 0 (output (0, 0)) reads input (a, b) through offset t = a * 3 + b
    src = g.edge_index[0][g.edge_index[1] == 0]
    types = g.edge_type[g.edge_index[1] == 0]
    coords = [divmod(int(j), 5) for j in src]
    assert [a * 3 + b for a, b in coords] == types.tolist()


def test_same_padding_even_kernel_is_asymmetric():
    g = gg.grid_graph(6, 4, padding="same")
    assert g.padding == ((1, 2),) and g.out_size == (6,)
    assert gg.grid_graph(6, 4, padding="valid").out_size == (3,)


def test_graph_is_cached_and_vectorised():
    a = gg.grid_graph((8, 8), 3, padding=1)
    assert gg.grid_graph((8, 8), (3, 3), padding=(1, 1)) is a
    assert gg.grid_graph((8, 8), 3, padding=1, padding_mode="circular") is not a


def test_graph_on_device(device):
    g = gg.grid_graph((4, 5), 3, padding=1, device=device)
    assert g.edge_index.device.type == device and g.edge_type.device.type == device
    assert torch.equal(g.to("cpu").edge_index, gg.grid_graph((4, 5), 3, padding=1).edge_index)


def test_counts_and_pos():
    g = gg.grid_graph((3, 4), 3, stride=2, padding=1)
    assert (g.num_src_nodes, g.num_dst_nodes, g.num_offsets) == (12, 4, 9)
    assert g.out_size == (2, 2) and g.in_size == (3, 4)
    assert g.pos.shape == (12, 2) and g.pos.dtype == torch.float
    assert g.pos[5].tolist() == [1.0, 1.0]  # row-major: node 5 = (1, 1) in a 3x4 grid
    assert g.dst_pos.shape == (4, 2)


def test_to_pyg_round_trip():
    from torch_geometric.data import Data

    g = gg.grid_graph((5, 5), 3, padding=1)
    data = g.to_pyg()
    assert isinstance(data, Data) and data.num_nodes == 25
    assert torch.equal(data.edge_index, g.edge_index) and torch.equal(data.edge_type, g.edge_type)
    assert torch.equal(data.pos, g.pos)
    data.validate()
    strided = gg.grid_graph((6, 6), 3, stride=2).to_pyg()
    assert (strided.num_src_nodes, strided.num_dst_nodes) == (36, 4) and strided.dst_pos.shape == (4, 2)


def test_to_networkx_round_trip():
    g = gg.grid_graph((4, 4), 3, padding=1, padding_mode="reflect")
    nxg = g.to_networkx()
    assert isinstance(nxg, nx.MultiDiGraph)
    assert nxg.number_of_nodes() == 16 and nxg.number_of_edges() == g.num_edges
    assert nxg.nodes[6]["coord"] == (1, 2) and nxg.nodes[6]["pos"] == (2.0, -1.0)   # x = column, y = -row
    assert nxg.graph["geometry"] == g.geometry
    edges = sorted((j, i, d["offset"]) for j, i, d in nxg.edges(data=True))
    expected = sorted(zip(*g.edge_index.tolist(), g.edge_type.tolist()))
    assert edges == expected
    some = next(iter(nxg.edges(data=True)))[2]
    assert some["kernel_index"] == divmod(some["offset"], 3)
    bip = gg.grid_graph((4, 4), 2, stride=2).to_networkx()
    assert {n[0] for n in bip.nodes} == {"in", "out"} and bip.number_of_edges() == 16


def test_mask_drops_edges_of_masked_pixels():
    g = gg.grid_graph((5, 5), 3, padding=1)
    mask = torch.rand(5, 5) > 0.3
    m = g.mask(mask)
    assert not m.is_complete and g.is_complete
    assert bool(mask.flatten()[m.edge_index[0]].all())
    assert m.num_edges == int(mask.flatten()[g.edge_index[0]].sum())
    d = g.mask(dst_mask=~mask)
    assert not bool(mask.flatten()[d.edge_index[1]].any())


def test_nodes_image_round_trip():
    x = torch.randn(2, 3, 4, 5)
    xn = gg.to_nodes(x)
    assert xn.shape == (2, 20, 3)
    assert torch.equal(xn[1, 7], x[1, :, 1, 2])
    assert torch.equal(gg.to_image(xn, (4, 5)), x)
    cl = x.contiguous(memory_format=torch.channels_last)
    assert gg.to_nodes(cl).data_ptr() == cl.data_ptr()  # a view, no copy
    assert gg.to_image(gg.to_nodes(cl), (4, 5)).data_ptr() == cl.data_ptr()


def test_graph_for_reads_conv_geometry():
    conv = torch.nn.Conv3d(2, 2, (1, 2, 3), stride=(1, 2, 1), padding="valid", dilation=(1, 1, 2),
                           padding_mode="replicate")
    g = gg.graph_for(conv, (3, 6, 9))
    assert g.kernel_size == (1, 2, 3) and g.padding_mode == "replicate"
    assert g.out_size == tuple(conv(torch.zeros(1, 2, 3, 6, 9)).shape[2:])


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=(4, 4), kernel_size=3, padding=1, padding_mode="reflect", stride=1), None),
    (dict(size=(4, 4), kernel_size=3, padding=4, padding_mode="reflect"), "reflect padding"),
    (dict(size=(3, 3), kernel_size=3, padding=4, padding_mode="circular"), "wraps around"),
    (dict(size=(2, 2), kernel_size=3), "smaller than the dilated kernel"),
    (dict(size=(8, 8), kernel_size=3, dilation=4), "dilated kernel extent 9"),
    (dict(size=(8, 8), kernel_size=3, padding="same", stride=2), "stride 1"),
    (dict(size=(8, 8), kernel_size=3, padding="full"), "padding must be"),
    (dict(size=(8, 8), kernel_size=3, padding_mode="mirror"), "padding_mode"),
    (dict(size=(8, 8), kernel_size=(3, 3, 3)), "size must be"),
    (dict(size=(8, 8), kernel_size=0), "kernel_size must be positive"),
    (dict(size=(8, 8, 8, 8), kernel_size=1), "1, 2 or 3 spatial dims"),
])
def test_bad_geometry_raises_clearly(kwargs, match):
    if match is None:
        gg.grid_graph(**kwargs)
        return
    with pytest.raises(ValueError, match=match):
        gg.grid_graph(**kwargs)


def test_bad_masks_and_node_conversions_raise():
    g = gg.grid_graph((4, 4), 3)
    with pytest.raises(ValueError, match="src_mask must be a bool tensor with 16"):
        g.mask(torch.ones(15, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        g.mask(torch.ones(16))
    with pytest.raises(ValueError, match="to_nodes expects"):
        gg.to_nodes(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="N = prod"):
        gg.to_image(torch.zeros(1, 10, 3), (3, 3))


def test_repr():
    g = gg.grid_graph((4, 4), 3, padding=1)
    assert repr(g) == ("GridGraph(in_size=(4, 4), out_size=(4, 4), kernel_size=(3, 3), stride=(1, 1), "
                       "padding=((1, 1), (1, 1)), dilation=(1, 1), padding_mode='zeros', num_edges=100)")
    assert repr(g.mask(torch.ones(16, dtype=torch.bool))).endswith("num_edges=100, masked)")


def test_cached_graphs_survive_in_place_edits_and_the_cache_is_bounded():
    """An in-place edit through a graph (or its PyG copy) never reaches later grid_graph calls or stale plans."""
    from gridgnn.nn import GridConv

    layer = GridConv(3, 4, 3).double()
    x = torch.randn(1, 36, 3, dtype=torch.float64)
    expected = layer(x, gg.grid_graph((6, 6), 3, padding=1, device="cpu").mask(torch.ones(36, dtype=torch.bool)))
    g = gg.grid_graph((6, 6), 3, padding=1)
    data = g.to_pyg()
    data.edge_index[0].clamp_(max=3)                          # a PyG copy: the graph is untouched
    assert torch.equal(g.edge_index, gg.grid_graph((6, 6), 3, padding=1).edge_index)
    g.edge_index[0].clamp_(max=3)                             # the cached graph itself: the next call rebuilds
    fresh = gg.grid_graph((6, 6), 3, padding=1)
    assert fresh is not g and int(fresh.edge_index[0].max()) == 35
    torch.testing.assert_close(layer(x, fresh.mask(torch.ones(36, dtype=torch.bool))), expected)
    masked = fresh.mask(torch.ones(36, dtype=torch.bool))
    layer(x, masked)                                          # plans built ...
    masked.edge_type.zero_()                                  # ... then the edges edited: the plans follow
    reference = gg.GridGraph(masked.geometry, masked.edge_index.clone(), masked.edge_type.clone(), False)
    torch.testing.assert_close(layer(x, masked), layer(x, reference))
    gg.set_graph_cache_size(2)
    try:
        graphs = [gg.grid_graph((n, n), 3) for n in (5, 6, 7)]
        assert gg.grid_graph((5, 5), 3) is not graphs[0]      # evicted: least recently used first
        assert gg.grid_graph((7, 7), 3) is graphs[2]
        gg.clear_graph_cache()
        assert gg.grid_graph((7, 7), 3) is not graphs[2]
    finally:
        gg.set_graph_cache_size(128)


def test_a_graph_too_large_is_refused_before_allocating():
    with pytest.raises(ValueError, match="would hold up to 9e\\+10 edges"):
        gg.grid_graph((100000, 100000), 3)


def test_networkx_drawing_positions_outputs_in_input_units_and_masks():
    """Strided outputs sit at their windows' centres in input-grid units; masked pixels are dropped."""
    conv = torch.nn.Conv2d(1, 1, 3, stride=2, padding=1)
    G = gg.graph_for(conv, (5, 5)).to_networkx()
    for i, (r, c) in enumerate([(r, c) for r in range(3) for c in range(3)]):
        # output (r, c) reads input rows 2r-1 .. 2r+1: its window's centre is input (2r, 2c)
        assert G.nodes[("out", i)]["pos"] == (2.0 * c, -2.0 * r)
        window = {G.nodes[j]["coord"] for j, _ in G.in_edges(("out", i))}
        assert window == {(y, x) for y in range(2 * r - 1, 2 * r + 2) for x in range(2 * c - 1, 2 * c + 2)
                          if 0 <= y < 5 and 0 <= x < 5}
    transposed = gg.graph_for(torch.nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1), (3, 3)).to_networkx()
    assert transposed.graph["transposed"] and transposed.nodes[("in", 4)]["pos"] == (2.0, -2.0)
    keep = torch.zeros(16, dtype=torch.bool)
    keep[[0, 1, 4, 5]] = True
    masked = gg.grid_graph((4, 4), 3, padding=1).mask(keep, keep).to_networkx()
    assert sorted(masked.nodes) == [0, 1, 4, 5]
    assert gg.grid_graph((4,), 3).to_networkx().nodes[("in", 2)]["pos"] == (2.0, 0.0)


def test_meta_device_graphs_and_layers():
    """``device="meta"``: graphs with the right shapes (counted on the CPU) and dense layers that trace shapes."""
    g = gg.grid_graph((5, 4), 3, padding=1, device="meta")
    cpu = gg.grid_graph((5, 4), 3, padding=1)
    assert g.edge_index.device.type == "meta" and g.edge_index.shape == cpu.edge_index.shape
    layer = gridgnn_nn.GridConv2d(3, 4, 3, stride=2, padding=1, device="meta")
    assert layer(torch.empty(2, 3, 8, 8, device="meta")).shape == (2, 4, 4, 4)
