"""Rows of a layer's matrix as (column, weight indices) lists, straight from the index table."""

from __future__ import annotations

from collections.abc import Iterator

from convmatrix.geometry.indices import index_table
from convmatrix.geometry.spec import ConvSpec
from convmatrix.typing import Direction

__all__ = ["row_entries"]


def row_entries(spec: ConvSpec, direction: Direction, row: int) -> Iterator[tuple[int, list[int]]]:
    """Stored entries of one row of ``C`` (or of ``Cᵀ``): ``(column, flat weight indices)``.

    The weight indices of an entry are the taps whose weights add up there (one, unless a
    padding mode maps several taps onto one pixel). Columns come out ascending. Work is
    proportional to the row's stored entries.
    """
    transpose = direction == "adjoint"
    table = index_table(spec)
    pattern = table.transposed_pattern if transpose else table.pattern
    n_taps = table.n_taps
    in_per_group = spec.in_channels // spec.groups
    out_per_group = spec.out_channels // spec.groups
    channel, pixel = divmod(row, pattern.n_rows)
    lo, hi = int(pattern.indptr[pixel]), int(pattern.indptr[pixel + 1])
    cols = pattern.indices[lo:hi].tolist()
    taps = [pattern.tap_ids[pattern.tap_ptr[e]:pattern.tap_ptr[e + 1]].tolist()
            for e in range(lo, hi)]
    if transpose:  # row channel: a forward input channel; columns: its group's outputs
        group, local = divmod(channel, in_per_group)
        for o in range(group * out_per_group, (group + 1) * out_per_group):
            base = (o * in_per_group + local) * n_taps
            for q, tap_list in zip(cols, taps, strict=True):
                yield o * pattern.n_cols + q, [base + t for t in tap_list]
    else:  # row channel: an output channel; columns: the input channels of its group
        group = channel // out_per_group
        for local in range(in_per_group):
            c = group * in_per_group + local
            base = (channel * in_per_group + local) * n_taps
            for q, tap_list in zip(cols, taps, strict=True):
                yield c * pattern.n_cols + q, [base + t for t in tap_list]
