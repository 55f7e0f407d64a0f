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

_MEMORY_FORMATS = {1: torch.contiguous_format, 2: torch.channels_last, 3: torch.channels_last_3d}


class ImageLayer:
    """Mixin of the drop-ins: ``forward(input)`` on images, :meth:`forward_nodes` on node features.

    A subclass sets ``_ndim`` and implements ``_run_nodes(nodes [B, N_in, C_in], size) ->
    (nodes [B, N_out, C_out], out_size)``; the mixin validates the input with messages that
    name the layer and the fix, turns the image into node features (:func:`~gridgnn.to_nodes`,
    a view), and returns an image in torch's memory format (channels-last in, channels-last out).
    """

    _ndim: int = 0

    def _expected_channels(self) -> Optional[int]:
        return getattr(self, "in_channels", None)

    def _check_dtype_device(self, x: Tensor) -> None:
        weight = getattr(self, "weight", None)
        if weight is not None:
            check_like_weight(x, weight, type(self).__name__)

    def _run_nodes(self, nodes: Tensor, size: Tuple[int, ...]) -> Tuple[Tensor, Tuple[int, ...]]:
        raise NotImplementedError

    def forward(self, input: Tensor) -> Tensor:
        return self._forward_image(input)

    def _forward_image(self, input: Tensor, **options) -> Tensor:
        """Validate ``input``, run :meth:`_run_nodes` (with ``options``) on its nodes, return the image."""
        nd, name = self._ndim, type(self).__name__
        if not isinstance(input, Tensor) or input.dim() not in (nd + 1, nd + 2):
            shape = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise GridValueError(f"{name} expects an input [B, C, {nd} spatial dims] or [C, {nd} spatial dims], "
                                 f"got {shape}")
        unbatched = input.dim() == nd + 1
        x = input.unsqueeze(0) if unbatched else input
        if not x.is_floating_point():
            raise GridTypeError(f"{name}: input must be floating point, got {x.dtype}")
        self._check_dtype_device(x)
        channels = self._expected_channels()
        if channels is not None and x.size(1) != channels:
            hint = f" (a {nd + 1}-dim input is read as unbatched [C, *spatial])" if unbatched else ""
            raise GridValueError(f"{name}: input has {x.size(1)} channels (dim 1) but the layer expects "
                                 f"in_channels={channels}{hint}")
        out, out_size = self._run_nodes(to_nodes(x), tuple(x.shape[2:]), **options)  # [B, N_out, C_out]
        out = to_image(out, out_size)                                          # [B, C_out, *S_out] channels-last view
        fmt = _MEMORY_FORMATS[nd] if x.is_contiguous(memory_format=_MEMORY_FORMATS[nd]) and \
            not x.is_contiguous() else torch.contiguous_format
        out = out.contiguous(memory_format=fmt)
        return out.squeeze(0) if unbatched else out

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
        return on_batched_nodes(lambda batched: self._run_nodes(batched, size)[0], x)
