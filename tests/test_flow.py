import itertools
import random

import matplotlib
import pytest
import torch
from torch import nn

import gridgnn as gg
from gridgnn import flow
from gridgnn.flow import (
    Concat,
    Conv,
    Depthwise,
    Identity,
    Permute,
    Pointwise,
    Residual,
    Shuffle,
    Split,
    from_module,
    group_partition,
    is_complementary,
    mixing_depth,
    path_counts,
    reachability,
)
from gridgnn.nn import ChannelShuffle, GridConv2d, NodeLinear
from gridgnn.nn.shuffle import shuffle_permutation

matplotlib.use("Agg")


def jacobian_pattern(module, channels, size=(3, 3)):
    """Channel dependency pattern [C_out, C_in] of a torch module, from its autograd Jacobian."""
    module = module.double().eval()
    x = torch.randn(1, channels, *size, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda x: module(x), x)   # [1, C_out, *S, 1, C_in, *S]
    c_out = jac.shape[1]
    return jac.abs().reshape(c_out, -1, channels, size[0] * size[1]).sum((1, 3)) > 0


def random_stack(rng, channels):
    layers = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.choice(["pw", "shuffle", "dw", "conv", "relu"])
        divisors = [g for g in range(1, channels + 1) if channels % g == 0]
        g = rng.choice(divisors)
        if kind == "pw":
            layers.append(nn.Conv2d(channels, channels, 1, groups=g))
        elif kind == "shuffle":
            layers.append(nn.ChannelShuffle(g))
        elif kind == "dw":
            layers.append(nn.Conv2d(channels, channels, 3, padding=1, groups=channels))
        elif kind == "conv":
            layers.append(nn.Conv2d(channels, channels, 3, padding=1, groups=g))
        else:
            layers.append(nn.ReLU() if rng.random() < 0.5 else nn.BatchNorm2d(channels))
    return nn.Sequential(*layers)


@pytest.mark.parametrize("seed", range(25))
def test_reachability_equals_jacobian_pattern_of_random_torch_stacks(seed):
    rng = random.Random(seed)
    channels = rng.choice([4, 6, 8, 12])
    stack = random_stack(rng, channels)
    specs = from_module(stack, channels)
    assert torch.equal(reachability(specs, channels), jacobian_pattern(stack, channels))
    # mixing_depth is the first fully mixed prefix of the real stack
    full = [bool(jacobian_pattern(stack[:i], channels).all()) for i in range(1, len(stack) + 1)]
    assert mixing_depth(specs, channels) == (full.index(True) + 1 if True in full else None)


def test_gridgnn_layers_are_read_too():
    stack = nn.Sequential(NodeLinear(8, 8, groups=2), ChannelShuffle(2), nn.Sequential(GridConv2d(8, 8, 3, groups=4)),
                          nn.GroupNorm(2, 8))
    assert flow.from_module(stack, 8) == [Pointwise(2, 8), Shuffle(2), Conv((3, 3), 4, 8), Pointwise(2)]


def test_without_shuffle_groups_never_meet():
    specs = [Pointwise(4), Depthwise(), Conv(3, 4)] * 10
    for reach in flow.reachability_by_depth(specs, 16)[1:]:
        blocks = torch.block_diag(*[torch.ones(4, 4, dtype=torch.bool)] * 4)
        assert torch.equal(reach, blocks)
    assert mixing_depth(specs, 16) is None


