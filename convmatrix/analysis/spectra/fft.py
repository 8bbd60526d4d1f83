"""The exact spectrum of block-circulant (circular, stride-1) convolutions, by kernel FFT.

Per frequency ``f`` of the torus, the ``C_out × C_in`` matrix ``K̂(f)`` (Sedghi, Gupta & Long
2019): the singular values of a block-circulant ``C`` are those of all ``K̂(f)`` together.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

from convmatrix._progress import Progress, ProgressArg
from convmatrix.geometry.spec import ConvSpec

__all__ = ["circulant_spectrum", "is_circulant", "torus_norm"]

_FREQUENCY_BYTES = 64 * 2**20  # per-frequency matrices held at once


def is_circulant(spec: ConvSpec) -> bool:
    """Circular padding, stride 1 and output size == input size: ``C`` is block circulant."""
    return (spec.padding_mode == "circular" and all(s == 1 for s in spec.stride)
            and spec.output_size == spec.input_size)


def _frequency_matrices(spec: ConvSpec, weight: np.ndarray, grid: tuple[int, ...],
                        shifts: tuple[int, ...], half: bool, progress: ProgressArg = False
                        ) -> Iterator[np.ndarray]:
    """Yield chunks ``(F, G, C_out/G, C_in/G)`` of ``K̂(f) = Σ_t W[:, :, t] e^{2πi f·(t·d − b)/M}``.

    ``K̂(f)`` is the ``C_out × C_in`` block the circular cross-correlation on the grid ``M``
    applies to the frequency-``f`` Fourier mode of every input channel (Sedghi et al. 2019).
    Computed as a direct DFT of the ``∏k`` taps, chunk of frequencies by chunk, so the
    memory stays bounded. ``half`` keeps one of each conjugate pair ``±f`` (real weights).
    """
    groups = spec.groups
    cog, cig = spec.out_channels // groups, spec.in_channels // groups
    taps = list(itertools.product(*(range(k) for k in spec.kernel_size)))
    # (T, G·cog·cig): one row per tap
    w = np.asarray(weight, dtype=np.result_type(weight.dtype, np.float64))
    w = w.reshape(groups, cog, cig, len(taps)).transpose(3, 0, 1, 2).reshape(len(taps), -1)
    # the torus offset of each tap per axis
    offsets = np.array([[t * d - b for t, d, b in zip(tap, spec.dilation, shifts, strict=True)]
                        for tap in taps], dtype=np.float64)  # (T, ndim)
    axes = [np.arange(m) for m in grid]
    if half:
        axes[-1] = np.arange(grid[-1] // 2 + 1)
    total = math.prod(len(a) for a in axes)
    per_frequency = max(1, 16 * w.shape[1])
    step = max(1, _FREQUENCY_BYTES // per_frequency)
    scale = np.array(grid, dtype=np.float64)
    with Progress(total, progress, "frequencies") as bar:
        for start in range(0, total, step):
            flat = np.arange(start, min(start + step, total))
            freqs = np.stack(np.unravel_index(flat, [len(a) for a in axes]), axis=1)  # (F, ndim)
            phases = np.exp(2j * np.pi * ((freqs / scale) @ offsets.T))  # (F, T)
            yield (phases @ w).reshape(len(flat), groups, cog, cig)
            bar.advance(len(flat))


def circulant_spectrum(spec: ConvSpec, weight: np.ndarray, progress: ProgressArg = False
                       ) -> np.ndarray:
    """All singular values of a block-circulant convolution, descending."""
    shifts = tuple(b for b, _ in spec.padding)
    values = [np.linalg.svd(block, compute_uv=False).reshape(-1)
              for block in _frequency_matrices(spec, weight, spec.input_size, shifts, False,
                                               progress)]
    return np.sort(np.concatenate(values))[::-1]


def torus_norm(spec: ConvSpec, weight: np.ndarray, grid: tuple[int, ...],
                shifts: tuple[int, ...], progress: ProgressArg = False) -> float:
    """``max_f ‖K̂(f)‖₂``: the norm of the circular convolution on ``grid``."""
    half = not np.iscomplexobj(weight)
    best = 0.0
    for block in _frequency_matrices(spec, weight, grid, shifts, half, progress):
        best = max(best, float(np.linalg.svd(block, compute_uv=False).max(initial=0.0)))
    return best
