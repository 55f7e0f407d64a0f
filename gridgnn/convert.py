"""Run real CNNs as grid GNNs: swap every torch conv for its graph twin, and prove the outputs match.

:func:`convert` walks the module tree and replaces each ``nn.Conv1d/2d/3d`` by
the :class:`~gridgnn.nn.GridConv1d`/``2d``/``3d`` with the same geometry. The
twin takes over the conv's own ``weight`` and ``bias`` parameters (in the copy,
or in the model itself with ``inplace=True``), so parameter names, shapes and
``state_dict`` keys are unchanged: a checkpoint of the original loads into the
converted model with ``converted.load_state_dict(original_state_dict)`` and the
other way round. :func:`verify` runs both models and reports the error of every
converted layer and of the output.
"""
from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten

from .graph import conv_geometry, to_image, to_nodes
from .nn import NodeLinear
from .nn.twins import KINDS, TWINS, is_twin, kind_of, torch_base, twin_of, unsupported_reason
from .testing import Error, Tolerance, compare, no_tf32, tolerance

__all__ = ["convert", "to_torch_convs", "verify", "VerifyReport", "LayerError"]

_KIND_NAMES = tuple(KINDS)


def _check_kinds(kinds) -> Tuple[str, ...]:
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"kinds must name layer kinds among {_KIND_NAMES}, got {unknown}")
    return kinds


def _twin_or_none(module: nn.Module, path: str, unsupported: str, kinds: Tuple[str, ...]) -> Optional[nn.Module]:
    """The twin of ``module`` if it is a layer of one of ``kinds`` with a faithful twin; else None (warned)."""
    kind = kind_of(module)
    if kind is None or kind not in kinds or is_twin(module):
        return None
    reason = unsupported_reason(module)
    if reason is None:
        return twin_of(module)
    message = f"gridgnn.convert: not converting {path or 'the model'}: {reason}; it stays a torch op"
    if unsupported == "error":
        raise TypeError(message)
    if unsupported == "warn":
        warnings.warn(message, stacklevel=4)
    return None


def convert(model: nn.Module, inplace: bool = False, unsupported: str = "warn",
            kinds: Iterable[str] = _KIND_NAMES) -> nn.Module:
    r"""Replace every conv, transposed conv and pool in ``model`` by its grid-graph twin.

    Each ``nn.Conv{n}d`` :math:`y = b + \sum_t W_t \star x` becomes message passing over
    the offset-typed edges of its grid graph,
    :math:`\mathbf{y}_i = \mathbf{b} + \sum_{(j \to i, t)} \mathbf{W}_t \mathbf{x}_j`
    (:class:`~gridgnn.nn.GridConv2d` and friends), with every geometry torch allows;
    each ``nn.ConvTranspose{n}d`` the same on the reversed graph
    (:class:`~gridgnn.nn.GridConvTranspose2d`); each max / average / adaptive pool
    max or mean aggregation over its windows (:class:`~gridgnn.nn.GridMaxPool2d`, ...).
    The map is :data:`gridgnn.nn.TWINS`. Other modules are left alone.

    Args:
        model: any ``nn.Module`` (a bare layer too).
        inplace: convert ``model`` itself. Default: a deep copy; the original is
            untouched and shares nothing with the result.
        unsupported: what to do with layers that cannot be converted faithfully
            (subclasses overriding ``forward``, parametrized or uninitialised lazy
            convs, pools returning indices or without a twin such as ``LPPool2d``):
            ``"warn"`` (default; the module stays a torch op and the warning names it
            and why), ``"error"`` (``TypeError``) or ``"ignore"``.
        kinds: the kinds to convert, any of ``"conv"``, ``"conv_transpose"``, ``"pool"``
            (default: all three).

    Returns:
        The converted model. Every twin subclasses the layer it replaces
        (``isinstance(twin, nn.Conv2d)`` holds) and keeps its parameters, so
        ``state_dict`` keys are unchanged and checkpoints load both ways.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.MaxPool2d(2))
        >>> convert(net)
        Sequential(
          (0): GridConv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
          (1): GridMaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
        )
    """
    if unsupported not in ("warn", "error", "ignore"):
        raise ValueError(f"unsupported must be 'warn', 'error' or 'ignore', got {unsupported!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert expects an nn.Module, got {type(model).__name__}")
    kinds = _check_kinds(kinds)
    model = model if inplace else copy.deepcopy(model)
    return _replace_modules(model, lambda module, path: _twin_or_none(module, path, unsupported, kinds))


def _replace_modules(model: nn.Module, replacement) -> nn.Module:
    """Swap each module for ``replacement(module, path)`` where that is not None (the root too).

    A module registered in several places (weight tying) gets one replacement, shared the same way.
    """
    root = replacement(model, "")
    if root is not None:
        return root
    done = {}
    for path, module in list(model.named_modules()):
        for name, child in list(module._modules.items()):   # every reference, not only the first
            if child is None:
                continue
            if id(child) not in done:
                done[id(child)] = replacement(child, f"{path}.{name}" if path else name)
            if done[id(child)] is not None:
                setattr(module, name, done[id(child)])
    return model


