"""Issue 16 item 21: a torch.fx GraphModule (and a class that only shares a torch name).

``torch.fx.symbolic_trace`` keeps the traced class's name (``Sequential``, ``Conv2d``), so the
name-keyed readers met objects they do not understand and raised ``TypeError`` /
``AttributeError``. Each case must be read exactly (against the live module) or refused with a
``ConvMatrixError``. Since issue 17 graphs are read (torch.fx): a user's class sharing a torch
name is traced, its forward being the truth.
"""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng

torch = pytest.importorskip("torch")
fx = pytest.importorskip("torch.fx")
nn = torch.nn


def _exact_or_refused(module, shape):
    module.eval()
    x = rng("fx", shape).standard_normal(shape)
    try:
        layer = cm.from_torch(module, shape)
    except cm.ConvMatrixError as error:
        return str(error)
    with torch.no_grad():
        expected = module(torch.from_numpy(x[None]))[0].numpy()
    np.testing.assert_allclose(layer(x), expected, rtol=1e-10, atol=1e-10)
    return None


def _modules():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    linear_stack = nn.Sequential(nn.Conv2d(2, 2, 3), nn.ZeroPad2d(1),
                                 nn.ConvTranspose2d(2, 1, 2, stride=2)).double()
    relu_stack = nn.Sequential(nn.Conv2d(2, 2, 3), nn.ReLU(), nn.Conv2d(2, 1, 1)).double()
    return {
        "conv": fx.symbolic_trace(conv),
        "linear-stack": fx.symbolic_trace(linear_stack),
        "relu-stack": fx.symbolic_trace(relu_stack),
        "graph-inside-sequential": nn.Sequential(fx.symbolic_trace(conv)),
    }


@pytest.mark.parametrize("name", ["conv", "linear-stack", "relu-stack",
                                  "graph-inside-sequential"])
def test_graph_modules_are_read_exactly_or_refused(name):
    module = _modules()[name]
    message = _exact_or_refused(module, (2, 6, 6))
    if message is not None:  # only the ReLU stack: refused naming the node
        assert name == "relu-stack" and "node '_1'" in message and "ReLU" in message


def test_graph_module_is_read_exactly():
    module = fx.symbolic_trace(nn.Sequential(nn.Conv2d(1, 1, 3)).double())
    x = rng("fx-matrix").standard_normal((1, 5, 5))
    with torch.no_grad():
        expected = module(torch.from_numpy(x[None]))[0].numpy() - module.get_submodule(
            "0").bias.numpy()[:, None, None]
    np.testing.assert_allclose(cm.torch_matrix(module, (1, 5, 5)) @ x.ravel(),
                               expected.ravel(), atol=1e-12)


class Conv2d(nn.Module):  # shares nn.Conv2d's name, not its attributes
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, 1, 3, 3, dtype=torch.float64))

    def forward(self, x):
        return x * self.weight.sum()


class Sequential(nn.Module):  # shares nn.Sequential's name, is not iterable
    def forward(self, x):
        return 2 * x


@pytest.mark.parametrize("module", [Conv2d(), Sequential(), nn.Sequential(Conv2d())])
def test_modules_sharing_a_torch_name_are_exact_or_refused(module):
    message = _exact_or_refused(module, (1, 5, 5))
    if message is not None:
        assert "is not read as torch's" in message
