"""The padded input: which input pixel every padded position copies, padding and folding back.

Each padding mode is ``np.pad`` of the pixel indices (:func:`pad_source`); the kernels write a
tile's padded rows from it (:func:`fill_padded`) and add a padded result's border back onto
the pixels it copied (:func:`fold_padded`, the adjoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from convmatrix.geometry.shapes import used_length
from convmatrix.geometry.spec import ConvSpec

__all__ = ["PaddedAxis", "fill_padded", "fold_copy", "fold_padded", "pad_copy", "pad_source",
           "padded_axes", "padded_length"]


_NUMPY_PAD_MODES: dict[str, Any] = {"reflect": "reflect", "replicate": "edge", "circular": "wrap",
                                     "symmetric": "symmetric"}


def padded_length(spec: ConvSpec, axis: int) -> int:
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
    return source[:padded_length(spec, axis)]


def pad_copy(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
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


def fold_copy(g: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The adjoint of :func:`pad_copy`: add every padded pixel back onto the pixel it copies."""
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


@dataclass(frozen=True)
class PaddedAxis:
    """One spatial axis of the padded input: where each used position reads from."""

    source: np.ndarray  # per used padded position, the input pixel it copies (-1: zero)
    before: int  # padding before
    lo: int  # the interior: positions [lo, hi) copy pixel position - before
    hi: int
    border: tuple[int, ...]  # the other used positions
    runs: tuple[tuple[int, int, str], ...]  # border runs [a, b): "zero", "copy" or "mixed"
    inside: bool  # every border source lies in [lo, hi) (a border copies the padded buffer)


@lru_cache(maxsize=256)
def padded_axes(spec: ConvSpec) -> tuple[PaddedAxis, ...]:
    """Per spatial axis, where the used padded positions read from (cached per spec)."""
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
        axes.append(PaddedAxis(source, before, lo, hi, border, runs, inside))
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


def _border_rows(axis: PaddedAxis, p0: int, rows: int) -> list[int]:
    """The border positions of the first axis among padded rows ``[p0, p0 + rows)``."""
    return [r for r in axis.border if p0 <= r < p0 + rows]


def fill_padded(pad: np.ndarray, x: np.ndarray, spec: ConvSpec, axes: tuple[PaddedAxis, ...],
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


def fold_padded(g: np.ndarray, out: np.ndarray, spec: ConvSpec, axes: tuple[PaddedAxis, ...],
                b0: int, b1: int, p0: int, assign: bool = False) -> None:
    """The adjoint of :func:`fill_padded`: add the padded rows ``g`` onto ``out[b0:b1]``.

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
