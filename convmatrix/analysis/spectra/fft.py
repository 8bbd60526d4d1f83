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

__all__ = ["chunk_work_bytes", "circulant_norm", "circulant_spectrum", "is_circulant",
           "torus_norm"]

_FREQUENCY_BYTES = 64 * 2**20  # per-frequency matrices held at once


def chunk_work_bytes() -> int:
    """Bytes the frequency chunks need at once (four chunks of ``K̂(f)``).

    A chunk, the temporaries of the per-axis contraction and the singular values' work on
    it: measured at most three chunks.

    Examples
    --------
    >>> chunk_work_bytes() // 2**20
    256
    """
    return 4 * _FREQUENCY_BYTES


def is_circulant(spec: ConvSpec) -> bool:
    """Circular padding, stride 1 and output size == input size: ``C`` is block circulant."""
    return (spec.padding_mode == "circular" and all(s == 1 for s in spec.stride)
            and spec.output_size == spec.input_size)


def _phases(grid: int, frequencies: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``e^{2πi f·o/M}`` for frequencies ``f`` × tap offsets ``o`` on an axis of ``M`` pixels.

    ``f·o`` is reduced mod ``M`` in integers first, so the phase stays exact on large grids.
    """
    turns = np.outer(frequencies.astype(np.int64), offsets.astype(np.int64)) % grid
    return np.exp(2j * np.pi * (turns / grid))  # type: ignore[no-any-return]


def _frequency_matrices(spec: ConvSpec, weight: np.ndarray, grid: tuple[int, ...],
                        shifts: tuple[int, ...], half: bool, progress: ProgressArg = False
                        ) -> Iterator[np.ndarray]:
    """Yield chunks ``(F, G, C_out/G, C_in/G)`` of ``K̂(f) = Σ_t W[:, :, t] e^{2πi f·(t·d − b)/M}``.

    ``K̂(f)`` is the ``C_out × C_in`` block the circular cross-correlation on the grid ``M``
    applies to the frequency-``f`` Fourier mode of every input channel (Sedghi et al. 2019).
    The taps form a grid and each phase factors over the axes, so the transform is applied
    one axis at a time (``Σ_t`` over ``k_a`` taps per axis: about ``N·∏k`` multiply-adds per
    channel pair instead of ``N·∏k`` complex exponentials), a chunk of frequencies at a
    time so that the memory stays bounded; frequencies come in C order. ``half`` keeps one
    of each conjugate pair ``±f`` (real weights): the last axis up to ``M // 2``.
    """
    groups = spec.groups
    cog, cig = spec.out_channels // groups, spec.in_channels // groups
    ndim = spec.ndim
    pairs = groups * cog * cig
    w = np.asarray(weight, dtype=np.result_type(weight.dtype, np.float64))
    # (*k, P): the taps' grid first, one column per (group, out, in) channel pair
    w = np.moveaxis(w.reshape(pairs, *spec.kernel_size), 0, -1)
    sizes = list(grid)
    if half:
        sizes[-1] = grid[-1] // 2 + 1
    phases = [_phases(m, np.arange(n), np.arange(k) * d - b) for m, n, k, d, b in
              zip(grid, sizes, spec.kernel_size, spec.dilation, shifts, strict=True)]
    # split on the leading axes until one slice of the rest fits the chunk budget
    per_frequency = 16 * pairs
    depth = 0
    while depth < ndim - 1 and math.prod(sizes[depth + 1:]) * per_frequency > _FREQUENCY_BYTES:
        depth += 1
    rest = math.prod(sizes[depth + 1:])
    step = max(1, _FREQUENCY_BYTES // (rest * per_frequency))
    total = math.prod(sizes)
    with Progress(total, progress, "frequencies") as bar:
        for lead in itertools.product(*(range(n) for n in sizes[:depth])):
            for start in range(0, sizes[depth], step):
                chosen = [phases[a][i:i + 1] for a, i in enumerate(lead)]
                chosen.append(phases[depth][start:start + step])
                chosen += phases[depth + 1:]
                block = w
                for axis, factor in enumerate(chosen):  # Σ over this axis's taps
                    block = np.moveaxis(np.tensordot(block, factor, axes=([axis], [1])),
                                        -1, axis)
                block = block.reshape(-1, groups, cog, cig)
                yield block
                bar.advance(block.shape[0])


def _block_values(block: np.ndarray) -> np.ndarray:
    """Singular values ``(F, G, min(C_out, C_in)/G)`` of a chunk of frequency matrices.

    A column or a row (one channel on either side) has one singular value, its length: that
    is computed directly instead of one LAPACK call per frequency (millions of them on a
    large single-channel layer).
    """
    if min(block.shape[-2:]) == 1:
        axis = -1 if block.shape[-2] == 1 else -2
        return np.sqrt(np.sum(block.real ** 2 + block.imag ** 2, axis=axis))
    return np.linalg.svd(block, compute_uv=False)  # type: ignore[no-any-return]


def circulant_spectrum(spec: ConvSpec, weight: np.ndarray, progress: ProgressArg = False
                       ) -> np.ndarray:
    """All singular values of a block-circulant convolution, descending."""
    shifts = tuple(b for b, _ in spec.padding)
    values = [_block_values(block).reshape(-1)
              for block in _frequency_matrices(spec, weight, spec.input_size, shifts, False,
                                               progress)]
    return np.sort(np.concatenate(values))[::-1]


def circulant_norm(spec: ConvSpec, weight: np.ndarray, progress: ProgressArg = False) -> float:
    """The largest singular value of a block-circulant convolution (no full spectrum sorted)."""
    return torus_norm(spec, weight, spec.input_size, tuple(b for b, _ in spec.padding), progress)


def torus_norm(spec: ConvSpec, weight: np.ndarray, grid: tuple[int, ...],
                shifts: tuple[int, ...], progress: ProgressArg = False) -> float:
    """``max_f ‖K̂(f)‖₂``: the norm of the circular convolution on ``grid``."""
    half = not np.iscomplexobj(weight)
    best = 0.0
    for block in _frequency_matrices(spec, weight, grid, shifts, half, progress):
        best = max(best, float(_block_values(block).max(initial=0.0)))
    return best