class _TorchOnNodes:
    """Mixin for torch layers that also run on node features (the reference twin of a gridgnn drop-in)."""

    def geometry(self, size):
        return conv_geometry(self, size)

    def forward_nodes(self, x: Tensor, size) -> Tensor:
        batched = x if x.dim() == 3 else x.unsqueeze(0)
        out = to_nodes(self(to_image(batched, tuple(size))))
        return out if x.dim() == 3 else out.squeeze(0)


_TORCH_ON_NODES = {base: type(f"Torch{base.__name__}OnNodes", (_TorchOnNodes, base), {"__module__": __name__})
                   for base in TWINS}


class TorchPointwiseOnNodes(nn.Module):
    """The reference twin of :class:`~gridgnn.nn.NodeLinear`: a 1x1 ``conv1d`` over the nodes, by torch."""

    def __init__(self, layer: NodeLinear):
        super().__init__()
        self.groups = layer.groups
        self.weight, self.bias = layer.weight, layer.bias

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, x.size(-1), 1)                                          # [M, C_in, 1]
        out = F.conv1d(flat, self.weight.unsqueeze(-1), self.bias, groups=self.groups)  # [M, C_in, 1]
        return out.view(*x.shape[:-1], -1)


def _torch_reference(layer: nn.Module) -> nn.Module:
    """The torch layer a twin subclasses, with the twin's state (a ``forward_nodes`` method too)."""
    ref_cls = _TORCH_ON_NODES[torch_base(layer)]
    ref = ref_cls.__new__(ref_cls)
    ref.__dict__.update({k: v for k, v in vars(layer).items() if k != "path"})
    return ref


def to_torch_convs(model: nn.Module) -> nn.Module:
    """The inverse of :func:`convert`, for references: a copy of ``model`` computing through torch's layers.

    Every twin in :data:`gridgnn.nn.TWINS` (convs, transposed convs, pools) becomes
    the torch layer it subclasses, with the same arguments and parameters and a
    ``forward_nodes`` method (so graph-native blocks run unchanged), and every
    ``NodeLinear`` a 1x1 torch conv over the nodes. Names and ``state_dict`` keys are
    kept: the reference starts from the same init, so training both on the same
    batches must give the same loss curve.
    """
    def twin(layer: nn.Module, path: str) -> Optional[nn.Module]:
        if is_twin(layer):
            return _torch_reference(layer)
        if isinstance(layer, NodeLinear):
            return TorchPointwiseOnNodes(layer).train(layer.training)
        return None

    return _replace_modules(copy.deepcopy(model), twin)


def converted_layers(model: nn.Module) -> List[str]:
    """Paths of the grid-graph twins (convs, transposed convs, pools) in ``model``."""
    return [path for path, m in model.named_modules() if is_twin(m)]


@dataclass
class LayerError:
    """Error of one converted layer's output against the original conv's output."""

    path: str
    error: Error
    passed: bool


@dataclass
class VerifyReport:
    """What :func:`verify` measured. ``str(report)`` is a per-layer table."""

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


def _capture_outputs(model: nn.Module, paths: List[str]):
    outputs: Dict[str, Tensor] = {}
    modules = dict(model.named_modules())
    handles = [modules[p].register_forward_hook(
        lambda mod, args, out, p=p: outputs.__setitem__(p, out.detach())) for p in paths]
    return outputs, handles


def _flat_tensors(out: Any) -> List[Tensor]:
    leaves, _ = tree_flatten(out)
    return [t for t in leaves if isinstance(t, Tensor)]


def _timed(model: nn.Module, inputs: Tuple, repeats: int, sync) -> Tuple[Any, float]:
    with torch.no_grad():
        out = model(*inputs)
        times = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            model(*inputs)
            sync()
            times.append(time.perf_counter() - start)
    return out, sorted(times)[len(times) // 2]


def verify(model: nn.Module, example_input, dtype: torch.dtype = torch.float64, device=None,
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
        :class:`VerifyReport`; ``print(report)`` shows the per-layer table.
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
    if eval_mode:
        original.eval(), twin.eval()
    paths = converted_layers(twin)
    tol = tolerance(dtype) if tol is None else tol
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with no_tf32():
        ref_outputs, ref_handles = _capture_outputs(original, paths)
        ref, time_original = _timed(original, inputs, repeats, sync)
        ref_snapshot = dict(ref_outputs)
        twin_outputs, twin_handles = _capture_outputs(twin, paths)
        out, time_converted = _timed(twin, inputs, repeats, sync)
    for handle in ref_handles + twin_handles:
        handle.remove()
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
