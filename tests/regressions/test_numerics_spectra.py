"""Issue 16 item 19: norms and spectra of NaN/inf, huge, tiny and all-zero layers; verify at 1e308.

The independent check is numpy's dense SVD of the unscaled layer's matrix.
"""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import ConvMatrixError

W = np.random.default_rng(0).standard_normal((2, 2, 3, 3))


def _dense_norm(weight: np.ndarray, shape: tuple[int, ...], **kw: object) -> np.ndarray:
    return np.linalg.svd(cm.Conv(weight, shape, **kw).matrix().toarray(), compute_uv=False)


@pytest.mark.parametrize("scale", [1e200, 1e-200])
@pytest.mark.parametrize(("shape", "method", "kw"), [
    ((2, 6, 6), "auto", {"padding": 1}),
    ((2, 9, 9), "iterative", {"padding": 1}),
    ((2, 6, 6), "auto", {"padding": 1, "padding_mode": "circular"}),
])
def test_scaled_weights_give_the_scaled_norm(scale: float, shape: tuple[int, ...], method: str,
                                             kw: dict[str, object]) -> None:
    expected = _dense_norm(W, shape, **kw)
    conv = cm.Conv(scale * W, shape, **kw)
    norm = cm.operator_norm(conv, method=method, tol=0.0)  # type: ignore[arg-type]
    assert norm == pytest.approx(scale * expected[0], rel=1e-12)
    values = cm.singular_values(conv, 3, method=method)  # type: ignore[arg-type]
    np.testing.assert_allclose(values, scale * expected[:3], rtol=1e-10)
    bound = cm.operator_norm_bound(conv)
    unscaled = cm.operator_norm_bound(cm.Conv(W, shape, **kw))
    assert scale * expected[0] <= bound <= scale * unscaled * (1 + 1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("shape", [(2, 6, 6), (2, 40, 40)])
def test_non_finite_weights_are_refused(bad: float, shape: tuple[int, ...]) -> None:
    weight = W.copy()
    weight[1, 0, 2, 1] = bad
    conv = cm.Conv(weight, shape, padding=1)
    for call in (lambda: cm.operator_norm(conv), lambda: cm.singular_values(conv, 1),
                 lambda: cm.operator_norm(conv, method="iterative"),
                 lambda: cm.operator_norm_bound(conv)):
        with pytest.raises(ConvMatrixError, match="NaN or infinite"):
            call()


def test_all_zero_matrix_every_tap_in_the_padding() -> None:
    # kernel 2, dilation 4, padding 2 on a 1×1 image: both taps read padding
    conv = cm.Conv(np.ones((30, 30, 2, 2)), (30, 1, 1), padding=2, dilation=4)
    dense = conv.matrix().toarray()
    assert not dense.any()  # the independent check: the matrix is zero
    assert cm.operator_norm(conv) == 0.0
    assert cm.operator_norm(conv, method="iterative") == 0.0
    np.testing.assert_array_equal(cm.singular_values(conv), np.zeros(30))
    np.testing.assert_array_equal(cm.singular_values(conv, 3, method="iterative"), np.zeros(3))
    assert cm.operator_norm_bound(conv) >= 0.0


def test_zero_weights() -> None:
    conv = cm.Conv(np.zeros((2, 2, 3, 3)), (2, 9, 9), padding=1)
    assert cm.operator_norm(conv) == 0.0
    assert cm.operator_norm(conv, method="iterative") == 0.0
    assert cm.operator_norm_bound(conv) == 0.0


HUGE = np.random.default_rng(1).uniform(-1.7, 1.7, (2, 2, 3, 3)) * 1e308


@pytest.mark.parametrize("weight", [np.full((1, 1, 2, 2), 1e308), HUGE])
def test_verify_with_huge_weights(weight: np.ndarray) -> None:
    result = cm.verify(weight, (weight.shape[1], 4, 4))
    assert result.passed
