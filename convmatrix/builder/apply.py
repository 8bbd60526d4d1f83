"""Matrix-free convolution kernels: ``C @ x`` and ``Cᵀ @ y`` on batches, tiled im2col / col2im."""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
import threading
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.builder import budget, tuning
from convmatrix.builder.sparse import spec_matrix
from convmatrix.builder.threads import one_blas_thread
from convmatrix.builder.tuning import StridedAdjoint
from convmatrix.geometry.shapes import used_length
from convmatrix.geometry.spec import ConvSpec, conv_spec
from convmatrix.typing import Direction

if TYPE_CHECKING:  # properties forwarding to their homes at run time (see _Forwarding)
    from convmatrix.builder.budget import WORKSPACE_BYTES
    from convmatrix.builder.tuning import (
        FLAT_GROUPS,
        GROUP_TILE_BYTES,
        SHIFT_GAIN,
        SMALL_PRODUCT,
        TAP_CHUNK_BYTES,
        TILE_BYTES,
    )

__all__ = ["FLAT_GROUPS", "GROUP_TILE_BYTES", "INTEGER_RULE", "SHIFT_GAIN", "SMALL_PRODUCT",
           "TAP_CHUNK_BYTES", "TILE_BYTES", "WORKSPACE_BYTES", "compute_dtype",
           "conv_abs_row_sum", "conv_apply", "conv_apply_adjoint", "integer_dtype", "max_abs"]

INTEGER_RULE = """\
Integer and bool results are exact or refused. The worst-case magnitude of a result is bounded
from absolute sums: ``‖M‖∞`` (the largest absolute row sum, :meth:`Layer.abs_row_sum`; for a
convolution ``max_o Σ|W[o]|``, for a transposed one ``max_i Σ|W[:, i]|`` times the times a
padding mode repeats a pixel) bounds every entry of ``M``; a product's entries and partial sums
are bounded by ``∏ max(‖M_k‖∞, 1)``; ``layer(x)`` and the operator's integer products by
iterating ``B ← max(‖M_k‖∞, 1)·B + max|b_k|`` from ``B = max|x|`` over the layers. The result
(and every intermediate) is computed in the natural dtype when the bound fits it, otherwise in
the smallest signed integer type (int8, int16, int32, int64) that holds the bound; above int64
the call raises :class:`~convmatrix.ConvMatrixError` naming the dtype and the bound. Bool counts
as an integer: a product of bool layers (or a bool layer on bool data) gives int64 path
counts, never a saturated ``True``. Floating and complex dtypes are left as they are."""

_TUNABLES = ("FLAT_GROUPS", "GROUP_TILE_BYTES", "SHIFT_GAIN", "SMALL_PRODUCT", "TAP_CHUNK_BYTES",
             "TILE_BYTES", "_ADJOINT_AS_CONVOLUTION", "_PAD_FIRST", "_PHASE_SPLIT",
             "_STRIDED_ADJOINT", "_TAPS")

#: names read and set in their home module (home, name there): the tunables
_HOMES: dict[str, tuple[types.ModuleType, str]] = {
    **{name: (tuning, name) for name in _TUNABLES},
    "WORKSPACE_BYTES": (budget, "WORKSPACE_BYTES"),
}


class _Forwarding(types.ModuleType):
    """The module itself, the names of ``_HOMES`` read from and set in their home modules.

    Module attribute access customised as the Python reference describes (a ``ModuleType``
    subclass as ``sys.modules[__name__].__class__``), each name a property: ``apply.TILE_BYTES``
    is ``tuning.TILE_BYTES``, and ``apply.TILE_BYTES = n`` sets ``tuning.TILE_BYTES``, which
    the kernels read at call time. Properties (data descriptors), not ``__getattr__`` and
    ``__setattr__``: ``monkeypatch.setattr`` then restores the old value on undo instead of
    deleting a module ``__dict__`` entry that never existed.
    """

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_HOMES})


def _forwarded(home: types.ModuleType, attribute: str) -> property:
    """A property reading and setting ``home.attribute``."""

    def read(_: types.ModuleType) -> Any:
        return getattr(home, attribute)

    def write(_: types.ModuleType, value: Any) -> None:
        setattr(home, attribute, value)

    return property(read, write, doc=f"``{home.__name__}.{attribute}``")


for _name, (_home, _attribute) in _HOMES.items():
    setattr(_Forwarding, _name, _forwarded(_home, _attribute))
del _name, _home, _attribute

sys.modules[__name__].__class__ = _Forwarding

_SIGNED = tuple(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64))

_NUMPY_PAD_MODES: dict[str, Any] = {"reflect": "reflect", "replicate": "edge", "circular": "wrap",
                                     "symmetric": "symmetric"}


