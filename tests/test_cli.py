"""The command line, in-process and as a subprocess."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

import convmatrix as cm
from convmatrix import reference
from convmatrix.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_matrix_prints_the_seed_matrix(capsys):
    code, out, _ = run(capsys, "matrix")
    assert code == 0
    rows = [line.strip(" []") for line in out.splitlines()[1:]]
    printed = np.array([[int(v) for v in row.split()] for row in rows])
    # each row of C sums the 2x2 window of a 3x3 input: compare with the reference on unit inputs
    expected = np.stack([reference.conv(np.eye(9, dtype=int)[j].reshape(1, 3, 3),
                                        np.ones((1, 1, 2, 2), dtype=int)).ravel()
                         for j in range(9)], axis=1)
    assert np.array_equal(printed, expected)


@pytest.mark.parametrize("suffix", [".npz", ".mtx"])
def test_matrix_save(capsys, tmp_path, suffix):
    path = tmp_path / f"c{suffix}"
    code, out, _ = run(capsys, "matrix", "--input", "2x6x6", "--kernel", "3x2x3x3",
                       "--padding", "1", "--weight", "arange", "--save", str(path))
    assert code == 0 and "wrote C" in out
    loaded = sp.load_npz(path) if suffix == ".npz" else sp.csr_array(scipy.io.mmread(path))
    x = np.random.default_rng(0).standard_normal((2, 6, 6))
    weight = np.arange(1, 3 * 2 * 9 + 1).reshape(3, 2, 3, 3)
    np.testing.assert_allclose(loaded @ x.ravel(), reference.conv(x, weight, padding=1).ravel())


def test_verify_exit_codes(capsys):
    code, out, _ = run(capsys, "verify", "--input", "3x8x8", "--kernel", "4x3x3x3",
                       "--padding", "1:0,2:1", "--padding-mode", "circular", "--weight", "random")
    assert code == 0 and out.rstrip().endswith("all checks passed")
    code, out, _ = run(capsys, "verify", "--input", "2x3x4", "--kernel", "2x1x3x2",
                       "--transpose", "--output-padding", "1", "--dilation", "2", "--groups", "2")
    assert code == 0, out


def test_shape_prints_formula(capsys):
    code, out, _ = run(capsys, "shape", "--input", "1x5x5", "--kernel", "1x1x3x3", "--stride",
                       "2", "--transpose", "--output-padding", "1")
    assert code == 0
    expected = cm.conv_transpose_output_shape((1, 1, 3, 3), (1, 5, 5), stride=2,
                                              output_padding=1)
    assert f"output shape: {expected}" in out
    assert "(n' − 1)·s" in out


@pytest.mark.parametrize("argv", [
    ["verify", "--stride", "x"],
    ["verify", "--input", "1x4x4", "--kernel", "1x1x5x5"],
    ["verify", "--input", "1x4x4"],
    ["matrix", "--input", "64x56x56", "--kernel", "64x64x3x3"],
    ["matrix", "--save", "c.txt"],
    ["verify", "--padding-mode", "reflect", "--transpose"],
    ["nonsense"],
])
def test_bad_arguments_give_one_line_and_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err


def test_subprocess_help_and_module_entry_point():
    done = subprocess.run([sys.executable, "-m", "convmatrix", "--help"], capture_output=True,
                          text=True, check=True)
    assert "examples:" in done.stdout and "convmatrix report" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "convmatrix", "shape", "--groups", "0"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "`groups` (=0) must be positive" in bad.stderr


def test_shape_of_a_keras_layer_uses_keras_layout(capsys):
    code, out, _ = run(capsys, "shape", "--keras", "Conv2DTranspose", "--input", "3x3x1",
                       "--kernel", "2x2x1x1")
    assert code == 0
    # the seed's first snippet: (1, 3, 3, 1) -> (1, 4, 4, 1)
    assert "input shape:  (1, 3, 3, 1)" in out and "output shape: (1, 4, 4, 1)" in out
