import subprocess
import sys

import pytest
import torch

import gridgnn as gg
from gridgnn.models import GridMobileShuffleNet, GridResNet
from gridgnn.nn import TWINS
from gridgnn.testing import to_torch_convs
from gridgnn.training import digits_dataset, train_twins

from model_zoo import ZOO


def test_models_shapes_and_conv_twins():
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    for make in (GridResNet, GridMobileShuffleNet):
        model = make().double().eval()
        twin = to_torch_convs(model).eval()
        assert model(x).shape == (3, 10)
        assert list(twin.state_dict()) == list(model.state_dict())
        torch.testing.assert_close(model(x), twin(x))
    rgb = GridResNet(num_classes=4, in_channels=3, widths=(8, 16, 32), groups=2)
    assert rgb(torch.randn(2, 3, 16, 16)).shape == (2, 4)


def test_to_torch_convs_inverts_convert():
    make, shape = ZOO["mobilenet_v2"]
    model = make().double().eval()
    back = to_torch_convs(gg.convert(model))
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(back(x), model(x))
    num_convs = sum(type(m) in TWINS for m in model.modules())
    assert gg.verify(back, x, strict=True).num_converted == num_convs  # and back again


def test_graph_model_and_conv_twin_train_identically_on_digits():
    images, labels = digits_dataset(torch.float64)
    assert images.shape == (1797, 1, 8, 8) and 0 <= images.min() and images.max() <= 1
    for make in (GridResNet, GridMobileShuffleNet):
        torch.manual_seed(0)
        run = train_twins(make().double(), images[:384], labels[:384], epochs=2, batch_size=32)
        assert len(run.graph_losses) == 24 and run.max_loss_gap < 1e-9
        assert sum(run.graph_losses[-4:]) < sum(run.graph_losses[:4])  # it learns


def test_moved_names_still_work_with_a_deprecation_warning():
    import gridgnn.models

    with pytest.warns(DeprecationWarning, match="moved to gridgnn.training.train_twins"):
        from gridgnn.models import train_twins as old_train_twins
    assert old_train_twins is train_twins
    with pytest.warns(DeprecationWarning, match="moved to gridgnn.testing.to_torch_convs"):
        from gridgnn.convert import to_torch_convs as old_to_torch_convs
    assert old_to_torch_convs is to_torch_convs
    with pytest.raises(AttributeError):
        gridgnn.models.no_such_name


def test_import_gridgnn_does_not_import_the_test_helpers():
    code = "import sys, gridgnn; print('gridgnn.testing' in sys.modules, 'gridgnn.sweep' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
