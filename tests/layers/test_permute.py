"""cm.Permute (issue 18): one sample's axes permuted, against ``numpy.transpose``.

The matrix is checked column by column against numpy.transpose of unit vectors, the adjoint
against the inverse permutation and the dot test, the matrix-free operator against the matrix,
and bad ``axes`` are refused by name.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng as seeded

CASES = [((5,), (0,)), ((2, 3), (1, 0)), ((2, 3, 4), (2, 0, 1)), ((2, 3, 4), (0, 2, 1)),
         ((3, 1, 2, 2), (3, 1, 0, 2)), ((2, 3, 4), (-1, 0, -2)), ((2, 1, 3, 2, 2), None)]


@pytest.mark.parametrize("shape, axes", CASES)
def test_permute_matches_numpy_transpose(shape, axes):
    layer = cm.Permute(shape, axes)
    x = seeded("permute", shape, axes).standard_normal(shape)
    expected = np.transpose(x, axes)
    assert layer.output_shape == expected.shape
    np.testing.assert_array_equal(layer(x), expected)
    # the matrix column by column: column j is numpy.transpose of the j-th unit sample
    size = math.prod(shape)
    dense = np.stack([np.transpose(np.eye(size, dtype=np.int64)[j].reshape(shape), axes).ravel()
                      for j in range(size)], axis=1)
    matrix = layer.matrix()
    assert matrix.dtype == np.int64 and matrix.nnz == size
    np.testing.assert_array_equal(matrix.toarray(), dense)
    for format in ("csc", "coo"):
        np.testing.assert_array_equal(layer.matrix(format).toarray(), dense)
    # batch, adjoint = inverse permutation, operator, dot test
    batch = seeded("permute batch", shape).standard_normal((3, *shape))
    np.testing.assert_array_equal(layer(batch), np.stack([np.transpose(b, axes) for b in batch]))
    y = seeded("permute y", shape).standard_normal(layer.output_shape)
    inverse = np.argsort(np.arange(len(shape))[list(axes)] if axes is not None
                         else np.arange(len(shape))[::-1])
    np.testing.assert_array_equal(layer.T(y), np.transpose(y, inverse))
    assert isinstance(layer.T, cm.Permute) and layer.T.T is layer
    np.testing.assert_array_equal(layer.T.matrix().toarray(), dense.T)
    operator = layer.operator()
    np.testing.assert_array_equal(operator.matvec(x.ravel()), expected.ravel())
    np.testing.assert_array_equal(operator.rmatvec(y.ravel()), layer.T(y).ravel())
    assert np.isclose(np.dot(y.ravel(), layer(x).ravel()), np.dot(layer.T(y).ravel(), x.ravel()))
    assert layer.abs_row_sum() == 1
    assert np.all(layer.offset() == 0)


def test_every_permutation_of_three_axes_against_torch_permute():
    torch = pytest.importorskip("torch")
    shape = (2, 3, 4)
    x = seeded("permute torch").standard_normal(shape)
    for axes in itertools.permutations(range(3)):
        expected = torch.from_numpy(x).permute(*axes).contiguous().numpy()
        np.testing.assert_array_equal(cm.Permute(shape, axes)(x), expected)


def test_permute_integers_stay_exact_and_repr():
    layer = cm.Permute((2, 3), (1, 0))
    assert repr(layer) == "Permute(2×3 → 3×2, axes (1, 0))"
    data = np.array([[2**62, 1, 2], [3, 4, 5]], dtype=np.int64)
    np.testing.assert_array_equal(layer(data), data.T)
    assert cm.Permute((2, 3, 4), (-1, 0, 1)).axes == (2, 0, 1)


def test_permute_in_a_stack_with_a_convolution():
    conv = cm.Conv(seeded("perm conv").standard_normal((2, 3, 3)), (3, 6))
    stack = cm.Sequential([conv, cm.Permute(conv.output_shape, (1, 0))])
    x = seeded("perm conv x").standard_normal((3, 6))
    np.testing.assert_allclose(stack(x), conv(x).T)
    np.testing.assert_allclose(stack.matrix().toarray() @ x.ravel(), conv(x).T.ravel())


@pytest.mark.parametrize("axes, pattern", [
    ((0, 1), r"`axes` \(=\(0, 1\)\) must be a permutation of range\(3\).*exactly once"),
    ((0, 0, 1), r"`axes` \(=\(0, 0, 1\)\) must be a permutation of range\(3\)"),
    ((0, 1, 3), r"`axes` \(=\(0, 1, 3\)\) must be a permutation of range\(3\).*got 3"),
    ((0, 1, 1.0), r"`axes` .*got 1.0"),
    ((0, -3, 1), r"`axes` \(=\(0, -3, 1\)\) must be a permutation"),  # -3 is axis 0 again
    ("012", r"`axes` \(='012'\) must be a permutation"),
    (2, r"`axes` \(=2\) must be a permutation"),
])
def test_bad_axes_are_refused_by_name(axes, pattern):
    with pytest.raises(cm.ConvMatrixError, match=pattern):
        cm.Permute((2, 3, 4), axes)


def test_bad_shape_and_budget():
    with pytest.raises(cm.ConvMatrixError, match="`input_shape`"):
        cm.Permute((2, 0), (1, 0))
    big = cm.Permute((64, 4000, 4000), (1, 2, 0))
    with pytest.raises(cm.ConvMatrixError, match="max_bytes"):
        big.matrix(max_bytes=10**6)
