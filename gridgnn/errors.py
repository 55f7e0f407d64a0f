"""The exception classes gridgnn raises, catchable both the Python way and the torch way.

For a bad argument or input, torch's layers raise ``RuntimeError`` (a wrong channel
count, rank, dtype or device, an input smaller than the kernel, a stride of zero),
``ValueError`` (bad constructor options) or ``TypeError`` (a non-tensor input, a float
channel count). gridgnn keeps its own messages (they name the argument and the fix) and
raises them as:

* :class:`GridValueError` -- a bad value or shape; an instance of both ``ValueError`` and
  ``RuntimeError``;
* :class:`GridTypeError` -- a bad type, dtype or device; an instance of both ``TypeError``
  and ``RuntimeError``.

So ``except RuntimeError:`` written for ``nn.Conv2d`` catches every input error of
``GridConv2d``, and ``except ValueError:`` / ``except TypeError:`` keep working too.

Example:
    >>> import torch
    >>> from gridgnn.nn import GridConv2d
    >>> try:
    ...     GridConv2d(4, 8, 3)(torch.randn(1, 3, 8, 8))
    ... except RuntimeError as error:
    ...     print(type(error).__name__, isinstance(error, ValueError))
    GridValueError True
"""
from __future__ import annotations

__all__ = ["GridValueError", "GridTypeError"]


class GridValueError(ValueError, RuntimeError):
    """A bad argument value or input shape (``ValueError`` and torch's ``RuntimeError`` at once).

    Example:
        >>> try:
        ...     GridConv2d(4, 8, 3)(torch.randn(1, 3, 8, 8))         # 3 channels where 4 are expected
        ... except RuntimeError as error:                          # as torch's conv would be caught
        ...     print(isinstance(error, ValueError))
        True
    """


class GridTypeError(TypeError, RuntimeError):
    """A bad argument type, dtype or device (``TypeError`` and torch's ``RuntimeError`` at once).

    Example:
        >>> try:
        ...     GridConv2d(4, 8, 3)(torch.randn(1, 4, 8, 8, dtype=torch.float64))
        ... except RuntimeError as error:
        ...     print(type(error).__name__, isinstance(error, TypeError))
        GridTypeError True
    """
