import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import gridgnn as gg
from gridgnn.nn import GridConv

from helpers import TORCH_CONVS

SIZES = {1: (13,), 2: (9, 8), 3: (6, 5, 7)}


def sparse_input(nd, batch=2, channels=4, density=0.3, dtype=torch.float64, size=None):
    size = SIZES[nd] if size is None else size
    keep = torch.rand(batch, 1, *size) < density
    return torch.randn(batch, channels, *size, dtype=dtype) * keep


def at_sites(dense, coords, batch):
    """Rows of a dense output [B, C, *S] at the given sites: [M, C] (an independent read-out)."""
    index = (torch.zeros(len(coords), dtype=torch.long) if batch is None else batch,) + tuple(coords.t())
    return dense.movedim(1, -1)[index]


def check_against_torch(conv, x, **graph_kwargs):
    feats, coords, batch = gg.to_sparse(x)
    g = gg.sparse_grid_graph(coords, conv.kernel_size, conv.stride, conv.padding if not graph_kwargs.get(
        "submanifold") else 0, conv.dilation, size=x.shape[2:], batch=batch, **graph_kwargs)
    layer = GridConv.from_conv(conv)
    feats = feats.clone().requires_grad_()
    y = layer(feats, g)
    xr = x.clone().requires_grad_()
    ref_dense = conv(xr)
    ref = at_sites(ref_dense, g.out_coords, g.out_batch)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-12)
    if not graph_kwargs.get("submanifold"):   # every other output site reads no active input: bias alone
        others = torch.ones(ref_dense.shape[0], *ref_dense.shape[2:], dtype=torch.bool)
        others[(g.out_batch,) + tuple(g.out_coords.t())] = False
        torch.testing.assert_close(ref_dense.movedim(1, -1)[others], conv.bias.expand(int(others.sum()), -1))
    grad = torch.randn_like(y)
    y.backward(grad)
    ref.backward(grad)
    no_grad = torch.zeros_like                                  # no edge at all: nothing depends on the inputs
    torch.testing.assert_close(feats.grad if feats.grad is not None else no_grad(feats),
                               at_sites(xr.grad, coords, batch), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(layer.weight.grad if layer.weight.grad is not None else no_grad(layer.weight),
                               conv.weight.grad, rtol=1e-10, atol=1e-12)
    return g


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("k, s, p, d", list(itertools.product([1, 2, 3], [1, 2], [0, 1], [1, 2])))
def test_strided_maps_equal_torchs_conv_on_the_zero_filled_grid(nd, k, s, p, d):
    for groups in (1, 2):
        conv = TORCH_CONVS[nd](4, 6, k, s, p, d, groups).double()
        if any((n + 2 * p - d * (k - 1) - 1) < 0 for n in SIZES[nd]):
            continue
        check_against_torch(conv, sparse_input(nd))


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("k, d", [(1, 1), (2, 1), (3, 1), (3, 2), (4, 3)])
def test_submanifold_maps_equal_torchs_same_conv_at_the_input_sites(nd, k, d):
    conv = TORCH_CONVS[nd](4, 6, k, padding="same", dilation=d).double()
    x = sparse_input(nd)
    g = check_against_torch(conv, x, submanifold=True)
    feats, coords, batch = gg.to_sparse(x)
    assert torch.equal(g.out_coords, coords) and torch.equal(g.out_batch, batch)


@given(nd=st.integers(1, 3), k=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 2),
       density=st.floats(0.0, 1.0), data=st.data())
def test_random_geometries_and_densities(nd, k, s, d, density, data):
    p = data.draw(st.integers(0, 2))
    size = tuple(data.draw(st.integers(1, 7)) for _ in range(nd))
    if any(n + 2 * p - d * (k - 1) - 1 < 0 for n in size):
        with pytest.raises(ValueError, match="smaller than the dilated kernel"):
            gg.sparse_grid_graph(torch.zeros(1, nd, dtype=torch.long), k, s, p, d, size=size)
        return
    x = sparse_input(nd, density=density, size=size)
    conv = TORCH_CONVS[nd](4, 6, k, s, p, d).double()
    check_against_torch(conv, x)


def test_density_zero_and_one():
    conv = nn.Conv2d(4, 6, 3, 2, 1).double()
    empty = torch.zeros(1, 4, 6, 6, dtype=torch.float64)
    feats, coords, batch = gg.to_sparse(empty)
    g = gg.sparse_grid_graph(coords, 3, 2, 1, size=(6, 6), batch=batch)
    assert g.num_src_nodes == g.num_dst_nodes == g.num_edges == 0
    assert GridConv.from_conv(conv)(feats, g).shape == (0, 6)
    full = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    g = check_against_torch(conv, full)
    assert g.num_dst_nodes == 9                                              # every output of the 3x3 grid


def test_gradcheck_float64():
    x = sparse_input(2, batch=1, channels=2, size=(5, 5), density=0.5)
    feats, coords, batch = gg.to_sparse(x)
    g = gg.sparse_grid_graph(coords, 3, 2, 1, size=(5, 5), batch=batch)
    layer = GridConv(2, 3, 3).double()
    feats.requires_grad_()
    assert torch.autograd.gradcheck(lambda f, w: torch.func.functional_call(layer, {"weight": w,
                                                                                   "bias": layer.bias}, (f, g)),
                                    (feats, layer.weight))


