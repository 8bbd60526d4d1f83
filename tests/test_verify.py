"""Verification as product code: the result table and failures that show both sides."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
import convmatrix.verification as verify_module


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.float64, np.complex128])
def test_verify_passes_for_correct_matrices(mode, dtype):
    weight = np.arange(1, 2 * 3 * 3 * 2 + 1).reshape(2, 3, 3, 2).astype(dtype)
    result = cm.verify(weight, (3, 6, 5), stride=(2, 1), padding=((2, 1), (1, 0)),
                       padding_mode=mode)
    assert result.passed, str(result)
    assert len(result.checks) == 4


def test_verify_transposed_with_output_padding_beyond_stride():
    result = cm.verify(np.ones((2, 1, 3, 2)), (2, 3, 4), transpose=True, stride=1,
                       output_padding=1, dilation=2, groups=2)
    assert result.passed, str(result)


def test_verify_detects_a_wrong_matrix_and_shows_both_sides(monkeypatch):
    real = verify_module.spec_matrix

    def off_by_one(spec, weight, **kwargs):
        matrix = real(spec, weight, **kwargs).tocsr()
        matrix.data[3] += 1.0
        return matrix

    monkeypatch.setattr(verify_module, "spec_matrix", off_by_one)
    result = cm.verify(np.ones((1, 1, 3, 3)), (1, 5, 5))
    assert not result.passed
    assert "FAIL" in str(result)
    with pytest.raises(verify_module.VerificationError, match=r"(?s)expected: .*actual:"):
        result.raise_if_failed()
    with pytest.raises(AssertionError):
        cm.verify(np.ones((1, 1, 3, 3)), (1, 5, 5), raise_on_failure=True)


def test_result_renders_as_table_and_markdown():
    result = cm.verify(np.ones((1, 1, 2, 2), dtype=int), (1, 3, 3))
    text = str(result)
    assert text.splitlines()[0] == "convolution 1×3×3 → 1×2×2, kernel 2×2, int64"
    assert text.endswith("=> all checks passed")
    md = result.to_markdown()
    assert md.count("\n") == len(result.checks) + 1 and "| pass |" in md


def test_dot_test_catches_a_non_adjoint():
    C = cm.conv_matrix(np.random.default_rng(0).standard_normal((2, 2, 3, 3)), (2, 6, 6))
    assert cm.dot_test(C).passed
    wrong = C.T.tocsr()
    wrong.data[0] += 1.0
    assert not cm.dot_test(C, adjoint=wrong).passed
