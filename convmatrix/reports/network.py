"""The built-in report "a ReLU network at a point": a small conv classifier's exact Jacobian.

Needs torch (the network is a torch model); every weight and the input are seeded numpy
numbers, so the report is the same on every run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convmatrix.adapters.jacobian import linearize, lipschitz_summary
from convmatrix.reports.document import Report
from convmatrix.reports.stack import verification_section

__all__ = ["relu_network_report"]

_SEED = 17


def _classifier() -> Any:
    """A small conv classifier (1×12×12 → 3 classes) with seeded weights, in eval mode."""
    import torch
    from torch import nn

    rng = np.random.default_rng(_SEED)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(72, 3)).double().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            fan_in = max(1, int(np.prod(parameter.shape[1:]))) if parameter.dim() > 1 else 4
            values = rng.standard_normal(tuple(parameter.shape)) * np.sqrt(2.0 / fan_in)
            parameter.copy_(torch.from_numpy(values))
    return model


def _residual_block() -> Any:
    """A ResNet BasicBlock (4 channels, BN in eval with seeded statistics) as torchvision's."""
    import torch
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(4)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(4)

        def forward(self, x: Any) -> Any:
            identity = x
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out += identity
            return self.relu(out)

    rng = np.random.default_rng(_SEED + 1)
    block = BasicBlock().double().eval()
    with torch.no_grad():
        for conv in (block.conv1, block.conv2):
            conv.weight.copy_(torch.from_numpy(rng.standard_normal((4, 4, 3, 3)) / 6.0))
        for bn in (block.bn1, block.bn2):
            bn.running_mean.copy_(torch.from_numpy(rng.standard_normal(4) * 0.1))  # type: ignore[union-attr]
            bn.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, 4)))  # type: ignore[union-attr]
            bn.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, 4)))
            bn.bias.copy_(torch.from_numpy(rng.standard_normal(4) * 0.1))
    return block


def _grid(values: np.ndarray) -> list[str]:
    """A 2-D array as a Markdown table of 3-decimal numbers (rows and columns numbered)."""
    rows, cols = values.shape
    lines = ["| | " + " | ".join(str(c) for c in range(cols)) + " |",
             "|---" * (cols + 1) + "|"]
    for r in range(rows):
        cells = " | ".join(f"{v:+.3f}" if v != 0 else "0" for v in values[r])
        lines.append(f"| **{r}** | {cells} |")
    return lines


def _verification(model: Any, x: Any, lin: Any, block: Any, bx: Any, block_lin: Any
                  ) -> list[str]:
    """Every convolution against the dense reference, and each Jacobian against torch's."""
    import torch

    layers = [f.layer for f in (*lin.factors, *block_lin.factors) if f.layer is not None]
    lines = verification_section(layers)
    passed = "**All checks passed.**" in lines
    lines = lines[:-3]  # the verdict is given below, after the Jacobians' checks
    rng = np.random.default_rng(_SEED + 5)
    for name, net, point, tangent in (("classifier", model, x, lin),
                                      ("ResNet block", block, bx, block_lin)):
        jac = torch.func.jacrev(net)(point.clone()).detach().reshape(tangent.matrix_shape)
        want = jac.numpy()
        scale = max(1.0, float(np.abs(want).max()))
        same = float(np.abs(tangent.matrix().toarray() - want).max()) <= 1e-12 * scale
        u = rng.standard_normal(tangent.matrix_shape[1])
        v = rng.standard_normal(tangent.matrix_shape[0])
        op = tangent.operator()
        left, right = float(op.matvec(u) @ v), float(u @ op.rmatvec(v))
        dot = abs(left - right) <= 1e-12 * max(1.0, abs(left))
        meets = tangent.residual() <= 1e-12
        for check, ok in ((f"the {name}'s Jacobian = `torch.func.jacrev` (1e-12)", same),
                          (f"the {name}'s J x + offset = f(x) (relative 1e-12)", meets),
                          (f"the {name}'s operator: adjoint (dot) test", dot)):
            lines.append(f"| {check} | 1 | {'pass' if ok else 'FAIL'} |")
            passed = passed and ok
    return [*lines, "", f"**{'All checks passed.' if passed else 'A CHECK FAILED.'}**", ""]


