"""Where every entry of a convolution's CSR goes: boxes of alike rows written as strided views.

The spatial pattern is the product of per-axis patterns
(:func:`convmatrix.geometry.indices.axis_pattern`),
each a few runs of rows that share one layout (interior rows, border rows, stride phases). A
choice of one run per axis, times all row channels, is a *box*: its rows all have the same
length and relative columns, and its entries sit in the CSR arrays at affine offsets. So each
box is one strided view of ``indices`` (and of ``data``), filled with one broadcast add of a
small table (``indices``) and one broadcast copy of its weight values (``data``) — memory speed,
no per-entry fancy indexing, no sort. The layout depends on the geometry only and is small
(per-axis runs and a table of at most :data:`TAIL_ENTRIES` entries per box), so it is cached.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.indexing import index_dtype
from convmatrix.cache import cached
from convmatrix.geometry.indices import AxisPattern, AxisRows, AxisRun, axis_pattern
from convmatrix.geometry.spec import ConvSpec

__all__ = [
    "SMALL_ENTRIES",
    "TAIL_ENTRIES",
    "Layout",
    "block_weights",
    "box_values",
    "layout",
    "write_data",
    "write_indices",
    "write_indptr",
]

TAIL_ENTRIES = 1 << 14
"""Entries of the inner, precomputed part of a box (the rest is a broadcast over it)."""
SMALL_ENTRIES = 1 << 18
"""Layers with at most this many entries keep their finished index arrays in the layout."""

_THREAD_MIN_NNZ = 1 << 21  # below this, one thread fills faster than a pool starts
_MAX_THREADS = 4
_VALUE_CHUNK = 1 << 20  # weight values materialised per step when writing data


@dataclass(frozen=True, eq=False)
class _Dim:
    """One axis of a box's strided view: size, stride (entries), column contribution."""

    size: int
    stride: int
    contrib: np.ndarray
    unit: int | None  # contrib == arange(size)·unit: a row axis, which may be split
    value_axis: int | None  # axis of the box's weight values it runs over (None: constant)


@dataclass(frozen=True, eq=False)
class _Item:
    """A box (or part of one): ``indices[view] = outer_index[..., None…] + tail_index``."""

    box: int
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    n_outer: int
    outer_index: np.ndarray
    tail_index: np.ndarray
    value_shape: tuple[int, ...]  # the box's values reshaped to broadcast over the view

    @property
    def nbytes(self) -> int:
        return self.outer_index.nbytes + self.tail_index.nbytes


@dataclass(frozen=True, eq=False)
class _Small:
    """A small layer's finished index arrays and where each entry's weights come from.

    ``gather[e]`` is the flat weight index entry ``e`` reads; when some entries sum several
    taps, entry ``e`` sums the weights ``pairs[pair_ptr[e]:pair_ptr[e + 1]]`` instead (or,
    for layers with more than 62 weights, neither is kept and the box writer runs).
    """

    indptr: np.ndarray
    indices: np.ndarray
    gather: np.ndarray | None = None
    pairs: np.ndarray | None = None
    pair_ptr: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        arrays = (self.indptr, self.indices, self.gather, self.pairs, self.pair_ptr)
        return sum(a.nbytes for a in arrays if a is not None)

    def values(self, weight: np.ndarray, padding_mode: str) -> np.ndarray | None:
        """The CSR ``data`` for a weight (exact merged sums, or refused), or None."""
        flat = weight.reshape(-1)
        if self.gather is not None:
            return flat.take(self.gather)
        # integer sums are exact in any order; float sums keep the box writer's order, so a
        # matrix does not depend on which path built it
        if self.pairs is None or self.pair_ptr is None or weight.dtype.kind not in "biu" \
                or weight.dtype.itemsize >= 8:
            return None
        taps = flat.take(self.pairs).astype(np.int64)
        sums = np.add.reduceat(taps, self.pair_ptr[:-1], dtype=np.int64)
        _check_fits(sums, weight.dtype, padding_mode)
        return sums.astype(weight.dtype)


