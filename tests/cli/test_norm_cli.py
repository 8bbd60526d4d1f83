"""convmatrix norm: the printed norm, singular values and bound against the dense SVD."""

from __future__ import annotations

import re

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.cli import main


def numbers(line):
    return [float(v) for v in re.findall(r"(?<![\w.])\d+\.?\d*(?:e[+-]?\d+)?", line)]


@pytest.mark.parametrize(("argv", "layer"), [
    (["--input", "2,7,6", "--kernel", "3,2,3,3", "--padding", "1", "--stride", "2"],
     lambda: cm.Conv(np.ones((3, 2, 3, 3)), (2, 7, 6), padding=1, stride=2)),
    (["--input", "1,9", "--kernel", "1,1,3", "--padding", "2", "--padding-mode", "circular",
      "--dilation", "2"],
     lambda: cm.Conv(np.ones((1, 1, 3)), (1, 9), padding=2, dilation=2,
                     padding_mode="circular")),
])
def test_norm_command_against_the_dense_svd(capsys, argv, layer):
    assert main(["norm", *argv, "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = np.linalg.svd(layer().matrix().toarray(), compute_uv=False)
    assert numbers(lines[1].split("(")[0])[-1] == pytest.approx(expected[0], rel=1e-9)
    values = numbers(lines[2].split(":")[1])
    np.testing.assert_allclose(values, expected[:2], rtol=1e-5)
    bound = numbers(lines[3].split("(")[0])[-1]
    assert bound >= expected[0] * (1 - 1e-9)


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--top", "0", "`--top` (='0') must be a positive integer"),
    ("--tol", "x", "`--tol` (='x') must be a number in [0, 1)"),
])
def test_norm_command_refuses_bad_flags(capsys, flag, value, message):
    assert main(["norm", flag, value]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".npz", ".mtx"])
def test_matrix_save_streams_over_max_bytes(tmp_path, capsys, suffix, monkeypatch):
    import scipy.io
    import scipy.sparse as sp

    import convmatrix.layers.conv as conv_module

    path = tmp_path / f"c{suffix}"
    # the whole matrix is never built: only per-channel blocks
    monkeypatch.setattr(conv_module.Conv, "_build_matrix",
                        lambda *a: pytest.fail("built the whole matrix"))
    argv = ["matrix", "--input", "2,8,8", "--kernel", "3,2,3,3", "--padding", "1",
            "--save", str(path), "--max-bytes", "30K"]  # C ≈ 35 KiB, one channel ≈ 15 KiB
    assert main(argv) == 0
    assert "streamed 192×128 (over --max-bytes)" in capsys.readouterr().out
    monkeypatch.undo()
    expected = cm.Conv(np.ones((3, 2, 3, 3)), (2, 8, 8), padding=1).matrix()
    loaded = sp.load_npz(path) if suffix == ".npz" else sp.csr_array(scipy.io.mmread(path))
    assert (loaded != expected).nnz == 0
