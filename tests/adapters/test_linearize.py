"""cm.linearize and cm.lipschitz_summary against torch's own Jacobian (torch.func, float64)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng as seeded

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


def _jacobian(model, x):
    """torch's Jacobian (jacrev) of the model on one sample, flattened: (outputs, inputs)."""
    with torch.no_grad():
        out = model(x)
    with warnings.catch_warnings():  # vmap's fallback for some backward ops warns
        warnings.simplefilter("ignore", UserWarning)
        jac = torch.func.jacrev(model)(x).detach()
    return out[0].numpy(), jac.reshape(out[0].numel(), x[0].numel()).numpy()


def _point(shape, key, scale=1.0):
    return torch.tensor(seeded("linearize", key).standard_normal((1, *shape)) * scale,
                        dtype=torch.float64)


def _net(*middle, channels=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, channels, 3, padding=1), *middle,
                         nn.Conv2d(channels, 2, 2, stride=2)).double().eval()


def _check(model, x, atol=1e-12):
    lin = cm.linearize(model, x)
    value, jac = _jacobian(model, x)
    np.testing.assert_allclose(lin.matrix().toarray(), jac, atol=atol, rtol=1e-10)
    sample = x[0].numpy()
    np.testing.assert_allclose(lin.matrix() @ sample.ravel() + lin.offset(), value.ravel(),
                               atol=atol, rtol=1e-12)
    np.testing.assert_allclose(lin(sample), value, atol=atol, rtol=1e-12)
    v = seeded("linearize-v", lin.output_shape).standard_normal(lin.output_shape)
    u = seeded("linearize-u", lin.input_shape).standard_normal(lin.input_shape)
    op = lin.operator()
    np.testing.assert_allclose(op.matvec(u.ravel()), jac @ u.ravel(), atol=1e-11)
    np.testing.assert_allclose(op.rmatvec(v.ravel()), jac.T @ v.ravel(), atol=1e-11)
    return lin


