"""The forward kernels: ``C x`` on a batch by tiled im2col, channel-wise taps or shifted sums."""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Any

import numpy as np

from convmatrix.builder import tiles, tuning
from convmatrix.builder.padding import fill_padded as _fill_padded
from convmatrix.builder.padding import pad_copy as _pad
from convmatrix.builder.padding import padded_axes as _axes
from convmatrix.builder.padding import padded_length as _used_length
from convmatrix.builder.scratch import ScratchBuffer as _Buffer
from convmatrix.builder.threads import one_blas_thread
from convmatrix.builder.tiles import as_memory as _as_memory
from convmatrix.builder.tiles import batch_tiling as _tiling
from convmatrix.builder.tiles import gemm_shape as _gemm_shape
from convmatrix.builder.tiles import matrix_view as _matrix_view
from convmatrix.builder.tiles import row_tiling as _row_tiling
from convmatrix.builder.tiles import tap_tiling as _tap_tiling
from convmatrix.builder.tiles import tap_windows as _windows
from convmatrix.builder.tiles import tile_ranges as _tiles
from convmatrix.geometry.spec import ConvSpec, conv_spec

__all__ = ["forward_into"]


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
    chunk = tiles.padded_chunk(batch, math.prod(inner.input_shape) * max(dtype.itemsize, 1))
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
        forward_into(inner, weight, padded, out[b0:b1], batch_last)
    return True


_AXPY = {"f4": "saxpy", "f8": "daxpy", "c8": "caxpy", "c16": "zaxpy"}


def _channel_wise(spec: ConvSpec, dtype: np.dtype[Any]) -> bool:
    """Whether :func:`_taps_into` runs the layer (no column matrix).

    One input and one output channel per group (depthwise, or a single channel), stride 1, a
    floating or complex dtype (BLAS ``axpy``).
    """
    return (tuning.TAPS and spec.in_channels == spec.groups == spec.out_channels
            and all(s == 1 for s in spec.stride) and f"{dtype.kind}{dtype.itemsize}" in _AXPY)


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
        with one_blas_thread():  # runs of at most TAP_CHUNK_BYTES; scipy's BLAS included
            for plane in range(flat.shape[0]):
                source, sums_row = flat[plane], target[plane]
                weights = w[plane % channels].tolist()
                for q0 in range(0, length, chunk):
                    n = min(chunk, length - q0)
                    np.multiply(source[q0 + offsets[0]:q0 + offsets[0] + n], weights[0],
                                out=sums_row[q0:q0 + n])
                    for offset, value in zip(offsets[1:], weights[1:], strict=True):
                        if value:
                            axpy(source, sums_row, n, value, q0 + offset, 1, q0, 1)
                        else:  # BLAS axpy returns at once for a zero weight: 0·inf is a nan
                            run = sums_row[q0:q0 + n]
                            np.add(run, source[q0 + offset:q0 + offset + n] * value, out=run)
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


def forward_into(spec: ConvSpec, weight: np.ndarray, x: np.ndarray, out: np.ndarray,
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
    if (tuning.PAD_FIRST and pad_first and any(p for pair in spec.padding for p in pair)
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