def compute_dtype(weight_dtype: np.dtype[Any], data_dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype a product of weights and data is computed in (bool counts as an integer)."""
    dtype = np.result_type(weight_dtype, data_dtype)
    return np.dtype(np.int64) if dtype == np.bool_ else dtype


def integer_dtype(natural: Any, bound: int, what: str) -> np.dtype[Any]:
    """The dtype an integer or bool result with magnitudes ``≤ bound`` is computed in.

    See :data:`INTEGER_RULE`: ``natural`` when it is no integer type or holds ``bound``;
    bool → int64; otherwise the smallest signed integer type at least as wide as ``natural``
    that holds ``bound``; :class:`~convmatrix.ConvMatrixError` (naming ``what``) when even
    int64 cannot.

    Examples
    --------
    >>> integer_dtype(np.int8, 90_000, "the product")
    dtype('int32')
    >>> integer_dtype(np.bool_, 4, "the product")
    dtype('int64')
    >>> integer_dtype(np.float32, 10**40, "the product")
    dtype('float32')
    """
    dtype = np.dtype(natural)
    if dtype.kind not in "biu":
        return dtype
    if dtype.kind == "b":
        dtype = np.dtype(np.int64)
    if bound <= np.iinfo(dtype.name).max:
        return dtype
    for candidate in _SIGNED:
        if candidate.itemsize >= dtype.itemsize and bound <= np.iinfo(candidate.name).max:
            return candidate
    raise ConvMatrixError(
        f"{what} can reach magnitudes up to {bound:,} (bound from the absolute row sums), "
        f"beyond int64 (max {np.iinfo(np.int64).max:,}) for {np.dtype(natural)} data; "
        f"use floating-point weights or data (an exact integer result cannot be stored)")


def max_abs(values: Any) -> int:
    """``max |values|`` as a Python int (exact for integers; rounded up for floats; 0 if empty)."""
    array = np.asarray(values)
    if array.size == 0:
        return 0
    if array.dtype.kind in "biu":
        return max(abs(int(array.max())), abs(int(array.min())))
    top = float(np.max(np.abs(array)))
    return math.ceil(top) + 1 if math.isfinite(top) else 2**64


def conv_abs_row_sum(spec: ConvSpec, weight: np.ndarray, direction: Direction) -> int:
    """An upper bound on ``‖M‖∞`` of ``C`` (``"forward"``) or ``Cᵀ`` (``"adjoint"``).

    A row of ``C`` sums one output channel's taps: ``max_o Σ|W[o]|``. A row of ``Cᵀ`` sums,
    over the taps of one input channel, every output that reads the pixel; for one tap, each
    padded position copying the pixel is read at most once, so the bound is
    ``max_i Σ_{o,t}|W[o, i, t]|`` times, per axis, the most padded positions copying one pixel
    (1 for zero padding). Python ints: exact for integer weights.

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> w = np.array([[[1, -2]], [[3, 4]]])
    >>> conv_abs_row_sum(conv_spec(w.shape, (1, 5)), w, "forward")
    7
    >>> conv_abs_row_sum(conv_spec(w.shape, (1, 5)), w, "adjoint")
    10
    """
    array = np.asarray(weight)
    if array.dtype.kind == "b":
        array = array.astype(np.int64)
    elif array.dtype.kind in "iu":
        array = array.astype(object)
    else:
        array = array.astype(np.float64)
    magnitudes = np.abs(array)
    groups = spec.groups
    grouped = magnitudes.reshape(groups, spec.out_channels // groups,
                                 spec.in_channels // groups, -1)
    if direction == "forward":
        sums = grouped.sum(axis=(2, 3))
        repeat = 1
    else:
        sums = grouped.sum(axis=(1, 3))
        repeat = 1
        for axis in range(spec.ndim):
            source = pad_source(spec, axis)
            source = source[source >= 0]
            if source.size:
                repeat *= int(np.bincount(source).max())
    top = max((int(v) if array.dtype == object else max_abs(v) for v in sums.ravel()),
              default=0)
    return top * repeat


def _used_length(spec: ConvSpec, axis: int) -> int:
    """Padded pixels read along ``axis``: ``(o − 1)·s + d·(k − 1) + 1``."""
    return used_length(spec.output_size[axis], spec.kernel_size[axis], spec.stride[axis],
                       spec.dilation[axis])


def pad_source(spec: ConvSpec, axis: int) -> np.ndarray:
    """For each used padded pixel along ``axis``, the input pixel it copies (−1: a zero).

    The map is ``np.pad`` of ``arange(n)`` in the matching numpy mode, so it shares no index
    arithmetic with the matrix builder.
    """
    n = spec.input_size[axis]
    before, after = spec.padding[axis]
    if spec.padding_mode == "zeros":
        source = np.pad(np.arange(n), (before, after), constant_values=-1)
    else:
        source = np.pad(np.arange(n), (before, after), mode=_NUMPY_PAD_MODES[spec.padding_mode])
    return source[:_used_length(spec, axis)]


def _pad(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Pad (and trim to the used extent) the spatial axes ``2, 3, …`` of ``x`` (a copy)."""
    for axis in range(spec.ndim):
        source = pad_source(spec, axis)
        x = np.take(x, np.maximum(source, 0), axis=axis + 2)
        zero = source < 0
        if zero.any():
            index: list[Any] = [slice(None)] * x.ndim
            index[axis + 2] = zero
            x[tuple(index)] = 0
    return x


def _fold(g: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The adjoint of :func:`_pad`: add every padded pixel back onto the pixel it copies."""
    for axis in range(spec.ndim):
        source = pad_source(spec, axis)
        shape = list(g.shape)
        shape[axis + 2] = spec.input_size[axis]
        folded = np.zeros(shape, dtype=g.dtype)
        moved_g, moved_f = np.moveaxis(g, axis + 2, 0), np.moveaxis(folded, axis + 2, 0)
        inner = np.flatnonzero(source == np.arange(source.size) - spec.padding[axis][0])
        if inner.size:  # the interior: one slab
            lo, hi = int(inner[0]), int(inner[-1]) + 1
            moved_f[lo - spec.padding[axis][0]:hi - spec.padding[axis][0]] += moved_g[lo:hi]
        for position in np.flatnonzero((source >= 0) & (source != np.arange(source.size)
                                                        - spec.padding[axis][0])).tolist():
            moved_f[source[position]] += moved_g[position]
        g = folded
    return g


def _blas_threads(work: int) -> Any:
    """A context running BLAS on one thread while a kernel's products are small.

    ``work`` is the multiply-adds of the largest BLAS call; below :data:`SMALL_PRODUCT`,
    :func:`convmatrix.builder.threads.one_blas_thread`, else nothing.
    """
    return contextlib.nullcontext() if work >= tuning.SMALL_PRODUCT else one_blas_thread()


@dataclass(frozen=True)
class _Axis:
    """One spatial axis of the padded input: where each used position reads from."""

    source: np.ndarray  # per used padded position, the input pixel it copies (-1: zero)
    before: int  # padding before
    lo: int  # the interior: positions [lo, hi) copy pixel position - before
    hi: int
    border: tuple[int, ...]  # the other used positions
    runs: tuple[tuple[int, int, str], ...]  # border runs [a, b): "zero", "copy" or "mixed"
    inside: bool  # every border source lies in [lo, hi) (a border copies the padded buffer)


@lru_cache(maxsize=256)
def _axes(spec: ConvSpec) -> tuple[_Axis, ...]:
    axes = []
    for axis in range(spec.ndim):
        source = pad_source(spec, axis)
        before = spec.padding[axis][0]
        lo = min(max(before, 0), source.size)
        hi = max(min(before + spec.input_size[axis], source.size), lo)
        border = tuple(p for p in range(source.size) if not lo <= p < hi)
        inside = all(source[p] < 0 or lo <= int(source[p]) + before < hi for p in border)
        runs = tuple((a, b, "zero" if (source[a:b] < 0).all() else
                      "copy" if (source[a:b] >= 0).all() else "mixed")
                     for a, b in _runs(border))
        axes.append(_Axis(source, before, lo, hi, border, runs, inside))
    return tuple(axes)


def _runs(positions: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive runs ``[a, b)`` of sorted positions."""
    runs: list[tuple[int, int]] = []
    for p in positions:
        if runs and runs[-1][1] == p:
            runs[-1] = (runs[-1][0], p + 1)
        else:
            runs.append((p, p + 1))
    return runs


@dataclass
class _Tiling:
    """How a batch is cut: ``samples`` per tile × ``groups`` × ``rows`` output rows."""

    samples: int
    rows: int
    groups: int


def _tiling(spec: ConvSpec, batch: int, itemsize: int, batch_last: bool,
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


def _tiles(spec: ConvSpec, batch: int,
           tiling: _Tiling) -> list[tuple[int, int, int, int, int, int]]:
    """Tiles ``(b0, b1, g0, g1, o0, o1)``: samples, groups and output rows."""
    o, g = spec.output_size[0], spec.groups
    return [(b0, min(b0 + tiling.samples, batch), g0, min(g0 + tiling.groups, g),
             o0, min(o0 + tiling.rows, o))
            for b0 in range(0, batch, tiling.samples)
            for g0 in range(0, g, tiling.groups)
            for o0 in range(0, o, tiling.rows)]


_KEEP_BYTES = 16 * 2**20
_POOL = threading.local()
# distinct addresses modulo 4 KiB for the buffers one loop reads and writes together: equal
# low address bits make every load wait on the store before it (4K aliasing), 5-10x slower
_OFFSETS = {"pad": 1088, "columns": 2240, "rows": 3392, "fold": 448, "padded": 1600,
            "phases": 2816, "shifted": 3968}


def _scratch(role: str, nbytes: int,
             held: tuple[np.ndarray, int] | None = None) -> tuple[np.ndarray, int]:
    """A buffer of at least ``nbytes`` for ``role`` and the offset of its aligned memory.

    Fresh memory costs a page fault per page on its first write (a large part of a product
    on some machines): buffers of at most ``_KEEP_BYTES`` are kept per thread between calls,
    and a buffer ``held`` by the caller (one call's :class:`_Buffer`) is reused while it is
    large enough, so a call's tiles and chunks never hold two large buffers at once.
    """
    if held is not None and held[0].size >= held[1] + nbytes:
        return held
    pool: dict[str, tuple[np.ndarray, int]] = _POOL.__dict__.setdefault("buffers", {})
    buffer, start = pool.get(role, (None, 0))
    if buffer is not None and buffer.size >= start + nbytes:
        return buffer, start
    offset = _OFFSETS.get(role, 0)
    buffer = np.empty(nbytes + offset + 64, dtype=np.uint8)
    start = offset + (-buffer.__array_interface__["data"][0] - offset) % 64
    if nbytes <= _KEEP_BYTES:
        pool[role] = (buffer, start)
    return buffer, start


class _Buffer:
    """Scratch memory for one role; each tile takes a prefix in the shape it needs."""

    def __init__(self, dtype: np.dtype[Any], role: str) -> None:
        self.dtype = np.dtype(dtype)
        self.role = role
        self.held: tuple[np.ndarray, int] | None = None

    def take(self, shape: Sequence[int], batch_last: bool) -> np.ndarray:
        """A ``(b, *rest)`` view of a prefix; memory ``(*rest, b)`` when ``batch_last``.

        The memory of the views taken before is reused: take the next tile's view once the
        last one is done with.
        """
        nbytes = math.prod(shape) * self.dtype.itemsize
        self.held = _scratch(self.role, nbytes, self.held)
        buffer, start = self.held
        flat = buffer[start:start + nbytes].view(self.dtype)
        if batch_last:
            return np.moveaxis(flat.reshape(*shape[1:], shape[0]), -1, 0)
        return flat.reshape(shape)


def _blasable(a: np.ndarray) -> bool:
    """Whether the last two axes are a matrix BLAS reads in place (unit inner stride)."""
    item = a.itemsize
    return (a.strides[-1] == item or a.shape[-1] == 1) and a.strides[-2] % item == 0 \
        and a.strides[-2] >= max(a.shape[-1], 1) * item


def _matrix_view(a: np.ndarray, shape: Sequence[int]) -> np.ndarray | None:
    """``a`` reshaped without a copy, or None when that needs a copy."""
    try:
        view = np.reshape(a, tuple(shape), copy=False)
    except ValueError:
        return None
    return view if _blasable(view) else None


def _gemm_shape(g: int, rows: int, columns: int, samples: int, batch_last: bool) -> list[int]:
    """Shape of a product's operand: ``(G, rows, columns·b)`` or ``(b, G, rows, columns)``."""
    return [g, rows, columns * samples] if batch_last else [samples, g, rows, columns]


def _as_memory(a: np.ndarray, batch_last: bool) -> np.ndarray:
    """The logical ``(b, …)`` view moved to memory order (batch last when ``batch_last``)."""
    return np.moveaxis(a, 0, -1) if batch_last else a


def _border_rows(axis: _Axis, p0: int, rows: int) -> list[int]:
    """The border positions of the first axis among padded rows ``[p0, p0 + rows)``."""
    return [r for r in axis.border if p0 <= r < p0 + rows]


def _fill_padded(pad: np.ndarray, x: np.ndarray, spec: ConvSpec, axes: tuple[_Axis, ...],
                 b0: int, b1: int, p0: int) -> None:
    """Write padded rows ``[p0, p0 + pad.shape[2])`` of samples ``b0:b1`` into ``pad``."""
    first = axes[0]
    rows = pad.shape[2]
    inner: tuple[Any, ...] = tuple(slice(a.lo, a.hi) for a in axes[1:])
    inner_x: tuple[Any, ...] = tuple(slice(a.lo - a.before, a.hi - a.before) for a in axes[1:])
    lo, hi = max(first.lo, p0), min(first.hi, p0 + rows)
    if lo < hi:
        np.copyto(pad[(slice(None), slice(None), slice(lo - p0, hi - p0), *inner)],
                  x[(slice(b0, b1), slice(None), slice(lo - first.before, hi - first.before),
                     *inner_x)], casting="unsafe")
    for r in _border_rows(first, p0, rows):
        target = pad[(slice(None), slice(None), r - p0, *inner)]
        src = int(first.source[r])
        if src < 0:
            target.fill(0)
        else:
            np.copyto(target, x[(slice(b0, b1), slice(None), src, *inner_x)], casting="unsafe")
    for axis in range(1, spec.ndim):
        info = axes[axis]
        if not info.border:
            continue
        head: list[Any] = [slice(None)] * (2 + axis)
        tail = [slice(a.lo, a.hi) for a in axes[axis + 1:]]
        for a, b, kind in info.runs:
            target = pad[(*head, slice(a, b), *tail)]
            if kind == "zero":
                target.fill(0)
            elif kind == "copy":
                np.copyto(target, np.take(pad[(*head, slice(None), *tail)],
                                          info.source[a:b] + info.before, axis=2 + axis))
            else:
                for p in range(a, b):
                    one = pad[(*head, p, *tail)]
                    if info.source[p] < 0:
                        one.fill(0)
                    else:
                        np.copyto(one, pad[(*head, int(info.source[p]) + info.before, *tail)])


def _fold_padded(g: np.ndarray, out: np.ndarray, spec: ConvSpec, axes: tuple[_Axis, ...],
                 b0: int, b1: int, p0: int, assign: bool = False) -> None:
    """The adjoint of :func:`_fill_padded`: add the padded rows ``g`` onto ``out[b0:b1]``.

    ``assign``: ``g`` holds every padded row and its interior covers ``out``, which is
    overwritten instead of added to.
    """
    for axis in range(spec.ndim - 1, 0, -1):
        info = axes[axis]
        head: list[Any] = [slice(None)] * (2 + axis)
        tail = [slice(a.lo, a.hi) for a in axes[axis + 1:]]
        for p in info.border:
            src = int(info.source[p])
            if src >= 0:
                target = g[(*head, src + info.before, *tail)]
                np.add(target, g[(*head, p, *tail)], out=target)
    first = axes[0]
    rows = g.shape[2]
    inner: tuple[Any, ...] = tuple(slice(a.lo, a.hi) for a in axes[1:])
    inner_x: tuple[Any, ...] = tuple(slice(a.lo - a.before, a.hi - a.before) for a in axes[1:])
    lo, hi = max(first.lo, p0), min(first.hi, p0 + rows)
    if lo < hi:
        target = out[(slice(b0, b1), slice(None), slice(lo - first.before, hi - first.before),
                      *inner_x)]
        source = g[(slice(None), slice(None), slice(lo - p0, hi - p0), *inner)]
        if assign:
            np.copyto(target, source, casting="unsafe")
        else:
            np.add(target, source, out=target, casting="unsafe")
    for r in _border_rows(first, p0, rows):
        src = int(first.source[r])
        if src < 0:
            continue
        target = out[(slice(b0, b1), slice(None), src, *inner_x)]
        np.add(target, g[(slice(None), slice(None), r - p0, *inner)], out=target,
               casting="unsafe")


def _window(spec: ConvSpec, tap: tuple[int, ...], rows: int) -> tuple[slice, ...]:
    """The strided window tap ``tap`` reads for ``rows`` output rows of a padded tile."""
    sizes = (rows, *spec.output_size[1:])
    return tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in
                 zip(tap, spec.dilation, sizes, spec.stride, strict=True))


@lru_cache(maxsize=1024)
def _windows(spec: ConvSpec, rows: int) -> tuple[tuple[slice, ...], ...]:
    """Every tap's :func:`_window` (row-major), as an index of a ``(b, C, …)`` padded tile."""
    return tuple((slice(None), slice(None), *_window(spec, tap, rows))
                 for tap in itertools.product(*(range(n) for n in spec.kernel_size)))


def _product(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out = a @ b`` (stacked); an outer product (inner dimension 1) as a broadcast."""
    if a.shape[-1] == 1:
        np.multiply(a, b, out=out)
    else:
        np.matmul(a, b, out=out)


def _padded_chunk(batch: int, per_sample: int) -> int:
    """Samples whose padded inputs are held at once (0: not even one fits).

    The workspace less one preferred tile: the kernel's own tiles run on them.
    """
    return min(batch, max(budget.WORKSPACE_BYTES - tuning.TILE_BYTES, 0) // max(per_sample, 1))


@lru_cache(maxsize=256)
def _unpadded_spec(spec: ConvSpec) -> ConvSpec:
    """The padding-free convolution of the padded (and trimmed) input, ``C = Cₚ P``."""
    used = tuple(_used_length(spec, a) for a in range(spec.ndim))
    return conv_spec(spec.weight_shape, (spec.in_channels, *used), stride=spec.stride,
                     dilation=spec.dilation, groups=spec.groups)


def _padded_forward_into(spec: ConvSpec, weight: np.ndarray, x: np.ndarray, out: np.ndarray,
                         batch_last: bool) -> bool:
    """``out = Cₚ P x`` in chunks of samples: each chunk padded whole, then convolved in place.

    False: one padded sample alone is above the workspace; nothing was written.
    """
    batch, dtype = x.shape[0], out.dtype
    inner = _unpadded_spec(spec)
    chunk = _padded_chunk(batch, math.prod(inner.input_shape) * max(dtype.itemsize, 1))
    if chunk < 1:
        return False
    axes = _axes(spec)
    general = not all(a.inside for a in axes[1:])  # a border copies a trimmed pixel
    padded_buffer = _Buffer(dtype, "padded")  # not "fold": the padded adjoint runs this
    for b0 in range(0, batch, chunk):
        b1 = min(b0 + chunk, batch)
        padded = padded_buffer.take((b1 - b0, *inner.input_shape), batch_last)
        if general:
            np.copyto(padded, _pad(x[b0:b1], spec), casting="unsafe")
        else:
            _fill_padded(padded, x, spec, axes, b0, b1, 0)
        _forward_into(inner, weight, padded, out[b0:b1], batch_last)
    return True


_AXPY = {"f4": "saxpy", "f8": "daxpy", "c8": "caxpy", "c16": "zaxpy"}


def _channel_wise(spec: ConvSpec, dtype: np.dtype[Any]) -> bool:
    """Whether :func:`_taps_into` runs the layer (no column matrix).

    One input and one output channel per group (depthwise, or a single channel), stride 1, a
    floating or complex dtype (BLAS ``axpy``).
    """
    return (tuning._TAPS and spec.in_channels == spec.groups == spec.out_channels
            and all(s == 1 for s in spec.stride) and f"{dtype.kind}{dtype.itemsize}" in _AXPY)


def _row_tiling(spec: ConvSpec, batch: int, per_row: int, halo: int,
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


def _tap_tiling(spec: ConvSpec, batch: int, itemsize: int, batch_last: bool) -> _Tiling:
    """Tiles of :func:`_taps_into`: a padded and a summed row per output row."""
    rest = math.prod(_used_length(spec, a) for a in range(1, spec.ndim))
    per_row = 2 * itemsize * spec.in_channels * rest
    halo = itemsize * spec.in_channels * rest * spec.dilation[0] * (spec.kernel_size[0] - 1)
    return _row_tiling(spec, batch, per_row, halo, batch_last)


def _taps_into(spec: ConvSpec, weight: np.ndarray, x: np.ndarray, out: np.ndarray,
               batch_last: bool) -> None:
    """``out[b] = C x[b]`` for a channel-wise layer (:func:`_channel_wise`): no column matrix.

    Each output channel reads one input channel, so a product per group would have one row
    and ``∏k`` columns (a matrix-vector product on a copied column matrix). Instead, per tile
    the padded rows are written once, and each tap adds its weight times a shifted run of
    them (BLAS ``axpy``) onto the outputs laid out in the padded input's strides: every
    tap's window is then one contiguous run (samples interleaved in a batch-last layout move
    along with the pixels), and the outputs that fall in the padded border are dropped when
    the tile is copied into ``out``.
    """
    from scipy.linalg import blas

    dtype = out.dtype
    axpy = getattr(blas, _AXPY[f"{dtype.kind}{dtype.itemsize}"])
    batch, channels = x.shape[0], spec.in_channels
    w = np.asarray(weight, dtype=dtype).reshape(channels, -1)
    axes = _axes(spec)
    used = [_used_length(spec, a) for a in range(spec.ndim)]
    general = not all(a.inside for a in axes[1:])  # a border copies a trimmed pixel
    tiling = _tap_tiling(spec, batch, dtype.itemsize, batch_last)
    if general:
        tiling.rows = spec.output_size[0]
    pads, sums = _Buffer(dtype, "pad"), _Buffer(dtype, "rows")
    taps = list(itertools.product(*(range(n) for n in spec.kernel_size)))
    chunk = max(1, tuning.TAP_CHUNK_BYTES // dtype.itemsize)
    for b0, b1, _, _, o0, o1 in _tiles(spec, batch, tiling):
        b, rows = b1 - b0, o1 - o0
        prow = rows + spec.dilation[0] * (spec.kernel_size[0] - 1)
        pad = pads.take((b, channels, prow, *used[1:]), batch_last)
        if general:
            np.copyto(pad, _pad(x[b0:b1], spec), casting="unsafe")
        else:
            _fill_padded(pad, x, spec, axes, b0, b1, o0)
        lanes = b if batch_last else 1  # values per pixel in memory
        flat = _as_memory(pad, batch_last).reshape(-1, prow * math.prod(used[1:]) * lanes)
        summed = sums.take((b, channels, rows, *used[1:]), batch_last)
        target = _as_memory(summed, batch_last).reshape(flat.shape[0], -1)
        steps = [lanes * math.prod(used[a + 1:]) for a in range(spec.ndim)]
        offsets = [sum(t * d * st for t, d, st in zip(tap, spec.dilation, steps, strict=True))
                   for tap in taps]
        length = sum((n - 1) * st for n, st in zip((rows, *spec.output_size[1:]), steps,
                                                   strict=True)) + lanes
        for plane in range(flat.shape[0]):
            source, sums_row = flat[plane], target[plane]
            weights = w[plane % channels].tolist()
            for q0 in range(0, length, chunk):
                n = min(chunk, length - q0)
                np.multiply(source[q0 + offsets[0]:q0 + offsets[0] + n], weights[0],
                            out=sums_row[q0:q0 + n])
                for offset, value in zip(offsets[1:], weights[1:], strict=True):
                    axpy(source, sums_row, n, value, q0 + offset, 1, q0, 1)
        inside = (slice(None), slice(None), slice(None),
                  *(slice(0, n) for n in spec.output_size[1:]))
        np.copyto(out[b0:b1, :, o0:o1], summed[inside], casting="unsafe")


def _shift_gain(spec: ConvSpec) -> float:
    """Values moved by im2col over those moved by :func:`_shifted_into` (0: not possible)."""
    if spec.ndim < 2 or spec.stride[-1] != 1 or spec.kernel_size[-1] < 2:
        return 0.0
    k = math.prod(spec.kernel_size)
    wide = _used_length(spec, spec.ndim - 1) / spec.output_size[-1]
    cin, cout = spec.in_channels, spec.out_channels
    im2col = 2 * cin * k
    shifted = (2 * cin * k // spec.kernel_size[-1] + 2 * spec.kernel_size[-1] * cout) * wide \
        + cout
    return im2col / shifted


def _shifted_into(spec: ConvSpec, weight: np.ndarray, x: np.ndarray, out: np.ndarray,
                  batch_last: bool) -> bool:
    """``out[b] = C x[b]`` with the last kernel axis applied by shifted sums (stride 1 on it).

    The column matrix holds the taps of the other axes only, each over the whole padded
    width of the last axis; one product per group by the weights of every last-axis tap
    stacked (``k_last·C_out/G`` rows) gives each tap's partial outputs at every padded
    position, and the output is their sum, each shifted by its tap's ``d·t``. The column
    matrix is ``k_last`` times smaller, the product ``k_last`` times taller.

    False: a border copies a trimmed pixel (not handled here); nothing was written.
    """
    axes = _axes(spec)
    if not all(a.inside for a in axes[1:]):
        return False
    dtype = out.dtype
    itemsize = max(dtype.itemsize, 1)
    batch, groups, n = x.shape[0], spec.groups, spec.ndim
    kl, dl = spec.kernel_size[-1], spec.dilation[-1]
    lead = math.prod(spec.kernel_size[:-1])
    cin, cout = spec.in_channels // groups, spec.out_channels // groups
    grouped = np.asarray(weight, dtype=dtype).reshape(groups, cout, cin, lead, kl)
    w = np.ascontiguousarray(np.moveaxis(grouped, 4, 1)).reshape(groups, kl * cout, cin * lead)
    used = [_used_length(spec, a) for a in range(n)]
    direct = all(a.lo == 0 and a.hi == u and not a.border for a, u in zip(axes, used,
                                                                          strict=True))
    wide = (*spec.output_size[1:-1], used[-1])  # the last axis at its whole padded width
    rest_wide, rest_pad = math.prod(wide), math.prod(used[1:])
    s0, d0, k0 = spec.stride[0], spec.dilation[0], spec.kernel_size[0]
    per_row = itemsize * (spec.in_channels * (lead * rest_wide + s0 * rest_pad)
                          + (kl + 1) * spec.out_channels * rest_wide)
    halo = itemsize * spec.in_channels * rest_pad * d0 * (k0 - 1)
    tiling = _row_tiling(spec, batch, per_row, halo, batch_last)
    pads, cols_buffer, partial = (_Buffer(dtype, "pad"), _Buffer(dtype, "columns"),
                                  _Buffer(dtype, "shifted"))
    taps = list(itertools.product(*(range(t) for t in spec.kernel_size[:-1])))
    for b0, b1, _, _, o0, o1 in _tiles(spec, batch, tiling):
        b, rows = b1 - b0, o1 - o0
        p0, prow = o0 * s0, (rows - 1) * s0 + d0 * (k0 - 1) + 1
        if direct:
            pad = x[b0:b1, :, p0:p0 + prow]
        else:
            pad = pads.take((b, spec.in_channels, prow, *used[1:]), batch_last)
            _fill_padded(pad, x, spec, axes, b0, b1, p0)
        cols = cols_buffer.take((b, spec.in_channels, lead, rows, *wide), batch_last)
        sizes = (rows, *spec.output_size[1:-1])
        for t, tap in enumerate(taps):
            window = tuple(slice(tt * d, tt * d + (o - 1) * st + 1, st) for tt, d, o, st in
                           zip(tap, spec.dilation[:-1], sizes, spec.stride[:-1], strict=True))
            np.copyto(cols[:, :, t], pad[(slice(None), slice(None), *window,
                                          slice(0, used[-1]))], casting="unsafe")
        columns = _as_memory(cols, batch_last).reshape(
            _gemm_shape(groups, cin * lead, rows * rest_wide, b, batch_last))
        shape = _gemm_shape(groups, kl * cout, rows * rest_wide, b, batch_last)
        product = partial.take(shape, False)
        np.matmul(w, columns, out=product)
        if batch_last:  # memory (G, kl, C_out/G, rows, *wide, b)
            parts = np.moveaxis(product.reshape(groups, kl, cout, rows, *wide, b), -1, 0)
        else:
            parts = product.reshape(b, groups, kl, cout, rows, *wide)
        target = np.reshape(out[b0:b1, :, o0:o1], (b, groups, cout, rows,
                                                   *spec.output_size[1:]), copy=False)
        last = spec.output_size[-1]
        shifted = [parts[:, :, t, ..., t * dl:t * dl + last] for t in range(kl)]
        np.add(shifted[0], shifted[1], out=target, casting="unsafe")
        for part in shifted[2:]:
            np.add(target, part, out=target, casting="unsafe")
    return True


def _forward_into(spec: ConvSpec, weight: np.ndarray, x: np.ndarray, out: np.ndarray,
                  batch_last: bool, pad_first: bool = True) -> None:
    """``out[b] = C x[b]`` for a batch, in tiles: one column matrix and one product per tile.

    ``pad_first=False``: never pad whole samples first (the caller holds a chunk of samples
    of its own within the workspace, :func:`_padded_adjoint_into`).
    """
    if _channel_wise(spec, out.dtype):
        _taps_into(spec, weight, x, out, batch_last)
        return
    # padded whole first (measured faster) except an interleaved zero-padded batch, where
    # the tiles' own padded rows are cheaper
    if (tuning._PAD_FIRST and pad_first and any(p for pair in spec.padding for p in pair)
            and (spec.padding_mode != "zeros" or not batch_last)
            and _padded_forward_into(spec, weight, x, out, batch_last)):
        return
    gain = _shift_gain(spec)
    if gain and gain >= tuning.SHIFT_GAIN and _shifted_into(spec, weight, x, out, batch_last):
        return
    dtype = out.dtype
    batch, groups = x.shape[0], spec.groups
    k = math.prod(spec.kernel_size)
    ck = spec.in_channels // groups * k
    cout = spec.out_channels // groups
    w = np.ascontiguousarray(np.asarray(weight, dtype=dtype).reshape(groups, cout, ck))
    axes = _axes(spec)
    used = [_used_length(spec, a) for a in range(spec.ndim)]
    direct = all(a.lo == 0 and a.hi == u and not a.border for a, u in zip(axes, used,
                                                                          strict=True))
    general = not all(a.inside for a in axes[1:])  # a border copies a trimmed pixel
    tiling = _tiling(spec, batch, max(dtype.itemsize, 1), batch_last)
    if general:
        tiling.rows, tiling.groups = spec.output_size[0], groups
    pads, cols_buffer, product = (_Buffer(dtype, "pad"), _Buffer(dtype, "columns"),
                                  _Buffer(dtype, "rows"))
    rest = math.prod(spec.output_size[1:])
    s0, d0, k0 = spec.stride[0], spec.dilation[0], spec.kernel_size[0]
    cin = spec.in_channels // groups
    for b0, b1, g0, g1, o0, o1 in _tiles(spec, batch, tiling):
        b, rows, g = b1 - b0, o1 - o0, g1 - g0
        p0, prow = o0 * s0, (rows - 1) * s0 + d0 * (k0 - 1) + 1
        channels = slice(g0 * cin, g1 * cin)
        if direct:
            pad = x[b0:b1, channels, p0:p0 + prow]
        elif general:
            pad = _pad(x[b0:b1].astype(dtype, copy=False), spec)
        else:
            pad = pads.take((b, g * cin, prow, *used[1:]), batch_last)
            _fill_padded(pad, x[:, channels], spec, axes, b0, b1, p0)
        cols = cols_buffer.take((b, g * cin, k, rows, *spec.output_size[1:]), batch_last)
        for t, window in enumerate(_windows(spec, rows)):
            np.copyto(cols[:, :, t], pad[window], casting="unsafe")
        columns = _as_memory(cols, batch_last).reshape(
            _gemm_shape(g, ck, rows * rest, b, batch_last))
        tile = _as_memory(out[b0:b1, g0 * cout:g1 * cout, o0:o1], batch_last)
        target = _matrix_view(tile, _gemm_shape(g, cout, rows * rest, b, batch_last))
        if target is not None:
            np.matmul(w[g0:g1], columns, out=target)
        else:
            result = product.take(_gemm_shape(g, cout, rows * rest, b, batch_last), False)
            np.matmul(w[g0:g1], columns, out=result)
            np.copyto(tile, result.reshape(tile.shape))


@lru_cache(maxsize=256)
def _transposed_spec(spec: ConvSpec) -> ConvSpec | None:
    """``Cᵀ`` as a convolution of its own when that is one (else None).

    With stride 1 and zero padding of at most ``d·(k − 1)`` per side, ``Cᵀ y`` is the
    convolution of ``y`` with the flipped kernel (input and output channels swapped in each
    group), dilation ``d`` and padding ``d·(k − 1) − p`` per side: every output reads whole
    windows, so the forward kernel (im2col, inner dimension ``C_out/G · ∏k``) computes it.
    """
    if spec.padding_mode != "zeros" or any(s != 1 for s in spec.stride):
        return None
    padding = []
    for (before, after), k, d in zip(spec.padding, spec.kernel_size, spec.dilation,
                                     strict=True):
        reach = d * (k - 1)
        if before > reach or after > reach:
            return None
        padding.append((reach - before, reach - after))
    groups = spec.groups
    adjoint = conv_spec((spec.in_channels, spec.out_channels // groups, *spec.kernel_size),
                        spec.output_shape, padding=tuple(padding), dilation=spec.dilation,
                        groups=groups)
    return adjoint if adjoint.output_shape == spec.input_shape else None


def _transposed_weight(spec: ConvSpec, weight: np.ndarray) -> np.ndarray:
    """The weight of :func:`_transposed_spec`: channels swapped per group, taps flipped."""
    return _flipped_weight(np.asarray(weight), spec.groups)


def _flipped_weight(weight: np.ndarray, groups: int) -> np.ndarray:
    """A ``(C_out, C_in/G, *k)`` weight as ``(C_in, C_out/G, *k)``.

    Channels swapped within each group, every kernel axis reversed.
    """
    c_out, c_in_g, *kernel = weight.shape
    grouped = weight.reshape(groups, c_out // groups, c_in_g, *kernel)
    flipped = np.flip(np.swapaxes(grouped, 1, 2), axis=tuple(range(3, 3 + len(kernel))))
    return flipped.reshape(c_in_g * groups, c_out // groups, *kernel)


@lru_cache(maxsize=256)
def _padded_transposed_spec(spec: ConvSpec) -> ConvSpec | None:
    """``Cₚᵀ`` as a convolution, ``Cₚ`` the padding-free convolution of the padded input.

    ``C = Cₚ P`` (``P`` pads and trims to the used extent); with stride 1, ``Cₚᵀ y`` is the
    flipped convolution of ``y`` with padding ``d·(k − 1)`` per side (see
    :func:`_transposed_spec`), whose output is the padded input's shape; ``Cᵀ y`` is then
    ``Pᵀ`` of it, the padded border folded back onto the pixels it copies.
    """
    if any(s != 1 for s in spec.stride):
        return None
    used = tuple(_used_length(spec, a) for a in range(spec.ndim))
    inner = conv_spec(spec.weight_shape, (spec.in_channels, *used), dilation=spec.dilation,
                      groups=spec.groups)
    return _transposed_spec(inner)


def _padded_adjoint_into(spec: ConvSpec, fill: Callable[[np.ndarray, np.ndarray], None],
                         y: np.ndarray, out: np.ndarray, batch_last: bool) -> bool:
    """``out = Cᵀ y`` as ``Pᵀ Cₚᵀ y`` in chunks of samples.

    ``fill(y_chunk, padded)`` writes ``Cₚᵀ`` of a chunk of samples into ``padded``, the
    padded input's shape ``(b, C_in, *used)``; its border is then folded back.
    False: one sample's padded input alone is above the workspace; nothing was written.
    """
    batch, dtype = y.shape[0], out.dtype
    used = tuple(_used_length(spec, a) for a in range(spec.ndim))
    chunk = _padded_chunk(batch, spec.in_channels * math.prod(used) * max(dtype.itemsize, 1))
    if chunk < 1:
        return False
    axes = _axes(spec)
    general = not all(a.inside for a in axes[1:])  # a border copies a trimmed pixel
    folded = _Buffer(dtype, "fold")
    # the padded interior covers the input: copied, not added onto zeros
    covers = all(a.lo - a.before == 0 and a.hi - a.before == n
                 for a, n in zip(axes, spec.input_size, strict=True))
    if general or not covers:
        out[...] = 0
    for b0 in range(0, batch, chunk):
        b1 = min(b0 + chunk, batch)
        padded = folded.take((b1 - b0, spec.in_channels, *used), batch_last)
        fill(y[b0:b1], padded)
        if general:
            target = out[b0:b1]
            np.add(target, _fold(padded, spec), out=target, casting="unsafe")
        else:
            _fold_padded(padded, out, spec, axes, b0, b1, 0, assign=covers)
    return True


def _strided_adjoint(spec: ConvSpec) -> StridedAdjoint:
    """How a strided layer's adjoint runs.

    ``"phases"`` (:func:`_phases`, one stride-1 convolution of ``y`` per phase), ``"flat"``
    (:func:`_flat_col2im_into`) or ``"windows"`` (col2im with strided window adds,
    :func:`_adjoint_into`).

    A traffic model: the phases' column matrices hold ``C_out/G · ∏k`` values per output
    position, moved twice (written, read by the product); col2im's hold ``C_in/G · ∏k``,
    moved three times (written by the product, read and added by the taps). Phases when they
    move no more (measured: a 1-D 64 → 16 layer 0.68× flat col2im's time, 32 → 32 within
    10 % of it; the stem, 3 → 64 channels, 2.7× slower by phases); else flat col2im, unless
    there are more than :data:`FLAT_GROUPS` groups. ``_STRIDED_ADJOINT`` forces one (tests).
    """
    if tuning._STRIDED_ADJOINT != "auto":
        kind = tuning._STRIDED_ADJOINT
    elif 2 * spec.out_channels <= 3 * spec.in_channels:
        kind = "phases"
    else:
        kind = "flat"
    return "windows" if kind == "flat" and spec.groups > tuning.FLAT_GROUPS else kind


@dataclass(frozen=True)
class _Phase:
    """The padded positions ``≡ phase (mod stride)`` of a strided layer's adjoint.

    ``spec`` is the stride-1 convolution of ``y`` that computes them (None: no tap writes
    them, they are zero) and ``taps`` the kernel taps it uses along each axis (ascending).
    """

    phase: tuple[int, ...]
    spec: ConvSpec | None
    taps: tuple[tuple[int, ...], ...]


def _phase_axis(o: int, k: int, s: int, d: int, used: int,
                r: int) -> tuple[tuple[int, ...], int, tuple[int, int]]:
    """One axis of a phase ``r``: its taps, their dilation in ``y`` and the padding of ``y``.

    Tap ``t`` writes padded position ``q = s·o + d·t``; those with ``d·t ≡ r (mod s)`` write
    the phase's positions ``m = (q − r)/s = o + e_t``, ``e_t = (d·t − r)/s``, spaced by
    ``d/gcd(d, s)``. As a correlation of ``y`` with the taps reversed: padding ``max e_t``
    before, and after whatever makes the output the phase's length ``⌈(used − r)/s⌉``.
    """
    taps = tuple(t for t in range(k) if (d * t - r) % s == 0)
    if not taps:
        return taps, 1, (0, 0)
    shifts = [(d * t - r) // s for t in taps]
    dilation = shifts[1] - shifts[0] if len(taps) > 1 else 1
    length = len(range(r, used, s))
    before = shifts[-1]
    after = length - o - before + dilation * (len(taps) - 1)
    return taps, dilation, (before, after)


@lru_cache(maxsize=256)
def _phases(spec: ConvSpec) -> tuple[_Phase, ...]:
    """A strided layer's adjoint ``Cₚᵀ`` as one stride-1 convolution per phase (polyphase).

    Each phase reads whole windows of ``y`` with the taps that land on it, so the forward
    kernel (im2col or shifted sums, inner dimension ``C_out/G`` times the phase's taps)
    computes it: the multiply-adds of all phases are the forward's, and nothing is scattered.
    """
    used = [_used_length(spec, a) for a in range(spec.ndim)]
    per_axis = [[_phase_axis(o, k, s, d, u, r) for r in range(s)]
                for o, k, s, d, u in zip(spec.output_size, spec.kernel_size, spec.stride,
                                         spec.dilation, used, strict=True)]
    phases = []
    for phase in itertools.product(*(range(s) for s in spec.stride)):
        parts = [per_axis[a][r] for a, r in enumerate(phase)]
        taps = tuple(p[0] for p in parts)
        if not all(taps):
            phases.append(_Phase(phase, None, taps))
            continue
        groups = spec.groups
        phase_spec = conv_spec((spec.in_channels, spec.out_channels // groups,
                                *(len(t) for t in taps)), spec.output_shape,
                               padding=tuple(p[2] for p in parts),
                               dilation=tuple(p[1] for p in parts), groups=groups)
        phases.append(_Phase(phase, phase_spec, taps))
    return tuple(phases)


def _phase_fill(spec: ConvSpec, weight: np.ndarray,
                batch_last: bool) -> Callable[[np.ndarray, np.ndarray], None]:
    """``fill`` of :func:`_padded_adjoint_into` for a strided layer, phase by phase."""
    phases = _phases(spec)
    weight = np.asarray(weight)
    weights = [None if p.spec is None else _flipped_weight(
        weight[np.ix_(*(range(n) for n in weight.shape[:2]), *p.taps)], spec.groups)
        for p in phases]

    def fill(y: np.ndarray, padded: np.ndarray) -> None:
        for p, w in zip(phases, weights, strict=True):
            view = padded[(slice(None), slice(None),
                           *(slice(r, None, s) for r, s in zip(p.phase, spec.stride,
                                                               strict=True)))]
            if p.spec is None or w is None:  # no tap writes this phase (w is None too)
                view[...] = 0
            else:
                _forward_into(p.spec, w, y, view, batch_last, pad_first=False)
    return fill


def _scatter_phases(spec: ConvSpec, taps: Sequence[tuple[int, ...]], cols: np.ndarray,
                    pad: np.ndarray, rows: int, phases: _Buffer, batch_last: bool) -> None:
    """col2im of a strided layer: ``pad`` (overwritten) ``= Σ_t`` tap ``t``'s window of ``cols``.

    Tap ``t`` writes padded positions ``s·o + d·t``: phase ``(d·t) mod s``, positions
    ``o + ⌊d·t / s⌋`` within it. The taps are added into a buffer split by phases, where every
    window is contiguous (a strided window is added element by element, several times slower),
    and the phases are then interleaved into ``pad`` with one strided copy each.
    """
    stride = spec.stride
    lengths = (pad.shape[2], *pad.shape[3:])
    split = phases.take((pad.shape[0], pad.shape[1], *stride,
                         *(-(-n // st) for n, st in zip(lengths, stride, strict=True))),
                        batch_last)
    split[...] = 0
    sizes = (rows, *spec.output_size[1:])
    for t, tap in enumerate(taps):
        shifts = [tt * d for tt, d in zip(tap, spec.dilation, strict=True)]
        index: tuple[Any, ...] = (
            slice(None), slice(None), *(sh % st for sh, st in zip(shifts, stride, strict=True)),
            *(slice(sh // st, sh // st + n) for sh, st, n in zip(shifts, stride, sizes,
                                                                   strict=True)))
        window = split[index]
        np.add(window, cols[:, :, t], out=window)
    parts = []
    for phase in itertools.product(*(range(st) for st in stride)):
        where: tuple[Any, ...] = (slice(None), slice(None), *phase)
        parts.append(split[where])
    _interleave_phases(pad, stride, parts)


def _interleave_phases(pad: np.ndarray, stride: Sequence[int],
                       values: Sequence[np.ndarray]) -> None:
    """``pad[:, :, r₀::s₀, r₁::s₁, …] =`` phase ``r``'s values, one strided copy per phase.

    ``values`` holds a ``(b, C, …)`` array per phase (row-major order of ``r``), at least as
    long as the phase along every axis (its first ``⌈(n − r)/s⌉`` positions are copied).
    """
    lengths = pad.shape[2:]
    for index, phase in enumerate(itertools.product(*(range(st) for st in stride))):
        counts = [len(range(r, n, st)) for r, n, st in zip(phase, lengths, stride, strict=True)]
        target: tuple[Any, ...] = (slice(None), slice(None), *(
            slice(r, None, st) for r, st in zip(phase, stride, strict=True)))
        source: tuple[Any, ...] = (slice(None), slice(None), *(slice(0, c) for c in counts))
        np.copyto(pad[target], values[index][source])


@lru_cache(maxsize=256)
def _tap_phases(spec: ConvSpec) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """Per kernel tap (row-major), the phase it writes (flat index) and its rows ``e_t`` there.

    Tap ``t`` writes padded position ``s·o + d·t``: phase ``d·t mod s``, position
    ``o + ⌊d·t / s⌋`` of that phase, per axis.
    """
    shifts = [[t * d for t, d in zip(tap, spec.dilation, strict=True)]
              for tap in itertools.product(*(range(k) for k in spec.kernel_size))]
    phases = tuple(int(np.ravel_multi_index([sh % st for sh, st in zip(shift, spec.stride,
                                                                        strict=True)],
                                            spec.stride)) for shift in shifts)
    rows = tuple(tuple(sh // st for sh, st in zip(shift, spec.stride, strict=True))
                 for shift in shifts)
    return phases, rows


def _flat_col2im_into(spec: ConvSpec, weight: np.ndarray, y: np.ndarray, out: np.ndarray,
                      batch_last: bool) -> bool:
    """``out[b] = Cᵀ y[b]`` for a strided layer: col2im whose every tap is one contiguous add.

    A tap ``t`` writes padded positions ``s·o + d·t``: phase ``(d·t) mod s`` at positions
    ``o + e_t``, ``e_t = ⌊d·t / s⌋`` (:func:`_tap_phases`). Per tile, ``y`` is laid out in the
    phases' common strides (``L = ⌈used / s⌉`` per axis, zeros past ``o`` on every axis but
    the first), so one product ``Wᵀ y`` (rows tap-major) over the tile's rows gives every
    tap's values in those strides, and its rows past them are zeroed: adding tap ``t`` onto
    its phase is then one run of memory shifted by ``e_t`` (the zeros land on the next row's
    or channel's start, where they change nothing) — a strided window add is several times
    slower. The phases are then interleaved into the padded rows (one strided copy each) and
    the border folded back.

    False: one output row's buffers alone are above :data:`WORKSPACE_BYTES`; nothing was
    written.
    """
    dtype = out.dtype
    itemsize = max(dtype.itemsize, 1)
    batch, groups, n = y.shape[0], spec.groups, spec.ndim
    k = math.prod(spec.kernel_size)
    cin, cout = spec.in_channels // groups, spec.out_channels // groups
    axes = _axes(spec)
    used = [_used_length(spec, a) for a in range(n)]
    general = not all(a.inside for a in axes[1:])  # a border copies a trimmed pixel
    stride, dilation = spec.stride, spec.dilation
    rest_lengths = [-(-u // st) for u, st in zip(used[1:], stride[1:], strict=True)]
    rest_plane, rest_used = math.prod(rest_lengths), math.prod(used[1:])
    n_phases = math.prod(stride)
    s0, d0, k0 = stride[0], dilation[0], spec.kernel_size[0]
    tap_phases, tap_shifts = _tap_phases(spec)
    reach = [max(column) for column in zip(*tap_shifts, strict=True)]
    extra0 = -(-(d0 * (k0 - 1) + 1) // s0)  # phase rows past the tile's output rows
    # per output row: y laid out, the product, every phase, the padded rows; per tile: the
    # phase rows past the output rows, each phase's slack, the padded rows' reach
    per_plane_row = itemsize * rest_plane * (spec.out_channels
                                             + spec.in_channels * (k + n_phases))
    per_row = per_plane_row + itemsize * spec.in_channels * s0 * rest_used
    halo = (per_plane_row * extra0 + itemsize * n_phases * rest_plane * (reach[0] + 1)
            + itemsize * spec.in_channels * rest_used * (d0 * (k0 - 1) + 1))
    if per_row + halo > budget.WORKSPACE_BYTES:
        return False
    tiling = _row_tiling(spec, batch, per_row, halo, batch_last)
    if general:
        tiling.rows = spec.output_size[0]
    grouped = np.asarray(weight, dtype=dtype).reshape(groups, cout, cin, k)
    w_t = np.ascontiguousarray(np.transpose(grouped, (0, 3, 2, 1))).reshape(groups, k * cin,
                                                                             cout)
    laid_out, products, phase_buffer, pads = (_Buffer(dtype, "rows"), _Buffer(dtype, "columns"),
                                              _Buffer(dtype, "phases"), _Buffer(dtype, "pad"))
    out[...] = 0
    for b0, b1, _, _, o0, o1 in _tiles(spec, batch, tiling):
        b, rows = b1 - b0, o1 - o0
        p0, prow = o0 * s0, (rows - 1) * s0 + d0 * (k0 - 1) + 1
        lengths = [-(-prow // s0), *rest_lengths]
        plane = math.prod(lengths)
        lanes = b if batch_last else 1
        real = rows * rest_plane * lanes  # the product's values of the tile's output rows
        extended = laid_out.take((b, spec.out_channels, *lengths), batch_last)
        sizes = (rows, *spec.output_size[1:])
        for a in range(1, n):  # the margins past y on the other axes (within the rows)
            extended[(slice(None), slice(None), *(slice(0, o) for o in sizes[:a]),
                      slice(sizes[a], lengths[a]))] = 0
        np.copyto(extended[(slice(None), slice(None), *(slice(0, o) for o in sizes))],
                  y[b0:b1, :, o0:o1], casting="unsafe")
        operand = _as_memory(extended, batch_last).reshape(
            _gemm_shape(groups, cout, plane, b, batch_last))
        cols = products.take(_gemm_shape(groups, k * cin, plane, b, batch_last), False)
        np.matmul(w_t, operand[..., :real], out=cols[..., :real])  # in place: BLAS strides
        cols[..., real:] = 0
        steps = [lanes * math.prod(lengths[a + 1:]) for a in range(n)]
        block = spec.in_channels * plane * b
        slack = sum(e * step for e, step in zip(reach, steps, strict=True))
        phase_values = phase_buffer.take((n_phases * (block + slack),), False)
        phase_values[...] = 0
        offsets = (np.asarray(tap_phases) * (block + slack)
                   + np.asarray(tap_shifts).reshape(len(tap_phases), n) @ np.asarray(steps))
        for t, offset in enumerate(offsets.tolist()):
            for sample in range(1 if batch_last else b):
                for g in range(groups):
                    source = (cols[g, t * cin:(t + 1) * cin] if batch_last
                              else cols[sample, g, t * cin:(t + 1) * cin]).reshape(-1)
                    start = offset + (sample * spec.in_channels + g * cin) * plane * lanes
                    target = phase_values[start:start + source.size]
                    np.add(target, source, out=target)
        pad = pads.take((b, spec.in_channels, prow, *used[1:]), batch_last)
        blocks = phase_values.reshape(n_phases, block + slack)[:, :block]
        if batch_last:  # each phase's memory (C_in, *lengths, b)
            by_phase = np.moveaxis(blocks.reshape(n_phases, spec.in_channels, *lengths, b),
                                   -1, 1)
        else:
            by_phase = blocks.reshape(n_phases, b, spec.in_channels, *lengths)
        _interleave_phases(pad, stride, list(by_phase))
        if general:
            target_out = out[b0:b1]
            np.add(target_out, _fold(pad, spec), out=target_out, casting="unsafe")
        else:
            _fold_padded(pad, out, spec, axes, b0, b1, p0)
    return True


def _adjoint_into(spec: ConvSpec, weight: np.ndarray, y: np.ndarray, out: np.ndarray,
                  batch_last: bool) -> None:
    """``out[b] = Cᵀ y[b]``: per tile one product, the taps scattered, the padding folded."""
    transposed = _transposed_spec(spec) if tuning._ADJOINT_AS_CONVOLUTION else None
    if transposed is not None:  # as fast as the forward or faster on every measured shape
        _forward_into(transposed, _transposed_weight(spec, weight), y, out, batch_last)
        return
    padded = _padded_transposed_spec(spec) if tuning._ADJOINT_AS_CONVOLUTION else None
    if padded is not None:
        w_t = _transposed_weight(spec, weight)

        def convolve(chunk: np.ndarray, target: np.ndarray) -> None:
            _forward_into(padded, w_t, chunk, target, batch_last, pad_first=False)

        if _padded_adjoint_into(spec, convolve, y, out, batch_last):
            return
    kind = _strided_adjoint(spec) if any(st > 1 for st in spec.stride) else "windows"
    if kind == "phases" and _padded_adjoint_into(spec, _phase_fill(spec, weight, batch_last),
                                                 y, out, batch_last):
        return
    if kind == "flat" and _flat_col2im_into(spec, weight, y, out, batch_last):
        return
    dtype = out.dtype
    batch, groups = y.shape[0], spec.groups
    k = math.prod(spec.kernel_size)
    ck = spec.in_channels // groups * k
    cout = spec.out_channels // groups
    w_t = np.ascontiguousarray(np.swapaxes(
        np.asarray(weight, dtype=dtype).reshape(groups, cout, ck), 1, 2))
    axes = _axes(spec)
    used = [_used_length(spec, a) for a in range(spec.ndim)]
    general = not all(a.inside for a in axes[1:])  # a border copies a trimmed pixel
    taps = list(itertools.product(*(range(n) for n in spec.kernel_size)))
    tiling = _tiling(spec, batch, max(dtype.itemsize, 1), batch_last, split_groups=False)
    if general:
        tiling.rows = spec.output_size[0]
    pads, cols_buffer, rows_buffer = (_Buffer(dtype, "pad"), _Buffer(dtype, "columns"),
                                      _Buffer(dtype, "rows"))
    phases = _Buffer(dtype, "phases")
    phased = tuning._PHASE_SPLIT and any(st > 1 for st in spec.stride)
    rest = math.prod(spec.output_size[1:])
    s0, d0, k0 = spec.stride[0], spec.dilation[0], spec.kernel_size[0]
    out[...] = 0
    for b0, b1, _, _, o0, o1 in _tiles(spec, batch, tiling):
        b, rows = b1 - b0, o1 - o0
        p0, prow = o0 * s0, (rows - 1) * s0 + d0 * (k0 - 1) + 1
        tile = _as_memory(y[b0:b1, :, o0:o1], batch_last)
        shape = _gemm_shape(groups, cout, rows * rest, b, batch_last)
        operand = _matrix_view(tile, shape) if tile.dtype == dtype else None
        if operand is None:
            copy = rows_buffer.take((b, spec.out_channels, rows, *spec.output_size[1:]),
                                    batch_last)
            np.copyto(copy, y[b0:b1, :, o0:o1], casting="unsafe")
            operand = _as_memory(copy, batch_last).reshape(shape)
        cols = cols_buffer.take((b, spec.in_channels, k, rows, *spec.output_size[1:]),
                                batch_last)
        _product(w_t, operand, _as_memory(cols, batch_last).reshape(
            _gemm_shape(groups, ck, rows * rest, b, batch_last)))
        pad = pads.take((b, spec.in_channels, prow, *used[1:]), batch_last)
        if phased:
            _scatter_phases(spec, taps, cols, pad, rows, phases, batch_last)
        else:
            pad[...] = 0
            for t, tap in enumerate(taps):
                window = pad[(slice(None), slice(None), *_window(spec, tap, rows))]
                np.add(window, cols[:, :, t], out=window)
        if general:
            target = out[b0:b1]
            np.add(target, _fold(pad, spec), out=target, casting="unsafe")
        else:
            _fold_padded(pad, out, spec, axes, b0, b1, p0)


def conv_apply(spec: ConvSpec, weight: np.ndarray, x: np.ndarray, *,
               out: np.ndarray | None = None) -> np.ndarray:
    """The convolution ``C`` on a batch, without building ``C``.

    Parameters
    ----------
    spec : ConvSpec
        The convolution.
    weight : ndarray, shape ``spec.weight_shape``
        torch layout.
    x : ndarray, shape ``(B, *spec.input_shape)``
        A batch of inputs (any strides).
    out : ndarray, shape ``(B, *spec.output_shape)``, optional
        Where to write the result (any strides, e.g. the columns of a larger array); a
        different dtype than :func:`compute_dtype` is computed in that dtype and cast.

    Returns
    -------
    ndarray, shape ``(B, *spec.output_shape)``
        ``y[b].ravel() == C @ x[b].ravel()``, in :func:`compute_dtype`.

    Notes
    -----
    The batch runs in tiles of samples and output rows (:func:`_tiling`: about
    :data:`TILE_BYTES`, never above :data:`WORKSPACE_BYTES`). Per tile the padded rows are
    written once (each padding mode is ``np.pad`` of the pixel indices), every kernel tap
    copies its strided window into a column matrix ``(C_in/G · ∏k) × (samples · pixels)``
    (im2col), and one matrix product per group (inner dimension ``C_in/G · ∏k``) writes the
    tile's outputs in place. A padded layer's samples are padded whole first when they fit
    (chunks of samples within :data:`WORKSPACE_BYTES` less one tile; the tiles then read
    their rows in place), except a zero-padded batch interleaved in memory, whose tiles pad
    their own rows. A batch whose samples are interleaved in memory (the columns of an
    operator's ``matmat``) is worked on in that layout, and the result has it too.
    Working memory: the padded chunk or the tile's padded rows, and the tile's column matrix,
    besides ``x`` and the output. Two layers skip the full column matrix: a channel-wise
    layer (one input and one output channel per group, stride 1, floating dtype) adds each
    tap's shifted run of the padded rows with BLAS ``axpy`` (no product at all), and where
    :data:`SHIFT_GAIN` says so the last kernel axis is applied by shifted sums of one taller
    product (the column matrix holds only the other axes' taps). A weight holding an inf or a
    nan is applied by the layer's exact sparse matrix instead (within the default
    ``max_bytes``, else a ConvMatrixError): the kernels multiply padding zeros by every
    weight, and ``0·inf`` is a nan where the matrix has no entry.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> spec = cm.conv_spec((1, 1, 2), (1, 4), padding=1, padding_mode="circular")
    >>> conv_apply(spec, np.array([[[1.0, 10.0]]]), np.array([[[1.0, 2.0, 3.0, 4.0]]]))
    array([[[14., 21., 32., 43., 14.]]])
    """
    x = np.asarray(x)
    return _run("forward", spec, weight, x, (x.shape[0], *spec.output_shape), out)


def conv_apply_adjoint(spec: ConvSpec, weight: np.ndarray, y: np.ndarray, *,
                       out: np.ndarray | None = None) -> np.ndarray:
    """The transpose ``Cᵀ`` on a batch (the transposed convolution), without building ``C``.

    Parameters
    ----------
    spec : ConvSpec
        The forward convolution.
    weight : ndarray, shape ``spec.weight_shape``
        torch convolution layout.
    y : ndarray, shape ``(B, *spec.output_shape)``
        A batch of outputs (any strides).
    out : ndarray, shape ``(B, *spec.input_shape)``, optional
        Where to write the result, as in :func:`conv_apply`.

    Returns
    -------
    ndarray, shape ``(B, *spec.input_shape)``
        ``x[b].ravel() == C.T @ y[b].ravel()`` (a transpose, not conjugated).

    Notes
    -----
    With stride 1 the adjoint is a convolution itself: of ``y`` with the flipped kernel
    (channels swapped per group) through :func:`conv_apply`'s kernel — straight into the
    result for zero padding of at most ``d·(k − 1)``, otherwise into the padded input's shape
    (chunks of samples within :data:`WORKSPACE_BYTES` less one tile), whose border is then
    folded back onto the pixels it copied (the mirrored, edge or wrapped pixels for reflect,
    replicate and circular; slabs of the border only, the interior copied as one block).
    A strided layer's adjoint is split by phases (the padded positions ``≡ r (mod s)``):
    when ``C_out ≤ 1.5·C_in`` each phase is a stride-1 convolution of ``y`` with the taps
    that land on it (run by :func:`conv_apply`'s kernel into the padded input's shape, the
    border then folded back); otherwise col2im in tiles: one matrix product per group gives
    ``Wᵀ y`` with ``y`` zero-extended to the phases' length, every tap adds its rows onto its
    phase as one contiguous run, the phases are interleaved into the padded rows and the
    border is folded back. The taps are added onto their strided windows instead with more
    than :data:`FLAT_GROUPS` groups, when the phases' padded sample or col2im's one output
    row is above the workspace. A weight holding an inf or a nan is applied by the exact
    sparse matrix (the kernels would multiply padding zeros by it: ``0·inf`` is a nan where
    the matrix has no entry), as in :func:`conv_apply`.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> spec = cm.conv_spec((1, 1, 2), (1, 3))
    >>> conv_apply_adjoint(spec, np.array([[[1.0, 10.0]]]), np.array([[[1.0, 2.0]]]))
    array([[[ 1., 12., 20.]]])
    """
    y = np.asarray(y)
    return _run("adjoint", spec, weight, y, (y.shape[0], *spec.input_shape), out)


def _work_per_call(spec: ConvSpec, batch: int) -> int:
    """Multiply-adds of a kernel's BLAS calls (one group, one sample's rows of a tile)."""
    tiling = _tiling(spec, batch, 8, False)
    columns = tiling.rows * math.prod(spec.output_size[1:])
    k = math.prod(spec.kernel_size)
    return spec.in_channels // spec.groups * k * (spec.out_channels // spec.groups) * columns


def _nonfinite(weight: np.ndarray) -> bool:
    """Whether a floating or complex weight holds an inf or a nan."""
    w = np.asarray(weight)
    return w.dtype.kind in "fc" and not bool(np.isfinite(w).all())


def _sparse_into(direction: Direction, spec: ConvSpec, weight: np.ndarray, data: np.ndarray,
                 out: np.ndarray) -> None:
    """``out[b] = M data[b]`` by the layer's sparse matrix ``M`` (``C`` or ``Cᵀ``).

    The kernels multiply padding (and col2im's margin) zeros by every weight: with an inf in
    the weight that is a nan where the matrix has no entry at all, so a layer with a
    non-finite weight is applied through its exact matrix, within the default budget.
    """
    try:
        matrix = spec_matrix(spec, weight, direction=direction, format="csr")
    except ConvMatrixError as error:
        raise ConvMatrixError(
            f"the weight holds an inf or a nan: the matrix-free kernels would multiply padding "
            f"zeros by it (0·inf = nan where the matrix has no entry), so the product runs "
            f"through the exact sparse matrix, and {error}") from None
    product = matrix @ data.reshape(data.shape[0], -1).T
    np.copyto(out, product.T.reshape(out.shape), casting="unsafe")


def _run(direction: Direction, spec: ConvSpec, weight: np.ndarray, data: np.ndarray,
         shape: tuple[int, ...], out: np.ndarray | None) -> np.ndarray:
    """Allocate (or check) the result and run the direction's kernel on a non-empty batch.

    A weight with an inf or a nan goes through :func:`_sparse_into` instead.
    """
    dtype = compute_dtype(np.asarray(weight).dtype, data.dtype)
    batch_last = _batch_last(data)
    if out is None:
        result = _allocate(shape, dtype, batch_last)
    elif out.shape != shape:
        raise ConvMatrixError(f"`out` has shape {out.shape}; the result has shape {shape}")
    elif out.dtype != dtype:
        result = _allocate(shape, dtype, batch_last)
    else:
        result = out
    if shape[0] and _nonfinite(weight):
        _sparse_into(direction, spec, weight, data, result)
    elif shape[0]:
        kernel = _forward_into if direction == "forward" else _adjoint_into
        with _blas_threads(_work_per_call(spec, shape[0])):
            kernel(spec, weight, data, result, batch_last)
    if out is not None and result is not out:
        np.copyto(out, result, casting="unsafe")
        return out
    return result


def _batch_last(x: np.ndarray) -> bool:
    """Whether a batch's samples are interleaved in memory (the batch axis moves fastest)."""
    if x.shape[0] < 2:
        return False
    strides = [abs(st) for st, n in zip(x.strides[1:], x.shape[1:], strict=True) if n > 1]
    return abs(x.strides[0]) < min(strides, default=abs(x.strides[0]) + 1)


def _allocate(shape: tuple[int, ...], dtype: np.dtype[Any], batch_last: bool) -> np.ndarray:
    """A ``(B, …)`` result, its memory batch-last (``(…, B)``) when ``batch_last``."""
    if batch_last:
        return np.moveaxis(np.empty((*shape[1:], shape[0]), dtype=dtype), -1, 0)
    return np.empty(shape, dtype=dtype)
