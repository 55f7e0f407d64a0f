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
# # 03 · The cost of pointwise
#
# Counting weights and multiply-accumulates (MACs) shows why 1x1 convolutions are everywhere in
# efficient CNNs. Every number here is computed by `gridgnn.analysis` (closed forms checked against
# forward-hook counts of real modules), and the last cell measures CPU time next to the counts.

# %%
import matplotlib.pyplot as plt
import torch
from torch.utils.benchmark import Timer

from gridgnn import analysis

# %% [markdown]
# ## 3x3 vs 1x1, bottleneck, Inception reduce, depthwise separable

# %%
dw, pw, std = analysis.separable_macs(192, 384, 3)
with_reduce, without_reduce = analysis.inception_reduce_params(256, 64, 256, 3)
figures = [
    ("3x3 conv 128->256 (weights)", analysis.conv_params(128, 256, 3)),
    ("1x1 conv 128->256 (weights)", analysis.conv_params(128, 256, 1)),
    ("plain 3x3 256->256 (weights)", analysis.conv_params(256, 256, 3)),
    ("bottleneck 256-64-64-256 (weights)", analysis.bottleneck_params(256, 64)),
    ("3x3 branch 256->256 (weights)", without_reduce),
    ("1x1 reduce to 64, then 3x3 (weights)", with_reduce),
    ("standard 3x3 192->384 (MACs/pixel)", std),
    ("depthwise + pointwise (MACs/pixel)", dw + pw),
]
for name, value in figures:
    print(f"{name:<40} {value:>10,}")
print(f"\n3x3 / 1x1 = {figures[0][1] / figures[1][1]:.0f} = k*k;  separable saves {std / (dw + pw):.1f}x")

# %%
fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
for ax, (a, b) in zip(axes, [(0, 1), (2, 3), (4, 5), (6, 7)]):
    ax.bar([figures[a][0].split(" (")[0], figures[b][0].split(" (")[0]], [figures[a][1], figures[b][1]],
           color=["tab:gray", "tab:green"])
    ax.tick_params(axis="x", labelsize=7, rotation=15)
    ax.set_title(figures[a][0].split("(")[1].rstrip(")"), fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## MobileNetV2 inverted residuals: MACs by expansion ratio
# Expand 1x1 (ratio t), depthwise 3x3, project 1x1, on a 56x56 map with 24 channels: the two
# pointwise layers carry nearly all the MACs.

# %%
ratios = [1, 2, 3, 4, 6, 8]
parts = {part: [analysis.inverted_residual_macs(24, 24, t, (56, 56))[part] / 1e6 for t in ratios]
         for part in ("expand", "depthwise", "project")}
bottom = [0.0] * len(ratios)
for part, values in parts.items():
    plt.bar([str(t) for t in ratios], values, bottom=bottom, label=part)
    bottom = [b + v for b, v in zip(bottom, values)]
plt.xlabel("expansion ratio t"), plt.ylabel("MMACs"), plt.legend(), plt.title("inverted residual, 24 ch @ 56x56")
plt.show()

# %% [markdown]
# ## EfficientNet compound scaling
# Depth x alpha^phi, width x beta^phi, resolution x gamma^phi: conv MACs grow as
# (alpha * beta^2 * gamma^2)^phi, about 2^phi. Measured on a toy conv stack scaled the same way:

# %%
def stack_macs(depth, width, res):
    net = torch.nn.Sequential(*[torch.nn.Conv2d(width, width, 3, padding=1) for _ in range(depth)])
    return analysis.count_macs(net, torch.randn(1, width, res, res))


base = stack_macs(4, 32, 32)
print(f"{'phi':>4} {'depth':>6} {'width':>6} {'res':>5} {'formula':>8} {'measured':>9}")
for phi in range(0, 4):
    f = analysis.compound_scaling(phi)
    d, w, r = round(4 * f["depth"]), round(32 * f["width"]), round(32 * f["resolution"])
    print(f"{phi:>4} {d:>6} {w:>6} {r:>5} {f['macs']:>8.2f} {stack_macs(d, w, r) / base:>9.2f}")

# %% [markdown]
# ## Counts next to measured time
# A 3x3 conv has 9x the MACs of a 1x1 conv with the same channels; on a CPU the time follows.

# %%
torch.set_num_threads(2)
x = torch.randn(8, 128, 28, 28)
rows = []
for k in (1, 3):
    conv = torch.nn.Conv2d(128, 128, k, padding=k // 2, bias=False)
    with torch.no_grad():
        t = Timer("conv(x)", globals={"conv": conv, "x": x}).blocked_autorange(min_run_time=0.3).median
    rows.append((k, analysis.count_macs(conv, x), t))
for k, macs, t in rows:
    print(f"{k}x{k}: {macs / 1e6:8.1f} MMACs  {t * 1e3:7.2f} ms")
print(f"MAC ratio {rows[1][1] / rows[0][1]:.1f}, time ratio {rows[1][2] / rows[0][2]:.1f}")
print(analysis.layer_table(torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                                               torch.nn.Conv2d(16, 32, 1)), torch.randn(1, 3, 32, 32)))
