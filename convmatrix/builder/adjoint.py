"""The adjoint kernels: ``Cᵀ y`` on a batch as a convolution, by phases or by tiled col2im."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, cast

import numpy as np

from convmatrix.builder import budget, tiles, tuning
from convmatrix.builder.forward import forward_into as _forward_into
from convmatrix.builder.padding import fold_copy as _fold
from convmatrix.builder.padding import fold_padded as _fold_padded
from convmatrix.builder.padding import padded_axes as _axes
from convmatrix.builder.padding import padded_length as _used_length
from convmatrix.builder.phases import add_phases as _add_phases
from convmatrix.builder.phases import interleave_phases as _interleave_phases
from convmatrix.builder.phases import polyphases as _phases
from convmatrix.builder.phases import scatter_phases as _scatter_phases
from convmatrix.builder.phases import tap_phases as _tap_phases
from convmatrix.builder.scratch import ScratchBuffer as _Buffer
from convmatrix.builder.threads import one_blas_thread
from convmatrix.builder.tiles import as_memory as _as_memory
from convmatrix.builder.tiles import batch_tiling as _tiling
from convmatrix.builder.tiles import gemm_shape as _gemm_shape
from convmatrix.builder.tiles import matrix_view as _matrix_view
from convmatrix.builder.tiles import row_tiling as _row_tiling
from convmatrix.builder.tiles import tap_window as _window
from convmatrix.builder.tiles import tile_ranges as _tiles
from convmatrix.builder.tuning import StridedAdjoint
from convmatrix.geometry.spec import ConvSpec, conv_spec

__all__ = ["adjoint_into"]


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
    for (before, after), k, d, o in zip(spec.padding, spec.kernel_size, spec.dilation,
                                        spec.output_size, strict=True):
        reach = d * (k - 1)
        if before > reach or after > reach or o + reach - before - after < 1:
            # the last: y padded is shorter than the kernel (a transposed layer's
            # output_padding ≥ stride leaves fewer outputs than the input gives)
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
    chunk = tiles.padded_chunk(batch, spec.in_channels * math.prod(used) * max(dtype.itemsize, 1))
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

    ``"flat"`` (:func:`_flat_col2im_into`: every tap's product added onto its phase as one
    run of memory, inside BLAS when the channels allow, ``tuning.ACCUMULATE_RATIO``),
    ``"phases"`` (:func:`_phases`, one stride-1 convolution of ``y`` per phase) or
    ``"windows"`` (col2im with strided window adds, :func:`adjoint_into`).

    Flat col2im unless the layer has more than ``tuning.FLAT_GROUPS`` groups (it takes each
    group's taps with calls of their own). Then a traffic model: the phases' column matrices
    hold ``C_out/G · ∏k`` values per output position, moved twice (written, read by the
    product); col2im's hold ``C_in/G · ∏k``, moved three times (written by the product, read
    and added by the taps): phases when they move no more (a strided depthwise layer's
    phases take the channel-wise axpy taps), else windows. Measured (float64, one thread),
    flat against phases: 0.45–0.85× their time on 1-, 2- and 3-D layers with
    ``C_out ≤ 1.5·C_in`` (which took the phases before flat col2im added its taps inside
    BLAS), depthwise layers of 2–4 channels 0.6–0.7×. ``tuning.STRIDED_ADJOINT`` forces one (tests).
    """
    if tuning.STRIDED_ADJOINT != "auto":
        kind = tuning.STRIDED_ADJOINT
    elif spec.groups <= tuning.FLAT_GROUPS:
        kind = "flat"
    elif 2 * spec.out_channels <= 3 * spec.in_channels:
        kind = "phases"
    else:
        kind = "windows"
    return "windows" if kind == "flat" and spec.groups > tuning.FLAT_GROUPS else kind


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


