"""The box-by-box builder: exact against dense reference matrices, bounded cache, value refresh,
merged padding taps exact or refused."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convmatrix as cm
from convmatrix import reference
from convmatrix.geometry.indices import index_table, stored_entries
from tests.helpers import rng as _rng

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]


def _dense_reference(weight: np.ndarray, input_shape: tuple[int, ...], **geometry) -> np.ndarray:
    """The matrix of the reference convolution, column by column, in a wide integer dtype.

    Column ``i`` is ``reference.conv`` of the ``i``-th unit input: independent of the builder
    and exact (the weights are widened to int64, or kept as float64).
    """
    wide = weight.astype(np.int64 if weight.dtype.kind in "biu" else np.float64)
    n_in = int(np.prod(input_shape))
    columns = []
    for i in range(n_in):
        x = np.zeros(n_in, dtype=wide.dtype)
        x[i] = 1
        columns.append(reference.conv(x.reshape(input_shape), wide, **geometry).ravel())
    return np.stack(columns, axis=1)


def _canonical(matrix) -> bool:
    csr = matrix.tocsr() if matrix.format != "csr" else matrix
    for r in range(csr.shape[0]):
        row = csr.indices[csr.indptr[r]:csr.indptr[r + 1]]
        if np.any(np.diff(row) <= 0):
            return False
    return True


def _assert_exact(C, dense: np.ndarray, dtype) -> None:
    assert C.dtype == np.dtype(dtype)
    assert _canonical(C)
    got = C.toarray().astype(dense.dtype)
    if dense.dtype.kind == "f":  # merged float taps round in the weight's own precision
        tol = 1e-12 if np.dtype(dtype).itemsize >= 8 else 1e-6
        np.testing.assert_allclose(got, dense, rtol=tol, atol=tol)
    else:
        assert np.array_equal(got, dense)


# --------------------------------------------------------------------------------------------
# few row channels: a deterministic grid against the dense reference, C and Cᵀ as CSR

FEW_CHANNELS = [  # (C_out, C_in, groups)
    (1, 1, 1), (1, 2, 1), (2, 1, 1), (3, 1, 1), (2, 2, 2), (1, 3, 1),
]
GEOMETRIES_2D = [
    dict(stride=1, padding="same"), dict(stride=2, padding=1), dict(stride=(1, 2), padding=2),
    dict(stride=1, padding=((0, 2), (1, 0)), dilation=(2, 1)), dict(stride=3, padding=0),
]


@pytest.mark.parametrize("channels", FEW_CHANNELS, ids=str)
@pytest.mark.parametrize("geometry", GEOMETRIES_2D, ids=str)
@pytest.mark.parametrize("mode", MODES)
def test_few_channels_grid_exact(channels, geometry, mode):
    c_out, c_in, groups = channels
    rng = _rng(channels, geometry, mode)
    weight = rng.integers(-9, 10, (c_out, c_in // groups, 3, 3)).astype(np.int32)
    ishape = (c_in, 6, 7)
    geometry = dict(geometry, groups=groups, padding_mode=mode)
    dense = _dense_reference(weight, ishape, **geometry)
    spec = cm.conv_spec(weight.shape, ishape, **geometry)
    _assert_exact(cm.spec_matrix(spec, weight), dense, np.int32)
    _assert_exact(cm.spec_matrix(spec, weight, format="csc"), dense, np.int32)
    transposed = cm.spec_matrix(spec, weight, direction="adjoint", format="csr")
    assert transposed.format == "csr"
    _assert_exact(transposed, dense.T, np.int32)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.float32, np.float64])
def test_single_channel_nd_exact(ndim, mode, dtype):
    rng = _rng(ndim, mode, np.dtype(dtype).name)
    kernel = (3, 2, 3)[:ndim]
    ishape = (1, *(7, 5, 4)[:ndim])
    weight = (rng.integers(-3, 4, (1, 1, *kernel)) if np.dtype(dtype).kind == "i"
              else rng.standard_normal((1, 1, *kernel))).astype(dtype)
    geometry = dict(stride=(1, 2, 1)[:ndim], padding=1, dilation=(2, 1, 1)[:ndim],
                    padding_mode=mode)
    dense = _dense_reference(weight, ishape, **geometry)
    C = cm.conv_matrix(weight, ishape, **geometry)
    _assert_exact(C, dense, dtype)
    spec = cm.conv_spec(weight.shape, ishape, **geometry)
    _assert_exact(cm.spec_matrix(spec, weight, direction="adjoint", format="csr"), dense.T, dtype)
    assert C.nnz == stored_entries(spec)


def test_stem_like_transposed_csr_few_input_channels():
    # the ResNet stem's shape in small: 3 input channels, 7×7, stride 2, pad 3
    rng = _rng("stem")
    weight = rng.integers(-5, 6, (4, 3, 7, 7)).astype(np.int64)
    geometry = dict(stride=2, padding=3)
    dense = _dense_reference(weight, (3, 11, 12), **geometry)
    spec = cm.conv_spec(weight.shape, (3, 11, 12), **geometry)
    _assert_exact(cm.spec_matrix(spec, weight, direction="adjoint", format="csr"), dense.T,
                  np.int64)
    up = cm.conv_transpose_matrix(weight, spec.output_shape, stride=2, padding=3,
                                  output_padding=(0, 1), format="csr")
    _assert_exact(up, dense.T, np.int64)


def test_long_single_channel_rows_split_into_chunks():
    # long axes exceed the per-box table (TAIL_ENTRIES): rows are written in chunks
    from convmatrix.builder.layout import TAIL_ENTRIES

    n = 3 * TAIL_ENTRIES + 17
    weight = np.array([[[1, -2, 3]]], dtype=np.int64)
    C = cm.conv_matrix(weight, (1, n), padding=1)
    x = _rng("long").integers(-5, 6, n)
    assert np.array_equal(C @ x, np.convolve(x, weight[0, 0][::-1], "same"))
    assert _canonical(C)


@st.composite
def few_channel_layers(draw):
    ndim = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    c_out = groups * draw(st.sampled_from([1, 1, 2]))
    c_in = groups * draw(st.sampled_from([1, 1, 2]))
    mode = draw(st.sampled_from(MODES))
    kernel, size, stride, dilation, padding = [], [], [], [], []
    for _ in range(ndim):
        k, d, s = draw(st.integers(1, 4)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
        n = draw(st.integers(max(1, d * (k - 1) + 1 - 2), 6))
        limit = {"reflect": n - 1, "circular": n, "symmetric": n}.get(mode, 3)
        pair = [draw(st.integers(0, min(3, limit))) for _ in range(2)]
        if n + sum(pair) < d * (k - 1) + 1:
            n = d * (k - 1) + 1
        kernel.append(k)
        size.append(n)
        stride.append(s)
        dilation.append(d)
        padding.append(tuple(pair))
    dtype = draw(st.sampled_from([np.int16, np.int64, np.float64]))
    return (c_out, c_in // groups, *kernel), (c_in, *size), dtype, dict(
        stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation), groups=groups,
        padding_mode=mode)


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer=few_channel_layers(), seed=st.integers(0, 2**32 - 1))
def test_property_few_channels_exact(layer, seed):
    wshape, ishape, dtype, geometry = layer
    rng = np.random.default_rng(seed)
    weight = (rng.integers(-20, 21, wshape) if np.dtype(dtype).kind == "i"
              else rng.standard_normal(wshape)).astype(dtype)
    dense = _dense_reference(weight, ishape, **geometry)
    spec = cm.conv_spec(wshape, ishape, **geometry)
    _assert_exact(cm.spec_matrix(spec, weight), dense, dtype)
    _assert_exact(cm.spec_matrix(spec, weight, direction="adjoint", format="csr"), dense.T, dtype)


# --------------------------------------------------------------------------------------------
# merged padding taps: exact, or refused with the reason


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "symmetric"])
def test_merged_taps_exact_when_they_fit(dtype, mode):
    info = np.iinfo(dtype)
    # a quarter of the range: the sums of the (at most three) merged taps still fit
    value = int(info.max) // 4 if info.min == 0 else int(info.min) // 4
    weight = np.full((1, 1, 5), value, dtype=dtype)
    dense = _dense_reference(weight, (1, 3), padding=2, padding_mode=mode)
    assert dense.max() > value or dense.min() < value  # some entries really merge taps
    C = cm.conv_matrix(weight, (1, 3), padding=2, padding_mode=mode)
    _assert_exact(C, dense, dtype)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int64, np.uint64])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "symmetric"])
def test_merged_taps_that_overflow_are_refused(dtype, mode):
    info = np.iinfo(dtype)
    weight = np.full((1, 1, 5, 1), info.max, dtype=dtype)
    with pytest.raises(cm.ConvMatrixError,
                       match=rf"dtype {np.dtype(dtype).name}.*padding_mode='{mode}'.*add up to "):
        cm.conv_matrix(weight, (1, 3, 2), padding=((2, 2), (0, 0)), padding_mode=mode)
    with pytest.raises(cm.ConvMatrixError, match="outside the"):
        spec = cm.conv_spec(weight.shape, (1, 3, 2), padding=((2, 2), (0, 0)), padding_mode=mode)
        cm.spec_matrix(spec, weight, direction="adjoint", format="csr")


def test_merged_int64_sums_beyond_float_precision_are_exact():
    big = 2**60 + 1
    weight = np.array([[[big, 3, -big + 5]]], dtype=np.int64)
    C = cm.conv_matrix(weight, (1, 2), padding=1, padding_mode="replicate")
    dense = _dense_reference(weight, (1, 2), padding=1, padding_mode="replicate")
    assert np.array_equal(C.toarray(), dense)
    assert C.toarray()[0].tolist() == [big + 3, -big + 5]


def test_bool_weights_refused_when_true_taps_merge():
    weight = np.ones((1, 1, 3, 3), dtype=bool)
    with pytest.raises(cm.ConvMatrixError, match=r"`weight` is bool.*sum [2-9].*astype\(int\)"):
        cm.conv_matrix(weight, (1, 4, 4), padding=1, padding_mode="reflect")
    # merged entries whose taps hold at most one True are exact bools
    weight = np.zeros((1, 1, 3, 3), dtype=bool)
    weight[0, 0, 1, 1] = weight[0, 0, 0, 1] = True
    C = cm.conv_matrix(weight, (1, 4, 4), padding=1, padding_mode="reflect")
    dense = _dense_reference(weight, (1, 4, 4), padding=1, padding_mode="reflect")
    assert C.dtype == bool and np.array_equal(C.toarray().astype(np.int64), dense)


# --------------------------------------------------------------------------------------------
# the cache: bounded, clearable, small against the matrix


def test_clear_cache_and_size():
    cm.cache.clear_cache()
    assert cm.cache.cache_nbytes() == 0
    cm.conv_matrix(np.ones((2, 1, 3, 3)), (1, 16, 16), padding=1)
    assert cm.cache.cache_nbytes() > 0
    cm.cache.clear_cache()
    assert cm.cache.cache_nbytes() == 0


def test_cache_budget_is_respected():
    previous = cm.cache.set_cache_budget(200_000)
    try:
        cm.cache.clear_cache()
        for n, k in itertools.product(range(10, 40, 3), (1, 3, 5)):
            C = cm.conv_matrix(np.ones((1, 1, k, k)), (1, n, n), padding=k // 2)
            assert C.shape == (n * n, n * n)
            assert cm.cache.cache_nbytes() <= 200_000
        cm.cache.set_cache_budget(0)
        assert cm.cache.cache_nbytes() == 0
        C = cm.conv_matrix(np.ones((1, 1, 3, 3)), (1, 9, 9), padding=1)
        assert C.nnz == (9 * 3 - 2) ** 2 and cm.cache.cache_nbytes() == 0
    finally:
        cm.cache.set_cache_budget(previous)
    with pytest.raises(cm.ConvMatrixError, match=r"`max_bytes` \(=-1\) must be a non-negative"):
        cm.cache.set_cache_budget(-1)


@pytest.mark.parametrize("k", [3, 7])
def test_kept_cache_is_small_against_the_matrix(k):
    cm.cache.clear_cache()
    C = cm.conv_matrix(np.ones((1, 1, k, k), dtype=np.float32), (1, 256, 256), padding="same")
    matrix_bytes = C.data.nbytes + C.indices.nbytes + C.indptr.nbytes
    del C
    assert 0 < cm.cache.cache_nbytes() <= 0.25 * matrix_bytes


def test_index_table_api_still_matches_the_matrix():
    spec = cm.conv_spec((1, 1, 3, 3), (1, 5, 6), stride=(2, 1), padding=1,
                        padding_mode="circular")
    table = index_table(spec)
    C = cm.spec_matrix(spec, np.ones((1, 1, 3, 3), dtype=np.int64))
    assert np.array_equal(table.pattern.indptr, C.indptr)
    assert np.array_equal(table.pattern.indices, C.indices)
    CT = cm.spec_matrix(spec, np.ones((1, 1, 3, 3), dtype=np.int64), direction="adjoint",
                        format="csr")
    assert np.array_equal(table.transposed_pattern.indices, CT.indices)


# --------------------------------------------------------------------------------------------
# value refresh


@pytest.mark.parametrize("transpose,fmt", [(False, "csr"), (False, "csc"), (True, "csr"),
                                           (True, "csc")])
@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_refresh_equals_fresh_build(transpose, fmt, mode):
    rng = _rng(transpose, fmt, mode)
    spec = cm.conv_spec((3, 2, 3, 3), (2, 9, 8), stride=(2, 1), padding=1, padding_mode=mode)
    w1 = rng.standard_normal(spec.weight_shape)
    w2 = rng.standard_normal(spec.weight_shape)
    direction = "adjoint" if transpose else "forward"
    first = cm.spec_matrix(spec, w1, direction=direction, format=fmt)
    before = first.toarray()
    fresh = cm.spec_matrix(spec, w2, direction=direction, format=fmt)
    refreshed = cm.spec_matrix(spec, w2, direction=direction, format=fmt, like=first)
    assert refreshed.format == fmt and refreshed.indices is first.indices
    assert np.array_equal(refreshed.indptr, fresh.indptr)
    assert np.array_equal(refreshed.indices, fresh.indices)
    assert np.array_equal(refreshed.data, fresh.data)
    assert np.array_equal(first.toarray(), before)  # `like` is left alone
    dense = _dense_reference(w2, (2, 9, 8), stride=(2, 1), padding=1, padding_mode=mode)
    np.testing.assert_allclose(refreshed.toarray(), dense.T if transpose else dense,
                               rtol=1e-12, atol=1e-12)


def test_refresh_refuses_a_matrix_of_another_layout():
    spec = cm.conv_spec((1, 1, 3, 3), (1, 8, 8), padding=1)
    other = cm.conv_matrix(np.ones((1, 1, 3, 3)), (1, 8, 8))
    with pytest.raises(cm.ConvMatrixError, match=r"`like`.*not a matrix built by convmatrix"):
        cm.spec_matrix(spec, np.ones((1, 1, 3, 3)), like=other)
    C = cm.spec_matrix(spec, np.ones((1, 1, 3, 3)))
    with pytest.raises(cm.ConvMatrixError, match=r"`like`.*not a matrix built"):
        cm.spec_matrix(spec, np.ones((1, 1, 3, 3)), format="csc", like=C)
    with pytest.raises(cm.ConvMatrixError, match="'coo'"):
        cm.spec_matrix(spec, np.ones((1, 1, 3, 3)), format="coo", like=C.tocoo())


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("kind", ["Conv", "ConvTranspose"])
def test_layer_matrix_weight_keyword_refreshes_values(kind, fmt):
    rng = _rng(kind, fmt)
    weight = rng.integers(-4, 5, (2, 3, 3, 2)).astype(np.int64)
    if kind == "Conv":
        layer = cm.Conv(weight, (3, 7, 6), stride=2, padding=1)
        geometry = dict(stride=2, padding=1)
    else:
        layer = cm.ConvTranspose(weight, (2, 4, 3), stride=2, padding=1, output_padding=1)
        geometry = dict(stride=2, padding=1, output_padding=1)
    first = layer.matrix(fmt)
    other = rng.integers(-4, 5, weight.shape).astype(np.int16)
    refreshed = layer.matrix(fmt, weight=other)
    assert refreshed.indices is first.indices and refreshed.dtype == np.int16
    assert np.array_equal(layer.weight, weight)  # the layer keeps its own weight
    # against the reference, column by column
    x_shape = layer.input_shape
    n_in = int(np.prod(x_shape))
    cols = []
    for i in range(n_in):
        x = np.zeros(n_in, dtype=np.int64)
        x[i] = 1
        fn = reference.conv if kind == "Conv" else reference.conv_transpose
        cols.append(fn(x.reshape(x_shape), other.astype(np.int64), **geometry).ravel())
    assert np.array_equal(refreshed.toarray(), np.stack(cols, axis=1))
    # refreshed matrices dropped in between: the pattern lives while any matrix shares it
    for _ in range(2):
        assert layer.matrix(fmt, weight=other).indices is first.indices
    # once the last matrix is edited in place, the next refresh builds afresh
    refreshed.data[:] = 0
    refreshed.eliminate_zeros()
    again = layer.matrix(fmt, weight=other)
    assert np.array_equal(again.toarray(), np.stack(cols, axis=1))
    with pytest.raises(cm.ConvMatrixError, match=r"`weight` has shape \(1,"):
        layer.matrix(fmt, weight=np.ones((1, 3, 3, 2)))
