"""``conv_apply``/``conv_apply_adjoint`` on small integer types: exact or refused.

Found by the strided-adjoint fuzz (issue 19): the low-level entry points compute in
``compute_dtype`` (uint8 × uint8 → uint8) as documented, and a product that did not fit
wrapped around with no error (200·200 + 200·200 gave 128). The layers and operators widen by
the integer rule first; these refuse instead, naming the argument, the bound and the dtype.
"""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import reference
from convmatrix.builder import apply


def test_a_uint8_product_that_would_wrap_is_refused():
    spec = cm.conv_spec((1, 1, 2), (1, 3))
    weight = np.array([[[200, 200]]], dtype=np.uint8)
    x = np.array([[[200, 200, 200]]], dtype=np.uint8)
    with pytest.raises(cm.ConvMatrixError, match=r"`x` \(uint8\).*80,000.*uint8 \(max 255\)"):
        apply.conv_apply(spec, weight, x)
    wide = apply.conv_apply(spec, weight.astype(np.int64), x)
    np.testing.assert_array_equal(wide[0], reference.conv(x[0].astype(np.int64),
                                                          weight.astype(np.int64)))
    assert wide[0, 0, 0] == 80_000


def test_an_int16_adjoint_that_would_wrap_is_refused():
    rng = np.random.default_rng(31)
    weight = rng.integers(-120, 121, (3, 2, 3, 3)).astype(np.int16)
    spec = cm.conv_spec(weight.shape, (2, 6, 6), stride=2, padding=1)
    y = np.full((1, *spec.output_shape), 300, dtype=np.int16)
    with pytest.raises(cm.ConvMatrixError, match=r"`y` \(int16\).*beyond int16"):
        apply.conv_apply_adjoint(spec, weight, y)


def test_products_that_fit_stay_in_their_dtype_and_are_exact():
    rng = np.random.default_rng(32)
    weight = rng.integers(0, 3, (2, 1, 3, 3)).astype(np.uint8)
    spec = cm.conv_spec(weight.shape, (1, 7, 7), stride=2, padding=1)
    x = rng.integers(0, 10, (2, *spec.input_shape)).astype(np.uint8)  # ≤ 9·18 = 162 ≤ 255
    y = rng.integers(0, 3, (2, *spec.output_shape)).astype(np.uint8)
    forward = apply.conv_apply(spec, weight, x)
    adjoint = apply.conv_apply_adjoint(spec, weight, y)
    assert forward.dtype == adjoint.dtype == np.uint8
    for j in range(2):
        np.testing.assert_array_equal(
            forward[j], reference.conv(x[j].astype(np.int64), weight.astype(np.int64),
                                       stride=2, padding=1))
        np.testing.assert_array_equal(
            adjoint[j], reference.conv_adjoint(y[j].astype(np.int64), weight.astype(np.int64),
                                               spec.input_shape, stride=2, padding=1))
