"""Issue 16 item 9: layer(x) and operators check the output size against the budget first."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import ConvMatrixError


def _huge() -> cm.ConvTranspose:
    return cm.ConvTranspose(np.ones((1, 1, 2, 2)), (1, 2, 2), stride=100_000)


def test_call_refuses_before_allocating() -> None:
    with pytest.raises(ConvMatrixError, match="max_bytes") as info:
        _huge()(np.ones((1, 2, 2)))
    assert "GiB" in str(info.value)


def test_operator_refuses_before_allocating() -> None:
    with pytest.raises(ConvMatrixError, match="max_bytes"):
        _huge().operator().matvec(np.ones(4))
    with pytest.raises(ConvMatrixError, match="max_bytes"):
        _huge().T.operator()


def test_call_max_bytes_is_honoured() -> None:
    conv = cm.Conv(np.ones((1, 1, 3, 3)), (1, 64, 64))
    x = np.ones((1, 64, 64))
    expected = np.full((1, 62, 62), 9.0)
    assert np.array_equal(conv(x), expected)  # default budget: fine
    with pytest.raises(ConvMatrixError, match="max_bytes"):
        conv(x, max_bytes=1000)
    assert np.array_equal(conv(x, max_bytes=None), expected)
    with pytest.raises(ConvMatrixError, match="max_bytes"):
        conv.operator(max_bytes=1000)
    op = conv.operator(max_bytes=200_000)
    assert np.array_equal(op.matvec(x.ravel()), expected.ravel())
    with pytest.raises(ConvMatrixError, match="max_bytes"):
        op.matmat(np.ones((64 * 64, 100)))
