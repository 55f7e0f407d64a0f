import pytest
import torch
from hypothesis import settings

settings.register_profile("gridgnn", deadline=None, max_examples=40, derandomize=True)
settings.load_profile("gridgnn")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Every available device: CPU always, CUDA when present."""
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def shell_only(monkeypatch):
    """The conv drop-ins run every call through their image shell: no plan (the plans' own tests compare the two)."""
    from gridgnn.nn import conv_nd

    monkeypatch.setattr(conv_nd, "planned_call", lambda layer, x: None)
