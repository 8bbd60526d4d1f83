"""Bugs that were found once (by review, fuzzing or users) and must stay fixed.

Geometric regression cases live in tests/cases.py (ONCE_FAILED) and run in test_sparse.py."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import reference
from convmatrix.cli import main
from convmatrix.symbolic import explain


def test_merged_taps_stay_exact_for_uint64_and_longdouble():
    w = np.array([[[2**62 + 1, 2**62 + 1, 1]]], dtype=np.uint64)
    C = cm.conv_matrix(w, (1, 2), padding=1, padding_mode="replicate")
    expected = np.stack([reference.conv(np.eye(2, dtype=np.uint64)[j][None], w,
                                        padding=1, padding_mode="replicate")[0]
                         for j in range(2)], axis=1)
    assert C.toarray().tolist() == expected.tolist()
    wl = np.array([[[1, np.longdouble(2) ** -60, 0]]], dtype=np.longdouble)
    Cl = cm.conv_matrix(wl, (1, 1), padding=1, padding_mode="replicate")
    assert Cl.toarray()[0, 0] == np.longdouble(1) + np.longdouble(2) ** -60


@pytest.mark.parametrize("argv", [
    ["shape", "--keras", "Conv2DTranspose", "--input", "3x3x1", "--kernel", "2x2x1x1",
     "--stride", "2", "--output-padding", "1,1,1"],
    ["verify", "--input", "1x3x3", "--kernel", "1x1x2x2", "--seed", "-1"],
    ["matrix", "--keras", "Conv2D", "--input", "3x3x1", "--kernel", "2x2x1x1", "--transpose"],
    ["matrix", "--keras", "Conv2D", "--input", "3x3x1", "--kernel", "2x2x1x1",
     "--padding-mode", "reflect"],
])
def test_cli_findings_are_one_line_errors(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_matrix_of_a_keras_layer_uses_keras_flattening(capsys):
    assert main(["matrix", "--keras", "Conv1D", "--input", "3x2", "--kernel", "1x2x1",
                 "--weight", "arange"]) == 0
    out = capsys.readouterr().out
    rows = [[int(v) for v in line.strip(" []").split()] for line in out.splitlines()[1:]]
    layer = {"class_name": "Conv1D", "config": {"filters": 1, "kernel_size": [1]}}
    assert rows == cm.keras_matrix(layer, [[[1], [2]]], (3, 2)).toarray().tolist()


def test_explanation_counts_stored_entries_exactly_and_words_small_layers():
    e = explain((1, 1, 3), (1, 8), padding=1, padding_mode="replicate")
    numeric = cm.conv_matrix(np.ones((1, 1, 3)), (1, 8), padding=1, padding_mode="replicate")
    assert e.nnz == numeric.nnz == 22
    assert "replicate padding maps" in e.checkerboard.describe()
    small = explain((2, 1, 3), (2, 3), direction="adjoint", dilation=3, output_padding=2, groups=2)
    assert "too small to have interior pixels" in small.checkerboard.describe()
    assert "output padding 2" in small.describe_layer()


def test_keras_config_accepts_numpy_ints_and_rejects_bools():
    layer = {"class_name": "Conv1D", "config": {"filters": 1, "kernel_size": [np.int64(2)]}}
    assert cm.keras_matrix(layer, np.ones((2, 1, 1)), (4, 1)).shape == (3, 4)
    layer["config"]["strides"] = True
    with pytest.raises(cm.ConvMatrixError, match="strides"):
        cm.keras_matrix(layer, np.ones((2, 1, 1)), (4, 1))
