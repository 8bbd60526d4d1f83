"""
One and three dimensions: a dilated causal stack and a 3-D checkerboard
=======================================================================

The index arithmetic is the same along every axis, so everything convmatrix does in 2-D it does
in 1-D (audio, time series) and 3-D (video, volumes). Two examples:

* WaveNet's stack of causal convolutions with kernel 2 and dilations 1, 2, 4, 8: its matrix is
  a lower-triangular band of width 16, and every input in that window reaches the output along
  exactly **one** path — the dilations write each offset 0…15 in binary. Without dilation the
  same four layers reach only 5 inputs, along 1, 4, 6, 4, 1 paths: a binomial blur.
* A 3-D transposed convolution with kernel 3 and stride 2: the per-axis overlap counts 1 and 2
  multiply into interior counts 1, 2, 4 and 8.

Both are checked against PyTorch run live.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import convmatrix as cm
from convmatrix import symbolic as sym

# %%
# A causal dilated stack
# ----------------------
# A causal convolution pads only on the left (``padding=((d, 0),)`` for kernel 2 and dilation
# ``d``), so output ``t`` reads inputs ``t − d`` and ``t``. With every weight 1, the stack's
# matrix counts the paths from each input to each output.

length = 32


def causal_stack(dilations):
    """Kernel-2 causal convolutions with all-ones integer weights, one per dilation."""
    return cm.Sequential([cm.Conv(np.ones((1, 1, 2), dtype=int), (1, length), dilation=d,
                                  padding=((d, 0),)) for d in dilations])


wavenet, plain = causal_stack([1, 2, 4, 8]), causal_stack([1, 1, 1, 1])
W, P = wavenet.matrix().toarray(), plain.matrix().toarray()
print("WaveNet row 20:", W[20, :21])
print("plain row 20:  ", P[20, :21])
assert np.array_equal(W[20, 5:21], np.ones(16)) and not W[20, :5].any()
assert np.array_equal(P[20, 16:21], [1, 4, 6, 4, 1]) and not P[20, :16].any()
assert not np.triu(W, 1).any()  # causal: no output reads the future

# %%
# The same stack in PyTorch (left padding by ``nn.ConstantPad1d``, then ``nn.Conv1d``), read
# by ``cm.from_torch`` and run live on a random signal:

modules = []
for d in (1, 2, 4, 8):
    conv = nn.Conv1d(1, 1, 2, dilation=d, bias=False).double()
    nn.init.ones_(conv.weight)
    modules += [nn.ConstantPad1d((d, 0), 0.0), conv]
torch_stack = nn.Sequential(*modules)
signal = np.random.default_rng(0).standard_normal((1, length))
with torch.no_grad():
    live = torch_stack(torch.from_numpy(signal)[None])[0].numpy()
assert np.allclose(cm.from_torch(torch_stack, (1, length)).matrix().toarray(), W)
assert np.allclose(W @ signal.ravel(), live.ravel())

fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), layout="constrained")
for ax, matrix, title in [(axes[0], W, "dilations 1, 2, 4, 8"),
                          (axes[1], P, "dilations 1, 1, 1, 1")]:
    ax.imshow(np.where(matrix > 0, matrix, np.nan), cmap="viridis", vmin=0, vmax=6)
    ax.set_title(f"{title}: the stack's matrix", fontsize=10)
    ax.set_xlabel("input t")
    ax.set_ylabel("output t")
offsets = np.arange(16)
axes[2].bar(offsets - 0.2, W[20, 20 - offsets], width=0.4, label="dilations 1, 2, 4, 8")
axes[2].bar(offsets + 0.2, P[20, 20 - offsets], width=0.4, label="dilations 1, 1, 1, 1")
axes[2].set_xticks(range(0, 16, 3))
axes[2].set_xlabel("how far back the input is (t − s)")
axes[2].set_ylabel("paths from input s to output t")
axes[2].legend()
plt.show()

# %%
# A 3-D checkerboard
# ------------------
# A ``ConvTranspose3d`` with kernel 3, stride 2 and padding 1 upsamples 4×4×4 to 8×8×8 (with
# ``output_padding=1``). Along each axis the interior counts alternate 2, 1; in 3-D they
# multiply: 1, 2, 4 and 8 taps land on interior voxels.

up3d = cm.ConvTranspose(np.ones((1, 1, 3, 3, 3), dtype=int), (1, 4, 4, 4), stride=2,
                        padding=1, output_padding=1)
counts = up3d.overlap_counts()[0]
law = sym.checkerboard_law(up3d)
print(repr(law))
print(repr(up3d.checkerboard()))
assert law.interior_values == (1, 2, 4, 8) and np.array_equal(law.counts(), counts)

torch_counts = F.conv_transpose3d(torch.ones(1, 1, 4, 4, 4, dtype=torch.float64),
                                  torch.ones(1, 1, 3, 3, 3, dtype=torch.float64), stride=2,
                                  padding=1, output_padding=1)[0, 0].numpy()
assert np.array_equal(torch_counts, counts)

# %%
# Four consecutive depth slices of the 8×8×8 count map: the 2-D checkerboard of the previous
# examples, scaled by the depth axis' own counts: 1, 2, 1, 2 at these depths.

fig, axes = plt.subplots(1, 4, figsize=(12, 3.2), layout="constrained")
for depth, ax in zip(range(2, 6), axes, strict=True):
    image = ax.imshow(counts[depth], cmap="magma", vmin=0, vmax=8)
    for (i, j), value in np.ndenumerate(counts[depth]):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=7,
                color="black" if value > 4 else "white")
    ax.set_title(f"depth {depth}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(image, ax=axes, shrink=0.8, label="taps landing on the voxel")
plt.show()

# %%
# The built-in report :doc:`/reports/one-and-three-dimensional` derives a 1-D convolution and a
# 3-D transposed convolution symbolically.
