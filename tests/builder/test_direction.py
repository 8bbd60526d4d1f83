"""The direction of a map is a literal (``"forward"`` / ``"adjoint"``), never a bool."""

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import verification
from convmatrix.builder import budget
from convmatrix.geometry.view import direction_keyword

SPEC = cm.conv_spec((2, 1, 3, 3), (1, 5, 6), stride=2, padding=1)
WEIGHT = np.arange(1, 19).reshape(2, 1, 3, 3)


def _same(a, b):
    assert a.format == b.format and a.shape == b.shape and a.dtype == b.dtype
    assert np.array_equal(a.toarray(), b.toarray())


@pytest.mark.parametrize("bad", [True, False, 1, "transpose", None, "Forward"])
@pytest.mark.parametrize("call", [
    lambda d: cm.spec_matrix(SPEC, WEIGHT, direction=d),
    lambda d: cm.estimate_nbytes(SPEC, direction=d),
    lambda d: cm.verify(WEIGHT, (1, 5, 6), direction=d),
    lambda d: verification.verify_spec(SPEC, WEIGHT, direction=d),
], ids=["spec_matrix", "estimate_nbytes", "verify", "verify_spec"])
def test_direction_is_validated_and_named(call, bad):
    with pytest.raises(cm.ConvMatrixError, match=r"`direction` \(=.*\) must be 'forward' or "
                                                 r"'adjoint'"):
        call(bad)


def test_the_testing_api_validates_direction():
    from convmatrix.testing import identify

    with pytest.raises(cm.ConvMatrixError, match=r"`direction` \(=True\) must be"):
        identify(lambda x: x, (1, 4), np.ones((1, 1, 1)), direction=True)


@pytest.mark.parametrize("fmt", [None, "csr", "csc", "coo"])
@pytest.mark.parametrize("transpose", [False, True])
def test_deprecated_transpose_gives_the_same_matrix(transpose, fmt):
    direction = "adjoint" if transpose else "forward"
    with pytest.deprecated_call(match=r"`transpose=` is deprecated.*direction="):
        old = cm.spec_matrix(SPEC, WEIGHT, transpose=transpose, format=fmt)
    _same(old, cm.spec_matrix(SPEC, WEIGHT, direction=direction, format=fmt))
    with pytest.deprecated_call():
        assert cm.estimate_nbytes(SPEC, transpose=transpose, format=fmt) == cm.estimate_nbytes(
            SPEC, direction=direction, format=fmt)


@pytest.mark.parametrize("transpose", [False, True])
def test_deprecated_verify_transpose(transpose):
    direction = "adjoint" if transpose else "forward"
    shape = (2, 3, 3) if transpose else (1, 5, 6)
    with pytest.deprecated_call():
        old = cm.verify(WEIGHT, shape, transpose=transpose, stride=2)
    new = cm.verify(WEIGHT, shape, direction=direction, stride=2)
    assert str(old) == str(new) and old.passed
    with pytest.deprecated_call():
        old = verification.verify_spec(SPEC, WEIGHT, transpose=transpose)
    assert str(old) == str(verification.verify_spec(SPEC, WEIGHT, direction=direction))


def test_deprecated_keyword_refuses_a_disagreeing_direction_and_a_non_bool():
    with pytest.deprecated_call(), pytest.raises(cm.ConvMatrixError, match="disagree"):
        cm.spec_matrix(SPEC, WEIGHT, transpose=False, direction="adjoint")
    with pytest.deprecated_call(), pytest.raises(cm.ConvMatrixError,
                                                 match=r"`transpose` \(='yes'\) must be a bool"):
        cm.spec_matrix(SPEC, WEIGHT, transpose="yes")


def test_direction_keyword_optional_and_names():
    assert direction_keyword(None, optional=True) is None
    with pytest.deprecated_call(match="`transposed=` is deprecated"):
        assert direction_keyword(None, True, old_name="transposed", optional=True) == "adjoint"
    with pytest.raises(cm.ConvMatrixError, match=r"`direction` \(=None\)"):
        direction_keyword(None)


def test_budget_estimates_take_a_direction():
    forward = budget.verification_nbytes(SPEC, np.float64)
    assert forward == budget.verification_nbytes(SPEC, np.float64, direction="forward")
    assert budget.report_nbytes(SPEC, np.float64, direction="adjoint") > 0
