"""The node-wise GEMM every layer ends in: ``x @ weight.T (+ bias)``, on the fastest kernel torch ships.

On CPU float32, torch's own convs and ``torch.compile``'s CPU code run their GEMMs
through oneDNN (``torch.ops.mkldnn._linear_pointwise``), which on some CPUs is
10-40% faster than the BLAS behind ``torch.matmul`` (measured in
``benchmarks/results``). :func:`linear` uses the same kernel there (CPUs not made
by Intel: on Intel's, MKL behind ``F.linear`` is the faster one); everywhere else
(CUDA, other dtypes, torch builds without oneDNN, ``torch.backends.mkldnn.enabled
= False``) it is ``F.linear``. The oneDNN kernel has no autograd formula, so it runs inside
:class:`OneDNNLinear`, whose backward is written with :func:`linear` again and is
therefore differentiable to every order.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._function import Function, save_bilinear
from ._transforms import plain_ops

_ONEDNN_LINEAR = (getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
                  if torch.backends.mkldnn.is_available() else None)

#: below this many multiply-adds BLAS wins: oneDNN's primitive set-up is not amortised (measured on CPU)
ONEDNN_MIN_MACS = 1 << 24

#: below this inner dimension the separate add of :func:`add_matmul_`'s oneDNN path costs more than it saves
ADD_ONEDNN_MIN_K = 64


def _cpu_vendor() -> str:
    """The CPU's vendor string (``GenuineIntel``, ``AuthenticAMD``) on Linux, else ``""``."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


#: whether :func:`add_matmul_` accumulates through oneDNN: on AVX-512 CPUs not made by Intel, where MKL's
#: in-place GEMM takes a generic path (2-2.5x slower on an AMD EPYC). On an AVX2 EPYC ``addmm_`` ran 1.1-1.3x
#: faster than oneDNN plus an add, and on an AVX-512 Intel Xeon a dense 3x3 at C=64 56x56 ran 1.5x faster
#: on ``addmm_`` (side by side).
ADD_BY_ONEDNN = (torch.backends.cpu.get_cpu_capability().startswith("AVX512")
                 and _cpu_vendor() != "GenuineIntel")

#: whether :func:`linear` may run through oneDNN: not on Intel CPUs, where MKL's GEMM behind ``F.linear`` ran
#: the layers' node-wise GEMMs 1.2-1.75x faster than oneDNN's inner product (an AVX-512 Xeon, side by side;
#: on AMD EPYC hosts oneDNN was the faster one)
LINEAR_BY_ONEDNN = _cpu_vendor() != "GenuineIntel"

#: groups thinner than this many input channels are merged into block-diagonal ones of at least this width
MIN_GROUP_CHANNELS = 16


def uses_onednn(x: Tensor, weight: Tensor) -> bool:
    """Whether :func:`linear` runs ``x`` and ``weight`` through oneDNN."""
    return (LINEAR_BY_ONEDNN and _ONEDNN_LINEAR is not None and torch.backends.mkldnn.enabled and x.device.type == "cpu"
            and x.dtype == weight.dtype == torch.float32 and x.numel() * weight.size(0) >= ONEDNN_MIN_MACS)


class OneDNNLinear(Function):
    """``x @ weight.T + bias`` by oneDNN's inner product, with a backward and a ``jvp`` made of :func:`linear`."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        return _ONEDNN_LINEAR(x, weight.contiguous(), bias, "none", [], "")

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        save_bilinear(ctx, *inputs)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = linear(grad, weight.t())                                    # [..., C_in]
        rows = grad.reshape(-1, grad.size(-1))                                   # [M, C_out]
        if ctx.needs_input_grad[1]:
            grad_weight = rows.t() @ x.reshape(-1, x.size(-1))                   # [C_out, C_in]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = rows.sum(0)
        return grad_x, grad_weight, grad_bias

    @staticmethod
    def jvp(ctx, x_t: Optional[Tensor], weight_t: Optional[Tensor], bias_t: Optional[Tensor]) -> Tensor:
        x, weight = ctx.saved_tensors                                            # bilinear: d(xW^T) = dx W^T + x dW^T
        terms = [linear(x_t, weight) if x_t is not None else None,
                 linear(x, weight_t) if weight_t is not None else None, bias_t]
        return sum_tangents(terms, (*x.shape[:-1], weight.size(0)), x)


def sum_tangents(terms: List[Optional[Tensor]], shape: Tuple[int, ...], like: Tensor) -> Tensor:
    """The tangent of a map linear in each input: the sum of the inputs' ``terms`` (zeros of ``shape`` if none)."""
    present = [t for t in terms if t is not None]
    out = present[0] if present else like.new_zeros(shape)
    for t in present[1:]:
        out = out + t
    return out


