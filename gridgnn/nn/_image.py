"""The image-in, image-out shell shared by the drop-ins: images become node features and back."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from .._checks import check_like_weight, check_node_features
from .._types import SpatialSize
from ..errors import GridTypeError, GridValueError
from ..graph import on_batched_nodes, to_image, to_nodes
from ._autocast import autocast_like_conv
from ._function import Function
from ._transforms import plain_ops, under_functorch

_MEMORY_FORMATS = {1: torch.contiguous_format, 2: torch.channels_last, 3: torch.channels_last_3d}


def _is_channels_last(t: Optional[Tensor], nd: int) -> bool:
    """ATen's ``suggest_memory_format`` test: do ``t``'s strides order the channels innermost?

    Decided on the strides themselves, so a tensor that is contiguous in both formats (a 1x1
    kernel, a 1x1 image) counts as channels-last exactly when torch counts it so.
    """
    if t is None or nd == 1 or t.dim() != nd + 2:
        return False
    sizes, strides = t.shape, t.stride()
    if strides[1] == 0:
        return False
    lowest = 0
    for d in (1, *range(nd + 1, 1, -1), 0):               # C, then W, H(, D), then N: innermost first
        if sizes[d] == 0 or strides[d] < lowest or (d == 0 and lowest == strides[1]):
            return False
        lowest = strides[d] * (sizes[d] if sizes[d] > 1 else 1)
    return True


def in_format(t: Tensor, memory_format: torch.memory_format) -> Tensor:
    """``t`` with exactly the strides torch gives a dense tensor in ``memory_format`` (a copy only if they differ)."""
    order = range(t.dim() - 1, -1, -1)                                      # innermost axis first
    if memory_format != torch.contiguous_format:
        order = (1, *range(t.dim() - 1, 1, -1), 0)                           # C, then W, H(, D), then N
    strides, step = [0] * t.dim(), 1
    for d in order:
        strides[d], step = step, step * max(t.size(d), 1)
    if t.stride() == tuple(strides):
        return t
    if all(t.stride(d) == strides[d] for d in range(t.dim()) if t.size(d) > 1):
        # only size-1 axes differ (a batch of one): flattened in memory order and unflattened again, a view
        # (views whose backward is a view too, where as_strided's backward would zero-fill and scatter)
        outer_first = list(reversed(order))
        dense = t.permute(outer_first).view(-1).view([t.size(d) for d in outer_first])
        return dense.permute([outer_first.index(d) for d in range(t.dim())])
    return t.clone(memory_format=memory_format)                                  # clone: exact strides


def conv_memory_format(x: Tensor, weight: Optional[Tensor], nd: int) -> torch.memory_format:
    """Torch's rule for a conv's output and gradients: channels-last if the input or the weight is, else contiguous."""
    return _MEMORY_FORMATS[nd] if _is_channels_last(x, nd) or _is_channels_last(weight, nd) \
        else torch.contiguous_format


class GradInFormat(Function):
    """The identity, whose gradient comes back in ``memory_format`` (as the gradients of torch's convs do)."""

    @staticmethod
    def forward(t: Tensor, memory_format: torch.memory_format) -> Tensor:
        return t.view_as(t)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.memory_format = inputs[1]

    @staticmethod
    def backward(ctx, grad: Tensor):
        return in_format(grad, ctx.memory_format), None

    @staticmethod
    def jvp(ctx, t_t: Tensor, _) -> Tensor:
        return t_t


def grad_in_format(t: Optional[Tensor], memory_format: torch.memory_format) -> Optional[Tensor]:
    """``t``, with its gradient (if autograd computes one) returned in ``memory_format``."""
    if t is None or t.numel() == 0 or not (torch.is_grad_enabled() and t.requires_grad):
        return t
    return GradInFormat.apply(t, memory_format)


def image_layer_call(layer: "ImageLayer", input: Tensor, *args) -> Tensor:
    """``layer(input, *args)``: one opaque call for ``torch.fx``, whose symbolic tracing records it as a node.

    The image shell validates shapes and picks layouts in Python, which a symbolic tracer
    cannot follow; ``torch.fx.symbolic_trace`` of a model holding a drop-in records this call
    (the layer as a ``get_attr``) instead, and the traced module computes exactly as the layer.
    """
    return layer._image_forward(input, *args)


torch.fx.wrap("image_layer_call")


class ImageLayer:
    """Mixin of the drop-ins: ``forward(input)`` on images, :meth:`forward_nodes` on node features.

    A subclass sets ``_ndim`` and implements ``_run_nodes(nodes [B, N_in, C_in], size, weight) ->
    (nodes [B, N_out, C_out], out_size)`` (``weight`` is the layer's weight to compute with, or
    None); the mixin validates the input with messages that name the layer and the fix, turns
    the image into node features (:func:`~gridgnn.to_nodes`, a view), and returns an image in
    torch's memory format: channels-last if the input or the weight is, else contiguous, the
    input and weight gradients in that format too (:func:`conv_memory_format`). With another padding
    mode than zeros, as torch's padded copy makes them: the input gradient in the input's format, and
    with circular padding the input counting as contiguous and its gradient contiguous.
    """

    _ndim: int = 0

    def _expected_channels(self) -> Optional[int]:
        return getattr(self, "in_channels", None)

    def _check_dtype_device(self, x: Tensor, weight: Optional[Tensor]) -> None:
        if weight is not None:
            check_like_weight(x, weight, type(self).__name__)

    def _run_nodes(self, nodes: Tensor, size: Tuple[int, ...], weight: Optional[Tensor], bias: Optional[Tensor],
                   **options) -> Tuple[Tensor, Tuple[int, ...]]:
        raise NotImplementedError

    def forward(self, input: Tensor) -> Tensor:
        return image_layer_call(self, input)

    def _image_forward(self, input: Tensor) -> Tensor:
        return self._forward_image(input)

    def _forward_image(self, input: Tensor, **options) -> Tensor:
        """Validate ``input``, run :meth:`_run_nodes` (with ``options``) on its nodes, return the image."""
        nd, name = self._ndim, type(self).__name__
        expected = f"an input [B, C, {nd} spatial dims] or [C, {nd} spatial dims]"
        if not isinstance(input, Tensor):
            raise GridTypeError(f"{name} expects {expected}, got a {type(input).__name__}")
        if input.dim() not in (nd + 1, nd + 2):
            raise GridValueError(f"{name} expects {expected}, got shape {tuple(input.shape)}")
        unbatched = input.dim() == nd + 1
        x = input.unsqueeze(0) if unbatched else input
        if not (x.is_floating_point() or x.is_complex()):
            raise GridTypeError(f"{name}: input must be floating point or complex, got {x.dtype}")
        channels = self._expected_channels()
        if channels is not None and x.size(1) != channels:
            hint = f" (a {nd + 1}-dim input is read as unbatched [C, *spatial])" if unbatched else ""
            raise GridValueError(f"{name}: input has {x.size(1)} channels (dim 1) but the layer expects "
                                 f"in_channels={channels}{hint}")
        with autocast_like_conv(x, getattr(self, "weight", None), getattr(self, "bias", None)) as (x, weight, bias):
            self._check_dtype_device(x, weight)
            transformed = under_functorch(x, weight)  # vmap cannot query layouts: plain contiguous tensors there
            if not transformed:
                # other padding modes pad first, so torch's conv sees the padded copy: in the input's format, but
                # contiguous for circular padding; the pad's backward returns the input gradient in that format
                mode = getattr(self, "padding_mode", "zeros")
                seen = None if mode == "circular" else x
                fmt = conv_memory_format(seen, weight, nd)
                if not plain_ops():                   # compile: its own autograd decides the gradients' strides
                    x = grad_in_format(x, fmt if mode == "zeros" else conv_memory_format(seen, None, nd))
                    weight = grad_in_format(weight, fmt)
            if x.size(0) == 0:
                out, out_size = self._empty_batch(x, weight, bias, **options)
            else:                                                              # [B, N_out, C_out]
                out, out_size = self._run_nodes(to_nodes(x), tuple(x.shape[2:]), weight, bias, **options)
        out = to_image(out, out_size)                                          # [B, C_out, *S_out], a view
        out = out.contiguous() if transformed else in_format(out, fmt)
        return out.squeeze(0) if unbatched else out

    def _empty_batch(self, x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor],
                     **options) -> Tuple[Tensor, Tuple[int, ...]]:
        """An empty batch: the layer's empty output, tied to ``x`` and the parameters by zero-valued sums.

        Nothing is computed, and the graph holds no view of an empty tensor (whose double backward
        needs ``as_strided``, which batched gradients reject); every gradient is an exact zero.
        """
        with torch.no_grad():
            out, out_size = self._run_nodes(to_nodes(x.detach()), tuple(x.shape[2:]),
                                            None if weight is None else weight.detach(),
                                            None if bias is None else bias.detach(), **options)
        ties = [t.sum() for t in (x, weight, bias) if t is not None and t.requires_grad]
        return (out + sum(ties) * 0 if ties else out), out_size

    def forward_nodes(self, x: Tensor, size: SpatialSize) -> Tensor:
        """The layer on node features ``[B, N_in, C_in]`` (or ``[N_in, C_in]``) of a grid of spatial ``size``.

        Returns ``[B, N_out, C_out]`` (or ``[N_out, C_out]``).
        """
        name = type(self).__name__
        size = tuple(size)
        channels = self._expected_channels()
        if channels is not None:
            check_node_features(x, channels, self.weight, name)
        elif x.dim() not in (2, 3):
            raise GridValueError(f"{name}: x must be node features [N, C] or [B, N, C], got shape {tuple(x.shape)}")
        if x.size(-2) != math.prod(size):
            raise GridValueError(f"{name}: x has {x.size(-2)} nodes but size={size} has {math.prod(size)}")
        with autocast_like_conv(x, getattr(self, "weight", None), getattr(self, "bias", None)) as (x, weight, bias):
            return on_batched_nodes(lambda batched: self._run_nodes(batched, size, weight, bias)[0], x)
