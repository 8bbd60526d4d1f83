"""Issue 16, items 13–16: every file write is atomic; failures and kills never lose the old file.

The oracle is scipy's own reader (``load_npz`` / ``mmread``) and a matrix built independently
(``Conv(...).matrix()``) — the target must always load as one complete old or new matrix.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

import convmatrix as cm
import convmatrix.analysis.save as save_module
from convmatrix._files import TEMP_SUFFIX, atomic_write, remove_stale, write_bytes
from convmatrix.cli import main

ROOT = Path(__file__).resolve().parents[2]


def conv(channels: int) -> cm.Conv:
    return cm.Conv(np.arange(1.0, channels * 9 + 1).reshape(channels, 1, 3, 3), (1, 6, 6),
                   padding=1)


def load(path: Path) -> sp.csr_array:
    if path.suffix == ".npz":
        return sp.csr_array(sp.load_npz(path))
    return sp.csr_array(scipy.io.mmread(path))


def same(matrix, layer) -> bool:
    expected = layer.matrix()
    return matrix.shape == expected.shape and abs(matrix - expected).max() == 0


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("suffix", [".npz", ".mtx"])
@pytest.mark.parametrize("failure", [RuntimeError("writer broke"),
                                     OSError(errno.ENOSPC, "No space left on device"),
                                     KeyboardInterrupt()])
@pytest.mark.parametrize("phase", ["scratch", "final"])
def test_a_save_that_fails_midway_keeps_the_old_file(tmp_path, monkeypatch, suffix, failure,
                                                     phase):
    target = tmp_path / f"c{suffix}"
    cm.save_matrix(conv(1), target)
    original = target.read_bytes()
    if phase == "scratch":  # while the blocks go to the scratch files
        real = save_module._append

        def broken(stream, array, dtype):  # writes part of the data, then fails
            real(stream, array[: max(1, array.size // 2)], dtype)
            raise failure

        def broken_text(stream, table, fmt):
            stream.write(b"1 1 1.0\n")
            raise failure

        monkeypatch.setattr(save_module, "_append", broken)
        monkeypatch.setattr(save_module.np, "savetxt", broken_text)
    else:  # while the final file is written (a disk filling up: the first bytes land)
        monkeypatch.setattr(save_module, "atomic_write",
                            lambda path: _failing_atomic(path, failure))
    with pytest.raises(type(failure)):
        cm.save_matrix(conv(2), target)
    assert target.read_bytes() == original
    assert same(load(target), conv(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def _failing_atomic(path, failure):
    """``atomic_write`` whose stream fails after the first bytes (as a disk filling up)."""
    from contextlib import contextmanager

    @contextmanager
    def manager():
        with atomic_write(path) as stream:
            class Failing:
                def write(self, data):
                    stream.write(bytes(data)[:10])
                    raise failure

                def __getattr__(self, name):
                    return getattr(stream, name)

            yield Failing()

    return manager()


def test_atomic_write_failure_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "notes.md"
    target.write_text("old")
    with pytest.raises(OSError), atomic_write(target) as stream:
        stream.write(b"new, half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.md"]
    write_bytes(target, b"new")
    assert target.read_text() == "new"


@pytest.mark.parametrize("suffix", [".npz", ".mtx"])
@pytest.mark.parametrize("failure", ["enospc", "interrupt"])
def test_cli_matrix_save_failure_is_one_line_and_keeps_the_old_file(
        tmp_path, monkeypatch, capsys, suffix, failure):
    target = tmp_path / f"t{suffix}"
    argv = ["matrix", "--input", "1x6x6", "--kernel", "1x1x3x3", "--padding", "1",
            "--save", str(target)]
    assert main(argv) == 0
    original = target.read_bytes()
    capsys.readouterr()

    def broken(stream, matrix, *args, **kwargs):
        stream.write(b"partial bytes of a matrix")
        if failure == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise KeyboardInterrupt

    monkeypatch.setattr(sp, "save_npz", broken)
    monkeypatch.setattr(scipy.io, "mmwrite", broken)
    code = main(["matrix", "--input", "1x6x6", "--kernel", "2x1x3x3", "--padding", "1",
                 "--save", str(target)])
    err = capsys.readouterr().err
    assert code == (2 if failure == "enospc" else 130)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert target.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_stale_temporaries_are_removed_and_concurrent_ones_kept(tmp_path):
    dead, alive = dead_pid(), os.getppid()
    stale = tmp_path / f".t.npz.{dead}-0123abcd{TEMP_SUFFIX}"
    stale_dir = tmp_path / f".convmatrix-{dead}-89abcdef"
    running = tmp_path / f".t.npz.{alive}-0123abcd{TEMP_SUFFIX}"
    user = tmp_path / ".t.npz.partial"
    stale.write_bytes(b"x")
    stale_dir.mkdir()
    (stale_dir / "data").write_bytes(b"x")
    running.write_bytes(b"x")
    user.write_bytes(b"x")
    cm.save_matrix(conv(1), tmp_path / "t.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [running.name, user.name, "t.npz"])
    assert remove_stale(tmp_path) == []


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import convmatrix as cm
    import convmatrix.analysis.save as save_module
    channels, count, slow = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    layer = cm.Conv(np.arange(1.0, channels * 9 + 1).reshape(channels, 1, 3, 3), (1, 6, 6),
                    padding=1)
    real = save_module.atomic_write
    class Slow:  # every write of the final file lands, then waits
        def __init__(self, stream):
            self.stream = stream
        def write(self, data):
            written = self.stream.write(data)
            self.stream.flush()
            time.sleep(slow)
            return written
        def __getattr__(self, name):
            return getattr(self.stream, name)
    from contextlib import contextmanager
    @contextmanager
    def slowed(path):
        with real(path) as stream:
            yield Slow(stream)
    save_module.atomic_write = slowed
    for _ in range(count):
        cm.save_matrix(layer, sys.argv[1])
    print("done")
""")


