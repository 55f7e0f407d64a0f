"""Public test helpers: prove a graph layer equals the torch layer it mirrors.

:func:`assert_conv_equivalent` runs a torch conv and its graph twin on the same
random input and compares outputs and every gradient (input, weight, bias)
against one tolerance table, :data:`~gridgnn.testing.TOLERANCES`, with TF32 switched off so that
GPU comparisons see true float32 arithmetic. Users call it on their own layers
the way e3nn's ``assert_equivariant`` is called.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._compare import TOLERANCES, Error, Tolerance, compare, no_tf32, tolerance
from ._types import SpatialSize
from .convert import replace_modules
from .errors import GridTypeError
from .geometry import ConvGeometry, ntuple
from .graph import conv_geometry, graph_for, on_batched_nodes, to_image, to_nodes
from .nn import GridConv, NodeLinear
from .nn._init import copy_conv_parameters
from .nn.functional import transposed_message_weight
from .nn.twins import TWINS, is_twin, torch_base, twin_of

__all__ = ["Tolerance", "TOLERANCES", "tolerance", "no_tf32", "Error", "compare", "EquivalenceReport",
           "check_conv_equivalent", "assert_conv_equivalent", "to_torch_convs", "TorchPointwiseOnNodes"]


@dataclass
class EquivalenceReport:
    """The :class:`Error` of each compared tensor: ``{"output": ..., "grad_input": ..., ...}``.

    Example:
        >>> from gridgnn.testing import check_conv_equivalent
        >>> report = check_conv_equivalent(nn.Conv2d(3, 4, 3, stride=2))
        >>> report.passed, sorted(report.errors)[:2]
        (True, ['grad_bias', 'grad_input'])
    """

    errors: Dict[str, Error] = field(default_factory=dict)
    tol: Tolerance = TOLERANCES[torch.float32]
    context: str = ""

    @property
    def max_abs(self) -> float:
        return max((e.abs for e in self.errors.values()), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((e.rel for e in self.errors.values()), default=0.0)

    def failures(self) -> Dict[str, Error]:
        """The entries whose error exceeds ``atol + rtol * scale``."""
        return {name: e for name, e in self.errors.items() if not e.within(self.tol)}

    @property
    def passed(self) -> bool:
        return not self.failures()

    def raise_on_failure(self) -> None:
        """Raise an ``AssertionError`` naming every tensor out of tolerance."""
        failures = self.failures()
        if failures:
            lines = [f"  {name}: max abs err {e.abs:.3e}, rel err {e.rel:.3e}" for name, e in failures.items()]
            raise AssertionError(f"{self.context}: out of tolerance (atol={self.tol.atol:g}, "
                                 f"rtol={self.tol.rtol:g}):\n" + "\n".join(lines))


def _default_size(layer: nn.Module, nd: int) -> tuple:
    # large enough for the dilated kernel with no padding, and odd/even mixed to catch transpositions
    kernel = ntuple(getattr(layer, "kernel_size", 1), nd, "kernel_size")
    dilation = ntuple(getattr(layer, "dilation", 1), nd, "dilation")
    return tuple(max(7 + d, (k - 1) * dil + 2) for d, (k, dil) in enumerate(zip(kernel, dilation)))


def _spatial_dims(layer: nn.Module) -> int:
    base = torch_base(layer)
    if base is None:
        names = ", ".join(t.__name__ for t in TWINS)
        raise GridTypeError(f"the reference must be a torch layer with a grid twin ({names}), "
                            f"got {type(layer).__name__}")
    return TWINS[base]._ndim


def _graph_runner(reference: nn.Module, layer: nn.Module, size: Sequence[int]):
    """A function image -> image running ``layer`` the way its kind expects its input."""
    if is_twin(layer):
        return layer
    if isinstance(layer, GridConv):
        graph = graph_for(reference, size)
        return lambda x: to_image(layer(to_nodes(x), graph), graph.out_size)
    if isinstance(layer, NodeLinear):
        return lambda x: to_image(layer(to_nodes(x)), x.shape[2:])
    raise GridTypeError(f"graph_layer must be a NodeLinear, GridConv or a twin in gridgnn.nn.TWINS, got "
                        f"{type(layer).__name__}")


def _as_graph_weight(layer: nn.Module, reference: nn.Module, weight: Tensor) -> Tensor:
    """``reference``'s weight (or its gradient) in ``layer``'s layout.

    A GridConv made from a transposed conv holds the per-edge message weights.
    """
    if isinstance(layer, GridConv) and getattr(reference, "transposed", False):
        weight = transposed_message_weight(weight, reference.groups)
    return weight.reshape(layer.weight.shape)


def check_conv_equivalent(conv: nn.Module, graph_layer: Optional[nn.Module] = None,
                          input_size: Union[int, Sequence[int], None] = None, dtype: torch.dtype = torch.float32,
                          device: Union[str, torch.device] = "cpu", batch_size: int = 2, backward: bool = True,
                          copy_weights: bool = True, seed: int = 0,
                          tol: Optional[Tolerance] = None) -> EquivalenceReport:
    """Compare ``graph_layer`` with ``conv`` and return the report without raising.

    Arguments as :func:`assert_conv_equivalent`; read ``report.passed`` and
    ``report.failures()``.

    Example:
        >>> from gridgnn.testing import check_conv_equivalent
        >>> check_conv_equivalent(nn.ConvTranspose2d(4, 2, 3, stride=2), dtype=torch.float64).passed
        True
    """
    nd = _spatial_dims(conv)
    device = torch.device(device)
    reference = copy.deepcopy(conv).to(device=device, dtype=dtype)
    layer = twin_of(copy.deepcopy(reference)) if graph_layer is None else copy.deepcopy(graph_layer)
    layer = layer.to(device=device, dtype=dtype)
    has_weight = isinstance(getattr(reference, "weight", None), Tensor)
    if copy_weights and has_weight:
        try:
            copy_conv_parameters(layer, reference, _as_graph_weight(layer, reference, reference.weight))
        except ValueError as exc:                      # the two layers differ: an equivalence failure
            raise AssertionError(str(exc)) from None
    size = _default_size(conv, nd) if input_size is None else \
        ((input_size,) * nd if isinstance(input_size, int) else tuple(input_size))
    run_graph = _graph_runner(reference, layer, size)

    gen = torch.Generator().manual_seed(seed)
    channels = conv.in_channels if has_weight else 3
    x = torch.randn(batch_size, channels, *size, generator=gen, dtype=torch.float64)
    x_ref = x.to(device=device, dtype=dtype).requires_grad_(backward)
    x_graph = x.to(device=device, dtype=dtype).requires_grad_(backward)
    tol = tolerance(dtype) if tol is None else tol
    report = EquivalenceReport(tol=tol)
    with no_tf32():
        y_ref, y_graph = reference(x_ref), run_graph(x_graph)
        report.errors["output"] = compare(y_graph.detach(), y_ref.detach())
        if backward:
            grad = torch.randn(y_ref.shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
            y_ref.backward(grad)
            y_graph.backward(grad)
            report.errors["grad_input"] = compare(x_graph.grad, x_ref.grad)
            if has_weight:
                report.errors["grad_weight"] = compare(layer.weight.grad,
                                                       _as_graph_weight(layer, reference, reference.weight.grad))
                if reference.bias is not None:
                    report.errors["grad_bias"] = compare(layer.bias.grad, reference.bias.grad)
    report.context = f"{type(layer).__name__} vs {conv!r} ({dtype}, {device}, input size {size})"
    return report


def assert_conv_equivalent(conv: nn.Module, graph_layer: Optional[nn.Module] = None,
                           input_size: Union[int, Sequence[int], None] = None, dtype: torch.dtype = torch.float32,
                           device: Union[str, torch.device] = "cpu", batch_size: int = 2, backward: bool = True,
                           copy_weights: bool = True, seed: int = 0,
                           tol: Optional[Tolerance] = None) -> EquivalenceReport:
    r"""Assert that ``graph_layer`` computes exactly what the torch ``conv`` computes.

    Both run on one random input :math:`X` (float ``dtype`` on ``device``); the
    check compares :math:`Y`, and with ``backward`` also :math:`\partial L/\partial X`,
    :math:`\partial L/\partial W` and :math:`\partial L/\partial b` (layers with parameters) for a random
    upstream gradient, each normwise: ``max|a - b| <= atol + rtol * max|b|`` with
    the :data:`~gridgnn.testing.TOLERANCES` entry of ``dtype`` and TF32 off. Neither argument is
    modified: the check runs on copies.

    Args:
        conv: the reference: an ``nn.Conv1d/2d/3d``, or any torch layer with a twin in
            :data:`gridgnn.nn.TWINS` (transposed convs, max / average / adaptive pools).
        graph_layer: a twin (image in, image out, e.g. ``GridConv2d``), a ``GridConv``
            (run on :func:`~gridgnn.graph_for` ``(conv, size)``, the reversed graph for a transposed
            conv) or a ``NodeLinear`` (1x1, stride 1). Default: the twin of ``conv``.
        input_size: spatial input size (default: a size that fits the kernel).
        copy_weights: load ``conv``'s weights into the copy of ``graph_layer`` first.
        tol: override the table's tolerance.

    Returns:
        :class:`EquivalenceReport` with the error of every compared tensor.

    Raises:
        AssertionError: naming every quantity out of tolerance, with its error.

    Example:
        >>> report = assert_conv_equivalent(torch.nn.Conv2d(4, 8, 3, padding=1), dtype=torch.float64)
        >>> report.passed
        True
    """
    report = check_conv_equivalent(conv, graph_layer, input_size, dtype, device, batch_size, backward,
                                   copy_weights, seed, tol)
    report.raise_on_failure()
    return report


# -- reference twins: the same models computing through torch's own layers ------------------------------
class _TorchOnNodes:
    """Mixin for torch layers that also run on node features (the reference twin of a gridgnn drop-in)."""

    def geometry(self, size: SpatialSize) -> ConvGeometry:
        return conv_geometry(self, size)

    def forward_nodes(self, x: Tensor, size: SpatialSize) -> Tensor:
        return on_batched_nodes(lambda batched: to_nodes(self(to_image(batched, tuple(size)))), x)


_TORCH_ON_NODES = {base: type(f"Torch{base.__name__}OnNodes", (_TorchOnNodes, base), {"__module__": __name__})
                   for base in TWINS}


class TorchPointwiseOnNodes(nn.Module):
    """The reference twin of :class:`~gridgnn.nn.NodeLinear`: a 1x1 ``conv1d`` over the nodes, by torch.

    Example:
        >>> from gridgnn.testing import TorchPointwiseOnNodes
        >>> layer = NodeLinear(4, 6)
        >>> x = torch.randn(2, 10, 4)
        >>> torch.allclose(TorchPointwiseOnNodes(layer)(x), layer(x), atol=1e-6)
        True
    """

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
    """The inverse of :func:`~gridgnn.convert`, for references: a copy of ``model`` computing through torch's layers.

    Every twin in :data:`gridgnn.nn.TWINS` (convs, transposed convs, pools) becomes
    the torch layer it subclasses, with the same arguments and parameters and a
    ``forward_nodes`` method (so graph-native blocks run unchanged), and every
    ``NodeLinear`` a 1x1 torch conv over the nodes. Names and ``state_dict`` keys are
    kept: the reference starts from the same init, so training both on the same
    batches must give the same loss curve.

    Example:
        >>> from gridgnn.testing import to_torch_convs
        >>> twin = gg.convert(nn.Sequential(nn.Conv2d(3, 4, 3)))
        >>> from gridgnn.nn.twins import is_twin
        >>> reference = to_torch_convs(twin)[0]                 # computes through torch's conv
        >>> isinstance(reference, nn.Conv2d), is_twin(reference)
        (True, False)
    """
    def twin(layer: nn.Module, path: str) -> Optional[nn.Module]:
        if is_twin(layer):
            return _torch_reference(layer)
        if isinstance(layer, NodeLinear):
            return TorchPointwiseOnNodes(layer).train(layer.training)
        return None

    return replace_modules(copy.deepcopy(model), twin)
