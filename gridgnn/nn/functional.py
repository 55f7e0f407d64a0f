r"""Functional forms of the grid layers: every module in :mod:`gridgnn.nn` computes through these.

Node-level functions take node features ``[B, N, C]`` (``N`` row-major over a
spatial grid) and return node features; none of them calls a torch conv,
transposed-conv or pooling op (torch's layers are only the reference in tests).

* :func:`grid_conv` -- offset-typed message passing on a :class:`~gridgnn.GridGraph`,
  :math:`\mathbf{y}_i = \mathbf{b} + \sum_{(j \to i, t)} \mathbf{W}_t \mathbf{x}_j`
  (dense or general execution path), also on transposed and masked graphs.
* :func:`conv_transpose_nodes` -- the same on the reversed graph of a conv:
  :math:`\mathbf{y}_j = \mathbf{b} + \sum_{(i \to j, t)} \mathbf{W}_t^{\top} \mathbf{x}_i`.
* :func:`max_pool_nodes`, :func:`avg_pool_nodes` -- max / mean aggregation over the
  window edges of the pooling grid graph; :func:`adaptive_pool_nodes` over one
  window per output cell.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from .._checks import is_int
from .._types import Device
from ..errors import GridValueError
from ..geometry import ConvGeometry, IntOrTuple, ntuple, transposed_conv_geometry
from ..graph import GridGraph, _canonical_device, graph_from_geometry, on_batched_nodes
from ._dense import dense_conv_transpose, dense_grid_conv, plain_window_reduce
from ._depthwise import window_max, window_sum
from ._general import general_conv
from ._offset_plan import transposed_message_weight
from ._transforms import cached_in_eager, plain_ops

#: torch's adaptive ``output_size``: an int, or a tuple of ints and None (keep that dim's size)
AdaptiveSize = Union[int, None, Sequence[Optional[int]]]

__all__ = ["grid_conv", "conv_nodes", "conv_transpose_nodes", "transposed_message_weight", "pool_geometry",
           "max_pool_nodes", "avg_pool_nodes", "adaptive_pool_nodes", "adaptive_pool_graph"]



def grid_conv(x: Tensor, graph: GridGraph, weight: Tensor, bias: Optional[Tensor] = None, groups: int = 1,
              path: str = "auto") -> Tensor:
    r"""Message passing with one weight matrix per edge type on a :class:`~gridgnn.GridGraph`.

    .. math::
        \mathbf{Y} = \mathbf{1}\mathbf{b}^{\top} + \sum_t \mathbf{A}_t \mathbf{X} \mathbf{W}_t^{\top}
        \qquad
        \mathbf{y}_i = \mathbf{b} + \sum_{(j \to i,\, t)} \mathbf{W}_t \mathbf{x}_j

    Args:
        x: node features ``[N_src, C_in]`` or ``[B, N_src, C_in]``.
        graph: the typed graph (complete, masked or transposed).
        weight: ``[C_out, C_in / groups, *kernel]``, ``W_t = weight.flatten(2)[..., t]``.
        path: ``"dense"`` (complete graphs only, transposed or not), ``"general"`` or ``"auto"``.

    Returns:
        ``[N_dst, C_out]`` or ``[B, N_dst, C_out]``.

    Example:
        >>> from gridgnn.nn.functional import grid_conv
        >>> conv = nn.Conv2d(3, 4, 3, padding=1)
        >>> x = torch.randn(2, 3, 6, 6)
        >>> g = gg.graph_for(conv, (6, 6))
        >>> y = grid_conv(gg.to_nodes(x), g, conv.weight, conv.bias)
        >>> torch.allclose(gg.to_image(y, g.out_size), conv(x), atol=1e-5)
        True
    """
    if path == "dense" and not graph.is_complete:
        raise GridValueError("path='dense' needs a complete GridGraph, got a masked one; use path='general' or 'auto'")
    if path != "general" and graph.is_complete:
        dense = dense_conv_transpose if graph.transposed else dense_grid_conv
        return on_batched_nodes(lambda batched: dense(batched, graph.geometry, weight, bias, groups), x)
    out = general_conv(x.contiguous(), graph, weight, groups)    # node rows contiguous: gathers read whole rows
    return out if bias is None else out + bias


def conv_nodes(x: Tensor, geom: ConvGeometry, weight: Tensor, bias: Optional[Tensor], groups: int,
               path: str = "auto") -> Tensor:
    """The conv of ``geom`` on node features ``[B, N_in, C_in] -> [B, N_out, C_out]`` (complete grid).

    Example:
        >>> from gridgnn.nn.functional import conv_nodes
        >>> conv = nn.Conv2d(3, 4, 3, stride=2)
        >>> geom = gg.graph_for(conv, (7, 7)).geometry
        >>> conv_nodes(torch.randn(2, 49, 3), geom, conv.weight, conv.bias, 1).shape
        torch.Size([2, 9, 4])
    """
    if path == "general":
        return grid_conv(x.contiguous(), graph_from_geometry(geom, x.device), weight, bias, groups, "general")
    return dense_grid_conv(x, geom, weight, bias, groups)   # complete grid: no edge tensors


def conv_transpose_nodes(x: Tensor, size: Tuple[int, ...], weight: Tensor, bias: Optional[Tensor],
                         stride: IntOrTuple, padding: IntOrTuple, output_padding: IntOrTuple, groups: int,
                         dilation: IntOrTuple, path: str = "auto") -> Tuple[Tensor, Tuple[int, ...]]:
    """``nn.ConvTranspose{n}d`` on node features by message passing on the conv's reversed grid graph.

    Args:
        x: ``[B, N_in, C_in]`` over a grid of spatial ``size``.
        weight: torch's transposed layout ``[C_in, C_out / groups, *kernel]``.

    Returns:
        ``([B, N_out, C_out], out_size)``.

    Example:
        >>> from gridgnn.nn.functional import conv_transpose_nodes
        >>> up = nn.ConvTranspose2d(4, 2, 2, stride=2)
        >>> y, size = conv_transpose_nodes(torch.randn(1, 9, 4), (3, 3), up.weight, up.bias, 2, 0, 0, 1, 1)
        >>> y.shape, size
        (torch.Size([1, 36, 2]), (6, 6))
    """
    geom = transposed_conv_geometry(size, weight.shape[2:], stride, padding, output_padding, dilation)
    message_weight = transposed_message_weight(weight, groups)
    if path == "general":
        graph = graph_from_geometry(geom, x.device, transposed=True)
        return grid_conv(x.contiguous(), graph, message_weight, bias, groups, path), graph.out_size
    # the complete reversed grid: no edge tensors (the targets are the conv's input positions)
    return on_batched_nodes(lambda batched: dense_conv_transpose(batched, geom, message_weight, bias, groups),
                            x), tuple(geom.in_size)


# -- pooling ------------------------------------------------------------------------------------------------

def pool_geometry(size: IntOrTuple, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
                  padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False) -> ConvGeometry:
    """The window geometry of ``nn.MaxPool{n}d`` / ``nn.AvgPool{n}d`` on an input of spatial ``size``.

    torch's rules: ``stride`` defaults to ``kernel_size``; ``padding`` at most half
    the kernel; with ``ceil_mode`` one more window where the input does not fill it,
    unless that window would start in the right padding. The extra windows are
    expressed as extra right padding, which (like all zero padding) carries no edges.

    Example:
        >>> from gridgnn.nn.functional import pool_geometry
        >>> pool_geometry((7, 7), 2, ceil_mode=True).out_size
        (4, 4)
    """
    nd = len(size)
    kernel = ntuple(kernel_size, nd, "kernel_size")
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else \
        ntuple(stride, nd, "stride")
    pads, dil = ntuple(padding, nd, "padding"), ntuple(dilation, nd, "dilation")
    for name, values in (("kernel_size", kernel), ("stride", stride), ("dilation", dil)):
        if any(v < 1 for v in values):
            raise GridValueError(f"{name} must be positive, got {values}")
    if any(p > k // 2 for p, k in zip(pads, kernel)):
        raise GridValueError(f"padding={pads} must be at most half of kernel_size={kernel} (as in torch)")
    out, extra = [], []
    for n, k, s, p, d in zip(size, kernel, stride, pads, dil):
        span = n + 2 * p - d * (k - 1) - 1
        o = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= n + p:
            o -= 1
        if o < 1:
            raise GridValueError(f"input size {tuple(size)} with padding={pads} is smaller than the pooling window "
                                 f"(kernel_size={kernel}, dilation={dil}); the output would be empty")
        out.append(o)
        extra.append(max(0, (o - 1) * s + d * (k - 1) + 1 - (n + 2 * p)))
    return ConvGeometry(tuple(size), kernel, stride, tuple((p, p + e) for p, e in zip(pads, extra)), dil, "zeros")


def _window_reduce(x: Tensor, geom: ConvGeometry, reduce: str) -> Tensor:
    """Dense path: max or sum over every window of the complete grid, ``[B, N_in, C] -> [B, N_out, C]``.

    One clipped box per window offset (:mod:`gridgnn.nn._depthwise`).
    """
    image = x.reshape(x.size(0), *geom.in_size, x.size(-1))                         # [B, *S_in, C]
    if plain_ops(x):
        return plain_window_reduce(image, geom, reduce)
    return window_max(image, geom) if reduce == "max" else window_sum(image, geom)


def _edge_reduce(x: Tensor, edge_index: Tensor, num_dst_nodes: int, reduce: str) -> Tensor:
    r"""General path: ``reduce`` ("max", "sum" or "mean") over the in-edges of every target node.

    A sum or mean is PyG's scatter. A max starts from :math:`-\infty` and takes it into the
    reduction, so a window with no real pixel (all of it in the padding, possible with
    dilation) is :math:`-\infty` as in torch, and each window's gradient goes whole to its
    maximum (split evenly between exact ties). PyG's ``scatter(reduce="max")`` leaves the
    initial value out of the reduction but not out of torch's count of ties in the backward:
    a window whose maximum is exactly 0 lost part of its gradient to the zero it started from.
    """
    src, dst = edge_index
    messages = x.index_select(-2, src)                                            # [B, E, C]
    if reduce == "max":
        out = x.new_full((*x.shape[:-2], num_dst_nodes, x.size(-1)), -math.inf)
        return out.scatter_reduce(-2, dst.view(-1, 1).expand_as(messages), messages, "amax")
    return scatter(messages, dst, dim=-2, dim_size=num_dst_nodes, reduce=reduce)


def _graph_reduce(x: Tensor, geom: ConvGeometry, reduce: str) -> Tensor:
    """:func:`_edge_reduce` over the window edges of the pooling grid graph of ``geom``."""
    graph = graph_from_geometry(geom, x.device)
    return _edge_reduce(x, graph.edge_index, graph.num_dst_nodes, reduce)


def max_pool_nodes(x: Tensor, geom: ConvGeometry, path: str = "auto") -> Tensor:
    r"""Max pooling as max aggregation over window edges.

    :math:`\mathbf{y}_i = \max_{j \in \mathcal{N}(i)} \mathbf{x}_j`; ``x`` is ``[B, N_in, C]`` on the
    complete grid of ``geom`` (:func:`pool_geometry`);
    padding carries no edges, which is torch's :math:`-\infty` padding.

    Example:
        >>> from gridgnn.nn.functional import max_pool_nodes, pool_geometry
        >>> x = torch.randn(1, 3, 4, 4)
        >>> y = max_pool_nodes(gg.to_nodes(x), pool_geometry((4, 4), 2))
        >>> torch.equal(gg.to_image(y, (2, 2)), F.max_pool2d(x, 2))
        True
    """
    if path == "general":
        return _graph_reduce(x, geom, "max")
    return _window_reduce(x, geom, "max")


def avg_divisor(geom: ConvGeometry, padding: Tuple[int, ...], count_include_pad: bool,
                divisor_override: Optional[int], like: Tensor) -> Tensor:
    """The divisor of every output cell, ``[N_out, 1]``, by torch's rules for ``nn.AvgPool{n}d``."""
    if divisor_override:
        return like.new_full((1, 1), float(divisor_override))
    counts = like.new_ones(())
    for n, k, s, p, o in zip(geom.in_size, geom.kernel_size, geom.stride, padding, geom.out_size):
        start = torch.arange(o, device=like.device) * s - p                       # [O_d]
        end = torch.clamp(start + k, max=n + p)
        length = end - start if count_include_pad else end.clamp(max=n) - start.clamp(min=0)
        counts = counts[..., None] * length.to(like.dtype)                        # outer product over dims
    return counts.reshape(-1, 1)


