"""
A whole network as one matrix, and a ReLU network linearised at a point
=======================================================================

Real networks are graphs, not chains: residual additions, U-Net skip concatenations. As long as
every operation is affine (convolutions, transposed convolutions, batch norm in eval mode, sums,
concatenations), the whole network is still one exact affine map ``M x + b``. :func:`cm.from_torch
<convmatrix.from_torch>` traces a torch module with ``torch.fx`` into a :class:`cm.Graph
<convmatrix.Graph>` that builds ``M`` node by node.

A network with ReLUs or max pooling is not linear — but at a point ``x`` it is:
``cm.linearize(model, x)`` is a layer whose matrix is the exact Jacobian ``J`` at ``x`` and
whose offset is ``f(x) − J x``. For piecewise-linear networks that affine map *is* the
network on the whole linear region around ``x``.

Every claim is checked against PyTorch, run live.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

import convmatrix as cm

torch.manual_seed(0)

# %%
# A tiny U-Net with a residual block
# ----------------------------------
# Down by a stride-2 convolution, a residual block at the bottom, up by a k4/s2 transposed
# convolution, then the skip connection concatenates the input and a last convolution mixes
# both.


class TinyUNet(nn.Module):
    """1×8×8 → 1×8×8: down, residual block, up, skip concatenation, output convolution."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.mid = nn.Conv2d(4, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1)
        self.out = nn.Conv2d(5, 1, 3, padding=1)

    def forward(self, x):
        """The graph: two branches meet at the sum, two at the concatenation."""
        d = self.down(x)
        u = self.up(self.mid(d) + d)
        return self.out(torch.cat([u, x], dim=1))


net = TinyUNet().double().eval()
graph = cm.from_torch(net, (1, 8, 8))
print(graph.explain())

# %%
# The graph's matrix and offset, checked against the network itself: ``M`` recovered by
# sending every unit vector through torch (one batch) minus ``f(0)``, and ``b = f(0)``.

M = graph.matrix()
with torch.no_grad():
    zero = net(torch.zeros(1, 1, 8, 8, dtype=torch.float64)).reshape(-1).numpy()
    columns = net(torch.eye(64, dtype=torch.float64).reshape(64, 1, 8, 8)).reshape(64, 64)
torch_M = columns.numpy().T - zero[:, None]
assert np.allclose(M.toarray(), torch_M, atol=1e-12)
assert np.allclose(graph.offset(), zero, atol=1e-12)
print(f"M: {M.shape}, {M.nnz} nonzeros; offset = f(0), max |b| = {abs(zero).max():.3f}")

# %%
# A row of ``M`` is what one output pixel sees (its receptive field through all three paths);
# a column is how one input pixel spreads. The skip connection ``x → cat → out`` adds a sharp
# 3×3 footprint on top of the blurrier path through the bottleneck.

fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), layout="constrained")
dense = M.toarray()
limit = abs(dense).max()
axes[0].imshow(dense, cmap="RdBu_r", vmin=-limit, vmax=limit)
axes[0].set_title(f"M: {M.shape[0]}×{M.shape[1]}, {M.nnz} nonzeros", fontsize=10)
axes[0].set_xlabel("input pixel")
axes[0].set_ylabel("output pixel")
for ax, vector, title in [(axes[1], dense[3 * 8 + 3], "row of output pixel (3, 3)"),
                          (axes[2], dense[:, 3 * 8 + 3], "column of input pixel (3, 3)")]:
    picture = vector.reshape(8, 8)
    bound = abs(picture).max()
    image = ax.imshow(picture, cmap="RdBu_r", vmin=-bound, vmax=bound)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8)
plt.show()

# %%
# The graph's Lipschitz constant: the exact ``‖M‖₂`` beside the layers' norms combined along
# the three paths (products along a path, sums where paths meet) — the bound such a
# combination gives is loose.

