"""The built-in report "a ReLU network at a point" (needs torch)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from convmatrix.reports import network  # noqa: E402


@pytest.mark.slow
def test_relu_network_report_numbers_come_from_the_network():
    report = network.relu_network_report()
    text = report.markdown
    assert report.name == "relu-network-at-a-point"
    assert "## The activation pattern" in text and "| 1 | ReLU | activation |" in text
    assert "product (upper bound)" in text and "‖J(x)‖₂ (lower bound)" in text
    assert "keeps the activation pattern" in text and "reproduces the network" in text
    # the saliency row printed is torch's own Jacobian row of the winning class
    model = network._classifier()
    x = torch.from_numpy(np.random.default_rng(network._SEED + 2).standard_normal((1, 1, 12, 12)))
    jac = torch.func.jacrev(model)(x).detach().reshape(3, 144).numpy()
    winner = int(np.argmax(model(x).detach().numpy()))
    first_row = text.split("| **0** | ", 1)[1].split(" |\n", 1)[0].split(" | ")
    printed = [0.0 if cell == "0" else float(cell) for cell in first_row]
    np.testing.assert_allclose(printed, jac[winner, :12], atol=5e-4)
    assert network.relu_network_report().markdown == text  # deterministic
