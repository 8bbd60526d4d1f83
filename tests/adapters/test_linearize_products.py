"""cm.linearize of products and quotients of branches in torch graphs (issue 17).

``x * sigmoid(x)``, gated units, ``a / b``, ``torch.where`` on a condition computed from the
input, ``maximum``, and the element-wise functions decompositions use (``exp``, ``log1p``, ...):
as fx-traced modules, as ``torch.export`` programs and as their ``run_decompositions()`` (where
SiLU, Mish, Hardswish, PReLU and Softplus become products, quotients and ``where``). Checked
against the live model: ``torch.func.jacrev`` in float64 for the Jacobian, the forward pass for
the value and the offset ``f(x) − J x``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class GeluErf(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


class Gate(nn.Module):
    """A gated unit written out: one branch times the sigmoid of another."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv1d(4, 4, 1), nn.Conv1d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.a(x) * torch.sigmoid(self.b(x))


class Glu(nn.Module):
    def forward(self, x):
        return F.glu(x, dim=1)


class Quotient(nn.Module):
    """Two branches divided, and a constant divided by a branch."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv1d(4, 4, 1), nn.Conv1d(4, 4, 1)

    def forward(self, x):
        return self.a(x) / (1 + self.b(x) ** 2) + 2.0 / (2 + x.abs())


class Squeeze(nn.Module):
    """Squeeze-and-excitation: the input times a per-channel gate (broadcast along the axis)."""

    def forward(self, x):
        return x * torch.sigmoid(x.mean(dim=2, keepdim=True)) / (1 + x[:, :1] ** 2)


class Switch(nn.Module):
    """A leaky ReLU by hand (``where`` on a comparison), and a maximum of two branches."""

    def forward(self, x):
        return torch.where(x > 0, x, 0.1 * x) + torch.maximum(x, 3 * x.flip(-1))


ACTIVATIONS = {
    "SiLU": nn.SiLU, "Mish": nn.Mish, "Hardswish": nn.Hardswish,
    "PReLU": lambda: nn.PReLU(4, init=0.2), "GELU-erf": nn.GELU,
    "GELU-tanh": lambda: nn.GELU("tanh"), "Softplus": lambda: nn.Softplus(beta=2.0, threshold=2.0),
    "swish": Swish, "gelu-by-hand": GeluErf, "gate": Gate, "glu": Glu, "GLU": lambda: nn.GLU(1),
    "quotient": Quotient, "squeeze": Squeeze, "switch": Switch,
    "Softshrink": lambda: nn.Softshrink(0.3), "LogSigmoid": nn.LogSigmoid,  # sign, log_sigmoid
}


def _model(name):
    torch.manual_seed(abs(hash(name)) % 2**31)
    net = nn.Sequential(nn.Conv1d(2, 4, 3), ACTIVATIONS[name]()).double().eval()
    if name == "PReLU":
        with torch.no_grad():
            net[1].weight.uniform_(-0.5, 0.5)
    return net


def _forms(net, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(net, (x,))
        return {"module": net, "export": program, "decomposed": program.run_decompositions()}


def _live(net, x):
    with torch.no_grad():
        value = net(x)[0].numpy().ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        jac = torch.func.jacrev(net)(x).detach().reshape(value.size, -1).numpy()
    return value, jac


@pytest.mark.parametrize("form", ["module", "export", "decomposed"])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_linearize_matches_jacrev_and_the_live_offset(name, form):
    net = _model(name)
    x = torch.from_numpy(rng("products", name).standard_normal((1, 2, 8)) * 2)
    lin = cm.linearize(_forms(net, x)[form], x)
    value, jac = _live(net, x)
    flat = x[0].numpy().ravel()
    np.testing.assert_allclose(lin.matrix().toarray(), jac, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lin.offset(), value - jac @ flat, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lin(x[0].numpy()).ravel(), value, rtol=1e-12, atol=1e-12)
    u = rng("products-u", name).standard_normal(flat.size)
    np.testing.assert_allclose(lin.operator().rmatvec(jac @ u), jac.T @ (jac @ u), atol=1e-11)


def test_the_decompositions_are_products_and_switches():
    """What ``run_decompositions()`` makes of the activations, as sites."""
    x = torch.from_numpy(rng("products", "kinds").standard_normal((1, 2, 8)) * 2)
    kinds = {name: sorted({site.kind for site in cm.linearize(
        _forms(_model(name), x)["decomposed"], x).sites}) for name in ("SiLU", "PReLU")}
    assert kinds == {"SiLU": ["activation", "product"], "PReLU": ["activation"]}
    prelu = cm.linearize(_forms(_model("PReLU"), x)["decomposed"], x)
    assert prelu.piecewise_linear  # a comparison and a switch: linear on the region around x


def test_a_product_site_has_no_global_lipschitz_constant():
    net = nn.Sequential(nn.Conv1d(1, 2, 3), Swish(), nn.Conv1d(2, 1, 3)).double()
    x = torch.from_numpy(rng("products", "lipschitz").standard_normal((1, 1, 9)))
    lin = cm.linearize(net, x)
    products = [site for site in lin.sites if site.kind == "product"]
    assert [site.name for site in products] == ["mul ∂/∂_0", "mul ∂/∂sigmoid"]
    assert all(site.lipschitz == math.inf and not site.piecewise_linear for site in products)
    assert "a product of two branches (no global Lipschitz constant)" in str(lin.explain())
    summary = cm.lipschitz_summary(lin, None)
    assert summary.upper_bound == math.inf and not summary.piecewise_linear
    _, jac = _live(net, x)
    assert summary.local == pytest.approx(np.linalg.norm(jac, 2), rel=1e-6)
    assert summary.local <= summary.local_product * (1 + 1e-9) < math.inf


def test_a_maximum_splits_a_tie_as_torch_does():
    class Max(nn.Module):
        def forward(self, x):
            return torch.maximum(x, 3 * x)

    x = torch.tensor([[0.0, 1.0, -2.0]], dtype=torch.float64)
    lin = cm.linearize(Max(), x)
    _, jac = _live(Max(), x)
    np.testing.assert_array_equal(lin.matrix().toarray(), jac)
    assert np.diag(jac).tolist() == [2.0, 3.0, 1.0]  # at the tie: (1 + 3) / 2
    (site,) = [s for s in lin.sites if s.name.endswith("∂/∂x")]
    assert site.kinks == 1 and "split the derivative in halves" in site.convention


def test_a_broadcast_gate_has_exact_local_norms():
    """Each step's norm at x bounds its factor, a broadcast branch (copies) included."""
    net = nn.Sequential(nn.Conv1d(2, 3, 3), Squeeze()).double()
    x = torch.from_numpy(rng("products", "squeeze").standard_normal((1, 2, 8)))
    lin = cm.linearize(net, x)
    for factor in lin.output_factors():
        if factor.site is not None and factor.layer is not None:
            norm = np.linalg.norm(factor.layer.matrix().toarray(), 2)
            assert factor.site.local_norm == pytest.approx(norm, rel=1e-12, abs=1e-15)


