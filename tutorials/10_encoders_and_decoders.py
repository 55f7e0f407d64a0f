# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · Encoders and decoders: transposed convs and pools as graphs
#
# A segmentation network is more than its convs: the encoder pools, the decoder upsamples with
# transposed convs. In the grid-graph frame both are message passing over the edges the convs
# already use:
#
# * a **transposed conv** runs on the conv's grid graph with every edge reversed (same offset
#   types): the conv gathers $\mathbf{y}_i = \sum_{(j \to i, t)} \mathbf{W}_t \mathbf{x}_j$, the
#   transposed conv scatters $\mathbf{y}_j = \sum_{(i \to j, t)} \mathbf{W}_t^\top \mathbf{x}_i$;
# * **max / average pooling** is max / mean aggregation over the pooling window's edges.
#
# This notebook draws both graphs, checks the adjoint identity, then trains a small U-Net on
# shapes drawn here, converts it with `gridgnn.convert` and verifies it layer by layer.

# %%
import matplotlib.pyplot as plt
import networkx as nx
import torch
import torch.nn.functional as F
from torch import nn

import gridgnn as gg
from gridgnn.nn import GridConvTranspose1d, GridMaxPool2d

_ = torch.manual_seed(0)

# %% [markdown]
# ## The transposed conv's graph is the conv's graph reversed
#
# A 1-D conv with kernel 3, stride 2 and padding 1 maps 8 pixels to 4. Its graph has an edge
# $j \to i$ of type $t$ wherever output $i$ reads input $j$ through offset $t$;
# `GridGraph.transpose()` reverses every edge and keeps its type. Outputs are drawn at their
# window's centre, in input-grid units.

# %%
conv = nn.Conv1d(1, 1, 3, stride=2, padding=1)
g = gg.graph_for(conv, (8,))
gt = g.transpose()
print(g)
print(gt)


def draw(ax, graph, title):
    fine, coarse = (graph.in_size[0], graph.out_size[0]) if not graph.transposed else \
        (graph.out_size[0], graph.in_size[0])
    nxg = nx.MultiDiGraph()
    pos = {("fine", j): (j, 0) for j in range(fine)}
    pos.update({("coarse", i): (2 * i, 1) for i in range(coarse)})
    nxg.add_nodes_from(pos)
    src_side, dst_side = ("coarse", "fine") if graph.transposed else ("fine", "coarse")
    colors = []
    for (j, i), t in zip(graph.edge_index.t().tolist(), graph.edge_type.tolist()):
        nxg.add_edge((src_side, j), (dst_side, i))
        colors.append(plt.cm.viridis(t / 2))
    nx.draw(nxg, pos, ax=ax, node_size=180, node_color=["tab:blue" if n[0] == "fine" else "tab:orange"
                                                        for n in nxg.nodes], edge_color=colors, arrows=True,
            arrowsize=12, connectionstyle="arc3,rad=0.08")
    ax.set_title(title)


fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
draw(axes[0], g, "Conv1d(k=3, s=2, p=1): 8 -> 4 (gather)")
draw(axes[1], gt, "ConvTranspose1d: 4 -> 8 (scatter), same edges reversed")
plt.show()

# %% [markdown]
# Message passing on the reversed graph is the adjoint of the conv: for any $x$ and $y$,
# $\langle \mathrm{conv}(x), y \rangle = \langle x, \mathrm{conv}^\top(y) \rangle$. With torch's
# `ConvTranspose1d` sharing the conv's weight, and its gridgnn twin:

# %%
x, y = torch.randn(1, 1, 8, dtype=torch.float64), torch.randn(1, 1, 4, dtype=torch.float64)
conv = conv.double()
up = nn.ConvTranspose1d(1, 1, 3, stride=2, padding=1, output_padding=1, bias=False).double()
up.weight.data.copy_(conv.weight.data)
twin = GridConvTranspose1d.from_conv(up)
lhs = ((conv(x) - conv.bias.view(1, -1, 1)) * y).sum()
print(f"<conv x, y>          = {lhs.item():.12f}")
print(f"<x, ConvTranspose y> = {(x * up(y)).sum().item():.12f}  (torch)")
print(f"<x, grid twin y>     = {(x * twin(y)).sum().item():.12f}  (message passing on g.transpose())")

# %% [markdown]
# ## Pooling is aggregation over window edges
#
# `GridMaxPool2d(3, 2, 1)` is max aggregation over the 3x3 window edges of the pooling graph.
# Padding carries no edges (torch's $-\infty$ padding), so border windows have fewer in-edges:

# %%
pool = GridMaxPool2d(3, 2, 1)
pg = pool.graph((8, 8))
in_degree = torch.bincount(pg.edge_index[1], minlength=pg.num_dst_nodes).view(pg.out_size)
print(pg)
print("in-degree of every output window:\n", in_degree)
image = torch.randn(2, 4, 8, 8)
print("equal to nn.MaxPool2d:", torch.equal(pool(image), nn.MaxPool2d(3, 2, 1)(image)))