def avg_pool_nodes(x: Tensor, geom: ConvGeometry, padding: Tuple[int, ...], count_include_pad: bool = True,
                   divisor_override: Optional[int] = None, path: str = "auto") -> Tensor:
    r"""Average pooling as sum aggregation over window edges, divided by torch's window count.

    :math:`\mathbf{y}_i = \frac{1}{c_i} \sum_{j \in \mathcal{N}(i)} \mathbf{x}_j` with :math:`c_i`
    the window's size (padding included or not, or ``divisor_override``).

    Example:
        >>> from gridgnn.nn.functional import avg_pool_nodes, pool_geometry
        >>> x = torch.randn(1, 3, 4, 4)
        >>> y = avg_pool_nodes(gg.to_nodes(x), pool_geometry((4, 4), 2), (0, 0))
        >>> torch.allclose(gg.to_image(y, (2, 2)), F.avg_pool2d(x, 2))
        True
    """
    total = _graph_reduce(x, geom, "sum") if path == "general" else \
        _window_reduce(x, geom, "sum")
    return total / avg_divisor(geom, padding, count_include_pad, divisor_override, x)


def _adaptive_windows(n: int, o: int) -> Tuple[list, list]:
    """``(output, input)`` index pairs of one dim: output ``i`` pools ``[floor(i n / o), ceil((i + 1) n / o))``."""
    outs, ins = [], []
    for i in range(o):
        for j in range((i * n) // o, -(-(i + 1) * n // o)):
            outs.append(i)
            ins.append(j)
    return outs, ins


@cached_in_eager(maxsize=128)
def _adaptive_edges(in_size: Tuple[int, ...], out_size: Tuple[int, ...], device: torch.device) -> Tensor:
    """The edges adaptive pooling computes with, ``[2, E]``.

    Cached, so never handed out: a caller that edited them in place would change every later pool of that size.
    """
    src = torch.zeros(1, dtype=torch.long, device=device)
    dst = torch.zeros(1, dtype=torch.long, device=device)
    for n, o in zip(in_size, out_size):
        outs, ins = (torch.tensor(v, dtype=torch.long, device=device) for v in _adaptive_windows(n, o))
        src = (src[:, None] * n + ins[None, :]).flatten()                        # row-major over dims so far
        dst = (dst[:, None] * o + outs[None, :]).flatten()
    return torch.stack([src, dst])                                                # [2, E]


def adaptive_pool_graph(in_size: Tuple[int, ...], out_size: Tuple[int, ...], device: Device = None) -> Tensor:
    """``edge_index [2, E]`` of adaptive pooling: input ``j`` -> output ``i`` when ``j`` lies in ``i``'s window.

    A new tensor each call, the caller's to edit.

    Example:
        >>> from gridgnn.nn.functional import adaptive_pool_graph
        >>> src, dst = adaptive_pool_graph((4,), (2,))                     # windows [0, 2) and [2, 4)
        >>> src.tolist(), dst.tolist()
        ([0, 1, 2, 3], [0, 0, 1, 1])
    """
    return _adaptive_edges(tuple(in_size), tuple(out_size), _canonical_device(device)).clone()


def adaptive_output_size(in_size: Tuple[int, ...], output_size: AdaptiveSize) -> Tuple[int, ...]:
    """Torch's ``output_size`` argument (int, tuple, ``None`` entries keep the input's size) resolved."""
    nd = len(in_size)
    sizes = (output_size,) * nd if isinstance(output_size, int) or output_size is None else tuple(output_size)
    if len(sizes) != nd:
        raise GridValueError(f"output_size must be an int or a tuple of {nd} ints (or None), got {output_size!r}")
    out = tuple(n if o is None else o for n, o in zip(in_size, sizes))
    if any(not is_int(o) or o < 0 for o in out):
        raise GridValueError(f"output_size must hold non-negative ints (or None), got {output_size!r}")
    return out


def adaptive_pool_nodes(x: Tensor, in_size: Tuple[int, ...], output_size: AdaptiveSize, reduce: str,
                        path: str = "auto") -> Tuple[Tensor, Tuple[int, ...]]:
    r"""Adaptive max / average pooling: aggregation over one window of edges per output cell.

    :math:`\mathbf{y}_i = \max_{j \in \mathcal{N}(i)} \mathbf{x}_j` or
    :math:`\frac{1}{|\mathcal{N}(i)|}\sum_{j \in \mathcal{N}(i)} \mathbf{x}_j` with output
    ``i``'s window ``[floor(i n / o), ceil((i + 1) n / o))`` per dim (torch's).
    ``output_size = 1`` is global pooling (PyG's ``global_max_pool`` / ``global_mean_pool``
    over each grid). ``reduce`` is ``"max"`` or ``"mean"``. Returns ``([B, N_out, C], out_size)``.

    Example:
        >>> from gridgnn.nn.functional import adaptive_pool_nodes
        >>> x = torch.randn(1, 3, 5, 7)
        >>> y, size = adaptive_pool_nodes(gg.to_nodes(x), (5, 7), (2, 3), "mean")
        >>> torch.allclose(gg.to_image(y, size), F.adaptive_avg_pool2d(x, (2, 3)))
        True
    """
    if reduce not in ("max", "mean"):
        raise GridValueError(f"adaptive_pool_nodes: reduce must be 'max' or 'mean', got {reduce!r}")
    out_size = adaptive_output_size(in_size, output_size)
    if 0 in out_size:                                                             # no windows: empty, as in torch
        return x.new_empty(x.size(0), 0, x.size(-1)), out_size
    if path != "general" and all(o == 1 for o in out_size):                       # global pooling: every node
        return (x.amax(-2, keepdim=True) if reduce == "max" else x.mean(-2, keepdim=True)), out_size
    if path != "general" and all(n % o == 0 for n, o in zip(in_size, out_size)):
        kernel = tuple(n // o for n, o in zip(in_size, out_size))                 # equal windows: a plain pool
        geom = ConvGeometry(tuple(in_size), kernel, kernel, ((0, 0),) * len(kernel), (1,) * len(kernel))
        out = _window_reduce(x, geom, "max" if reduce == "max" else "sum")
        return (out if reduce == "max" else out / math.prod(kernel)), out_size
    edge_index = _adaptive_edges(tuple(in_size), tuple(out_size), _canonical_device(x.device))
    return _edge_reduce(x, edge_index, math.prod(out_size), reduce), out_size
