"""The built-in equivalence sweep behind ``python -m gridgnn verify``.

Every conv geometry torch offers (1-, 2- and 3-D; kernel, stride, padding incl.
``"same"``/``"valid"``, dilation, groups incl. depthwise, bias, all four padding
modes) is built as an ``nn.Conv{n}d``, twinned with ``GridConv{n}d.from_conv``
on each execution path, and checked with :func:`gridgnn.testing.assert_conv_equivalent`
forward and backward, per dtype and device.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple, Union

import torch
from torch import nn

from .geometry import PADDING_MODES
from .nn import GridConv1d, GridConv2d, GridConv3d
from .testing import EquivalenceReport, check_conv_equivalent

_TORCH_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_GRID_CONVS = {1: GridConv1d, 2: GridConv2d, 3: GridConv3d}
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


def available_devices() -> List[str]:
    """``["cpu"]``, plus ``"cuda"`` when a GPU is present."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@dataclass
class SweepResult:
    config: ConvConfig
    device: str
    dtype: torch.dtype
    path: str
    report: EquivalenceReport
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and self.report.passed


def run_config(config: ConvConfig, device: str, dtype: torch.dtype, path: str) -> SweepResult:
    """Check one configuration; a failure (or any exception) is recorded in the result, not raised."""
    try:
        conv = config.make_conv()
        layer = _GRID_CONVS[config.ndim].from_conv(conv, path=path)
        report = check_conv_equivalent(conv, layer, config.input_size, dtype=dtype, device=device)
        return SweepResult(config, device, dtype, path, report)
    except Exception as exc:  # a crash in one configuration is a failed row, not the end of the sweep
        return SweepResult(config, device, dtype, path, EquivalenceReport(), error=f"{type(exc).__name__}: {exc}")


def sweep(configs: Sequence[ConvConfig], devices: Sequence[str], dtypes: Sequence[torch.dtype],
          paths: Sequence[str] = ("auto", "general")) -> Iterator[SweepResult]:
    """Run every configuration on every device, dtype and execution path."""
    for device, dtype, path, config in itertools.product(devices, dtypes, paths, configs):
        yield run_config(config, device, dtype, path)
