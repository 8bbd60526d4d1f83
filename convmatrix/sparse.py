"""The exact scipy.sparse matrix of a convolution, and of its transpose, from the index table."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.indices import SpatialPattern, index_table
from convmatrix.spec import ConvSpec, IntOrSeq, PaddingArg, conv_spec, conv_transpose_spec

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SparseFormat",
    "conv_matrix",
    "conv_transpose_matrix",
    "estimate_nbytes",
    "spec_matrix",
]

SparseFormat = Literal["csr", "csc", "coo"]
DEFAULT_MAX_BYTES: int = 4 * 2**30
"""Largest matrix (in bytes of data, indices and pointers) built unless ``max_bytes`` says more."""

_INT32_MAX = int(np.iinfo(np.int32).max)
_THREAD_MIN_NNZ = 1 << 22  # below this, one thread fills faster than a pool starts
_MAX_THREADS = 4
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


def estimate_nbytes(spec: ConvSpec, dtype: Any = np.float64) -> tuple[int, int]:
    """Upper bound of stored entries and bytes of the CSR matrix of ``spec``, in closed form.

    Parameters
    ----------
    spec : ConvSpec
        The convolution.
    dtype : dtype, optional
        The weight dtype (the matrix stores the same).

    Returns
    -------
    nnz : int
        Stored entries (exact for zero padding; an upper bound for the other modes).
    nbytes : int
        Bytes of data, indices and row pointers.

    Examples
    --------
    >>> from convmatrix.spec import conv_spec
    >>> estimate_nbytes(conv_spec((64, 64, 3, 3), (64, 56, 56), padding=1))
    (113246208, 1358967300)
    """
    nnz = spec.nnz_upper_bound()
    shape = spec.matrix_shape
    index_size = np.dtype(_index_dtype(nnz, shape)).itemsize
    nbytes = nnz * (np.dtype(dtype).itemsize + index_size) + (max(shape) + 1) * index_size
    return nnz, nbytes


def _guard(spec: ConvSpec, dtype: np.dtype[Any], max_bytes: int | None) -> None:
    if max_bytes is None:
        return
    nnz, nbytes = estimate_nbytes(spec, dtype)
    if nbytes > max_bytes:
        raise ConvMatrixError(
            f"the matrix {spec.matrix_shape} would hold about {nnz:,} stored entries, "
            f"{nbytes / 2**30:.2f} GiB as {dtype} CSR, over `max_bytes` "
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
    with values ``block_weights[a, j, taps]``. Because every row channel repeats the same block
    layout, the column indices and the gather positions are computed once for a block of size
    ``L = B·nnz(pattern)`` and then written for all row channels with one broadcast each.
    """
    n_row_channels, b, n_taps = block_weights.shape
    rows, q, e = pattern.n_rows, pattern.n_cols, pattern.nnz
    block_len = b * e
    nnz = n_row_channels * block_len
    shape = (n_row_channels * rows, n_col_channels * q)
    idx_t = _index_dtype(nnz, shape)

    row_len = pattern.row_lengths
    # where entry e of the pattern lands in the block, for column channel j
    entry_row = np.repeat(np.arange(rows, dtype=np.int64), row_len)
    within = np.arange(e, dtype=np.int64) - pattern.indptr[entry_row]
    j = np.arange(b, dtype=np.int64)[:, None]
    dest = (b * pattern.indptr[entry_row] + within)[None, :] + j * row_len[entry_row][None, :]
    block_cols = np.empty(block_len, dtype=idx_t)
    block_cols[dest] = j * q + pattern.indices[None, :]
    block_src = np.empty(block_len, dtype=np.intp)
    if pattern.injective:
        block_src[dest] = j * n_taps + pattern.tap_ids[None, :]
        source = block_weights.reshape(n_row_channels, b * n_taps)
    else:
        block_src[dest] = j * e + np.arange(e)[None, :]
        source = _merged_weights(pattern, block_weights)
    del dest, entry_row, within

    indptr = np.empty(shape[0] + 1, dtype=idx_t)
    indptr[:-1].reshape(n_row_channels, rows)[...] = (
        np.arange(n_row_channels, dtype=np.int64)[:, None] * block_len
        + b * pattern.indptr[:-1][None, :]
    )
    indptr[-1] = nnz
    indices = np.empty(nnz, dtype=idx_t)
    data = np.empty(nnz, dtype=block_weights.dtype)
    col_offsets = (col_channel_base.astype(idx_t) * q)[:, None]
    indices_2d = indices.reshape(n_row_channels, block_len)
    data_2d = data.reshape(n_row_channels, block_len)

    def fill(channels: slice) -> None:
        np.add(block_cols[None, :], col_offsets[channels], out=indices_2d[channels])
        np.take(source[channels], block_src, axis=1, out=data_2d[channels], mode="clip")

    _run_split(fill, n_row_channels, nnz)

    matrix = sp.csr_array(shape, dtype=data.dtype)
    matrix.data, matrix.indices, matrix.indptr = data, indices, indptr
    matrix.has_sorted_indices = True
    matrix.has_canonical_format = True
    return matrix


def _run_split(fill: Callable[[slice], None], n_row_channels: int, nnz: int) -> None:
    """Run ``fill`` over row-channel slices, on several threads for large matrices.

    The two numpy kernels doing the work (``np.add`` and ``np.take``) release the GIL, and the
    slices write disjoint parts of the output, so threads split the memory-bound fill.
    """
    workers = min(_MAX_THREADS, os.cpu_count() or 1, n_row_channels)
    if nnz < _THREAD_MIN_NNZ or workers < 2:
        fill(slice(None))
        return
    bounds = np.linspace(0, n_row_channels, workers + 1).astype(int)
    parts = [slice(lo, hi) for lo, hi in itertools.pairwise(bounds) if hi > lo]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(fill, part) for part in parts]:
            future.result()


def _merged_weights(pattern: SpatialPattern, block_weights: np.ndarray) -> np.ndarray:
    """Per-entry weight sums ``(A, B·nnz)`` for patterns whose entries merge several taps."""
    n_row_channels, b, n_taps = block_weights.shape
    counts = np.ones(pattern.tap_ids.size, dtype=np.int64)
    merge = sp.csr_array((counts, pattern.tap_ids, pattern.tap_ptr),
                         shape=(pattern.nnz, n_taps))
    flat = block_weights.reshape(n_row_channels * b, n_taps)
    summed = (merge @ flat.T).T.astype(block_weights.dtype, copy=False)  # (A·B, nnz)
    return np.ascontiguousarray(summed).reshape(n_row_channels, b * pattern.nnz)


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
    _guard(spec, w.dtype, max_bytes)
    table = index_table(spec)
    # rows of C are output pixels; rows of Cᵀ are input pixels
    build_rows_of_transpose = transpose == (format in ("csr", "coo"))
    if build_rows_of_transpose:
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
    padding_mode: str = "zeros",
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
