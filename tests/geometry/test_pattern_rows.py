"""Rows of the spatial pattern straight from the index arithmetic (issue 19), against brute force.

The brute force pads a grid of input pixel numbers with the dense reference's ``np.pad`` (every
padding mode), reads it at every (output pixel, tap) window position, and groups what it reads.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from convmatrix import reference
from convmatrix.geometry.indices import (
    axis_read_counts,
    axis_row_taps,
    index_table,
    pattern_rows,
)
from convmatrix.geometry.spec import conv_spec

SPECS = [  # (weight shape, input shape, geometry)
    ((1, 1, 3), (1, 7), {}),
    ((1, 1, 3), (1, 8), {"stride": 2, "padding": 1}),
    ((1, 1, 4), (1, 9), {"stride": 3, "padding": ((2, 1),), "dilation": 2}),
    ((1, 1, 3), (1, 4), {"padding": 3, "padding_mode": "replicate"}),
    ((1, 1, 5), (1, 4), {"padding": 3, "padding_mode": "reflect", "stride": 2}),
    ((1, 1, 3), (1, 3), {"padding": 3, "padding_mode": "circular"}),
    ((1, 1, 3), (1, 3), {"padding": ((3, 2),), "padding_mode": "symmetric", "dilation": 2}),
    ((1, 1, 2, 2), (1, 3, 3), {}),
    ((1, 1, 3, 3), (1, 5, 6), {"stride": 2, "padding": 1}),
    ((1, 1, 3, 2), (1, 4, 3), {"padding": 2, "padding_mode": "reflect"}),
    ((1, 1, 3, 3), (1, 3, 4), {"padding": ((2, 3), (1, 2)), "padding_mode": "circular",
                               "stride": (2, 1)}),
    ((1, 1, 3, 3), (1, 2, 3), {"padding": 2, "padding_mode": "replicate", "dilation": (1, 2)}),
    ((1, 1, 2, 3, 2), (1, 3, 4, 3), {"stride": (1, 2, 2), "padding": 1,
                                     "padding_mode": "symmetric"}),
]


def _brute_rows(spec, transpose):
    """{row pixel: {column pixel: sorted taps}} by reading a padded grid of pixel numbers."""
    numbers = np.arange(1, math.prod(spec.input_size) + 1).reshape(1, *spec.input_size)
    padded = reference.pad(numbers, spec.padding, spec.padding_mode)[0]
    rows: dict[int, dict[int, list[int]]] = {}
    outputs = itertools.product(*(range(o) for o in spec.output_size))
    for o_flat, o in enumerate(outputs):
        for t_flat, t in enumerate(itertools.product(*(range(k) for k in spec.kernel_size))):
            at = tuple(oa * s + ta * d for oa, ta, s, d in
                       zip(o, t, spec.stride, spec.dilation, strict=True))
            read = int(padded[at]) - 1
            if read < 0:
                continue  # a zero of the padding
            row, col = (read, o_flat) if transpose else (o_flat, read)
            rows.setdefault(row, {}).setdefault(col, []).append(t_flat)
    return rows


def _as_rows(pattern):
    out = []
    for r in range(pattern.n_rows):
        lo, hi = pattern.indptr[r], pattern.indptr[r + 1]
        out.append([(int(pattern.indices[e]),
                     pattern.tap_ids[pattern.tap_ptr[e]:pattern.tap_ptr[e + 1]].tolist())
                    for e in range(lo, hi)])
    return out


@pytest.mark.parametrize(("wshape", "ishape", "geometry"), SPECS)
@pytest.mark.parametrize("rows", ["outputs", "inputs"])
def test_pattern_rows_match_brute_force(wshape, ishape, geometry, rows):
    spec = conv_spec(wshape, ishape, **geometry)
    transpose = rows == "inputs"
    n_rows = math.prod(spec.input_size if transpose else spec.output_size)
    brute = _brute_rows(spec, transpose)
    rng = np.random.default_rng(n_rows)
    pixels = np.concatenate([np.arange(n_rows), rng.integers(0, n_rows, 7)])  # repeats too
    got = _as_rows(pattern_rows(spec, rows, pixels))
    expected = [sorted((c, sorted(t)) for c, t in brute.get(p, {}).items()) for p in pixels]
    assert got == expected
    # and the rows of the whole-layer table agree (same columns, same tap order)
    table = index_table(spec)
    whole = table.transposed_pattern if transpose else table.pattern
    assert got[:n_rows] == _as_rows(whole)


def test_no_rows_is_an_empty_pattern():
    part = pattern_rows(conv_spec((1, 1, 3, 3), (1, 5, 5)), "outputs", [])
    assert part.n_rows == 0 and part.nnz == 0 and part.indptr.tolist() == [0]


def test_axis_row_taps_works_on_the_rows_asked_for_only():
    # an axis of a billion pixels: two rows cost two rows' taps, not a table of the axis
    n = 10**9
    cols, taps, valid = axis_row_taps(n, 3, 1, (1, 1), 1, n, "replicate", "inputs",
                                      np.array([0, n // 2]))
    assert cols.size <= 2 * 3 * 3
    pairs = [sorted(zip(c[v].tolist(), t[v].tolist(), strict=True))
             for c, t, v in zip(cols, taps, valid, strict=True)]
    # input 0 is read by output 0 (taps 0 = the replicated border, and 1) and output 1 (tap 0)
    assert pairs == [[(0, 0), (0, 1), (1, 0)],
                     [(n // 2 - 1, 2), (n // 2, 1), (n // 2 + 1, 0)]]


def _axes():
    """(n, k, s, (before, after), d, padding_mode, out) of valid axes with outputs."""
    modes = ("zeros", "reflect", "replicate", "circular", "symmetric")
    for n, k, s, d, pads, mode in itertools.product((1, 2, 5, 9), (1, 2, 3), (1, 2, 3), (1, 2),
                                                    ((0, 0), (1, 0), (2, 3)), modes):
        out = (n + sum(pads) - d * (k - 1) - 1) // s + 1
        too_wide = max(pads) >= n if mode == "reflect" else max(pads) > n and mode != "zeros"
        if out >= 1 and not too_wide:
            yield n, k, s, pads, d, mode, out


@pytest.mark.parametrize(("n", "k", "s", "pads", "d", "mode", "out"), list(_axes()))
def test_axis_read_counts_count_what_a_padded_grid_reads(n, k, s, pads, d, mode, out):
    padded = reference.pad(np.arange(1, n + 1).reshape(1, n), (pads,), mode)[0]
    reads = [int(padded[o * s + t * d]) - 1 for o in range(out) for t in range(k)]
    expected = np.bincount([r for r in reads if r >= 0], minlength=n)
    assert axis_read_counts(n, k, s, pads, d, out, mode).tolist() == expected.tolist()
