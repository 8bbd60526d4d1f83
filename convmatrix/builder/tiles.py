"""How a batch is cut into tiles within the budgets, and a tile's views as BLAS operands."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from convmatrix.builder import budget, tuning
from convmatrix.builder.padding import padded_length as _used_length
from convmatrix.geometry.spec import ConvSpec

__all__ = ["as_memory", "batch_tiling", "gemm_shape", "matrix_view", "padded_chunk",
           "row_tiling", "tap_tiling", "tap_window", "tap_windows", "tile_ranges"]


@dataclass
class _Tiling:
    """How a batch is cut: ``samples`` per tile × ``groups`` × ``rows`` output rows."""

    samples: int
    rows: int
    groups: int


def batch_tiling(spec: ConvSpec, batch: int, itemsize: int, batch_last: bool,
                 split_groups: bool = True) -> _Tiling:
    """Samples, groups and output rows per tile: the preferred size, within the workspace.

    ``split_groups=False``: every tile holds all groups.
    """
    o = spec.output_size
    rest_out = math.prod(o[1:])
    used = [_used_length(spec, a) for a in range(spec.ndim)]
    rest_pad = math.prod(used[1:])
    k = math.prod(spec.kernel_size)
    # per output row of one sample: the column matrix, the padded rows, the product's rows
    per_row = itemsize * (spec.in_channels * k * rest_out
                          + spec.in_channels * spec.stride[0] * rest_pad
                          + spec.out_channels * rest_out)
    halo = itemsize * spec.in_channels * rest_pad * spec.dilation[0] * (spec.kernel_size[0] - 1)
    groups = spec.groups
    if groups > 1 and split_groups:
        one = (o[0] * per_row + halo) // groups * (batch if batch_last else 1)
        chunk = max(1, min(groups, tuning.GROUP_TILE_BYTES // max(one, 1)))
        per_row, halo = -(-per_row * chunk // groups), -(-halo * chunk // groups)
        groups = chunk
    target = tuning.TILE_BYTES
    whole = o[0] * per_row + halo
    if batch * whole <= target:
        return _Tiling(batch, o[0], groups)
    if whole <= target and not batch_last:
        return _Tiling(max(1, target // whole), o[0], groups)
    if batch_last and batch * (per_row + halo) <= budget.WORKSPACE_BYTES:
        # interleaved samples: all of them, in as many rows as fit (the product writes the
        # output in place only when a tile holds every sample), at least one row
        return _Tiling(batch, max(1, min((target - batch * halo) // (batch * per_row), o[0])),
                       groups)
    samples = max(1, min(batch, target // whole)) if whole <= target else 1
    if samples == 1:
        rows = (target - halo) // per_row
        if rows < 1:  # one output row of one sample is above the preferred size
            rows = (budget.WORKSPACE_BYTES - halo) // per_row
        return _Tiling(1, max(1, min(rows, o[0])), groups)
    return _Tiling(samples, o[0], groups)


def tile_ranges(spec: ConvSpec, batch: int,
                tiling: _Tiling) -> list[tuple[int, int, int, int, int, int]]:
    """Tiles ``(b0, b1, g0, g1, o0, o1)``: samples, groups and output rows."""
    o, g = spec.output_size[0], spec.groups
    return [(b0, min(b0 + tiling.samples, batch), g0, min(g0 + tiling.groups, g),
             o0, min(o0 + tiling.rows, o))
            for b0 in range(0, batch, tiling.samples)
            for g0 in range(0, g, tiling.groups)
            for o0 in range(0, o, tiling.rows)]


def row_tiling(spec: ConvSpec, batch: int, per_row: int, halo: int,
               batch_last: bool) -> _Tiling:
    """Samples and output rows per tile, from a tile's bytes per output row and halo.

    Whole samples within :data:`TILE_BYTES`, else rows (at least one; the halo alone above
    it: :data:`WORKSPACE_BYTES`). Interleaved samples stay together (rows are cut instead)
    while one row of each fits.
    """
    o = spec.output_size[0]
    whole = o * per_row + halo
    if whole <= tuning.TILE_BYTES and not batch_last:
        return _Tiling(max(1, min(batch, tuning.TILE_BYTES // whole)), o, spec.groups)
    samples = batch if batch_last and batch * (per_row + halo) <= budget.WORKSPACE_BYTES else 1
    rows = (tuning.TILE_BYTES - samples * halo) // (samples * per_row)
    if rows < 1:
        rows = (budget.WORKSPACE_BYTES - samples * halo) // (samples * per_row)
    return _Tiling(samples, max(1, min(rows, o)), spec.groups)


def tap_tiling(spec: ConvSpec, batch: int, itemsize: int, batch_last: bool) -> _Tiling:
    """Tiles of :func:`_taps_into`: a padded and a summed row per output row."""
    rest = math.prod(_used_length(spec, a) for a in range(1, spec.ndim))
    per_row = 2 * itemsize * spec.in_channels * rest
    halo = itemsize * spec.in_channels * rest * spec.dilation[0] * (spec.kernel_size[0] - 1)
    return row_tiling(spec, batch, per_row, halo, batch_last)


def padded_chunk(batch: int, per_sample: int) -> int:
    """Samples whose padded inputs are held at once (0: not even one fits).

    The workspace less one preferred tile: the kernel's own tiles run on them.
    """
    return min(batch, max(budget.WORKSPACE_BYTES - tuning.TILE_BYTES, 0) // max(per_sample, 1))


def _blasable(a: np.ndarray) -> bool:
    """Whether the last two axes are a matrix BLAS reads in place (unit inner stride)."""
    item = a.itemsize
    return (a.strides[-1] == item or a.shape[-1] == 1) and a.strides[-2] % item == 0 \
        and a.strides[-2] >= max(a.shape[-1], 1) * item


def matrix_view(a: np.ndarray, shape: Sequence[int]) -> np.ndarray | None:
    """``a`` reshaped without a copy, or None when that needs a copy."""
    try:
        view = np.reshape(a, tuple(shape), copy=False)
    except ValueError:
        return None
    return view if _blasable(view) else None


def gemm_shape(g: int, rows: int, columns: int, samples: int, batch_last: bool) -> list[int]:
    """Shape of a product's operand: ``(G, rows, columns·b)`` or ``(b, G, rows, columns)``."""
    return [g, rows, columns * samples] if batch_last else [samples, g, rows, columns]


def as_memory(a: np.ndarray, batch_last: bool) -> np.ndarray:
    """The logical ``(b, …)`` view moved to memory order (batch last when ``batch_last``)."""
    return np.moveaxis(a, 0, -1) if batch_last else a


def tap_window(spec: ConvSpec, tap: tuple[int, ...], rows: int) -> tuple[slice, ...]:
    """The strided window tap ``tap`` reads for ``rows`` output rows of a padded tile."""
    sizes = (rows, *spec.output_size[1:])
    return tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in
                 zip(tap, spec.dilation, sizes, spec.stride, strict=True))


@lru_cache(maxsize=1024)
def tap_windows(spec: ConvSpec, rows: int) -> tuple[tuple[slice, ...], ...]:
    """Every tap's :func:`tap_window` (row-major), as an index of a ``(b, C, …)`` padded tile."""
    return tuple((slice(None), slice(None), *tap_window(spec, tap, rows))
                 for tap in itertools.product(*(range(n) for n in spec.kernel_size)))