@dataclass(frozen=True, eq=False)
class Layout:
    """Everything about a layer's CSR except the weight values (see the module docstring).

    Attributes
    ----------
    shape : (int, int)
        Shape of the CSR matrix (rows of ``C``, or of ``Cᵀ`` when built from input pixels).
    nnz : int
        Stored entries.
    index_dtype : dtype
        int32 when every index and count fits, int64 otherwise.
    """

    shape: tuple[int, int]
    nnz: int
    index_dtype: np.dtype[Any]
    row_channels: int
    block: int  # column channels per row channel
    channel_entries: int  # entries of one row channel
    axes: tuple[AxisPattern, ...]
    boxes: tuple[tuple[AxisRun, ...], ...]
    items: tuple[_Item, ...]
    padding_mode: str
    nnz_upper_bound: int  # the spec's closed-form bound, kept for the memory guard
    small: _Small | None = None  # layers of at most SMALL_ENTRIES entries
    # the memory guard's closed-form estimates, per (dtype, transpose, format)
    estimates: dict[Any, tuple[int, int]] = dataclasses.field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays held (per-axis patterns and per-box tables)."""
        small = 0 if self.small is None else self.small.nbytes
        return sum(a.nbytes for a in self.axes) + sum(i.nbytes for i in self.items) + small


def layout(spec: ConvSpec, rows: AxisRows) -> Layout:
    """The (cached) layout of ``C`` (``rows="outputs"``) or of ``Cᵀ`` as CSR (``"inputs"``)."""
    return cached(("layout", spec, rows), lambda: _layout(spec, rows), lambda lay: lay.nbytes)


def _layout(spec: ConvSpec, rows: AxisRows) -> Layout:
    g = spec.groups
    in_per_group, out_per_group = spec.in_channels // g, spec.out_channels // g
    axes = tuple(axis_pattern(spec, axis, rows) for axis in range(spec.ndim))
    if rows == "outputs":  # rows of C: output channels; columns: their group's inputs
        row_channels, block, col_channels = spec.out_channels, in_per_group, spec.in_channels
        base = (np.arange(row_channels, dtype=np.int64) // out_per_group) * in_per_group
    else:  # rows of Cᵀ: input channels; columns: their group's outputs
        row_channels, block, col_channels = spec.in_channels, out_per_group, spec.out_channels
        base = (np.arange(row_channels, dtype=np.int64) // in_per_group) * out_per_group
    n_cols = [a.n_cols for a in axes]
    q = math.prod(n_cols)
    col_strides = [math.prod(n_cols[a + 1:]) for a in range(len(axes))]
    totals = [a.nnz for a in axes]
    channel_entries = block * math.prod(totals)
    nnz = row_channels * channel_entries
    shape = (row_channels * math.prod(a.n_rows for a in axes), col_channels * q)
    idx_t = index_dtype(nnz, shape)
    channel_dim = _Dim(row_channels, channel_entries, base * q, None, 0)

    boxes: list[tuple[AxisRun, ...]] = []
    items: list[_Item] = []
    for runs in itertools.product(*(a.runs for a in axes)):
        m = [run.m for run in runs]
        entries = math.prod(m)
        start = 0  # entries of the spatial pattern before the box's first row
        dims = [channel_dim]
        for a, run in enumerate(runs):
            before, after = math.prod(m[:a]), math.prod(totals[a + 1:])
            start += before * int(axes[a].entry_ptr[run.row0]) * after
            dims.append(_Dim(run.length, block * before * run.slope * after,
                             np.arange(run.length, dtype=np.int64) * (run.shift * col_strides[a]),
                             run.shift * col_strides[a], None))
        dims.append(_Dim(block, entries, np.arange(block, dtype=np.int64) * q, q, 1))
        for a, run in enumerate(runs):
            dims.append(_Dim(m[a], math.prod(m[a + 1:]), run.cols * col_strides[a], None, 2 + a))
        items += _split(len(boxes), block * start, 0, dims, idx_t)
        boxes.append(runs)
    lay = Layout(shape, nnz, idx_t, row_channels, block, channel_entries, axes, tuple(boxes),
                 tuple(items), spec.padding_mode, spec.nnz_upper_bound())
    if nnz > SMALL_ENTRIES:
        return lay
    indptr = np.empty(shape[0] + 1, dtype=idx_t)
    indices = np.empty(nnz, dtype=idx_t)
    write_indptr(lay, indptr)
    write_indices(lay, indices)
    n_weights = math.prod(spec.weight_shape)
    small = _Small(indptr, indices)
    if not any(run.tap_ptr is not None for runs in boxes for run in runs):
        positions = np.arange(n_weights, dtype=np.int64).reshape(spec.weight_shape)
        gather = np.empty(nnz, dtype=np.intp)
        write_data(lay, box_values(lay, block_weights(spec, positions, rows)), gather)
        small = _Small(indptr, indices, gather=gather)
    elif n_weights <= 62 and nnz:
        # entries summing several taps: weights 2**position make each entry the bit mask of
        # the weights it sums (distinct bits never carry)
        masks = (np.int64(1) << np.arange(n_weights, dtype=np.int64)).reshape(spec.weight_shape)
        bits = np.empty(nnz, dtype=np.int64)
        write_data(lay, box_values(lay, block_weights(spec, masks, rows)), bits)
        entry, pairs = np.nonzero((bits[:, None] >> np.arange(n_weights)) & 1)
        pair_ptr = np.zeros(nnz + 1, dtype=np.intp)
        np.cumsum(np.bincount(entry, minlength=nnz), out=pair_ptr[1:])
        small = _Small(indptr, indices, pairs=pairs.astype(np.intp), pair_ptr=pair_ptr)
    for array in (small.indptr, small.indices, small.gather, small.pairs, small.pair_ptr):
        if array is not None:
            array.flags.writeable = False
    return dataclasses.replace(lay, small=small)


def block_weights(spec: ConvSpec, weight: np.ndarray, rows: AxisRows) -> np.ndarray:
    """Weights ``(row channels, column channels per row channel, *kernel)`` of the CSR rows.

    Rows of ``C`` are output channels (their group's input channels as columns); rows of
    ``Cᵀ`` are input channels (their group's output channels as columns).
    """
    if rows == "outputs":
        return weight
    g = spec.groups
    out_per_group, in_per_group = spec.out_channels // g, spec.in_channels // g
    grouped = weight.reshape(g, out_per_group, in_per_group, *spec.kernel_size)
    return grouped.swapaxes(1, 2).reshape(spec.in_channels, out_per_group, *spec.kernel_size)


def _split(box: int, offset: int, base: int, dims: list[_Dim], idx_t: np.dtype[Any]
           ) -> list[_Item]:
    """Cut a box's view into an outer part and an inner tail of at most TAIL_ENTRIES entries."""
    base += sum(int(d.contrib[0]) for d in dims if d.size == 1)
    kept = [d for d in dims if d.size > 1]
    tail, i = 1, len(kept)
    while i and tail * kept[i - 1].size <= TAIL_ENTRIES:
        i -= 1
        tail *= kept[i].size
    if i and kept[i - 1].unit is not None and kept[i - 1].value_axis is None \
            and TAIL_ENTRIES // tail >= 2:
        # a row axis too long for the tail: whole chunks of c rows, then the remainder
        d = kept[i - 1]
        c = TAIL_ENTRIES // tail
        chunks, rest = divmod(d.size, c)
        unit = int(d.unit)  # type: ignore[arg-type]
        outer = _Dim(chunks, d.stride * c, np.arange(chunks, dtype=np.int64) * (c * unit),
                     c * unit, None)
        inner = _Dim(c, d.stride, np.arange(c, dtype=np.int64) * unit, unit, None)
        items = _split(box, offset, base, [*kept[:i - 1], outer, inner, *kept[i:]], idx_t)
        if rest:
            tail_dim = _Dim(rest, d.stride, np.arange(rest, dtype=np.int64) * unit, unit, None)
            items += _split(box, offset + chunks * c * d.stride, base + chunks * c * unit,
                            [*kept[:i - 1], tail_dim, *kept[i:]], idx_t)
        return items
    return [_item(box, offset, base, kept, i, idx_t)]


def _item(box: int, offset: int, base: int, dims: list[_Dim], n_outer: int,
          idx_t: np.dtype[Any]) -> _Item:
    def table(part: list[_Dim], start: int) -> np.ndarray:
        total = np.full((1,) * len(part), start, dtype=np.int64)
        for a, d in enumerate(part):
            shape = [1] * len(part)
            shape[a] = d.size
            total = total + d.contrib.reshape(shape)
        return total.astype(idx_t)

    outer, tail = dims[:n_outer], dims[n_outer:]
    outer_index = table(outer, base) if outer else np.asarray(base, dtype=idx_t)
    tail_index = table(tail, 0)
    value_shape = tuple(d.size if d.value_axis is not None else 1 for d in dims)
    for array in (outer_index, tail_index):
        array.flags.writeable = False
    return _Item(box, offset, tuple(d.size for d in dims), tuple(d.stride for d in dims),
                 n_outer, outer_index, tail_index, value_shape)


# --------------------------------------------------------------------------------------------
# writing


def write_indptr(lay: Layout, indptr: np.ndarray) -> None:
    """Fill ``indptr`` (``shape[0] + 1`` entries): closed-form per-axis prefix sums.

    Row ``(c, r_0, …, r_{D−1})`` starts at ``c·E + B·Σ_a (Π_{b<a} m_b) P_a (Π_{b>a} M_b)``
    (``m``, ``P``, ``M``: the axes' row lengths, prefix sums and totals). Only the last axis is
    full length; everything before it is small, so no temporary of the indptr's size is made.
    """
    totals = [a.nnz for a in lay.axes]
    start = np.zeros((), dtype=np.int64)  # entries before row (r_0, …, r_{D−2}, 0)
    lengths = np.ones((), dtype=np.int64)  # Π m_b over the axes before the last
    for a, axis in enumerate(lay.axes[:-1]):
        ptr = axis.entry_ptr
        after = math.prod(totals[a + 1:])
        start = start[..., None] + lengths[..., None] * (ptr[:-1] * after)
        lengths = lengths[..., None] * (ptr[1:] - ptr[:-1])
    last = lay.axes[-1].entry_ptr[:-1]
    channels = np.arange(lay.row_channels, dtype=np.int64) * lay.channel_entries
    view = indptr[:-1].reshape(lay.row_channels, start.size, last.size)
    np.multiply((lay.block * lengths).reshape(1, -1, 1), last, out=view, casting="unsafe")
    np.add(view, (channels[:, None] + lay.block * start.reshape(1, -1))[:, :, None], out=view,
           casting="unsafe")
    indptr[-1] = lay.nnz


def _view(array: np.ndarray, item: _Item) -> np.ndarray:
    size = array.itemsize
    return np.ndarray(item.shape, dtype=array.dtype, buffer=array, offset=item.offset * size,
                      strides=tuple(s * size for s in item.strides))


def _pieces(item: _Item, values_per_row: int) -> list[slice]:
    """Split an item's first outer axis so threads and value tables stay small."""
    if not item.n_outer:
        return [slice(None)]
    first = item.shape[0]
    entries = math.prod(item.shape)
    wanted = max(_workers(entries), math.ceil(first * values_per_row / _VALUE_CHUNK))
    bounds = np.linspace(0, first, min(first, wanted) + 1).astype(int).tolist()
    return [slice(lo, hi) for lo, hi in itertools.pairwise(bounds) if hi > lo]


def _workers(entries: int) -> int:
    if entries < _THREAD_MIN_NNZ:
        return 1
    return max(1, min(_MAX_THREADS, os.cpu_count() or 1))


def _run(tasks: list[Callable[[], None]], entries: int) -> None:
    """Run the tasks, on several threads when the matrix is large (numpy releases the GIL)."""
    workers = min(_workers(entries), len(tasks))
    if workers < 2:
        for task in tasks:
            task()
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(task) for task in tasks]:
            future.result()


def write_indices(lay: Layout, indices: np.ndarray) -> None:
    """Fill the CSR ``indices`` array (``nnz`` entries of ``lay.index_dtype``)."""
    tasks: list[Callable[[], None]] = []
    for item in lay.items:
        view = _view(indices, item)
        tail = item.tail_index
        outer = item.outer_index.reshape(item.outer_index.shape + (1,) * tail.ndim)
        for piece in _pieces(item, 0):
            if item.n_outer:
                tasks.append(functools.partial(_add, outer[piece], tail, view[piece]))
            else:
                tasks.append(functools.partial(_add, outer, tail, view))
    _run(tasks, lay.nnz)


def box_values(lay: Layout, weights: np.ndarray) -> list[np.ndarray]:
    """Weight values of every box, from block weights ``(row_channels, block, *kernel)``.

    Entries where a padding mode makes several taps read one pixel hold the exact sum of their
    weights: integers and bools are summed in a type that cannot overflow, and the sum must fit
    the weight's dtype.

    Raises
    ------
    ConvMatrixError
        When a merged sum does not fit the weight dtype (bool: a sum above 1).
    """
    return [_box_values(lay, runs, weights) for runs in lay.boxes]


def write_data(lay: Layout, values: list[np.ndarray], data: np.ndarray) -> None:
    """Fill the CSR ``data`` array from the boxes' values (:func:`box_values`)."""
    tasks: list[Callable[[], None]] = []
    for item in lay.items:
        view = _view(data, item)
        box = values[item.box].reshape(item.value_shape)
        tail_shape = item.shape[item.n_outer:]
        outer_values = math.prod(item.value_shape[:item.n_outer])
        per_row = outer_values // item.shape[0] if item.n_outer else 0

        for piece in _pieces(item, max(per_row, 1) * math.prod(tail_shape)):
            if item.n_outer:
                part = box[piece] if box.shape[0] > 1 else box
                tasks.append(functools.partial(_fill, view[piece], part, item.n_outer))
            else:
                tasks.append(functools.partial(_fill, view, box, 0))
    _run(tasks, lay.nnz)


def _add(outer: np.ndarray, tail: np.ndarray, out: np.ndarray) -> None:
    np.add(outer, tail, out=out)


def _fill(view: np.ndarray, values: np.ndarray, n_outer: int) -> None:
    """Copy a box's values into its view, broadcasting them over its row axes.

    The values are materialised over the innermost row axis of the tail only (with the
    column-channel and tap axes after it, that is one contiguous run of the view per copy
    step); every other row axis is a plain broadcast, so the temporary stays small.
    """
    rows = [a for a in range(n_outer, view.ndim) if values.shape[a] == 1 and view.shape[a] > 1]
    if rows:
        a = rows[-1]
        values = np.ascontiguousarray(np.broadcast_to(
            values, (*values.shape[:a], view.shape[a], *values.shape[a + 1:])))
    np.copyto(view, values)


def _box_values(lay: Layout, runs: tuple[AxisRun, ...], weights: np.ndarray) -> np.ndarray:
    """Weight of every ``(row channel, column channel, e_0, …)`` entry of a box, tap sums exact."""
    values = weights
    merged = any(run.tap_ptr is not None for run in runs)
    dtype = weights.dtype
    if merged and dtype.kind in "biu":
        # integers and bools: sum in a type that cannot overflow, then check the result fits
        values = values.astype(object if dtype.itemsize >= 8 else np.int64)
    for a, run in enumerate(runs):
        axis = 2 + a
        values = np.take(values, run.taps, axis=axis)
        if run.tap_ptr is not None:
            values = np.add.reduceat(values, run.tap_ptr[:-1], axis=axis, dtype=values.dtype)
    if merged and dtype.kind in "biu":
        _check_fits(values, dtype, lay.padding_mode)
        values = values.astype(dtype)
    return np.ascontiguousarray(values)


def _check_fits(values: np.ndarray, dtype: np.dtype[Any], mode: str) -> None:
    if not values.size:
        return
    lo, hi = (0, 1) if dtype.kind == "b" else (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    small, large = int(values.min()), int(values.max())
    if small >= lo and large <= hi:
        return
    bad = small if small < lo else large
    if dtype.kind == "b":
        raise ConvMatrixError(
            f"`weight` is bool, but padding_mode={mode!r} makes several True taps read one "
            f"pixel, so a matrix entry is their sum {bad}, which bool cannot hold; cast the "
            f"weight to an integer dtype (e.g. weight.astype(int)) for the exact matrix"
        )
    hint = ("cast the weight to a wider dtype (e.g. int64)" if dtype.itemsize < 8 else
            "no wider integer dtype exists: use smaller weights, or float64 (exact up to 2**53)")
    raise ConvMatrixError(
        f"`weight` has dtype {dtype}, but padding_mode={mode!r} makes several taps read one "
        f"pixel and their weights add up to {bad}, outside the {dtype} range [{lo}, {hi}]; "
        f"{hint}"
    )
