"""Forward hooks on named modules for the length of one block (verify, MAC counts, activations)."""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterator, Tuple

from torch import nn

#: ``hook(name, module, args, output)``
NamedHook = Callable[[str, nn.Module, Tuple[Any, ...], Any], None]


@contextlib.contextmanager
def forward_hooks(modules: Dict[str, nn.Module], hook: NamedHook) -> Iterator[None]:
    """Call ``hook(name, module, args, output)`` after each forward of the ``modules`` inside the block."""
    handles = [module.register_forward_hook(lambda mod, args, out, name=name: hook(name, mod, args, out))
               for name, module in modules.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
