import pytest
import torch

import gridgnn as gg
from gridgnn.nn import ChannelShuffle
from gridgnn.nn.shuffle import shuffle_permutation


@pytest.mark.parametrize("channels, groups", [(6, 2), (6, 3), (12, 4), (8, 1), (8, 8)])
def test_equals_torch_channel_shuffle_both_ways(channels, groups, device):
    image = torch.randn(2, channels, 3, 4, device=device)
    expected = torch.nn.ChannelShuffle(groups)(image)
    nodes = gg.to_nodes(image)
    torch.testing.assert_close(ChannelShuffle(groups)(nodes), gg.to_nodes(expected), rtol=0, atol=0)
    torch.testing.assert_close(gg.to_image(ChannelShuffle(groups)(nodes), (3, 4)), expected, rtol=0, atol=0)
    assert ChannelShuffle(groups)(nodes[0]).shape == (12, channels)  # [N, C] too
    perm = torch.tensor(shuffle_permutation(channels, groups))
    torch.testing.assert_close(nodes[..., perm], gg.to_nodes(expected), rtol=0, atol=0)


def test_errors_and_repr():
    with pytest.raises(ValueError, match="channel shuffle: channels=10 is not divisible by groups=3"):
        ChannelShuffle(3)(torch.randn(4, 10))
    with pytest.raises(ValueError, match="positive int"):
        ChannelShuffle(0)
    assert repr(ChannelShuffle(4)) == "ChannelShuffle(groups=4)"
