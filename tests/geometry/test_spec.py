"""Geometry validation and output-shape formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convmatrix as cm
from convmatrix import reference


def _closed_form_conv(n, k, s, p_before, p_after, d):
    return math.floor((n + p_before + p_after - d * (k - 1) - 1) / s) + 1


def _closed_form_transpose(n, k, s, p, d, a):
    return (n - 1) * s - 2 * p + d * (k - 1) + a + 1


@pytest.mark.parametrize(("n", "k", "s", "p", "d"), [
    v for v in itertools.product([1, 4, 7, 10], [1, 2, 3], [1, 2, 3], [0, 1, 2], [1, 2])
    if v[0] + 2 * v[3] >= v[4] * (v[1] - 1) + 1
])
def test_conv_output_shape_closed_form(n, k, s, p, d):
    shape = cm.conv_output_shape((3, 2, k), (2, n), stride=s, padding=p, dilation=d)
    assert shape == (3, _closed_form_conv(n, k, s, p, p, d))
    spec = cm.conv_spec((3, 2, k), (2, n), stride=s, padding=p, dilation=d)
    assert spec.matrix_shape == (3 * shape[1], 2 * n)
    # and the reference (independent code) agrees on the size
    out = reference.conv(np.zeros((2, n)), np.zeros((3, 2, k)), stride=s, padding=p, dilation=d)
    assert out.shape == shape


@pytest.mark.parametrize(("n", "k", "s", "p", "d"), list(
    itertools.product([1, 3, 5], [1, 2, 3, 4], [1, 2, 3], [0, 1], [1, 2])))
def test_conv_transpose_output_shape_closed_form(n, k, s, p, d):
    for a in range(max(s, d)):
        expected = _closed_form_transpose(n, k, s, p, d, a)
        if expected < 1:
            with pytest.raises(cm.ConvMatrixError, match="empty"):
                cm.conv_transpose_output_shape((2, 3, k), (2, n), stride=s, padding=p,
                                               output_padding=a, dilation=d)
            continue
        assert cm.conv_transpose_output_shape(
            (2, 3, k), (2, n), stride=s, padding=p, output_padding=a, dilation=d) == (3, expected)


def test_transposed_layer_maps_forward_output_back_to_input():
    # Dumoulin & Visin relationship 14: with a = (n + 2p − k) mod s the sizes round-trip
    for n, k, s, p in itertools.product(range(3, 9), range(1, 4), range(1, 4), range(2)):
        o = cm.conv_output_shape((1, 1, k), (1, n), stride=s, padding=p)[1]
        a = (n + 2 * p - k) % s
        assert cm.conv_transpose_output_shape((1, 1, k), (1, o), stride=s, padding=p,
                                              output_padding=a) == (1, n)


def test_spec_is_hashable_and_normalised():
    a = cm.conv_spec((2, 1, 3, 3), (2, 8, 8), stride=[2, 2], padding=1, groups=2)
    b = cm.conv_spec((2, 1, 3, 3), (2, 8, 8), stride=2, padding=((1, 1), (1, 1)), groups=2)
    assert a == b and hash(a) == hash(b)
    assert a.padding == ((1, 1), (1, 1)) and a.stride == (2, 2)
    assert cm.conv_spec((1, 1, 3), (1, 8), padding=np.int64(1)).padding == ((1, 1),)


ERRORS = [
    ({"weight_shape": (1, 1, 3, 3), "input_shape": (1, 0, 5)}, r"`input_shape` .* positive"),
    ({"weight_shape": (1, 1, 3, 3), "input_shape": (1, 5.0, 5)},
     r"`input_shape` \(=5.0\) must be an integer"),
    ({"stride": 0}, r"`stride` \(=0\) must be positive"),
    ({"stride": (1, 2, 3)}, r"`stride` .* sequence of 2 ints"),
    ({"stride": 1.5}, r"`stride` \(=1.5\) must be an integer"),
    ({"stride": True}, r"`stride` \(=True\) must be an integer"),
    ({"dilation": -1}, r"`dilation` \(=-1\) must be positive"),
    ({"padding": -1}, r"`padding` \(=-1\) must be non-negative"),
    ({"padding": ((1, -1), (0, 0))}, r"`padding` .* must be non-negative"),
    ({"padding": "full"}, r"`padding` \(='full'\) must be 'valid', 'same'"),
    ({"padding": "same", "stride": 2},
     r"`padding` \(='same'\) is not supported for strided convolutions"),
    ({"padding_mode": "mirror"}, r"`padding_mode` \(='mirror'\) must be one of"),
    ({"padding": 5, "padding_mode": "reflect"},
     r"must be smaller than the input size \(5\) for padding_mode='reflect'"),
    ({"padding": 6, "padding_mode": "circular"}, r"at most the input size \(5\)"),
    ({"weight_shape": (1, 2, 3, 3)}, r"`weight.shape\[1\]` \(=2\) times `groups` \(=1\) must "
                                     r"equal the input channels"),
    ({"weight_shape": (3, 1, 3, 3), "input_shape": (4, 5, 5), "groups": 2},
     r"`C_out` \(weight.shape\[0\]\) \(=3\) must be divisible by `groups` \(=2\)"),
    ({"weight_shape": (2, 1, 3, 3), "input_shape": (3, 5, 5), "groups": 2},
     r"`C_in` \(input_shape\[0\]\) \(=3\) must be divisible by `groups` \(=2\)"),
    ({"groups": 0}, r"`groups` \(=0\) must be positive"),
    ({"weight_shape": (1, 1, 3)}, r"`weight` has shape \(1, 1, 3\) .* 2 spatial axes"),
    ({"weight_shape": (1, 1, 5, 5), "input_shape": (1, 4, 9)},
     r"kernel \(effective size 5\) does not fit the padded input \(size 4\) along spatial axis 0"),
    ({"weight_shape": (1, 1, 3, 3), "input_shape": (1, 9, 4), "dilation": 2},
     r"kernel \(effective size 5\) does not fit the padded input \(size 4\) along spatial axis 1"),
]


@pytest.mark.parametrize(("overrides", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_conv_errors_name_parameter_and_value(overrides, message):
    args = {"weight_shape": (1, 1, 3, 3), "input_shape": (1, 5, 5), **overrides}
    weight = np.ones(args.pop("weight_shape"))
    input_shape = args.pop("input_shape")
    with pytest.raises(cm.ConvMatrixError, match=message):
        cm.conv_matrix(weight, input_shape, **args)


def test_one_d_pair_padding_hint():
    with pytest.raises(cm.ConvMatrixError, match=r"write \(\(1, 2\),\)"):
        cm.conv_matrix(np.ones((1, 1, 3)), (1, 8), padding=(1, 2))
    assert cm.conv_spec((1, 1, 3), (1, 8), padding=((1, 2),)).padding == ((1, 2),)


TRANSPOSE_ERRORS = [
    ({"output_padding": 2, "stride": 2},
     r"`output_padding` \(=\(2, 2\)\) must be smaller than either `stride`"),
    ({"output_padding": -1}, r"`output_padding` \(=-1\) must be >= 0"),
    ({"padding": "same"}, r"`padding` \(='same'\) is not supported for a transposed"),
    ({"weight_shape": (2, 1, 3, 3)}, r"`weight.shape\[0\]` \(=2\) must equal the input"),
    ({"padding": 3}, r"output would be empty along spatial axis 0"),
]


@pytest.mark.parametrize(("overrides", "message"), TRANSPOSE_ERRORS,
                         ids=[m for _, m in TRANSPOSE_ERRORS])
def test_conv_transpose_errors(overrides, message):
    args = {"weight_shape": (1, 1, 3, 3), "input_shape": (1, 2, 2), **overrides}
    weight = np.ones(args.pop("weight_shape"))
    input_shape = args.pop("input_shape")
    with pytest.raises(cm.ConvMatrixError, match=message):
        cm.conv_transpose_matrix(weight, input_shape, **args)


def test_weight_dtype_errors_are_type_errors():
    with pytest.raises(TypeError, match=r"dtype object.*convmatrix.symbolic"):
        cm.conv_matrix(np.array([[[1, "a"]]], dtype=object), (1, 4))
    with pytest.raises(TypeError, match="float16"):
        cm.conv_matrix(np.ones((1, 1, 2), dtype=np.float16), (1, 4))


def test_errors_are_value_errors():
    assert issubclass(cm.ConvMatrixError, ValueError)


HUGE = [
    ({"stride": 10**30}, r"`stride` \(=10{30}\) must be at most 2\*\*63 − 1"),
    ({"padding": 10**20}, r"`padding` \(=10{20}\) must be at most 2\*\*63 − 1"),
    ({"dilation": (1, 2**63)}, r"`dilation` \(=\(1, 9223372036854775808\)\) must be at most"),
    ({"input_shape": (1, 5, 10**20)}, r"`input_shape` \(=\(1, 5, 10{20}\)\) must be at most"),
    ({"groups": 2**64}, r"`groups` \(=18446744073709551616\) must be at most 2\*\*63 − 1"),
]


@pytest.mark.parametrize(("overrides", "message"), HUGE, ids=[m[:20] for _, m in HUGE])
def test_huge_ints_are_refused_by_name(overrides, message):
    args = {"input_shape": (1, 5, 5), **overrides}
    message = message.replace("10{30}", "1" + "0" * 30).replace("10{20}", "1" + "0" * 20)
    with pytest.raises(cm.ConvMatrixError, match=message):
        cm.conv_matrix(np.ones((1, 1, 3, 3)), args.pop("input_shape"), **args)


def test_huge_kernel_shape_is_refused_before_anything_is_built():
    with pytest.raises(cm.ConvMatrixError, match=r"`weight.shape` \(=\(1, 1, 1{20}"
                       .replace("1{20}", "1" + "0" * 20)):
        cm.conv_spec((1, 1, 10**20), (1, 8), padding=10**18)


def test_positions_that_would_wrap_int64_are_refused():
    # once returned a wrong entry: 3·(2**62 + 1) wrapped around int64
    with pytest.raises(cm.ConvMatrixError, match=r"`padding` \(=\(\(0, 18446744073709551624"):
        cm.conv_matrix(np.ones((1, 1, 1)), (1, 8), stride=2**62 + 1, padding=((0, 2**64 + 8),))
    with pytest.raises(cm.ConvMatrixError, match=r"padded input 8 \+ 0 \+ 9223372036854775800 "
                                                 r"= 9223372036854775808 long"):
        cm.conv_matrix(np.ones((1, 1, 1)), (1, 8), stride=2**62, padding=((0, 2**63 - 8),))
    with pytest.raises(cm.ConvMatrixError, match=r"reaches flat position"):
        cm.conv_spec((1, 1, 1, 1), (1, 3, 2**61), stride=(2**61, 1), padding=((2**61, 0), 0))
    with pytest.raises(cm.ConvMatrixError, match=r"the matrix would have shape"):
        cm.conv_spec((1, 2, 1, 1), (2, 2**62, 2))


def test_positions_just_inside_int64_are_exact():
    # two outputs; the second reads padded position 2**62 + 1, a zero of the padding
    C = cm.conv_matrix(np.full((1, 1, 1), 5), (1, 8), stride=2**62 + 1,
                       padding=((0, 2**62 + 8),))
    assert C.shape == (2, 8)
    assert C.toarray().tolist() == [[5, 0, 0, 0, 0, 0, 0, 0], [0] * 8]


def test_zero_d_arrays_are_ints():
    weight = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    as_arrays = cm.conv_matrix(weight, np.array((1, 8, 8)), stride=np.array(2),
                               padding=np.array(1), dilation=np.array(1), groups=np.array(1))
    x = np.arange(64.0).reshape(1, 8, 8)
    np.testing.assert_array_equal(as_arrays @ x.ravel(),
                                  reference.conv(x, weight, stride=2, padding=1).ravel())
    up = cm.conv_transpose_matrix(weight, (1, 4, 4), stride=np.array(2), padding=np.array(1),
                                  output_padding=np.array(1))
    assert up.shape == (64, 16)
    assert cm.conv_spec((1, 1, 3), (1, 8), padding=(np.array(1),)).padding == ((1, 1),)
    with pytest.raises(cm.ConvMatrixError, match=r"`stride` \(=array\(2.\)\) must be an integer"):
        cm.conv_matrix(weight, (1, 8, 8), stride=np.array(2.0))
    with pytest.raises(cm.ConvMatrixError, match=r"`input_shape` \(=array\(8\)\) must be a tup"):
        cm.conv_spec((1, 1, 3), np.array(8))


SPEC_FIELDS = {"in_channels": 2, "out_channels": 2, "input_size": (4,), "kernel_size": (2,),
               "stride": (1,), "padding": ((0, 0),), "dilation": (1,), "groups": 2,
               "padding_mode": "zeros", "output_size": (3,)}
DIRECT = [
    ({"out_channels": 3}, r"`out_channels` \(=3\) must be divisible by `groups` \(=2\)"),
    ({"groups": 0}, r"`groups` \(=0\) must be positive"),
    ({"in_channels": 2.0}, r"`in_channels` \(=2.0\) must be an integer"),
    ({"stride": (0,)}, r"`stride` \(=\(0,\)\) must be positive"),
    ({"stride": 1}, r"`stride` \(=1\) must be a tuple of 1 ints"),
    ({"kernel_size": (2, 2)}, r"`kernel_size` \(=\(2, 2\)\) must be a tuple of 1 ints"),
    ({"dilation": (True,)}, r"`dilation` \(=True\) must be an integer"),
    ({"padding": ((0, -1),)}, r"`padding` \(=\(\(0, -1\),\)\) must be non-negative"),
    ({"padding": (1,)}, r"`padding` \(=\(1,\)\) must be a tuple of 1 \(before, after\) pairs"),
    ({"padding": ((4, 0),), "padding_mode": "reflect", "output_size": (7,)},
     r"must be smaller than the input size \(4\) for padding_mode='reflect'"),
    ({"padding": ((5, 0),), "padding_mode": "circular", "output_size": (8,)},
     r"at most the input size \(4\) for padding_mode='circular'"),
    ({"padding_mode": "mirror"}, r"`padding_mode` \(='mirror'\) must be one of"),
    ({"output_size": (4,)}, r"`output_size` \(=\(4,\)\) must lie between 1 and the natural"),
    ({"input_size": ()}, r"at least one spatial axis"),
]


@pytest.mark.parametrize(("overrides", "message"), DIRECT, ids=[m[:30] for _, m in DIRECT])
def test_a_directly_built_invalid_spec_cannot_exist(overrides, message):
    with pytest.raises(cm.ConvMatrixError, match=message):
        cm.ConvSpec(**{**SPEC_FIELDS, **overrides})


def test_a_directly_built_spec_is_normalised_to_plain_int_tuples():
    spec = cm.ConvSpec(**{**SPEC_FIELDS, "input_size": [np.int64(4)], "padding": [[0, 0]],
                          "groups": np.int32(2)})
    assert spec == cm.ConvSpec(**SPEC_FIELDS) and hash(spec) == hash(cm.ConvSpec(**SPEC_FIELDS))
    assert type(spec.groups) is int and type(spec.input_size[0]) is int


def _entries_by_python_ints(w, n, s, pads, d):
    """Stored entries of a 1-D convolution computed with Python ints (no int64 anywhere)."""
    k, (before, after) = len(w), pads
    out = (n + before + after - (d * (k - 1) + 1)) // s + 1
    entries: dict[tuple[int, int], int] = {}
    for t in range(k):
        first = max(0, -(-(before - t * d) // s))  # first output whose tap t reaches index 0
        for o in range(first, min(out, first + n + 1)):
            i = o * s - before + t * d
            if 0 <= i < n:
                entries[(o, i)] = entries.get((o, i), 0) + w[t]
    return out, entries


_BIG = st.one_of(st.integers(1, 3), st.integers(1, 64).flatmap(
    lambda e: st.integers(max(1, 2**e - 3), 2**e + 3)))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(n=st.integers(1, 6), w=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       s=_BIG, d=_BIG, before=_BIG, after=_BIG, transpose=st.booleans())
def test_huge_geometry_is_exact_or_refused(n, w, s, d, before, after, transpose):
    pads = (before - 1, after - 1)
    weight = np.array([[w]])
    try:
        if transpose:
            out = cm.conv_output_shape(weight.shape, (1, n), stride=s, padding=(pads,),
                                       dilation=d)[1]
            a = cm.conv_spec(weight.shape, (1, n), stride=s, padding=(pads,),
                             dilation=d).remainder[0]
            if a >= max(s, d):
                return
            M = cm.conv_transpose_matrix(weight, (1, out), stride=s, padding=(pads,),
                                         output_padding=a, dilation=d, max_bytes=2**24).T
        else:
            M = cm.conv_matrix(weight, (1, n), stride=s, padding=(pads,), dilation=d,
                               max_bytes=2**24)
    except cm.ConvMatrixError as error:
        assert "2**63" in str(error) or "does not fit" in str(error) or "max_bytes" in str(
            error), str(error)
        return
    out, entries = _entries_by_python_ints(w, n, s, pads, d)
    coo = M.tocoo()
    got = {(int(r), int(c)): int(v) for r, c, v in zip(coo.row, coo.col, coo.data, strict=True)
           if v}
    assert M.shape == (out, n) and got == entries
