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
# # 11 · Sparse pixels and voxels
#
# Where most sites of an image or volume are empty (pen strokes, surfaces, occupancy grids), a
# dense conv pays for every site. In the graph frame only the active sites are nodes: the conv's
# grid graph restricted to them is the whole computation, and message passing over it costs what
# the data costs. `gridgnn.sparse_grid_graph` builds that graph (the "kernel map" of sparse conv
# engines) straight from the coordinates; `GridConv` runs on it with the same weights as on full grids.

# %%
import time

import matplotlib.pyplot as plt
import networkx as nx
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch_geometric.nn import global_mean_pool

import gridgnn as gg
from gridgnn.nn import GridConv

_ = torch.manual_seed(0)

# %% [markdown]
# ## Digits' strokes as sparse graphs
#
# An 8x8 digit keeps its ink in about half of its pixels. `gg.to_sparse` keeps the active sites
# (features, coordinates, sample of each); the submanifold graph joins each active pixel to the
# active pixels under its 3x3 window (outputs stay at the input sites).

# %%
digits = torch.tensor(load_digits().images[:4], dtype=torch.float32).unsqueeze(1) / 16   # [4, 1, 8, 8]
feats, coords, batch = gg.to_sparse(digits)
g = gg.sparse_grid_graph(coords, 3, size=(8, 8), batch=batch, submanifold=True)
print(g)
print(f"{len(coords)} active pixels of {digits[:, 0].numel()}; {g.num_edges} edges instead of "
      f"{gg.grid_graph((8, 8), 3, padding=1).num_edges * 4} on the full grids")

one = gg.sparse_grid_graph(coords[batch == 0], 3, size=(8, 8), submanifold=True).to_networkx()
pos = {n: p for n, p in one.nodes(data="pos") if n[0] == "in"}   # drawing order: x = column, y = -row
fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
axes[0].imshow(digits[0, 0], cmap="gray_r")
axes[0].set_title("digit (8x8)")
simple = nx.DiGraph(((u, ("in", v[1])) for u, v in one.edges() if u != ("in", v[1])))
nx.draw(simple, pos, ax=axes[1], node_size=60, node_color="tab:blue", arrows=False, edge_color="lightgray")
axes[1].set_title("its submanifold 3x3 graph (active pixels only)")
axes[1].set_aspect("equal")
plt.show()

# %% [markdown]
# The graph conv equals torch's conv of the zero-filled image, read at the active sites:

# %%
conv = nn.Conv2d(1, 4, 3, padding=1)
dense = conv(digits).movedim(1, -1)[batch, coords[:, 0], coords[:, 1]]       # [M, 4] at the active sites
print("max |GridConv - Conv2d| at the sites:", (GridConv.from_conv(conv)(feats, g) - dense).abs().max().item())

# %% [markdown]
# ## Shapes in 3-D: surfaces of spheres, tori and boxes
#
# Voxelised surfaces at random poses in a 16^3 grid: a few percent of the voxels are active.

# %%
SIDE = 16


def random_rotation(gen):
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen))
    return q * torch.sign(torch.diagonal(r))


def voxel_shape(kind, gen):
    axis = torch.arange(SIDE, dtype=torch.float32) - (SIDE - 1) / 2
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1)          # [S, S, S, 3]
    p = grid @ random_rotation(gen) + 0.5 * torch.randn(3, generator=gen)             # rotated, shifted
    size = 4 + 2 * torch.rand(1, generator=gen)
    if kind == 0:                                                                     # sphere shell
        distance = p.norm(dim=-1) - size
    elif kind == 1:                                                                   # torus shell
        ring = (p[..., :2].norm(dim=-1) - size) ** 2 + p[..., 2] ** 2
        distance = ring.sqrt() - size / 3
    else:                                                                             # box surface
        half = size * torch.tensor([1.0, 0.7, 0.45])
        distance = (p.abs() / half).amax(-1) * half.min() - half.min()
    return (distance.abs() < 0.6).float()                                             # [S, S, S]


gen = torch.Generator().manual_seed(0)
labels = torch.arange(180) % 3
volumes = torch.stack([voxel_shape(int(k), gen) for k in labels]).unsqueeze(1)        # [180, 1, S, S, S]
print(f"active voxels: {volumes.mean():.1%} on average")
fig = plt.figure(figsize=(10, 3.2))
for i, k in enumerate((0, 1, 2)):
    ax = fig.add_subplot(1, 3, i + 1, projection="3d")
    c = volumes[k, 0].nonzero()
    ax.scatter(c[:, 0], c[:, 1], c[:, 2], s=2, c=c[:, 2], cmap="viridis")
    ax.set_title(("sphere", "torus", "box")[k])
    ax.set_axis_off()
