"""The k largest singular values against the operator norm (issue 19).

Run from the repository root::

    python benchmarks/bench_spectra.py                 # stage, stem and stack, k = 1..6
    python benchmarks/bench_spectra.py --layer stage   # one of them
    python benchmarks/bench_spectra.py --quick         # 16x28x28 stage only
    python benchmarks/bench_spectra.py --rounds 2      # minima of two interleaved rounds

Layers: the ResNet stage (64x56x56 -> 64, 3x3 pad 1), the ResNet stem (3x224x224 -> 64,
7x7 stride 2 pad 3) and a stack (16x56x56 -> 32 3x3 pad 1, then -> 32 3x3 stride 2 pad 1,
``cm.Sequential``). For each, ``operator_norm(layer, tol=1e-6)`` and, for k = 1..6,
``top_singular_values(layer, k, tol=1e-6, method="iterative")``, measured in the same run:
CPU seconds of the process (the machine is shared; wall seconds too), products with ``CᵀC``
(columns), the ratios to the norm, the method chosen, the largest relative residual reached
and the relative gaps ``(σ_i − σ_{i+1}) / σ_1`` between the k values. BLAS runs on one thread
(set before numpy is imported). The load average is printed with each layer.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import convmatrix as cm  # noqa: E402


def make_layer(name: str) -> Any:
    """The benchmark's layers (fixed seeds)."""
    rng = np.random.default_rng(0)
    if name == "quick":
        return cm.Conv(rng.standard_normal((16, 16, 3, 3)) / 24, (16, 28, 28), padding=1)
    if name == "stage":
        return cm.Conv(rng.standard_normal((64, 64, 3, 3)) / 24, (64, 56, 56), padding=1)
    if name == "stem":
        return cm.Conv(rng.standard_normal((64, 3, 7, 7)) / 12, (3, 224, 224), stride=2,
                       padding=3)
    first = cm.Conv(rng.standard_normal((32, 16, 3, 3)) / 12, (16, 56, 56), padding=1)
    second = cm.Conv(rng.standard_normal((32, 32, 3, 3)) / 17, (32, 56, 56), stride=2,
                     padding=1)
    return cm.Sequential([first, second])


def measure(name: str, kmax: int, rounds: int = 1) -> None:
    """Print one layer's table: the norm and k = 1..kmax in interleaved rounds, minima kept."""
    layer = make_layer(name)
    products = [0]

    def count(done: int, total: int | None) -> None:
        products[0] += 1

    best: dict[int, tuple[float, float]] = {}
    tops: dict[int, Any] = {}
    norm = 0.0
    for _ in range(rounds):
        products[0] = 0
        wall, cpu = time.perf_counter(), time.process_time()
        norm = cm.operator_norm(layer, tol=1e-6, progress=count)
        timing = (time.process_time() - cpu, time.perf_counter() - wall)
        best[0] = min(best.get(0, timing), timing)
        for k in range(1, kmax + 1):
            wall, cpu = time.perf_counter(), time.process_time()
            tops[k] = cm.top_singular_values(layer, k, tol=1e-6, method="iterative",
                                             progress=False)
            timing = (time.process_time() - cpu, time.perf_counter() - wall)
            best[k] = min(best.get(k, timing), timing)
    norm_cpu, norm_wall = best[0]
    print(f"\n{name}: {layer!r}, load average {os.getloadavg()[0]:.1f}, "
          f"minima of {rounds} round(s)")
    print(f"operator_norm: {norm:.10g} in {norm_cpu:.2f} s CPU ({norm_wall:.2f} s wall), "
          f"{products[0]} products")
    print("| k | method | CPU s | products | CPU / norm | wall / norm | products / norm "
          "| max residual | gaps / σ₁ |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for k in range(1, kmax + 1):
        top, (seconds, wall) = tops[k], best[k]
        gaps = ", ".join(f"{gap:.1e}" for gap in top.gaps) or "–"
        print(f"| {k} | {top.method} | {seconds:.2f} | {top.products} | "
              f"{seconds / norm_cpu:.2f} | {wall / norm_wall:.2f} | "
              f"{top.products / products[0]:.2f} | {top.residuals.max():.1e} | {gaps} |",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 16x28x28 stage only")
    parser.add_argument("--layer", choices=("stage", "stem", "stack"), action="append")
    parser.add_argument("--kmax", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=1,
                        help="interleaved rounds (norm, k = 1..kmax), minimum CPU kept")
    args = parser.parse_args()
    names = ["quick"] if args.quick else (args.layer or ["stage", "stem", "stack"])
    for name in names:
        measure(name, args.kmax, args.rounds)


if __name__ == "__main__":
    main()
