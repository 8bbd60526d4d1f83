"""One home each: the max_bytes check, the matrix estimate and guard, the index dtype."""

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.builder import budget, indexing, sparse
from convmatrix.geometry import shapes
from convmatrix.layers import base


@pytest.mark.parametrize("value", [0, 7, 2**40, np.int64(5), np.uint32(3), np.int8(0)])
def test_check_max_bytes_accepts_python_and_numpy_integers(value):
    result = budget.check_max_bytes(value)
    assert result == int(value) and type(result) is int


def test_check_max_bytes_accepts_none():
    assert budget.check_max_bytes(None) is None


@pytest.mark.parametrize("value", [True, False, np.bool_(True), -1, np.int64(-1), 1.5, 2.0,
                                   "10", np.array([1.0]), [3]])
def test_check_max_bytes_refuses_bool_float_negative(value):
    with pytest.raises(cm.ConvMatrixError, match=r"`max_bytes` \(=.*\) must be a non-negative "
                                                 r"int or None"):
        budget.check_max_bytes(value)


def test_check_max_bytes_names_the_argument():
    with pytest.raises(cm.ConvMatrixError, match=r"`--max-bytes` \(=-2\)"):
        budget.check_max_bytes(-2, "--max-bytes")


@pytest.mark.parametrize("build", [
    lambda m: cm.conv_matrix(np.ones((1, 1, 3)), (1, 9), max_bytes=m),
    lambda m: cm.Conv(np.ones((1, 1, 3)), (1, 9)).matrix(max_bytes=m),
    lambda m: cm.Sequential([cm.Conv(np.ones((1, 1, 3)), (1, 9))]).matrix(max_bytes=m),
], ids=["conv_matrix", "Layer.matrix", "Sequential.matrix"])
def test_every_builder_takes_numpy_budgets_and_refuses_the_same_values(build):
    assert build(np.int64(10**6)).shape == (7, 9)
    for bad in (True, -1, 1.5):
        with pytest.raises(cm.ConvMatrixError, match=r"`max_bytes` \(=.*\) must be a non-neg"):
            build(bad)


def test_one_home_for_each_helper():
    assert base.check_max_bytes is budget.check_max_bytes
    assert base.shape_text is shapes.shape_text
    assert sparse.estimate_nbytes is budget.estimate_nbytes is cm.estimate_nbytes
    assert sparse.DEFAULT_MAX_BYTES == budget.DEFAULT_MAX_BYTES == cm.DEFAULT_MAX_BYTES


def test_shape_text():
    assert shapes.shape_text((1, 3, 3)) == "1×3×3"
    assert shapes.shape_text(()) == ""
    assert shapes.shape_text([4]) == "4"


@pytest.mark.parametrize(("nnz", "shape", "expected"), [
    (10, (3, 4), np.int32),
    (2**31 - 1, (3, 4), np.int32),
    (2**31, (3, 4), np.int64),
    (6, (3, 2**31 - 1), np.int32),
    (6, (3, 2**31), np.int64),
    (6, (2**31, 3), np.int64),
])
def test_index_dtype_rule(nnz, shape, expected):
    assert indexing.index_dtype(nnz, shape) == np.dtype(expected)


def test_the_builder_and_the_estimate_agree_on_the_index_dtype():
    spec = cm.conv_spec((2, 2, 3, 3), (2, 8, 8))
    C = cm.spec_matrix(spec, np.ones(spec.weight_shape))
    nnz, nbytes = cm.estimate_nbytes(spec, np.float64)
    assert C.indices.dtype == indexing.index_dtype(nnz, spec.matrix_shape)
    assert nbytes == C.data.nbytes + C.indices.nbytes + C.indptr.nbytes


def test_matrix_guard_uses_the_estimate():
    spec = cm.conv_spec((1, 1, 3), (1, 9))
    _, nbytes = cm.estimate_nbytes(spec)
    cm.spec_matrix(spec, np.ones((1, 1, 3)), max_bytes=nbytes)
    with pytest.raises(cm.ConvMatrixError, match=r"over `max_bytes`"):
        cm.spec_matrix(spec, np.ones((1, 1, 3)), max_bytes=nbytes - 1)
