"""Issue 16 item 24 (saves): ``save_matrix`` and ``convmatrix matrix --save`` show progress like
the other long commands — a bar in a terminal (tqdm, after about 2 s), nothing when not
interactive unless asked, a ``progress=`` callback in Python.

Oracles: scipy's readers against the layer's own matrix (the file is the same with or without
progress), the row count and the file sizes for the reported totals.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

import convmatrix as cm
from convmatrix.cli import main
from convmatrix.cli._output import save_matrix_file

ROOT = Path(__file__).resolve().parents[2]
LAYER = cm.Conv(np.arange(1.0, 19.0).reshape(2, 1, 3, 3), (1, 40, 40), padding=1)


def load(path: Path) -> sp.csr_array:
    if path.suffix == ".npz":
        return sp.csr_array(sp.load_npz(path))
    return sp.csr_array(scipy.io.mmread(path))


@pytest.mark.parametrize("suffix", [".npz", ".mtx"])
def test_save_matrix_reports_rows_then_bytes(tmp_path, suffix):
    calls: list[tuple[int, int | None]] = []
    target = tmp_path / f"c{suffix}"
    cm.save_matrix(LAYER, target, rows_per_block=700, progress=lambda d, t: calls.append((d, t)))
    assert (load(target) != LAYER.matrix()).nnz == 0
    rows = LAYER.matrix_shape[0]
    split = next(i for i, (d, t) in enumerate(calls) if i > 0 and t != rows)
    row_calls, byte_calls = calls[:split], calls[split:]
    done = [d for d, _ in row_calls]
    assert done[0] == 0 and done[-1] == rows and done == sorted(set(done)) and len(done) > 2
    total = byte_calls[0][1]
    assert byte_calls[0][0] == 0 and byte_calls[-1] == (total, total)
    assert 0 < total <= target.stat().st_size  # the bytes copied from the scratch files


def test_cli_save_file_reports_bytes(tmp_path):
    calls: list[tuple[int, int | None]] = []
    target = tmp_path / "c.mtx"
    save_matrix_file(LAYER.matrix(), target, progress=lambda d, t: calls.append((d, t)))
    assert (load(target) != LAYER.matrix()).nnz == 0
    assert calls[0] == (0, None) and calls[-1] == (target.stat().st_size, None)


def test_nothing_prints_when_not_interactive(tmp_path, capfd):
    cm.save_matrix(LAYER, tmp_path / "c.npz")
    assert main(["matrix", "--input", "1x40x40", "--kernel", "2x1x3x3", "--save",
                 str(tmp_path / "d.mtx")]) == 0
    assert capfd.readouterr().err == ""


def test_true_shows_progress_when_not_interactive(tmp_path, capfd):
    cm.save_matrix(LAYER, tmp_path / "c.npz", progress=True)
    err = capfd.readouterr().err
    assert "rows" in err and "writing c.npz" in err


# the CLI in a terminal, with the bar's 2 s delay set to 0 so a small layer shows it
TERMINAL = textwrap.dedent("""
    import sys
    import convmatrix._progress
    convmatrix._progress.DELAY_SECONDS = 0.0
    from convmatrix.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.skipif(not hasattr(pty, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize("argv", [["--save", "t.npz"], ["--save", "t.mtx"],
                                  ["--save", "s.npz", "--max-bytes", "1M"]])
def test_cli_save_shows_a_bar_in_a_terminal(tmp_path, argv):
    pytest.importorskip("tqdm")
    leader, follower = pty.openpty()
    # a terminal of 100 columns (a fresh pseudo-terminal has 0: tqdm would draw nothing)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CONVMATRIX_PROGRESS", None)
    child = subprocess.Popen(
        [sys.executable, "-c", TERMINAL, "matrix", "--input", "1x60x60", "--kernel",
         "4x1x3x3", *argv], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    child.communicate(timeout=60)
    os.close(leader)
    assert child.returncode == 0, seen
    assert b"writing" in seen, seen  # tqdm's bar on the terminal
    assert load(tmp_path / argv[1]).shape == (4 * 58 * 58, 60 * 60)
