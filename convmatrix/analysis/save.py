"""Write a layer's matrix to ``.npz`` or Matrix Market block by block, with bounded memory."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix._files import atomic_write, scratch_directory
from convmatrix._progress import Progress, ProgressArg, check_progress
from convmatrix.analysis.blocks import matrix_blocks, row_view
from convmatrix.builder.budget import DEFAULT_MAX_BYTES
from convmatrix.builder.indexing import index_dtype
from convmatrix.geometry.view import AffineMap, is_affine_map

__all__ = ["save_matrix"]

_COPY_ENTRIES = 1 << 20  # entries converted or formatted per step
_COPY_BYTES = 1 << 22  # bytes copied per step from the temporary files


def save_matrix(layer: AffineMap, path: str | os.PathLike[str], *,
                rows_per_block: int | None = None,
                max_bytes: int | None = DEFAULT_MAX_BYTES,
                progress: ProgressArg = None) -> Path:
    """Write ``layer.matrix()`` to a file without holding more than one row block in memory.

    Parameters
    ----------
    layer : AffineMap
        Any layer object.
    path : str or path-like
        Ending in ``.npz`` (scipy's CSR format: ``scipy.sparse.load_npz`` reads it back as a
        ``csr_array``; stored uncompressed) or ``.mtx`` (Matrix Market coordinate format:
        ``scipy.io.mmread``).
    rows_per_block : int, optional
        As in :meth:`~convmatrix.Layer.matrix_blocks`.
    max_bytes : int or None, optional
        As in :meth:`~convmatrix.Layer.matrix_blocks`: what is held at once (one block; the
        matrix for kinds built whole) is refused above it, before anything is written.
    progress : None, bool or callable, optional
        Progress of the two steps, the rows built (and formatted) into the scratch files, then
        the bytes copied into the file: None shows a bar (``tqdm``) after about 2 s when
        interactive and nothing otherwise; True always, False never; a callable is called as
        ``progress(done, total)`` for the rows, then again from 0 for the bytes. See
        :mod:`convmatrix._progress`.

    Returns
    -------
    pathlib.Path
        The file written.

    Notes
    -----
    Blocks come from :meth:`~convmatrix.Layer.matrix_blocks`; each block's column indices and
    values are appended to temporary files next to ``path`` (converted and formatted in
    steps of a million entries), and only the row pointers (8 bytes a row) stay in memory.
    Once the number of stored entries is known, the headers are written and the temporary
    files copied into a temporary next to ``path`` that is fsynced and renamed onto it, so the
    disk briefly holds the matrix twice and an interrupted or failed save (also a full disk)
    leaves the old file untouched (see :mod:`convmatrix._files`). The file itself may be
    larger than memory: ``max_bytes`` bounds one block (or, for kinds without row blocks, the
    matrix).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.arange(8.0).reshape(2, 1, 2, 2), (1, 4, 4), padding=1)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = cm.save_matrix(conv, pathlib.Path(folder) / "conv.npz", rows_per_block=10)
    ...     (sp.load_npz(path) != conv.matrix()).nnz
    0
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".npz", ".mtx"):
        raise ConvMatrixError(f"`path` (={str(path)!r}) must end in '.npz' or '.mtx'")
    if not is_affine_map(layer):
        raise ConvMatrixError(f"`layer` (={layer!r}) must be a convmatrix layer object")
    progress = check_progress(progress)
    blocks = matrix_blocks(layer, rows_per_block, max_bytes=max_bytes)  # checked now
    target.parent.mkdir(parents=True, exist_ok=True)
    with scratch_directory(target) as folder:
        if suffix == ".npz":
            _write_npz(layer, _counted(blocks, layer, progress), target, folder, progress)
        else:
            _write_mtx(layer, _counted(blocks, layer, progress), target, folder, progress)
    return target


def _counted(blocks: Any, layer: AffineMap, progress: ProgressArg) -> Any:
    """The blocks, advancing a bar of the rows done."""
    with Progress(layer.matrix_shape[0], progress, "rows") as bar:
        for block in blocks:
            yield block
            bar.advance(block.shape[0])


def _copy(source: IO[bytes], stream: IO[bytes], bar: Progress) -> None:
    while chunk := source.read(_COPY_BYTES):
        stream.write(chunk)
        bar.advance(len(chunk))