ACTIVATIONS = {
    "ReLU": lambda: nn.ReLU(), "ReLU-inplace": lambda: nn.ReLU(inplace=True),
    "LeakyReLU": lambda: nn.LeakyReLU(0.2), "PReLU": lambda: nn.PReLU(3, init=0.3),
    "PReLU1": lambda: nn.PReLU(), "ReLU6": lambda: nn.ReLU6(),
    "Hardtanh": lambda: nn.Hardtanh(-0.5, 0.5), "ELU": lambda: nn.ELU(0.7),
    "SELU": lambda: nn.SELU(), "CELU": lambda: nn.CELU(0.5), "GELU": lambda: nn.GELU(),
    "GELU-tanh": lambda: nn.GELU("tanh"), "SiLU": lambda: nn.SiLU(), "Mish": lambda: nn.Mish(),
    "Sigmoid": lambda: nn.Sigmoid(), "Tanh": lambda: nn.Tanh(),
    "Softplus": lambda: nn.Softplus(beta=2.0), "Softsign": lambda: nn.Softsign(),
    "Hardswish": lambda: nn.Hardswish(), "Hardsigmoid": lambda: nn.Hardsigmoid(),
    "Tanhshrink": lambda: nn.Tanhshrink(), "Softshrink": lambda: nn.Softshrink(0.3),
    "Hardshrink": lambda: nn.Hardshrink(0.3), "Threshold": lambda: nn.Threshold(0.1, 0.1),
    "RReLU": lambda: nn.RReLU().eval(), "LogSigmoid": lambda: nn.LogSigmoid(),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_each_activation_matches_jacrev(name):
    model = _net(ACTIVATIONS[name]())
    x = _point((2, 6, 6), name, scale=3.0)
    lin = _check(model, x)
    (site,) = lin.sites
    assert site.kind == "activation"
    assert site.on + site.off == site.units == 3 * 36
    # the global constant bounds the derivative anywhere (checked on a grid by torch)
    z = torch.linspace(-8, 8, 4001, dtype=torch.float64).reshape(1, 1, -1).repeat(1, 3, 1)
    z.requires_grad_(True)
    (grad,) = torch.autograd.grad(model[1](z * 1.0).sum(), z)
    assert float(grad.abs().max()) <= site.lipschitz * (1 + 1e-9)


def test_smooth_lipschitz_constants_are_known_values():
    x = _point((2, 4, 4), "smooth")
    known = {"GELU": 1.128904, "SiLU": 1.099839, "Sigmoid": 0.25, "Tanh": 1.0}
    for name, value in known.items():
        (site,) = cm.linearize(_net(ACTIVATIONS[name]()), x).sites
        assert value <= site.lipschitz <= value * (1 + 1e-5)


def _zero_preactivation_net(activation):
    """A net whose activation sees exactly 0 everywhere (zero conv weights and bias)."""
    model = _net(activation)
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.zero_()
    return model


@pytest.mark.parametrize(("name", "derivative"), [("ReLU", 0.0), ("LeakyReLU", 0.2),
                                                  ("ReLU6", 0.0), ("ELU", 0.7),
                                                  ("Hardswish", 0.5), ("SELU", 1.7580993408473766)])
def test_kinks_take_torchs_convention(name, derivative):
    model = _zero_preactivation_net(ACTIVATIONS[name]())
    lin = _check(model, _point((2, 6, 6), "kink"))
    (site,) = lin.sites
    scale = lin.chain()[1]
    np.testing.assert_array_equal(np.unique(scale.matrix().diagonal()), [derivative])
    if name in ("ReLU", "LeakyReLU", "ReLU6"):
        assert site.kinks == site.units
        assert "kink" in str(lin.explain())


def test_relu_network_is_affine_on_its_linear_region():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 4, 3, padding=1), nn.LeakyReLU(0.1),
                          nn.AdaptiveMaxPool2d(2), nn.Flatten(), nn.Linear(16, 3)).double().eval()
    x = _point((1, 8, 8), "region")
    lin = _check(model, x)
    assert lin.piecewise_linear
    assert [s.kinks for s in lin.sites if s.kind == "activation"] == [0, 0]
    assert lin.residual() < 1e-12
    # a small step keeps the pattern: the network is the affine map there too
    step = 1e-7 * _point((1, 8, 8), "region-step")
    near = x + step
    again = cm.linearize(model, near)
    assert [s.on for s in again.sites] == [s.on for s in lin.sites]
    with torch.no_grad():
        want = model(near)[0].numpy()
    np.testing.assert_allclose(lin(near[0].numpy()), want, rtol=1e-12, atol=1e-13)
    text = lin.explain().to_markdown()
    assert "linear region" in text and "| 1 | ReLU | activation |" in text


POOLS = [
    lambda: nn.MaxPool2d(2), lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
    lambda: nn.MaxPool2d(2, stride=1, dilation=2), lambda: nn.AdaptiveMaxPool2d((2, 3)),
    lambda: nn.AdaptiveMaxPool2d(1), lambda: nn.MaxPool2d((3, 2), stride=(1, 2), padding=(1, 0)),
]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("pool", range(len(POOLS)))
def test_pools_in_a_network(pool, ties):
    torch.manual_seed(pool)
    model = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), POOLS[pool](), nn.Flatten()).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, -2.0]).reshape(2, 1, 1, 1))
    x = _point((1, 7, 6), ("pool", pool))
    if ties:
        x = torch.round(x)  # small integers: many tied windows
    lin = _check(model.eval(), x)
    (site,) = lin.sites
    assert site.kind == "selection"
    assert (site.kinks > 0) == bool(np.any(lin.chain()[1].tied > 1))


@pytest.mark.parametrize("pool", [nn.MaxPool1d(3, stride=2, padding=1, ceil_mode=True),
                                  nn.AdaptiveMaxPool1d(3)])
def test_pools_1d(pool):
    model = nn.Sequential(nn.Conv1d(2, 2, 3), pool).double().eval()
    _check(model, torch.round(_point((2, 9), "pool1d")))


@pytest.mark.parametrize("pool", [nn.MaxPool3d(2), nn.MaxPool3d(3, stride=2, padding=1,
                                                                ceil_mode=True),
                                  nn.AdaptiveMaxPool3d((1, 2, 2))])
