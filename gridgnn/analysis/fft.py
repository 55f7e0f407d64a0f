"""Convolution through the convolution theorem: pointwise products in the frequency domain."""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import Tensor

from ..errors import GridValueError
from ..nn import GridConv1d, GridConv2d


def fft_conv(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, padding_mode: str = "zeros") -> Tensor:
    r"""Cross-correlation (torch's "convolution") computed by FFT, 1-D or 2-D.

    In the frequency domain a convolution is a pointwise product, summed over input channels:

    .. math::
        \hat{\mathbf{y}}_o(\omega) = \sum_c \hat{\mathbf{x}}_c(\omega)\,\overline{\hat{\mathbf{h}}_{oc}(\omega)}

    (the conjugate turns convolution into torch's cross-correlation). With
    ``padding_mode="circular"`` the FFT's periodicity is the torus grid graph and
    the result equals ``nn.Conv{n}d(..., padding=k//2, padding_mode="circular")``;
    with ``"zeros"`` the signal is zero-padded to ``N + k - 1`` so nothing wraps,
    giving the linear convolution of ``nn.Conv{n}d(..., padding=k//2)``.
    Cost :math:`O(N \log N)` per channel pair instead of :math:`O(N k)`.

    Args:
        x: ``[B, C_in, *S]`` with 1 or 2 spatial dims.
        weight: ``[C_out, C_in, *k]`` (groups=1).
        bias: ``[C_out]`` or None.
        padding_mode: ``"zeros"`` or ``"circular"``.

    Shapes:
        - **output:** ``[B, C_out, *S_out]`` with ``S_out = S + 2 * (k // 2) - k + 1``
          (``S`` for odd kernels)

    Example:
        >>> from gridgnn import analysis
        >>> x, w = torch.randn(1, 2, 16, dtype=torch.float64), torch.randn(3, 2, 3, dtype=torch.float64)
        >>> torch.allclose(analysis.fft_conv(x, w), F.conv1d(x, w, padding=1))
        True
        >>> torch.allclose(analysis.fft_conv(x, w, padding_mode="circular"), F.conv1d(F.pad(x, (1, 1), "circular"), w))
        True
    """
    nd = x.dim() - 2
    if nd not in (1, 2) or weight.dim() != nd + 2:
        raise GridValueError(f"fft_conv expects x [B, C, *S] and weight [C_out, C_in, *k] with 1 or 2 spatial dims, "
                             f"got {tuple(x.shape)} and {tuple(weight.shape)}")
    if weight.size(1) != x.size(1):
        raise GridValueError(f"weight has {weight.size(1)} input channels but x has {x.size(1)}")
    if padding_mode not in ("zeros", "circular"):
        raise GridValueError(f"padding_mode must be 'zeros' or 'circular', got {padding_mode!r}")
    size, kernel = x.shape[2:], weight.shape[2:]
    pads = [k // 2 for k in kernel]
    if padding_mode == "circular":
        if any(p > n for p, n in zip(pads, size)):
            raise GridValueError(f"circular padding {pads} wraps more than once for input size {tuple(size)}")
        fft_size = list(size)
    else:
        fft_size = [n + k - 1 for n, k in zip(size, kernel)]
    # kernel tap k sits at lag (k - pad) mod L: y[p] = sum_m h[m] x[p + m]
    h = torch.zeros(*weight.shape[:2], *fft_size, dtype=weight.dtype, device=weight.device)
    index = [torch.arange(weight.size(0), device=weight.device).view(-1, *[1] * (1 + nd)),
             torch.arange(weight.size(1), device=weight.device).view(1, -1, *[1] * nd)]
    for d in range(nd):
        shape = [1] * (2 + nd)
        shape[2 + d] = -1
        index.append(((torch.arange(kernel[d], device=weight.device) - pads[d]) % fft_size[d]).view(shape))
    h.index_put_(tuple(index), weight, accumulate=True)                           # [C_out, C_in, *L]
    dims = tuple(range(2, 2 + nd))
    xf = torch.fft.rfftn(x, s=fft_size, dim=dims)                                 # [B, C_in, *F]
    hf = torch.fft.rfftn(h, s=fft_size, dim=dims)                                 # [C_out, C_in, *F]
    yf = torch.einsum("bc...,oc...->bo...", xf, hf.conj())                        # pointwise in frequency
    y = torch.fft.irfftn(yf, s=fft_size, dim=dims)
    out_size = [n + 2 * p - k + 1 for n, p, k in zip(size, pads, kernel)]
    for d, (n, length) in enumerate(zip(out_size, fft_size)):  # periodic: an even circular kernel wraps once more
        y = y.index_select(2 + d, torch.arange(n, device=y.device) % length)
    return y if bias is None else y + bias.view(-1, *[1] * nd)


def fft_vs_direct_timing(sizes: Sequence[int], kernel_sizes: Sequence[int], channels: int = 4, ndim: int = 1,
                         min_run_time: float = 0.05) -> List[dict]:
    """Median seconds of direct (message passing, :class:`~gridgnn.nn.GridConv1d` / ``2d``) vs FFT convolution.

    Timed on all of torch's current threads. Returns one dict per (size, kernel) with ``size``,
    ``kernel``, ``direct``, ``fft`` seconds.

    Example:
        >>> from gridgnn import analysis
        >>> rows = analysis.fft_vs_direct_timing((16,), (3,), channels=2, min_run_time=0.001)
        >>> sorted(rows[0])                                      # seconds for each method, per size and kernel
        ['direct', 'fft', 'kernel', 'size']
    """
    from torch.utils.benchmark import Timer

    layer_cls = {1: GridConv1d, 2: GridConv2d}[ndim]
    rows = []
    for n in sizes:
        for k in kernel_sizes:
            layer = layer_cls(channels, channels, k, padding=k // 2, bias=False)
            x = torch.randn(1, channels, *([n] * ndim))
            env = {"layer": layer, "x": x, "fft_conv": fft_conv, "torch": torch}
            direct, fft = (Timer(f"with torch.no_grad(): {stmt}", globals=env, num_threads=torch.get_num_threads())
                           .blocked_autorange(min_run_time=min_run_time)
                           for stmt in ("layer(x)", "fft_conv(x, layer.weight)"))
            rows.append({"size": n, "kernel": k, "direct": direct.median, "fft": fft.median})
    return rows
