"""Issue 16 item 20: ``assert_conv_equal`` on a function whose output is empty."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.testing import ConvMismatch, assert_conv_equal


@pytest.mark.parametrize("empty_shape", [(0,), (1, 0, 3), (1, 2, 0)])
def test_empty_output_is_a_shape_mismatch(empty_shape: tuple[int, ...]) -> None:
    conv = cm.Conv(np.ones((1, 1, 2, 2)), (1, 3, 3))
    with pytest.raises(ConvMismatch) as caught:
        assert_conv_equal(lambda x: np.zeros(empty_shape), conv)
    assert "shape" in caught.value.differences
    assert caught.value.differences["shape"] == ((1, 2, 2), empty_shape)
