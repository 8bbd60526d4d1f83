"""The exact scipy.sparse matrix of a convolution, and of its transpose, from its layout."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.budget import (
    DEFAULT_MAX_BYTES,
    check_matrix_budget,
    compressed_rows,
    estimate_nbytes,
)
from convmatrix.builder.layout import (
    Layout,
    block_weights,
    box_values,
    layout,
    write_data,
    write_indices,
    write_indptr,
)
from convmatrix.builder.weights import as_weight
from convmatrix.cache import peek
from convmatrix.geometry.indices import AxisRows
from convmatrix.geometry.spec import ConvSpec, conv_spec, conv_transpose_spec
from convmatrix.geometry.view import direction_keyword
from convmatrix.typing import Direction, IntOrSeq, PaddingArg, PaddingMode, SparseFormat

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SparseFormat",
    "conv_matrix",
    "conv_transpose_matrix",
    "estimate_nbytes",
    "spec_matrix",
]

def _csr(shape: tuple[int, int], data: np.ndarray, indices: np.ndarray,
         indptr: np.ndarray) -> sp.csr_array:
    """Wrap finished canonical CSR arrays without scipy re-checking or copying them."""
    return _wrap("csr", shape, data, indices, indptr)  # type: ignore[return-value]


def _wrap(format: str, shape: tuple[int, int], data: np.ndarray, indices: np.ndarray,
          indptr: np.ndarray) -> sp.sparray:
    """A canonical compressed array around the given arrays (a copy of an empty template)."""
    template = _template(format, shape)
    cls: Any = type(template)
    matrix = cls.__new__(cls)
    matrix.__dict__.update(template.__dict__)  # a shallow copy, as copy.copy makes, but cheaper
    matrix.data, matrix.indices, matrix.indptr = data, indices, indptr
    matrix.has_sorted_indices = True
    matrix.has_canonical_format = True
    return matrix


@functools.lru_cache(maxsize=64)
def _template(format: str, shape: tuple[int, int]) -> sp.sparray:
    """An empty CSR/CSC array of a shape, its arrays dropped (copying it skips scipy's checks)."""
    cls = sp.csr_array if format == "csr" else sp.csc_array
    template = cls(shape)  # allocates its (empty) index pointers once
    empty = np.empty(0, dtype=np.int32)
    template.data, template.indices, template.indptr = np.empty(0), empty, empty
    return template


def _like_arrays(like: Any, lay: Layout, format: str,
                 name: str = "like") -> tuple[np.ndarray, np.ndarray]:
    """The ``(indptr, indices)`` a refresh reuses, checked against the layout.

    A CSC matrix's arrays are those of the CSR of its transpose, which is what the layout
    describes, so both formats share them as they are.
    """
    if format == "coo":
        raise ConvMatrixError(f"`{name}` works with format 'csr' or 'csc', not 'coo'")
    expected_shape = lay.shape if format == "csr" else lay.shape[::-1]
    indptr, indices = getattr(like, "indptr", None), getattr(like, "indices", None)
    if (getattr(like, "format", None) != format or tuple(like.shape) != expected_shape
            or not isinstance(indptr, np.ndarray) or not isinstance(indices, np.ndarray)
            or indices.shape != (lay.nnz,) or indices.dtype != lay.index_dtype
            or indptr.shape != (lay.shape[0] + 1,) or int(indptr[-1]) != lay.nnz):
        raise ConvMatrixError(
            f"`{name}` ({getattr(like, 'format', type(like).__name__)} "
            f"{getattr(like, 'shape', '')}) is not a matrix built by convmatrix for this layer "
            f"as {format.upper()} "
            f"{expected_shape} with {lay.nnz:,} stored entries; build one first without `{name}`"
        )
    # its row pointers must be this layout's (O(rows), far below the entries): a pattern
    # edited in place, e.g. by eliminate_zeros(), changes them
    expected = lay.small.indptr if lay.small is not None else None
    if expected is None:
        expected = np.empty(lay.shape[0] + 1, dtype=lay.index_dtype)
        write_indptr(lay, expected)
    if not np.array_equal(indptr, expected):
        raise ConvMatrixError(
            f"`{name}` has the right shape but not this layer's pattern (its row pointers "
            f"differ: was it edited in place, e.g. by eliminate_zeros()?); build without `{name}`"
        )
    return indptr, indices


def spec_matrix(
    spec: ConvSpec,
    weight: Any,
    *,
    direction: Direction = "forward",
    format: SparseFormat | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    like: sp.sparray | None = None,
    out: sp.sparray | None = None,
    transpose: Any = None,
) -> sp.sparray:
    """Matrix ``C`` of a convolution given as a :class:`ConvSpec` (or ``Cᵀ``: ``"adjoint"``).

    This is the builder behind :func:`conv_matrix` and :func:`conv_transpose_matrix`, for
    callers (framework adapters, the symbolic module) that already hold a spec.

    Parameters
    ----------
    spec : ConvSpec
        The forward convolution.
    weight : array_like, shape ``spec.weight_shape``
        Numeric weight in torch's convolution layout ``(C_out, C_in // groups, *k)``.
    direction : {"forward", "adjoint"}, optional
        ``"forward"``: ``C``; ``"adjoint"``: ``Cᵀ`` (the transposed convolution's matrix).
    format : {"csr", "csc", "coo"}, optional
        Layout of the returned matrix. Default: ``"csr"`` for ``C`` and ``"csc"`` for ``Cᵀ``
        (the free transposed view); CSR of ``Cᵀ`` and CSC of ``C`` are built directly from the
        transposed index pattern, never by converting.
    max_bytes : int or None, optional
        Refuse to build a matrix estimated larger than this; None disables the guard.
    like : scipy.sparse array, optional
        Value refresh: a matrix this function returned for the same ``spec``, ``direction``
        and ``format`` (``"csr"`` or ``"csc"``), e.g. with other weight values. The result
        shares its ``indices`` and ``indptr`` arrays (no copy; the pattern never depends on
        the values) and only the new values are gathered. ``like`` itself is not modified;
        editing the shared index arrays in place later (e.g. ``eliminate_zeros()``) changes
        both matrices, so copy one first if you need that.
    out : scipy.sparse array, optional
        In-place value refresh: a matrix as for ``like`` whose dtype is the weight's; the new
        values are written into ``out.data`` (no allocation at all) and ``out`` is returned.
        Every matrix sharing ``out``'s data sees the new values.
    transpose : bool, optional
        Deprecated: ``transpose=True`` is ``direction="adjoint"``.

    Returns
    -------
    scipy.sparse array
        Canonical (sorted indices, no duplicates); dtype of ``weight``.

    Raises
    ------
    ConvMatrixError
        Shape or format errors; a ``like`` of another layout; with reflect, replicate or
        circular padding, an integer or bool weight whose merged taps (several taps reading one
        pixel add up) sum to a value its dtype cannot hold.

    Notes
    -----
    The builder writes the final CSR arrays directly, one strided box of alike rows at a time
    (see :mod:`convmatrix.builder.layout`); the per-geometry layout it uses is kept in a
    byte-budgeted cache (:func:`convmatrix.cache.clear_cache`,
    :func:`convmatrix.cache.cache_nbytes`).

    Examples
    --------
    >>> import numpy as np
    >>> from convmatrix.geometry.spec import conv_spec
    >>> spec = conv_spec((1, 1, 3, 3), (1, 5, 5), padding=1)
    >>> C = spec_matrix(spec, np.ones((1, 1, 3, 3)))
    >>> C2 = spec_matrix(spec, np.full((1, 1, 3, 3), 2.0), like=C)   # new values, same pattern
    >>> C2.indices is C.indices, bool((C2 - 2 * C).count_nonzero() == 0)
    (True, True)
    """
    direction = direction_keyword(direction, transpose)
    w = as_weight(weight)
    if w.shape != spec.weight_shape:
        raise ConvMatrixError(
            f"`weight` has shape {w.shape} but the layer needs {spec.weight_shape}"
        )
    if format is None:
        format = "csc" if direction == "adjoint" else "csr"
    if format not in ("csr", "csc", "coo"):
        raise ConvMatrixError(f"`format` (={format!r}) must be 'csr', 'csc' or 'coo'")
    # rows of C are output pixels; rows of Cᵀ are input pixels
    rows: AxisRows = compressed_rows(direction, format)
    known = peek(("layout", spec, rows))
    if like is None:
        check_matrix_budget(spec, w.dtype, max_bytes, direction=direction, format=format,
                            layout=known)
    lay = layout(spec, rows) if known is None else known
    if out is not None:
        if like is not None:
            raise ConvMatrixError("give `like` or `out`, not both (`out` is refreshed in place)")
        if getattr(out, "dtype", None) != w.dtype:
            raise ConvMatrixError(
                f"`out` has dtype {getattr(out, 'dtype', type(out).__name__)} but the weight "
                f"has {w.dtype}: an in-place refresh keeps the matrix's dtype")
        _like_arrays(out, lay, format, "out")  # the same pattern, or a named refusal
        write_data(lay, box_values(lay, block_weights(spec, w, rows)), out.data)
        return out
    reuse = None if like is None else _like_arrays(like, lay, format)
    small = lay.small
    fast = None if reuse is not None or small is None else small.values(w, lay.padding_mode)
    if small is not None and fast is not None:
        # a small layer: copy its finished index arrays, gather (and sum) its values
        return _as_format(_csr(lay.shape, fast, small.indices.copy(), small.indptr.copy()),
                          format)
    values = box_values(lay, block_weights(spec, w, rows))  # small; may refuse merged sums
    data = np.empty(lay.nnz, dtype=w.dtype)
    if reuse is None and small is not None:
        indptr, indices = small.indptr.copy(), small.indices.copy()
    elif reuse is None:
        indptr = np.empty(lay.shape[0] + 1, dtype=lay.index_dtype)
        indices = np.empty(lay.nnz, dtype=lay.index_dtype)
        write_indptr(lay, indptr)
        write_indices(lay, indices)
    else:
        indptr, indices = reuse
    write_data(lay, values, data)
    return _as_format(_csr(lay.shape, data, indices, indptr), format)


def _as_format(csr: sp.csr_array, format: str) -> sp.sparray:
    if format == "csc":  # free: the CSR of the other orientation is this one's CSC
        return _wrap("csc", csr.shape[::-1], csr.data, csr.indices, csr.indptr)
    if format == "coo":
        return csr.tocoo()
    return csr


_SPECS: dict[Any, ConvSpec] = {}
_SPECS_MAX = 256


def _plain(value: Any) -> Any:
    """``value`` as a hashable key that tells ints, bools and numpy scalars apart.

    Raises TypeError for anything but ints, strings and (nested) tuples/lists of them, so
    only plain Python arguments are memoised (validation always runs on the rest).
    """
    kind = type(value)
    if kind is int or kind is str:
        return value
    if kind is tuple or kind is list:
        if all(type(v) is int for v in value):  # the common case, without recursion
            return (kind is tuple, *value)
        return (kind is tuple, *(_plain(v) for v in value))
    raise TypeError(kind)


def _memo_spec(make: Callable[..., ConvSpec], weight_shape: tuple[int, ...],
               input_shape: Any, **geometry: Any) -> ConvSpec:
    """``make(weight_shape, input_shape, **geometry)``, remembered for plain arguments.

    Validation of the same plain arguments always gives the same spec (or the same error,
    which is never remembered), so small repeated builds skip it.
    """
    try:
        key = (make.__name__, weight_shape, _plain(input_shape),
               *(_plain(v) for v in geometry.values()))
    except TypeError:
        return make(weight_shape, input_shape, **geometry)
    spec = _SPECS.get(key)
    if spec is None:
        spec = make(weight_shape, input_shape, **geometry)
        if len(_SPECS) >= _SPECS_MAX:
            _SPECS.pop(next(iter(_SPECS)))
        _SPECS[key] = spec
    return spec


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
        Invalid geometry (a ``ValueError``), raised before anything large is allocated; also an
        integer or bool weight whose merged padding taps sum to a value its dtype cannot hold
        (the sums are exact or refused, never wrapped).
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
    w = as_weight(weight)
    spec = _memo_spec(conv_spec, w.shape, input_shape, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, padding_mode=padding_mode)
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
    :func:`convmatrix.geometry.spec.conv_transpose_spec`); the transposed convolution is its
    adjoint.

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
    w = as_weight(weight)
    spec = _memo_spec(conv_transpose_spec, w.shape, input_shape, stride=stride, padding=padding,
                      output_padding=output_padding, dilation=dilation, groups=groups)
    return spec_matrix(spec, w, direction="adjoint", format=format, max_bytes=max_bytes)
