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
# # 08 · The frequency domain
#
# "Pointwise" has a second meaning: by the convolution theorem, a convolution in space is a
# **pointwise product in frequency**. `analysis.fft_conv` computes torch's convolution that way.
# The FFT is periodic, so its natural geometry is the **torus**: circular padding, i.e. the grid
# graph with wrapped edges. Zero-padding the signal to `N + k - 1` gives the linear convolution.

# %%
import matplotlib.pyplot as plt
import torch

import gridgnn as gg
from gridgnn import analysis
from gridgnn.nn import GridConv

torch.manual_seed(0)

# %% [markdown]
# ## FFT convolution equals direct convolution

# %%
for nd, size in ((1, (64,)), (2, (16, 20))):
    for mode in ("zeros", "circular"):
        conv = [None, torch.nn.Conv1d, torch.nn.Conv2d][nd](3, 4, 5, padding=2, padding_mode=mode).double()
        x = torch.randn(2, 3, *size, dtype=torch.float64)
        err = (analysis.fft_conv(x, conv.weight, conv.bias, mode) - conv(x)).abs().max().item()
        print(f"{nd}-D, {mode:<8}: max |fft_conv - conv| = {err:.1e}")

# %% [markdown]
# ## Circular vs linear, and the torus grid graph
# A signal with a bump near the right end: linear convolution lets the bump fall off the edge, the
# circular one wraps it to the start. The circular result is exactly message passing on the torus
# grid graph, where every node has one edge per offset.

# %%
signal = torch.zeros(1, 1, 40, dtype=torch.float64)
signal[..., 36:39] = 1.0
kernel = torch.ones(1, 1, 9, dtype=torch.float64) / 9
linear = analysis.fft_conv(signal, kernel, padding_mode="zeros")[0, 0]
circular = analysis.fft_conv(signal, kernel, padding_mode="circular")[0, 0]
torus = gg.grid_graph(40, 9, padding=4, padding_mode="circular")
layer = GridConv(1, 1, (9,), bias=False).double()
with torch.no_grad():
    layer.weight.copy_(kernel)
on_graph = layer(signal[0].t(), torus)[:, 0]
print("torus message passing vs circular FFT:", (on_graph - circular).abs().max().item())
print("every node on the torus has", torch.bincount(torus.edge_index[1]).unique().tolist(), "in-edges")
plt.plot(signal[0, 0], "k:", label="signal")
plt.plot(linear, label="linear (zero padding)")
plt.plot(circular, "--", label="circular = torus graph")
plt.legend(), plt.title("the bump wraps around on the torus")
plt.show()

# %% [markdown]
# ## Pointwise in frequency
# The spectrum of the output is the spectrum of the input times (the conjugate of) the kernel's.

# %%
x = torch.randn(256, dtype=torch.float64)
h = torch.zeros(256, dtype=torch.float64)
h[:9] = torch.hann_window(9, dtype=torch.float64)
X, H = torch.fft.rfft(x), torch.fft.rfft(h)
y = analysis.fft_conv(x[None, None], h[:9].flip(0)[None, None], padding_mode="circular")[0, 0]
Y = torch.fft.rfft(torch.roll(y, -4))
plt.semilogy(X.abs(), alpha=0.5, label="|X| input")
plt.semilogy(H.abs(), label="|H| kernel (low-pass)")
plt.semilogy(Y.abs(), alpha=0.7, label="|Y| output")
plt.semilogy((X * H).abs(), "k:", label="|X . H|")
plt.xlabel("frequency"), plt.legend(fontsize=8), plt.title("convolution = pointwise product of spectra")
plt.show()
print("max | |Y| - |X H| | =", (Y.abs() - (X * H).abs()).max().item())

# %% [markdown]
# ## Direct vs FFT: who wins when
# Direct convolution (here gridgnn's message passing) costs O(N k); the FFT O(N log N), independent
# of k. Small kernels favour direct, large kernels the FFT.

# %%
torch.set_num_threads(2)
rows = analysis.fft_vs_direct_timing([1024, 8192], [3, 15, 63, 255], channels=4, ndim=1, min_run_time=0.05)
for n in (1024, 8192):
    sub = [r for r in rows if r["size"] == n]
    plt.plot([r["kernel"] for r in sub], [r["direct"] * 1e3 for r in sub], marker="o", label=f"direct, N={n}")
    plt.plot([r["kernel"] for r in sub], [r["fft"] * 1e3 for r in sub], marker="s", ls="--", label=f"FFT, N={n}")
plt.xscale("log"), plt.yscale("log"), plt.xlabel("kernel size"), plt.ylabel("ms"), plt.legend()
plt.title("1-D conv, 4 channels")
plt.show()
