"""The built-in equivalence sweep behind ``python -m gridgnn verify``.

Every conv geometry torch offers (1-, 2- and 3-D; kernel, stride, padding incl.
``"same"``/``"valid"``, dilation, groups incl. depthwise, bias, all four padding
modes) is built as an ``nn.Conv{n}d``; every transposed-conv geometry (stride,
padding, output_padding, dilation, groups) as an ``nn.ConvTranspose{n}d``; every
pooling configuration (max and average with padding, dilation, ``ceil_mode``,
``count_include_pad``, ``divisor_override``; adaptive max and average) as torch's
pool. Each is twinned through :data:`gridgnn.nn.TWINS` on each execution path and
checked with :func:`gridgnn.testing.check_conv_equivalent` forward and backward,
per dtype and device.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple, Union

import torch
from torch import nn

from .geometry import PADDING_MODES
from .nn.twins import twin_of
from .testing import EquivalenceReport, check_conv_equivalent

SweepConfig = Union["ConvConfig", "ConvTransposeConfig", "PoolConfig"]

_TORCH_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_TORCH_CONV_TRANSPOSES = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_TORCH_POOLS = {"max": (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d), "avg": (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d),
                "adaptive_max": (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d),
                "adaptive_avg": (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)}
# uneven sizes per dim catch transposed axes
INPUT_SIZES = {1: (9,), 2: (7, 6), 3: (6, 5, 7)}
IN_CHANNELS = 4


@dataclass(frozen=True)
class ConvConfig:
    """One conv configuration of the sweep."""

    ndim: int
    kernel_size: int
    stride: int
    padding: Union[int, str]
    dilation: int
    groups: int
    bias: bool
    padding_mode: str
    in_channels: int = IN_CHANNELS

    paths: Tuple[str, ...] = ("auto", "general")

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.groups == self.in_channels else 6

    @property
    def input_size(self) -> Tuple[int, ...]:
        return INPUT_SIZES[self.ndim]

    def make_conv(self) -> nn.Module:
        return _TORCH_CONVS[self.ndim](self.in_channels, self.out_channels, self.kernel_size, self.stride,
                                       self.padding, self.dilation, self.groups, self.bias, self.padding_mode)

    def label(self) -> str:
        groups = "dw" if self.groups == self.in_channels else str(self.groups)
        return (f"{self.ndim}d k={self.kernel_size} s={self.stride} p={self.padding!s:<5} d={self.dilation} "
                f"g={groups:<2} bias={'T' if self.bias else 'F'} {self.padding_mode:<9}")


def conv_configs(ndims: Sequence[int] = (1, 2, 3), quick: bool = False) -> List[ConvConfig]:
    """The sweep's configurations.

    The full product of dims x kernel (1, 2, 3) x stride (1, 2) x padding (0, 1,
    "same", "valid") x dilation (1, 2) x padding mode, minus ``"same"`` with stride
    2 (torch rejects it); groups (1, 2, depthwise) and bias cycle through it so
    that every combination of the two meets every geometry axis. ``quick`` keeps
    every 6th configuration.
    """
    configs = []
    geometry = itertools.product(ndims, (1, 2, 3), (1, 2), (0, 1, "same", "valid"), (1, 2), PADDING_MODES)
    for nd, k, s, p, d, mode in geometry:
        if p == "same" and s > 1:
            continue
        i = len(configs)
        groups = (1, 2, IN_CHANNELS)[i % 3]
        configs.append(ConvConfig(nd, k, s, p, d, groups, bool((i // 3) % 2), mode))
    return configs[::6] if quick else configs


@dataclass(frozen=True)
class ConvTransposeConfig:
    """One transposed-conv configuration of the sweep."""

    ndim: int
    kernel_size: int
    stride: int
    padding: int
    output_padding: int
    dilation: int
    groups: int
    bias: bool
    in_channels: int = IN_CHANNELS
    paths: Tuple[str, ...] = ("auto", "general")

    @property
    def input_size(self) -> Tuple[int, ...]:
        return tuple(n - 2 for n in INPUT_SIZES[self.ndim])

    def make_conv(self) -> nn.Module:
        out_channels = self.in_channels if self.groups == self.in_channels else 6
        return _TORCH_CONV_TRANSPOSES[self.ndim](self.in_channels, out_channels, self.kernel_size, self.stride,
                                                 self.padding, self.output_padding, self.groups, self.bias,
                                                 self.dilation)

    def label(self) -> str:
        groups = "dw" if self.groups == self.in_channels else str(self.groups)
        return (f"{self.ndim}d convT k={self.kernel_size} s={self.stride} p={self.padding} "
                f"op={self.output_padding} d={self.dilation} g={groups:<2} bias={'T' if self.bias else 'F'}")


def conv_transpose_configs(ndims: Sequence[int] = (1, 2, 3), quick: bool = False) -> List[ConvTransposeConfig]:
    """The sweep's transposed-conv configurations.

    Dims x kernel (1, 2, 3) x stride (1, 2, 3) x padding (0, 1) x output_padding (0, 1) x dilation
    (1, 2), where torch accepts them (output_padding below stride or dilation), groups and bias cycling.
    """
    configs = []
    for nd, k, s, p, op, d in itertools.product(ndims, (1, 2, 3), (1, 2, 3), (0, 1), (0, 1), (1, 2)):
        if op >= max(s, d):
            continue
        i = len(configs)
        configs.append(ConvTransposeConfig(nd, k, s, p, op, d, (1, 2, IN_CHANNELS)[i % 3], bool((i // 3) % 2)))
    return configs[::6] if quick else configs


@dataclass(frozen=True)
class PoolConfig:
    """One pooling configuration of the sweep: ``kind`` in max, avg, adaptive_max, adaptive_avg."""

    ndim: int
    kind: str
    args: Tuple[Tuple[str, object], ...]
    paths: Tuple[str, ...] = ("auto", "general")

    @property
    def input_size(self) -> Tuple[int, ...]:
        return INPUT_SIZES[self.ndim]

    def make_conv(self) -> nn.Module:
        return _TORCH_POOLS[self.kind][self.ndim - 1](**dict(self.args))

    def label(self) -> str:
        return f"{self.ndim}d {self.kind}pool " + " ".join(f"{k}={v}" for k, v in self.args)


def pool_configs(ndims: Sequence[int] = (1, 2, 3), quick: bool = False) -> List[PoolConfig]:
    """The sweep's pooling configurations.

    Max pools: kernel (2, 3) x stride (1, 2) x padding (0, 1) x dilation (1, 2) x ceil_mode; average pools:
    kernel x stride x padding x ceil_mode x count_include_pad, ``divisor_override`` cycling (2-D/3-D);
    adaptive pools: output sizes that divide the input and ones that do not.
    """
    configs = []
    for nd in ndims:
        for k, s, p, d, ceil in itertools.product((2, 3), (1, 2), (0, 1), (1, 2), (False, True)):
            configs.append(PoolConfig(nd, "max", (("kernel_size", k), ("stride", s), ("padding", p),
                                                  ("dilation", d), ("ceil_mode", ceil))))
        for i, (k, s, p, ceil, inc) in enumerate(itertools.product((2, 3), (1, 2), (0, 1), (False, True),
                                                                   (False, True))):
            args = (("kernel_size", k), ("stride", s), ("padding", p), ("ceil_mode", ceil),
                    ("count_include_pad", inc))
            if nd > 1 and i % 4 == 3:
                args += (("divisor_override", 3),)
            configs.append(PoolConfig(nd, "avg", args))
        for kind, out in itertools.product(("adaptive_max", "adaptive_avg"), (1, 2, 3, 4)):
            configs.append(PoolConfig(nd, kind, (("output_size", out),)))
    return configs[::6] if quick else configs


def all_configs(ndims: Sequence[int] = (1, 2, 3), quick: bool = False, kinds: Sequence[str] = ("conv",
                "conv_transpose", "pool")) -> list:
    """The sweep's configurations of the chosen layer kinds."""
    makers = {"conv": conv_configs, "conv_transpose": conv_transpose_configs, "pool": pool_configs}
    return [c for kind in kinds for c in makers[kind](ndims, quick)]


