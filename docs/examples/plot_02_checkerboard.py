"""
Checkerboard artifacts of stride-2 transposed convolutions, and two fixes
=========================================================================

Image generators that upsample with stride-2 transposed convolutions often paint a faint
checkerboard over their outputs (Odena, Dumoulin & Olah, *Deconvolution and Checkerboard
Artifacts*, Distill 2016). The matrix ``Cᵀ`` shows why: count how many kernel taps land on each
output pixel. With a 3×3 kernel at stride 2 some pixels receive 1 tap, others 2 or 4; with a
4×4 kernel every interior pixel receives 4.

Below, the counts are computed by convmatrix (:meth:`layer.overlap_counts()
<convmatrix.Layer.overlap_counts>`, :meth:`layer.checkerboard() <convmatrix.Layer.checkerboard>`,
the closed-form law of :mod:`convmatrix.symbolic`) and checked against PyTorch run live: with every
weight 1, the transposed convolution of an all-ones image *is* the count. Then two fixes:
resize-convolution and ICNR-initialised sub-pixel convolution.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import convmatrix as cm
from convmatrix import symbolic as sym


def ones(*shape):
    """An all-ones float64 torch tensor."""
    return torch.ones(*shape, dtype=torch.float64)


def draw_counts(ax, counts, title):
    """A heat map of an overlap map (one channel), its values written in when small."""
    image = ax.imshow(counts, cmap="magma", vmin=0)
    if counts.size <= 144:
        top = counts.max()
        for (i, j), value in np.ndenumerate(counts):
            ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=7,
                    color="black" if value > 0.6 * top else "white")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return image



# sphinx_gallery_thumbnail_number = 2

# %%
# One layer: kernel 3 vs kernel 4 at stride 2
# -------------------------------------------
# Both upsample a 6×6 input to 12×12 (``padding=1``; the k=3 layer needs ``output_padding=1``
# to reach 12). Integer all-ones weights make every entry of ``Cᵀ`` a 1, so a row's entries
# count the taps landing on that output pixel.

k3 = cm.ConvTranspose(np.ones((1, 1, 3, 3), dtype=int), (1, 6, 6), stride=2, padding=1,
                      output_padding=1)
k4 = cm.ConvTranspose(np.ones((1, 1, 4, 4), dtype=int), (1, 6, 6), stride=2, padding=1)
counts3, counts4 = k3.overlap_counts()[0], k4.overlap_counts()[0]
print(repr(k3.checkerboard()))
print(repr(k4.checkerboard()))

# %%
# PyTorch, run live, on an all-ones image with all-ones kernels gives the same maps:

torch3 = F.conv_transpose2d(ones(1, 1, 6, 6), ones(1, 1, 3, 3), stride=2, padding=1,
                            output_padding=1)[0, 0].numpy()
torch4 = F.conv_transpose2d(ones(1, 1, 6, 6), ones(1, 1, 4, 4), stride=2, padding=1)[0, 0]
assert np.array_equal(torch3, counts3) and np.array_equal(torch4.numpy(), counts4)

fig, axes = plt.subplots(1, 2, figsize=(8, 4), layout="constrained")
draw_counts(axes[0], counts3, "k=3, s=2: interior 1, 2, 4 (checkerboard)")
image = draw_counts(axes[1], counts4, "k=4, s=2: interior 4 (even)")
fig.colorbar(image, ax=axes, shrink=0.8, label="taps landing on the output pixel")
plt.show()

# %%
# The law behind it
# -----------------
# Along one axis, an interior output pixel ``j`` receives the taps ``t`` with
# ``t ≡ (j + p) mod s``: ``⌊(k − 1 − r)/s⌋ + 1`` of them, ``r = (j + p) mod s``. That takes the
# two values ``⌈k/s⌉`` and ``⌊k/s⌋`` — one value exactly when ``s`` divides ``k``. In 2-D the
# per-axis counts multiply (1·1, 1·2, 2·2). SymPy's closed form:

print(sym.interior_overlap_formula())
print(sym.checkerboard_law(k3))

# %%
# Which kernel sizes are safe at stride 2? Exactly the even ones:

for size in range(2, 8):
    law = sym.checkerboard_law((1, 1, size, size), (1, 8, 8), stride=2)
    print(f"k={size}: {law!r}")
    assert law.even == (size % 2 == 0)

# %%
# Through a generator: the imbalance compounds
# --------------------------------------------
# Two k3/s2 layers (6×6 → 24×24): the counts multiply along the paths, giving the interior
# values 1, 2, 3, 4, 6, 9 — a 9× imbalance with period 4×4. Two k4/s2 layers stay even.


def k_s2_stack(kernel, padding, output_padding):
    """Two stride-2 transposed convolutions with all-ones weights, 6×6 → 24×24."""
    first = cm.ConvTranspose(np.ones((1, 1, kernel, kernel), dtype=int), (1, 6, 6), stride=2,
                             padding=padding, output_padding=output_padding)
    second = cm.ConvTranspose(np.ones((1, 1, kernel, kernel), dtype=int), first.output_shape,
                              stride=2, padding=padding, output_padding=output_padding)
    return cm.Sequential([first, second])


gen3, gen4 = k_s2_stack(3, 1, 1), k_s2_stack(4, 1, 0)
board3, board4 = gen3.checkerboard(), gen4.checkerboard()
print(repr(board3))
print(repr(board4))
assert board3.interior_values == (1, 2, 3, 4, 6, 9) and board4.even

x = ones(1, 1, 6, 6)
for _ in range(2):
    x = F.conv_transpose2d(x, ones(1, 1, 3, 3), stride=2, padding=1, output_padding=1)
assert np.array_equal(x[0].numpy(), gen3.overlap_counts())

# %%
# Fix 1: resize-convolution
# -------------------------
# Odena et al.'s fix: upsample by nearest-neighbour interpolation, then apply a stride-1
# convolution. Every output pixel is then read through the same number of paths.

resize = []
shape = (1, 6, 6)
for _ in range(2):
    upsample = cm.Upsample(shape, scale_factor=2, mode="nearest")
    conv = cm.Conv(np.ones((1, 1, 3, 3), dtype=int), upsample.output_shape, padding=1)
    resize += [upsample, conv]
    shape = conv.output_shape
resize_conv = cm.Sequential(resize)
board_resize = resize_conv.checkerboard()
print(repr(board_resize))

x = ones(1, 1, 6, 6)
for _ in range(2):
    x = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), ones(1, 1, 3, 3), padding=1)
assert np.array_equal(x[0].numpy(), resize_conv.overlap_counts()) and board_resize.even

# %%
# Fix 2: sub-pixel convolution with ICNR initialisation
# ------------------------------------------------------
# Sub-pixel convolution (Shi et al. 2016) convolves to ``r² = 4`` channels and interleaves them
# with a pixel shuffle. Its *path structure* is even, but what a flat image turns into depends
# on the weights: with four independent random kernels the four sub-pixel positions get four
# different sums — a checkerboard again. ICNR initialisation (Aitken et al. 2017) makes the four
# kernels copies of one, so at initialisation the layer is exactly resize-convolution.
# ``checkerboard(weights="actual")`` judges the layer's own weights on a constant input.

rng = np.random.default_rng(0)


def sub_pixel(icnr):
    """Two rounds of conv (1 → 4 channels, 3×3) → pixel shuffle ×2, 6×6 → 24×24."""
    layers, weights, shape = [], [], (1, 6, 6)
    for _ in range(2):
        if icnr:  # one random kernel, copied to the r² = 4 sub-pixel channels
            weight = np.repeat(rng.uniform(0, 1, (1, 1, 3, 3)), 4, axis=0)
        else:
            weight = rng.uniform(0, 1, (4, 1, 3, 3))
        conv = cm.Conv(weight, shape, padding=1)
        shuffle = cm.PixelShuffle(conv.output_shape, 2)
        layers += [conv, shuffle]
        weights.append(weight)
        shape = shuffle.output_shape
    return cm.Sequential(layers), weights


icnr, icnr_weights = sub_pixel(icnr=True)
random_init, random_weights = sub_pixel(icnr=False)
board_icnr = icnr.checkerboard(weights="actual")
board_random = random_init.checkerboard(weights="actual")
print(repr(board_icnr))
print(repr(board_random))
assert board_icnr.even and not board_random.even

# %%
# PyTorch agrees on both responses (``F.conv2d`` then ``F.pixel_shuffle``, run live):

for weights, board in [(icnr_weights, board_icnr), (random_weights, board_random)]:
    x = ones(1, 1, 6, 6)
    for weight in weights:
        x = F.pixel_shuffle(F.conv2d(x, torch.from_numpy(weight), padding=1), 2)
    assert np.allclose(x[0].numpy(), board.counts, rtol=1e-12, atol=0)

# %%
# Four generators side by side
# ----------------------------
# Weight paths per output pixel (all-ones weights) for the first three; the response of the
# layer's own weights to a flat image for the two sub-pixel ones. Only the border rows differ
# in the even ones.

panels = [(board3, "two k3/s2 transposed"), (board4, "two k4/s2 transposed"),
          (board_resize, "resize-convolution"), (board_icnr, "sub-pixel, ICNR init"),
          (board_random, "sub-pixel, random init")]
fig, axes = plt.subplots(1, 5, figsize=(14, 3.0), layout="constrained")
for ax, (board, name) in zip(axes, panels, strict=True):
    image = draw_counts(ax, board.counts[0], f"{name}\n{board.verdict}, "
                                             f"ratio {board.ratio:.3g}")
    fig.colorbar(image, ax=ax, shrink=0.7)
plt.show()

# %%
# The same comparison, with the per-axis laws derived in SymPy, is the built-in report
# :doc:`/reports/checkerboard-in-a-generator`; the single layers are compared in
# :doc:`/reports/overlap-k3-vs-k4-stride2`.
