import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis
from torch import nn

import gridgnn as gg
from gridgnn import analysis as A
from gridgnn.nn import GridConv, NodeLinear

from model_zoo import ZOO, InvertedResidual


def test_classic_figures_exactly():
    assert A.conv_params(128, 256, 3) == 294_912 and A.conv_params(128, 256, 1) == 32_768
    assert A.conv_params(128, 256, 3) == 9 * A.conv_params(128, 256, 1)
    assert A.bottleneck_params(256, 64) == 69_632 and A.conv_params(256, 256, 3) == 589_824
    dw, pw, std = A.separable_macs(192, 384, 3)
    assert (dw, pw, dw + pw, std) == (1_728, 73_728, 75_456, 663_552) and round(std / (dw + pw), 1) == 8.8
    assert A.inception_reduce_params(256, 64, 256, 3) == (163_840, 589_824)
    assert not any(A.inception_reduce_params(256, 64, c, 5)[0] == 163_840 for c in range(1, 1024))
    assert A.conv_params(4, 8, 3, groups=2, bias=True) == 8 * 2 * 9 + 8
    with pytest.raises(ValueError, match="in_channels=4 is not divisible by groups=3"):
        A.conv_params(4, 8, 3, groups=3)


def test_counts_measured_by_hooks_match_hand_counts():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1, groups=2),
                          nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    x = torch.randn(2, 3, 8, 8)
    expected = 2 * 16 * (8 * 3 * 9) + 2 * 16 * (8 * 4) + 2 * 128 * 10
    assert A.count_macs(model, x) == expected
    assert A.count_params(model) == sum(p.numel() for p in model.parameters())
    table = A.layer_table(model, x)
    assert "total" in table and f"{expected:,}" in table


@pytest.mark.parametrize("name", sorted(ZOO))
def test_converted_models_count_the_same(name):
    make, shape = ZOO[name]
    model, x = make(), torch.randn(shape)
    converted = gg.convert(model)
    assert A.count_macs(converted, x) == A.count_macs(model, x) > 0
    assert A.count_params(converted) == A.count_params(model)


def test_graph_layers_count_messages():
    g = gg.grid_graph((5, 5), 3, padding=1, padding_mode="circular")       # torus: every window complete
    layer = GridConv(4, 6, 3, groups=2)
    assert A.count_macs(layer, (torch.randn(2, 25, 4), g)) == 2 * g.num_edges * 6 * 2
    masked = g.mask(torch.rand(25) > 0.5)
    assert A.count_macs(layer, (torch.randn(2, 25, 4), masked)) == 2 * masked.num_edges * 6 * 2
    assert A.count_macs(NodeLinear(4, 6), torch.randn(3, 25, 4)) == 75 * 24


def test_inverted_residual_macs_match_a_measured_block():
    block = InvertedResidual(8, 16, stride=2, t=6)
    measured = A.count_macs(block, torch.randn(1, 8, 14, 14))
    assert A.inverted_residual_macs(8, 16, 6, (14, 14), stride=2)["total"] == measured
    by_t = [A.inverted_residual_macs(32, 32, t, (28, 28))["total"] for t in (1, 2, 4, 6)]
    assert by_t == sorted(by_t)


def test_compound_scaling_matches_measured_macs():
    def stack(depth, width, res):
        net = nn.Sequential(*[nn.Conv2d(width, width, 3, padding=1) for _ in range(depth)])
        return A.count_macs(net, torch.randn(1, width, res, res))

    factors = A.compound_scaling(1, alpha=2, beta=2, gamma=2)
    assert stack(4, 8, 8) * factors["macs"] == stack(8, 16, 16)
    assert math.isclose(A.compound_scaling(1)["macs"], 1.2 * 1.1 ** 2 * 1.15 ** 2)
    assert abs(A.compound_scaling(1)["macs"] / 2 - 1) < 0.05  # EfficientNet chose alpha*beta^2*gamma^2 ~ 2