def available_devices() -> List[str]:
    """``["cpu"]``, plus ``"cuda"`` when a GPU is present."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@dataclass
class SweepResult:
    """One check of the sweep: the configuration, where it ran, and its report (or the error it raised)."""

    config: Union[ConvConfig, ConvTransposeConfig, PoolConfig]
    device: str
    dtype: torch.dtype
    path: str
    report: EquivalenceReport
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and self.report.passed


def run_config(config: SweepConfig, device: str, dtype: torch.dtype, path: str) -> SweepResult:
    """Check one configuration; a failure (or any exception) is recorded in the result, not raised."""
    try:
        conv = config.make_conv()
        layer = twin_of(copy.deepcopy(conv))
        layer.path = path
        report = check_conv_equivalent(conv, layer, config.input_size, dtype=dtype, device=device)
        return SweepResult(config, device, dtype, path, report)
    except Exception as exc:  # a crash in one configuration is a failed row, not the end of the sweep
        return SweepResult(config, device, dtype, path, EquivalenceReport(), error=f"{type(exc).__name__}: {exc}")


def checks(configs: Sequence, devices: Sequence[str], dtypes: Sequence[torch.dtype],
           paths: Sequence[str] = ("auto", "general")) -> List[tuple]:
    """``(config, device, dtype, path)`` for every configuration, device, dtype and execution path.

    A configuration runs only the paths it has among ``paths``.
    """
    return [(config, device, dtype, path) for device, dtype, path, config in
            itertools.product(devices, dtypes, paths, configs) if path in config.paths]


def sweep(configs: Sequence, devices: Sequence[str], dtypes: Sequence[torch.dtype],
          paths: Sequence[str] = ("auto", "general")) -> Iterator[SweepResult]:
    """Run every configuration on every device, dtype and execution path it has."""
    for config, device, dtype, path in checks(configs, devices, dtypes, paths):
        yield run_config(config, device, dtype, path)
