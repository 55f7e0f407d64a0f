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
# # 05 · Channel shuffle and message flow
#
# A grouped 1x1 conv splits channels into groups that never talk. Seen as a graph over
# (layer, channel) nodes, "output channel o depends on input channel i" is **reachability**, and a
# channel shuffle is what connects the groups. `gridgnn.flow` computes this structurally.

# %%
import matplotlib.pyplot as plt
import torch

from gridgnn import flow
from gridgnn.nn import shuffle_permutation

# %% [markdown]
# ## The flow graph, drawn
# Three grouped 1x1 layers over 12 channels with 3 groups, without and with shuffles. Red: what
# input channel 0 reaches.

# %%
no_shuffle = [flow.Pointwise(3), flow.Pointwise(3), flow.Pointwise(3)]
with_shuffle = [flow.Pointwise(3), flow.Shuffle(3), flow.Pointwise(3), flow.Shuffle(3), flow.Pointwise(3)]
fig, axes = plt.subplots(1, 2, figsize=(14, 5))
flow.draw_flow_graph(no_shuffle, 12, ax=axes[0], highlight=0)
flow.draw_flow_graph(with_shuffle, 12, ax=axes[1], highlight=0)
axes[0].set_title("grouped 1x1 x 3, no shuffle"), axes[1].set_title("with channel shuffle")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Reachability by depth
# The reach matrix after each layer (row: output channel, column: input channel). Without a
# shuffle it stays block-diagonal forever.

# %%
flow.plot_reachability([flow.Pointwise(4)] * 4, 16)
plt.suptitle("no shuffle: 4 groups stay apart", y=1.05)
plt.show()
flow.plot_reachability([flow.Pointwise(4), flow.Shuffle(4)] * 2 + [flow.Pointwise(4)], 16)
plt.suptitle("with shuffle: fully mixed after 2 grouped layers", y=1.05)
plt.show()

# %% [markdown]
# ## Mixing depth vs groups
# With group size n = C/g each grouped layer multiplies a channel's reach by at most n, so full
# mixing needs ceil(log_n C) grouped layers; the ShuffleNet shuffle attains it. The table compares the
# closed form with the depth measured on the graph.

# %%
rows = []
for channels in (16, 64, 256):
    for groups in (2, 4, 8, 16, 32):
        if channels % groups or channels // groups < 2:
            continue
        layers = flow.shuffle_mixing_layers(channels, groups)
        measured = flow.mixing_depth(([flow.Pointwise(groups), flow.Shuffle(groups)] * 8)[:-1], channels)
        rows.append((channels, groups, layers, (measured + 1) // 2))
print(f"{'C':>5} {'g':>4} {'closed form':>12} {'measured':>9}")
for row in rows:
    print(f"{row[0]:>5} {row[1]:>4} {row[2]:>12} {row[3]:>9}")
for channels in (64, 256):
    subset = [r for r in rows if r[0] == channels]
    plt.plot([r[1] for r in subset], [r[3] for r in subset], marker="o", label=f"C={channels}")
plt.xscale("log", base=2), plt.xlabel("groups g"), plt.ylabel("grouped layers to mix fully"), plt.legend()
plt.show()

# %% [markdown]
# ## The complementary condition (interleaved group convolutions)
# Two grouped layers with a permutation between them are *complementary* when every group of the
# first meets every group of the second in exactly one channel: then the pair is dense, with
# exactly one path from each input to each output.

# %%
channels, outer, inner = 12, 3, 4
written = flow.group_partition(channels, outer)
read = flow.group_partition(channels, inner, shuffle_permutation(channels, outer))
print("complementary with shuffle:   ", flow.is_complementary(written, read))
print("complementary without shuffle:", flow.is_complementary(written, flow.group_partition(channels, inner)))
paths = flow.path_counts([flow.Pointwise(outer), flow.Shuffle(outer), flow.Pointwise(inner)], channels)
print("paths per (output, input) pair:", paths.unique().tolist())

# %% [markdown]
# ## Reading real modules, and a surprise about ShuffleNetV2
# `flow.from_module` reads specs off a torch stack. ShuffleNetV2's basic unit passes half the
# channels straight through, and the shuffle keeps channel 0 in place: stacked basic units never
# mix fully (output 0 always copies input 0). Only the stride-2 units mix.

# %%
stack = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 1, groups=2), torch.nn.ChannelShuffle(2), torch.nn.ReLU(),
                            torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.nn.Conv2d(8, 8, 1, groups=2))
print(flow.from_module(stack, 8), "-> mixing depth", flow.mixing_depth(flow.from_module(stack, 8), 8))
unit = [flow.Split((4, 4), [], [flow.Pointwise(), flow.Depthwise(), flow.Pointwise()]), flow.Shuffle(2)]
reach = flow.reachability(unit * 6, 8)
print("after 6 ShuffleNetV2 basic units, output 0 depends on", int(reach[0].sum()), "input channel(s);",
      "mixing depth:", flow.mixing_depth(unit * 6, 8))
