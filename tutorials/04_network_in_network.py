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
# # 04 · Network in Network
#
# One linear 1x1 layer is a linear map per pixel: it cannot compute XOR of two channels. Put a ReLU
# between two 1x1 layers (Network-in-Network's "mlpconv") and every pixel gets a small MLP that can.
# Then: the order of 1x1 and 3x3 layers in a block matters only because of the non-linearity.

# %%
import matplotlib.pyplot as plt
import torch

from gridgnn import analysis
from gridgnn.analysis import XOR_INPUTS, XOR_TARGETS
from gridgnn.nn import NiNBlock

# %% [markdown]
# ## XOR of two channels, at every pixel
# Four pixels carry the four input pairs. The best linear 1x1 (least squares) predicts 0.5
# everywhere, MSE 0.25; 1x1 -> ReLU -> 1x1 fits exactly.

# %%
linear_mse = analysis.xor_linear_mse()
exact = analysis.xor_mlp_exact()
model, trained_mse, losses = analysis.xor_mlp_train(hidden=8, steps=1500)
print(f"linear 1x1, best possible MSE     {linear_mse:.4f}")
with torch.no_grad():
    exact_mse = float((exact(XOR_INPUTS) - XOR_TARGETS).pow(2).mean())
print(f"1x1-ReLU-1x1, hand-set weights    {exact_mse:.4f}")
print(f"1x1-ReLU-1x1, trained with Adam   {trained_mse:.2e}")
plt.semilogy(losses, label="1x1 -> ReLU -> 1x1 (trained)")
plt.axhline(linear_mse, color="tab:red", ls="--", label="best linear 1x1 (0.25)")
plt.xlabel("step"), plt.ylabel("MSE"), plt.legend(), plt.title("XOR of two channels")
plt.show()

# %%
with torch.no_grad():
    axis = torch.linspace(0, 1, 50, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    surface = model(grid).view(50, 50)
plt.imshow(surface, origin="lower", extent=(0, 1, 0, 1), cmap="viridis")
plt.colorbar(label="output"), plt.xlabel("channel 2"), plt.ylabel("channel 1")
plt.title("the per-pixel MLP's function of the two channels")
plt.show()

# %% [markdown]
# ## Block order: 1x1 -> 3x3 vs 3x3 -> 1x1
# Without a ReLU both orders collapse into one 3x3 conv, and its weight has rank at most the
# bottleneck width `m`: a *low-rank* 3x3 conv. With the ReLU they are different function classes.

# %%
torch.manual_seed(0)
rows = []
for m in (1, 2, 4, 8, 16):
    p = (torch.nn.Conv2d(16, m, 1, bias=False), torch.nn.Conv2d(m, 16, 3, padding=1))   # 1x1 then 3x3
    q = (torch.nn.Conv2d(16, m, 3, padding=1), torch.nn.Conv2d(m, 16, 1))              # 3x3 then 1x1
    cp, cq = analysis.collapse_block(*p), analysis.collapse_block(*q)
    x = torch.randn(1, 16, 8, 8)
    err = (torch.nn.functional.conv2d(x, cp.weight, cp.bias, padding=1) - p[1](p[0](x))).abs().max().item()
    rows.append((m, cp.rank, cq.rank, err))
print(f"{'m':>3} {'rank P (1x1->3x3)':>18} {'rank Q (3x3->1x1)':>18} {'collapse error':>15}")
for m, rp, rq, err in rows:
    print(f"{m:>3} {rp:>18} {rq:>18} {err:>15.1e}")
print("a full 3x3 16->16 conv has rank up to", 16)

# %% [markdown]
# With a ReLU between them, P and Q are no longer one conv: fit each (and the collapsed linear
# version) to the same random target network and compare what they can reach.

# %%
def fit(model, x, y, steps=400):
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    return loss.item()


torch.manual_seed(1)
x = torch.randn(32, 4, 8, 8)
target = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(8, 4, 3, padding=1))
with torch.no_grad():
    y = target(x)
models = {
    "P: 1x1 -> ReLU -> 3x3": torch.nn.Sequential(torch.nn.Conv2d(4, 2, 1), torch.nn.ReLU(),
                                                 torch.nn.Conv2d(2, 4, 3, padding=1)),
    "Q: 3x3 -> ReLU -> 1x1": torch.nn.Sequential(torch.nn.Conv2d(4, 2, 3, padding=1), torch.nn.ReLU(),
                                                 torch.nn.Conv2d(2, 4, 1)),
    "linear (no ReLU)": torch.nn.Sequential(torch.nn.Conv2d(4, 2, 3, padding=1), torch.nn.Conv2d(2, 4, 1)),
    "mlpconv NiNBlock (graph)": None,
}
results = {}
for name, net in models.items():
    if net is None:
        block = NiNBlock(4, 4, 3, padding=1)
        net = type("Image", (torch.nn.Module,), {"forward": lambda self, x: block.forward_image(x)})()
        net.block = block
    results[name] = fit(net, x, y)
plt.barh(list(results), list(results.values()), color="tab:purple")
plt.xlabel("MSE after 400 Adam steps"), plt.title("same data, different block orders")
plt.show()
