"""Issue 16 item 4: ``transpose_vs_inverse`` tells the right story.

Its default input used to be all ones, which lies in the row space of many rank-deficient
layers: a layer that loses 9 of its 18 input dimensions reported "least squares recovers x".
Ranks are checked against numpy's SVD of the dense matrix built from the reference convolution.
"""

from __future__ import annotations

import numpy as np

import convmatrix as cm
from convmatrix import reference
from convmatrix.analysis.inverse import DEFAULT_SEED


def _dense(weight: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(input_shape))
    return np.stack([reference.conv(np.eye(size)[j].reshape(input_shape), weight).ravel()
                     for j in range(size)], axis=1)


def test_a_layer_losing_9_of_18_dimensions_does_not_recover_the_default_x() -> None:
    weight = np.ones((1, 2, 1, 1))
    analysis = cm.Conv(weight, (2, 3, 3)).transpose_vs_inverse()
    dense = _dense(weight, (2, 3, 3))
    rank = np.linalg.matrix_rank(dense)
    assert (analysis.columns, analysis.rank, analysis.lost_dimensions) == (18, rank, 18 - rank)
    assert rank == 9
    # the default x is the documented seeded one, and it is generic: not in the row space
    expected_x = np.random.default_rng(DEFAULT_SEED).integers(-9, 10, 18)
    np.testing.assert_array_equal(analysis.x, expected_x)
    projection = np.linalg.pinv(dense) @ (dense @ expected_x)
    assert np.linalg.norm(projection - expected_x) > 0.1 * np.linalg.norm(expected_x)
    assert not analysis.recovered
    assert "recovers" not in repr(analysis)
    assert "does not recover x" in repr(analysis)
    assert "not invertibility" in str(analysis)


def test_all_ones_x_is_recovered_but_the_text_says_it_is_not_invertibility() -> None:
    layer = cm.Conv(np.ones((1, 2, 1, 1)), (2, 3, 3))
    analysis = layer.transpose_vs_inverse(np.ones((2, 3, 3)))
    assert analysis.recovered and not analysis.full_column_rank
    assert "happens to recover it" in analysis.verdict()
    assert "not invertibility" in analysis.verdict()
    assert "recovers this x only" in repr(analysis)


def test_equal_weights_warn_and_show_the_random_weight_rank() -> None:
    weight = np.ones((2, 2, 1, 1))
    analysis = cm.Conv(weight, (2, 3, 3)).transpose_vs_inverse()
    random = np.random.default_rng(DEFAULT_SEED).standard_normal(weight.shape)
    assert analysis.rank == np.linalg.matrix_rank(_dense(weight, (2, 3, 3))) == 9
    assert analysis.random_weight_rank == np.linalg.matrix_rank(_dense(random, (2, 3, 3))) == 18
    text = str(analysis)
    assert "all weights are equal" in text and "comes from the weights" in text
    assert "rank 18" in text
    assert "all weights are equal" in analysis.to_markdown()


def test_no_warning_for_one_channel_or_unequal_weights() -> None:
    seed = cm.Conv(np.ones((1, 1, 2, 2)), (1, 3, 3)).transpose_vs_inverse()
    assert seed.random_weight_rank is None and "Warning" not in str(seed)
    weight = np.arange(1.0, 5.0).reshape(2, 2, 1, 1)
    varied = cm.Conv(weight, (2, 3, 3)).transpose_vs_inverse()
    assert varied.random_weight_rank is None and "Warning" not in str(varied)
