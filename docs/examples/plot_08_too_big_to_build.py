"""
Layers too big to build: matrix-free operators
==============================================

A convolution of ResNet's first stage — 64 channels in and out, 3×3, on a 56×56 feature map — has a
200,704 × 200,704 matrix with 113 million stored entries, 862 MiB in float32. convmatrix
estimates that before building anything and refuses a matrix over its memory budget, but every
layer is also a matrix-free ``scipy.sparse.linalg.LinearOperator`` (:meth:`layer.operator()
<convmatrix.Layer.operator>`): products with ``C`` and with its exact adjoint ``Cᵀ`` in tiles,
without the matrix. That is all iterative solvers, eigensolvers and norm estimates need.

The operator's products are checked against PyTorch run live; the deblurring at the end is
an inverse problem solved with SciPy's LSQR on the operator.
"""

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse.linalg as spla
import torch
import torch.nn.functional as F

import convmatrix as cm

torch.manual_seed(0)
rng = np.random.default_rng(0)


# sphinx_gallery_thumbnail_number = 2

# %%
# The ResNet stage layer
# ----------------------
# :func:`cm.estimate_nbytes <convmatrix.estimate_nbytes>` counts the matrix's stored entries and
# bytes in closed form, before anything is allocated; :meth:`layer.matrix()
# <convmatrix.Layer.matrix>` refuses what exceeds ``max_bytes`` (4 GiB by default; 256 MiB here,
# a small machine's budget).

module = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False)  # float32, as trained
layer = cm.from_torch(module, (64, 56, 56))
nnz, nbytes = cm.estimate_nbytes(cm.conv_spec((64, 64, 3, 3), (64, 56, 56), padding=1),
                                 np.float32)
print(f"{layer}: {nnz:,} stored entries, {nbytes / 2**20:,.0f} MiB as CSR")
try:
    layer.matrix(max_bytes=256 * 2**20)
except cm.ConvMatrixError as err:
    print(err)

# %%
# The operator: ``C x`` and ``Cᵀ y`` match PyTorch's ``conv2d`` and the gradient PyTorch's
# autograd computes (its ``conv_transpose2d``), to float32 rounding; the dot test
# ``⟨C x, y⟩ = ⟨x, Cᵀ y⟩`` holds.

op = layer.operator()
print(op)
x = rng.standard_normal(layer.input_shape).astype(np.float32)
y = rng.standard_normal(layer.output_shape).astype(np.float32)
x_torch = torch.from_numpy(x)[None].requires_grad_()
forward = module(x_torch)
(backward,) = torch.autograd.grad(forward, x_torch, torch.from_numpy(y)[None])
assert np.allclose(op.matvec(x.ravel()), forward.detach().numpy().ravel(), atol=1e-4)
assert np.allclose(op.rmatvec(y.ravel()), backward.numpy().ravel(), atol=1e-4)
print(cm.dot_test(op))

# %%
# Streaming: :meth:`layer.matrix_blocks <convmatrix.Layer.matrix_blocks>` yields the matrix as CSR
# row blocks that are built one at a time (:func:`cm.save_matrix <convmatrix.save_matrix>` writes
# them to disk block by block). One output channel's rows:

block = next(layer.matrix_blocks(rows_per_block=56 * 56))
print(f"rows 0–3135 (output channel 0): {block.shape}, {block.nnz:,} stored entries, "
      f"{(block.data.nbytes + block.indices.nbytes + block.indptr.nbytes) / 2**20:.1f} MiB")
assert np.allclose(block @ x.ravel(), forward.detach().numpy()[0, 0].ravel(), atol=1e-4)

# %%
# Each row of that block reads a 3×3 window in each of the 64 input channels: 576 entries,
# three short runs (the kernel's rows, 56 pixels apart) per channel. The first 120 rows, in
# the first 240 columns of four of the 64 input channels:

fig, axes = plt.subplots(1, 4, figsize=(11, 3), layout="constrained", sharey=True)
for channel, ax in enumerate(axes):
    start = channel * 56 * 56
    corner = block[:120, start:start + 240].tocoo()
    ax.plot(corner.col, corner.row, "s", markersize=1.2, color="#1f4e79")
    ax.set_xlim(-0.5, 239.5)
    ax.set_ylim(119.5, -0.5)
    ax.set_xlabel(f"input pixel of channel {channel}")
    ax.set_title(f"columns {start}–{start + 239}", fontsize=9)
axes[0].set_ylabel("output pixel (channel 0)")
plt.show()

# %%
# An inverse problem on the operator: deblurring
# ----------------------------------------------
# A 7×7 Gaussian blur of a 256×256 image (zero padding) has a 65,536 × 65,536 matrix; the
# operator alone is enough to undo it approximately. LSQR with a small damping (Tikhonov
# regularisation) solves ``min ‖C x − y‖² + λ²‖x‖²`` for a blurred, noisy ``y``; stopping
# after 20 iterations regularises too (more would start fitting the noise).

size = 256
rows, cols = np.mgrid[0:size, 0:size]
image = ((np.abs(rows - 80) < 40) & (np.abs(cols - 90) < 50)).astype(float)
image += 0.7 * (np.hypot(rows - 170, cols - 170) < 45)
image += 0.5 * ((rows // 16 + cols // 16) % 2) * (rows > 200) * (cols < 120)
taps = np.exp(-0.5 * (np.arange(-3, 4) / 1.5) ** 2)
gauss = np.outer(taps, taps) / np.outer(taps, taps).sum()
blur = cm.Conv(gauss.reshape(1, 1, 7, 7), (1, size, size), padding=3)
blurred = blur(image[None])[0]

live = F.conv2d(torch.from_numpy(image)[None, None], torch.from_numpy(gauss)[None, None],
                padding=3)[0, 0].numpy()
assert np.allclose(blurred, live, atol=1e-12)
noisy = blurred + 0.002 * rng.standard_normal(blurred.shape)

solution = spla.lsqr(blur.operator(), noisy.ravel(), damp=0.02, iter_lim=20)
restored = solution[0].reshape(size, size)
print(f"LSQR: {solution[2]} iterations; error of the blurred image "
      f"{np.linalg.norm(noisy - image) / np.linalg.norm(image):.3f}, of the restored "
      f"{np.linalg.norm(restored - image) / np.linalg.norm(image):.3f}")
assert np.linalg.norm(restored - image) < 0.8 * np.linalg.norm(noisy - image)

fig, axes = plt.subplots(1, 3, figsize=(11, 3.9), layout="constrained")
for ax, picture, title in [(axes[0], image, "x"), (axes[1], noisy, "y = C x + noise"),
                           (axes[2], restored, "LSQR on C.operator(), λ = 0.02")]:
    ax.imshow(picture, cmap="gray", vmin=-0.1, vmax=1.3)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %%
# How much can the blur amplify noise in reverse? Its norm is at most the kernel's sum
# (Young's inequality: ``‖C‖₂ ≤ ‖w‖₁ = 1`` for a non-negative kernel that sums to 1); the
# certified bound and the Lanczos estimate on the operator agree, and both sit at 1 — a
# flat image passes through unchanged away from the borders.

norm = cm.operator_norm(blur, method="iterative")
bound = cm.operator_norm_bound(blur)
print(f"‖C‖₂ = {norm:.6f} ≤ bound {bound:.6f} ≤ ‖w‖₁ = {gauss.sum():.6f}")
assert norm <= bound <= gauss.sum() * (1 + 1e-9) and norm > 0.999
