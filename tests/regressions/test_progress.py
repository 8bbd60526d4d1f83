"""Issue 16 item 24 (library part): long work reports progress, and prints nothing when not
interactive. Results are checked against the sparse matrix / numpy, independently of progress."""

from __future__ import annotations

import math

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import ConvMatrixError
from convmatrix._progress import Progress
from convmatrix.analysis import linop
from convmatrix.analysis.linop import LayerOperator
from convmatrix.analysis.spectra import fft

W = np.random.default_rng(3).standard_normal((2, 2, 3, 3))


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None]] = []

    def __call__(self, done: int, total: int | None) -> None:
        self.calls.append((done, total))

    def check(self, total: int | None) -> None:
        assert self.calls, "progress was never reported"
        done = [d for d, _ in self.calls]
        assert done == sorted(done) and done[0] == 0 and len(set(done)) == len(done)
        assert all(t == total for _, t in self.calls)
        if total is not None:
            assert done[-1] == total


def test_matmat_reports_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = cm.Conv(W, (2, 8, 8), padding=1)
    monkeypatch.setattr(linop, "CHUNK_BYTES", 8 * 256 * 5)  # 5 columns per batch
    X = np.random.default_rng(0).standard_normal((128, 23))
    recorder = Recorder()
    result = LayerOperator(layer, progress=recorder) @ X
    np.testing.assert_allclose(result, layer.matrix() @ X, rtol=1e-12, atol=1e-12)
    recorder.check(23)
    assert len(recorder.calls) == 1 + math.ceil(23 / 5)


def test_fft_spectrum_and_bound_report_frequencies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fft, "_FREQUENCY_BYTES", 16 * 4 * 7)  # 7 frequencies per chunk
    circular = cm.Conv(W, (2, 6, 6), padding=1, padding_mode="circular")
    recorder = Recorder()
    values = cm.singular_values(circular, progress=recorder)
    expected = np.linalg.svd(circular.matrix().toarray(), compute_uv=False)
    np.testing.assert_allclose(values, expected, rtol=1e-10, atol=1e-12)
    recorder.check(36)  # every frequency of the 6×6 torus
    zeros = cm.Conv(W, (2, 6, 6), padding=1)
    recorder = Recorder()
    bound = cm.operator_norm_bound(zeros, progress=recorder)
    assert bound >= np.linalg.svd(zeros.matrix().toarray(), compute_uv=False)[0]
    recorder.check(8 * (8 // 2 + 1))  # the used 8×8 padded grid, half of the last axis


def test_iterative_norm_reports_products() -> None:
    layer = cm.Conv(W, (2, 12, 12), padding=1)
    recorder = Recorder()
    norm = cm.operator_norm(layer, method="iterative", tol=0.0, progress=recorder)
    expected = np.linalg.svd(layer.matrix().toarray(), compute_uv=False)[0]
    assert norm == pytest.approx(expected, rel=1e-10)
    recorder.check(None)
    recorder = Recorder()
    cm.singular_values(layer, 2, method="iterative", progress=recorder)
    recorder.check(None)


def test_nothing_prints_when_not_interactive(capfd: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fft, "_FREQUENCY_BYTES", 16 * 4 * 7)
    monkeypatch.setattr(linop, "CHUNK_BYTES", 8 * 256 * 5)
    layer = cm.Conv(W, (2, 8, 8), padding=1)
    LayerOperator(layer) @ np.ones((128, 23))
    cm.operator_norm_bound(layer)
    cm.operator_norm(layer, method="iterative")
    cm.singular_values(cm.Conv(W, (2, 6, 6), padding=1, padding_mode="circular"))
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_true_shows_progress_even_when_not_interactive(capfd: pytest.CaptureFixture[str]
                                                       ) -> None:
    with Progress(4, True, "rows") as bar:
        for _ in range(4):
            bar.advance()
    assert "4" in capfd.readouterr().err


def test_bad_progress_is_refused() -> None:
    with pytest.raises(ConvMatrixError, match="`progress`"):
        cm.operator_norm(cm.Conv(W, (2, 6, 6)), progress="yes")  # type: ignore[arg-type]


def test_interrupt_leaves_the_operator_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = cm.Conv(W, (2, 8, 8), padding=1)
    monkeypatch.setattr(linop, "CHUNK_BYTES", 8 * 256 * 5)

    def interrupt(done: int, total: int | None) -> None:
        if done >= 10:
            raise KeyboardInterrupt

    X = np.random.default_rng(1).standard_normal((128, 23))
    op = LayerOperator(layer, progress=interrupt)
    with pytest.raises(KeyboardInterrupt):
        op @ X
    np.testing.assert_allclose(LayerOperator(layer) @ X, layer.matrix() @ X, rtol=1e-12,
                               atol=1e-12)
