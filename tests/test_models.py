import torch

import gridgnn as gg
from gridgnn.convert import to_torch_convs
from gridgnn.models import GridMobileShuffleNet, GridResNet, digits_dataset, train_twins
from gridgnn.nn import TWINS

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
