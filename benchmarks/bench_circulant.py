"""Benchmark the exact norm of block-circulant (circular, stride 1) convolutions (issue 16).

Run from the repository root::

    python benchmarks/bench_circulant.py            # 1×1000², 1×3000², 16×16 on 256²
    python benchmarks/bench_circulant.py --quick    # 1×1000² and the 16-channel layer

Per layer it times, in the same run: ``cm.operator_norm`` (per-axis transform of the taps,
one channel: the length of each column ``K̂(f)``; several: batched SVD), the *previous* method
re-implemented here (direct DFT of the taps for every frequency — ``N·∏k`` complex
exponentials — then one SVD per frequency and a sort of the whole spectrum), and numpy's
``fftn`` of the kernel placed on the torus (the single-channel oracle). It prints the seconds,
the ratios and the largest difference between the norms.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

import convmatrix as cm


def previous_norm(layer: cm.Conv) -> float:
    """The method before issue 16's fix (chunks of 64 MiB of frequency matrices)."""
    spec, weight = layer.spec, layer.weight
    groups = spec.groups
    cog, cig = spec.out_channels // groups, spec.in_channels // groups
    taps = list(itertools.product(*(range(k) for k in spec.kernel_size)))
    w = weight.reshape(groups, cog, cig, len(taps)).transpose(3, 0, 1, 2).reshape(len(taps), -1)
    offsets = np.array([[t * d - b for t, d, (b, _) in zip(tap, spec.dilation, spec.padding,
                                                          strict=True)] for tap in taps], float)
    grid = spec.input_size
    total = int(np.prod(grid))
    step = max(1, (64 << 20) // (16 * w.shape[1]))
    values = []
    for start in range(0, total, step):
        flat = np.arange(start, min(start + step, total))
        freqs = np.stack(np.unravel_index(flat, grid), axis=1)
        phases = np.exp(2j * np.pi * ((freqs / np.array(grid, float)) @ offsets.T))
        block = (phases @ w).reshape(len(flat), groups, cog, cig)
        values.append(np.linalg.svd(block, compute_uv=False).reshape(-1))
    return float(np.sort(np.concatenate(values))[::-1][0])


def numpy_fft_norm(layer: cm.Conv) -> float | None:
    spec = layer.spec
    if spec.in_channels != 1 or spec.out_channels != 1:
        return None
    torus = np.zeros(spec.input_size)
    for tap, value in np.ndenumerate(layer.weight[0, 0]):
        where = tuple((t * d - b) % n for t, d, (b, _), n in zip(
            tap, spec.dilation, spec.padding, spec.input_size, strict=True))
        torus[where] += value
    return float(np.abs(np.fft.fftn(torus)).max())


def timed(fn):  # best of 3
    best, value = np.inf, None
    for _ in range(3):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    layers = {"1×1000², 3×3": cm.Conv(rng.standard_normal((1, 1, 3, 3)), (1, 1000, 1000),
                                      padding=1, padding_mode="circular")}
    if not args.quick:
        layers["1×3000², 3×3"] = cm.Conv(rng.standard_normal((1, 1, 3, 3)), (1, 3000, 3000),
                                         padding=1, padding_mode="circular")
    layers["16→16×256², 3×3"] = cm.Conv(rng.standard_normal((16, 16, 3, 3)), (16, 256, 256),
                                        padding=1, padding_mode="circular")
    print("| layer | operator_norm s | previous s | previous / now | numpy fftn s | "
          "now / fftn | max rel. difference |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, layer in layers.items():
        now, norm = timed(lambda layer=layer: cm.operator_norm(layer, progress=False))
        before, old = timed(lambda layer=layer: previous_norm(layer))
        oracle = numpy_fft_norm(layer)
        if oracle is None:
            fft_s, ratio, diff = "–", "–", abs(norm - old) / old
        else:
            seconds, oracle = timed(lambda layer=layer: numpy_fft_norm(layer))
            fft_s, ratio = f"{seconds:.3f}", f"{now / seconds:.2f}"
            diff = max(abs(norm - old), abs(norm - oracle)) / oracle
        print(f"| {name} | {now:.3f} | {before:.2f} | {before / now:.0f}× | {fft_s} | {ratio} | "
              f"{diff:.1e} |")


if __name__ == "__main__":
    main()
