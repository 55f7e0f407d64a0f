"""Type aliases for the public signatures."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch

#: where tensors live: ``"cpu"``, ``"cuda"``, a ``torch.device`` or None (the default)
Device = Union[str, torch.device, None]
#: a spatial shape: one int per spatial dim (an int broadcasts)
SpatialSize = Union[int, Sequence[int]]
#: a floating dtype, or None for torch's default
DType = Optional[torch.dtype]
#: an example input for a model: a tensor or a tuple of positional inputs
ModelInput = Union[torch.Tensor, tuple]
#: a matplotlib Axes (matplotlib is optional, so it is not imported here)
Axes = Any