def test_inverse_map_is_the_transposed_conv_at_the_fine_sites():
    """A strided map's transpose brings coarse features back to the fine sites: ConvTranspose read there."""
    x = sparse_input(2, batch=2)
    feats, coords, batch = gg.to_sparse(x)
    down = gg.sparse_grid_graph(coords, 2, 2, 0, size=(9, 8), batch=batch)
    up = down.transpose()
    assert up.transposed and up.num_src_nodes == down.num_dst_nodes and up.num_dst_nodes == down.num_src_nodes
    convt = nn.ConvTranspose2d(4, 6, 2, 2, bias=False).double()
    coarse = torch.randn(down.num_dst_nodes, 4, dtype=torch.float64)
    y = GridConv.from_conv(convt)(coarse, up)
    coarse_dense = gg.to_dense(coarse, down.out_coords, down.out_batch, down.out_size, batch_size=2)
    ref_dense = convt(coarse_dense, output_size=(9, 8))
    torch.testing.assert_close(y, at_sites(ref_dense, coords, batch), rtol=1e-10, atol=1e-12)


def test_to_sparse_and_to_dense_round_trip_and_pyg():
    x = sparse_input(3, batch=3, channels=2)
    feats, coords, batch = gg.to_sparse(x)
    assert feats.shape == (int((x != 0).any(1).sum()), 2) and coords.shape[1] == 3
    torch.testing.assert_close(gg.to_dense(feats, coords, batch, x.shape[2:], batch_size=3), x)
    g = gg.sparse_grid_graph(coords, 3, padding=1, size=x.shape[2:], batch=batch, submanifold=True)
    data = g.to_pyg()
    assert data.edge_index is g.edge_index and torch.equal(data.batch, batch) and data.pos.shape == coords.shape
    assert "SparseGridGraph(" in repr(g)
    # samples never connect
    assert bool((batch[g.edge_index[0]] == g.out_batch[g.edge_index[1]]).all())


def test_bad_input_is_named():
    coords = torch.tensor([[0, 1], [2, 3]])
    with pytest.raises(ValueError, match="duplicate sites"):
        gg.sparse_grid_graph(torch.tensor([[0, 1], [0, 1]]), 3, padding=1)
    with pytest.raises(ValueError, match="non-negative"):
        gg.sparse_grid_graph(torch.tensor([[0, -1]]), 3, size=(4, 4))
    with pytest.raises(TypeError, match="integer tensor"):
        gg.sparse_grid_graph(coords.float(), 3)
    with pytest.raises(ValueError, match="one entry per site"):
        gg.sparse_grid_graph(coords, 3, batch=torch.tensor([0]))
    with pytest.raises(ValueError, match="every coordinate must be < size"):
        gg.sparse_grid_graph(coords, 1, size=(2, 2))
    with pytest.raises(ValueError, match="\\[M, D\\] with D = 1, 2 or 3"):
        gg.sparse_grid_graph(torch.zeros(3, 4, dtype=torch.long), 3)
    g = gg.sparse_grid_graph(coords, 3, padding=1, submanifold=True)
    with pytest.raises(ValueError, match="x has 3 nodes but the graph has 2 source nodes"):
        GridConv(4, 4, 3)(torch.randn(3, 4), g)
    with pytest.raises(ValueError, match="feats must be \\[M, C\\]"):
        gg.to_dense(torch.randn(3, 2), coords, None, (4, 4))


def test_pyg_dataloader_batches_equal_per_sample_runs():
    """Samples of different sizes and extents as PyG Data objects, batched by DataLoader, through one GridConv."""
    from torch_geometric.data import Data
    from torch_geometric.loader import DataLoader

    conv = nn.Conv2d(3, 5, 3, padding=1, bias=False).double()
    layer = GridConv.from_conv(conv)
    samples, expected = [], []
    for size in ((5, 7), (9, 4), (6, 6)):
        x = sparse_input(2, batch=1, channels=3, size=size, density=0.4)
        feats, coords, _ = gg.to_sparse(x)
        g = gg.sparse_grid_graph(coords, 3, size=size, submanifold=True)
        samples.append(Data(x=feats, edge_index=g.edge_index, edge_type=g.edge_type, num_nodes=len(coords)))
        expected.append(at_sites(conv(x), coords, None))
    batch = next(iter(DataLoader(samples, batch_size=3)))
    out = layer(batch.x, batch.edge_index, batch.edge_type)
    torch.testing.assert_close(out, torch.cat(expected), rtol=1e-10, atol=1e-12)


def test_networkx_view():
    coords = torch.tensor([[0, 0], [0, 1], [3, 3]])
    g = gg.sparse_grid_graph(coords, 3, padding=1, submanifold=True)
    nxg = g.to_networkx()
    assert nxg.number_of_edges() == g.num_edges and nxg.nodes[("in", 2)]["coord"] == (3, 3)
    assert nxg.nodes[("in", 2)]["pos"] == (3.0, -3.0)                            # drawing order: x right, y up
    assert sorted(d["offset"] for _, _, d in nxg.edges(data=True)) == sorted(g.edge_type.tolist())


def test_graph_moves_to_every_device(device):
    x = sparse_input(2, batch=2, channels=3)
    feats, coords, batch = gg.to_sparse(x)
    g = gg.sparse_grid_graph(coords, 3, 2, 1, size=x.shape[2:], batch=batch).to(device)
    assert g.edge_index.device.type == g.out_coords.device.type == device
    conv = nn.Conv2d(3, 4, 3, 2, 1).double()
    out = GridConv.from_conv(conv).to(device)(feats.to(device), g).cpu()
    torch.testing.assert_close(out, at_sites(conv(x), g.out_coords.cpu(), g.out_batch.cpu()))
