"""Issue 17's single-input kinds (Scale, Linear, Flatten, Reshape, Slice, GlobalAvgPool,
AdaptiveAvgPool) against live torch:
``torch.func.jacrev`` for the matrix, the torch function for the output and the offset, the
adjoint dot test, the matrix-free operator against the matrix, streamed row blocks, integer
exactness, bad input and the ``max_bytes`` refusal before any allocation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

import convmatrix as cm
from tests.helpers import rng as seeded

hypothesis = pytest.importorskip("hypothesis")
torch = pytest.importorskip("torch")
given, settings = hypothesis.given, hypothesis.settings

from tests.layer_strategies import (  # noqa: E402
    new_kind_layers,
    new_kind_stacks,
    torch_function,
)


def jacobian(function, shape):
    """``torch.func.jacrev`` of ``function`` at a random point, as a (out, in) numpy array."""
    x = torch.from_numpy(seeded("jacobian", shape).standard_normal(shape))
    jac = torch.func.jacrev(function)(x)
    out = function(x)
    return jac.reshape(out.numel(), x.numel()).numpy()


def check_against_torch(layer, function, key):
    """Matrix = jacrev, offset = f(0), layer(x) = f(x), adjoint, operator, dot test, blocks."""
    matrix = layer.matrix()
    assert matrix.shape == layer.matrix_shape
    assert matrix.dtype == layer.dtype
    np.testing.assert_allclose(matrix.toarray(), jacobian(function, layer.input_shape),
                               rtol=1e-12, atol=1e-12)
    zero = torch.zeros(layer.input_shape, dtype=torch.float64)
    np.testing.assert_allclose(layer.offset(), function(zero).reshape(-1).numpy(),
                               rtol=1e-12, atol=1e-12)
    rng = seeded("check", key)
    x = rng.standard_normal((3, *layer.input_shape))
    expected = np.stack([function(torch.from_numpy(s)).numpy() for s in x])
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer(x[0]), expected[0], rtol=1e-12, atol=1e-12)
    # the adjoint: a layer whose matrix is the transpose, and the dot test through both applies
    np.testing.assert_allclose(layer.T.matrix().toarray(), matrix.T.toarray(), rtol=1e-12,
                               atol=1e-12)
    n, m = matrix.shape[1], matrix.shape[0]
    v, a = rng.standard_normal(n), rng.standard_normal(m)
    op = layer.operator()
    forward = op.matvec(v)
    backward = layer.T(a.reshape(layer.output_shape)).reshape(-1)
    assert np.dot(a, forward) == pytest.approx(np.dot(backward, v), rel=1e-12, abs=1e-12)
    dense = matrix.toarray()
    np.testing.assert_allclose(forward, dense @ v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.rmatvec(a), dense.T @ a, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.matmat(rng.standard_normal((n, 2))).shape, (m, 2))
    for format in ("csc", "coo"):
        np.testing.assert_allclose(layer.matrix(format).toarray(), dense, rtol=1e-12, atol=1e-12)
    blocks = list(layer.matrix_blocks(max(1, m // 3)))
    np.testing.assert_allclose(sp.vstack(blocks).toarray(), dense, rtol=1e-12, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(new_kind_layers)
def test_new_kind_matches_torch(layer):
    check_against_torch(layer, torch_function(layer, torch), repr(layer))


@settings(max_examples=40, deadline=None)
@given(new_kind_stacks())
def test_stack_of_new_kinds_matches_torch(stack):
    conv = stack.layers[0]
    weight = torch.tensor(np.array(conv.weight))
    bias = torch.tensor(conv.offset()[::math.prod(conv.output_shape[1:])].copy())
    rest = [torch_function(layer, torch) for layer in stack.layers[1:]]

    def function(x):
        y = torch.nn.functional.conv2d(x[None], weight, bias)[0]
        for step in rest:
            y = step(y)
        return y

    check_against_torch(stack, function, repr(stack))


def test_global_and_adaptive_pools_express_torch_s_global_means():
    x = seeded("means").standard_normal((3, 4, 5))
    t = torch.from_numpy(x)
    one = cm.from_torch(torch.nn.AdaptiveAvgPool2d(1), x.shape)
    keep = cm.GlobalAvgPool(x.shape, keepdims=True)
    flat = cm.GlobalAvgPool(x.shape)
    assert one.output_shape == keep.output_shape == (3, 1, 1) and flat.output_shape == (3,)
    for layer, expected in ((one, t.mean(dim=(1, 2), keepdim=True)), (keep, t.mean(dim=(1, 2),
                            keepdim=True)), (flat, t.mean(dim=(1, 2)))):
        np.testing.assert_allclose(layer(x), expected.numpy(), rtol=1e-13)
    np.testing.assert_allclose(one.matrix().toarray(), flat.matrix().toarray(), rtol=1e-15)
    assert repr(flat.T) == "Adjoint(GlobalAvgPool(3×4×5 → 3, mean over axes 1, 2))"


def test_adaptive_bins_are_torch_s_rule():
    from convmatrix.layers.adaptive import adaptive_bins

    for n in range(1, 12):
        for out in range(1, 14):
            for i, (start, end) in enumerate(adaptive_bins(n, out)):
                assert start == math.floor(i * n / out)
                assert end == math.ceil((i + 1) * n / out)


def test_slice_with_a_negative_step_selects_as_numpy():
    x = np.arange(24).reshape(2, 3, 4)
    for axis, start, stop, step in [(2, None, None, -1), (1, -1, 0, -2), (0, 5, -9, -1),
                                    (-1, 3, None, -3)]:
        layer = cm.Slice(x.shape, axis, start, stop, step)
        index = (slice(None),) * (axis % 3) + (slice(start, stop, step),)
        np.testing.assert_array_equal(layer(x), x[index])
        # the matrix column by column: the slice of each unit vector
        eye = np.eye(x.size, dtype=np.int64).reshape(-1, *x.shape)
        expected = np.stack([e[index].reshape(-1) for e in eye], axis=1)
        np.testing.assert_array_equal(layer.matrix().toarray(), expected)
        y = np.arange(math.prod(layer.output_shape)).reshape(layer.output_shape)
        assert np.dot(y.ravel(), layer(x).ravel()) == np.dot(layer.T(y).ravel(), x.ravel())


def test_scale_and_linear_reprs_and_adjoint_kinds():
    assert repr(cm.Scale((2, 3), 0.5)) == "Scale(2×3 → 2×3, scale 0.5)"
    assert repr(cm.Scale((2, 3), [1, 2, 3], shift=[[1], [2]])) == \
        "Scale(2×3 → 2×3, scale per 3, shift per 2×1)"
    assert isinstance(cm.Scale((2, 3), 2, shift=1).T, cm.Scale)
    assert not np.any(cm.Scale((2, 3), 2, shift=1).T.offset())
    assert repr(cm.Linear(np.ones((3, 4)))) == "Linear(4 → 3)"
    assert repr(cm.Flatten((2, 3)).T) == "Reshape(6 → 2×3)"
    assert repr(cm.Slice((5, 2), 0, None, None, 2)) == "Slice(5×2 → 3×2, axis 0, 0:5:2)"


def test_scale_zeros_are_not_stored_and_jacobian_of_relu_is_a_scale():
    x = seeded("relu").standard_normal((2, 3, 3))
    layer = cm.Scale(x.shape, (x > 0).astype(np.float64))
    jac = jacobian(torch.relu, x.shape)  # at another point: compare at x itself
    jac = torch.func.jacrev(torch.relu)(torch.from_numpy(x)).reshape(18, 18).numpy()
    np.testing.assert_array_equal(layer.matrix().toarray(), jac)
    assert layer.matrix().nnz == int((x > 0).sum())


# --- dtypes and integer exactness ------------------------------------------------------------


def test_dtypes_follow_the_parameters():
    assert cm.Scale((2,), np.float32(2)).dtype == np.float32
    assert cm.Scale((2,), np.ones(2, np.float32)).dtype == np.float32
    assert cm.Scale((2,), np.ones(2, np.float32), shift=1).dtype == np.float32  # weak number
    assert cm.Scale((2,), np.ones(2, np.int8), shift=1).dtype == np.int8
    assert cm.Scale((2,), 2, shift=0.5).dtype == np.float64
    assert cm.Scale((2,), np.ones(2, np.int8), shift=0.5).dtype == np.float64
    assert cm.Linear(np.ones((2, 3), np.float32)).matrix().dtype == np.float32
    for layer in (cm.Flatten((2, 2)), cm.Reshape((4,), (2, 2)), cm.Slice((4,), 0, 1, 3)):
        assert layer.dtype == np.int64 and layer.matrix().dtype == np.int64


def test_integer_results_are_exact_or_refused():
    scale = cm.Scale((2,), np.array([100, -100], np.int8), shift=np.int8(7))
    out = scale(np.array([100, 100], np.int8))
    assert out.dtype == np.int16
    assert out.tolist() == [10007, -9993]
    linear = cm.Linear(np.full((2, 3), 100, np.int8), bias=np.array([1, -1], np.int8))
    out = linear(np.full(3, 100, np.int8))
    assert out.dtype == np.int16 and out.tolist() == [30001, 29999]
    assert linear.abs_row_sum() == 300
    huge = cm.Linear(np.full((1, 4), 2**62, np.int64))
    with pytest.raises(cm.ConvMatrixError, match="beyond int64"):
        huge(np.full(4, 2, np.int64))
    data = np.arange(4, dtype=np.uint8)  # selections widen as cm.Identity does
    assert cm.Slice((4,), 0, 1, None)(data).dtype == cm.Identity((4,))(data).dtype
    assert cm.Flatten((2, 2))(np.ones((2, 2), bool)).dtype == np.int64
    stack = cm.Sequential([cm.Flatten((2, 2)), cm.Linear(np.full((1, 4), 100, np.int8)),
                           cm.Scale((1,), np.int8(100))])
    assert stack(np.full((2, 2), 100, np.int8)).tolist() == [4_000_000]
    assert stack.matrix().toarray().tolist() == [[10000] * 4]


def test_complex_scale_adjoint_is_the_plain_transpose_and_the_operator_conjugates():
    scale = cm.Scale((3,), np.array([1j, 2, -1j]))
    assert scale.matrix().dtype == np.complex128
    y = np.array([1.0, 1j, 2.0])
    np.testing.assert_allclose(scale.operator().rmatvec(y), np.conj(scale.scale) * y)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("build, pattern", [
    (lambda: cm.Scale((2, 3), np.ones(4)), r"`scale` has shape \(4,\).*broadcast.*\(2, 3\)"),
    (lambda: cm.Scale((3,), np.ones((2, 3))), r"`scale` has shape \(2, 3\)"),
    (lambda: cm.Scale((2, 3), 1, shift=np.ones((3, 1))), r"`shift` has shape \(3, 1\)"),
    (lambda: cm.Scale((2, 3), "a"), r"`scale` has dtype <U1"),
    (lambda: cm.Scale((2, 0), 1), r"`input_shape` .* ints >= 1.*got 0"),
    (lambda: cm.Scale((), 1), r"`input_shape` \(=\(\)\) must have at least one axis"),
    (lambda: cm.Scale(3, 1), r"`input_shape` \(=3\) must be a tuple"),
    (lambda: cm.Linear(np.ones(3)), r"`weight` has shape \(3,\); it must be \(out_features"),
    (lambda: cm.Linear(np.ones((2, 0))), r"`weight` has shape \(2, 0\)"),
    (lambda: cm.Linear(np.ones((2, 3)), input_shape=(2, 2)),
     r"`input_shape` \(=\(2, 2\)\) has 4 values.*in_features=3"),
    (lambda: cm.Linear(np.ones((2, 3)), bias=np.ones(3)),
     r"`bias` has shape \(3,\).*\(2,\)"),
    (lambda: cm.Linear(np.ones((2, 3), dtype=object)), r"`weight` has dtype object"),
    (lambda: cm.Reshape((2, 3), (4, -1)), r"`shape` \(=\(4, -1\)\) cannot hold `input_shape` "
                                          r"\(2, 3\) \(6 values\)"),
    (lambda: cm.Reshape((2, 3), (4, 2)), r"`shape` \(=\(4, 2\)\) holds 8 values but "
                                         r"`input_shape` \(2, 3\) holds 6"),
    (lambda: cm.Reshape((2, 3), (-1, -1)), r"at most one -1"),
    (lambda: cm.Reshape((2, 3), (0, 6)), r"`shape` .* got 0"),
    (lambda: cm.Reshape((2, 3), (2.0, 3)), r"`shape` .* got 2.0"),
    (lambda: cm.Slice((2, 3), 2, 0, 1), r"`axis` \(=2\) must be an axis of the sample"),
    (lambda: cm.Slice((2, 3), 1, 0, 1, 0), r"`step` \(=0\) must be a non-zero int"),
    (lambda: cm.Slice((2, 3), 1, 2, 1), r"selects nothing from axis 1 of size 3"),
    (lambda: cm.Slice((2, 3), 1, 0.5, 1), r"`start` \(=0.5\) must be an int"),
    (lambda: cm.Slice((2, 3), 1, 0, "2"), r"`stop` \(='2'\) must be an int"),
    (lambda: cm.Flatten([2, True]), r"`input_shape`.*got True"),
    (lambda: cm.GlobalAvgPool((3,)), r"`input_shape` \(=\(3,\)\) has no spatial axes"),
    (lambda: cm.GlobalAvgPool((3, 4), axes=(0, 1)), r"averages every axis.*keepdims=True"),
    (lambda: cm.GlobalAvgPool((3, 4), axes=(1, -1)), r"`axes` \(=\(1, -1\)\) must name one "
                                                     r"or more distinct axes"),
    (lambda: cm.GlobalAvgPool((3, 4), axes=2), r"`axes` \(=2\) must be an axis of the sample"),
    (lambda: cm.GlobalAvgPool((3, 4), keepdims=1), r"`keepdims` \(=1\) must be True or False"),
    (lambda: cm.AdaptiveAvgPool((3, 4), (2, 2)), r"`output_size` \(=\(2, 2\)\) must be an int "
                                                 r"or 1 entries"),
    (lambda: cm.AdaptiveAvgPool((3, 4), 0), r"`output_size` \(=0\) must be an int >= 1"),
    (lambda: cm.AdaptiveAvgPool((3,), 2), r"`input_shape` \(=\(3,\)\) must be \(C, \*spatial\)"),
    (lambda: cm.AdaptiveAvgPool((3, 4, 4), (2, 1.5)), r"`output_size` \(=1.5\) must be an int"),
])
def test_bad_input_names_the_parameter(build, pattern):
    with pytest.raises(cm.ConvMatrixError, match=pattern):
        build()


@pytest.mark.parametrize("layer", [
    cm.Scale((300, 300, 300), 2.0),
    cm.Flatten((300, 300, 300)),
    cm.Reshape((300, 300, 300), (-1, 300)),
    cm.Slice((300, 300, 300), 1, 1, None),
    cm.Linear(np.ones((1000, 1000))),
    cm.GlobalAvgPool((300, 300, 300)),
    cm.AdaptiveAvgPool((30, 300, 300), (200, 200)),
])
def test_max_bytes_refuses_before_building(layer, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the matrix was built")

    monkeypatch.setattr(type(layer), "_build_matrix", never)
    with pytest.raises(cm.ConvMatrixError, match="max_bytes"):
        layer.matrix(max_bytes=10**6)
    with pytest.raises(cm.ConvMatrixError, match="max_bytes"):
        layer.T.matrix(max_bytes=10**6)


def test_apply_guard_refuses_before_allocating():
    with pytest.raises(cm.ConvMatrixError, match="max_bytes"):
        cm.Scale((10, 10), 2.0)(np.ones((10**4, 10, 10)), max_bytes=10**5)


def test_explain_and_report_go_through_the_presenter():
    for layer in (cm.Scale((2, 3), 2, shift=1), cm.Linear(np.ones((3, 4))), cm.Flatten((1, 2, 2)),
                  cm.Reshape((4,), (2, 2)), cm.Slice((3, 2, 2), 0, 1, None),
                  cm.GlobalAvgPool((2, 3, 3)), cm.AdaptiveAvgPool((2, 5, 5), 3)):
        text = layer.explain().to_markdown()
        assert repr(layer) in text
        assert repr(layer) in layer.report()
        assert layer.T.explain().to_markdown()
