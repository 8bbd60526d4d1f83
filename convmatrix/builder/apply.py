"""Matrix-free convolution kernels: ``C @ x`` and ``Cᵀ @ y`` on batches, one BLAS call per tap."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import used_length
from convmatrix.geometry.spec import ConvSpec
from convmatrix.typing import Direction

__all__ = ["INTEGER_RULE", "compute_dtype", "conv_abs_row_sum", "conv_apply", "conv_apply_adjoint",
           "integer_dtype", "max_abs"]

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
    """Pad (and trim to the used extent) the spatial axes ``2, 3, …`` of ``x``."""
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
        src: list[Any] = [slice(None)] * g.ndim
        dst: list[Any] = [slice(None)] * g.ndim
        for position, pixel in enumerate(source.tolist()):
            if pixel >= 0:
                src[axis + 2] = position
                dst[axis + 2] = pixel
                folded[tuple(dst)] += g[tuple(src)]
        g = folded
    return g


def _tap_windows(spec: ConvSpec) -> list[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """Each kernel tap with the strided window of the padded input its outputs read."""
    windows = []
    for tap in itertools.product(*(range(k) for k in spec.kernel_size)):
        window = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in
                       zip(tap, spec.dilation, spec.output_size, spec.stride, strict=True))
        windows.append((tap, window))
    return windows


def _tap_index(tap: tuple[int, ...]) -> tuple[Any, ...]:
    return (Ellipsis, *tap)


def _grouped_weight(spec: ConvSpec, weight: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """``(G, C_out/G, C_in/G, *k)``."""
    groups = spec.groups
    return np.asarray(weight, dtype=dtype).reshape(
        groups, spec.out_channels // groups, spec.in_channels // groups, *spec.kernel_size)


def _contract(w_tap: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``(G, a, b) @ (G, b, N)`` per group: BLAS, or a broadcast product when ``b == 1``."""
    if w_tap.shape[2] == 1:
        return w_tap * columns  # (G, a, 1) * (G, 1, N): depthwise, no tiny matrix products
    return np.matmul(w_tap, columns)


def conv_apply(spec: ConvSpec, weight: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The convolution ``C`` on a batch, without building ``C``.

    Parameters
    ----------
    spec : ConvSpec
        The convolution.
    weight : ndarray, shape ``spec.weight_shape``
        torch layout.
    x : ndarray, shape ``(B, *spec.input_shape)``
        A batch of inputs.

    Returns
    -------
    ndarray, shape ``(B, *spec.output_shape)``
        ``y[b].ravel() == C @ x[b].ravel()``, in :func:`compute_dtype`.

    Notes
    -----
    The input is padded once (each padding mode is ``np.pad`` of the pixel indices); then for
    every kernel tap ``t`` the outputs of each group gain ``W[:, :, t] @ window_t``, one matrix
    product of ``(C_out/G × C_in/G)`` with ``(C_in/G × B·∏o)``, where ``window_t`` is the strided
    view of the padded input that tap reads. Working memory: the padded input, one window and
    the output.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> spec = cm.conv_spec((1, 1, 2), (1, 4), padding=1, padding_mode="circular")
    >>> conv_apply(spec, np.array([[[1.0, 10.0]]]), np.array([[[1.0, 2.0, 3.0, 4.0]]]))
    array([[[14., 21., 32., 43., 14.]]])
    """
    dtype = compute_dtype(weight.dtype, x.dtype)
    batch, groups = x.shape[0], spec.groups
    w = _grouped_weight(spec, weight, dtype)
    # (G, C_in/G, B, *padded): the batch joins the pixels in one matrix product per group
    channels_first = np.moveaxis(np.asarray(x, dtype=dtype), 0, 1)
    padded = _pad(channels_first, spec).reshape(
        groups, spec.in_channels // groups, batch, *(_used_length(spec, a) for a in
                                                     range(spec.ndim)))
    columns = batch * math.prod(spec.output_size)
    out = np.zeros((groups, spec.out_channels // groups, columns), dtype=dtype)
    for tap, window in _tap_windows(spec):
        view = padded[(slice(None), slice(None), slice(None), *window)]
        out += _contract(w[_tap_index(tap)], view.reshape(groups, -1, columns))
    out = out.reshape(spec.out_channels, batch, *spec.output_size)
    return np.ascontiguousarray(np.moveaxis(out, 1, 0))


def conv_apply_adjoint(spec: ConvSpec, weight: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The transpose ``Cᵀ`` on a batch (the transposed convolution), without building ``C``.

    Parameters
    ----------
    spec : ConvSpec
        The forward convolution.
    weight : ndarray, shape ``spec.weight_shape``
        torch convolution layout.
    y : ndarray, shape ``(B, *spec.output_shape)``
        A batch of outputs.

    Returns
    -------
    ndarray, shape ``(B, *spec.input_shape)``
        ``x[b].ravel() == C.T @ y[b].ravel()`` (a transpose, not conjugated).

    Notes
    -----
    Every tap scatters ``W[:, :, t]ᵀ @ y`` onto its strided window of a zero padded input;
    the padded border is then folded back onto the pixels it copied (nothing for zeros, the
    mirrored, edge or wrapped pixels for reflect, replicate and circular).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> spec = cm.conv_spec((1, 1, 2), (1, 3))
    >>> conv_apply_adjoint(spec, np.array([[[1.0, 10.0]]]), np.array([[[1.0, 2.0]]]))
    array([[[ 1., 12., 20.]]])
    """
    dtype = compute_dtype(weight.dtype, y.dtype)
    batch, groups = y.shape[0], spec.groups
    w_t = np.swapaxes(_grouped_weight(spec, weight, dtype), 1, 2)  # (G, C_in/G, C_out/G, *k)
    columns = batch * math.prod(spec.output_size)
    rows = np.ascontiguousarray(np.moveaxis(np.asarray(y, dtype=dtype), 0, 1)).reshape(
        groups, spec.out_channels // groups, columns)
    used = tuple(_used_length(spec, a) for a in range(spec.ndim))
    padded = np.zeros((groups, spec.in_channels // groups, batch, *used), dtype=dtype)
    for tap, window in _tap_windows(spec):
        contribution = _contract(w_t[_tap_index(tap)], rows)
        padded[(slice(None), slice(None), slice(None), *window)] += contribution.reshape(
            groups, spec.in_channels // groups, batch, *spec.output_size)
    folded = _fold(padded.reshape(spec.in_channels, batch, *used), spec)
    return np.ascontiguousarray(np.moveaxis(folded, 1, 0))