def add_matmul_(acc: Tensor, x: Tensor, matrix: Tensor) -> Tensor:
    """``acc += x @ matrix`` in place (``x`` ``[M, K]``, ``matrix`` ``[K, N]``), on the faster kernel.

    oneDNN's inner product and an add on AVX-512 AMD CPUs (:data:`ADD_BY_ONEDNN`) where :func:`uses_onednn`
    and ``K`` is at least :data:`ADD_ONEDNN_MIN_K` (on AVX-512 AMD hosts it runs 2-2.5x faster than
    MKL's in-place GEMM, which takes a generic path there; measured in ``benchmarks/README.md``),
    else ``addmm_``. Batched (vmapped) operands take ``addmm_``.
    """
    weight = matrix.t()                                                          # [N, K], as linear takes it
    if (ADD_BY_ONEDNN and x.size(-1) >= ADD_ONEDNN_MIN_K and uses_onednn(x, weight)
            and not plain_ops(acc, x, matrix)):
        return acc.add_(_ONEDNN_LINEAR(x, weight.contiguous(), None, "none", [], ""))
    return acc.addmm_(x, matrix)


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``[..., C_in] -> [..., C_out]``: ``x @ weight.T + bias`` with ``weight`` ``[C_out, C_in]``."""
    if uses_onednn(x, weight) and not plain_ops(x, weight, bias):
        return OneDNNLinear.apply(x, weight, bias)
    return F.linear(x, weight, bias)


def grouped_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor], groups: int) -> Tensor:
    """``[..., C_in] -> [..., C_out]`` through a block-diagonal weight ``[C_out, C_in / groups]``.

    Channel block ``g`` of the output is ``x_g @ W_g.T`` for the ``g``-th block of the input:
    one :func:`linear` per group on a strided view of ``x`` (no copy; thin groups merged by
    :func:`merge_groups`), or, when every group has one input channel (depthwise), per-channel
    products.
    """
    if groups > 1 and weight.size(-1) == 1:                                      # depthwise: elementwise products
        y = (x.unflatten(-1, (groups, 1)) * weight.view(groups, -1)).flatten(-2)  # [..., G, C_out/G] -> [..., C_out]
        return y if bias is None else y + bias

    def per_group(weight: Tensor, groups: int) -> Tensor:
        if groups == 1:
            return linear(x, weight, bias)
        if (x.device.type == "cpu" and x.is_contiguous() and x.numel() and not x.is_complex()
                and not plain_ops(x, weight, bias)):                            # (real: no conjugates below)
            return SlicedGroupedLinear.apply(x, weight, bias, groups)
        wg = weight.view(groups, -1, weight.size(-1))                            # [G, C_out/G, C_in/G]
        y = torch.cat([linear(xg, w) for xg, w in zip(x.chunk(groups, -1), wg)], -1)  # [..., C_out]
        return y if bias is None else y + bias

    return with_merged_groups(per_group, weight, groups, x)


def sliced_group_matmul(a: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``out[:, g] = a[:, g] @ weight[g].T (+ bias[g])`` for every group ``g``: ``[M, G k] -> [M, G n]``.

    ``weight`` is ``[G, n, k]``. Each group's GEMM reads its column block of ``a`` and writes its column
    block of the output where they lie (strided views: no concatenation, no copies), one GEMM a group over
    all ``M`` rows (in passes of 1024 rows, to share the rows in cache, the GEMMs took 1.0-3x the time on
    an AVX2 EPYC: each pass's small GEMMs paid their call and thread start-up). Plain ``out=`` calls, so
    not differentiable: :class:`SlicedGroupedLinear` holds them.
    """
    groups, n, k = weight.shape
    out = a.new_empty(a.size(0), groups * n)
    for g in range(groups):
        source, target = a[:, g * k:(g + 1) * k], out[:, g * n:(g + 1) * n]
        if bias is None:
            torch.mm(source, weight[g].t(), out=target)
        else:
            torch.addmm(bias[g * n:(g + 1) * n], source, weight[g].t(), out=target)
    return out


