"""``torch.autocast`` for the graph layers: the casts torch's autocast applies to its own convs.

Under autocast torch runs a conv (and a linear layer) in the autocast dtype: a floating input,
weight and bias that are not float64 are cast to it, and the output comes out in it. The graph
layers do the same once, up front, and compute with autocast off inside, so their many internal
ops neither re-cast nor mix dtypes (a float32 buffer summing bfloat16 messages). Pools are not in
autocast's lists: they run in their input's dtype.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor


def autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast runs convs in on ``device_type`` now, or None when autocast is off there."""
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except RuntimeError:                                  # a device type autocast does not know (e.g. meta)
        return None
    return torch.get_autocast_dtype(device_type) if enabled else None


@contextlib.contextmanager
def autocast_like_conv(x: Tensor, weight: Optional[Tensor],
                       bias: Optional[Tensor]) -> Iterator[Tuple[Tensor, Optional[Tensor], Optional[Tensor]]]:
    """``(x, weight, bias)`` cast as autocast casts a conv's arguments, with autocast off inside the block.

    Without autocast (or for a layer with no weight, whose dtype autocast leaves alone) the
    tensors come back unchanged; with it, autocast is still switched off inside.
    """
    dtype = autocast_dtype(x.device.type)
    if dtype is None:
        yield x, weight, bias
        return
    if weight is not None:
        x, weight, bias = (t.to(dtype) if t is not None and t.is_floating_point() and t.dtype != torch.float64
                           else t for t in (x, weight, bias))
    with torch.autocast(x.device.type, enabled=False):
        yield x, weight, bias
