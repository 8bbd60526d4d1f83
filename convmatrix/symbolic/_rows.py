"""Rows of a layer's matrix as (column, weight indices) lists, from the index arithmetic."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from convmatrix.geometry.indices import pattern_rows
from convmatrix.geometry.spec import ConvSpec
from convmatrix.typing import Direction

__all__ = ["ROWS_PER_BLOCK", "row_entries", "rows_entries"]

#: rows whose spatial patterns are computed in one vectorised step (bounds the workspace)
ROWS_PER_BLOCK = 2048

Entries = list[tuple[int, list[int]]]


def rows_entries(spec: ConvSpec, direction: Direction, rows: Sequence[int]) -> Iterator[Entries]:
    """Stored entries of rows of ``C`` (or of ``Cᵀ``), one list per row asked for, in order.

    An entry is ``(column, flat weight indices)``: the weight indices are the taps whose
    weights add up there (one, unless a padding mode maps several taps onto one pixel).
    Columns come out ascending. The rows' spatial patterns come from the index arithmetic
    (:func:`convmatrix.geometry.indices.pattern_rows`) a block of rows at a time: work is
    proportional to the rows' stored entries, whatever the layer's size, and no table of the
    whole layer is built.
    """
    transpose = direction == "adjoint"
    in_per_group = spec.in_channels // spec.groups
    out_per_group = spec.out_channels // spec.groups
    n_taps = math.prod(spec.kernel_size)
    row_pixels = math.prod(spec.input_size if transpose else spec.output_size)
    for start in range(0, len(rows), ROWS_PER_BLOCK):
        block = np.asarray(rows[start:start + ROWS_PER_BLOCK], dtype=np.int64)
        channels, pixels = np.divmod(block, row_pixels)
        pattern = pattern_rows(spec, "inputs" if transpose else "outputs", pixels)
        n_cols = pattern.n_cols
        indptr, cols = pattern.indptr.tolist(), pattern.indices.tolist()
        tap_ptr, tap_ids = pattern.tap_ptr.tolist(), pattern.tap_ids.tolist()
        for j, channel in enumerate(channels.tolist()):
            lo, hi = indptr[j], indptr[j + 1]
            spatial = [(cols[e], tap_ids[tap_ptr[e]:tap_ptr[e + 1]]) for e in range(lo, hi)]
            if transpose:  # row channel: a forward input channel; columns: its group's outputs
                group, local = divmod(channel, in_per_group)
                pairs = [(o * n_cols, (o * in_per_group + local) * n_taps)
                         for o in range(group * out_per_group, (group + 1) * out_per_group)]
            else:  # row channel: an output channel; columns: the input channels of its group
                group = channel // out_per_group
                pairs = [((group * in_per_group + local) * n_cols,
                          (channel * in_per_group + local) * n_taps)
                         for local in range(in_per_group)]
            yield [(offset + q, [base + t for t in taps])
                   for offset, base in pairs for q, taps in spatial]


def row_entries(spec: ConvSpec, direction: Direction, row: int) -> Iterator[tuple[int, list[int]]]:
    """Stored entries of one row of ``C`` (or of ``Cᵀ``): ``(column, flat weight indices)``.

    One row of :func:`rows_entries` (prefer that for many rows: it works a block at a time).
    """
    return iter(next(rows_entries(spec, direction, [row])))
