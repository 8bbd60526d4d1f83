"""
A black-box convolution diagnosed
=================================

You ported a convolution, wrote a custom kernel or hand-rolled a transposed convolution, and
its outputs disagree with the reference. ``numpy.testing`` says *that* they differ
("Mismatched elements: 25 / 25"); :mod:`convmatrix.testing` says *why*. ``probe_matrix`` recovers
the exact matrix your function computes (by graph-coloured probing, a handful of calls), and
``assert_conv_equal`` diffs it against a layer object and searches nearby geometries —
padding, stride, dilation, groups, a flipped kernel, swapped axes — for the one your code
really implements.

Three deliberately buggy implementations below; each diagnosis is then confirmed by fixing
the bug and checking the fix against PyTorch run live.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import convmatrix as cm
from convmatrix.testing import assert_conv_equal, probe, probe_matrix

rng = np.random.default_rng(0)


# sphinx_gallery_thumbnail_number = 2

# %%
# Bug 1: a TensorFlow "same" convolution ported to PyTorch
# --------------------------------------------------------
# TensorFlow's ``Conv2D(strides=2, padding="same")`` on a 6×6 input pads 0 rows before and 1
# after (the odd pixel goes after, and here the total is odd). A port that writes
# ``F.conv2d(..., stride=2, padding=1)`` pads one on both sides: same output shape, different
# numbers.

w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
tf_same = cm.Conv(w, (1, 6, 6), stride=2, padding=((0, 1), (0, 1)))  # what TF computes


def ported(x):
    """The port: torch's symmetric padding where TensorFlow pads only after."""
    return F.conv2d(torch.from_numpy(x)[None], torch.from_numpy(w), stride=2, padding=1)[0]


try:
    assert_conv_equal(ported, tf_same)
except AssertionError as err:
    print(err)
    port_error = err

# %%
# The diagnosis names the parameter and both values, and ``err.match`` is the layer the port
# computes exactly. Confirmed independently: padding explicitly as TensorFlow does makes the
# port pass, and the diagnosed layer equals torch's ``padding=1`` convolution.

assert port_error.differences == {"padding": (((0, 1), (0, 1)), ((1, 1), (1, 1)))}


def fixed_port(x):
    """The fix: pad (left 0, right 1, top 0, bottom 1), then a valid stride-2 convolution."""
    padded = F.pad(torch.from_numpy(x)[None], (0, 1, 0, 1))
    return F.conv2d(padded, torch.from_numpy(w), stride=2)[0]


assert_conv_equal(fixed_port, tf_same)  # passes: no exception
x = rng.standard_normal((1, 6, 6))
assert np.allclose(port_error.match(x), ported(x).numpy())

# %%
# Which outputs are wrong? Every output whose window touches the top or left border: the
# port's windows are shifted by one pixel.

wrong = np.abs(ported(x).numpy() - tf_same(x))[0]
fig, ax = plt.subplots(figsize=(3.6, 3.2), layout="constrained")
image = ax.imshow(wrong, cmap="Reds")
fig.colorbar(image, ax=ax, label="|port − TF| on a random input")
ax.set_title("bug 1: wrong outputs (3×3)", fontsize=10)
plt.show()

# %%
# Bug 2: a hand-rolled transposed convolution
# -------------------------------------------
# The textbook recipe (Dumoulin & Visin, *A guide to convolution arithmetic*): insert
# ``stride − 1`` zeros between input pixels, pad by ``k − 1 − padding``, and correlate with the
# kernel **flipped**. This implementation forgets the flip.


def my_conv_transpose(x, kernel, stride, padding):
    """Transposed convolution of one channel ``(1, H, W)`` by zero insertion (buggy)."""
    k = kernel.shape[-1]
    _, height, width = x.shape
    spread = np.zeros(((height - 1) * stride + 1, (width - 1) * stride + 1))
    spread[::stride, ::stride] = x[0]
    spread = np.pad(spread, k - 1 - padding)
    windows = np.lib.stride_tricks.sliding_window_view(spread, (k, k))
    return np.einsum("ijab,ab->ij", windows, kernel)[None]  # BUG: kernel[::-1, ::-1]


