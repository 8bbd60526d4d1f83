"""Issue 16 item 13/16, "Done when": a ``kill -9`` at *random* moments during a save never
leaves a target that does not load as the old or the new complete file, and what the killed
writer leaves behind is clearly named and removed by the next save.

The kill moments are seeded and spread over the whole save (stratified over 1.2× the
measured duration of an uninterrupted save: building the blocks, the scratch files, the copy
into the temporary, the rename, and just after). Oracle: scipy's own readers and the matrices
built in this process.
"""

from __future__ import annotations

import os
import re
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
from convmatrix._files import TEMP_SUFFIX

ROOT = Path(__file__).resolve().parents[2]
KILLS = 6  # per format


def layer(channels: int, size: int) -> cm.Conv:
    weight = np.arange(1.0, channels * 9 + 1).reshape(channels, 1, 3, 3)
    return cm.Conv(weight, (1, size, size), padding=1)


SIZES = {".npz": (8, 160), ".mtx": (2, 80)}  # about 1.8 M and 0.1 M entries

WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import convmatrix as cm
    target, channels, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    weight = np.arange(1.0, channels * 9 + 1).reshape(channels, 1, 3, 3)
    layer = cm.Conv(weight, (1, size, size), padding=1)
    print("ready", flush=True)
    sys.stdin.readline()
    cm.save_matrix(layer, target, rows_per_block=4096)
    print("done", flush=True)
""")

LITTER = re.compile(r"^\.(t\.(npz|mtx)\.\d+-[0-9a-f]+" + re.escape(TEMP_SUFFIX)
                    + r"|convmatrix-\d+-[0-9a-f]+)$")


def load(path: Path) -> sp.csr_array:
    if path.suffix == ".npz":
        return sp.csr_array(sp.load_npz(path))
    return sp.csr_array(scipy.io.mmread(path))


def equal(matrix: sp.csr_array, expected: sp.csr_array) -> bool:
    return matrix.shape == expected.shape and (matrix != expected).nnz == 0


def spawn(target: Path, suffix: str) -> subprocess.Popen:
    channels, size = SIZES[suffix]
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target), str(channels), str(size)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True)
    return writer


def ready(writer: subprocess.Popen) -> None:
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"


def go(writer: subprocess.Popen) -> float:
    assert writer.stdin is not None
    writer.stdin.write("go\n")
    writer.stdin.flush()
    return time.monotonic()


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".npz", ".mtx"])
def test_kill_9_at_random_moments_leaves_old_or_new(tmp_path, suffix):
    target = tmp_path / f"t{suffix}"
    old_layer = layer(1, 12)
    new = layer(*SIZES[suffix]).matrix()
    old = old_layer.matrix()
    writers = [spawn(target, suffix) for _ in range(KILLS + 1)]  # imports overlap
    try:
        for writer in writers:
            ready(writer)
        # an uninterrupted save, timed from "go" (the clock the kills use)
        cm.save_matrix(old_layer, target)
        started = go(writers[0])
        out, _ = writers[0].communicate(timeout=120)
        duration = time.monotonic() - started
        assert out.strip() == "done" and equal(load(target), new)
        rng = np.random.default_rng(16)
        moments = (np.arange(KILLS) + rng.random(KILLS)) / KILLS * 1.2 * duration
        outcomes = []
        for writer, moment in zip(writers[1:], moments, strict=True):
            cm.save_matrix(old_layer, target)  # the next save: clears the last writer's litter
            assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
            started = go(writer)
            time.sleep(max(0.0, started + moment - time.monotonic()))
            os.kill(writer.pid, signal.SIGKILL)
            writer.communicate(timeout=60)
            found = load(target)  # always loads ...
            outcomes.append("old" if equal(found, old) else "new" if equal(found, new)
                            else "torn")
            assert outcomes[-1] != "torn", (moment, duration)  # ... as one complete file
            litter = [p.name for p in tmp_path.iterdir() if p != target]
            assert all(LITTER.match(name) for name in litter), litter  # clearly named
        cm.save_matrix(old_layer, target)
        assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
        assert equal(load(target), old)
        print(f"{suffix}: save {duration:.2f} s; kills at "
              + ", ".join(f"{m:.2f}" for m in moments) + f" s → {outcomes}")
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.communicate()
