"""The two orders of the general path (per offset, transform first) and the choice between them."""
import itertools

import pytest
import torch

import gridgnn as gg
from gridgnn.nn import GridConv
from gridgnn.nn._general import general_conv
from gridgnn.nn._offset_plan import (
    TRANSFORM_FIRST_MAX_ROWS_PER_EDGE,
    transform_first_conv,
    transform_plan,
)
from gridgnn.nn._target_blocks import per_offset_conv, target_block_conv, target_blocks

from helpers import dense_typed_conv, graph_adjacency

ORDERS = {"per_offset": per_offset_conv, "transform_first": transform_first_conv, "target_blocks": target_block_conv}
MASKS = ["none", "src", "dst", "both"]


def masked(graph, which, seed=0):
    gen = torch.Generator().manual_seed(seed)
    src = torch.rand(graph.num_src_nodes, generator=gen) < 0.6
    dst = torch.rand(graph.num_dst_nodes, generator=gen) < 0.6
    return {"none": graph, "src": graph.mask(src), "dst": graph.mask(dst_mask=dst),
            "both": graph.mask(src, dst)}[which]


def reference(x, graph, weight, groups):
    adj = graph_adjacency(graph.edge_index, graph.edge_type, graph.num_offsets, graph.num_dst_nodes,
                          graph.num_src_nodes)
    return dense_typed_conv(x, adj, weight, None, groups)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("k, stride, dilation, mode, mask", [
    cfg for cfg in itertools.product([2, 3], [1, 2], [1, 2], ["zeros", "circular", "replicate"], MASKS)])
def test_orders_equal_dense_reference(order, k, stride, dilation, mode, mask):
    graph = masked(gg.grid_graph((7, 6), k, stride=stride, padding=1, dilation=dilation, padding_mode=mode), mask)
    weight = torch.randn(5, 4, k, k, dtype=torch.float64)
    x = torch.randn(3, graph.num_src_nodes, 4, dtype=torch.float64)
    expected = reference(x, graph, weight, 1)
    torch.testing.assert_close(ORDERS[order](x, graph, weight, 1), expected)
    torch.testing.assert_close(ORDERS[order](x[1], graph, weight, 1), expected[1])  # unbatched


@pytest.mark.parametrize("groups", [2, 4])
def test_transform_first_grouped(groups):
    graph = masked(gg.grid_graph((5, 6), 3, padding=1), "src")
    weight = torch.randn(8, 4 // groups, 3, 3, dtype=torch.float64)
    x = torch.randn(2, 30, 4, dtype=torch.float64)
    torch.testing.assert_close(transform_first_conv(x, graph, weight, groups), reference(x, graph, weight, groups))


@pytest.mark.parametrize("mask", MASKS)
def test_transform_first_gradients_of_every_order(mask):
    """The gather-sum is its own adjoint pair, so double backward works (embedding_bag's own does not)."""
    graph = masked(gg.grid_graph((4, 5), 3, padding=1, padding_mode="reflect"), mask)
    x = torch.randn(2, 20, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w: transform_first_conv(x, graph, w, 1)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w))


def test_edgeless_graph_gives_zeros():
    graph = gg.grid_graph((4, 4), 3, padding=1).mask(torch.zeros(16, dtype=torch.bool))
    x = torch.randn(2, 16, 3)
    for order in ORDERS.values():
        assert torch.equal(order(x, graph, torch.randn(2, 3, 3, 3), 1), torch.zeros(2, 16, 2))


@pytest.mark.parametrize("graph, expected", [
    (gg.grid_graph((20, 20), 3, padding=1), "transform_first"),                    # every source sends ~K edges
    (masked(gg.grid_graph((20, 20), 3, padding=1), "src"), "transform_first"),     # masked input pixels too
    (masked(gg.grid_graph((20, 20), 3, padding=1), "dst"), "target_block"),        # masked outputs: ~0.6 K per source
    (gg.grid_graph((20, 20), 3, stride=2, padding=1), "target_block"),             # stride 2: ~K/4 per source
], ids=["complete", "src-mask", "dst-mask", "stride-2"])
def test_general_path_picks_the_order_with_fewer_wasted_macs(graph, expected, monkeypatch):
    rows_per_edge = transform_plan(graph).gather.num_rows / graph.num_edges
    assert (rows_per_edge <= TRANSFORM_FIRST_MAX_ROWS_PER_EDGE) == (expected == "transform_first")
    called = []
    import gridgnn.nn._general as general
    for name, f in [("transform_first", transform_first_conv), ("target_block", target_block_conv)]:
        monkeypatch.setattr(general, f"{name}_conv", lambda *a, name=name, f=f: called.append(name) or f(*a))
    general_conv(torch.randn(1, graph.num_src_nodes, 2), graph, torch.randn(2, 2, 3, 3), 1)
    assert called == [expected]


def test_general_path_on_device(device):
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).double().to(device)
    mask = torch.rand(6, 7, device=device) > 0.3
    graph = gg.graph_for(conv, (6, 7)).mask(mask)
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64, device=device)
    layer = GridConv.from_conv(conv, path="general")
    torch.testing.assert_close(layer(gg.to_nodes(x), graph), gg.to_nodes(conv(x * mask)))


