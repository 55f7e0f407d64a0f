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
# # 06 · Training a grid GNN
#
# A classifier built from gridgnn's graph-native blocks learns scikit-learn's 8x8 digits (shipped
# with scikit-learn, no download). Trained next to its conv twin (the same parameters computing
# through torch's convs) from the same initialisation on the same batches, the two loss curves are
# identical. Then the graph view pays off: the same kind of layer trains on **sparse pixel
# graphs** (only the pixels that are ink), something a conv cannot take directly.

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import global_mean_pool
from torch_geometric.utils import subgraph

import gridgnn as gg
from gridgnn.models import GridResNet
from gridgnn.nn import GridConv
from gridgnn.training import digits_dataset, train_twins

images, labels = digits_dataset(torch.float64)
print(images.shape, labels.shape)
fig, axes = plt.subplots(1, 8, figsize=(10, 1.6))
for ax, img, y in zip(axes, images, labels):
    ax.imshow(img[0], cmap="gray_r"), ax.set_title(int(y)), ax.axis("off")
plt.show()

# %% [markdown]
# ## A graph model and its conv twin, side by side

# %%
torch.manual_seed(0)
model = GridResNet(widths=(16, 32)).double()
run = train_twins(model, images[:1280], labels[:1280], epochs=2, batch_size=64)
plt.plot(run.conv_losses, lw=4, alpha=0.4, label="conv twin (torch convs)")
plt.plot(run.graph_losses, lw=1, label="graph model (message passing)")
plt.xlabel("step"), plt.ylabel("cross-entropy"), plt.legend()
plt.title(f"identical training: max loss gap {run.max_loss_gap:.1e}")
plt.show()
model.eval()
with torch.no_grad():
    accuracy = (model(images[1280:]).argmax(1) == labels[1280:]).double().mean()
print(f"held-out accuracy after 2 epochs: {accuracy:.1%}")

# %% [markdown]
# ## Sparse pixel graphs
# Keep only the pixels with ink: each digit becomes its own graph of ~30 nodes with the offset-typed
# edges among them (`GridGraph.mask`, then relabelled with PyG's `subgraph`). PyG's `DataLoader`
# batches graphs of different sizes; `GridConv` runs on the batched `edge_index`/`edge_type`.

# %%
full = gg.grid_graph((8, 8), 3, padding=1)


def sparse_digit(image, label):
    active = image.flatten() > 0
    g = full.mask(active, active)
    edge_index, edge_type = subgraph(active, g.edge_index, g.edge_type, relabel_nodes=True, num_nodes=64)
    return Data(x=image.flatten()[active, None].float(), edge_index=edge_index, edge_type=edge_type,
                pos=full.pos[active], y=label)


graphs = [sparse_digit(img[0], y) for img, y in zip(images, labels)]
print(f"nodes per digit: {sum(g.num_nodes for g in graphs) / len(graphs):.1f} of 64")


class SparseDigitNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = GridConv(1, 32, 3), GridConv(32, 64, 3)
        self.head = torch.nn.Linear(64, 10)

    def forward(self, data):
        h = F.relu(self.conv1(data.x, data.edge_index, data.edge_type))
        h = F.relu(self.conv2(h, data.edge_index, data.edge_type))
        return self.head(global_mean_pool(h, data.batch))


torch.manual_seed(0)
net = SparseDigitNet()
opt = torch.optim.Adam(net.parameters(), lr=0.01)
train_loader = DataLoader(graphs[:1280], batch_size=64, shuffle=True)
history = []
for _ in range(8):
    for batch in train_loader:
        opt.zero_grad()
        loss = F.cross_entropy(net(batch), batch.y)
        loss.backward()
        opt.step()
        history.append(loss.item())
with torch.no_grad():
    test = next(iter(DataLoader(graphs[1280:], batch_size=len(graphs))))
    sparse_accuracy = (net(test).argmax(1) == test.y).float().mean()
plt.plot(history), plt.xlabel("step"), plt.ylabel("cross-entropy"), plt.title("training on sparse pixel graphs")
plt.show()
print(f"held-out accuracy on sparse pixel graphs: {sparse_accuracy:.1%}")

# %% [markdown]
# One digit's sparse graph: nodes are the inked pixels, edges the 3x3 neighbourhood among them.

# %%
import networkx as nx

g0 = graphs[0]
nxg = nx.DiGraph()
nxg.add_edges_from(g0.edge_index.t().tolist())
pos = {i: (p[1].item(), -p[0].item()) for i, p in enumerate(g0.pos)}
nx.draw(nxg, pos, node_color=g0.x.flatten(), cmap="gray_r", node_size=120, edge_color="lightgray", arrows=False)
plt.title(f"digit {int(g0.y)} as a sparse pixel graph ({g0.num_nodes} nodes, {g0.num_edges} edges)")
plt.show()
