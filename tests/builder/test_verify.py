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
    result = cm.verify(np.ones((2, 1, 3, 2)), (2, 3, 4), direction="adjoint", stride=1,
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


def _patch_everywhere(monkeypatch, real, fake):
    """Replace ``real`` by ``fake`` in every loaded convmatrix module that imported it."""
    import sys
    patched = 0
    for name, module in list(sys.modules.items()):
        if name.startswith("convmatrix") and getattr(module, real.__name__, None) is real:
            monkeypatch.setattr(module, real.__name__, fake)
            patched += 1
    assert patched


def test_verify_catches_a_spec_that_drops_output_padding(monkeypatch):
    # once failed: verify fed the (buggy) spec to the reference, so both sides agreed
    args = {"stride": 2, "padding": 1, "output_padding": 1}
    weight = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    assert cm.verify(weight, (1, 4, 4), direction="adjoint", **args).passed
    real = cm.geometry.spec.conv_transpose_spec

    def drops_output_padding(weight_shape, input_shape, **geometry):
        return real(weight_shape, input_shape, **{**geometry, "output_padding": 0})

    _patch_everywhere(monkeypatch, real, drops_output_padding)
    result = cm.verify(weight, (1, 4, 4), direction="adjoint", **args)
    assert not result.passed
    assert "FAIL" in str(result) and "shape" in str(result)


def test_verify_catches_a_spec_that_swaps_padding_sides(monkeypatch):
    # the same shapes, different values: only an independent reference notices
    args = {"padding": ((2, 0), (0, 1))}
    weight = np.arange(1.0, 13.0).reshape(2, 1, 2, 3)
    assert cm.verify(weight, (1, 5, 6), **args).passed
    real = cm.geometry.spec.conv_spec

    def swaps_sides(weight_shape, input_shape, *, padding, **geometry):
        swapped = tuple((after, before) for before, after in padding)
        return real(weight_shape, input_shape, padding=swapped, **geometry)

    _patch_everywhere(monkeypatch, real, swaps_sides)
    result = cm.verify(weight, (1, 5, 6), **args)
    assert [check.passed for check in result.checks][:3] == [False, False, False]


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_verify_refuses_a_padding_mode_with_transpose(mode):
    with pytest.raises(cm.ConvMatrixError,
                       match=rf"`padding_mode` \(='{mode}'\) applies to convolutions only"):
        cm.verify(np.ones((1, 1, 3)), (1, 4), direction="adjoint", padding=1, padding_mode=mode)


def test_verify_refuses_output_padding_without_transpose():
    with pytest.raises(cm.ConvMatrixError, match=r"`output_padding` \(=1\) applies to transp"):
        cm.verify(np.ones((1, 1, 3)), (1, 4), stride=2, output_padding=1)


@pytest.mark.parametrize(("tolerance", "message"), [
    (-1, r"`tolerance` \(=-1\) must be a finite relative error >= 0"),
    (float("nan"), r"`tolerance` \(=nan\) must be a finite"),
    (float("inf"), r"`tolerance` \(=inf\) must be a finite"),
    ("1e-3", r"`tolerance` \(='1e-3'\) must be a number or None"),
])
def test_verify_refuses_a_bad_tolerance(tolerance, message):
    with pytest.raises(cm.ConvMatrixError, match=message):
        cm.verify(np.ones((1, 1, 3)), (1, 4), tolerance=tolerance)


def test_dot_test_refuses_a_bad_tolerance():
    with pytest.raises(cm.ConvMatrixError, match=r"`tolerance` \(=nan\) must be a finite"):
        cm.dot_test(cm.conv_matrix(np.ones((1, 1, 3)), (1, 4)), tolerance=float("nan"))


def test_verify_refuses_a_negative_batch():
    with pytest.raises(cm.ConvMatrixError, match=r"`batch` \(=-1\) must be an integer >= 0"):
        cm.verify(np.ones((1, 1, 3)), (1, 4), batch=-1)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_verify_spec_checks_both_directions_in_every_mode(mode):
    # layer objects verify their spec directly, including the adjoint of a padded layer
    spec = cm.conv_spec((2, 1, 3), (1, 5), stride=2, padding=((2, 1),), padding_mode=mode)
    weight = np.arange(1, 7).reshape(2, 1, 3)
    for direction in ("forward", "adjoint"):
        result = verify_module.verify_spec(spec, weight, direction=direction)
        assert result.passed and len(result.checks) == 4, str(result)