def _product(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out = a @ b`` (stacked); an outer product (inner dimension 1) as a broadcast."""
    if a.shape[-1] == 1:
        np.multiply(a, b, out=out)
    else:
        np.matmul(a, b, out=out)


_GEMM = {"f4": "sgemm", "f8": "dgemm", "c8": "cgemm", "c16": "zgemm"}


def _accumulating_gemm(spec: ConvSpec, dtype: np.dtype[Any]) -> Callable[..., Any] | None:
    """The BLAS ``gemm`` of :func:`_accumulate_taps`, when it is the faster form (else None).

    A BLAS dtype and ``C_out/G ≤ tuning.ACCUMULATE_RATIO · C_in/G`` (half that in single
    precision: float32, complex64), or ``C_out/G ≤ tuning.ACCUMULATE_CHANNELS``.
    """
    name = _GEMM.get(f"{dtype.kind}{dtype.itemsize}")
    cin, cout = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    single = dtype in (np.dtype(np.float32), np.dtype(np.complex64))
    ratio = tuning.ACCUMULATE_RATIO / (2 if single else 1)
    if name is None or (cout > ratio * cin and cout > tuning.ACCUMULATE_CHANNELS):
        return None
    from scipy.linalg import blas

    return cast("Callable[..., Any]", getattr(blas, name))


def _accumulate_taps(gemm: Callable[..., Any], w_t: np.ndarray, operand: np.ndarray,
                     values: np.ndarray, offsets: Sequence[int], cin: int, sample_size: int,
                     samples: int) -> None:
    """``values[offset_t + run] += W_tᵀ y`` per tap ``t``, group and sample, inside BLAS.

    ``w_t`` is ``(G, ∏k·C_in/G, C_out/G)`` (tap-major rows), ``operand`` the laid-out ``y``:
    ``(b, G, C_out/G, L)``, or ``(G, C_out/G, L·b)`` with the samples interleaved (then
    ``samples`` is 1). A tap's run holds the group's ``C_in/G`` channels of ``L`` values
    each, so as Fortran arrays ``run (L × C_in/G) += yᵀ (L × C_out/G) · W_tᵀ (C_out/G ×
    C_in/G)``: one ``gemm`` with ``beta = 1`` that writes the run where it lies. Should BLAS
    hand back a copy instead (f2py copies an operand it cannot use in place), the copy is
    written back.
    """
    groups = w_t.shape[0]
    length = operand.shape[-1]
    for sample in range(samples):
        for g in range(groups):
            a = (operand[sample, g] if operand.ndim == 4 else operand[g]).T
            base = sample * sample_size + g * cin * length
            for t, offset in enumerate(offsets):
                start = offset + base
                run = values[start:start + cin * length].reshape(cin, length).T
                result = gemm(1.0, a, w_t[g, t * cin:(t + 1) * cin].T, beta=1.0, c=run,
                              overwrite_c=1)
                if not np.may_share_memory(result, run):
                    run[...] = result


def _flat_col2im_into(spec: ConvSpec, weight: np.ndarray, y: np.ndarray, out: np.ndarray,
                      batch_last: bool) -> bool:
    """``out[b] = Cᵀ y[b]`` for a strided layer: col2im into a buffer split by phases.

    A tap ``t`` writes padded positions ``s·o + d·t``: phase ``(d·t) mod s`` at positions
    ``o + e_t``, ``e_t = ⌊d·t / s⌋`` (:func:`_tap_phases`). The phases are held flat, each
    in the common strides ``L = ⌈used / s⌉`` per axis, so tap ``t``'s values land on one run
    of memory shifted by ``e_t`` within its phase (a strided window add would be several
    times slower). When the channels allow (:func:`_accumulating_gemm`), ``y`` is laid out in
    those strides too (zeros past ``o`` on every axis, which land on the next row's or
    channel's start, where they change nothing) and each tap's product is added onto its run
    inside BLAS (:func:`_accumulate_taps`); otherwise one product ``Wᵀ y`` (rows tap-major)
    on ``y`` as it lies gives every tap's values, each added onto its window of the run
    (contiguous along the last axis). With zero padding the phases are then added (copied,
    when one tile holds every row) straight onto ``out``; else they are interleaved into the
    padded rows (one strided copy each) and the border folded back.

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
    # per output row: y laid out (or copied), the product of every tap (none when BLAS adds
    # the taps), every phase, the padded rows (folded modes); per tile: the phase rows past
    # the output rows, each phase's slack, the padded rows' reach
    gemm = _accumulating_gemm(spec, dtype)
    columns = 0 if gemm is not None else k  # no column matrix when BLAS adds the taps
    per_plane_row = itemsize * rest_plane * (spec.out_channels
                                             + spec.in_channels * (columns + n_phases))
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
    zero_border = spec.padding_mode == "zeros"  # the padded border is dropped, never folded
    out[...] = 0
    for b0, b1, _, _, o0, o1 in _tiles(spec, batch, tiling):
        b, rows = b1 - b0, o1 - o0
        p0, prow = o0 * s0, (rows - 1) * s0 + d0 * (k0 - 1) + 1
        lengths = [-(-prow // s0), *rest_lengths]
        plane = math.prod(lengths)
        lanes = b if batch_last else 1
        sizes = (rows, *spec.output_size[1:])
        steps = [lanes * math.prod(lengths[a + 1:]) for a in range(n)]
        block = spec.in_channels * plane * b
        slack = sum(e * step for e, step in zip(reach, steps, strict=True))
        phase_values = phase_buffer.take((n_phases * (block + slack),), False)
        phase_values[...] = 0
        offsets = (np.asarray(tap_phases) * (block + slack)
                   + np.asarray(tap_shifts).reshape(len(tap_phases), n) @ np.asarray(steps))
        if gemm is not None:
            extended = laid_out.take((b, spec.out_channels, *lengths), batch_last)
            for a in range(1, n):  # the margins past y on the other axes (within the rows)
                extended[(slice(None), slice(None), *(slice(0, o) for o in sizes[:a]),
                          slice(sizes[a], lengths[a]))] = 0
            np.copyto(extended[(slice(None), slice(None), *(slice(0, o) for o in sizes))],
                      y[b0:b1, :, o0:o1], casting="unsafe")
            operand = _as_memory(extended, batch_last).reshape(
                _gemm_shape(groups, cout, plane, b, batch_last))
            operand[..., rows * rest_plane * lanes:] = 0  # y's rows past the tile's
            small = plane * lanes * cin * cout < tuning.SMALL_PRODUCT  # each tap's product
            with one_blas_thread() if small else contextlib.nullcontext():
                _accumulate_taps(gemm, w_t, operand, phase_values, offsets.tolist(), cin,
                                 spec.in_channels * plane * lanes, 1 if batch_last else b)
        else:  # one product of every tap on y as it lies; each tap added as a window
            count = math.prod(sizes)
            tile = _as_memory(y[b0:b1, :, o0:o1], batch_last)
            shape = _gemm_shape(groups, cout, count, b, batch_last)
            direct = _matrix_view(tile, shape) if tile.dtype == dtype else None
            if direct is None:
                copy = laid_out.take((b, spec.out_channels, *sizes), batch_last)
                np.copyto(copy, y[b0:b1, :, o0:o1], casting="unsafe")
                direct = _as_memory(copy, batch_last).reshape(shape)
            cols = products.take(_gemm_shape(groups, k * cin, count, b, batch_last), False)
            np.matmul(w_t, direct, out=cols)
            inside = (slice(None), *(slice(0, o) for o in sizes))
            for t, offset in enumerate(offsets.tolist()):
                for sample in range(1 if batch_last else b):
                    for g in range(groups):
                        source = (cols[g, t * cin:(t + 1) * cin] if batch_last
                                  else cols[sample, g, t * cin:(t + 1) * cin])
                        start = offset + (sample * spec.in_channels + g * cin) * plane * lanes
                        window = phase_values[start:start + cin * plane * lanes].reshape(
                            cin, *lengths, lanes)[inside]
                        np.add(window, source.reshape(cin, *sizes, lanes), out=window)
        blocks = phase_values.reshape(n_phases, block + slack)[:, :block]
        if batch_last:  # each phase's memory (C_in, *lengths, b)
            by_phase = np.moveaxis(blocks.reshape(n_phases, spec.in_channels, *lengths, b),
                                   -1, 1)
        else:
            by_phase = blocks.reshape(n_phases, b, spec.in_channels, *lengths)
        if zero_border:
            whole = o0 == 0 and o1 == spec.output_size[0]  # no other tile writes these samples
            _add_phases(out[b0:b1], list(by_phase), spec, axes, p0, prow, assign=whole)
            continue
        pad = pads.take((b, spec.in_channels, prow, *used[1:]), batch_last)
        _interleave_phases(pad, stride, list(by_phase))
        if general:
            target_out = out[b0:b1]
            np.add(target_out, _fold(pad, spec), out=target_out, casting="unsafe")
        else:
            _fold_padded(pad, out, spec, axes, b0, b1, p0)
    return True


def adjoint_into(spec: ConvSpec, weight: np.ndarray, y: np.ndarray, out: np.ndarray,
                 batch_last: bool) -> None:
    """``out[b] = Cᵀ y[b]``: per tile one product, the taps scattered, the padding folded."""
    transposed = _transposed_spec(spec) if tuning.ADJOINT_AS_CONVOLUTION else None
    if transposed is not None:  # as fast as the forward or faster on every measured shape
        _forward_into(transposed, _transposed_weight(spec, weight), y, out, batch_last)
        return
    padded = _padded_transposed_spec(spec) if tuning.ADJOINT_AS_CONVOLUTION else None
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
    phased = tuning.PHASE_SPLIT and any(st > 1 for st in spec.stride)
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
