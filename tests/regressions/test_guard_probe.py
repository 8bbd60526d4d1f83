"""Issue 16 item 10: unit-vector probing is refused before its first probe when its result
could exceed ``max_bytes``, and shows progress (a callback; tqdm only in a terminal)."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.testing import probe, probe_matrix


class Counting:
    """A linear fn (a 3-tap moving sum along the last axis) that counts its calls."""

    def __init__(self) -> None:
        self.samples = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.samples += 1
        return x[..., :-2] + x[..., 1:-1] + x[..., 2:]


def test_unit_probing_refused_before_probing() -> None:
    fn = Counting()
    shape = (4, 64, 64)  # 16384 inputs, 15872 outputs: up to 2.6e8 entries if dense
    with pytest.raises(cm.ConvMatrixError, match="max_bytes") as info:
        probe_matrix(fn, shape, max_bytes=10**8)
    message = str(info.value)
    assert "16,384 samples" in message and "GiB" in message
    assert fn.samples < 10  # the linearity check's few calls, no unit vectors


def test_progress_callback_reports_every_batch_and_result_is_exact() -> None:
    fn = Counting()
    seen: list[tuple[int, int]] = []
    matrix = probe_matrix(fn, (2, 12), progress=lambda done, total: seen.append((done, total)))
    # independent: the moving sum as a dense loop
    expected = np.zeros((2 * 10, 2 * 12))
    for c in range(2):
        for i in range(10):
            expected[c * 10 + i, c * 12 + i:c * 12 + i + 3] = 1.0
    np.testing.assert_array_equal(matrix.toarray(), expected)
    assert seen and seen[-1] == (24, 24)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_no_bar_when_not_interactive(capsys: pytest.CaptureFixture[str]) -> None:
    result = probe(Counting(), (1, 1200), progress=None)  # stderr is captured: not a TTY
    assert result.method == "unit vectors"
    assert capsys.readouterr().err == ""


def test_progress_false_is_silent_and_coloured_probing_reports_too() -> None:
    layer = cm.Conv(np.ones((1, 1, 3)), (1, 30))
    seen: list[tuple[int, int]] = []
    result = probe(lambda x: layer(x), (1, 30), layer=layer,
                   progress=lambda done, total: seen.append((done, total)))
    assert result.colours == 3 and seen[-1] == (3, 3)
    assert (probe_matrix(lambda x: layer(x), (1, 30), progress=False) != layer.matrix()).nnz == 0