def test_transposed_conv_costs_what_the_conv_it_transposes_costs():
    up = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2, 4, 3, stride=2, groups=2))
    assert A.count_macs(up, torch.randn(1, 2, 4, 4)) == 16 * 2 * (4 // 2) * 9      # per input position
    out_size = up(torch.randn(1, 2, 4, 4)).shape[2:]
    down = nn.Conv2d(4, 2, 3, stride=2, groups=2)                                   # its adjoint
    assert A.count_macs(down, torch.randn(1, 4, *out_size)) == A.count_macs(up, torch.randn(1, 2, 4, 4))


@pytest.mark.parametrize("kind", ["node", "conv"])
def test_low_rank_is_eckart_young_optimal(kind):
    torch.manual_seed(0)
    layer = NodeLinear(12, 8).double() if kind == "node" else nn.Conv2d(12, 8, 1).double()
    w = layer.weight.detach().flatten(1)
    s = torch.linalg.svdvals(w)
    for rank in (1, 3, 8):
        result = A.low_rank(layer, rank)
        assert math.isclose(result.error, float(s[rank:].pow(2).sum().sqrt()), abs_tol=1e-12)
        if kind == "node":
            x = torch.randn(5, 12, dtype=torch.float64)
            w_r = (result.module[1].weight @ result.module[0].weight).detach()
            assert math.isclose(float(torch.linalg.matrix_norm(w - w_r)), result.error, abs_tol=1e-10)
            torch.testing.assert_close(result.module(x), x @ w_r.T + layer.bias)
        else:
            x = torch.randn(2, 12, 3, 3, dtype=torch.float64)
            full = A.low_rank(layer, 8).module
            torch.testing.assert_close(full(x), layer(x))
        assert sum(p.numel() for p in result.module.parameters()) == rank * 20 + 8
    curve = A.low_rank_curve(layer)
    assert curve.relative_error == sorted(curve.relative_error, reverse=True) and curve.relative_error[-1] == 0
    assert curve.params[-1] == 8 * 20 and curve.dense_params == 96


def test_low_rank_errors():
    with pytest.raises(ValueError, match="between 1 and min\\(C_in, C_out\\) = 4"):
        A.low_rank(NodeLinear(4, 6), 5)
    with pytest.raises(ValueError, match="groups=1"):
        A.low_rank(NodeLinear(4, 6, groups=2), 1)
    with pytest.raises(TypeError, match="1x1"):
        A.low_rank(nn.Conv2d(4, 6, 3), 1)


def test_gradient_flow_through_residuals():
    torch.manual_seed(0)
    w = 0.01 * torch.randn(8, 8, dtype=torch.float64)
    plain, residual = A.backward_singular_values(w), A.backward_singular_values(w, residual=True)
    torch.testing.assert_close(residual, torch.linalg.svdvals(w.T + torch.eye(8, dtype=torch.float64)))
    assert plain.max() < 0.1 and residual.min() > 0.9
    norms = A.channel_gradient_norms(channels=8, depth=6, weight_scale=0.1)
    assert (norms["residual"][1:] > 100 * norms["plain"][1:]).all()
    with pytest.raises(ValueError, match="square"):
        A.backward_singular_values(torch.randn(3, 4), residual=True)


@pytest.mark.parametrize("nd, k", [(1, 3), (1, 4), (1, 7), (2, 3), (2, (3, 5)), (2, 4)])
@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_fft_conv_equals_torch_conv(nd, k, mode):
    kernel = (k,) * nd if isinstance(k, int) else k
    conv = [None, nn.Conv1d, nn.Conv2d][nd](3, 4, kernel, padding=tuple(a // 2 for a in kernel),
                                            padding_mode=mode).double()
    x = torch.randn(2, 3, *[11, 9][:nd], dtype=torch.float64)
    torch.testing.assert_close(A.fft_conv(x, conv.weight, conv.bias, mode), conv(x))


def test_fft_errors_and_timing():
    with pytest.raises(ValueError, match="padding_mode"):
        A.fft_conv(torch.randn(1, 1, 8), torch.randn(1, 1, 3), padding_mode="reflect")
    with pytest.raises(ValueError, match="input channels"):
        A.fft_conv(torch.randn(1, 2, 8), torch.randn(1, 1, 3))
    rows = A.fft_vs_direct_timing([16], [3], min_run_time=0.01)
    assert rows[0]["direct"] > 0 and rows[0]["fft"] > 0


def test_network_in_network_xor():
    assert math.isclose(A.xor_linear_mse(), 0.25, abs_tol=1e-12)
    exact = A.xor_mlp_exact()
    assert float((exact(A.nin.XOR_INPUTS) - A.nin.XOR_TARGETS).pow(2).mean().detach()) == 0.0
    _, mse, losses = A.xor_mlp_train(steps=1500)
    assert mse < 1e-6 and losses[-1] < losses[0]


@pytest.mark.parametrize("order", ["1x1-3x3", "3x3-1x1"])
def test_block_order_collapses_to_low_rank_conv(order):
    torch.manual_seed(1)
    if order == "1x1-3x3":
        first, second = nn.Conv2d(8, 3, 1, bias=False), nn.Conv2d(3, 8, 3, padding=1)
    else:
        first, second = nn.Conv2d(8, 3, 3, padding=1), nn.Conv2d(3, 8, 1)
    first, second = first.double(), second.double()
    collapsed = A.collapse_block(first, second)
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    single = nn.functional.conv2d(x, collapsed.weight, collapsed.bias, padding=1)
    torch.testing.assert_close(single, second(first(x)))
    assert collapsed.rank <= collapsed.bottleneck == 3 < 8
    with pytest.raises(ValueError, match="one 1x1 conv"):
        A.collapse_block(nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 3))


def test_mahalanobis_scores_match_scipy_and_flag_ood():
    gen = torch.Generator().manual_seed(0)
    means = torch.tensor([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0]], dtype=torch.float64)
    labels = torch.arange(2).repeat_interleave(100)
    feats = means[labels] + torch.randn(200, 3, generator=gen, dtype=torch.float64)
    scorer = A.MahalanobisScorer.fit(feats, labels, eps=0.0)
    queries = torch.tensor([[0.5, 0.1, -0.2], [30.0, -20.0, 10.0]], dtype=torch.float64)
    expected = [min(mahalanobis(q.numpy(), m.numpy(), scorer.precision.numpy()) ** 2 for m in scorer.means)
                for q in queries]
    np.testing.assert_allclose(scorer.score(queries).numpy(), expected)
    assert A.mahalanobis_score(feats, labels, queries)[1] > 100 * A.mahalanobis_score(feats, labels, queries)[0]


def test_node_activations_of_a_pointwise_layer():
    layer = NodeLinear(2, 3)
    model = nn.Sequential(layer, nn.ReLU())
    x = torch.randn(4, 10, 2)
    torch.testing.assert_close(A.node_activations(model, layer, x), layer(x).mean(1))
    with pytest.raises(ValueError, match="did not run"):
        A.node_activations(model, NodeLinear(2, 2), x)


def test_edge_demo():
    demo = A.edge_detection_demo(8)
    assert demo.mse_3x3 == 0.0 and demo.mse_1x1 > 0.1
    # a 1x1 map answers the same wherever the pixel value is the same
    assert demo.best_1x1[:, 0].unique().numel() == 1 and torch.equal(demo.best_1x1[:, 3], demo.best_1x1[:, 0])
