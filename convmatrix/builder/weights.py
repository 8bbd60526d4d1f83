"""Weights: the numeric arrays a matrix is built from, and values for shape-only layers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from convmatrix._arrays import to_numpy
from convmatrix._errors import ConvMatrixError

__all__ = ["SPARSE_DTYPES", "WEIGHT_FILLS", "as_weight", "make_weight"]

WEIGHT_FILLS = ("ones", "arange", "random")

#: the dtypes scipy.sparse stores (and so the weight dtypes a matrix can have)
SPARSE_DTYPES = frozenset(np.dtype(t) for t in (
    np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
    np.uint64, np.float32, np.float64, np.longdouble, np.complex64, np.complex128,
    np.clongdouble,
))


def as_weight(weight: Any) -> np.ndarray:
    """Return the weight as a numeric ndarray, or raise a TypeError naming what is allowed.

    torch tensors are read detached; bfloat16 ones become float32 (exactly). An array in
    non-native byte order (``>f4`` on a little-endian machine) is byte-swapped to native
    order: the same values, the same precision.
    """
    array = to_numpy(weight)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype not in SPARSE_DTYPES:
        hint = ""
        if array.dtype == object:
            hint = "; for SymPy symbols use convmatrix.symbolic.symbolic_conv_matrix"
        elif array.dtype == np.float16:
            hint = "; scipy.sparse has no float16: cast the weight to float32"
        raise TypeError(
            f"`weight` has dtype {array.dtype}, which scipy.sparse cannot store; use bool, "
            f"integer, float32/float64 or complex{hint}"
        )
    return array


def make_weight(shape: Sequence[int], fill: str = "ones", seed: int = 0) -> np.ndarray:
    """Weight values for a layer described only by shapes.

    Parameters
    ----------
    shape : sequence of int
        The weight shape.
    fill : {"ones", "arange", "random"}
        All ones (integers, as in the seed example), ``1, 2, 3, ...`` (integers, so every tap is
        recognisable in an output), or seeded standard-normal floats.
    seed : int
        Seed for ``"random"``.

    Returns
    -------
    ndarray
        int64 for ``"ones"`` and ``"arange"``, float64 for ``"random"``.

    Examples
    --------
    >>> make_weight((1, 1, 2, 2), "arange")[0, 0].tolist()
    [[1, 2], [3, 4]]
    """
    shape = tuple(shape)
    if fill == "ones":
        return np.ones(shape, dtype=np.int64)
    if fill == "arange":
        return np.arange(1, math.prod(shape) + 1, dtype=np.int64).reshape(shape)
    if fill == "random":
        return np.random.default_rng(seed).standard_normal(shape)
    raise ConvMatrixError(f"`fill` (={fill!r}) must be one of {', '.join(WEIGHT_FILLS)}")
