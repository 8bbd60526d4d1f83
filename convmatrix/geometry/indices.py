"""Index arithmetic: which input pixel feeds which output pixel through which kernel tap.

Everything here depends on the spatial geometry only (never on channels or weight values). The
numeric builder works from per-axis patterns (:func:`axis_pattern`, a few runs of rows per
axis); the symbolic derivations and explanations compute the rows they need straight from each
axis's arithmetic (:func:`pattern_rows`, :func:`axis_read_counts`), never a table of the whole
layer; the full :class:`IndexTable` remains for callers that want every triple at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from convmatrix.cache import cached
from convmatrix.geometry.spec import ConvSpec

__all__ = [
    "AxisPattern",
    "AxisRows",
    "AxisRun",
    "IndexTable",
    "SpatialPattern",
    "axis_pattern",
    "axis_read_counts",
    "axis_row_taps",
    "axis_taps",
    "index_table",
    "pattern_rows",
    "stored_entries",
]

AxisRows = Literal["outputs", "inputs"]


def axis_taps(
    n: int, k: int, s: int, padding: tuple[int, int], d: int, out: int, padding_mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Input index read by every (output position, tap) pair along one axis.

    Parameters
    ----------
    n, k, s, d, out : int
        Input size, kernel taps, stride, dilation and output size along the axis.
    padding : (int, int)
        Implicit padding before and after.
    padding_mode : str
        ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.

    Returns
    -------
    index : (out, k) ndarray of int64
        ``index[o, t]`` is the input pixel that tap ``t`` of output ``o`` reads, after mapping a
        padded position back into the input for the non-zero padding modes.
    valid : (out, k) ndarray of bool
        False where the tap reads a zero of the padding (only for ``"zeros"``).

    Notes
    -----
    The padded coordinate is ``o·s − p_before + t·d``. ``reflect`` mirrors without repeating
    the edge (``−1 → 1``), ``replicate`` clamps, ``circular`` wraps modulo ``n``, ``symmetric``
    mirrors including the edge (``−1 → 0``, ``n → n − 1``; padding at most ``n``).

    Examples
    --------
    >>> index, valid = axis_taps(3, 2, 1, (1, 1), 1, 4, "zeros")
    >>> index.tolist(), valid.all(axis=1).tolist()
    ([[-1, 0], [0, 1], [1, 2], [2, 3]], [False, True, True, False])
    >>> axis_taps(3, 2, 1, (1, 1), 1, 4, "reflect")[0].tolist()
    [[1, 0], [0, 1], [1, 2], [2, 1]]
    """
    coord = (np.arange(out, dtype=np.int64)[:, None] * s - padding[0]
             + np.arange(k, dtype=np.int64)[None, :] * d)
    return _map_coords(coord, n, padding_mode)


