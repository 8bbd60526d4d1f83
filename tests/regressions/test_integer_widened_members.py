"""Issue 16 item 3 (the rest): a stack widened by the integer rule builds its members in the
widened type, so an int8 circular (or reflect/replicate) convolution whose taps merge on a
small input to a sum past 127 is exact inside the stack instead of refused.

Before: ``Sequential([int8 circular conv with weights 100 on length 2, ...]).matrix()`` raised
"their weights add up to 200, outside the int8 range" although the stack's dtype was int16.
Oracle: the dense loops of :mod:`convmatrix.reference` applied to unit vectors with int64
weights, multiplied in int64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import reference


def _dense(layer: cm.Conv) -> np.ndarray:
    """The layer's matrix in int64, column by column from the reference (no builder code)."""
    spec = layer.spec
    weight = layer.weight.astype(np.int64)
    n = math.prod(spec.input_shape)
    columns = []
    for j in range(n):
        x = np.zeros(n, np.int64)
        x[j] = 1
        columns.append(reference.conv(x.reshape(spec.input_shape), weight, stride=spec.stride,
                                      padding=spec.padding, dilation=spec.dilation,
                                      groups=spec.groups,
                                      padding_mode=spec.padding_mode).ravel())
    dense = np.stack(columns, axis=1)
    return dense if layer.direction == "forward" else dense.T


def _merging_conv(rng: np.random.Generator, shape: tuple[int, ...]) -> cm.Conv:
    """An int8 conv whose padding makes several taps read one pixel (weights near ±100)."""
    ndim = len(shape) - 1
    mode = str(rng.choice(["circular", "reflect", "replicate"]))
    kernel = tuple(int(k) for k in rng.integers(2, 4, ndim))
    padding = tuple(min(k - 1, n if mode == "circular" else n - 1)
                    for k, n in zip(kernel, shape[1:], strict=True))
    c_out = int(rng.integers(1, 3))
    weight = rng.choice([-100, 90, 100, 120], size=(c_out, shape[0], *kernel)).astype(np.int8)
    return cm.Conv(weight, shape, padding=padding, padding_mode=mode)


@pytest.mark.parametrize("seed", range(20))
def test_widened_stack_builds_merging_members_exactly(seed):
    rng = np.random.default_rng(seed)
    shape: tuple[int, ...] = (int(rng.integers(1, 3)), *(int(n) for n in
                                                         rng.integers(2, 4, rng.integers(1, 3))))
    layers = []
    for _ in range(int(rng.integers(1, 4))):
        try:
            layer = _merging_conv(rng, shape)
        except cm.ConvMatrixError:
            continue
        layers.append(layer)
        shape = layer.output_shape
    if not layers:
        pytest.skip("no valid layer drawn")
    if rng.random() < 0.5:  # the adjoint of a merging conv (an Adjoint, not a ConvTranspose)
        layers.append(layers[-1].T)
        dense_last = _dense(layers[-2]).T
    else:
        dense_last = None
    stack = cm.Sequential(layers)
    expected = np.eye(layers[0].matrix_shape[1], dtype=np.int64)
    for index, layer in enumerate(layers):
        dense = dense_last if index == len(layers) - 1 and dense_last is not None else (
            _dense(layer))
        expected = dense @ expected
    assert stack.dtype.kind == "i" and stack.dtype.itemsize >= 2
    matrix = stack.matrix()
    assert matrix.dtype == stack.dtype
    np.testing.assert_array_equal(matrix.toarray().astype(np.int64), expected)
    # the stack's own apply agrees with the same reference
    x = rng.integers(-3, 4, size=layers[0].input_shape).astype(np.int8)
    np.testing.assert_array_equal(np.asarray(stack(x)).ravel().astype(np.int64),
                                  expected @ x.ravel().astype(np.int64))


def test_the_issue_case():
    conv = cm.Conv(np.full((1, 1, 3), 100, np.int8), (1, 2), padding=1,
                   padding_mode="circular")
    with pytest.raises(cm.ConvMatrixError, match="int8"):
        conv.matrix()  # alone, its own dtype: refused, as documented
    stack = cm.Sequential([conv, cm.Conv(np.full((1, 1, 1), 2, np.int16), (1, 2))])
    assert stack.dtype == np.int16
    np.testing.assert_array_equal(stack.matrix().toarray(), [[200, 400], [400, 200]])