plt.show()

# %% [markdown]
# ## A sparse 3-D classifier with strided and inverse maps
#
# A submanifold conv, a strided map down (kernel 2, stride 2: outputs only where the coarse grid
# receives data), a submanifold conv on the coarse sites, the inverse map (the strided map
# reversed) back up to the fine sites with a skip, then PyG's `global_mean_pool` per shape.


# %%
class SparseShapeNet(nn.Module):
    def __init__(self, width=16, classes=3):
        super().__init__()
        self.stem = GridConv(1, width, 3, ndim=3)
        self.down = GridConv(width, 2 * width, 2, ndim=3)
        self.mid = GridConv(2 * width, 2 * width, 3, ndim=3)
        self.up = GridConv(2 * width, width, 2, ndim=3)
        self.head = nn.Linear(width, classes)

    def forward(self, feats, graphs, batch, num_shapes):
        fine, strided, coarse = graphs
        h = F.relu(self.stem(feats, fine))                                 # [M, w] at the fine sites
        d = F.relu(self.mid(F.relu(self.down(h, strided)), coarse))        # [M_coarse, 2w]
        u = F.relu(self.up(d, strided.transpose()) + h)                    # inverse map: back to the fine sites
        return self.head(global_mean_pool(u, batch, num_shapes))


def graphs_for(vols):
    feats, coords, batch = gg.to_sparse(vols)
    fine = gg.sparse_grid_graph(coords, 3, size=(SIDE,) * 3, batch=batch, submanifold=True)
    strided = gg.sparse_grid_graph(coords, 2, stride=2, size=(SIDE,) * 3, batch=batch)
    coarse = gg.sparse_grid_graph(strided.out_coords, 3, size=strided.out_size, batch=strided.out_batch,
                                  submanifold=True)
    return feats, (fine, strided, coarse), batch


order = torch.randperm(180, generator=gen)
train, test = order[:135], order[135:]
batches = [graphs_for(volumes[idx]) + (labels[idx],) for idx in train.split(15)]        # graphs built once
test_batch = graphs_for(volumes[test]) + (labels[test],)

model = SparseShapeNet(width=12)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
history = []
start = time.perf_counter()
for epoch in range(30):
    for feats, graphs, batch, y in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(feats, graphs, batch, len(y)), y)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        feats, graphs, batch, y = test_batch
        history.append((loss.item(), (model(feats, graphs, batch, len(y)).argmax(1) == y).float().mean().item()))
print(f"trained in {time.perf_counter() - start:.1f} s; test accuracy by epoch:",
      " ".join(f"{acc:.0%}" for _, acc in history[::3]), "(every 3rd)")

# %% [markdown]
# ## What the graph saves: time against density
#
# A 3x3 conv with 32 channels on a 256x256 image, as torch's dense conv of the whole grid and as
# `GridConv` on the submanifold graph of a random fraction of active pixels. The work is
# $d \cdot K \cdot C^2$ MACs a site, so the graph's time follows the density $d$.

# %%
conv = nn.Conv2d(32, 32, 3, padding=1, bias=False)
layer = GridConv.from_conv(conv)
image = torch.randn(1, 32, 256, 256).contiguous(memory_format=torch.channels_last)


def best_of(fn, repeats=5):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


rows = []
with torch.no_grad():
    dense_time = best_of(lambda: conv(image))
    for density in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5):
        keep = torch.rand(1, 1, 256, 256) < density
        feats, coords, batch = gg.to_sparse(image * keep)
        g = gg.sparse_grid_graph(coords, 3, size=(256, 256), batch=batch, submanifold=True)
        rows.append((density, best_of(lambda: layer(feats, g)) / dense_time))
for density, ratio in rows:
    print(f"density {density:>4.0%}: GridConv time = {ratio:.3f} x the dense conv ({ratio / density:.2f} x density)")
plt.figure(figsize=(5, 3.5))
plt.loglog([d for d, _ in rows], [r for _, r in rows], "o-", label="GridConv on the sparse graph")
plt.loglog([0.01, 0.5], [0.01, 0.5], "k--", lw=0.8, label="density x dense conv")
plt.axhline(1, color="gray", lw=0.8)
plt.xlabel("active pixels")
plt.ylabel("time / dense conv time")
plt.legend()
plt.show()
