"""``as_sample_shape``: the one check of a user's one-sample ``input_shape`` (architecture rule 4).

Every refusal path names the parameter, shows the value and says what is allowed; what is
accepted comes back as a tuple of Python ints equal to the sizes given.
"""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.geometry.spec import as_sample_shape


@pytest.mark.parametrize(("value", "expected"), [
    ((1, 4, 4), (1, 4, 4)),
    ([3, 5], (3, 5)),
    ((7,), (7,)),
    ((np.int64(1), np.int32(4), np.uint8(4)), (1, 4, 4)),
    (np.array([2, 3, 4]), (2, 3, 4)),
    ((np.array(2), 3), (2, 3)),                      # a 0-d integer array is an int
    (range(1, 4), (1, 2, 3)),
    ((1, 2**63 - 1), (1, 2**63 - 1)),
])
def test_accepts_positive_ints_of_any_kind_as_python_ints(value, expected):
    shape = as_sample_shape(value)
    assert shape == expected
    assert type(shape) is tuple and all(type(v) is int for v in shape)


# (value, keyword arguments, what the message must say): each refusal path once
REFUSED = [
    ("144", {}, r"`input_shape` \(='144'\) must be a tuple of positive ints \(one sample's shape"),
    (b"\x01\x04", {}, r"`input_shape` \(=b'\\x01\\x04'\) must be a tuple of positive ints"),
    (5, {}, r"`input_shape` \(=5\) must be a tuple of positive ints"),
    (None, {}, r"`input_shape` \(=None\) must be a tuple"),
    (np.array(8), {}, r"`input_shape` \(=array\(8\)\) must be a tuple"),
    ((1, 4.5, 4), {}, r"`input_shape` \(=4.5\) must be an integer: .*got 4.5 in \(1, 4.5, 4\)"),
    ((1, 4.0, 4), {}, r"`input_shape` \(=4.0\) must be an integer: .*got 4.0 in \(1, 4.0, 4\)"),
    ((1, np.float64(4.0)), {}, r"`input_shape` \(=np.float64\(4.0\)\) must be an integer"),
    ((True, 4), {}, r"`input_shape` \(=True\) must be an integer: .*got True in \(True, 4\)"),
    ((np.bool_(True), 4), {}, r"`input_shape` \(=np.True_\) must be an integer"),
    ((1, "4"), {}, r"`input_shape` \(='4'\) must be an integer"),
    ((1, None), {}, r"`input_shape` \(=None\) must be an integer"),
    (((1, 2), 3), {}, r"`input_shape` \(=\(1, 2\)\) must be an integer"),
    (np.array([1.0, 2.0]), {}, r"`input_shape` \(=np.float64\(1.0\)\) must be an integer"),
    ((0, 4, 4), {}, r"`input_shape` \(=\(0, 4, 4\)\) must be a tuple of positive ints "
                    r"\(one sample's shape, no batch axis\): sizes are ints >= 1, got 0"),
    ((1, -3), {}, r"`input_shape` \(=\(1, -3\)\) must be a tuple of positive ints.*got -3"),
    ((1, 2**63), {}, r"`input_shape` \(=\(1, 9223372036854775808\)\) must be at most 2\*\*63 − 1"),
    ((), {}, r"`input_shape` \(=\(\)\) must have at least one axis \(one sample's shape"),
    ((1, 4), {"rank": 3}, r"`input_shape` \(=\(1, 4\)\) must have 3 axes \(one sample's shape"),
    ((1, 1, 4, 4), {"rank": 3}, r"must have 3 axes .*; drop the batch axis\)"),
    ((1, 1), {"minimum": 2}, r"`input_shape` \(=\(1, 1\)\) must be a tuple of ints >= 2 .*got 1"),
    ((1, 4.5), {"integral_floats": True}, r"`input_shape` \(=4.5\) must be an integer"),
    ((1, float("nan")), {"integral_floats": True}, r"`input_shape` \(=nan\) must be an integer"),
    ((1, 0), {"name": "input"}, r"^`input` \(=\(1, 0\)\) must be a tuple of positive ints"),
    ("abc", {"layout": "(C, *spatial)"},
     r"\(='abc'\) must be a tuple of positive ints \(one sample's shape \(C, \*spatial\), no "
     r"batch axis\)"),
]


@pytest.mark.parametrize(("value", "kwargs", "message"), REFUSED,
                         ids=[f"{i}-{r[0]!r}"[:40] for i, r in enumerate(REFUSED)])
def test_refusals_name_the_parameter_the_value_and_what_is_allowed(value, kwargs, message):
    with pytest.raises(cm.ConvMatrixError, match=message):
        as_sample_shape(value, **kwargs)


def test_integral_floats_are_read_as_ints_only_when_asked():
    shape = as_sample_shape((1, 4.0, np.float32(2.0)), integral_floats=True)
    assert shape == (1, 4, 2) and all(type(v) is int for v in shape)
    assert as_sample_shape((1, 4), integral_floats=True) == (1, 4)
    with pytest.raises(cm.ConvMatrixError, match="must be an integer"):
        as_sample_shape((1, 4.0))


def test_rank_and_minimum_accept_what_they_allow():
    assert as_sample_shape((2, 5, 5), rank=3) == (2, 5, 5)
    assert as_sample_shape((), rank=0) == ()
    assert as_sample_shape((0, 3), minimum=0) == (0, 3)


def test_conv_spec_reads_input_shape_through_it():
    spec = cm.conv_spec((1, 1, 3, 3), (np.int64(1), 5, 5))
    assert spec.input_shape == (1, 5, 5)
    with pytest.raises(cm.ConvMatrixError, match=r"`input_shape` \(='155'\) must be a tuple"):
        cm.conv_spec((1, 1, 3, 3), "155")
