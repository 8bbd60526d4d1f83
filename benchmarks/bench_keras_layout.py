"""Peak memory of a channels-last Keras matrix whose input is far larger than the matrix.

A strided ``Conv1D`` with a 1-tap kernel reads 64 positions of an ``(n, 2)`` input, so its
matrix holds 256 entries whatever ``n`` is. Before the layout permutation worked on stored
indices only, the peak grew with ``n`` (1.5 GiB at ``n = 2**26``). Run from the repository root:
``python benchmarks/bench_keras_layout.py``.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import convmatrix as cm


def measure(n: int) -> tuple[int, float, float]:
    layer = {"class_name": "Conv1D",
             "config": {"filters": 2, "kernel_size": [1], "strides": [n // 64]}}
    kernel = np.arange(1.0, 5.0).reshape(1, 2, 2)
    cm.keras_matrix(layer, kernel, (64, 2))  # warm-up: imports and caches
    tracemalloc.start()
    start = time.perf_counter()
    matrix = cm.keras_matrix(layer, kernel, (n, 2))
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return matrix.nnz, peak / 2**20, seconds


def main() -> None:
    print("| input | nnz | peak MiB | seconds |")
    print("|---|---:|---:|---:|")
    for exponent in (20, 23, 26, 30):
        nnz, peak, seconds = measure(2**exponent)
        print(f"| (2**{exponent}, 2) | {nnz} | {peak:.3f} | {seconds:.4f} |")


if __name__ == "__main__":
    main()
