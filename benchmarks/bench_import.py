"""Time ``import convmatrix`` and ``convmatrix --version`` / ``--help`` in fresh interpreters.

Run from the repository root: ``python benchmarks/bench_import.py [--repeat N]``. Every figure
is the minimum wall time of ``N`` fresh subprocesses (interpreter start-up included), measured
interleaved in one run; the ratio column divides by ``import numpy, scipy.sparse`` (the package's
own dependencies, which the issue's target is relative to: ≤ 1.3×). ``python -c pass`` shows the
interpreter's own start-up. The last rows time the first use of a public name (``cm.Conv``, the
layers and the builder) and of ``cm.symbolic`` (SymPy).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = [  # (label, argv after the interpreter)
    ("python -c pass", ["-c", "pass"]),
    ("import numpy, scipy.sparse", ["-c", "import numpy, scipy.sparse"]),
    ("import convmatrix", ["-c", "import convmatrix"]),
    ("convmatrix --version", ["-m", "convmatrix", "--version"]),
    ("convmatrix --help", ["-m", "convmatrix", "--help"]),
    ("import convmatrix; cm.Conv", ["-c", "import convmatrix as cm; cm.Conv"]),
    ("import convmatrix; cm.symbolic", ["-c", "import convmatrix as cm; cm.symbolic"]),
]
BASELINE = "import numpy, scipy.sparse"


def _once(argv: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="subprocesses per case (min kept)")
    args = parser.parse_args(argv)
    best = {label: float("inf") for label, _ in CASES}
    for _ in range(args.repeat):  # interleaved rounds: load changes hit every case alike
        for label, case in CASES:
            best[label] = min(best[label], _once(case))
    print(f"| command (fresh interpreter, min of {args.repeat}) | seconds | / {BASELINE} |")
    print("|---|---:|---:|")
    for label, _ in CASES:
        print(f"| `{label}` | {best[label]:.3f} | {best[label] / best[BASELINE]:.2f} |")


if __name__ == "__main__":
    main()
