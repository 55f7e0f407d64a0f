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
# # 07 · Gradients and compression
#
# In a depthwise-separable stack the pointwise (1x1) layer is the only path between channels, so
# gradients cross channels through `W^T`; a residual makes it `W^T + I`. Then: compressing trained
# 1x1 layers by truncated SVD, squeeze-and-excitation gates, and Mahalanobis out-of-distribution
# scores on 1x1-layer activations.

# %%
import matplotlib.pyplot as plt
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from gridgnn import analysis
from gridgnn.models import GridResNet
from gridgnn.nn import SqueezeExcitation
from gridgnn.training import digits_dataset

torch.manual_seed(0)

# %% [markdown]
# ## Singular values of the backward map

# %%
w = 0.1 * torch.randn(64, 64, dtype=torch.float64)
plt.plot(analysis.backward_singular_values(w), label="plain: W^T")
plt.plot(analysis.backward_singular_values(w, residual=True), label="residual: W^T + I")
plt.yscale("log"), plt.xlabel("index"), plt.ylabel("singular value"), plt.legend()
plt.title("the residual keeps every direction of the gradient alive")
plt.show()

# %%
norms = analysis.channel_gradient_norms(channels=16, depth=8, weight_scale=0.1)
x = torch.arange(16)
plt.bar(x - 0.2, norms["plain"], width=0.4, label="plain")
plt.bar(x + 0.2, norms["residual"], width=0.4, label="residual")
plt.yscale("log"), plt.xlabel("input channel"), plt.ylabel("||dL/dx_c||"), plt.legend()
plt.title("gradient reaching each input channel through 8 separable layers")
plt.show()

# %% [markdown]
# ## SVD compression of trained 1x1 layers
# Train a small GridResNet on the digits, then replace its widest pointwise layer by two thinner ones
# from the truncated SVD (Eckart-Young optimal) and watch error and accuracy as the rank shrinks.

# %%
images, labels = digits_dataset()
train, test = slice(0, 1400), slice(1400, None)
model = GridResNet(widths=(16, 32))
opt = torch.optim.Adam(model.parameters(), lr=0.01)
for _ in range(6):
    for idx in torch.randperm(1400).split(64):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(images[train][idx]), labels[train][idx]).backward()
        opt.step()
model.eval()


def accuracy(m):
    with torch.no_grad():
        return (m(images[test]).argmax(1) == labels[test]).float().mean().item()


base = accuracy(model)
layer = model.blocks[1].conv3                         # NodeLinear 16 -> 32
curve = analysis.low_rank_curve(layer)
accs = []
for rank in curve.ranks:
    model.blocks[1].conv3 = analysis.low_rank(layer, rank).module
    accs.append(accuracy(model))
model.blocks[1].conv3 = layer
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].plot(curve.ranks, curve.relative_error, marker="o")
axes[0].set(xlabel="rank", ylabel="relative Frobenius error", title="error vs rank")
axes[1].plot(curve.ranks, accs, marker="o", label="compressed")
axes[1].axhline(base, color="k", ls="--", label="original")
ax2 = axes[1].twinx()
ax2.plot(curve.ranks, curve.params, color="tab:gray", ls=":", label="params")
axes[1].set(xlabel="rank", ylabel="test accuracy", title="accuracy and parameters vs rank")
axes[1].legend(loc="lower right")
plt.show()

# %% [markdown]
# ## Squeeze-and-excitation gates
# SE pools all nodes into one vector and computes a gate per channel with two 1x1 maps; the gates
# depend on the input.

# %%
se = SqueezeExcitation(16, 4)
stem_features = torch.relu(model.stem_bn(model.stem.forward_nodes(
    images[:200].movedim(1, -1).reshape(200, 64, 1), (8, 8))))
with torch.no_grad():
    pooled = stem_features.mean(1, keepdim=True)
    gates = torch.sigmoid(se.expand(se.activation(se.reduce(pooled))))[:, 0]
plt.imshow(torch.stack([gates[labels[:200] == d].mean(0) for d in range(10)]), cmap="viridis", aspect="auto")
plt.xlabel("channel"), plt.ylabel("digit class"), plt.colorbar(label="mean gate")
plt.title("SE gates differ by input class")
plt.show()

# %% [markdown]
# ## Mahalanobis OOD scores on node activations
# Fit class-conditional Gaussians (shared covariance) on the mean node activation of the last block,
# for digits 0-7 only; score held-out digits 0-7 (in distribution), digits 8-9 and noise images.

# %%
seen = labels < 8
in_model = GridResNet(widths=(16, 32))
opt = torch.optim.Adam(in_model.parameters(), lr=0.01)
train_idx = torch.nonzero(seen[:1400]).flatten()
for _ in range(6):
    for idx in train_idx[torch.randperm(len(train_idx))].split(64):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(in_model(images[idx]), labels[idx]).backward()
        opt.step()
in_model.eval()
last = in_model.blocks[-1].conv3


def features(x):
    return analysis.node_activations(in_model, last, x).double()


scorer = analysis.MahalanobisScorer.fit(features(images[train_idx]), labels[train_idx], eps=1e-3)
test_in = images[1400:][seen[1400:]]
test_out = images[1400:][~seen[1400:]]
noise = torch.rand(200, 1, 8, 8)
scores = {name: scorer.score(features(x)) for name, x in
          (("digits 0-7", test_in), ("digits 8-9", test_out), ("noise", noise))}
for name in ("digits 8-9", "noise"):
    y = torch.cat([torch.zeros(len(scores["digits 0-7"])), torch.ones(len(scores[name]))])
    s = torch.cat([scores["digits 0-7"], scores[name]])
    fpr, tpr, _ = roc_curve(y, s)
    plt.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, s):.2f})")
plt.plot([0, 1], [0, 1], "k:", lw=0.8)
plt.xlabel("false positive rate"), plt.ylabel("true positive rate"), plt.legend(), plt.title("Mahalanobis OOD")
plt.show()
