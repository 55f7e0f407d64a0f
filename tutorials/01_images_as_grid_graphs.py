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
# # 01 · Images as grid graphs
#
# An image is a graph: **one node per pixel**, and the node's feature is its channel vector.
# This notebook builds that graph with `gridgnn`, draws it, and shows that a **1x1 convolution is a
# node-wise linear map**: the same matrix applied to every node, with no messages between nodes,
# which is one matrix product (GEMM) on the node matrix.

# %%
import matplotlib.pyplot as plt
import networkx as nx
import torch

import gridgnn as gg
from gridgnn.nn import NodeLinear

torch.manual_seed(0)

# %% [markdown]
# ## The grid graph of a 3x3 convolution
# `grid_graph` builds the graph a convolution runs on: an edge `j -> i` for every output pixel `i`
# and kernel offset `t` that reads input pixel `j`. Its `edge_type` is the offset, row-major over the window.

# %%
g = gg.grid_graph((4, 4), kernel_size=3, padding=1)
print(g)
print("nodes:", g.num_src_nodes, " offsets (edge types):", g.num_offsets, " edges:", g.num_edges)
degree = torch.bincount(g.edge_index[1], minlength=g.num_dst_nodes).view(4, 4)
print("in-degree per pixel (corners read 4 real pixels, the centre 9):\n", degree)

# %%
nxg = g.to_networkx()
pos = nx.get_node_attributes(nxg, "pos")          # drawing order: x = column, y = -row
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
simple = nx.DiGraph((u, v) for u, v, t in nxg.edges(data="offset") if u != v)
nx.draw_networkx(simple, pos, ax=axes[0], node_color="tab:blue", font_color="w", node_size=350,
                 arrowsize=8, edge_color="lightgray")
axes[0].set_title("3x3 conv on a 4x4 image: who reads whom")
colors = plt.cm.tab10.colors
for t in range(9):
    edges = [(u, v) for u, v, k in nxg.edges(data="offset") if k == t and v == 5]
    nx.draw_networkx_edges(nxg, pos, edgelist=edges, ax=axes[1], edge_color=[colors[t]], width=2,
                           arrowsize=12, connectionstyle="arc3,rad=0.15")
nx.draw_networkx_nodes(nxg, pos, ax=axes[1], node_color=["tab:red" if n == 5 else "lightgray" for n in nxg],
                       node_size=350)
nx.draw_networkx_labels(nxg, pos, ax=axes[1], font_size=8)
axes[1].set_title("the 9 typed edges into node 5 (one colour per offset)")
plt.show()

# %% [markdown]
# ## A 1x1 convolution is one shared linear map per node
# Turn an image `[B, C, H, W]` into node features `[B, N, C]` with `to_nodes`. A 1x1 conv and
# `NodeLinear` with the same weights agree, and both equal a single GEMM `Y = X W^T + b` on the
# `[B*N, C]` node matrix.

# %%
conv = torch.nn.Conv2d(3, 5, kernel_size=1)
node_map = NodeLinear.from_conv(conv)
image = torch.randn(2, 3, 6, 7)
nodes = gg.to_nodes(image)                                         # [2, 42, 3]
gemm = nodes.reshape(-1, 3) @ conv.weight.view(5, 3).T + conv.bias  # one GEMM
rows = {
    "conv1x1 vs NodeLinear": (gg.to_image(node_map(nodes), (6, 7)) - conv(image)).abs().max().item(),
    "conv1x1 vs one GEMM": (gg.to_image(gemm.view(2, 42, 5), (6, 7)) - conv(image)).abs().max().item(),
}
for name, err in rows.items():
    print(f"{name:<22} max abs difference {err:.1e}")

# %% [markdown]
# No messages: perturbing one pixel changes the 1x1 output only at that pixel, while a 3x3 conv
# spreads it to the 3x3 neighbourhood.

# %%
bumped = image.clone()
bumped[:, :, 3, 3] += 1.0
conv3 = torch.nn.Conv2d(3, 5, 3, padding=1)
fig, axes = plt.subplots(1, 2, figsize=(7, 3))
for ax, layer, name in zip(axes, (conv, conv3), ("1x1: one node changes", "3x3: a neighbourhood changes")):
    with torch.no_grad():
        changed = (layer(bumped) - layer(image)).abs().sum((0, 1)) > 1e-6
    ax.imshow(changed, cmap="Reds")
    ax.set_title(name)
plt.show()

# %% [markdown]
# ## channels_last is the node layout
# `to_nodes` never copies: it returns a view. In `channels_last` memory each pixel's channel vector
# is contiguous, so the image *is* the `[N, C]` node matrix; from NCHW memory the view is strided
# (a node's channels lie `N` apart) and a GEMM has to gather it first.

# %%
cl = image.contiguous(memory_format=torch.channels_last)
for name, img in (("channels_last", cl), ("NCHW", image)):
    nodes_view = gg.to_nodes(img)
    print(f"{name:<14} shares memory: {nodes_view.data_ptr() == img.data_ptr()},  node matrix contiguous: "
          f"{nodes_view.is_contiguous()},  strides {nodes_view.stride()}")

# %% [markdown]
# ## Translation equivariance
# Shifting the image shifts the output. On a torus (circular padding) this holds exactly for any
# shift and any kernel; for a 1x1 map it holds with any padding.

# %%
torus_conv = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
for name, layer in (("1x1", conv), ("3x3 circular", torus_conv)):
    shifted_then_conv = layer(torch.roll(image, shifts=(2, 3), dims=(2, 3)))
    conv_then_shifted = torch.roll(layer(image), shifts=(2, 3), dims=(2, 3))
    print(f"{name:<13} equivariance error {(shifted_then_conv - conv_then_shifted).abs().max():.1e}")