def test_pools_3d(pool):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv3d(1, 2, 1), pool).double().eval()
    _check(model, torch.round(_point((1, 4, 5, 4), "pool3d")))


@pytest.mark.parametrize("norm", [lambda: nn.GroupNorm(2, 4), lambda: nn.GroupNorm(4, 4,
                                                                                   affine=False),
                                  lambda: nn.GroupNorm(1, 4), lambda: nn.InstanceNorm2d(4),
                                  lambda: nn.InstanceNorm2d(4, affine=True),
                                  lambda: nn.LayerNorm([4, 5, 5]),
                                  lambda: nn.LayerNorm(5, elementwise_affine=False)])
def test_norms_in_a_network(norm):
    torch.manual_seed(5)
    layer = norm()
    for parameter in layer.parameters():  # non-trivial affine parameters
        with torch.no_grad():
            parameter.copy_(torch.randn_like(parameter))
    model = nn.Sequential(nn.Conv2d(2, 4, 2), layer, nn.Tanh(), nn.Conv2d(4, 1, 3)).double()
    lin = _check(model.eval(), _point((2, 6, 6), "norms"))
    assert lin.sites[0].kind == "normalization" and not lin.piecewise_linear
    assert "first order" in str(lin.explain())


def test_instance_norm_with_running_stats_in_eval_is_affine():
    norm = nn.InstanceNorm2d(3, track_running_stats=True)
    norm.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    norm.running_var.copy_(torch.tensor([2.0, 0.5, 1.0]))
    model = nn.Sequential(nn.Conv2d(2, 3, 3), norm).double().eval()
    _check(model, _point((2, 5, 5), "instance-running"))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_from_torch_reads_instance_norm_with_running_stats_like_batch_norm(dims):
    torch.manual_seed(dims)
    norm = getattr(nn, f"InstanceNorm{dims}d")(3, affine=True, track_running_stats=True)
    with torch.no_grad():
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.normal_()
        norm.bias.normal_()
    norm = norm.double().eval()
    shape = (3, *(4,) * dims)
    x = seeded("instance-running-from-torch", dims).standard_normal(shape)
    with torch.no_grad():
        want = norm(torch.from_numpy(x)[None])[0].numpy()
    traced = torch.fx.symbolic_trace(nn.Sequential(norm))
    for module in (norm, nn.Sequential(norm, nn.Identity()), traced):
        layer = cm.from_torch(module, shape)
        np.testing.assert_allclose(layer(x), want, rtol=1e-12, atol=1e-12)
    _, jac = _jacobian(norm, torch.from_numpy(x)[None])
    np.testing.assert_allclose(cm.from_torch(norm, shape).matrix().toarray(), jac, atol=1e-12)


@pytest.mark.parametrize(("make", "match"), [
    (lambda: nn.InstanceNorm2d(3), r"normalises by the input's own statistics "
                                   r"\(track_running_stats=False\), which is not affine; "
                                   r"cm\.linearize"),
    (lambda: nn.InstanceNorm2d(3, track_running_stats=True).train(), r"is in training mode"),
    (lambda: nn.GroupNorm(1, 3), r"\(=GroupNorm\) is not linear; cm\.linearize"),
    (lambda: nn.LayerNorm([3, 4, 4]), r"\(=LayerNorm\) is not linear; cm\.linearize"),
])
def test_from_torch_refuses_norms_by_the_input_statistics_by_name(make, match):
    with pytest.raises(cm.ConvMatrixError, match=match):
        cm.from_torch(make(), (3, 4, 4))
    with pytest.raises(cm.ConvMatrixError, match=r"not affine|not linear|training mode"):
        cm.from_torch(nn.Sequential(nn.Conv2d(3, 3, 1), make()), (3, 4, 4))


def test_float32_model_and_numpy_point():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Conv2d(3, 1, 2)).eval()
    x = seeded("float32").standard_normal((1, 2, 5, 5))
    lin = cm.linearize(model, x)
    double = copy.deepcopy(model).double()
    _, jac = _jacobian(double, torch.tensor(x))
    np.testing.assert_allclose(lin.matrix().toarray(), jac, rtol=1e-6, atol=1e-7)
    assert model[0].weight.dtype == torch.float32  # the model is untouched
    assert lin.dtype == np.float64