def _map_coords(coord: np.ndarray, n: int, padding_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Padded coordinates → (input index, reads an input pixel), as :func:`axis_taps` says."""
    if padding_mode == "zeros":
        return coord, (coord >= 0) & (coord < n)
    if padding_mode == "reflect":
        index = np.abs(coord)
        index = np.where(index > n - 1, 2 * (n - 1) - index, index)
    elif padding_mode == "replicate":
        index = np.clip(coord, 0, n - 1)
    elif padding_mode == "circular":
        index = np.mod(coord, n)
    elif padding_mode == "symmetric":
        index = np.where(coord < 0, -coord - 1, coord)
        index = np.where(index > n - 1, 2 * n - 1 - index, index)
    else:  # pragma: no cover - the spec validates the mode
        raise ValueError(f"unknown padding_mode {padding_mode!r}")
    return index, np.ones(coord.shape, dtype=bool)


@dataclass(frozen=True, eq=False)
class SpatialPattern:
    """CSR-like sparsity pattern of one channel pair's block of ``C`` (or of ``Cᵀ``).

    Row ``r`` holds the columns ``indices[indptr[r]:indptr[r + 1]]`` (ascending, distinct).
    Entry ``e`` sums the kernel taps ``tap_ids[tap_ptr[e]:tap_ptr[e + 1]]`` — one tap unless
    several taps of one output read the same input pixel (reflect/replicate/circular padding
    on small inputs).
    """

    n_rows: int
    n_cols: int
    indptr: np.ndarray
    indices: np.ndarray
    tap_ptr: np.ndarray
    tap_ids: np.ndarray

    @property
    def nnz(self) -> int:
        """Number of stored entries."""
        return int(self.indices.size)

    @property
    def injective(self) -> bool:
        """True when every entry is exactly one kernel tap (no taps merged)."""
        return self.tap_ids.size == self.indices.size

    @property
    def row_lengths(self) -> np.ndarray:
        """Stored entries per row."""
        return np.diff(self.indptr)


@dataclass(frozen=True, eq=False)
class IndexTable:
    """Every (output pixel, kernel tap, input pixel) triple of one channel pair.

    Arrays are flat spatial indices (C order), sorted by output pixel, then input pixel, then
    tap; taps that read a zero of the padding are absent. This is the single source of truth for
    the numeric matrices (:mod:`convmatrix.builder.sparse`) and the symbolic ones
    (:mod:`convmatrix.symbolic`).

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> table = index_table(conv_spec((1, 1, 2, 2), (1, 3, 3)))
    >>> table.out_pos[:4].tolist(), table.tap[:4].tolist(), table.in_pos[:4].tolist()
    ([0, 0, 0, 0], [0, 1, 2, 3], [0, 1, 3, 4])
    """

    input_size: tuple[int, ...]
    output_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    out_pos: np.ndarray
    tap: np.ndarray
    in_pos: np.ndarray

    @property
    def n_in(self) -> int:
        """Pixels per input channel."""
        return math.prod(self.input_size)

    @property
    def n_out(self) -> int:
        """Pixels per output channel."""
        return math.prod(self.output_size)

    @property
    def n_taps(self) -> int:
        """Taps per kernel."""
        return math.prod(self.kernel_size)

    @cached_property
    def pattern(self) -> SpatialPattern:
        """Pattern of the ``(n_out, n_in)`` block: rows are output pixels."""
        return _compress(self.out_pos, self.in_pos, self.tap, self.n_out, self.n_in)

    @cached_property
    def transposed_pattern(self) -> SpatialPattern:
        """Pattern of the ``(n_in, n_out)`` block of ``Cᵀ``: rows are input pixels."""
        order = np.lexsort((self.tap, self.out_pos, self.in_pos))
        return _compress(self.in_pos[order], self.out_pos[order], self.tap[order],
                         self.n_in, self.n_out)


def _compress(
    rows: np.ndarray, cols: np.ndarray, taps: np.ndarray, n_rows: int, n_cols: int
) -> SpatialPattern:
    """Merge triples sorted by (row, col, tap) into a pattern with one entry per (row, col)."""
    m = rows.size
    starts_mask = np.ones(m, dtype=bool)
    if m:
        starts_mask[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    starts = np.flatnonzero(starts_mask)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[starts], minlength=n_rows), out=indptr[1:])
    tap_ptr = np.append(starts, m).astype(np.int64)
    pattern = SpatialPattern(n_rows, n_cols, indptr, cols[starts], tap_ptr, taps)
    for array in (indptr, pattern.indices, tap_ptr):
        array.flags.writeable = False
    return pattern


def index_table(spec: ConvSpec) -> IndexTable:
    """Return the (cached) index table of a convolution's spatial geometry.

    Parameters
    ----------
    spec : ConvSpec
        The convolution; only its spatial geometry matters.

    Returns
    -------
    IndexTable
        Read-only. Kept in the byte-budgeted cache (:func:`convmatrix.cache.clear_cache`) while it
        fits, so repeated calls for one spatial geometry usually return the same object.
    """
    key = ("table", spec.input_size, spec.output_size, spec.kernel_size, spec.stride,
           spec.padding, spec.dilation, spec.padding_mode)
    # the patterns derived on demand hold about as much again as the table: count them too
    return cached(key, lambda: _table(*key[1:]),  # type: ignore[arg-type]
                  lambda t: 3 * sum(a.nbytes for a in (t.out_pos, t.tap, t.in_pos)))


def _table(
    input_size: tuple[int, ...],
    output_size: tuple[int, ...],
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    padding_mode: str,
) -> IndexTable:
    ndim = len(input_size)
    n_out, n_taps = math.prod(output_size), math.prod(kernel_size)
    in_strides = [math.prod(input_size[a + 1:]) for a in range(ndim)]
    in_pos = np.zeros((1,) * (2 * ndim), dtype=np.int64)
    valid = np.ones((1,) * (2 * ndim), dtype=bool)
    for a in range(ndim):
        index, ok = axis_taps(input_size[a], kernel_size[a], stride[a], padding[a],
                              dilation[a], output_size[a], padding_mode)
        shape = [1] * (2 * ndim)
        shape[a], shape[ndim + a] = output_size[a], kernel_size[a]
        in_pos = in_pos + (index * in_strides[a]).reshape(shape)
        valid = valid & ok.reshape(shape)
    # axes are (out_0..out_{D-1}, k_0..k_{D-1}): flattening gives (output pixel, tap) order
    full = tuple(output_size) + tuple(kernel_size)
    in_pos = np.broadcast_to(in_pos, full).reshape(n_out, n_taps)
    valid = np.broadcast_to(valid, full).reshape(n_out, n_taps)
    taps = np.broadcast_to(np.arange(n_taps, dtype=np.int64), in_pos.shape)
    if padding_mode != "zeros":
        # mapped taps of one output can repeat or go backwards: sort each row by input pixel
        order = np.argsort(in_pos, axis=1, kind="stable")
        in_pos = np.take_along_axis(in_pos, order, axis=1)
        taps = np.take_along_axis(taps, order, axis=1)
    # with zero padding, input pixel grows with the tap in C order, so rows are sorted already
    out_pos = np.broadcast_to(np.arange(n_out, dtype=np.int64)[:, None], in_pos.shape)
    arrays = [out_pos[valid], taps[valid], in_pos[valid]]
    for array in arrays:
        array.flags.writeable = False
    return IndexTable(input_size, output_size, kernel_size, *arrays)



def axis_read_counts(
    n: int, k: int, s: int, padding: tuple[int, int], d: int, out: int, padding_mode: str
) -> np.ndarray:
    """How many (output position, tap) pairs read each input position along one axis.

    The counts of ``np.bincount(index[valid], minlength=n)`` for :func:`axis_taps`'s arrays,
    without them: tap ``t`` reads the coordinates ``o·s − p_before + t·d``, an arithmetic
    progression whose part inside the input is one strided slice; only the few coordinates in
    the padded border are mapped one by one. Work is ``k`` slices of about ``out`` elements and
    memory the ``n`` counts (no ``out × k`` table).

    Parameters
    ----------
    n, k, s, padding, d, out, padding_mode
        As in :func:`axis_taps`.

    Returns
    -------
    (n,) ndarray of int64

    Examples
    --------
    >>> axis_read_counts(5, 3, 2, (0, 0), 1, 2, "zeros").tolist()
    [1, 1, 2, 1, 1]
    >>> axis_read_counts(3, 3, 1, (1, 1), 1, 3, "replicate").tolist()
    [3, 3, 3]
    """
    counts = np.zeros(n, dtype=np.int64)
    if out <= 0:
        return counts
    for t in range(k):
        first = t * d - padding[0]  # the coordinate output 0 reads through tap t
        # outputs whose coordinate lies in [0, n): o from ceil(−first / s) to floor((n−1−first)/s)
        lo, hi = max(0, -(first // s)), min(out - 1, (n - 1 - first) // s)
        if lo <= hi:
            counts[first + lo * s:first + hi * s + 1:s] += 1
        if padding_mode == "zeros":
            continue
        border = (np.concatenate([np.arange(lo, dtype=np.int64),
                                  np.arange(hi + 1, out, dtype=np.int64)]) if lo <= hi
                  else np.arange(out, dtype=np.int64))
        if border.size:
            index, valid = _map_coords(first + border * s, n, padding_mode)
            np.add.at(counts, index[valid], 1)
    return counts


def axis_row_taps(
    n: int, k: int, s: int, padding: tuple[int, int], d: int, out: int, padding_mode: str,
    rows: AxisRows, positions: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (column, tap) pairs of some rows of one axis's pattern, from the index arithmetic.

    For ``rows="outputs"`` (rows of ``C``) row ``o`` pairs tap ``t`` with the input index it
    reads (:func:`axis_taps`); for ``rows="inputs"`` (rows of ``Cᵀ``) row ``i`` pairs tap ``t``
    with every output ``o`` whose tap ``t`` reads input ``i``. Work and memory are proportional
    to the rows asked for times the taps (times the padded border for the non-zero padding
    modes, where several padded positions map to one input pixel) — never to the axis's size.

    Parameters
    ----------
    n, k, s, padding, d, out, padding_mode
        As in :func:`axis_taps`.
    rows : {"outputs", "inputs"}
        Rows of ``C`` (output positions) or of ``Cᵀ`` (input positions).
    positions : (R,) array_like of int
        The rows asked for (any order, repeats allowed), each in ``[0, out)`` or ``[0, n)``.

    Returns
    -------
    cols, taps : (R, W) ndarray of int64
        Column (input index for ``C``, output index for ``Cᵀ``) and tap of slot ``w`` of row
        ``positions[r]``; unordered within a row.
    valid : (R, W) ndarray of bool
        Which slots are pairs (the others are filler).

    Examples
    --------
    >>> cols, taps, valid = axis_row_taps(5, 3, 2, (1, 1), 1, 3, "zeros", "inputs", [1, 2])
    >>> [sorted(zip(c[v].tolist(), t[v].tolist())) for c, t, v in zip(cols, taps, valid)]
    [[(0, 2), (1, 0)], [(1, 1)]]
    """
    positions = np.asarray(positions, dtype=np.int64).reshape(-1, 1)
    tap = np.arange(k, dtype=np.int64)
    if rows == "outputs":
        cols, valid = _map_coords(positions * s - padding[0] + tap * d, n, padding_mode)
        return cols, np.broadcast_to(tap, cols.shape), valid
    # the padded coordinates that map to input i: i itself and, for a padding mode other than
    # zeros, those of the padded border (a few positions) whose mapped index is i
    candidates, reads = positions, np.ones(positions.shape, dtype=bool)
    if padding_mode != "zeros":
        last = (out - 1) * s - padding[0] + (k - 1) * d  # the last padded coordinate read
        border = np.concatenate([np.arange(-padding[0], 0, dtype=np.int64),
                                 np.arange(n, last + 1, dtype=np.int64)])
        mapped, _ = _map_coords(border, n, padding_mode)
        candidates = np.concatenate(
            [positions, np.broadcast_to(border, (positions.shape[0], border.size))], axis=1)
        reads = np.concatenate([reads, mapped == positions], axis=1)
    # tap t reads coordinate c from output o = (c + p_before − t·d) / s, when that is whole
    shifted = candidates[:, :, None] + padding[0] - tap * d
    o, rest = np.divmod(shifted, s)
    valid = reads[:, :, None] & (rest == 0) & (o >= 0) & (o < out)
    width = k * candidates.shape[1]
    taps = np.broadcast_to(tap, o.shape).reshape(-1, width)
    return o.reshape(-1, width), taps, valid.reshape(-1, width)


def pattern_rows(spec: ConvSpec, rows: AxisRows, pixels: np.ndarray) -> SpatialPattern:
    """Some rows of the spatial pattern of ``C`` (``rows="outputs"``) or ``Cᵀ`` (``"inputs"``).

    Row ``j`` of the result is row ``pixels[j]`` (a flat spatial index, C order) of
    :attr:`IndexTable.pattern` (or :attr:`IndexTable.transposed_pattern`): the same columns,
    ascending, and the same taps per entry, ascending — computed from each axis's index
    arithmetic (:func:`axis_row_taps`), with work and memory proportional to the rows asked for
    times the kernel's taps, never to the size of the layer.

    Parameters
    ----------
    spec : ConvSpec
        The convolution; only its spatial geometry matters.
    rows : {"outputs", "inputs"}
        Rows of ``C`` (output pixels) or of ``Cᵀ`` (input pixels).
    pixels : (R,) array_like of int
        The rows asked for (any order, repeats allowed).

    Returns
    -------
    SpatialPattern
        ``R`` rows; ``n_cols`` is the pixels of the other side.

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> spec = conv_spec((1, 1, 2, 2), (1, 3, 3))
    >>> part = pattern_rows(spec, "outputs", [3])
    >>> part.indices.tolist(), part.tap_ids.tolist()
    ([4, 5, 7, 8], [0, 1, 2, 3])
    >>> part = pattern_rows(spec, "inputs", [4, 0])
    >>> part.indptr.tolist(), part.indices.tolist(), part.tap_ids.tolist()
    ([0, 4, 5], [0, 1, 2, 3, 0], [3, 2, 1, 0, 0])
    """
    pixels = np.asarray(pixels, dtype=np.int64).reshape(-1)
    outputs = rows == "outputs"
    row_size, col_size = ((spec.output_size, spec.input_size) if outputs
                          else (spec.input_size, spec.output_size))
    ndim, n_rows = spec.ndim, pixels.size
    coords = np.unravel_index(pixels, row_size) if n_rows else [pixels] * ndim
    col = np.zeros((n_rows,) + (1,) * ndim, dtype=np.int64)
    tap = np.zeros_like(col)
    valid = np.ones(col.shape, dtype=bool)
    for a in range(ndim):
        c, t, v = axis_row_taps(spec.input_size[a], spec.kernel_size[a], spec.stride[a],
                                spec.padding[a], spec.dilation[a], spec.output_size[a],
                                spec.padding_mode, rows, coords[a])
        if v.shape[1] > 1 and not v.all():  # drop filler slots: keep each row's pairs first
            order = np.argsort(~v, axis=1, kind="stable")
            width = max(int(v.sum(axis=1).max(initial=0)), 1)
            c, t, v = (np.take_along_axis(x, order, axis=1)[:, :width] for x in (c, t, v))
        shape = [n_rows] + [1] * ndim
        shape[1 + a] = c.shape[1]
        col = col + (c * math.prod(col_size[a + 1:])).reshape(shape)
        tap = tap + (t * math.prod(spec.kernel_size[a + 1:])).reshape(shape)
        valid = valid & v.reshape(shape)
    local = np.broadcast_to(np.arange(n_rows, dtype=np.int64).reshape(col.shape[:1] + (1,) * ndim),
                            valid.shape)[valid]
    col, tap = np.broadcast_to(col, valid.shape)[valid], np.broadcast_to(tap, valid.shape)[valid]
    order = np.lexsort((tap, col, local))
    pattern = _compress(local[order], col[order], tap[order], n_rows, math.prod(col_size))
    pattern.tap_ids.flags.writeable = False
    return pattern


def stored_entries(spec: ConvSpec) -> int:
    """Exact number of stored entries of ``C`` (taps merged by a padding mode count once).

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> stored_entries(conv_spec((1, 1, 3), (1, 8), padding=1, padding_mode="replicate"))
    22
    """
    per_pair = math.prod(
        axis_pattern(spec, axis, "outputs").nnz for axis in range(spec.ndim))
    return per_pair * spec.out_channels * (spec.in_channels // spec.groups)


@dataclass(frozen=True, eq=False)
class AxisRun:
    """Rows ``row0 + step·r`` (``r < length``) of one axis's pattern that share one layout.

    Row ``row0 + step·r`` holds the columns ``cols + r·shift`` (ascending, distinct); entry
    ``e`` sums the kernel taps ``taps[tap_ptr[e]:tap_ptr[e + 1]]`` (``tap_ptr`` is None when
    every entry is one tap: entry ``e`` is tap ``taps[e]``). Between two consecutive rows of the
    run the axis pattern holds ``slope`` entries.
    """

    row0: int
    step: int
    length: int
    cols: np.ndarray
    shift: int
    slope: int
    taps: np.ndarray
    tap_ptr: np.ndarray | None

    @property
    def m(self) -> int:
        """Entries per row."""
        return int(self.cols.size)


@dataclass(frozen=True, eq=False)
class AxisPattern:
    """The pattern of a convolution along one spatial axis, as a few runs of alike rows.

    The spatial pattern of ``C`` (or of ``Cᵀ``) is the product of its axes' patterns: row
    ``(r_0, …, r_{D−1})`` holds the entries ``(e_0, …, e_{D−1})`` in C order, at column
    ``Σ cols_a[e_a]·stride_a``, summing the taps of every combination of the axes' tap groups.

    Attributes
    ----------
    n_rows, n_cols : int
        Rows (output positions for ``C``, input positions for ``Cᵀ``) and columns.
    entry_ptr : (n_rows + 1,) ndarray of int64
        Entries before each row.
    runs : tuple of AxisRun
        Every row with entries lies in exactly one run.

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> pattern = axis_pattern(conv_spec((1, 1, 3), (1, 6), padding=1), 0, "outputs")
    >>> [(run.row0, run.length, run.cols.tolist(), run.taps.tolist()) for run in pattern.runs]
    [(0, 1, [0, 1], [1, 2]), (1, 4, [0, 1, 2], [0, 1, 2]), (5, 1, [4, 5], [0, 1])]
    """

    n_rows: int
    n_cols: int
    entry_ptr: np.ndarray
    runs: tuple[AxisRun, ...]

    @property
    def nnz(self) -> int:
        """Stored entries of the axis pattern."""
        return int(self.entry_ptr[-1])

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays held."""
        return self.entry_ptr.nbytes + sum(
            r.cols.nbytes + r.taps.nbytes + (0 if r.tap_ptr is None else r.tap_ptr.nbytes)
            for r in self.runs)


def axis_pattern(spec: ConvSpec, axis: int, rows: AxisRows) -> AxisPattern:
    """Pattern of ``C`` (``rows="outputs"``) or ``Cᵀ`` (``rows="inputs"``) along one axis (cached).

    Its size is the axis's ``output size × kernel taps``, never the whole matrix's.
    """
    key = ("axis", spec.input_size[axis], spec.kernel_size[axis], spec.stride[axis],
           spec.padding[axis], spec.dilation[axis], spec.output_size[axis], spec.padding_mode,
           rows)
    return cached(key, lambda: _axis_pattern(*key[1:]),  # type: ignore[arg-type]
                  lambda p: p.nbytes)


def _axis_pattern(
    n: int, k: int, s: int, padding: tuple[int, int], d: int, out: int, padding_mode: str,
    rows: AxisRows,
) -> AxisPattern:
    index, valid = axis_taps(n, k, s, padding, d, out, padding_mode)
    o = np.broadcast_to(np.arange(out, dtype=np.int64)[:, None], index.shape)
    t = np.broadcast_to(np.arange(k, dtype=np.int64)[None, :], index.shape)
    if rows == "outputs":
        r, c, tap = o[valid], index[valid], t[valid]
        n_rows, n_cols, period = out, n, 1
    else:
        r, c, tap = index[valid], o[valid], t[valid]
        n_rows, n_cols, period = n, out, s
    if rows == "inputs" or padding_mode != "zeros":
        order = np.lexsort((tap, c, r))
        r, c, tap = r[order], c[order], tap[order]
    pairs = r.size
    pair_ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n_rows), out=pair_ptr[1:])
    new = np.ones(pairs, dtype=bool)
    new[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    starts = np.flatnonzero(new)
    entry_ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(r[starts], minlength=n_rows), out=entry_ptr[1:])
    entry_cols = c[starts]
    group_ptr = np.append(starts, pairs)

    # rows r and r + P (P the period of the interior: 1 for C, the stride for Cᵀ) belong to one
    # run when they hold the same taps in the same order at columns shifted by one constant, and
    # the shift and the entries between them stay the same along the run
    width = int((pair_ptr[1:] - pair_ptr[:-1]).max()) if n_rows else 0
    tap_table = np.full((n_rows, width), -1, dtype=np.int64)
    col_table = np.zeros((n_rows, width), dtype=np.int64)
    slot = np.arange(pairs, dtype=np.int64) - pair_ptr[r]
    tap_table[r, slot] = tap
    col_table[r, slot] = c
    p = max(1, min(period, n_rows))
    start = np.ones(n_rows, dtype=bool)
    shift = np.zeros(max(n_rows - p, 0), dtype=np.int64)
    if n_rows > p:
        same = (tap_table[:-p] == tap_table[p:]).all(axis=1)
        diff = col_table[p:] - col_table[:-p]
        if width:
            shift = diff[:, 0]
        ok = same & ((diff == shift[:, None]) | (tap_table[:-p] < 0)).all(axis=1)
        slope = entry_ptr[p:n_rows] - entry_ptr[:n_rows - p]
        start[p:] = ~ok
        if n_rows > 2 * p:
            changed = (shift[p:] != shift[:-p]) | (slope[p:] != slope[:-p])
            start[2 * p:] |= ok[:-p] & changed
    first = np.flatnonzero(start)
    phase = first % p
    order = np.lexsort((first, phase))
    first, phase = first[order], phase[order]
    last = n_rows - 1 - ((n_rows - 1 - phase) % p)
    if first.size > 1:
        follows = phase[1:] == phase[:-1]
        last[:-1] = np.where(follows, first[1:] - p, last[:-1])
    lengths = (last - first) // p + 1
    runs = []
    for row0, length in zip(first.tolist(), lengths.tolist(), strict=True):
        e0, e1 = int(entry_ptr[row0]), int(entry_ptr[row0 + 1])
        if e1 == e0:
            continue
        groups = group_ptr[e0:e1 + 1]
        taps = tap[groups[0]:groups[-1]].copy()
        tap_ptr = None if taps.size == e1 - e0 else groups - groups[0]
        step_shift = int(shift[row0]) if length > 1 else 0
        step_slope = int(entry_ptr[row0 + p] - entry_ptr[row0]) if length > 1 else 0
        runs.append(AxisRun(row0, p, length, entry_cols[e0:e1].copy(), step_shift, step_slope,
                            taps, tap_ptr))
    runs.sort(key=lambda run: run.row0)
    return AxisPattern(n_rows, n_cols, entry_ptr, tuple(runs))