# %% [markdown]
# ## A U-Net that segments shapes drawn here
#
# Images of 32x32 pixels hold a bright disc and a dark square at random places and sizes, with noise; the
# target labels every pixel background (0), disc (1) or square (2).

# %%
def make_shapes(n, size=32, generator=None):
    coords = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    images, labels = torch.zeros(n, 1, size, size), torch.zeros(n, size, size, dtype=torch.long)
    for k in range(n):
        r = 3 + 4 * torch.rand(1, generator=generator)
        cy, cx = (r + (size - 2 * r) * torch.rand(2, generator=generator))
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
        h = int(4 + 6 * torch.rand(1, generator=generator))
        y0, x0 = torch.randint(0, size - h, (2,), generator=generator).tolist()
        square = torch.zeros(size, size, dtype=torch.bool)
        square[y0:y0 + h, x0:x0 + h] = True
        labels[k][square] = 2
        labels[k][disc] = 1
        images[k, 0] = disc.float() - 0.8 * (square & ~disc).float()
    return images + 0.25 * torch.randn(images.shape, generator=generator), labels


gen = torch.Generator().manual_seed(0)
train_x, train_y = make_shapes(384, generator=gen)
test_x, test_y = make_shapes(64, generator=gen)

fig, axes = plt.subplots(2, 6, figsize=(10, 3.6))
for k in range(6):
    axes[0, k].imshow(train_x[k, 0], cmap="gray")
    axes[1, k].imshow(train_y[k], cmap="viridis", vmin=0, vmax=2)
    axes[0, k].axis("off"), axes[1, k].axis("off")
axes[0, 0].set_title("image", loc="left")
axes[1, 0].set_title("target", loc="left")
plt.show()


# %%
def double_conv(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    """Two max-pool steps down, two 2x2 stride-2 transposed convs up, skip connections across."""

    def __init__(self, width=8):
        super().__init__()
        self.enc1, self.enc2, self.mid = double_conv(1, width), double_conv(width, 2 * width), \
            double_conv(2 * width, 4 * width)
        self.pool = nn.MaxPool2d(2)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, 2), double_conv(4 * width, 2 * width)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * width, width, 2, 2), double_conv(2 * width, width)
        self.head = nn.Conv2d(width, 3, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


unet = UNet()
optimizer = torch.optim.Adam(unet.parameters(), lr=1e-2)
losses = []
for epoch in range(10):
    for batch in torch.randperm(len(train_x), generator=gen).split(32):
        optimizer.zero_grad()
        loss = F.cross_entropy(unet(train_x[batch]), train_y[batch])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
unet.eval()
with torch.no_grad():
    accuracy = (unet(test_x).argmax(1) == test_y).float().mean().item()
print(f"final training loss {losses[-1]:.3f}; test pixel accuracy {accuracy:.1%}")

# %% [markdown]
# ## Convert the whole U-Net and verify it
#
# `gridgnn.convert` swaps every conv, transposed conv and pool for its grid twin (the map is
# `gridgnn.nn.TWINS`); nothing stays a torch op. `gridgnn.verify` runs both in float64 and reports
# the error of every converted layer.

# %%
graph_unet = gg.convert(unet)
print({type(m).__name__ for m in graph_unet.modules() if type(m) in gg.nn.TWINS.values()})
print("torch layers left:", [type(m).__name__ for m in graph_unet.modules() if type(m) in gg.nn.TWINS])
report = gg.verify(unet, test_x[:8], strict=True)
print(report)

# %%
with torch.no_grad():
    pred_torch, pred_graph = unet(test_x[:6]).argmax(1), graph_unet(test_x[:6]).argmax(1)
print("the graph U-Net predicts the same label at every pixel:", torch.equal(pred_torch, pred_graph))
fig, axes = plt.subplots(3, 7, figsize=(11, 5), gridspec_kw={"width_ratios": [1] * 6 + [1.4]})
for k in range(6):
    for row, (img, kw) in enumerate(((test_x[k, 0], {"cmap": "gray"}),
                                     (test_y[k], {"vmin": 0, "vmax": 2}),
                                     (pred_graph[k], {"vmin": 0, "vmax": 2}))):
        axes[row, k].imshow(img, **kw)
        axes[row, k].axis("off")
for row, name in enumerate(("image", "target", "graph U-Net")):
    axes[row, 0].set_title(name, loc="left", fontsize=9)
gs = axes[0, 6].get_gridspec()
for ax in axes[:, 6]:
    ax.remove()
curve = fig.add_subplot(gs[:, 6])
curve.plot(losses)
curve.set(xlabel="step", ylabel="cross-entropy", title="training loss")
plt.tight_layout()
plt.show()
