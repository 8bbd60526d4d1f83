"""The dtype a kernel computes in: the integer rule and the absolute-sum bounds it reads."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.padding import pad_source
from convmatrix.geometry.spec import ConvSpec
from convmatrix.typing import Direction

__all__ = ["INTEGER_RULE", "compute_dtype", "conv_abs_row_sum", "integer_dtype", "max_abs"]


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