class _Net(nn.Module):
    def __init__(self, forward):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 1)
        self.run = forward

    def forward(self, x):
        return self.run(self, x)


@pytest.mark.parametrize(("forward", "match"), [
    (lambda self, x: x * self.conv(x),
     r"node 'mul' \(position 2, call_function mul\): multiplies two values that depend on the "
     r"input \(a product of branches\): not affine; cm\.linearize\(model, x\) reads it"),
    (lambda self, x: x / (1 + self.conv(x)),
     r"node 'truediv' \(position 3, call_function truediv\): divides by a value that depends "
     r"on the input: not affine; cm\.linearize\(model, x\) reads it"),
    (lambda self, x: torch.exp(x), r"node 'exp' .*: exp is not affine; cm\.linearize"),
    (lambda self, x: torch.where(x > 0, x, 0.0), r"node 'gt' .*: gt is not affine; cm\.linearize"),
    (lambda self, x: torch.matmul(x, self.conv(x).transpose(1, 2)),
     r"node 'matmul' .*: multiplies two values .*, and cm\.linearize does not read matrix "
     r"products of branches either"),
])
def test_from_torch_still_refuses_by_node(forward, match):
    with pytest.raises(cm.ConvMatrixError, match=match):
        cm.from_torch(_Net(forward), (1, 4))


def test_bad_input_is_still_refused_by_name():
    net = _Net(lambda self, x: x * torch.sigmoid(self.conv(x))).double()
    with pytest.raises(cm.ConvMatrixError, match=r"`x` has shape \(2, 1, 4\); give one input "):
        cm.linearize(net, torch.zeros(2, 1, 4, dtype=torch.float64))
    with pytest.raises(cm.ConvMatrixError, match=r"`x` holds non-finite values"):
        cm.linearize(net, torch.full((1, 1, 4), math.nan, dtype=torch.float64))
    with pytest.raises(cm.ConvMatrixError, match=r"node 'floordiv' .*floordiv is neither affine "
                                                 r"nor a non-linearity cm\.linearize reads"):
        cm.linearize(_Net(lambda self, x: x // (1 + x.abs())), torch.ones(1, 1, 4))


def test_functions_of_decompositions_have_their_lipschitz_constants():
    class Functions(nn.Module):
        def forward(self, x):
            return torch.erf(x) + torch.exp(x) * torch.log1p(x.abs()) + x ** 2

    x = torch.from_numpy(rng("products", "functions").standard_normal((1, 2, 5)))
    lin = cm.linearize(Functions(), x)
    _, jac = _live(Functions(), x)
    np.testing.assert_allclose(lin.matrix().toarray(), jac, rtol=1e-12, atol=1e-12)
    constants = {site.op: site.lipschitz for site in lin.sites if site.kind == "activation"}
    assert constants["torch.erf"] == pytest.approx(2 / math.sqrt(math.pi), rel=1e-5)
    assert constants["torch.erf"] >= 2 / math.sqrt(math.pi)
    assert constants["torch.exp"] == constants["torch.log1p"] == constants["torch.pow"] == math.inf
