"""Dense products: a layer applied to the columns of a matrix, for products that are mostly full.

When a product of layer matrices is mostly filled (a small input pushed through wide layers: a
generator's latent vector), chaining sparse products spends its time on per-entry index
bookkeeping; applying the later layers matrix-free to the columns (blocks of unit vectors or
of the dense earlier product) runs at numpy's speed and never builds their matrices.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix.layers.base import Layer

__all__ = ["APPLY_CHUNK_BYTES", "DENSE_FILL", "block_bytes", "dense_product"]

DENSE_FILL: float = 0.5
"""Estimated fill (stored entries / all entries) from which a product is formed densely.

At this fill a dense float64 array takes no more than 4/3 of a CSR array of the same entries
(8 bytes per value against 8 + 4 + the pointers), and applying a layer to dense columns runs at
numpy's speed instead of a sparse product's per-entry bookkeeping.
"""

APPLY_CHUNK_BYTES: int = 128 * 2**20
"""Working memory of one block of columns in :func:`dense_product` (its samples and the apply's
buffers). Blocks of a few columns cost several times more per column (each layer's apply has a
fixed cost per call), so a block is as wide as this allows."""


def dense_product(layer: Layer, earlier: Any, *, chunk_bytes: int = APPLY_CHUNK_BYTES
                  ) -> np.ndarray:
    """``layer.matrix() @ earlier`` as a dense array, by applying the layer to the columns.

    The matrix of ``layer`` is never built: its matrix-free :meth:`~Layer.apply_forward`
    runs on blocks of columns of ``earlier`` (a sparse or dense matrix whose rows are the
    layer's flattened input; None: the identity), each block a batch of samples.

    Parameters
    ----------
    layer : Layer
    earlier : scipy.sparse array, ndarray or None
    chunk_bytes : int, optional
        Working memory of one block of columns (its input and output samples).

    Returns
    -------
    ndarray, shape ``(∏layer.output_shape, earlier.shape[1])``

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.ones((1, 1, 2)), (1, 3))
    >>> dense_product(conv, None)
    array([[1., 1., 0.],
           [0., 1., 1.]])
    """
    inner = math.prod(layer.input_shape)
    cols = inner if earlier is None else earlier.shape[1]
    rows = math.prod(layer.output_shape)
    dtype = (np.result_type(layer.dtype, earlier.dtype) if earlier is not None else
             layer.dtype if layer.dtype.kind in "fc" else np.dtype(np.float64))
    result = np.empty((rows, cols), dtype=dtype)
    per_column = max((inner + rows) * 3, layer._apply_nbytes(1, 1)) * max(dtype.itemsize, 8)
    step = max(1, min(cols, chunk_bytes // max(per_column, 1)))
    for start in range(0, cols, step):
        stop = min(cols, start + step)
        if earlier is None:
            block = np.zeros((stop - start, inner), dtype=dtype)
            block[np.arange(stop - start), np.arange(start, stop)] = 1
        elif sp.issparse(earlier):
            block = np.asarray(earlier[:, start:stop].toarray().T, dtype=dtype)
        else:
            block = np.ascontiguousarray(earlier[:, start:stop].T, dtype=dtype)
        out = layer.apply_forward(block.reshape(stop - start, *layer.input_shape))
        result[:, start:stop] = out.reshape(stop - start, rows).T
    return result


def block_bytes(max_bytes: int | None) -> int:
    """Working memory of a dense build's block of columns: a quarter of ``max_bytes`` at most.

    Examples
    --------
    >>> block_bytes(None) == APPLY_CHUNK_BYTES, block_bytes(4000)
    (True, 1000)
    """
    return APPLY_CHUNK_BYTES if max_bytes is None else max(1, min(APPLY_CHUNK_BYTES,
                                                                 max_bytes // 4))