@pytest.mark.parametrize("mask", ["src", "dst"])
def test_general_path_compiles_fullgraph_once_planned(mask):
    """Plans are built (one host sync) on the first eager call; after that the path traces whole."""
    layer = GridConv(4, 6, 3, path="general")
    graph = masked(gg.grid_graph((6, 6), 3, padding=1), mask)
    x = torch.randn(2, 36, 4, requires_grad=True)
    expected = layer(x, graph)
    compiled = torch.compile(lambda x: layer(x, graph), backend="aot_eager", fullgraph=True)
    y = compiled(x)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(torch.autograd.grad(y.sum(), x)[0], torch.autograd.grad(expected.sum(), x)[0])


@pytest.fixture
def small_blocks(monkeypatch):
    """Target blocks of a few in-edges, so small graphs run through many blocks."""
    import gridgnn.nn._target_blocks as blocks
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 1)
    monkeypatch.setattr(blocks, "MIN_BLOCK_ROWS", 7)


@pytest.mark.parametrize("c_in, c_out, groups", [(4, 6, 1), (4, 6, 2), (6, 6, 6), (3, 6, 3)])
@pytest.mark.parametrize("stride, mask", [(1, "both"), (2, "none"), (1, "dst")])
def test_target_blocks_equal_dense_reference(small_blocks, c_in, c_out, groups, stride, mask):
    graph = masked(gg.grid_graph((7, 6), 3, stride=stride, padding=1), mask)
    assert len(target_blocks(torch.zeros(1, 1, c_in), graph, torch.zeros(c_out, c_in // groups, 3, 3))) > 3
    weight = torch.randn(c_out, c_in // groups, 3, 3, dtype=torch.float64)
    x = torch.randn(3, graph.num_src_nodes, c_in, dtype=torch.float64)
    expected = reference(x, graph, weight, groups)
    for order in (target_block_conv, per_offset_conv):
        torch.testing.assert_close(order(x, graph, weight, groups), expected)
        torch.testing.assert_close(order(x[1], graph, weight, groups), expected[1])            # unbatched


@pytest.mark.parametrize("channels, groups", [(2, 1), (2, 2), (4, 2)], ids=["dense", "depthwise", "grouped"])
def test_target_blocks_gradients_of_every_order(small_blocks, channels, groups):
    """Backward on the reversed edges, differentiable again; batched gradients as gradcheck asks for them."""
    graph = masked(gg.grid_graph((4, 4), 3, stride=(1, 2), padding=1, padding_mode="circular"), "dst")
    x = torch.randn(2, graph.num_src_nodes, channels, dtype=torch.float64, requires_grad=True)
    w = torch.randn(channels, channels // groups, 3, 3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w: target_block_conv(x, graph, w, groups)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w), check_batched_grad=True, check_forward_ad=True)
    assert torch.autograd.gradgradcheck(fn, (x, w))


def test_target_blocks_read_expanded_gradients_once():
    """``y.sum().backward()`` hands an expanded gradient: it matches the plain order's gradients."""
    graph = masked(gg.grid_graph((6, 6), 3, padding=1), "both")
    x = torch.randn(graph.num_src_nodes, 3, requires_grad=True)
    w = torch.randn(5, 3, 3, 3, requires_grad=True)
    grads = [torch.autograd.grad(order(x, graph, w, 1).sum(), (x, w)) for order in (target_block_conv, per_offset_conv)]
    for ours, plain in zip(*grads):
        torch.testing.assert_close(ours, plain)


def test_target_blocks_read_consecutive_sources_as_slices(small_blocks):
    """Where an offset's sources in a block are j, j+1, ... (the centre tap) they are read as a slice, not gathered."""
    graph = masked(gg.grid_graph((6, 7), 3, padding=1), "src")                    # masked sources break runs
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    blocks = target_blocks(torch.zeros(1, 1, 2), graph, weight)
    runs = [(run, src) for b in blocks for (_, src, _), run in zip(b.offsets, b.runs)]
    assert any(run >= 0 for run, _ in runs) and any(run < 0 for run, _ in runs)
    for run, src in runs:
        consecutive = torch.equal(src, torch.arange(src[0], src[0] + src.numel()))
        assert (run >= 0) == consecutive and (run < 0 or run == src[0])
    x = torch.randn(2, graph.num_src_nodes, 2, dtype=torch.float64)
    torch.testing.assert_close(target_block_conv(x, graph, weight, 1), reference(x, graph, weight, 1))


def test_scratch_buffers_are_per_thread_and_never_returned():
    """The kept CPU scratch is private to a thread, and no result of the path is a view of it."""
    import threading

    from gridgnn.nn._target_blocks import scratch
    like = torch.zeros(1)
    a, b = scratch(like, (3, 4), (5,))
    assert a.shape == (3, 4) and b.shape == (5,) and a.data_ptr() + 12 * 4 == b.data_ptr()    # disjoint views
    other = []
    thread = threading.Thread(target=lambda: other.append(scratch(like, (3, 4))[0].data_ptr()))
    thread.start()
    thread.join()
    assert other[0] != a.data_ptr()
    graph = masked(gg.grid_graph((6, 6), 3, padding=1), "dst")
    weight = torch.randn(4, 3, 3, 3)
    x1, x2 = torch.randn(2, 36, 3), torch.randn(2, 36, 3)
    y1 = target_block_conv(x1, graph, weight, 1)
    kept = y1.clone()
    target_block_conv(x2, graph, weight, 1)                                 # reuses the scratch, not y1
    assert torch.equal(y1, kept)
    torch.testing.assert_close(y1, reference(x1, graph, weight, 1), rtol=1e-5, atol=1e-5)