def test_closed_form_mixing_of_shufflenet_units():
    for channels in range(2, 65):
        for groups in [g for g in range(1, channels + 1) if channels % g == 0 and channels // g >= 2]:
            layers = flow.shuffle_mixing_layers(channels, groups)
            specs = ([Pointwise(groups), Shuffle(groups)] * (layers + 2))[:-1]
            assert mixing_depth(specs, channels) == 2 * layers - 1, (channels, groups)
    assert flow.shuffle_mixing_layers(8, 8) is None


def shufflenet_v2_unit(channels):
    half = channels // 2

    class Unit(nn.Module):
        def __init__(self):
            super().__init__()
            self.branch = nn.Sequential(nn.Conv2d(half, half, 1), nn.ReLU(),
                                        nn.Conv2d(half, half, 3, padding=1, groups=half), nn.Conv2d(half, half, 1))

        def forward(self, x):
            left, right = x.chunk(2, dim=1)
            return nn.functional.channel_shuffle(torch.cat([left, self.branch(right)], 1), 2)

    return Unit()


def test_shufflenet_v2_units_with_split_and_concat():
    channels = 8
    unit_spec = [Split((4, 4), [], [Pointwise(), Identity(), Depthwise(), Pointwise()]), Shuffle(2)]
    units = nn.Sequential(*[shufflenet_v2_unit(channels) for _ in range(3)])
    for n in range(1, 4):
        assert torch.equal(reachability(unit_spec * n, channels), jacobian_pattern(units[:n], channels))
    # the left half passes through and the shuffle keeps channel 0 in place: output 0 stays a copy of
    # input 0, so stacked basic units never mix fully (only the stride-2 units below do)
    reach = reachability(unit_spec * 6, channels)
    assert mixing_depth(unit_spec * 6, channels) is None and reach[0].sum() == 1 and reach[1:].any(1).all()
    # a stride-2 unit: both branches read the full input
    down = Concat([Depthwise(), Pointwise()], [Pointwise(), Depthwise(), Pointwise()])
    assert reachability([down, Shuffle(2)], 4).all() and down.num_out(4) == 8


def test_residual_adds_the_identity():
    reach = reachability([Residual(Pointwise(2), Shuffle(2), Pointwise(2))], 4)
    body = reachability([Pointwise(2), Shuffle(2), Pointwise(2)], 4)
    assert torch.equal(reach, body | torch.eye(4, dtype=torch.bool))
    assert torch.equal(reachability([Permute([2, 0, 1])], 3), torch.eye(3, dtype=torch.bool)[[2, 0, 1]])


def test_complementary_pair_mixes_in_two_layers_with_one_path_each():
    for outer, inner in [(2, 3), (4, 4), (3, 5)]:
        channels = outer * inner
        specs = [Pointwise(outer), Shuffle(outer), Pointwise(inner)]
        written = group_partition(channels, outer)                       # first layer's output groups
        read = group_partition(channels, inner, shuffle_permutation(channels, outer))  # second layer's input groups
        assert is_complementary(written, read)
        assert torch.equal(path_counts(specs, channels), torch.ones(channels, channels, dtype=torch.long))
        assert not is_complementary(written, group_partition(channels, inner))  # no shuffle: not complementary
    assert is_complementary([[0, 1], [2, 3]], [[0, 2], [1, 3]])
    assert not is_complementary([[0, 1], [2, 3]], [[0, 1], [2, 3]])


def test_flow_graph_and_drawings():
    specs = [Pointwise(2), Shuffle(2), Pointwise(2)]
    graph = flow.flow_graph(specs, 4)
    assert graph.number_of_nodes() == 16
    assert graph.number_of_edges() == sum(int(flow.connectivity(s, 4).sum()) for s in specs)
    assert graph.has_edge((0, 0), (1, 1)) and not graph.has_edge((0, 0), (1, 2))
    assert graph.nodes[(2, 1)]["pos"] == (2, -1)
    import networkx as nx
    reach = reachability(specs, 4)
    for o, i in itertools.product(range(4), range(4)):
        assert nx.has_path(graph, (0, i), (3, o)) == bool(reach[o, i])
    ax = flow.draw_flow_graph(specs, 4, highlight=0)
    assert ax.get_title().startswith("message flow")
    axes = flow.plot_reachability(specs, 4)
    assert len(axes) == 3 and "100% reached" in axes[-1].get_title()


@pytest.mark.parametrize("layers", [
    [(3, 1, 1, 1), (1, 1, 0, 1), (3, 1, 1, 1)],
    [(3, 2, 1, 1), (3, 1, 2, 2), (1, 1, 0, 1)],
    [(1, 1, 0, 1), (1, 1, 0, 1)],
    [(5, 1, 2, 1), (3, 2, 0, 1)],
])
def test_receptive_field_equals_jacobian_pattern(layers):
    size = (11, 12)
    graphs, convs = [], []
    for k, s, p, d in layers:
        graphs.append(gg.grid_graph(size if not graphs else graphs[-1].out_size, k, s, p, d))
        convs.append(nn.Conv2d(1, 1, k, s, p, d, bias=False))
    stack = nn.Sequential(*convs).double()
    with torch.no_grad():
        for c in convs:
            c.weight.uniform_(0.5, 1.0)
    out_size = graphs[-1].out_size
    position = (out_size[0] // 2, out_size[1] // 2)
    jac = torch.autograd.functional.jacobian(lambda x: stack(x[None, None])[0, 0][position],
                                             torch.zeros(size, dtype=torch.float64))
    field = gg.receptive_field(graphs, position)
    assert torch.equal(field, jac != 0)
    if all(k == 1 for k, *_ in layers):
        assert int(field.sum()) == 1  # 1x1 layers never grow it
    with pytest.warns(DeprecationWarning, match="moved to gridgnn.receptive_field"):
        assert torch.equal(flow.receptive_field(graphs, position), field)


def test_receptive_field_rejects_positions_outside_the_output_grid():
    graphs = [gg.grid_graph((8, 8), 3, padding=1)]
    with pytest.raises(ValueError, match="position \\(0, 9\\) is not a coordinate of the output grid"):
        gg.receptive_field(graphs, (0, 9))
    with pytest.raises(ValueError, match="position 64 is outside the 64 output nodes"):
        gg.receptive_field(graphs, 64)


def test_spec_arguments_and_path_count_overflow():
    with pytest.raises(ValueError, match="Pointwise: groups must be a positive int, got 0"):
        Pointwise(groups=0)
    with pytest.raises(ValueError, match="Depthwise: multiplier must be a positive int, got 0"):
        flow.Depthwise(multiplier=0)
    dense16 = [Pointwise()] * 16
    assert int(flow.path_counts(dense16, 16)[0, 0]) == 16 ** 15        # independent: 16 choices per hidden layer
    with pytest.raises(OverflowError, match="exceeds int64 at spec 17"):
        flow.path_counts(dense16 + [Pointwise()], 16)


def test_from_module_reads_channelwise_layers_and_transposed_convs():
    stack = nn.Sequential(nn.Conv2d(8, 8, 1, groups=2), nn.Dropout2d(), nn.PReLU(), nn.Upsample(scale_factor=2),
                          nn.ConvTranspose2d(8, 8, 2, 2, groups=4), nn.InstanceNorm2d(8))
    specs = flow.from_module(stack, 8)
    assert [type(s).__name__ for s in specs] == ["Pointwise", "Identity", "Identity", "Identity", "Conv",
                                                 "Identity"]
    assert specs[4].groups == 4


def test_bad_specs_raise_clearly():
    with pytest.raises(ValueError, match="spec 1 .*in_channels=8 is not divisible by groups=3"):
        reachability([Pointwise(2), Pointwise(3)], 8)
    with pytest.raises(ValueError, match="not divisible by groups=3"):
        reachability([Shuffle(3)], 8)
    with pytest.raises(ValueError, match="Residual: the body maps 8 channels to 16"):
        reachability([Residual(Pointwise(1, 16))], 8)
    with pytest.raises(ValueError, match="chunk sizes"):
        reachability([Split((3, 3), [], [])], 8)
    with pytest.raises(ValueError, match="permutation of range\\(3\\)"):
        reachability([Permute([0, 0, 1])], 3)
    with pytest.raises(ValueError, match="positive int"):
        reachability([], 0)
    with pytest.raises(TypeError, match="unsupported module 1 \\(Linear\\)"):
        from_module(nn.Sequential(nn.ReLU(), nn.Linear(4, 4)), 4)
    with pytest.raises(ValueError, match="0 expects 4 input channels but 6 reach it"):
        from_module(nn.Sequential(nn.Conv2d(4, 4, 1)), 6)
    with pytest.raises(ValueError, match="two blocks"):
        is_complementary([[0, 1], [1, 2]], [[0], [1], [2]])


def test_runs_on_gpu_when_present(device):
    specs = [Pointwise(4), Shuffle(4), Pointwise(4)]
    assert reachability(specs, 16, device=device).device.type == device
    assert mixing_depth(specs, 16, device=device) == 3


def test_fast_at_scale():
    import time

    specs = [Pointwise(8), Shuffle(8)] * 50
    start = time.perf_counter()
    reach = reachability(specs, 1024)
    assert reach.all() and time.perf_counter() - start < 5.0  # generous bound; benchmarks/ measures properly


class _ResidualShuffle(torch.nn.Module):
    """ShuffleNet-style: grouped 1x1, shuffle, depthwise, grouped 1x1, added to the input."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Conv2d(8, 8, 1, groups=4), torch.nn.ChannelShuffle(4),
                                           torch.nn.Conv2d(8, 8, 3, padding=1, groups=8),
                                           torch.nn.Conv2d(8, 8, 1, groups=4)])

    def forward(self, x):
        y = x
        for layer in self.layers:
            y = torch.nn.functional.leaky_relu(layer(y))        # no zero gradient: autograd sees every path
        return x + y


class _TwoBranches(torch.nn.Module):
    """Inception-style: two grouped branches from one stem, concatenated along channels."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(6, 6, 1, groups=3)
        self.a = torch.nn.Conv2d(6, 4, 1, groups=2)
        self.b = torch.nn.Sequential(torch.nn.Conv2d(6, 6, 3, padding=1, groups=6), torch.nn.Dropout2d())

    def forward(self, x):
        x = self.stem(x)
        return torch.cat([self.a(x), self.b(x)], dim=1)


def _channel_reach(module, channels):
    """Independent of gridgnn.flow: which output channel depends on which input channel, by autograd."""
    module = module.double().eval()
    x = torch.randn(1, channels, 5, 5, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: module(t), x)        # [1, C_out, H, W, 1, C_in, H, W]
    return jac.abs().sum(dim=(0, 2, 3, 4, 6, 7)) > 0                      # [C_out, C_in]


@pytest.mark.parametrize("make, channels", [(_ResidualShuffle, 8), (_TwoBranches, 6)])
def test_from_module_traces_custom_forwards(make, channels):
    torch.manual_seed(0)
    module = make()
    specs = flow.from_module(module, channels)
    assert torch.equal(flow.reachability(specs, channels), _channel_reach(module, channels))


def test_from_module_names_what_it_cannot_read():
    class Gate(torch.nn.Module):                                            # x * a gate computed from x: SE
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))

    with pytest.raises(TypeError, match="write its specs by hand"):
        flow.from_module(Gate(), 4)
