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
# # 02 · Convolution as message passing
#
# A k x k convolution is **relational message passing**: every edge carries its kernel offset `t`
# as a type, and node `i` sums `W_t x_j` over its incoming edges. This notebook checks that
# `GridConv` equals `nn.Conv2d` forward and backward, runs the same typed graph through PyG's
# `RGCNConv`, draws what stride, dilation and padding modes do to the graph, and shows why a 1x1
# map cannot see an edge while a 3x3 one can.

# %%
import matplotlib.pyplot as plt
import torch
from torch_geometric.nn import RGCNConv

import gridgnn as gg
from gridgnn import analysis
from gridgnn.nn import GridConv

torch.manual_seed(0)

# %% [markdown]
# ## GridConv equals nn.Conv2d, forward and backward

# %%
conv = torch.nn.Conv2d(4, 6, 3, padding=1).double()
g = gg.graph_for(conv, (8, 8))
layer = GridConv.from_conv(conv)
x = torch.randn(2, 4, 8, 8, dtype=torch.float64, requires_grad=True)
x_nodes = gg.to_nodes(x.detach()).requires_grad_()
y_conv, y_graph = conv(x), layer(x_nodes, g)
y_conv.square().sum().backward()
gg.to_image(y_graph, (8, 8)).square().sum().backward()
print("output difference      ", (gg.to_image(y_graph, (8, 8)) - y_conv).abs().max().item())
print("input-gradient diff.   ", (gg.to_image(x_nodes.grad, (8, 8)) - x.grad).abs().max().item())
print("weight-gradient diff.  ", (layer.weight.grad - conv.weight.grad).abs().max().item())

# %% [markdown]
# The same typed edges through PyG's R-GCN layer (sum aggregation, no self-loop weight): one weight
# matrix per relation = per kernel offset.

# %%
rgcn = RGCNConv(4, 6, num_relations=9, aggr="add", root_weight=True, bias=True).double()
with torch.no_grad():
    rgcn.weight.copy_(conv.weight.flatten(2).permute(2, 1, 0))   # [K, C_in, C_out]
    rgcn.root.zero_()
    rgcn.bias.copy_(conv.bias)
out = rgcn(x_nodes[0].detach(), g.edge_index, g.edge_type)
print("RGCNConv vs nn.Conv2d:", (out - gg.to_nodes(conv(x))[0]).abs().max().item())

# %% [markdown]
# ## Geometry becomes graph structure
# Stride drops target nodes, dilation spreads the sources, and the padding mode decides what happens
# at the border: zeros drop edges, circular padding wraps them around (a torus), reflect and
# replicate point them back into the image.

# %%
def draw_sources(ax, graph, target, title):
    src = graph.edge_index[0][graph.edge_index[1] == target]
    counts = torch.bincount(src, minlength=graph.num_src_nodes).view(graph.in_size)
    ax.imshow(counts, cmap="Blues", vmin=0, vmax=2)
    for (r, c), v in zip(torch.cartesian_prod(torch.arange(graph.in_size[0]), torch.arange(graph.in_size[1])).tolist(),
                         counts.flatten().tolist()):
        if v:
            ax.text(c, r, v, ha="center", va="center", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])


cases = [("3x3, zeros, corner", dict(padding=1), 0), ("dilation 2", dict(padding=2, dilation=2), 27),
         ("circular: a torus", dict(padding=1, padding_mode="circular"), 0),
         ("reflect", dict(padding=1, padding_mode="reflect"), 0),
         ("replicate", dict(padding=1, padding_mode="replicate"), 0),
         ("stride 2: 9 targets left", dict(stride=2, padding=1), 4)]
fig, axes = plt.subplots(1, len(cases), figsize=(16, 3))
for ax, (title, kwargs, target) in zip(axes, cases):
    graph = gg.grid_graph((6, 6), 3, **kwargs)
    draw_sources(ax, graph, target, f"{title}\n(sources of target {target}, {graph.num_edges} edges)")
plt.show()

# %% [markdown]
# ## A 1x1 map cannot see an edge
# The target is the horizontal difference `x[w+1] - x[w-1]`, non-zero only at the step. A 1x1 map
# answers every pixel of the same value the same way, so its best affine fit keeps an error; a 3x3
# `GridConv2d` reads the neighbours through its typed edges and reproduces the target exactly.

# %%
demo = analysis.edge_detection_demo(8)
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
for ax, (name, img) in zip(axes, [("image", demo.image), ("edge target", demo.target),
                                  (f"best 1x1 (MSE {demo.mse_1x1:.3f})", demo.best_1x1),
                                  (f"3x3 GridConv2d (MSE {demo.mse_3x3:.3f})", demo.conv_3x3)]):
    ax.imshow(img, cmap="RdBu", vmin=-1, vmax=1)
    ax.set_title(name, fontsize=9)
plt.show()

# %% [markdown]
# ## Receptive fields grow only through spatial kernels
# The input pixels an output pixel depends on, read off the stack of grid graphs
# (`gridgnn.receptive_field`). Each 3x3 layer grows the field by one pixel per side; 1x1 layers add nothing.

# %%
stacks = {"3x3 x L": 3, "1x1 x L": 1, "3x3 then 1x1s": None}
depths = range(1, 6)
sizes = {name: [] for name in stacks}
for depth in depths:
    for name, k in stacks.items():
        kernels = [k] * depth if k else [3] + [1] * (depth - 1)
        graphs = [gg.grid_graph((15, 15), kk, padding=kk // 2) for kk in kernels]
        sizes[name].append(int(gg.receptive_field(graphs, (7, 7)).sum()))
for name, values in sizes.items():
    plt.plot(list(depths), values, marker="o", label=name)
plt.xlabel("layers"), plt.ylabel("receptive field (pixels)"), plt.legend(), plt.title("receptive field vs depth")
plt.show()
