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
# # 09 · Real models as graphs
#
# `gridgnn.convert` swaps every conv of a model for its grid-graph twin (keeping the parameters and
# `state_dict` keys); `gridgnn.verify` runs both and reports the error of every converted layer.
# Here on a ResNet-style and a MobileNet-style network written in this notebook, then one layer's
# graph is inspected with PyG and networkx.

# %%
import networkx as nx
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import degree

import gridgnn as gg

torch.manual_seed(0)


class Bottleneck(nn.Module):
    def __init__(self, cin, width, cout, stride=1):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.spatial = nn.Sequential(nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width),
                                     nn.ReLU())
        self.expand = nn.Sequential(nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.project = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride > 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.expand(self.spatial(self.reduce(x))) + self.project(x))


def inverted_residual(cin, cout, stride, t=4):
    hidden = cin * t
    return nn.Sequential(nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
                         nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                         nn.ReLU6(), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))


resnet_like = nn.Sequential(nn.Conv2d(3, 32, 7, 2, 3), nn.ReLU(), Bottleneck(32, 16, 64), Bottleneck(64, 32, 128, 2),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)).eval()
mobilenet_like = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU6(), inverted_residual(16, 24, 2),
                               inverted_residual(24, 24, 1), nn.Conv2d(24, 96, 1), nn.AdaptiveAvgPool2d(1),
                               nn.Flatten(), nn.Linear(96, 10)).eval()
x = torch.randn(4, 3, 64, 64)

# %% [markdown]
# ## Convert and verify
# `verify` runs both models in float64 (by default) and hooks every converted layer.

# %%
for name, model in (("ResNet-style", resnet_like), ("MobileNet-style", mobilenet_like)):
    report = gg.verify(model, x)
    print(f"=== {name}: passed={report.passed}\n{report}\n")

# %% [markdown]
# The converted model is an ordinary module: the original checkpoint loads into it, and its
# outputs match in float32 too.

# %%
converted = gg.convert(resnet_like)
print(converted[2])
converted.load_state_dict(resnet_like.state_dict())
print("float32 max difference:", (converted(x) - resnet_like(x)).abs().max().item())

# %% [markdown]
# ## Where the time goes
# Forward time of original and converted model, float32, as `verify` measures it.

# %%
import matplotlib.pyplot as plt

names, times = [], []
for name, model in (("ResNet-style", resnet_like), ("MobileNet-style", mobilenet_like)):
    report = gg.verify(model, x, dtype=torch.float32, repeats=5)
    names.append(name)
    times.append((report.time_original * 1e3, report.time_converted * 1e3))
width = 0.35
plt.bar([i - width / 2 for i in range(2)], [t[0] for t in times], width, label="original (torch convs)")
plt.bar([i + width / 2 for i in range(2)], [t[1] for t in times], width, label="converted (message passing)")
plt.xticks(range(2), names), plt.ylabel("forward ms (batch 4, 64x64)"), plt.legend()
plt.show()

# %% [markdown]
# ## One layer's graph through PyG and networkx
# The strided 3x3 conv of the second bottleneck on its 32x32 input: a bipartite graph from 1024
# input pixels to 256 output pixels, 9 edge types.

# %%
conv = resnet_like[3].spatial[0]
g = gg.graph_for(conv, (32, 32))
data = g.to_pyg()
print(g)
print(data)
in_deg = degree(data.edge_index[1], num_nodes=data.num_dst_nodes)
print("in-degree histogram (border outputs read fewer real pixels):",
      {int(k): int(v) for k, v in zip(*in_deg.unique(return_counts=True))})
small = gg.graph_for(conv, (6, 6)).to_networkx()
print("networkx:", small.number_of_nodes(), "nodes,", small.number_of_edges(), "edges;",
      "output ('out', 4) reads", sorted(j for j, _ in small.in_edges(("out", 4))))
pos = {n: (x + (0 if n[0] == "in" else 8), y)      # outputs at their windows' centres, in input units, shifted right
       for n, (x, y) in small.nodes(data="pos")}
nx.draw(small, pos, node_size=60, node_color=["tab:blue" if n[0] == "in" else "tab:red" for n in small],
        edge_color="lightgray", arrows=False)
plt.title("stride-2 3x3 conv on a 6x6 input: input pixels (blue) -> output pixels (red)")
plt.show()
