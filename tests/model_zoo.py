"""Self-written reference CNNs covering the architecture features convert() must handle.

Written out here, so the tests need no model package (torchvision and timm need their own torch builds).
"""
import torch
import torch.nn.functional as F
from torch import nn


class Bottleneck(nn.Module):
    """ResNet/ResNeXt bottleneck: 1x1 reduce, grouped 3x3 (stride), 1x1 expand, projection shortcut."""

    def __init__(self, cin, width, cout, stride=1, groups=1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


def resnext(num_classes=10):
    return nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.MaxPool2d(3, 2, 1), Bottleneck(16, 8, 32), Bottleneck(32, 16, 64, stride=2, groups=4),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


class InvertedResidual(nn.Module):
    """MobileNetV2: expand 1x1 (t=6), depthwise 3x3, linear 1x1 projection, residual when shapes allow."""

    def __init__(self, cin, cout, stride=1, t=6):
        super().__init__()
        hidden = cin * t
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.block(x) if self.use_res else self.block(x)


def mobilenet_v2():
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), InvertedResidual(8, 8), InvertedResidual(8, 16, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


class ShuffleV2Unit(nn.Module):
    def __init__(self, channels, stride=1):
        super().__init__()
        self.stride = stride
        half = channels // 2
        cin = channels if stride == 2 else half
        self.branch = nn.Sequential(nn.Conv2d(cin, half, 1), nn.ReLU(),
                                    nn.Conv2d(half, half, 3, stride, 1, groups=half), nn.Conv2d(half, half, 1))
        self.down = nn.Sequential(nn.Conv2d(channels, channels, 3, 2, 1, groups=channels),
                                  nn.Conv2d(channels, half, 1)) if stride == 2 else None

    def forward(self, x):
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)
            out = torch.cat([left, self.branch(right)], 1)
        else:
            out = torch.cat([self.down(x), self.branch(x)], 1)
        return F.channel_shuffle(out, 2)


def shufflenet_v2():
    return nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), ShuffleV2Unit(8), ShuffleV2Unit(8, stride=2), nn.ChannelShuffle(2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


class SqueezeExcite(nn.Module):
    """EfficientNet SE: global pool, 1x1 conv reduce, SiLU, 1x1 conv expand, sigmoid gate (1x1 convs on 1x1 maps)."""

    def __init__(self, channels, reduced):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(s))))


def efficientnet():
    mb = nn.Sequential(nn.Conv2d(8, 32, 1), nn.SiLU(), nn.Conv2d(32, 32, 5, padding="same", groups=32), nn.SiLU(),
                       SqueezeExcite(32, 4), nn.Conv2d(32, 16, 1))
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.SiLU(), mb, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10))


def regnet():
    """RegNet-style X block: grouped 3x3 with fixed group width 4."""
    return nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), Bottleneck(16, 16, 16, groups=4),
                         Bottleneck(16, 32, 32, 2, groups=8))


class ConvNeXtBlock(nn.Module):
    """7x7 depthwise, channels-last LayerNorm, pointwise MLP as Linear, layer scale, residual."""

    def __init__(self, dim):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.gamma * self.mlp(self.norm(y))
        return x + y.permute(0, 3, 1, 2)


def convnext():
    return nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), ConvNeXtBlock(16), nn.Conv2d(16, 32, 2, stride=2),
                         ConvNeXtBlock(32))


class GhostModule(nn.Module):
    """GhostNet: a primary 1x1 conv and a cheap depthwise 3x3 on its output, concatenated."""

    def __init__(self, cin, cout):
        super().__init__()
        init = cout // 2
        self.primary = nn.Sequential(nn.Conv2d(cin, init, 1, bias=False), nn.BatchNorm2d(init), nn.ReLU())
        self.cheap = nn.Sequential(nn.Conv2d(init, init, 3, 1, 1, groups=init, bias=False), nn.BatchNorm2d(init))

    def forward(self, x):
        y = self.primary(x)
        return torch.cat([y, self.cheap(y)], 1)


def ghostnet():
    return nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), GhostModule(8, 16), GhostModule(16, 16))


