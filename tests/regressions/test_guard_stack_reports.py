"""Issue 16 items 6/7 (the rest): ``compare`` and ``report --stack`` estimate everything they
allocate (overlap maps, path matrices, responses, figures, verifications) and refuse before
spending it, naming the budget and the estimate.

Before: ``compare`` with an input 1×100000×100000 died in numpy's allocator ("out of memory
(Unable to allocate 74.5 GiB …)") after starting its overlap maps. Oracle for the estimate:
``tracemalloc``'s peak (numpy reports its buffers to it) while the report is made.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import ConvMatrixError
from convmatrix.builder.budget import stack_report_nbytes
from convmatrix.reports.stack import compare_report, stack_report

ROOT = Path(__file__).resolve().parents[2]
HUGE = 'input = [1, 100000, 100000]\n[[layers]]\nkind = "Conv"\nkernel = [1, 1, 3, 3]\n'
SMALL = 'input = [1, 8, 8]\n[[layers]]\nkind = "Conv"\nkernel = [1, 1, 3, 3]\n'


# a regression fails in numpy's allocator, never eats the machine; the child caps itself (a
# preexec_fn would fork the test process, which is multithreaded once JAX has run)
CAPPED = ("import resource, runpy; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)); "
          "runpy.run_module('convmatrix', run_name='__main__')")


@pytest.mark.parametrize("kind", ["compare", "report"])
def test_huge_stack_is_refused_before_allocating(tmp_path, kind):
    huge, small = tmp_path / "huge.toml", tmp_path / "small.toml"
    huge.write_text(HUGE)
    small.write_text(SMALL)
    argv = (["compare", huge, small] if kind == "compare" else ["report", "--stack", huge])
    done = subprocess.run([sys.executable, "-c", CAPPED, *map(str, argv),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "would need about" in lines[0] and "TiB" in lines[0], lines[0]
    assert "`--max-bytes` (=4 GiB)" in lines[0], lines[0]
    assert "out of memory" not in lines[0] and "Unable to allocate" not in lines[0]
    assert not (tmp_path / "o").exists()


def test_library_reports_refuse_naming_max_bytes():
    huge = cm.Sequential([cm.Conv(np.ones((1, 1, 3, 3)), (1, 100_000, 100_000))])
    small = cm.Sequential([cm.Conv(np.ones((1, 1, 3, 3)), (1, 8, 8))])
    with pytest.raises(ConvMatrixError, match=r"would need about .* TiB, over `max_bytes`"):
        compare_report([("huge", huge), ("small", small)], figures=False)
    with pytest.raises(ConvMatrixError, match=r"over `max_bytes` \(=1 KiB\)"):
        stack_report(small, figures=False, max_bytes=1024)


STACKS = {
    "transposed then conv": lambda: cm.Sequential([
        cm.ConvTranspose(np.ones((2, 2, 3, 3)), (2, 40, 40), stride=2),
        cm.Conv(np.random.default_rng(0).random((2, 2, 3, 3)), (2, 81, 81))]),
    "pool, pad, upsample": lambda: cm.Sequential([
        cm.AvgPool((3, 64, 64), 2), cm.Pad((3, 32, 32), (1, 1, 1, 1), mode="reflect"),
        cm.Upsample((3, 34, 34), scale_factor=2)]),
    "one conv": lambda: cm.Sequential([cm.Conv(np.arange(18.0).reshape(2, 1, 3, 3),
                                               (1, 90, 90), padding=1)]),
}


@pytest.mark.parametrize("figures", [False, True])
def test_estimate_bounds_the_measured_peak(figures):
    layers = [make() for make in STACKS.values()]
    tiny = cm.Sequential([cm.Conv(np.ones((1, 1, 3, 3)), (1, 5, 5))])
    compare_report([("a", tiny), ("b", tiny)], figures=figures)  # imports: not data-sized
    estimate = stack_report_nbytes(layers, figures=figures)
    tracemalloc.start()
    try:
        compare_report(list(zip(STACKS, layers, strict=True)), figures=figures, max_bytes=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= estimate, (peak, estimate)
    assert estimate <= 64 * max(peak, 2**20), (peak, estimate)  # an estimate, not a wall