def test_nested_sequential_names_paths():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), nn.Flatten(),
                          nn.Linear(18, 2), nn.Sigmoid()).double().eval()
    lin = _check(model, _point((1, 5, 5), "nested"))
    assert [s.name for s in lin.sites] == ["0.1", "3"]


def test_single_module():
    lin = cm.linearize(nn.ReLU(), _point((2, 3), "single"))
    np.testing.assert_array_equal(lin.matrix().diagonal() > 0, _point((2, 3), "single")[0]
                                  .numpy().ravel() > 0)


@pytest.mark.parametrize(("module", "match"), [
    (lambda: nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)),
     r"1 \(BatchNorm2d\) in training"),
    (lambda: nn.Sequential(nn.Conv2d(1, 1, 1), nn.Dropout(0.5)), r"1 \(Dropout\) in training"),
    (lambda: nn.Sequential(nn.Conv2d(1, 1, 1), nn.Softmax(dim=1)), r"model.1` \(Softmax\)"),
    (lambda: nn.Sequential(nn.Conv2d(1, 1, 1), nn.MaxPool2d(2, return_indices=True)),
     "return_indices"),
])
def test_refusals_name_the_module(module, match):
    with pytest.raises(cm.ConvMatrixError, match=match):
        cm.linearize(module().double(), _point((1, 4, 4), "refuse"))


def test_dropout_zero_in_training_mode_is_fine():
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Dropout(0.0)).double().train()
    _check(model, _point((1, 3, 3), "dropout0"))


@pytest.mark.parametrize(("x", "match"), [
    (np.zeros((2, 1, 4, 4)), "batch axis of 1"), (np.zeros(4), "batch axis of 1"),
    (np.full((1, 1, 4, 4), np.nan), "non-finite"), (np.array([["a"]]), "dtype"),
])
def test_bad_points(x, match):
    with pytest.raises(cm.ConvMatrixError, match=match):
        cm.linearize(nn.Sequential(nn.Conv2d(1, 1, 1)).double(), x)


def test_from_torch_still_refuses_relu_and_points_to_linearize():
    with pytest.raises(cm.ConvMatrixError, match=r"ReLU.*linearize"):
        cm.from_torch(nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU()), (1, 4, 4))


def test_not_a_model():
    with pytest.raises(cm.ConvMatrixError, match="neither a torch module nor a Keras"):
        cm.linearize(object(), np.zeros((1, 2)))


@pytest.mark.slow
def test_lipschitz_summary_bounds():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 3, 3), nn.ELU(2.0), nn.Flatten(),
                          nn.Linear(12, 3)).double().eval()
    x = _point((2, 8, 8), "lipschitz")
    summary = cm.lipschitz_summary(model, x, tol=1e-10)
    _, jac = _jacobian(model, x)
    local = np.linalg.norm(jac, 2)
    assert summary.local == pytest.approx(local, rel=1e-8)
    # the product bound from the dense Jacobians of each linear layer, by torch
    dense = []
    shape = (1, 2, 8, 8)
    h = torch.zeros(shape, dtype=torch.float64)
    for module in model:
        out = module(h)
        if isinstance(module, nn.Conv2d | nn.Linear | nn.Flatten):
            j = torch.func.jacrev(module)(h).reshape(out[0].numel(), h[0].numel())
            dense.append(np.linalg.norm(j.detach().numpy(), 2))
        h = out.detach()
    assert summary.upper_bound == pytest.approx(np.prod(dense) * 1.0 * 1.0 * 2.0, rel=1e-6)
    assert summary.local <= summary.local_product <= summary.upper_bound
    assert summary.constants[4] == 2.0  # ELU(alpha=2)
    assert "upper bound" in str(summary) and "lower bound" in summary.to_markdown()
    again = cm.lipschitz_summary(cm.linearize(model, x), None, tol=1e-10)
    assert again.upper_bound == pytest.approx(summary.upper_bound)


def test_report_of_a_linearization():
    model = _net(nn.ReLU())
    text = cm.linearize(model, _point((2, 4, 4), "report")).report()
    assert text.startswith("# Linearization(") and "activation pattern" in text