def padding_modes_1d_3d():
    """1-D and 3-D convs with every padding mode and dilation, in one model taking a volume."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.vol = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1, padding_mode="replicate"),
                                     nn.Conv3d(4, 4, (1, 3, 3), padding="same", padding_mode="reflect"))
            self.seq = nn.Sequential(nn.Conv1d(4, 4, 3, padding=2, dilation=2, padding_mode="circular"),
                                     nn.Conv1d(4, 6, 2, stride=2))

        def forward(self, x):
            v = self.vol(x)                 # [B, 4, D, H, W]
            return self.seq(v.flatten(2))   # [B, 6, L]

    return Net()


def double_conv(nd, cin, cout):
    conv, norm = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[nd - 1], (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[nd - 1]
    return nn.Sequential(conv(cin, cout, 3, padding=1, bias=False), norm(cout), nn.ReLU(),
                         conv(cout, cout, 3, padding=1, bias=False), norm(cout), nn.ReLU())


class UNet(nn.Module):
    """U-Net (Ronneberger et al., 2015): max-pool encoder, ConvTranspose2d upsampling decoder, skip concatenations.

    Also the benchmarks' U-Net (``benchmarks/layers.py``, ``benchmarks/models.py``) at larger width.
    """

    def __init__(self, in_channels=1, num_classes=2, width=8, depth=2):
        super().__init__()
        widths = [width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([double_conv(2, in_channels, widths[0])] +
                                  [double_conv(2, a, b) for a, b in zip(widths, widths[1:])])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in zip(widths, widths[1:])][::-1])
        self.merge = nn.ModuleList([double_conv(2, 2 * a, a) for a in widths[:-1]][::-1])
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, skips[-2::-1]):
            x = merge(torch.cat([up(x, output_size=skip.shape[2:]), skip], 1))
        return self.head(x)


def autoencoder_1d():
    """A 1-D conv autoencoder: strided convs and avg pooling down, transposed convs (output_padding) up."""
    return nn.Sequential(
        nn.Conv1d(2, 8, 5, stride=2, padding=2), nn.ReLU(), nn.AvgPool1d(2, ceil_mode=True),
        nn.Conv1d(8, 16, 3, padding=1), nn.Tanh(),
        nn.ConvTranspose1d(16, 8, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose1d(8, 4, 5, stride=2, padding=2, output_padding=1, groups=2), nn.ReLU(),
        nn.Conv1d(4, 2, 3, padding=1))


def net_3d(num_classes=3):
    """A 3-D conv net on 9x10x11 volumes.

    3-D convs, max and average pools with padding and ceil_mode, adaptive max pooling with a ``None`` output size.
    """
    return nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.MaxPool3d(3, 2, 1, dilation=1),
        nn.Conv3d(4, 8, 3, padding=1, groups=2), nn.ReLU(), nn.AvgPool3d(2, ceil_mode=True, count_include_pad=False),
        nn.Conv3d(8, 8, 1), nn.ReLU(), nn.MaxPool3d(2, 1, ceil_mode=True),
        nn.AdaptiveMaxPool3d((2, None, 1)), nn.Flatten(), nn.Linear(32, num_classes))


ZOO = {
    "resnext": (resnext, (2, 3, 32, 32)),
    "mobilenet_v2": (mobilenet_v2, (2, 3, 16, 16)),
    "shufflenet_v2": (shufflenet_v2, (2, 3, 16, 16)),
    "efficientnet": (efficientnet, (2, 3, 16, 16)),
    "regnet": (regnet, (2, 3, 16, 16)),
    "convnext": (convnext, (2, 3, 32, 32)),
    "ghostnet": (ghostnet, (2, 3, 12, 12)),
    "padding_modes_1d_3d": (padding_modes_1d_3d, (2, 2, 4, 5, 6)),
    "unet": (UNet, (2, 1, 20, 18)),
    "autoencoder_1d": (autoencoder_1d, (2, 2, 33)),
    "net_3d": (net_3d, (2, 1, 9, 10, 11)),
}
