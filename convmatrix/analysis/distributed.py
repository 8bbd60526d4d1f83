"""A layer's matrix as a lazy dask array of sparse row chunks (optional: dask and sparse)."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.analysis.blocks import block_plan, block_rows
from convmatrix.builder.budget import DEFAULT_MAX_BYTES
from convmatrix.geometry.view import AffineMap

__all__ = ["to_dask"]


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ImportError(f"to_dask needs the optional packages dask[array] and sparse: "
                          f"pip install 'convmatrix[dask]' ({name} is missing)") from None


def _coo(build: Any) -> Any:
    """One chunk: the CSR rows ``build()`` gives, as a ``sparse.COO`` sharing their arrays.

    The row coordinates come from ``indptr`` in one ``np.repeat`` and the COO is declared
    sorted and free of duplicates (the builder's CSR is canonical, checked here), so nothing
    is sorted or copied beyond the row index; ``COO.from_scipy_sparse`` took 4× longer and
    stored int64 coordinates.
    """
    sparse = _optional("sparse")
    matrix = build()
    if not matrix.has_canonical_format:
        matrix.sum_duplicates()
    rows = np.repeat(np.arange(matrix.shape[0], dtype=matrix.indices.dtype),
                     np.diff(matrix.indptr))
    return sparse.COO(np.stack([rows, matrix.indices]), matrix.data, shape=matrix.shape,
                      has_duplicates=False, sorted=True, cache=False)


def to_dask(layer: AffineMap, row_chunks: int | None = None, *,
            max_bytes: int | None = DEFAULT_MAX_BYTES) -> Any:
    """``layer.matrix()`` as a ``dask.array`` whose row chunks are built when computed.

    Parameters
    ----------
    layer : AffineMap
        Any layer object.
    row_chunks : int, optional
        Rows per chunk, rounded down to whole channels (at least one) for convolutions;
        default: chunks of about :data:`convmatrix.analysis.blocks.BLOCK_BYTES`.
    max_bytes : int or None, optional
        Refuse now (:class:`~convmatrix.ConvMatrixError`) when one chunk — for kinds without
        row blocks, the whole matrix — is estimated above this many bytes (None: no guard);
        the chunk builds are guarded by it too.

    Returns
    -------
    dask.array.Array, shape ``layer.matrix_shape``
        Chunks are pydata ``sparse.COO`` arrays built from
        :func:`convmatrix.analysis.blocks.block_plan`, one task per chunk, so ``C @ X``, ``C.T @ Y``
        and reductions run on any dask scheduler without the whole matrix in one place.

    Notes
    -----
    The array is lazy: every ``compute()`` builds the chunks it needs again, which streams a
    matrix larger than memory through one chunk per worker thread. For repeated products,
    ``C = layer.to_dask().persist()`` (dask's own way) builds every chunk once and keeps it —
    in this process on the local schedulers, spread over the workers' memory on a
    ``dask.distributed`` cluster — so later products only multiply. For one product of a
    matrix too large for one machine, run on a ``distributed.LocalCluster`` (or any cluster)
    with worker processes: each task builds one chunk, multiplies it and drops it, and every
    worker stays within its ``memory_limit`` when the chunks are smaller than it
    (``row_chunks``). A matrix-free product (:meth:`~convmatrix.Layer.operator`) is still
    10–100× faster than any stored matrix for convolutions: dask is for reductions, slicing
    and workflows that need the entries.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.ones((2, 1, 2, 2)), (1, 4, 4))
    >>> C = conv.to_dask(row_chunks=9)
    >>> C.chunks[0]
    (9, 9)
    >>> x = np.arange(16.0)
    >>> bool(np.allclose((C @ x).compute(), conv.matrix() @ x))
    True
    >>> C = C.persist()  # chunks built once, kept for the next products
    >>> bool(np.allclose((C.T @ (C @ x)).compute(), conv.matrix().T @ (conv.matrix() @ x)))
    True
    """
    da = _optional("dask.array")
    dask = _optional("dask")
    sparse = _optional("sparse")
    step = block_rows(layer, row_chunks)
    rows, cols = layer.matrix_shape
    dtype = np.dtype(layer.dtype)
    meta = sparse.COO.from_numpy(np.zeros((0, 0), dtype=dtype))
    parts = [da.from_delayed(dask.delayed(_coo)(build), shape=(stop - start, cols),
                             dtype=dtype, meta=meta)
             for start, stop, build in block_plan(layer, step, max_bytes=max_bytes)]
    if not parts:
        raise ConvMatrixError(f"{layer!r} has no rows")
    array = parts[0] if len(parts) == 1 else da.concatenate(parts, axis=0)
    if array.shape != (rows, cols):
        raise AssertionError(f"chunks cover {array.shape}, not {(rows, cols)}")
    return array
