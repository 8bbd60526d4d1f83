"""A fractional offset applied to integer data is computed, not truncated.

``cm.Pad(value=0.5)`` on an int64 sample used to return the padded sample with 0 in the
border (the offset cast to the data's integer type), so ``layer(x)`` differed from
``layer.matrix() @ x + layer.offset()``. The reference here is numpy's own constant pad in
floating point.
"""
import numpy as np
import pytest

import convmatrix as cm


@pytest.mark.parametrize("value", [0.5, -1.25, 1e-3])
def test_pad_fractional_value_on_integers(value):
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    layer = cm.Pad((2, 3, 4), (1, 2, 0, 1), value=value)
    expected = np.pad(x.astype(np.float64), ((0, 0), (0, 1), (1, 2)), constant_values=value)
    out = layer(x)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out.ravel(), layer.matrix() @ x.ravel() + layer.offset())


def test_fractional_offset_inside_a_stack_on_integers():
    x = np.arange(9).reshape(1, 3, 3)
    stack = cm.Sequential([cm.Pad((1, 3, 3), (1, 1, 1, 1), value=0.5),
                           cm.Conv(np.ones((1, 1, 2, 2), dtype=int), (1, 5, 5))])
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1)), constant_values=0.5)
    expected = (padded[:, :-1, :-1] + padded[:, 1:, :-1] + padded[:, :-1, 1:]
                + padded[:, 1:, 1:])
    np.testing.assert_array_equal(stack(x), expected)


def test_integral_offset_keeps_integer_results():
    x = np.arange(9).reshape(1, 3, 3)
    out = cm.Pad((1, 3, 3), (1, 1, 1, 1), value=2)(x)
    assert out.dtype.kind == "i"
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (1, 1), (1, 1)), constant_values=2))
