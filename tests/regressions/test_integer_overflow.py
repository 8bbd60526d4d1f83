"""Issue 16 item 3: integer and bool products and applies are exact (widened) or refused."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import ConvMatrixError


def _dense_conv(weight: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Valid 2-d cross-correlation on object (Python int) arrays: an independent loop."""
    c_out, c_in, kh, kw = weight.shape
    _, h, w = x.shape
    out = np.zeros((c_out, h - kh + 1, w - kw + 1), dtype=object)
    for o, i, p, q, a, b in itertools.product(range(c_out), range(c_in), range(h - kh + 1),
                                              range(w - kw + 1), range(kh), range(kw)):
        out[o, p, q] += int(weight[o, i, a, b]) * int(x[i, p + a, q + b])
    return out


def _dense_matrix(weight: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    n = int(np.prod(shape))
    columns = []
    for j in range(n):
        e = np.zeros(n, dtype=object)
        e[j] = 1
        columns.append(_dense_conv(weight, e.reshape(shape)).ravel())
    return np.array(columns, dtype=object).T


def test_int8_product_matrix_is_exact() -> None:
    w = np.full((1, 1, 3, 3), 100, np.int8)
    stack = cm.Sequential([cm.Conv(w, (1, 5, 5)), cm.Conv(w, (1, 3, 3))])
    exact = _dense_matrix(w, (1, 3, 3)).dot(_dense_matrix(w, (1, 5, 5)))
    assert exact.max() == 90_000
    got = stack.matrix().toarray()
    assert np.issubdtype(got.dtype, np.integer)
    assert np.array_equal(got.astype(object), exact)
    assert stack.dtype == np.dtype(np.int32)  # the smallest type holding 900 · 900


def test_int8_apply_is_exact() -> None:
    w = np.full((1, 1, 3, 3), 100, np.int8)
    x = np.full((1, 5, 5), 100, np.int8)
    conv = cm.Conv(w, (1, 5, 5))
    got = conv(x)
    assert np.array_equal(got.astype(object), _dense_conv(w, x))
    assert got.max() == 90_000
    stack = cm.Sequential([conv, cm.Conv(w, (1, 3, 3))])
    exact = _dense_conv(w, _dense_conv(w, x))
    assert np.array_equal(stack(x).astype(object), exact)
    # the operator on integer data: exact too
    assert np.array_equal(stack.operator().matvec(x.ravel()).astype(object), exact.ravel())
    assert np.array_equal(stack.operator().rmatvec(np.full(1, 100, np.int8)).astype(object),
                          _dense_matrix(w, (1, 5, 5)).T.dot(
                              _dense_matrix(w, (1, 3, 3)).T.dot(np.full(1, 100, dtype=object))))


def test_int64_beyond_range_is_refused() -> None:
    conv = cm.Conv(np.full((1, 1, 1, 1), 2**62, np.int64), (1, 1, 1))
    with pytest.raises(ConvMatrixError, match="int64"):
        conv(np.full((1, 1, 1), 4, np.int64))
    with pytest.raises(ConvMatrixError, match="int64"):
        conv.operator().matvec(np.full(1, 4, np.int64))
    stack = cm.Sequential([conv, conv, conv])
    with pytest.raises(ConvMatrixError, match="int64"):
        stack.matrix()
    # in range: exact
    assert int(conv(np.ones((1, 1, 1), np.int64))[0, 0, 0]) == 2**62


def test_bool_product_counts_paths() -> None:
    w = np.ones((1, 1, 2, 2), bool)
    stack = cm.Sequential([cm.Conv(w, (1, 3, 3)), cm.Conv(w, (1, 2, 2))])
    exact = _dense_matrix(w, (1, 2, 2)).dot(_dense_matrix(w, (1, 3, 3)))
    got = stack.matrix().toarray()
    assert got.dtype.kind == "i"
    assert got.max() == 4
    assert np.array_equal(got.astype(object), exact)
    assert np.array_equal(stack(np.ones((1, 3, 3), bool)).ravel().astype(object),
                          exact.dot(np.ones(9, dtype=object)))


@pytest.mark.parametrize("seed", range(6))
def test_random_integer_stacks_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    dtype = [np.int8, np.int16, np.uint8][seed % 3]
    info = np.iinfo(dtype)
    w1 = rng.integers(info.min, info.max, (2, 1, 2, 2), endpoint=True).astype(dtype)
    w2 = rng.integers(info.min, info.max, (1, 2, 2, 2), endpoint=True).astype(dtype)
    x = rng.integers(info.min, info.max, (1, 4, 4), endpoint=True).astype(dtype)
    stack = cm.Sequential([cm.Conv(w1, (1, 4, 4)), cm.Conv(w2, (2, 3, 3))])
    m1, m2 = _dense_matrix(w1, (1, 4, 4)), _dense_matrix(w2, (2, 3, 3))
    assert np.array_equal(stack.matrix().toarray().astype(object), m2.dot(m1))
    assert np.array_equal(stack(x).ravel().astype(object),
                          _dense_conv(w2, _dense_conv(w1, x)).ravel())


def test_float_stays_float() -> None:
    stack = cm.Sequential([cm.Conv(np.ones((1, 1, 2), np.float32), (1, 4)),
                           cm.Conv(np.ones((1, 1, 2), np.float32), (1, 3))])
    assert stack.matrix().dtype == np.float32
    assert stack(np.ones((1, 4), np.float32)).dtype == np.float32