def relu_network_report(figures: bool = True) -> Report:
    """``reports/relu-network-at-a-point.md``: Jacobian, activation pattern, Lipschitz numbers."""
    del figures  # text only
    import torch

    model = _classifier()
    x = torch.from_numpy(np.random.default_rng(_SEED + 2).standard_normal((1, 1, 12, 12)))
    lin = linearize(model, x)
    with torch.no_grad():
        logits = model(x)[0].numpy()
    winner = int(np.argmax(logits))
    jac = lin.matrix()
    row = jac[[winner]].toarray().reshape(12, 12)
    explanation = lin.explain()
    # a step along a random direction small enough to keep the pattern
    step = np.random.default_rng(_SEED + 3).standard_normal((1, 1, 12, 12)) * 1e-6
    near = x + torch.from_numpy(step)
    same = [s.on for s in linearize(model, near).sites] == [s.on for s in lin.sites]
    with torch.no_grad():
        exact = model(near)[0].numpy()
    tangent = lin(near[0].numpy())
    close = bool(np.abs(tangent - exact).max() <= 1e-12 * max(1.0, np.abs(exact).max()))
    summary = lipschitz_summary(lin, None)
    block = _residual_block()
    bx = torch.from_numpy(np.random.default_rng(_SEED + 4).standard_normal((1, 4, 6, 6)))
    block_lin = linearize(block, bx)
    block_summary = lipschitz_summary(block_lin, None)
    pattern = explanation.to_markdown(level=2).split("### The activation pattern at x", 1)[1]
    pattern = pattern.split("### The factors", 1)[0].strip()
    intro = (
        "A ReLU network is piecewise linear: around a point $x$ where no unit sits exactly on "
        "its kink and no max-pool window is tied, the network *is* an affine map "
        "$f(x + h) = J h + f(x)$ — the product of its linear layers' matrices and, for each "
        "non-linearity, the 0/1 (diagonal or selection) matrix of what the point switched on. "
        "`cm.linearize(model, x)` returns that map as a layer object: its matrix is the exact "
        "Jacobian $J$ (checked in the tests against `torch.func.jacrev`), its offset "
        "$f(x) - J x$. Every number below is computed when the report is generated, from "
        "seeded weights and a seeded input.")
    out = ["# A ReLU network at a point", "", intro, "", "## The network", "",
           "```text", str(model), "```", "",
           f"Input one sample 1×12×12, output {len(logits)} logits "
           f"({', '.join(f'{v:.4f}' for v in logits)}); class {winner} wins.", "",
           "## The Jacobian at x", "",
           f"`{lin!r}`", "",
           f"$J$ is {jac.shape[0]}×{jac.shape[1]} with {jac.nnz} nonzero entries; "
           f"$J x + (f(x) - J x)$ reproduces $f(x)$ to a relative "
           f"{'1e-12' if lin.residual() <= 1e-12 else f'{lin.residual():.1e}'} "
           f"(rounding only). The row of class {winner} — how each input pixel moves its "
           f"logit, the network's exact saliency map at $x$; zeros are pixels every path "
           f"from which is switched off:", "", *_grid(row), "",
           "## The activation pattern", "", explanation.validity, "", pattern, "",
           "## The linear region", "",
           f"A step of size about 1e-6 along a seeded random direction "
           f"{'keeps' if same else 'changes'} the activation pattern, and the tangent map "
           f"{'reproduces' if close else 'does not reproduce'} the network there to rounding "
           f"(relative 1e-12): on the region of inputs with this pattern the network and "
           f"the affine map are the same function, not merely first-order close.", "",
           "## Lipschitz, side by side", "",
           "Three numbers bracket the network's Lipschitz constant. The product of the "
           "layers' exact spectral norms times the activations' constants (1 for ReLU, 1 for "
           "a non-overlapping max pool) is the usual *upper bound*; the product of the "
           "factors' norms at $x$ bounds $\\|J(x)\\|_2$; and $\\|J(x)\\|_2$, the exact norm of "
           "the Jacobian at the point, is a *lower bound* (the network stretches some small "
           "step at $x$ by exactly that much).", "",
           "### The classifier", "", summary.to_markdown(), "",
           "### A ResNet basic block (BatchNorm in eval, 4×6×6)", "",
           "The residual sum adds the identity path's constant, 1, to the conv path's "
           "product: the bound of a sum is the sum of the bounds.", "",
           block_summary.to_markdown(), "",
           *_verification(model, x, lin, block, bx, block_lin)]
    heading = "A ReLU network at a point"
    text = (f"the exact Jacobian of a small conv classifier at an input ({jac.nnz} nonzeros), "
            f"its activation pattern, and the product bound {summary.ratio:.3g}× the local "
            f"norm (a ResNet block: {block_summary.ratio:.3g}×)")
    return Report("relu-network-at-a-point", heading, text, "\n".join(out).rstrip("\n") + "\n",
                  {})