def start_writer(target: Path, channels: int, count: int, slow: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(channels),
                             str(count), str(slow)], env=env, stdout=subprocess.PIPE)


@pytest.mark.slow
def test_two_processes_saving_one_path_always_leave_a_complete_matrix(tmp_path):
    target = tmp_path / "t.npz"
    writers = [start_writer(target, 1, 15, 0.0), start_writer(target, 3, 15, 0.0)]
    seen = set()
    while any(w.poll() is None for w in writers):
        if target.exists():
            matrix = load(target)  # never a torn file: os.replace swaps whole files
            seen.add(matrix.shape[0])
            assert same(matrix, conv(matrix.shape[0] // 36))
    for w in writers:
        out, _ = w.communicate()
        assert w.returncode == 0 and out.strip() == b"done"
    final = load(target)
    assert same(final, conv(final.shape[0] // 36))
    assert seen <= {36, 108}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npz"]


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".npz", ".mtx"])
def test_kill_9_during_a_save_leaves_the_old_file_loadable(tmp_path, suffix):
    target = tmp_path / f"t{suffix}"
    cm.save_matrix(conv(1), target)
    writer = start_writer(target, 2, 1, 30.0)  # sleeps inside the write of the final file

    def partly_written():
        return [p for p in tmp_path.iterdir()
                if p.name.endswith(TEMP_SUFFIX) and p.stat().st_size > 0]

    try:
        deadline = time.monotonic() + 60
        while not partly_written():
            assert time.monotonic() < deadline and writer.poll() is None
            time.sleep(0.02)
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.communicate()
    assert same(load(target), conv(1)) or same(load(target), conv(2))
    cm.save_matrix(conv(3), target)  # a later save clears what the killed writer left
    assert same(load(target), conv(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_an_unwritable_target_is_one_line_naming_it(tmp_path, capsys):
    (tmp_path / "d.npz").mkdir()
    for target in (tmp_path / "missing" / "t.npz", tmp_path / "d.npz"):
        code = main(["matrix", "--input", "1x4x4", "--kernel", "1x1x3x3",
                     "--save", str(target)])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert f"cannot write {str(target)!r}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]
