"""PyG's DataLoader batches bipartite grid graphs (strided, unpadded, transposed convs) correctly.

Images of different sizes become GridData, are batched, run through GridConv on the raw batched
edges, split back per image and compared with torch's own conv of each image.
"""
import pytest
import torch
from torch import nn
from torch_geometric.loader import DataLoader

import gridgnn as gg
from gridgnn.nn import GridConv
from gridgnn.pyg import GridData

LAYERS = {
    "strided": lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1),
    "unpadded": lambda: nn.Conv2d(3, 4, 3),
    "dilated_strided": lambda: nn.Conv2d(3, 4, 3, stride=2, dilation=2, padding=1, groups=1),
    "enlarging": lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1),
}
SIZES = [(6, 6), (5, 7), (8, 3)]


def _datas(conv, images):
    datas = []
    for image in images:
        data = gg.graph_for(conv, image.shape[1:]).to_pyg()
        data.x = gg.to_nodes(image[None])[0]                                         # [N_src, C_in]
        datas.append(data)
    return datas


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("form", ["size", "pair"])
def test_dataloader_batch_equals_torch_per_image(name, form):
    torch.manual_seed(0)
    conv = LAYERS[name]().double()
    images = [torch.randn(3, *size, dtype=torch.float64) for size in SIZES]
    datas = _datas(conv, images)
    assert all(isinstance(d, GridData) for d in datas)
    batch = next(iter(DataLoader(datas, batch_size=len(images))))
    layer = GridConv.from_conv(conv)
    if form == "size":
        out = layer(batch.x, batch.edge_index, batch.edge_type, size=(batch.num_src_nodes, batch.num_dst_nodes))
    else:                                                   # PyG's bipartite pair, x_dst giving the target count
        x_dst = batch.x.new_zeros(int(batch.num_dst_nodes.sum()), 1)
        out = layer((batch.x, x_dst), batch.edge_index, batch.edge_type)
    for image, part in zip(images, out.split(batch.num_dst_nodes.tolist())):
        expected = conv(image[None])
        torch.testing.assert_close(gg.to_image(part[None], expected.shape[2:]), expected)


def test_batched_edges_stay_inside_their_image():
    conv = nn.Conv2d(1, 1, 3, stride=2)
    datas = _datas(conv, [torch.randn(1, 7, 7), torch.randn(1, 5, 5)])
    batch = next(iter(DataLoader(datas, batch_size=2)))
    src, dst = batch.edge_index
    first_src, first_dst = datas[0].num_src_nodes, datas[0].num_dst_nodes     # 49 inputs, 9 outputs
    edges_first = datas[0].edge_index.size(1)
    assert int(src[:edges_first].max()) < first_src and int(dst[:edges_first].max()) < first_dst
    assert int(src[edges_first:].min()) >= first_src and int(dst[edges_first:].min()) >= first_dst
    assert batch.num_nodes == batch.x.size(0) == 49 + 25                  # the source side: one row of x each


def test_bipartite_size_mismatch_is_named():
    layer = GridConv(2, 2, 3)
    g = gg.grid_graph((4, 4), 3, stride=2)
    with pytest.raises(ValueError, match="size\\[1\\]=5 but x_dst has 1 nodes"):
        layer((torch.randn(16, 2), torch.randn(1, 2)), g.edge_index, g.edge_type, size=(16, 5))
    assert layer((torch.randn(16, 2), None), g).shape == (1, 2)          # a GridGraph knows its own counts


def test_strided_sparse_graphs_batch_like_torch_per_sample():
    """Sparse strided kernel maps of two samples, batched by PyG, each equal to torch's conv.

    Each sample's part is torch's strided conv of its zero-filled grid, read at its output sites.
    """
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1).double()
    layer = GridConv.from_conv(conv)
    datas, expected = [], []
    for n in (7, 11):
        coords = torch.randint(0, 9, (n, 2)).unique(dim=0)
        graph = gg.sparse_grid_graph(coords, 3, stride=2, padding=1, size=(9, 9))
        x = torch.randn(coords.size(0), 2, dtype=torch.float64)
        dense = torch.zeros(1, 2, 9, 9, dtype=torch.float64)
        dense[0, :, coords[:, 0], coords[:, 1]] = x.t()
        out = conv(dense)[0]                                                      # [3, 5, 5]
        expected.append(out[:, graph.out_coords[:, 0], graph.out_coords[:, 1]].t())
        data = graph.to_pyg()
        data.x = x
        datas.append(data)
    batch = next(iter(DataLoader(datas, batch_size=2)))
    out = layer(batch.x, batch.edge_index, batch.edge_type, size=(batch.num_src_nodes, batch.num_dst_nodes))
    for part, want in zip(out.split(batch.num_dst_nodes.tolist()), expected):
        torch.testing.assert_close(part, want)
