"""Argument checks shared by the shape-generic kinds (Linear, Scale, Reshape, Slice, pooling).

One sample's shape is checked by :func:`convmatrix.geometry.spec.as_sample_shape`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convmatrix._arrays import to_numpy
from convmatrix._errors import ConvMatrixError
from convmatrix.builder.weights import SPARSE_DTYPES
from convmatrix.layers._separable import as_int

__all__ = ["frozen", "numeric_array", "sample_axis"]


def numeric_array(value: Any, name: str) -> np.ndarray:
    """``value`` as a numeric array scipy.sparse can store (native byte order), or refused."""
    try:
        array = to_numpy(value)
    except (TypeError, ValueError) as error:
        raise ConvMatrixError(f"`{name}` (={value!r}) must be an array of numbers: {error}"
                              ) from None
    if array.dtype.kind in "biufc" and not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype not in SPARSE_DTYPES:
        raise ConvMatrixError(
            f"`{name}` has dtype {array.dtype}; it must be bool, integer, float32/float64 or "
            f"complex (what scipy.sparse stores)")
    return array


def frozen(array: np.ndarray) -> np.ndarray:
    """A read-only copy (a layer's parameters never change under it)."""
    copy = np.array(array, copy=True)
    copy.flags.writeable = False
    return copy


def sample_axis(axis: Any, shape: tuple[int, ...], name: str = "axis") -> int:
    """An axis of one sample (negative counts from the end), as a non-negative int."""
    number = as_int(axis, name)
    if not -len(shape) <= number < len(shape):
        raise ConvMatrixError(
            f"`{name}` (={axis!r}) must be an axis of the sample {shape}: an int in "
            f"[{-len(shape)}, {len(shape) - 1}]")
    return number % len(shape)
