"""The index dtype of a sparse matrix: int32 while every count fits, int64 beyond (one rule).

The builder, the row blocks, the writer of saved matrices and the prober all choose their
index arrays' dtype here, so a matrix and its pieces always agree (as scipy does: int32
when the largest index, row pointer and dimension fit).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["INT32_MAX", "index_dtype"]

INT32_MAX: int = int(np.iinfo(np.int32).max)
"""Largest count held in int32 indices (read at call time, so tests may lower it)."""


def index_dtype(nnz: int, shape: tuple[int, ...]) -> np.dtype[Any]:
    """int32 when ``nnz`` and every dimension in ``shape`` are at most :data:`INT32_MAX`.

    Parameters
    ----------
    nnz : int
        Stored entries (or an upper bound): the last row pointer.
    shape : tuple of int
        The matrix shape (the largest column index is below ``shape[1]``).

    Returns
    -------
    numpy.dtype
        ``int32`` or ``int64``.

    Examples
    --------
    >>> index_dtype(10, (3, 4)), index_dtype(6, (3, 3 * 10**9))
    (dtype('int32'), dtype('int64'))
    """
    return np.dtype(np.int32 if max(nnz, *shape) <= INT32_MAX else np.int64)
