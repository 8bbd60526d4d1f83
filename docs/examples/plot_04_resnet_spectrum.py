"""
The spectrum and a certified bound of a ResNet layer
====================================================

How much can a convolution stretch its input? The answer is its spectral norm ``‖C‖₂``, the
largest singular value of its matrix — the number Lipschitz-constrained training, spectral
normalisation and robustness certificates are about. convmatrix computes the whole spectrum
(dense SVD for small layers, ARPACK on the matrix-free operator for large ones, the exact FFT
formula for circular padding) and a cheap *certified* upper bound.

The layer is shaped like a convolution of ResNet-18's last stage — 3×3, padding 1, on a 7×7
feature map — with 8 channels instead of 512, so the whole spectrum takes a moment. Its
weights are PyTorch's default initialisation (seeded).
"""

import matplotlib.pyplot as plt
import numpy as np
import torch

import convmatrix as cm

torch.manual_seed(0)
channels, size = 8, 7
module = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).double()
layer = cm.from_torch(module, (channels, size, size))
print(layer)

# %%
# The spectrum, the norm and the bound
# ------------------------------------
# :func:`cm.singular_values <convmatrix.singular_values>` returns all 392 singular values (a dense
# SVD at this size); :func:`cm.operator_norm <convmatrix.operator_norm>` with ``method="iterative"``
# gets the largest one without building the matrix (Lanczos on ``CᵀC`` through
# :meth:`layer.operator() <convmatrix.Layer.operator>`, started from the plane wave where the
# kernel's frequency response peaks); :func:`cm.operator_norm_bound
# <convmatrix.operator_norm_bound>` embeds the zero padding in a torus, where the norm is exact from
# the FFT, and is guaranteed to be at least ``‖C‖₂``.

values = cm.singular_values(layer)
norm = cm.operator_norm(layer, method="iterative")
bound = cm.operator_norm_bound(layer)
print(f"‖C‖₂ = {norm:.6f} (largest of {values.size} singular values: {values[0]:.6f})")
print(f"certified bound {bound:.6f}, {bound / norm - 1:.1%} above")
print(f"smallest singular value {values[-1]:.3g}: condition number {values[0] / values[-1]:.3g}")

# %%
# An independent check: the matrix recovered from PyTorch's ``conv2d`` (one unit vector per
# input pixel, as a batch) and NumPy's SVD.

n = channels * size * size
with torch.no_grad():
    basis = torch.eye(n, dtype=torch.float64).reshape(n, channels, size, size)
    dense = module(basis).reshape(n, n).T.numpy()
numpy_values = np.linalg.svd(dense, compute_uv=False)
assert np.allclose(numpy_values, values, rtol=1e-10, atol=1e-12)
assert abs(norm - numpy_values[0]) <= 1e-6 * numpy_values[0] and numpy_values[0] <= bound

# %%
# Circular padding: the exact spectrum from the FFT
# -------------------------------------------------
# With circular padding and stride 1 the matrix is block-circulant, and its singular values
# are, over all frequencies ``f`` of the 7×7 grid, those of the 8×8 matrices ``K̂(f)`` — the
# kernel's 2-D Fourier transform (Sedghi, Gupta & Long, ICLR 2019). ``cm.singular_values``
# uses this formula for such layers; below it is recomputed by hand with ``numpy.fft``.

circular_module = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False,
                                   padding_mode="circular").double()
circular_module.weight.data.copy_(module.weight.data)
circular = cm.from_torch(circular_module, (channels, size, size))
circular_values = cm.singular_values(circular)

weight = module.weight.detach().numpy()                         # (out, in, 3, 3)
symbol = np.fft.fft2(weight, s=(size, size))                    # K̂(f): (out, in, 7, 7)
per_frequency = np.linalg.svd(symbol.transpose(2, 3, 0, 1), compute_uv=False)  # (7, 7, 8)
by_hand = np.sort(per_frequency.ravel())[::-1]
assert np.allclose(circular_values, by_hand, rtol=1e-10)
print(f"circular: ‖C‖₂ = {circular_values[0]:.6f} = max over f of ‖K̂(f)‖₂")

# %%
# Zero and circular padding change the spectrum only a little here; the certified bound sits
# just above both norms. The heat map is the largest singular value of ``K̂(f)`` per
# frequency — the circular layer's norm is its peak.

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), width_ratios=[3, 2],
                                  layout="constrained")
index = np.arange(1, values.size + 1)
left.plot(index, values, label="zero padding (dense SVD)")
left.plot(index, circular_values, label="circular padding (FFT, exact)", linestyle="--")
left.axhline(bound, color="black", linewidth=0.8, linestyle=":",
             label=f"certified bound {bound:.4f}")
left.set_xlabel("index")
left.set_ylabel("singular value")
left.set_title(f"all {values.size} singular values: 3×3 conv, {channels} channels, "
               f"{size}×{size}", fontsize=9)
left.legend()
peak = np.fft.fftshift(per_frequency[..., 0])
image = right.imshow(peak, cmap="viridis", extent=(-3.5, 3.5, 3.5, -3.5))
fig.colorbar(image, ax=right, label="‖K̂(f)‖₂")
right.set_xlabel("frequency (columns)")
right.set_ylabel("frequency (rows)")
right.set_title("the kernel's frequency response", fontsize=9)
plt.show()

# %%
# A BasicBlock's conv path: exact Lipschitz constant vs the product bound
# -----------------------------------------------------------------------
# The usual Lipschitz bound of a stack is the product of its layers' norms. :func:`cm.lipschitz
# <convmatrix.lipschitz>` puts it beside the exact norm of the product. Here the conv path of a
# ResNet BasicBlock, ``bn2(conv2(bn1(conv1(x))))``, with batch norm in eval mode (seeded running
# statistics).

block = torch.nn.Sequential(
    module, torch.nn.BatchNorm2d(channels),
    torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False), torch.nn.BatchNorm2d(channels),
).double().eval()
with torch.no_grad():
    for bn in (block[1], block[3]):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
path = cm.from_torch(block, (channels, size, size))
bounds = cm.lipschitz(path)
print(bounds)

# %%
# Checked with the matrix recovered from the torch block (its linear part: ``f(x) − f(0)``):

with torch.no_grad():
    linear = (block(basis) - block(torch.zeros(1, channels, size, size, dtype=torch.float64)))
exact = np.linalg.norm(linear.reshape(n, n).numpy(), 2)
assert abs(bounds.exact - exact) <= 1e-6 * exact
assert bounds.exact <= bounds.product_of_norms <= bounds.product_of_bounds
