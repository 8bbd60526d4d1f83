"""Jacobian kinds at a point (max-pool selections, normalisations by the input's statistics).

Every matrix is compared with torch's own Jacobian (``torch.func.jacrev`` in float64) of the
operation it linearises, at random points and at points with ties.
"""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng as seeded

torch = pytest.importorskip("torch")
F = torch.nn.functional
jacrev = torch.func.jacrev


def _jacobian(fn, x):
    """torch's Jacobian of ``fn`` on one sample (the batch axis added and removed)."""
    t = torch.tensor(x, dtype=torch.float64)[None]
    out = fn(t)
    jac = jacrev(fn)(t)
    return out[0].numpy(), jac.reshape(out[0].numel(), t.numel()).numpy()


def _check_layer(layer, x, fn):
    value, jac = _jacobian(fn, x)
    np.testing.assert_array_equal(layer.matrix().toarray(), jac)
    assert layer.output_shape == value.shape
    np.testing.assert_allclose(layer(x), value, rtol=1e-12, atol=1e-12)
    rng = np.random.default_rng(1)
    u = rng.standard_normal(layer.input_shape)
    v = rng.standard_normal(layer.output_shape)
    op = layer.operator()
    np.testing.assert_allclose(op.matvec(u.ravel()), jac @ u.ravel(), atol=1e-12)
    np.testing.assert_allclose(op.rmatvec(v.ravel()), jac.T @ v.ravel(), atol=1e-12)
    np.testing.assert_allclose(layer.T.matrix().toarray(), jac.T)


def _points(shape, key):
    """A generic point and a tied one (small integers: most windows tie)."""
    rng = seeded("jacobian-kinds", key)
    return {"random": rng.standard_normal(shape),
            "ties": rng.integers(0, 3, shape).astype(np.float64),
            "constant": np.zeros(shape)}


MAX_POOLS = [  # (spatial size, kwargs)
    ((7,), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((7,), {"kernel_size": 2, "ceil_mode": True}),
    ((9,), {"kernel_size": 3, "stride": 2, "dilation": 2, "padding": 1, "ceil_mode": True}),
    ((6, 7), {"kernel_size": 2}),
    ((6, 7), {"kernel_size": 3, "stride": 1, "padding": 1}),
    ((7, 6), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ((7, 8), {"kernel_size": (3, 2), "stride": (2, 3), "padding": (1, 0), "dilation": (1, 2)}),
    ((5, 6), {"kernel_size": 2, "stride": 1, "dilation": 2, "ceil_mode": True}),
    ((4, 5, 4), {"kernel_size": 2}),
    ((5, 4, 5), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
]


@pytest.mark.parametrize("point", ["random", "ties", "constant"])
@pytest.mark.parametrize(("size", "kwargs"), MAX_POOLS)
def test_max_pool_at_is_torchs_jacobian(size, kwargs, point):
    x = _points((2, *size), (size, tuple(kwargs.items())))[point]
    fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[len(size)]
    layer = cm.MaxPoolAt(x, **kwargs)
    _check_layer(layer, x, lambda t: fn(t, **kwargs))
    if point == "constant":
        assert layer.kinks > 0
    assert np.all(layer.matrix().sum(axis=1) == 1)


@pytest.mark.parametrize("point", ["random", "ties"])
@pytest.mark.parametrize(("size", "output_size"), [
    ((7,), 3), ((5,), 5), ((7, 5), (3, 2)), ((6, 6), (4, None)), ((4, 5, 3), (2, 3, 2))])
def test_adaptive_max_pool_at_is_torchs_jacobian(size, output_size, point):
    x = _points((2, *size), (size, output_size))[point]
    fn = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}
    _check_layer(cm.AdaptiveMaxPoolAt(x, output_size), x,
                 lambda t: fn[len(size)](t, output_size))


@pytest.mark.parametrize("point", ["random", "ties", "constant"])
def test_global_max_pool_ties_as_torch(point):
    x = _points((3, 4, 5), "global")[point]
    first = cm.GlobalMaxPoolAt(x)
    _check_layer(first, x, lambda t: F.adaptive_max_pool2d(t, 1))
    _check_layer(first, x, lambda t: t.flatten(2).max(dim=2).values[..., None, None])
    split = cm.GlobalMaxPoolAt(x, ties="split")
    _check_layer(split, x, lambda t: t.amax(dim=(2, 3), keepdim=True))
    if point == "constant":
        assert first.kinks == split.kinks == 3
        np.testing.assert_allclose(split.matrix().toarray().sum(axis=1), 1.0)


def test_max_pool_lipschitz_bound_counts_overlaps():
    x = np.zeros((1, 6, 6))
    assert cm.MaxPoolAt(x, 2).lipschitz_bound() == 1.0
    assert cm.MaxPoolAt(x, 3, stride=1).lipschitz_bound() == 3.0  # 9 windows hold an input
    assert cm.GlobalMaxPoolAt(x).lipschitz_bound() == 1.0


def _norm_point(shape, key):
    rng = seeded("norms", key)
    return rng.standard_normal(shape) * rng.uniform(0.5, 3.0) + rng.standard_normal()


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize(("shape", "groups"), [((4, 3, 5), 2), ((6, 4), 3), ((4, 3, 2, 2), 4),
                                               ((3,), 1), ((4, 5), 1)])
def test_group_norm_at_is_torchs_jacobian(shape, groups, affine):
    x = _norm_point(shape, (shape, groups))
    rng = seeded("norm-weights", shape)
    weight = rng.standard_normal(shape[0]) if affine else None
    bias = rng.standard_normal(shape[0]) if affine else None
    layer = cm.GroupNormAt(x, groups, weight, bias, eps=1e-3)
    tw = None if weight is None else torch.tensor(weight)
    tb = None if bias is None else torch.tensor(bias)
    value, jac = _jacobian(lambda t: F.group_norm(t, groups, tw, tb, eps=1e-3), x)
    np.testing.assert_allclose(layer.matrix().toarray(), jac, atol=1e-12)
    np.testing.assert_allclose(layer(x), value, atol=1e-12)
    np.testing.assert_allclose(layer.matrix() @ x.ravel() + layer.offset(), value.ravel(),
                               atol=1e-12)
    v = np.random.default_rng(2).standard_normal(shape)
    np.testing.assert_allclose(layer.operator().matvec(v.ravel()), jac @ v.ravel(), atol=1e-12)
    np.testing.assert_allclose(layer.operator().rmatvec(v.ravel()), jac.T @ v.ravel(),
                               atol=1e-12)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4)])