class SlicedGroupedLinear(Function):
    """``x @ W.T + b`` with a block-diagonal ``W`` of ``G`` groups, by :func:`sliced_group_matmul`.

    Node-wise ``y_i[g] = W_g x_i[g] + b_g``; ``x`` is ``[..., C_in]`` contiguous, ``weight`` ``[C_out, C_in / G]``.
    The backward is the same sliced GEMMs (input gradient: the transposed blocks; weight gradient: one
    ``grad_g^T x_g`` a group) at first order, and plain per-group products, concatenated, where it must
    itself be differentiable (``create_graph``) or runs on batched gradients. Real dtypes only.
    """

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Optional[Tensor], groups: int) -> Tensor:
        blocks = weight.reshape(groups, -1, weight.size(-1))                    # [G, C_out/G, C_in/G]
        out = sliced_group_matmul(x.reshape(-1, x.size(-1)), blocks, bias)       # [M, C_out]
        return out.view(*x.shape[:-1], weight.size(0))

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        save_bilinear(ctx, *inputs[:3])
        ctx.groups = inputs[3]

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        groups, grad_x, grad_weight, grad_bias = ctx.groups, None, None, None
        rows = grad.reshape(-1, grad.size(-1))                                   # [M, C_out]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = rows.sum(0)
        if torch.is_grad_enabled() or plain_ops(grad):              # double backward, batched grads: plain ops
            x_rows, blocks = x.reshape(-1, x.size(-1)), weight.reshape(groups, -1, weight.size(-1))
            if ctx.needs_input_grad[0]:
                grad_x = torch.cat([g @ w for g, w in zip(rows.chunk(groups, -1), blocks)], -1).view_as(x)
            if ctx.needs_input_grad[1]:
                grad_weight = torch.cat([g.t() @ xg for g, xg in zip(rows.chunk(groups, -1), x_rows.chunk(groups, -1))])
            return grad_x, grad_weight, grad_bias, None
        if ctx.needs_input_grad[0]:                                              # blocks W_g^T: [G, C_in/G, C_out/G]
            blocks_t = weight.reshape(groups, -1, weight.size(-1)).transpose(1, 2)
            grad_x = sliced_group_matmul(rows.contiguous(), blocks_t, None).view_as(x)
        if ctx.needs_input_grad[1]:
            x_rows, n, k = x.reshape(-1, x.size(-1)), weight.size(0) // groups, weight.size(-1)
            grad_weight = weight.new_empty(weight.shape)                         # [C_out, C_in/G]
            for g in range(groups):
                torch.mm(rows[:, g * n:(g + 1) * n].t(), x_rows[:, g * k:(g + 1) * k],
                         out=grad_weight[g * n:(g + 1) * n])
        return grad_x, grad_weight, grad_bias, None

    @staticmethod
    def jvp(ctx, x_t: Optional[Tensor], weight_t: Optional[Tensor], bias_t: Optional[Tensor], _) -> Tensor:
        x, weight = ctx.saved_tensors                                            # bilinear, as the ungrouped map
        terms = [grouped_linear(x_t, weight, None, ctx.groups) if x_t is not None else None,
                 grouped_linear(x, weight_t, None, ctx.groups) if weight_t is not None else None, bias_t]
        return sum_tangents(terms, (*x.shape[:-1], weight.size(0)), x)


def with_merged_groups(compute: Callable[[Tensor, int], Tensor], weight: Tensor, groups: int,
                       x: Tensor) -> Tensor:
    """``compute(weight, groups)`` with thin groups merged block-diagonally (:func:`merge_groups`), exactly.

    A merged block multiplies the other groups' channels by exact zeros, and ``0 x inf = NaN``: an
    inf or NaN input would leak into the neighbouring groups' outputs, which torch's grouped convs
    never do. Such a leak always shows as a NaN in the merged result, so a result holding a NaN is
    recomputed group by group (the same arithmetic as torch). Groups are merged on the CPU only (where
    the merge was measured to pay and the check costs no device sync), and not under ``torch.compile``
    or torch.func transforms (no data-dependent branch); ``x`` is the input ``compute`` reads.
    """
    if weight.device.type != "cpu" or plain_ops(x, weight):
        return compute(weight, groups)
    merged, merged_groups = merge_groups(weight, groups)
    if merged_groups == groups:
        return compute(weight, groups)
    out = compute(merged, merged_groups)
    return compute(weight, groups) if bool(out.isnan().any()) else out


def merge_groups(weight: Tensor, groups: int, min_channels: int = MIN_GROUP_CHANNELS) -> Tuple[Tensor, int]:
    """The same grouped map with ``m`` neighbouring groups merged into one block-diagonal group.

    ``weight`` is ``[C_out, C_in/G, *rest]`` (a conv or NodeLinear weight); the result is
    ``[C_out, m C_in/G, *rest]`` for ``G/m`` groups, zero outside each original block. It
    multiplies ``m``-fold more (zero) products but turns ``G`` GEMMs too thin for a BLAS into
    ``G/m`` usable ones; ``m`` is the smallest divisor of ``G`` giving ``min_channels`` input
    channels a group (``m = 1``, unchanged, for groups that are wide enough).
    """
    width = weight.size(1)
    merge = next((m for m in range(1, groups + 1) if groups % m == 0 and m * width >= min_channels), groups)
    if merge == 1:
        return weight, groups
    c_out, rest = weight.size(0), weight.shape[2:]
    blocks = weight.reshape(groups // merge, merge, c_out // groups, width, -1)  # [G/m, m, C_out/G, C_in/G, R]
    eye = torch.eye(merge, dtype=weight.dtype, device=weight.device)
    merged = torch.einsum("nsoir,st->nsotir", blocks, eye)                    # [G/m, m, C_out/G, m, C_in/G, R]
    return merged.reshape(c_out, merge * width, *rest), groups // merge