def _index_dtype(layer: AffineMap) -> np.dtype[Any]:
    """int32 when the column count and an upper bound of stored entries fit it (as scipy)."""
    rows, cols = layer.matrix_shape
    view = row_view(layer)
    bound = view.spec.nnz_upper_bound() if view is not None else rows * cols
    return index_dtype(bound, layer.matrix_shape)


def _append(stream: IO[bytes], array: np.ndarray, dtype: np.dtype[Any]) -> None:
    for start in range(0, array.size, _COPY_ENTRIES):
        stream.write(np.ascontiguousarray(array[start:start + _COPY_ENTRIES], dtype=dtype).data)


def _write_npz(layer: AffineMap, blocks: Any, target: Path, folder: Path,
               progress: ProgressArg) -> None:
    index_dtype = _index_dtype(layer)
    data_dtype = np.dtype(layer.dtype)
    indptr_parts = [np.zeros(1, dtype=np.int64)]
    nnz = 0
    with open(folder / "indices", "wb") as indices, open(folder / "data", "wb") as data:
        for block in blocks:
            _append(indices, block.indices, index_dtype)
            _append(data, block.data, data_dtype)
            indptr_parts.append(block.indptr[1:].astype(np.int64) + nnz)
            nnz += int(block.nnz)
            del block  # the generator builds the next block while this name would hold it
    indptr = np.concatenate(indptr_parts).astype(index_dtype)
    del indptr_parts
    size = (folder / "indices").stat().st_size + (folder / "data").stat().st_size
    with (Progress(size, progress, f"writing {target.name}") as bar,
          atomic_write(target) as stream,
          zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf):
        _member_from_file(zf, "indices.npy", folder / "indices", index_dtype, nnz, bar)
        _member_array(zf, "indptr.npy", indptr)
        _member_array(zf, "format.npy", np.array(b"csr"))
        _member_array(zf, "shape.npy", np.array(layer.matrix_shape, dtype=np.int64))
        _member_from_file(zf, "data.npy", folder / "data", data_dtype, nnz, bar)
        _member_array(zf, "_is_array.npy", np.array(True))


def _member_array(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with zf.open(name, "w", force_zip64=True) as stream:
        np.lib.format.write_array(stream, array, allow_pickle=False)


def _member_from_file(zf: zipfile.ZipFile, name: str, source: Path, dtype: np.dtype[Any],
                      count: int, bar: Progress) -> None:
    """A 1-D ``.npy`` member whose raw values are copied from ``source`` in chunks."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": (count,)}
    with zf.open(name, "w", force_zip64=True) as stream, open(source, "rb") as raw:
        np.lib.format.write_array_header_1_0(stream, header)
        _copy(raw, stream, bar)


def _mtx_field(dtype: np.dtype[Any]) -> tuple[str, str]:
    if dtype.kind == "c":
        return "complex", "%d %d %.17g %.17g"
    if dtype.kind in "biu":
        return "integer", "%d %d %d"
    return "real", "%d %d %.17g"


def _write_mtx(layer: AffineMap, blocks: Any, target: Path, folder: Path,
               progress: ProgressArg) -> None:
    field, fmt = _mtx_field(np.dtype(layer.dtype))
    rows, cols = layer.matrix_shape
    nnz, first_row = 0, 0
    body = folder / "entries"
    with open(body, "wb") as out:
        for block in blocks:
            indptr = block.indptr
            for start in range(0, block.nnz, _COPY_ENTRIES):
                stop = min(start + _COPY_ENTRIES, block.nnz)
                entries = np.arange(start, stop)
                row = np.searchsorted(indptr, entries, side="right") - 1 + first_row + 1
                col = block.indices[start:stop].astype(np.int64) + 1
                values = block.data[start:stop]
                if field == "complex":
                    table = np.column_stack([row, col, values.real, values.imag])
                    np.savetxt(out, table, fmt=fmt)
                elif field == "integer":
                    table = np.column_stack([row, col, values.astype(np.int64)])
                    np.savetxt(out, table, fmt=fmt)
                else:
                    np.savetxt(out, np.column_stack([row, col, values.astype(np.float64)]),
                               fmt=fmt)
            nnz += int(block.nnz)
            first_row += block.shape[0]
            del block, indptr
    with (Progress(body.stat().st_size, progress, f"writing {target.name}") as bar,
          atomic_write(target) as out, open(body, "rb") as entries_file):
        out.write(f"%%MatrixMarket matrix coordinate {field} general\n"
                  f"% written block by block by convmatrix.save_matrix\n"
                  f"{rows} {cols} {nnz}\n".encode("ascii"))
        _copy(entries_file, out, bar)
