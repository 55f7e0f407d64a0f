"""Six full-size architectures, written out so the benchmarks need no model package.

ResNet-50, MobileNetV2, EfficientNet-B0 (MBConv + squeeze-excitation, 5x5 depthwise), a
ShuffleNet (grouped 1x1 convs + channel shuffle, g=3), ResNeXt-50 32x4d (grouped 3x3, 4-32
channels a group) and ConvNeXt-T (7x7 depthwise, LayerNorm and Linear MLPs), each as its paper
or torchvision lays it out (no pretrained weights; stochastic depth and dropout left out).
"""
from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act=nn.ReLU) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act is not None else nn.Sequential(*layers)


class ResNetBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, groups: int = 1, base_width: int = 64):
        super().__init__()
        cout, width = planes * self.expansion, planes * base_width // 64 * groups
        self.residual = nn.Sequential(conv_bn(cin, width, 1), conv_bn(width, width, 3, stride, groups=groups),
                                      conv_bn(width, cout, 1, act=None))
        self.downsample = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.residual(x) + self.downsample(x))


def resnet50(num_classes: int = 1000, groups: int = 1, base_width: int = 64) -> nn.Sequential:
    layers, cin = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
        for b in range(blocks):
            layers.append(ResNetBottleneck(cin, planes, 2 if b == 0 and i > 0 else 1, groups, base_width))
            cin = planes * ResNetBottleneck.expansion
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


def resnext50_32x4d(num_classes: int = 1000) -> nn.Sequential:
    """ResNet-50 with grouped 3x3 convs: 32 groups of 4-32 channels (128-1024 wide)."""
    return resnet50(num_classes, groups=32, base_width=4)


class MobileInvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6), conv_bn(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_v2(num_classes: int = 1000) -> nn.Sequential:
    config = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    layers, cin = [conv_bn(3, 32, 3, 2, act=nn.ReLU6)], 32
    for t, c, n, s in config:
        for i in range(n):
            layers.append(MobileInvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    return nn.Sequential(*layers, conv_bn(cin, 1280, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(1280, num_classes))


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, squeezed, 1), nn.SiLU(),
                                  nn.Conv2d(squeezed, channels, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.gate(x)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1, act=nn.SiLU)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, kernel, stride, groups=hidden, act=nn.SiLU),
                   SqueezeExcitation(hidden, max(1, cin // 4)), conv_bn(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def efficientnet_b0(num_classes: int = 1000) -> nn.Sequential:
    config = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
              (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]                      # (expand, kernel, stride, channels, repeats)
    layers, cin = [conv_bn(3, 32, 3, 2, act=nn.SiLU)], 32
    for expand, kernel, stride, channels, repeats in config:
        for i in range(repeats):
            layers.append(MBConv(cin, channels, kernel, stride if i == 0 else 1, expand))
            cin = channels
    return nn.Sequential(*layers, conv_bn(cin, 1280, 1, act=nn.SiLU), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(1280, num_classes))


class ShuffleUnit(nn.Module):
    """ShuffleNet's unit: grouped 1x1, channel shuffle, 3x3 depthwise, grouped 1x1; add (stride 1) or concat."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int):
        super().__init__()
        branch_out = cout - cin if stride == 2 else cout
        bottleneck, first_groups = cout // 4, 1 if cin == 24 else groups      # the stem's 24 channels: no groups
        self.branch = nn.Sequential(conv_bn(cin, bottleneck, 1, groups=first_groups), nn.ChannelShuffle(first_groups),
                                    conv_bn(bottleneck, bottleneck, 3, stride, groups=bottleneck, act=None),
                                    conv_bn(bottleneck, branch_out, 1, groups=groups, act=None))
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else None
        self.relu = nn.ReLU()

    def forward(self, x):
        if self.shortcut is None:
            return self.relu(x + self.branch(x))
        return self.relu(torch.cat([self.shortcut(x), self.branch(x)], 1))


def shufflenet_g3(num_classes: int = 1000) -> nn.Sequential:
    """ShuffleNet 1x, g=3 (stages of 240, 480, 960 channels)."""
    layers, cin = [conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)], 24
    for channels, repeats in ((240, 4), (480, 8), (960, 4)):
        for i in range(repeats):
            layers.append(ShuffleUnit(cin, channels, 2 if i == 0 else 1, 3))
            cin = channels
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


class ChannelsFirstLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.mlp = nn.Sequential(nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, 4 * dim), nn.GELU(),
                                 nn.Linear(4 * dim, dim))
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x):
        y = self.mlp(self.dwconv(x).permute(0, 2, 3, 1)) * self.gamma        # [B, H, W, C]
        return x + y.permute(0, 3, 1, 2)


def convnext_tiny(num_classes: int = 1000) -> nn.Sequential:
    dims, depths = (96, 192, 384, 768), (3, 3, 9, 3)
    layers = [nn.Conv2d(3, dims[0], 4, 4), ChannelsFirstLayerNorm(dims[0], eps=1e-6)]
    for i, (dim, depth) in enumerate(zip(dims, depths)):
        if i:
            layers += [ChannelsFirstLayerNorm(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, 2)]
        layers += [ConvNeXtBlock(dim) for _ in range(depth)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(dims[-1], eps=1e-6),
                         nn.Linear(dims[-1], num_classes))


#: the architectures ``models.py`` converts and times
ARCHITECTURES = (resnet50, mobilenet_v2, efficientnet_b0, shufflenet_g3, resnext50_32x4d, convnext_tiny)