def test_instance_norm_at_is_torchs_jacobian(shape, affine):
    x = _norm_point(shape, shape)
    rng = seeded("instance-weights", shape)
    weight = rng.standard_normal(shape[0]) if affine else None
    bias = rng.standard_normal(shape[0]) if affine else None
    layer = cm.InstanceNormAt(x, weight, bias)
    tw = None if weight is None else torch.tensor(weight)
    tb = None if bias is None else torch.tensor(bias)
    value, jac = _jacobian(lambda t: F.instance_norm(t, weight=tw, bias=tb), x)
    np.testing.assert_allclose(layer.matrix().toarray(), jac, atol=1e-12)
    np.testing.assert_allclose(layer(x), value, atol=1e-12)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize(("shape", "normalized"), [((2, 3, 4), (4,)), ((2, 3, 4), (3, 4)),
                                                   ((2, 3, 4), (2, 3, 4)), ((5,), 5)])
def test_layer_norm_at_is_torchs_jacobian(shape, normalized, affine):
    x = _norm_point(shape, (shape, normalized))
    tail = (normalized,) if isinstance(normalized, int) else normalized
    rng = seeded("layer-norm-weights", shape)
    weight = rng.standard_normal(tail) if affine else None
    bias = rng.standard_normal(tail) if affine else None
    layer = cm.LayerNormAt(x, normalized, weight, bias)
    tw = None if weight is None else torch.tensor(weight)
    tb = None if bias is None else torch.tensor(bias)
    value, jac = _jacobian(lambda t: F.layer_norm(t, tail, tw, tb), x)
    np.testing.assert_allclose(layer.matrix().toarray(), jac, atol=1e-12)
    np.testing.assert_allclose(layer(x), value, atol=1e-12)
    assert layer.matrix().nnz == layer.groups * layer.group_size ** 2


def test_norm_tangent_is_first_order():
    x = _norm_point((2, 3, 3), "tangent")
    layer = cm.GroupNormAt(x, 1)
    h = np.random.default_rng(3).standard_normal(x.shape)
    exact = cm.GroupNormAt(x + 1e-4 * h, 1)(x + 1e-4 * h)
    assert np.abs(layer(x + 1e-4 * h) - exact).max() < 1e-6


@pytest.mark.parametrize(("build", "match"), [
    (lambda: cm.MaxPoolAt(np.zeros((1, 4, 4)), 2, padding=2), "padding"),
    (lambda: cm.MaxPoolAt(np.zeros((1, 2)), 5), "kernel_size"),
    (lambda: cm.MaxPoolAt(np.zeros((4, 4)).reshape(1, 1, 1, 1, 4, 4), 2), "spatial"),
    (lambda: cm.MaxPoolAt(np.array([[np.nan, 1.0]]), 2), "non-finite"),
    (lambda: cm.MaxPoolAt(np.zeros((1, 4)), 2, ties="last"), "ties"),
    (lambda: cm.MaxPoolAt(np.zeros((1, 4)), 2, ceil_mode=1), "ceil_mode"),
    (lambda: cm.AdaptiveMaxPoolAt(np.zeros((1, 4, 4)), (1, 2, 3)), "output_size"),
    (lambda: cm.GroupNormAt(np.ones((3, 2)), 2), "num_groups"),
    (lambda: cm.GroupNormAt(np.ones((2, 2)), 2, eps=0.0), "constant"),
    (lambda: cm.GroupNormAt(np.ones((2, 2)), 2, weight=[1.0]), "weight"),
    (lambda: cm.GroupNormAt(np.ones((2, 2)), 2, eps=-1), "eps"),
    (lambda: cm.LayerNormAt(np.ones((2, 3)), 2), "normalized_shape"),
    (lambda: cm.LayerNormAt(np.array(["a"]), 1), "dtype"),
])
def test_bad_input_is_named(build, match):
    with pytest.raises(cm.ConvMatrixError, match=match):
        build()


def test_layer_norm_matrix_refused_over_max_bytes():
    layer = cm.LayerNormAt(np.random.default_rng(0).standard_normal((8, 16, 16)), (8, 16, 16))
    with pytest.raises(cm.ConvMatrixError, match="max_bytes"):
        layer.matrix(max_bytes=2**20)
    assert layer.operator().matvec(np.ones(2048)).shape == (2048,)
