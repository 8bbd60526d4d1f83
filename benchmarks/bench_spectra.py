"""The k largest singular values against the operator norm on the ResNet stage (issue 19).

Run from the repository root::

    python benchmarks/bench_spectra.py           # ResNet stage 64x56x56 -> 64, 3x3 pad 1
    python benchmarks/bench_spectra.py --quick   # 16x28x28 -> 16 (a cosine/sine pair on top)

For k = 1..6 it prints ``top_singular_values(layer, k, tol=1e-6)`` beside
``operator_norm(layer, tol=1e-6)`` measured in the same run: seconds, products with ``CᵀC``,
the ratios, the method chosen, the largest relative residual reached and the smallest
relative gap between the values. BLAS runs on one thread (set before numpy is imported).
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import convmatrix as cm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 16x28x28 stage")
    parser.add_argument("--kmax", type=int, default=6)
    args = parser.parse_args()
    channels, size = (16, 28) if args.quick else (64, 56)
    weight = np.random.default_rng(0).standard_normal((channels, channels, 3, 3)) / 24
    layer = cm.Conv(weight, (channels, size, size), padding=1)
    products = [0]

    def count(done: int, total: int | None) -> None:
        products[0] += 1

    start = time.perf_counter()
    norm = cm.operator_norm(layer, tol=1e-6, progress=count)
    norm_seconds, norm_products = time.perf_counter() - start, products[0]
    print(f"layer {layer!r}")
    print(f"operator_norm: {norm:.10g} in {norm_seconds:.2f} s, {norm_products} products")
    print("| k | method | s | products | time / norm | products / norm | max residual "
          "| min gap |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for k in range(1, args.kmax + 1):
        start = time.perf_counter()
        top = cm.top_singular_values(layer, k, tol=1e-6, method="iterative", progress=False)
        seconds = time.perf_counter() - start
        gap = f"{top.gaps.min():.2g}" if k > 1 else "–"
        print(f"| {k} | {top.method} | {seconds:.2f} | {top.products} | "
              f"{seconds / norm_seconds:.2f} | {top.products / norm_products:.2f} | "
              f"{top.residuals.max():.1e} | {gap} |", flush=True)


if __name__ == "__main__":
    main()
