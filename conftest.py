"""The shared namespace of the docstring examples (``pytest --doctest-modules gridgnn``).

Every example may use ``torch``, ``nn``, ``F``, ``gridgnn`` (also as ``gg``) and the public names of
``gridgnn`` and ``gridgnn.nn`` without importing them, as the docs show them.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gridgnn
import gridgnn.nn


@pytest.fixture(autouse=True)
def _doctest_namespace(request, doctest_namespace):
    doctest_namespace.update(torch=torch, nn=nn, F=F, gridgnn=gridgnn, gg=gridgnn)
    for module in (gridgnn, gridgnn.nn):
        doctest_namespace.update({name: getattr(module, name) for name in module.__all__})
    torch.manual_seed(0)