bounds = cm.lipschitz(graph)
print(bounds)
assert abs(bounds.exact - np.linalg.norm(torch_M, 2)) <= 1e-6 * bounds.exact
assert bounds.exact <= bounds.product_of_norms

# %%
# A ReLU classifier at a point
# ----------------------------
# Conv → ReLU → max pool → conv → ReLU → linear, on a 12×12 image (a ring, plus noise).

classifier = nn.Sequential(
    nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 3),
).double().eval()
rows, cols = np.mgrid[0:12, 0:12]
radius = np.hypot(rows - 5.5, cols - 5.5)
ring = ((radius > 2.5) & (radius < 5)).astype(float)
x = torch.from_numpy(ring + 0.1 * np.random.default_rng(0).standard_normal((12, 12)))
x = x.reshape(1, 1, 12, 12)

J = cm.linearize(classifier, x)
print(J.explain())

# %%
# ``J.matrix()`` is the exact Jacobian: ``torch.func.jacrev`` (PyTorch's own autodiff) agrees,
# and ``J x + offset`` is the network's output.

jacobian = torch.func.jacrev(classifier)(x).reshape(3, 144).detach().numpy()
logits = classifier(x).detach().numpy().ravel()
assert np.allclose(J.matrix().toarray(), jacobian, rtol=1e-10, atol=1e-12)
assert np.allclose(J.matrix() @ x.numpy().ravel() + J.offset(), logits, rtol=1e-12)

# %%
# Piecewise linear means more than first-order close: a small step ``h`` that keeps the
# activation pattern gives ``f(x + h) = J (x + h) + offset`` to rounding.

h = 1e-6 * torch.from_numpy(np.random.default_rng(1).standard_normal((1, 1, 12, 12)))
moved = classifier(x + h).detach().numpy().ravel()
assert np.allclose(J.matrix() @ (x + h).numpy().ravel() + J.offset(), moved, rtol=1e-12,
                   atol=1e-14)

# %%
# The activation pattern the point switched on (the first ReLU, from torch directly, agrees
# with ``J.sites``), and the saliency map: the row of ``J`` for the winning class — how each
# input pixel moves that logit.

with torch.no_grad():
    on = (classifier[0](x) > 0)[0].numpy()
assert on.sum() == J.sites[0].on
channel = int(np.argmin(abs(on.sum(axis=(1, 2)) - 72)))  # the most mixed pattern
winner = int(np.argmax(logits))
saliency = J.matrix().toarray()[winner].reshape(12, 12)

fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), layout="constrained")
axes[0].imshow(x[0, 0].numpy(), cmap="gray")
axes[0].set_title("the point x", fontsize=10)
axes[1].imshow(on[channel], cmap="gray", vmin=0, vmax=1)
axes[1].set_title(f"first ReLU, channel {channel}: {on[channel].sum()} of 144 on (white)",
                  fontsize=10)
bound = abs(saliency).max()
image = axes[2].imshow(saliency, cmap="RdBu_r", vmin=-bound, vmax=bound)
axes[2].set_title(f"row {winner} of J (class {winner}'s saliency)", fontsize=10)
fig.colorbar(image, ax=axes[2], shrink=0.8)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %%
# Lipschitz at a point
# --------------------
# :func:`cm.lipschitz_summary <convmatrix.lipschitz_summary>` brackets the network's Lipschitz
# constant: the product of the layers' norms (times 1 for ReLU and this max pool) bounds it from
# above; the exact norm of the Jacobian at ``x`` bounds it from below.

summary = cm.lipschitz_summary(classifier, x)
print(summary)
assert abs(summary.local - np.linalg.norm(jacobian, 2)) <= 1e-9 * summary.local
assert summary.local <= summary.upper_bound

# %%
# The built-in reports :doc:`/reports/a-residual-block-as-one-matrix` and
# :doc:`/reports/relu-network-at-a-point` tell both stories at a larger size.
