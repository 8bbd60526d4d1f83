"""
The seed example: why ``[[1, 2, 1], [2, 4, 2], [1, 2, 1]]``
===========================================================

The example this project started from (Keras): a ``Conv2D(1, 2)`` with an all-ones 2×2 kernel
maps a 3×3 all-ones input to ``[[4, 4], [4, 4]]``, and a ``Conv2DTranspose(1, 2)`` with the same
kernel maps a 2×2 all-ones input to ``[[1, 2, 1], [2, 4, 2], [1, 2, 1]]``. Why those numbers?

A convolution is a linear map, so it *is* a matrix ``C``; the transposed convolution is ``Cᵀ``.
Every number below is computed by convmatrix and checked against PyTorch run live.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import convmatrix as cm
from convmatrix import symbolic as sym

# sphinx_gallery_thumbnail_number = 2

# %%
# The convolution as a matrix
# ---------------------------
# A layer object takes the weight in torch's layout ``(C_out, C_in, kh, kw)`` and one sample's
# shape ``(C_in, H, W)``. Integer weights give an exact integer matrix.

conv = cm.Conv(np.ones((1, 1, 2, 2), dtype=int), (1, 3, 3))
C = conv.matrix()  # a scipy.sparse array, 4 outputs × 9 inputs
print(conv)
print(C.toarray())

y = (C @ np.ones(9, dtype=int)).reshape(2, 2)
print(y)

# %%
# Each row of ``C`` is one output pixel: it sums the four input pixels under the kernel, so on
# an all-ones input every output is 4.
#
# The transposed convolution is ``Cᵀ``
# ------------------------------------
# ``conv.T`` is the adjoint layer; its matrix is ``Cᵀ`` (9 outputs × 4 inputs).

up = conv.T
print(up)
z = (C.T @ np.ones(4, dtype=int)).reshape(3, 3)
print(z)

# %%
# Each row of ``Cᵀ`` is one output pixel of the transposed layer: it sums the kernel taps that
# *land* there — one at a corner, two on an edge, four in the middle.
#
# Checked against PyTorch, run live (``conv_transpose2d`` is PyTorch's transposed convolution,
# computed by its own kernels, not by convmatrix):

ones_3x3 = torch.ones(1, 1, 3, 3, dtype=torch.float64)
ones_2x2 = torch.ones(1, 1, 2, 2, dtype=torch.float64)
kernel = torch.ones(1, 1, 2, 2, dtype=torch.float64)
torch_y = F.conv2d(ones_3x3, kernel)[0, 0].numpy()
torch_z = F.conv_transpose2d(ones_2x2, kernel)[0, 0].numpy()
assert np.array_equal(torch_y, y) and np.array_equal(y, [[4, 4], [4, 4]])
assert np.array_equal(torch_z, z) and np.array_equal(z, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
print("torch agrees:", torch_y.tolist(), torch_z.tolist())

# %%
# The two matrices, side by side
# ------------------------------
# Blank cells are structural zeros: the sparsity picture *is* the convolution's connectivity.
# ``C`` has the kernel's rows as diagonal bands; ``Cᵀ`` is the same picture mirrored.


def show_matrix(ax, matrix, title, xlabel, ylabel):
    """Draw a small sparse matrix: stored entries shaded and labelled, zeros blank."""
    dense = matrix.toarray().astype(float)
    ax.imshow(np.where(dense != 0, 1.0, np.nan), cmap="Blues", vmin=0, vmax=1.6)
    for (i, j), value in np.ndenumerate(dense):
        if value:
            ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=9)
    ax.set_xticks(range(dense.shape[1]))
    ax.set_yticks(range(dense.shape[0]))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


fig, (left, right) = plt.subplots(1, 2, figsize=(8.5, 4.2), width_ratios=[9, 4],
                                  layout="constrained")
show_matrix(left, C, "C (Conv2D): 4×9", "input pixel (3×3, row-major)",
            "output pixel (2×2)")
show_matrix(right, C.T, "Cᵀ (Conv2DTranspose): 9×4", "input pixel (2×2)",
            "output pixel (3×3)")
plt.show()

# %%
# Where the 1-2-1 / 2-4-2 pattern comes from
# ------------------------------------------
# Read ``Cᵀ`` by columns: column ``i`` is the 2×2 kernel stamped at input pixel ``i``. The
# transposed convolution of an all-ones input adds the four stamps; where they overlap, the
# counts add up.

stamps = [C.T[:, [i]].toarray().reshape(3, 3) for i in range(4)]
assert np.array_equal(sum(stamps), z)

fig, axes = plt.subplots(1, 5, figsize=(11, 2.6), layout="constrained")
for index, (ax, stamp) in enumerate(zip(axes, [*stamps, z], strict=True)):
    ax.imshow(stamp, cmap="magma", vmin=0, vmax=4)
    for (i, j), value in np.ndenumerate(stamp):
        ax.text(j, i, str(value), ha="center", va="center",
                color="black" if value > 2 else "white")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"column {index} of Cᵀ" if index < 4 else "sum = Cᵀ·1")
plt.show()

# %%
# The derivation in symbols
# -------------------------
# :mod:`convmatrix.symbolic` derives the same matrices and outputs in weight symbols with SymPy,
# from the same index arithmetic. ``C`` in the weight symbols ``w_{ky,kx}``:

C_sym = sym.symbolic_conv_matrix((1, 1, 2, 2), (1, 3, 3))
print(C_sym)

# %%
# Every output of the transposed convolution as a sum of ``w·x`` products: the centre collects
# all four taps, a corner only one, an edge two.

y_sym = sym.conv_transpose_outputs((1, 1, 2, 2), (1, 2, 2))
for position in [(0, 0, 0), (0, 0, 1), (0, 1, 1)]:
    print(position, "=", y_sym[position])

# %%
# Substituting 1 for every symbol gives the seed's numbers back, and the closed-form overlap law
# (:func:`sym.checkerboard_law <convmatrix.symbolic.checkerboard_law>`) counts the same thing per
# axis — 1, 2, 1 along each axis, multiplied into the 2-D map:

ones = {symbol: 1 for symbol in y_sym.free_symbols}
from_symbols = np.array(y_sym.subs(ones).tolist(), dtype=int)[0]
law = sym.checkerboard_law((1, 1, 2, 2), (1, 2, 2))
print(from_symbols)
print(law.counts())
print(repr(law))
assert np.array_equal(from_symbols, torch_z) and np.array_equal(law.counts(), torch_z)

# %%
# The symbolic matrix with all weights 1 is the numeric ``C``, entry by entry:

assert np.array_equal(np.array(C_sym.subs({s: 1 for s in C_sym.free_symbols}), dtype=int),
                      C.toarray())

# %%
# :meth:`conv.explain() <convmatrix.Layer.explain>` prints the whole derivation (shapes, ``C``,
# every output, the overlap law and why the transpose is not the inverse); the built-in report
# :doc:`/reports/seed` (``convmatrix report --out seed-report``) is the same story in Markdown
# with figures.
print(conv.explain())
