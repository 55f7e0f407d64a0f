"""Each graph-native block against the same block written with torch convs (references live here)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gridgnn as gg
from gridgnn.nn import (
    Bottleneck,
    GridMaxPool,
    InceptionBlock,
    InvertedResidual,
    NiNBlock,
    NodeBatchNorm,
    ProjectionShortcut,
    ShuffleUnit,
    SqueezeExcitation,
)


class RefProjection(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class RefBottleneck(nn.Module):
    def __init__(self, cin, width, cout, stride=1, groups=1):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = RefProjection(cin, cout, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class RefInception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.branch1 = nn.Conv2d(cin, c1, 1)
        self.reduce3, self.conv3 = nn.Conv2d(cin, c3r, 1), nn.Conv2d(c3r, c3, 3, padding=1)
        self.reduce5, self.conv5 = nn.Conv2d(cin, c5r, 1), nn.Conv2d(c5r, c5, 5, padding=2)
        self.pool_proj = nn.Conv2d(cin, pp, 1)

    def forward(self, x):
        b3 = self.conv3(F.relu(self.reduce3(x)))
        b5 = self.conv5(F.relu(self.reduce5(x)))
        b4 = self.pool_proj(F.max_pool2d(x, 3, 1, 1))
        return F.relu(torch.cat([self.branch1(x), b3, b5, b4], 1))


class RefInvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride=1, t=6):
        super().__init__()
        hidden = cin * t
        self.use_residual = stride == 1 and cin == cout
        self.expand, self.bn1 = (nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden)) if t != 1 \
            else (None, None)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.project, self.bn3 = nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)

    def forward(self, x):
        y = x if self.expand is None else F.relu6(self.bn1(self.expand(x)))
        y = F.relu6(self.bn2(self.depthwise(y)))
        y = self.bn3(self.project(y))
        return x + y if self.use_residual else y


class RefSE(nn.Module):
    def __init__(self, c, r, act=nn.ReLU):
        super().__init__()
        self.reduce, self.expand, self.activation = nn.Conv2d(c, r, 1), nn.Conv2d(r, c, 1), act()

    def forward(self, x):
        return x * torch.sigmoid(self.expand(self.activation(self.reduce(F.adaptive_avg_pool2d(x, 1)))))


class RefNiN(nn.Module):
    def __init__(self, cin, cout, k, s, p):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, p)
        self.mlp1, self.mlp2 = nn.Conv2d(cout, cout, 1), nn.Conv2d(cout, cout, 1)

    def forward(self, x):
        return F.relu(self.mlp2(F.relu(self.mlp1(F.relu(self.conv(x))))))


class RefShuffleUnit(nn.Module):
    def __init__(self, c, g, ratio=4):
        super().__init__()
        mid = c // ratio
        self.g = g
        self.gconv1, self.bn1 = nn.Conv2d(c, mid, 1, groups=g, bias=False), nn.BatchNorm2d(mid)
        self.depthwise, self.bn2 = nn.Conv2d(mid, mid, 3, 1, 1, groups=mid, bias=False), nn.BatchNorm2d(mid)
        self.gconv2, self.bn3 = nn.Conv2d(mid, c, 1, groups=g, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        y = F.channel_shuffle(F.relu(self.bn1(self.gconv1(x))), self.g)
        y = self.bn2(self.depthwise(y))
        return F.relu(x + self.bn3(self.gconv2(y)))


CASES = {
    "projection": (lambda: RefProjection(6, 8, 2), lambda: ProjectionShortcut(6, 8, 2), 6),
    "bottleneck": (lambda: RefBottleneck(8, 4, 8), lambda: Bottleneck(8, 4, 8), 8),
    "bottleneck_strided_resnext": (lambda: RefBottleneck(8, 8, 16, 2, 4), lambda: Bottleneck(8, 8, 16, 2, 4), 8),
    "inception": (lambda: RefInception(8, 4, 3, 5, 2, 3, 2), lambda: InceptionBlock(8, 4, 3, 5, 2, 3, 2), 8),
    "inverted_residual": (lambda: RefInvertedResidual(4, 4), lambda: InvertedResidual(4, 4), 4),
    "inverted_residual_strided_t1": (lambda: RefInvertedResidual(4, 6, 2, 1), lambda: InvertedResidual(4, 6, 2, 1), 4),
    "squeeze_excitation": (lambda: RefSE(8, 2, nn.SiLU), lambda: SqueezeExcitation(8, 2, nn.SiLU), 8),
    "nin": (lambda: RefNiN(3, 6, 3, 2, 1), lambda: NiNBlock(3, 6, 3, 2, 1), 3),
    "shuffle_unit": (lambda: RefShuffleUnit(24, 3), lambda: ShuffleUnit(24, 3), 24),
}


def randomize_bn(module):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("train", [False, True])
def test_block_equals_torch_reference(name, train):
    make_ref, make_block, cin = CASES[name]
    ref = make_ref().double()
    randomize_bn(ref)
    block = make_block().double()
    block.load_state_dict(ref.state_dict())          # the documented weight mapping
    ref.train(train), block.train(train)
    x = torch.randn(2, cin, 7, 6, dtype=torch.float64)
    x_ref, x_graph = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected = ref(x_ref)
    actual = block.forward_image(x_graph)
    torch.testing.assert_close(actual, expected)
    assert block.out_size((7, 6)) == tuple(expected.shape[2:])
    grad = torch.randn_like(expected)
    expected.backward(grad), actual.backward(grad)
    torch.testing.assert_close(x_graph.grad, x_ref.grad)
    for (n, p), (_, q) in zip(block.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p.grad.reshape(q.grad.shape), q.grad, msg=n)
    if train:  # running statistics move the same way
        for (n, b), (_, c) in zip(block.named_buffers(), ref.named_buffers()):
            torch.testing.assert_close(b.to(c.dtype), c, msg=n)


def test_blocks_accept_a_grid_graph_as_size_and_unbatched_nodes():
    block = Bottleneck(4, 2, 4).eval()
    x = torch.randn(1, 25, 4)
    g = gg.grid_graph((5, 5), 3, padding=1)
    torch.testing.assert_close(block(x, g), block(x, (5, 5)))
    torch.testing.assert_close(block(x[0], (5, 5)), block(x, (5, 5))[0])


def test_node_batchnorm_and_max_pool_match_torch():
    x = torch.randn(3, 4, 5, 6)
    bn2d, nbn = nn.BatchNorm2d(4), NodeBatchNorm(4)
    torch.testing.assert_close(gg.to_image(nbn(gg.to_nodes(x)), (5, 6)), bn2d(x))
    torch.testing.assert_close(nbn.running_mean, bn2d.running_mean)
    pool = GridMaxPool(3, 2, 1)
    torch.testing.assert_close(gg.to_image(pool(gg.to_nodes(x), (5, 6)), pool.out_size((5, 6))),
                               F.max_pool2d(x, 3, 2, 1))


def test_shuffle_unit_rejects_bad_groups():
    with pytest.raises(ValueError, match="divisible by groups"):
        ShuffleUnit(16, 3)