kernel = np.arange(1.0, 10.0).reshape(3, 3)
up = cm.ConvTranspose(kernel.reshape(1, 1, 3, 3), (1, 4, 4), stride=2, padding=1)
print(up)
try:
    assert_conv_equal(lambda x: my_conv_transpose(x, kernel, 2, 1), up)
except AssertionError as err:
    print(err)
    flip_error = err
assert flip_error.differences == {"kernel_flip": (False, True)}

# %%
# The matrix the function computes, recovered by probing: with the layer as a hint, input
# pixels that share no output are probed together, so 16 input pixels cost a few samples.

result = probe(lambda x: my_conv_transpose(x, kernel, 2, 1), (1, 4, 4), layer=up)
print(f"{result.samples} samples ({result.method}) recovered the {result.matrix.shape} matrix")

# %%
# An independent check of the probe: one call per unit vector.

unit_vectors = np.eye(16).reshape(16, 1, 4, 4)
by_columns = np.stack([my_conv_transpose(e, kernel, 2, 1).ravel() for e in unit_vectors], 1)
assert np.allclose(result.matrix.toarray(), by_columns)

# %%
# Side by side: column 5 of each matrix (input pixel ``(1, 1)``) is the kernel stamped where
# that pixel lands in the 7×7 output. The layer's stamp reads 1…9 in order; the function's is
# rotated by 180°.


def show_stamp(ax, matrix, title):
    """Column 5 of a 49×16 matrix as a 7×7 image, its entries written in."""
    stamp = matrix[:, [5]].toarray().reshape(7, 7)
    ax.imshow(np.where(stamp != 0, stamp, np.nan), cmap="viridis", vmin=1, vmax=9)
    for (i, j), value in np.ndenumerate(stamp):
        if value:
            ax.text(j, i, f"{value:g}", ha="center", va="center", color="white")
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(7))
    ax.set_yticks(range(7))


fig, axes = plt.subplots(1, 2, figsize=(7, 4), layout="constrained")
show_stamp(axes[0], up.matrix(), "the layer (torch semantics)")
show_stamp(axes[1], result.matrix, "my_conv_transpose, probed")
plt.show()

# %%
# With the flip restored, the function passes, and matches PyTorch's ``conv_transpose2d``:


def fixed_conv_transpose(x, kernel, stride, padding):
    """The same recipe, kernel flipped."""
    return my_conv_transpose(x, kernel[::-1, ::-1], stride, padding)


assert_conv_equal(lambda x: fixed_conv_transpose(x, kernel, 2, 1), up)
x = rng.standard_normal((1, 4, 4))
live = F.conv_transpose2d(torch.from_numpy(x)[None], torch.from_numpy(kernel)[None, None],
                          stride=2, padding=1)[0].numpy()
assert np.allclose(fixed_conv_transpose(x, kernel, 2, 1), live)

# %%
# Bug 3: a ReLU that slipped in
# -----------------------------
# A fused "conv + activation" kernel used where a plain convolution was expected is not
# linear at all. Probing refuses to return a matrix for it, and the assertion names the
# non-linearity.

conv = cm.Conv(w, (1, 6, 6), padding=1)


def fused(x):
    """conv2d followed by a ReLU."""
    return F.relu(F.conv2d(torch.from_numpy(x)[None], torch.from_numpy(w), padding=1))[0]


try:
    assert_conv_equal(fused, conv)
except AssertionError as err:
    print(err)
    assert "nonlinear" in err.differences

try:
    probe_matrix(fused, (1, 6, 6), layer=conv)
except cm.ConvMatrixError as err:
    print("probe_matrix:", err)

# %%
# In a test suite, ``assert_conv_equal(my_fn, layer)`` is the whole test; the guide
# :doc:`/guides/testing` lists everything the search covers.
