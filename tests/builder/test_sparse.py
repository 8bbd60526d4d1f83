"""The sparse builder against the oracle vectors, the dense reference and closed forms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import convmatrix as cm
from convmatrix import reference
from tests import oracle
from tests.cases import ONCE_FAILED
from tests.helpers import rng


def _is_canonical(matrix: sp.sparray) -> bool:
    """Strictly increasing column indices inside every row, checked without scipy's flags."""
    csr = matrix if matrix.format == "csr" else matrix.tocsr()
    indices, indptr = np.asarray(csr.indices), np.asarray(csr.indptr)
    if indices.size < 2:
        return True
    increasing = np.diff(indices) > 0
    row_starts = np.zeros(indices.size, dtype=bool)
    row_starts[indptr[1:-1][indptr[1:-1] < indices.size]] = True
    return bool(np.all(increasing | row_starts[1:]))


# ------------------------------------------------------------------------------------------
# the framework oracle (real torch runs)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("case", oracle.select("torch", "conv"), ids=lambda c: c["id"])
def test_torch_conv_oracle(case, fmt):
    a = oracle.arrays(case)
    C = cm.conv_matrix(a["weight"], case["input_shape"], stride=case["stride"],
                       padding=oracle.torch_padding(case), dilation=case["dilation"],
                       groups=case["groups"], padding_mode=case["padding_mode"], format=fmt)
    assert C.format == fmt
    assert C.shape == (a["y"].size, a["x"].size)
    np.testing.assert_allclose(C @ a["x"].ravel(), a["y"].ravel(), rtol=1e-12, atol=1e-12)
    # the transposed convolution is the input gradient: torch autograd's grad_in = Cᵀ grad_out
    np.testing.assert_allclose(C.T @ a["grad_out"].ravel(), a["grad_in"].ravel(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fmt", ["csc", "csr", "coo"])
@pytest.mark.parametrize("case", oracle.select("torch", "conv_transpose"),
                         ids=lambda c: c["id"])
def test_torch_conv_transpose_oracle(case, fmt):
    a = oracle.arrays(case)
    CT = cm.conv_transpose_matrix(a["weight"], case["input_shape"], stride=case["stride"],
                                  padding=case["padding"], output_padding=case["output_padding"],
                                  dilation=case["dilation"], groups=case["groups"], format=fmt)
    assert CT.format == fmt
    assert tuple(case["output_shape"]) == cm.conv_transpose_output_shape(
        a["weight"].shape, case["input_shape"], stride=case["stride"], padding=case["padding"],
        output_padding=case["output_padding"], dilation=case["dilation"], groups=case["groups"])
    np.testing.assert_allclose(CT @ a["x"].ravel(), a["y"].ravel(), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------
# the seed example, exact in integers


def test_seed_conv_is_exact_integer():
    C = cm.conv_matrix(np.ones((1, 1, 2, 2), dtype=np.int64), (1, 3, 3))
    assert C.dtype == np.int64
    assert (C @ np.ones(9, dtype=np.int64)).reshape(2, 2).tolist() == [[4, 4], [4, 4]]


def test_seed_conv_transpose_is_exact_integer():
    CT = cm.conv_transpose_matrix(np.ones((1, 1, 2, 2), dtype=np.int64), (1, 2, 2))
    assert (CT @ np.ones(4, dtype=np.int64)).reshape(3, 3).tolist() == [
        [1, 2, 1], [2, 4, 2], [1, 2, 1]]


# ------------------------------------------------------------------------------------------
# deterministic grids against the dense reference

GRID_2D = [
    dict(stride=s, padding=p, dilation=d, groups=g, padding_mode=m)
    for s, p, d, g, m in itertools.product(
        [1, 2, (1, 3)], [0, 1, (2, 0), ((1, 0), (0, 2)), "valid"], [1, (2, 1)], [1, 2],
        ["zeros", "reflect", "replicate", "circular"])
]


@pytest.mark.parametrize("geometry", GRID_2D, ids=str)
def test_conv_grid_2d_against_reference(geometry):
    data = rng("test_conv_grid_2d_against_reference", geometry)
    weight = data.standard_normal((4, 4 // geometry["groups"], 3, 2))
    x = data.standard_normal((4, 7, 6))
    C = cm.conv_matrix(weight, x.shape, **geometry)
    expected = reference.conv(x, weight, **geometry)
    np.testing.assert_allclose(C @ x.ravel(), expected.ravel(), rtol=1e-12, atol=1e-12)
    assert _is_canonical(C)


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv_nd_against_reference(ndim, mode):
    spatial = (5, 4, 6, 3)[:ndim]
    data = rng("test_conv_nd_against_reference", ndim, mode)
    weight = data.standard_normal((3, 2, *(2, 3, 2, 2)[:ndim]))
    x = data.standard_normal((2, *spatial))
    geometry = dict(stride=(2, 1, 1, 2)[:ndim], padding=1, dilation=(1, 1, 2, 1)[:ndim],
                    padding_mode=mode)
    C = cm.conv_matrix(weight, x.shape, **geometry)
    np.testing.assert_allclose(C @ x.ravel(), reference.conv(x, weight, **geometry).ravel(),
                               rtol=1e-12, atol=1e-12)


def test_same_padding_matches_torch_rule():
    # torch "same": d·(k−1) total, the odd extra after (right/bottom)
    data = rng("test_same_padding_matches_torch_rule")
    weight = data.standard_normal((2, 1, 4, 3))
    x = data.standard_normal((1, 6, 5))
    C = cm.conv_matrix(weight, x.shape, padding="same", dilation=(1, 2))
    explicit = cm.conv_matrix(weight, x.shape, padding=((1, 2), (2, 2)), dilation=(1, 2))
    assert (C != explicit).nnz == 0
    assert cm.conv_output_shape(weight.shape, x.shape, padding="same", dilation=(1, 2)) == (
        2, 6, 5)


# ------------------------------------------------------------------------------------------
# Hypothesis properties over random geometries


@st.composite
def conv_layers(draw, transpose=False):
    ndim = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    if transpose:
        padding = tuple(draw(st.integers(0, 2)) for _ in range(ndim))
        output_padding = tuple(draw(st.integers(0, max(s, d) - 1))
                               for s, d in zip(stride, dilation, strict=True))
        size = tuple(draw(st.integers(1, 5)) for _ in range(ndim))
        assume(all((n - 1) * s - 2 * p + d * (k - 1) + a + 1 >= 1 for n, s, p, d, k, a in zip(
            size, stride, padding, dilation, kernel, output_padding, strict=True)))
        return (c_in, c_out // groups, *kernel), (c_in, *size), dict(
            stride=stride, padding=padding, output_padding=output_padding, dilation=dilation,
            groups=groups)
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    size, padding = [], []
    for k, d in zip(kernel, dilation, strict=True):
        n = draw(st.integers(max(1, d * (k - 1) + 1 - 2), 7))
        limit = {"reflect": n - 1, "circular": n}.get(mode, 3)
        pair = (draw(st.integers(0, min(2, limit))), draw(st.integers(0, min(2, limit))))
        if n + sum(pair) < d * (k - 1) + 1:
            pair = (pair[0], d * (k - 1) + 1 - n - pair[0])
            if max(pair) > limit:
                n, pair = d * (k - 1) + 1, (0, 0)
        size.append(n)
        padding.append(pair)
    return (c_out, c_in // groups, *kernel), (c_in, *size), dict(
        stride=stride, padding=tuple(padding), dilation=dilation, groups=groups,
        padding_mode=mode)


PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(layer=conv_layers(), seed=st.integers(0, 2**32 - 1))
def test_property_conv_and_adjoint_against_reference(layer, seed):
    wshape, ishape, geometry = layer
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal(wshape)
    x = rng.standard_normal(ishape)
    C = cm.conv_matrix(weight, ishape, **geometry)
    y = reference.conv(x, weight, **geometry)
    assert C.shape == (y.size, x.size)
    np.testing.assert_allclose(C @ x.ravel(), y.ravel(), rtol=1e-11, atol=1e-11)
    assert _is_canonical(C)
    g = rng.standard_normal(y.shape)
    assert np.isclose(np.dot(C @ x.ravel(), g.ravel()), np.dot(x.ravel(), C.T @ g.ravel()),
                      rtol=1e-10, atol=1e-10)
    csc = cm.conv_matrix(weight, ishape, format="csc", **geometry)
    assert csc.format == "csc" and abs(csc - C).max() == 0


@PROPERTY
@given(layer=conv_layers(transpose=True), seed=st.integers(0, 2**32 - 1))
def test_property_conv_transpose_against_reference(layer, seed):
    wshape, ishape, geometry = layer
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal(wshape)
    y = rng.standard_normal(ishape)
    expected = reference.conv_transpose(y, weight, **geometry)
    CT = cm.conv_transpose_matrix(weight, ishape, **geometry)
    assert CT.shape == (expected.size, y.size)
    np.testing.assert_allclose(CT @ y.ravel(), expected.ravel(), rtol=1e-11, atol=1e-11)
    direct = cm.conv_transpose_matrix(weight, ishape, format="csr", **geometry)
    assert direct.format == "csr" and _is_canonical(direct)
    assert abs(direct - CT).max() == 0
    # the matched forward convolution, transposed, is the same matrix
    c_out = wshape[1] * geometry["groups"]
    C = cm.conv_matrix(weight, (c_out, *expected.shape[1:]), stride=geometry["stride"],
                       padding=geometry["padding"], dilation=geometry["dilation"],
                       groups=geometry["groups"])
    if all(a < s for a, s in zip(geometry["output_padding"], geometry["stride"], strict=True)):
        assert abs(C.T - CT).max() == 0  # same geometry exactly
    else:  # output_padding >= stride (allowed below the dilation): CT keeps C's first outputs
        assert C.shape[0] > CT.shape[1]


# ------------------------------------------------------------------------------------------
# dtypes, stored pattern, index dtypes


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.int32, np.int64, np.uint16,
                                   np.float32, np.float64, np.complex64, np.complex128])
def test_matrix_dtype_follows_weight(dtype):
    data = rng("test_matrix_dtype_follows_weight", dtype)
    weight = (data.integers(0, 3, (2, 2, 2, 2)) + (1j if np.dtype(dtype).kind == "c" else 0)
              ).astype(dtype)
    x = data.integers(0, 4, (2, 4, 4)).astype(dtype)
    C = cm.conv_matrix(weight, x.shape, padding=1)
    assert C.dtype == np.dtype(dtype)
    expected = reference.conv(x.astype(np.complex128), weight.astype(np.complex128), padding=1)
    np.testing.assert_allclose((C.astype(np.complex128) @ x.ravel().astype(np.complex128)),
                               expected.ravel(), rtol=1e-6)


def test_zero_weights_are_stored_pattern_is_connectivity():
    shape = (3, 2, 3, 3)
    C0 = cm.conv_matrix(np.zeros(shape), (2, 5, 5), padding=1)
    C1 = cm.conv_matrix(np.ones(shape), (2, 5, 5), padding=1)
    # closed form: per axis, taps reading a real pixel = 5·3 − 2 (one tap off each border)
    assert C0.nnz == C1.nnz == 3 * 2 * (5 * 3 - 2) ** 2
    assert np.array_equal(C0.indices, C1.indices) and np.array_equal(C0.indptr, C1.indptr)
    assert not C0.data.any()


def test_index_dtype_int32_for_ordinary_layers():
    C = cm.conv_matrix(np.ones((4, 4, 3, 3)), (4, 16, 16), padding=1)
    assert C.indices.dtype == C.indptr.dtype == np.int32


def test_index_dtype_int64_for_huge_input_with_few_entries():
    n = 3 * 10**9  # more columns than int32 holds; only six stored entries
    C = cm.conv_matrix(np.array([[[2.0, 3.0]]]), (1, n), stride=10**9)
    assert C.shape == (3, n)
    assert C.indices.dtype == C.indptr.dtype == np.int64
    assert C.indices.tolist() == [0, 1, 10**9, 10**9 + 1, 2 * 10**9, 2 * 10**9 + 1]
    assert C.data.tolist() == [2.0, 3.0] * 3


def test_index_dtype_int64_in_2d_with_wide_rows():
    side = 2**16  # 2**32 columns
    C = cm.conv_matrix(np.ones((1, 1, 1, 1)), (1, side, side), stride=2**15)
    assert C.shape == (4, 2**32) and C.indices.dtype == np.int64
    expected = [(i * 2**15) * side + j * 2**15 for i in range(2) for j in range(2)]
    assert C.indices.tolist() == expected


def test_memory_guard_refuses_before_allocating():
    with pytest.raises(cm.ConvMatrixError, match=r"GiB.*`max_bytes`"):
        cm.conv_matrix(np.ones((256, 256, 3, 3), dtype=np.float32), (256, 512, 512), padding=1)
    C = cm.conv_matrix(np.ones((2, 2, 3, 3)), (2, 8, 8), max_bytes=None)
    assert C.nnz == cm.estimate_nbytes(cm.conv_spec((2, 2, 3, 3), (2, 8, 8)))[0]
    with pytest.raises(cm.ConvMatrixError, match="max_bytes"):
        cm.conv_matrix(np.ones((2, 2, 3, 3)), (2, 8, 8), max_bytes=1000)


def test_reflect_taps_on_one_pixel_add_up():
    # n=3, pad 2, k=5: output 0 reads pixels 2,1,0,1,2 — weights of equal pixels add
    weight = np.array([[[1.0, 10.0, 100.0, 1000.0, 10000.0]]])
    C = cm.conv_matrix(weight, (1, 3), padding=2, padding_mode="reflect")
    assert C.toarray()[0].tolist() == [100.0, 1010.0, 10001.0]
    assert _is_canonical(C)


def test_circular_wrap_with_pad_equal_to_size():
    data = rng("test_circular_wrap_with_pad_equal_to_size")
    weight = data.standard_normal((1, 1, 5))
    x = data.standard_normal((1, 2))
    C = cm.conv_matrix(weight, x.shape, padding=2, padding_mode="circular")
    np.testing.assert_allclose(C @ x.ravel(), reference.conv(
        x, weight, padding=2, padding_mode="circular").ravel(), rtol=1e-12)


@pytest.mark.parametrize("case", ONCE_FAILED, ids=lambda c: c["why"][:40])
def test_cases_that_once_failed(case):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal(case["weight_shape"])
    x = rng.standard_normal(case["input_shape"])
    if case.get("transpose"):
        M = cm.conv_transpose_matrix(weight, x.shape, **case["geometry"])
        expected = reference.conv_transpose(x, weight, **case["geometry"])
    else:
        M = cm.conv_matrix(weight, x.shape, **case["geometry"])
        expected = reference.conv(x, weight, **case["geometry"])
    np.testing.assert_allclose(M @ x.ravel(), expected.ravel(), rtol=1e-12, atol=1e-12)


def test_format_keyword_and_default_views():
    data = rng("test_format_keyword_and_default_views")
    weight = data.standard_normal((2, 3, 3, 3))
    csr = cm.conv_matrix(weight, (3, 6, 6))
    assert csr.format == "csr"
    CT = cm.conv_transpose_matrix(weight, (2, 4, 4))
    assert CT.format == "csc"  # the free transposed view, no conversion
    assert abs(CT - csr.T).max() == 0
    with pytest.raises(cm.ConvMatrixError, match=r"`format` \(='dense'\)"):
        cm.conv_matrix(weight, (3, 6, 6), format="dense")
