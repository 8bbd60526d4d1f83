"""
Why the transpose is not the inverse
====================================

The seed calls the transposed layer "De-Convolution", as if it undid the convolution. It does not:
going through a layer ``C`` and back through its transpose gives ``CᵀC x``, and ``CᵀC`` is not the
identity. Worse, a layer with fewer outputs than inputs loses dimensions that *no* map can bring
back. :func:`cm.transpose_vs_inverse <convmatrix.transpose_vs_inverse>` (also
:meth:`layer.transpose_vs_inverse() <convmatrix.Layer.transpose_vs_inverse>`) shows ``CᵀC``, the
rank, the null space and the least-squares inverse; every claim below is checked against matrices
recovered from PyTorch's own convolutions and against NumPy's SVD-based linear algebra.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import convmatrix as cm


def torch_matrix_of(fn, input_shape):
    """The dense matrix of a linear torch function, one unit vector at a time (independent)."""
    n = int(np.prod(input_shape))
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *input_shape)
    return fn(basis).reshape(n, -1).T.numpy()



# sphinx_gallery_thumbnail_number = 2

# %%
# The seed's convolution loses five of nine dimensions
# ----------------------------------------------------
# ``C`` is 4×9: four outputs cannot hold nine numbers. The analysis uses a generic integer
# input ``x`` (an all-ones input would look recovered by accident).

conv = cm.Conv(np.ones((1, 1, 2, 2), dtype=int), (1, 3, 3))
analysis = cm.transpose_vs_inverse(conv)
print(analysis)

# %%
# The same facts from PyTorch's ``conv2d`` (its matrix recovered column by column) and NumPy:
# rank 4, ``CᵀC x`` as printed, the least-squares solution equal to ``pinv(C) @ C @ x``, and
# every null-space vector mapped to zero.

kernel = torch.ones(1, 1, 2, 2, dtype=torch.float64)
C = torch_matrix_of(lambda x: F.conv2d(x, kernel), (1, 3, 3))
assert np.array_equal(C, conv.matrix().toarray())
assert np.linalg.matrix_rank(C) == analysis.rank == 4 and analysis.lost_dimensions == 5
assert np.allclose(C.T @ C @ analysis.x, analysis.gram_x)
assert np.allclose(np.linalg.pinv(C) @ C @ analysis.x, analysis.lsqr_x, atol=1e-8)
null = np.array(analysis.nullspace, dtype=float)
assert np.allclose(C @ null.T, 0) and np.linalg.matrix_rank(null) == 5
assert not analysis.recovered and not analysis.gram_is_identity

# %%
# Five inputs the convolution cannot see: each sums to zero under every 2×2 window, so ``x``
# and ``x + v`` give the same output.

fig, axes = plt.subplots(1, 5, figsize=(10, 2.4), layout="constrained")
for index, (ax, vector) in enumerate(zip(axes, null, strict=True)):
    ax.imshow(vector.reshape(3, 3), cmap="RdBu_r", vmin=-1, vmax=1)
    for (i, j), value in np.ndenumerate(vector.reshape(3, 3)):
        ax.text(j, i, f"{value:+g}" if value else "0", ha="center", va="center")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"null-space vector {index + 1}", fontsize=9)
fig.suptitle("C v = 0: the seed's Conv2D maps each of these to [[0, 0], [0, 0]]")
plt.show()

# %%
# An image through a stride-2 convolution and back
# ------------------------------------------------
# A 3×3, stride-2 convolution halves a 16×16 image to 8×8: ``C`` is 64×256, so at least 192
# dimensions are lost. Back through the transpose, ``CᵀC x`` is a blurred, rescaled copy
# marked by the stride's uneven overlap; the least-squares inverse ``C⁺ C x`` is the best any
# map can do — the smallest image with the same output — and the rest, ``x − C⁺ C x``, is
# invisible to ``C``.

size = 16
rows, cols = np.mgrid[0:size, 0:size]
image = ((np.hypot(rows - 7.5, cols - 7.5) < 6) & (np.hypot(rows - 7.5, cols - 7.5) > 3))
image = image.astype(float) + (cols > 11) * (rows < 4)  # a ring and a corner block
weight = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]).reshape(1, 1, 3, 3) / 16
down = cm.Conv(weight, (1, size, size), stride=2, padding=1)
result = down.transpose_vs_inverse(x=image[None])
print(repr(result))

# %%
# Checked with PyTorch: ``conv_transpose2d(conv2d(x))`` is ``CᵀC x``, and NumPy's
# ``lstsq`` (an SVD) on the matrix recovered from torch gives the same minimum-norm solution.

x = torch.from_numpy(image).reshape(1, 1, size, size)
w = torch.from_numpy(weight)
there_and_back = F.conv_transpose2d(F.conv2d(x, w, stride=2, padding=1), w, stride=2,
                                    padding=1, output_padding=1)
assert np.allclose(there_and_back.numpy().ravel(), result.gram_x)
C_down = torch_matrix_of(lambda v: F.conv2d(v, w, stride=2, padding=1), (1, size, size))
least_squares = np.linalg.lstsq(C_down, C_down @ image.ravel(), rcond=None)[0]
assert np.allclose(least_squares, result.lsqr_x, atol=1e-6)
assert result.rank == np.linalg.matrix_rank(C_down) == 64 and result.lost_dimensions == 192

panels = [(image, "x"), (down(image[None])[0], "C x (8×8)"),
          (result.gram_x.reshape(size, size), "Cᵀ C x: the transpose"),
          (result.lsqr_x.reshape(size, size), "C⁺ C x: least squares"),
          (image - result.lsqr_x.reshape(size, size), "x − C⁺ C x: invisible to C")]
fig, axes = plt.subplots(1, 5, figsize=(13, 3), layout="constrained")
for ax, (picture, title) in zip(axes, panels, strict=True):
    ax.imshow(picture, cmap="gray")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %%
# When the transpose *is* the inverse
# -----------------------------------
# ``Cᵀ = C⁻¹`` exactly when ``C`` is orthogonal. One convolution that is: the 2-D Haar
# wavelet, a 2×2 stride-2 convolution to four channels (average, horizontal, vertical and
# diagonal detail). It tiles the input without overlap and its four kernels are orthonormal,
# so ``CᵀC = I`` and the transposed convolution reconstructs every input.

haar = np.array([[[1, 1], [1, 1]], [[1, -1], [1, -1]], [[1, 1], [-1, -1]], [[1, -1], [-1, 1]]],
                dtype=float).reshape(4, 1, 2, 2) / 2
wavelet = cm.Conv(haar, (1, 8, 8), stride=2)
print(repr(wavelet.transpose_vs_inverse()))
H = wavelet.matrix()
assert abs(H.T @ H - np.eye(64)).max() < 1e-12

# %%
# PyTorch agrees: ``conv_transpose2d(conv2d(x))`` returns ``x``, for the seeded random
# image here.

x = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 1, 8, 8)))
w = torch.from_numpy(haar)
assert torch.allclose(F.conv_transpose2d(F.conv2d(x, w, stride=2), w, stride=2), x)

# %%
# The singular values tell the three stories at a glance: the seed's convolution has four
# non-zero singular values for nine inputs (five zeros, not drawn), the blur at stride 2 has
# 64 for 256 inputs, decaying; the Haar wavelet's are all exactly 1.

fig, ax = plt.subplots(figsize=(6.5, 3.4), layout="constrained")
for layer, name in [(conv, "seed Conv2D (4×9)"), (down, "blur, stride 2 (64×256)"),
                    (wavelet, "Haar wavelet (64×64)")]:
    values = cm.singular_values(layer)
    ax.plot(np.arange(1, values.size + 1), values, marker="o", markersize=3, label=name)
ax.set_xlabel("index")
ax.set_ylabel("singular value of C")
ax.set_xscale("log")
ax.legend()
plt.show()

# %%
# The built-in report :doc:`/reports/transpose-is-not-inverse` gives ``CᵀC`` in the weight
# symbols and more layers.
