"""layer.operator(): the matrix-free LinearOperator against the built matrix and the dense
reference, over Hypothesis geometries (every padding mode, transposed and adjoint layers)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import convmatrix as cm
import convmatrix.analysis.linop as linop
from convmatrix import reference
from tests import oracle
from tests.helpers import rng as seeded

hypothesis = pytest.importorskip("hypothesis")
given, settings = hypothesis.given, hypothesis.settings

from tests.layer_strategies import (  # noqa: E402
    MODES,
    conv_layers,
    conv_transpose_layers,
    sample_stack,
)


def assert_operator_matches_matrix(layer, key):
    """matvec, rmatvec, matmat and rmatmat against the built matrix (the independent builder)."""
    op = layer.operator()
    matrix = layer.matrix().astype(np.float64)
    m, n = matrix.shape
    assert op.shape == (m, n)
    rng = seeded("operator", key)
    x, y = rng.standard_normal(n), rng.standard_normal(m)
    X, Y = rng.standard_normal((n, 3)), rng.standard_normal((m, 3))
    np.testing.assert_allclose(op.matvec(x), matrix @ x, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(op.rmatvec(y), matrix.T @ y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(op.matmat(X), matrix @ X, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(op.rmatmat(Y), matrix.T @ Y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(op.T @ y, matrix.T @ y, rtol=1e-10, atol=1e-10)


@settings(max_examples=150, deadline=None)
@given(conv_layers())
def test_conv_operator_matches_the_matrix(layer):
    assert_operator_matches_matrix(layer, repr(layer))


@settings(max_examples=80, deadline=None)
@given(conv_transpose_layers())
def test_conv_transpose_operator_matches_the_matrix(layer):
    assert_operator_matches_matrix(layer, repr(layer))


@settings(max_examples=60, deadline=None)
@given(conv_layers(modes=tuple(MODES[1:])))
def test_adjoint_of_a_padding_mode_is_the_operator_transpose(layer):
    assert isinstance(layer.T, cm.Adjoint)
    assert_operator_matches_matrix(layer.T, repr(layer.T))


@settings(max_examples=80, deadline=None)
@given(conv_layers())
def test_layer_call_matches_the_dense_reference(layer):
    """The matrix-free forward pass against reference.conv (shares no code with apply.py)."""
    x = seeded("call", repr(layer)).standard_normal((2, *layer.input_shape))
    expected = np.stack([reference.conv(sample, layer.weight, stride=layer.stride,
                                        padding=layer.padding, dilation=layer.dilation,
                                        groups=layer.groups, padding_mode=layer.padding_mode)
                         for sample in x])
    np.testing.assert_allclose(layer(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_dot_test_on_the_operator(mode, dtype):
    """⟨A x, y⟩ == ⟨x, Aᴴ y⟩ with complex data (the Hermitian adjoint, conjugated)."""
    rng = seeded("dot", mode, np.dtype(dtype).name)
    weight = rng.standard_normal((4, 2, 3, 2)).astype(dtype)
    if np.dtype(dtype).kind == "c":
        weight = weight + 1j * rng.standard_normal(weight.shape)
    layer = cm.Conv(weight, (4, 6, 5), stride=(2, 1), padding=(2, 1), groups=2,
                    padding_mode=mode)
    op = layer.operator()
    m, n = op.shape
    x = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    y = rng.standard_normal(m) + 1j * rng.standard_normal(m)
    lhs, rhs = np.vdot(y, op @ x), np.vdot(op.rmatvec(y), x)
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    dense = layer.matrix().toarray()
    np.testing.assert_allclose(op.rmatvec(y), dense.conj().T @ y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.H @ y, dense.conj().T @ y, rtol=1e-12, atol=1e-12)


def test_integer_weights_give_a_float64_operator():
    layer = cm.Conv(np.arange(8).reshape(2, 1, 2, 2), (1, 3, 4))
    op = layer.operator()
    assert op.dtype == np.float64
    x = np.arange(12.0)
    np.testing.assert_array_equal(op @ x, layer.matrix() @ x)
    assert (op @ x).dtype == np.float64


def test_the_operator_never_builds_the_matrix(monkeypatch):
    layer = cm.Conv(seeded("never").standard_normal((3, 2, 3, 3)), (2, 8, 8), padding=1,
                    padding_mode="reflect")
    expected = layer.matrix() @ np.ones(128)
    expected_t = layer.matrix().T @ np.ones(layer.matrix_shape[0])

    def refuse(*args, **kwargs):
        raise AssertionError("the operator built the matrix")

    monkeypatch.setattr(sp, "csr_array", refuse)
    monkeypatch.setattr(type(layer), "_build_matrix", refuse)
    op = layer.operator()
    np.testing.assert_allclose(op @ np.ones(128), expected, rtol=1e-12)
    np.testing.assert_allclose(op.T @ np.ones(op.shape[0]), expected_t, rtol=1e-12)
    np.testing.assert_allclose(layer.T.operator() @ np.ones(op.shape[0]), expected_t, rtol=1e-12)


def test_matmat_in_several_batches_equals_one(monkeypatch):
    layer = cm.ConvTranspose(seeded("batches").standard_normal((2, 3, 3)), (2, 5), stride=2)
    X = seeded("batches", "X").standard_normal((layer.matrix_shape[1], 7))
    whole = layer.operator() @ X
    monkeypatch.setattr(linop, "CHUNK_BYTES", 1)  # one column per batch
    # the tiled kernels take every column at once unless progress is reported
    seen: list[int] = []
    batches = linop.LayerOperator(layer, progress=lambda done, total: seen.append(done)) @ X
    assert seen == list(range(8))
    np.testing.assert_allclose(batches, whole, rtol=1e-14)
    np.testing.assert_allclose(layer.operator() @ X, whole, rtol=1e-14)
    np.testing.assert_allclose(whole, layer.matrix() @ X, rtol=1e-12)


def test_operator_shape_is_checked_by_scipy():
    op = cm.Conv(np.ones((1, 1, 2)), (1, 4)).operator()
    with pytest.raises(ValueError, match="dimension mismatch"):
        op.matvec(np.ones(5))


def test_stack_operator_matches_the_product_of_matrices():
    stack = sample_stack()
    assert_operator_matches_matrix(stack, "stack")
    product = stack.layers[0].matrix()
    for layer in stack.layers[1:]:
        product = layer.matrix() @ product
    x = seeded("stack", "x").standard_normal(stack.matrix_shape[1])
    np.testing.assert_allclose(stack.operator() @ x, product @ x, rtol=1e-10, atol=1e-12)
    assert_operator_matches_matrix(stack.T, "stack.T")


@pytest.mark.parametrize("index", range(9))
def test_each_layer_kind_operator_matches_its_matrix(index):
    layer = sample_stack().layers[index]
    assert_operator_matches_matrix(layer, ("kind", index))
    assert_operator_matches_matrix(layer.T, ("kind.T", index))


@pytest.mark.parametrize("case", oracle.select("keras"), ids=lambda c: c["id"])
def test_keras_layer_operator_matches_its_matrix(case):
    """Keras layouts (channels last): the operator moves axes around the core convolution."""
    a = oracle.arrays(case)
    layer = cm.from_keras(case["layer"], a["kernel"], case["input_shape"])
    assert_operator_matches_matrix(layer, case["id"])
    assert_operator_matches_matrix(layer.T, case["id"])
