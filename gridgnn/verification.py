"""Prove a converted model equals its original: per-layer errors and timings (:func:`~gridgnn.verify`)."""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten
from torch.utils.benchmark import Timer

from ._compare import Error, Tolerance, compare, no_tf32, tolerance
from ._hooks import forward_hooks
from ._types import Device, ModelInput
from .convert import convert, converted_layers, functional_layers

__all__ = ["verify", "VerifyReport", "LayerError"]


@dataclass
class LayerError:
    """Error of one converted layer's output against the original conv's output.

    Example:
        >>> report = gg.verify(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.randn(1, 3, 6, 6))
        >>> layer = report.layers[0]
        >>> layer.path, layer.passed, layer.error.rel < 1e-10
        ('0', True, True)
    """

    path: str
    error: Error
    passed: bool


@dataclass
class VerifyReport:
    """What :func:`~gridgnn.verify` measured. ``str(report)`` is a per-layer table.

    Example:
        >>> report = gg.verify(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.randn(1, 3, 6, 6))
        >>> report.passed, report.num_converted
        (True, 1)
    """

    output: Error
    layers: List[LayerError]
    num_converted: int
    time_original: float
    time_converted: float
    dtype: torch.dtype
    device: str
    tol: Tolerance
    skipped: List[str] = field(default_factory=list)

    @property
    def max_abs(self) -> float:
        return self.output.abs

    @property
    def max_rel(self) -> float:
        return self.output.rel

    @property
    def passed(self) -> bool:
        return self.output.within(self.tol) and all(layer.passed for layer in self.layers)

    @property
    def worst_layer(self) -> Optional[LayerError]:
        return max(self.layers, key=lambda layer: layer.error.rel, default=None)

    def __str__(self) -> str:
        width = max([len(layer.path) for layer in self.layers] + [5])
        lines = [f"{'layer':<{width}}  {'max abs err':>11}  {'max rel err':>11}  result"]
        for layer in self.layers:
            lines.append(f"{layer.path:<{width}}  {layer.error.abs:11.2e}  {layer.error.rel:11.2e}  "
                         f"{'pass' if layer.passed else 'FAIL'}")
        lines.append(f"{'output':<{width}}  {self.output.abs:11.2e}  {self.output.rel:11.2e}  "
                     f"{'pass' if self.output.within(self.tol) else 'FAIL'}")
        lines.append(f"{self.num_converted} layers converted ({self.dtype}, {self.device}); forward "
                     f"original {self.time_original * 1e3:.2f} ms, converted {self.time_converted * 1e3:.2f} ms "
                     f"({self.time_converted / max(self.time_original, 1e-12):.2f}x)")
        if self.skipped:
            lines.append("not converted: " + ", ".join(self.skipped))
        return "\n".join(lines)


def _flat_tensors(out: Any) -> List[Tensor]:
    leaves, _ = tree_flatten(out)
    return [t for t in leaves if isinstance(t, Tensor)]


def _timed(model: nn.Module, inputs: Tuple, repeats: int) -> Tuple[Any, float]:
    """The output of ``model(*inputs)`` and its median forward time over ``repeats`` runs (after one warm-up)."""
    with torch.no_grad():
        out = model(*inputs)
        timer = Timer("model(*inputs)", globals={"model": model, "inputs": inputs},
                      num_threads=torch.get_num_threads())
        return out, timer.timeit(repeats).median


def verify(model: nn.Module, example_input: ModelInput, dtype: torch.dtype = torch.float64, device: Device = None,
           strict: bool = False, eval_mode: bool = True, repeats: int = 3,
           tol: Optional[Tolerance] = None) -> VerifyReport:
    """Run ``model`` and its :func:`convert`-ed twin on ``example_input`` and compare them.

    Both run on copies (``model`` is untouched) in ``dtype`` (float64 by default)
    on ``device`` (default: where the model's parameters are), in eval mode
    unless ``eval_mode=False``, with TF32 off. Forward hooks record each conv's
    output and its twin's; the report holds the error of every converted layer,
    of the final output (every tensor in it), the number of layers converted and
    the median forward time of each model.

    Args:
        model: the original model.
        example_input: a tensor or a tuple of positional inputs.
        strict: raise ``AssertionError`` naming the worst layer if anything is out of tolerance.
        tol: override the :data:`gridgnn.testing.TOLERANCES` entry for ``dtype``.

    Returns:
        :class:`~gridgnn.verification.VerifyReport`; ``print(report)`` shows the per-layer table.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        >>> report = gg.verify(model, torch.randn(1, 3, 8, 8))
        >>> report.passed, len(report.layers)
        (True, 2)
    """
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    inputs = tuple(t.to(device=device, dtype=dtype) if isinstance(t, Tensor) and t.is_floating_point()
                   else t for t in inputs)
    original = copy.deepcopy(model).to(device=device, dtype=dtype)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        twin = convert(original, inplace=False)
    skipped = [str(w.message).split("not converting ")[-1] for w in caught if "gridgnn.convert" in str(w.message)]
    named = {entry.split(":")[0] for entry in skipped}                 # layers already reported by convert
    functional = [call for call in functional_layers(twin) or [] if call.rsplit(" in ", 1)[-1] not in named]
    if functional:
        warnings.warn(f"gridgnn.verify: {len(functional)} functional conv/pool call(s) in forward stay torch ops "
                      f"and are not verified: {', '.join(functional)}; use module layers (nn.Conv2d, ...) to "
                      "convert them", stacklevel=2)
    skipped += [f"{call} (a functional call in forward)" for call in functional]
    if eval_mode:
        original.eval(), twin.eval()
    paths = converted_layers(twin)
    tol = tolerance(dtype) if tol is None else tol
    with no_tf32():
        ref_snapshot, twin_outputs = {}, {}
        for net, store in ((original, ref_snapshot), (twin, twin_outputs)):   # each layer's output, once
            modules = {path: m for path, m in net.named_modules() if path in paths}
            with forward_hooks(modules, lambda name, mod, args, out, store=store: store.__setitem__(
                    name, out.detach())), torch.no_grad():
                net(*inputs)
        ref, time_original = _timed(original, inputs, repeats)
        out, time_converted = _timed(twin, inputs, repeats)
    layers = []
    for p in paths:
        err = compare(twin_outputs[p], ref_snapshot[p]) if p in ref_snapshot and p in twin_outputs \
            else Error(0.0, 0.0, 0.0)
        layers.append(LayerError(p, err, err.within(tol)))
    ref_flat, out_flat = _flat_tensors(ref), _flat_tensors(out)
    errors = [compare(a, b) for a, b in zip(out_flat, ref_flat)]
    output = max(errors, key=lambda e: e.rel, default=Error(0.0, 0.0, 0.0))
    report = VerifyReport(output, layers, len(paths), time_original, time_converted, dtype, str(device), tol,
                          skipped)
    if strict and not report.passed:
        worst = report.worst_layer
        where = f"worst layer {worst.path} (rel err {worst.error.rel:.2e})" if worst else "no converted layer"
        raise AssertionError(f"converted model differs from the original: output rel err {output.rel:.2e}, "
                             f"{where}\n{report}")
    return report
