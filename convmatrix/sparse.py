"""The exact scipy.sparse matrix of a convolution, and of its transpose, from the index table."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.indices import SpatialPattern, index_table
from convmatrix.spec import ConvSpec, conv_spec, conv_transpose_spec
from convmatrix.typing import IntOrSeq, PaddingArg, PaddingMode, SparseFormat

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SparseFormat",
    "conv_matrix",
    "conv_transpose_matrix",
    "estimate_nbytes",
    "spec_matrix",
]

DEFAULT_MAX_BYTES: int = 4 * 2**30
"""Largest matrix (in bytes of data, indices and pointers) built unless ``max_bytes`` says more."""

_INT32_MAX = int(np.iinfo(np.int32).max)
_THREAD_MIN_NNZ = 1 << 22  # below this, one thread fills faster than a pool starts
_MAX_THREADS = 4
_CHUNK_ENTRIES = 1 << 18  # block entries laid out per vectorised step
_SPARSE_DTYPES = frozenset(np.dtype(t) for t in (
    np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
    np.uint64, np.float32, np.float64, np.longdouble, np.complex64, np.complex128,
    np.clongdouble,
))


def _as_weight(weight: Any) -> np.ndarray:
    """Return the weight as a numeric ndarray, or raise a TypeError naming what is allowed."""
    array = np.asarray(weight)
    if array.dtype not in _SPARSE_DTYPES:
        hint = ""
        if array.dtype == object:
            hint = "; for SymPy symbols use convmatrix.symbolic.conv_matrix"
        elif array.dtype == np.float16:
            hint = "; scipy.sparse has no float16: cast the weight to float32"
        raise TypeError(
            f"`weight` has dtype {array.dtype}, which scipy.sparse cannot store; use bool, "
            f"integer, float32/float64 or complex{hint}"
        )
    return array


def _index_dtype(nnz: int, shape: tuple[int, int]) -> type[np.signedinteger[Any]]:
    return np.int32 if max(nnz, *shape) <= _INT32_MAX else np.int64


def _builds_rows_of_transpose(transpose: bool, format: str) -> bool:
    """Whether the requested layout is built from the rows of ``Cᵀ`` (input pixels)."""
    return transpose == (format in ("csr", "coo"))


def estimate_nbytes(
    spec: ConvSpec,
    dtype: Any = np.float64,
    *,
    transpose: bool = False,
    format: SparseFormat | None = None,
) -> tuple[int, int]:
    """Upper bound of stored entries and bytes of a layer's matrix, in closed form.

    Parameters
    ----------
    spec : ConvSpec
        The convolution.
    dtype : dtype, optional
        The weight dtype (the matrix stores the same).
    transpose, format : optional
        As in :func:`spec_matrix`: which matrix and layout (the pointer array has one entry per
        row of the compressed orientation).

    Returns
    -------
    nnz : int
        Stored entries (exact for zero padding; an upper bound for the other modes).
    nbytes : int
        Bytes of data, indices and pointers.

    Examples
    --------
    >>> from convmatrix.spec import conv_spec
    >>> estimate_nbytes(conv_spec((64, 64, 3, 3), (64, 56, 56), padding=1))
    (112869376, 1355235332)
    """
    format = format or ("csc" if transpose else "csr")
    nnz = spec.nnz_upper_bound()
    shape = spec.matrix_shape
    index_size = np.dtype(_index_dtype(nnz, shape)).itemsize
    pointers = shape[1] if _builds_rows_of_transpose(transpose, format) else shape[0]
    nbytes = nnz * (np.dtype(dtype).itemsize + index_size) + (pointers + 1) * index_size
    if format == "coo":
        nbytes += nnz * index_size  # the row indices COO adds
    return nnz, nbytes


def _guard(spec: ConvSpec, dtype: np.dtype[Any], max_bytes: int | None, transpose: bool,
           format: str) -> None:
    if max_bytes is None:
        return
    nnz, nbytes = estimate_nbytes(spec, dtype, transpose=transpose,
                                  format=format)  # type: ignore[arg-type]
    if nbytes > max_bytes:
        raise ConvMatrixError(
            f"the matrix {spec.matrix_shape} would hold about {nnz:,} stored entries, "
            f"{nbytes / 2**30:.2f} GiB as {dtype} {format.upper()}, over `max_bytes` "
            f"(={max_bytes / 2**30:.2f} GiB); pass a larger max_bytes (or None) to build it"
        )


def _assemble(
    pattern: SpatialPattern,
    block_weights: np.ndarray,
    col_channel_base: np.ndarray,
    n_col_channels: int,
) -> sp.csr_array:
    """Expand one channel pair's pattern to the full CSR matrix, writing final arrays once.

    Row ``(a, r)`` of the result (``a`` a row channel, ``r`` a pixel of the pattern) holds, for
    each column channel ``col_channel_base[a] + j`` (``j < B``) in order, the pattern row ``r``
    with values ``block_weights[a, j, taps]``. Every row channel repeats the same layout, so
    the block of row channel 0 (``L = B·nnz(pattern)`` entries) is laid out once, straight into
    the final ``indices``, with the positions to gather its weights from; every other row
    channel is then one broadcast add (indices) and one ``take`` (data).
    """
    n_row_channels, b, n_taps = block_weights.shape
    rows, q, e = pattern.n_rows, pattern.n_cols, pattern.nnz
    block_len = b * e
    nnz = n_row_channels * block_len
    shape = (n_row_channels * rows, n_col_channels * q)
    idx_t = _index_dtype(nnz, shape)

    indptr = np.empty(shape[0] + 1, dtype=idx_t)
    indptr[:-1].reshape(n_row_channels, rows)[...] = (
        np.arange(n_row_channels, dtype=np.int64)[:, None] * block_len
        + b * pattern.indptr[:-1][None, :]
    )
    indptr[-1] = nnz
    indices = np.empty(nnz, dtype=idx_t)
    data = np.empty(nnz, dtype=block_weights.dtype)
    indices_2d = indices.reshape(n_row_channels, block_len)
    data_2d = data.reshape(n_row_channels, block_len)
    col_offsets = col_channel_base.astype(np.int64) * q

    first = indices_2d[0] if n_row_channels else np.empty(0, dtype=idx_t)
    block_src = np.empty(block_len, dtype=np.intp)
    if pattern.injective:
        src_entry, src_step = pattern.tap_ids, n_taps
        source = block_weights.reshape(n_row_channels, b * n_taps)
    else:
        src_entry, src_step = np.arange(e, dtype=np.intp), e
        source = _merged_weights(pattern, block_weights)
    cols = pattern.indices.astype(idx_t) + (col_offsets[0] if n_row_channels else 0)
    col_shift = np.arange(b, dtype=idx_t)[None, :, None] * q
    src_shift = np.arange(b, dtype=np.intp)[None, :, None] * src_step
    # Row r of the block is a contiguous (B, len(r)) span starting at B·indptr[r]. Rows of equal
    # length are laid out together, a bounded chunk of rows at a time (chunks run on threads).
    row_len = pattern.row_lengths
    chunks = []
    for length in np.unique(row_len[row_len > 0]).tolist():
        rows_of_length = np.flatnonzero(row_len == length)
        step = max(1, _CHUNK_ENTRIES // (b * length))
        chunks += [(length, rows_of_length[lo:lo + step])
                   for lo in range(0, rows_of_length.size, step)]

    def lay_out(chunk: tuple[int, np.ndarray]) -> None:
        length, these = chunk
        entries = pattern.indptr[these][:, None] + np.arange(length)
        span = (b * pattern.indptr[these])[:, None] + np.arange(b * length)
        first[span] = (cols[entries][:, None, :] + col_shift).reshape(span.shape)
        block_src[span] = (src_entry[entries][:, None, :] + src_shift).reshape(span.shape)

    _run_parallel(lay_out, chunks, block_len)
    deltas = (col_offsets[1:] - col_offsets[0]).astype(idx_t)[:, None]

    def fill(channels: slice) -> None:
        lo, hi, _ = channels.indices(n_row_channels)
        later = slice(max(lo, 1), hi)  # row channel 0 holds its indices already
        np.add(first[None, :], deltas[later.start - 1:later.stop - 1], out=indices_2d[later])
        np.take(source[channels], block_src, axis=1, out=data_2d[channels], mode="clip")

    _run_parallel(fill, _channel_slices(n_row_channels), nnz)

    matrix = sp.csr_array(shape, dtype=data.dtype)
    matrix.data, matrix.indices, matrix.indptr = data, indices, indptr
    matrix.has_sorted_indices = True
    matrix.has_canonical_format = True
    return matrix


def _run_parallel(work: Callable[[Any], None], parts: list[Any], size: int) -> None:
    """Call ``work`` on every part, on several threads when ``size`` (entries) is large.

    The numpy kernels doing the work (ufuncs, ``take``, fancy assignment) release the GIL, and
    the parts write disjoint regions of the output, so threads split the memory-bound work.
    """
    workers = min(_MAX_THREADS, os.cpu_count() or 1, len(parts))
    if size < _THREAD_MIN_NNZ or workers < 2:
        for part in parts:
            work(part)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(work, part) for part in parts]:
            future.result()


def _channel_slices(n_row_channels: int) -> list[slice]:
    """Split row channels into a few contiguous slices, one per thread."""
    workers = max(1, min(_MAX_THREADS, os.cpu_count() or 1, n_row_channels))
    bounds = np.linspace(0, n_row_channels, workers + 1).astype(int)
    return [slice(lo, hi) for lo, hi in itertools.pairwise(bounds.tolist()) if hi > lo]


def _merged_weights(pattern: SpatialPattern, block_weights: np.ndarray) -> np.ndarray:
    """Per-entry weight sums ``(A, B·nnz)`` for patterns whose entries merge several taps.

    Summed with ``np.add.reduceat`` in the weight's own dtype, so integer (uint64 included)
    and long-double weights stay exact.
    """
    n_row_channels, b, n_taps = block_weights.shape
    flat = block_weights.reshape(n_row_channels * b, n_taps)
    if pattern.nnz == 0:
        return np.empty((n_row_channels, 0), dtype=block_weights.dtype)
    summed = np.add.reduceat(flat[:, pattern.tap_ids], pattern.tap_ptr[:-1], axis=1,
                             dtype=block_weights.dtype)  # (A·B, nnz)
    return summed.reshape(n_row_channels, b * pattern.nnz)


def _forward_blocks(spec: ConvSpec, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Block weights and column-channel offsets for the rows of ``C`` (output channels)."""
    out_per_group = spec.out_channels // spec.groups
    in_per_group = spec.in_channels // spec.groups
    blocks = weight.reshape(spec.out_channels, in_per_group, -1)
    base = (np.arange(spec.out_channels) // out_per_group) * in_per_group
    return blocks, base


def _transposed_blocks(spec: ConvSpec, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Block weights and column-channel offsets for the rows of ``Cᵀ`` (input channels)."""
    g = spec.groups
    out_per_group = spec.out_channels // g
    in_per_group = spec.in_channels // g
    grouped = weight.reshape(g, out_per_group, in_per_group, -1)
    blocks = grouped.transpose(0, 2, 1, 3).reshape(spec.in_channels, out_per_group, -1)
    base = (np.arange(spec.in_channels) // in_per_group) * out_per_group
    return blocks, base


def spec_matrix(
    spec: ConvSpec,
    weight: Any,
    *,
    transpose: bool = False,
    format: SparseFormat | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> sp.sparray:
    """Matrix ``C`` of a convolution given as a :class:`ConvSpec` (or ``Cᵀ`` if ``transpose``).

    This is the builder behind :func:`conv_matrix` and :func:`conv_transpose_matrix`, for
    callers (framework adapters, the symbolic module) that already hold a spec.

    Parameters
    ----------
    spec : ConvSpec
        The forward convolution.
    weight : array_like, shape ``spec.weight_shape``
        Numeric weight in torch's convolution layout ``(C_out, C_in // groups, *k)``.
    transpose : bool, optional
        Return ``Cᵀ`` instead of ``C``.
    format : {"csr", "csc", "coo"}, optional
        Layout of the returned matrix. Default: ``"csr"`` for ``C`` and ``"csc"`` for ``Cᵀ``
        (the free transposed view); CSR of ``Cᵀ`` and CSC of ``C`` are built directly from the
        transposed index pattern, never by converting.
    max_bytes : int or None, optional
        Refuse to build a matrix estimated larger than this; None disables the guard.

    Returns
    -------
    scipy.sparse array
        Canonical (sorted indices, no duplicates); dtype of ``weight``.
    """
    w = _as_weight(weight)
    if w.shape != spec.weight_shape:
        raise ConvMatrixError(
            f"`weight` has shape {w.shape} but the layer needs {spec.weight_shape}"
        )
    if format is None:
        format = "csc" if transpose else "csr"
    if format not in ("csr", "csc", "coo"):
        raise ConvMatrixError(f"`format` (={format!r}) must be 'csr', 'csc' or 'coo'")
    _guard(spec, w.dtype, max_bytes, transpose, format)
    table = index_table(spec)
    # rows of C are output pixels; rows of Cᵀ are input pixels
    if _builds_rows_of_transpose(transpose, format):
        blocks, base = _transposed_blocks(spec, w)
        csr = _assemble(table.transposed_pattern, blocks, base, spec.out_channels)
    else:
        blocks, base = _forward_blocks(spec, w)
        csr = _assemble(table.pattern, blocks, base, spec.in_channels)
    if format == "csc":
        return csr.T  # free: the CSR of the other orientation is this one's CSC
    if format == "coo":
        return csr.tocoo()
    return csr


def conv_matrix(
    weight: Any,
    input_shape: Sequence[int],
    *,
    stride: IntOrSeq = 1,
    padding: PaddingArg = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
    padding_mode: PaddingMode = "zeros",
    format: SparseFormat = "csr",
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> sp.sparray:
    """Sparse matrix ``C`` with ``C @ x.ravel() == conv(x).ravel()`` (torch semantics).

    Parameters
    ----------
    weight : array_like, shape ``(C_out, C_in // groups, *kernel_size)``
        torch's ``ConvNd.weight`` layout; bool, integer, float or complex. Its dtype is the
        matrix's dtype (integer weights give an exact integer matrix).
    input_shape : sequence of int
        One sample, channels first: ``(C_in, *spatial)``; 1, 2, 3 (or more) spatial axes.
    stride, dilation : int or sequence of int, optional
        Positive, per spatial axis or shared.
    padding : int, sequence, {"valid", "same"}, optional
        An int, one int per axis, one ``(before, after)`` pair per axis, or a string (torch's
        "same": stride 1 only, the odd extra pad goes after).
    groups : int, optional
        Grouped convolution; ``groups == C_in`` is depthwise.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, optional
        torch's padding modes, each an exact linear map: where several taps read the same input
        pixel their weights add into one entry.
    format : {"csr", "csc", "coo"}, optional
        Layout of the result; ``"csc"`` is built directly, not by conversion.
    max_bytes : int or None, optional
        Refuse matrices estimated above this many bytes (default 4 GiB); None disables.

    Returns
    -------
    C : (C_out·∏out, C_in·∏in) scipy.sparse.csr_array
        Canonical CSR (sorted indices, no duplicates). Index arrays are int32 when every
        index and count fits, int64 otherwise.

    Raises
    ------
    ConvMatrixError
        Invalid geometry (a ``ValueError``), raised before anything large is allocated.
    TypeError
        A weight dtype that scipy.sparse cannot store.

    Notes
    -----
    With flat C-order indices, output pixel ``o`` of channel ``c_o`` reads, through tap ``t``,
    the input pixel ``o·s − p_before + t·d`` (per axis) of every channel ``c_i`` in its group::

        C[c_o·∏out + o, c_i·∏in + i] = Σ_{t : i(o, t) = i} weight[c_o, c_i mod (C_in/g), t]

    The stored pattern is the layer's connectivity: it does not depend on the weight values, so
    zero weights are stored as explicit zeros (call ``C.eliminate_zeros()`` to drop them).
    The transposed convolution is ``C.T``.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> C = cm.conv_matrix(np.ones((1, 1, 2, 2), dtype=int), (1, 3, 3))
    >>> (C @ np.ones(9, dtype=int)).reshape(2, 2)
    array([[4, 4],
           [4, 4]])
    >>> x = np.arange(10.0)
    >>> w = np.array([[[1.0, -2.0, 0.5]]])
    >>> bool(np.allclose(cm.conv_matrix(w, (1, 10)) @ x, np.correlate(x, w[0, 0], "valid")))
    True
    """
    w = _as_weight(weight)
    spec = conv_spec(w.shape, input_shape, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, padding_mode=padding_mode)
    return spec_matrix(spec, w, format=format, max_bytes=max_bytes)


def conv_transpose_matrix(
    weight: Any,
    input_shape: Sequence[int],
    *,
    stride: IntOrSeq = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
    format: SparseFormat = "csc",
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> sp.sparray:
    """Sparse matrix of a transposed convolution (torch ``conv_transposeNd``): ``Cᵀ``.

    ``C`` is the forward convolution from the transposed layer's output back to its input,
    with the same weight array, stride, padding, dilation and groups (see
    :func:`convmatrix.spec.conv_transpose_spec`); the transposed convolution is its adjoint.

    Parameters
    ----------
    weight : array_like, shape ``(C_in, C_out // groups, *kernel_size)``
        torch's ``ConvTransposeNd.weight`` layout.
    input_shape : sequence of int
        One sample of the transposed layer's input, ``(C_in, *spatial)``.
    stride, dilation : int or sequence of int, optional
        Positive.
    padding : int, sequence of int or of (before, after) pairs, optional
        Cropped from the output, as torch's ``padding``.
    output_padding : int or sequence of int, optional
        Extra output size at the end; must be below ``max(stride, dilation)`` per axis.
    groups : int, optional
        Grouped transposed convolution.
    format : {"csc", "csr", "coo"}, optional
        ``"csc"`` (default) is the free transposed view of the forward CSR; ``"csr"`` is built
        directly from the transposed index pattern (no conversion).
    max_bytes : int or None, optional
        Refuse matrices estimated above this many bytes; None disables.

    Returns
    -------
    CT : (C_out·∏out, C_in·∏in) scipy.sparse array
        With ``CT @ y.ravel() == conv_transpose(y).ravel()``.

    Notes
    -----
    Per axis the output size is ``(n − 1)·s − p_before − p_after + d·(k − 1) +
    output_padding + 1``. Where kernel taps of neighbouring inputs land on the same output
    pixel their contributions add: the source of the ``1 2 1`` pattern below and of
    checkerboard artifacts.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> CT = cm.conv_transpose_matrix(np.ones((1, 1, 2, 2), dtype=int), (1, 2, 2))
    >>> (CT @ np.ones(4, dtype=int)).reshape(3, 3)
    array([[1, 2, 1],
           [2, 4, 2],
           [1, 2, 1]])
    """
    w = _as_weight(weight)
    spec = conv_transpose_spec(w.shape, input_shape, stride=stride, padding=padding,
                               output_padding=output_padding, dilation=dilation, groups=groups)
    return spec_matrix(spec, w, transpose=True, format=format, max_bytes=max_bytes)
