"""Memory an operation needs, estimated from shapes alone, and the ``max_bytes`` checks.

One home for the memory budget: the matrix's own size (:func:`estimate_nbytes`, checked by
the builder through :func:`check_matrix_budget`), the validation of every ``max_bytes``
argument (:func:`check_max_bytes`), and what a verification, report or dense print needs.

The command line and :func:`convmatrix.reports.layer.layer_report` check these estimates
against a ``max_bytes`` budget *before* allocating anything, so a layer whose report would
need terabytes (a huge stride or padding blows up the transposed layer's output) is refused in
one line instead of hanging or dying in numpy's allocator. The estimates are deliberately
generous upper bounds (a few copies of every dense array the step makes); the matrix itself
is counted exactly by :func:`estimate_nbytes`.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.indexing import index_dtype
from convmatrix.builder.layout import Layout
from convmatrix.geometry.indices import AxisRows
from convmatrix.geometry.spec import ConvSpec
from convmatrix.geometry.view import direction_keyword
from convmatrix.typing import Direction, SparseFormat

__all__ = [
    "DEFAULT_MAX_BYTES",
    "WORKSPACE_BYTES",
    "apply_nbytes",
    "check_budget",
    "check_matrix_budget",
    "check_max_bytes",
    "compressed_rows",
    "dense_nbytes",
    "estimate_nbytes",
    "explain_nbytes",
    "format_bytes",
    "law_nbytes",
    "matrix_nbytes",
    "nnz_estimate",
    "overlap_nbytes",
    "report_nbytes",
    "stack_report_nbytes",
    "verification_nbytes",
]

WORKSPACE_BYTES: int = 64 * 2**20
"""The most working memory one :func:`~convmatrix.builder.apply.conv_apply` /
:func:`~convmatrix.builder.apply.conv_apply_adjoint` call holds beyond its input and output:
the products run in tiles of samples and output rows whose column matrix and padded input fit
in this many bytes (at least one output row); samples padded whole (or the adjoint's padded
result) take at most this less :data:`~convmatrix.builder.tuning.TILE_BYTES`. Its home is the
budget module: the kernels and :func:`apply_nbytes` read it here at call time, and
:mod:`convmatrix.builder.apply` forwards it (setting ``apply.WORKSPACE_BYTES`` sets it here)."""

DEFAULT_MAX_BYTES: int = 4 * 2**30
"""Largest matrix built (4 GiB of data, indices and pointers) unless ``max_bytes`` says more."""

_DENSE_COPIES = 14  # x, y, a batch of 3 of each, reference outputs, comparison temporaries
_MATRIX_MARGIN = 1.1  # the builder's chunk temporaries on top of the final arrays
_PADDED_COPIES = 3  # the reference's padded input / scatter buffer, and its temporaries
_TABLE_BYTES_PER_ENTRY = 128  # index table (3 int64) + both patterns (indices, taps, pointers)
_FIGURE_BYTES_PER_PIXEL = 48  # overlap heat map: counts, float image, masks, RGBA resampling
_MAP_BYTES_PER_PIXEL = 96  # a stack's overlap verdicts: two count maps, interior, temporaries


def check_max_bytes(max_bytes: Any, name: str = "max_bytes") -> int | None:
    """Validate a ``max_bytes`` budget: a non-negative integer (Python or numpy), or None.

    Parameters
    ----------
    max_bytes : int, numpy integer or None
        The budget; None means no limit. bool, floats and negatives are refused.
    name : str, optional
        The argument's name in the message.

    Returns
    -------
    int or None
        As a Python int.

    Examples
    --------
    >>> check_max_bytes(np.int64(2**30))
    1073741824
    >>> check_max_bytes(1.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    convmatrix._errors.ConvMatrixError: `max_bytes` (=1.5) must be a non-negative int or None...
    """
    if max_bytes is None:
        return None
    value = None
    if not isinstance(max_bytes, bool | np.bool_) and hasattr(max_bytes, "__index__"):
        try:
            value = operator.index(max_bytes)
        except TypeError:  # e.g. a float array, whose __index__ refuses
            value = None
    if value is None or value < 0:
        raise ConvMatrixError(
            f"`{name}` (={max_bytes!r}) must be a non-negative int or None (no limit)")
    return value


def compressed_rows(direction: Direction, format: str) -> AxisRows:
    """The pixels a layout's compressed rows run over: ``"inputs"`` are the rows of ``Cᵀ``.

    CSR (and COO) of ``C`` and CSC of ``Cᵀ`` compress the output pixels; the other two the
    input pixels.

    Examples
    --------
    >>> compressed_rows("adjoint", "csr"), compressed_rows("adjoint", "csc")
    ('inputs', 'outputs')
    """
    return "inputs" if (direction == "adjoint") == (format in ("csr", "coo")) else "outputs"


def estimate_nbytes(
    spec: ConvSpec,
    dtype: Any = np.float64,
    *,
    direction: Direction = "forward",
    format: SparseFormat | None = None,
    transpose: Any = None,
) -> tuple[int, int]:
    """Upper bound of stored entries and bytes of a layer's matrix, in closed form.

    Parameters
    ----------
    spec : ConvSpec
        The convolution.
    dtype : dtype, optional
        The weight dtype (the matrix stores the same).
    direction, format : optional
        As in :func:`spec_matrix`: which matrix and layout (the pointer array has one entry per
        row of the compressed orientation).
    transpose : bool, optional
        Deprecated: ``transpose=True`` is ``direction="adjoint"``.

    Returns
    -------
    nnz : int
        Stored entries (exact for zero padding; an upper bound for the other modes).
    nbytes : int
        Bytes of data, indices and pointers.

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> estimate_nbytes(conv_spec((64, 64, 3, 3), (64, 56, 56), padding=1))
    (112869376, 1355235332)
    """
    direction = direction_keyword(direction, transpose)
    format = format or ("csc" if direction == "adjoint" else "csr")
    return matrix_nbytes(spec.nnz_upper_bound(), spec, dtype, direction, format)


def matrix_nbytes(nnz: int, spec: ConvSpec, dtype: Any, direction: Direction, format: str
                  ) -> tuple[int, int]:
    """``(nnz, bytes)`` of a matrix of ``spec`` holding ``nnz`` entries in ``format``."""
    shape = spec.matrix_shape
    index_size = index_dtype(nnz, shape).itemsize
    pointers = shape[1] if compressed_rows(direction, format) == "inputs" else shape[0]
    nbytes = nnz * (np.dtype(dtype).itemsize + index_size) + (pointers + 1) * index_size
    if format == "coo":
        nbytes += nnz * index_size  # the row indices COO adds
    return nnz, nbytes


def check_matrix_budget(spec: ConvSpec, dtype: np.dtype[Any], max_bytes: Any, *,
                        direction: Direction, format: str, layout: Layout | None = None
                        ) -> None:
    """Refuse to build a matrix whose :func:`estimate_nbytes` is over ``max_bytes``.

    ``layout``, the cached layout of the matrix if there is one, keeps the estimate so that
    repeated builds do not recompute it.

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> check_matrix_budget(conv_spec((1, 1, 3), (1, 9)), np.dtype(np.float64), 64,
    ...                     direction="forward", format="csr")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    convmatrix._errors.ConvMatrixError: the matrix (7, 9) would hold about 21 stored entries, ...
    """
    max_bytes = check_max_bytes(max_bytes)
    if max_bytes is None:
        return
    # the closed-form bound of estimate_nbytes (kept by a cached layout, not recomputed)
    if layout is None:
        nnz, nbytes = matrix_nbytes(spec.nnz_upper_bound(), spec, dtype, direction, format)
    else:
        key = (dtype, direction, format)
        estimate = layout.estimates.get(key)
        if estimate is None:
            estimate = layout.estimates[key] = matrix_nbytes(layout.nnz_upper_bound, spec, dtype,
                                                             direction, format)
        nnz, nbytes = estimate
    if nbytes > max_bytes:
        raise ConvMatrixError(
            f"the matrix {spec.matrix_shape} would hold about {nnz:,} stored entries, "
            f"{nbytes / 2**30:.2f} GiB as {dtype} {format.upper()}, over `max_bytes` "
            f"(={max_bytes / 2**30:.2f} GiB); pass a larger max_bytes (or None) to build it"
        )


def nnz_estimate(layer: Any) -> int:
    """Stored entries of ``layer.matrix()``: exact or an upper bound, mostly without building.

    Asked in turn: the kind's own ``_nnz_estimate()`` hook; its spec's closed form
    (:meth:`~convmatrix.ConvSpec.nnz_upper_bound`), also of the convolution behind it
    (``conv_view()``: an adjoint or a channels-last convolution stores the same entries,
    moved); the layer an adjoint wraps; otherwise the matrix is built and counted.

    Examples
    --------
    >>> import convmatrix as cm
    >>> nnz_estimate(cm.Conv(np.ones((1, 1, 2, 2)), (1, 3, 3)))
    16
    >>> nnz_estimate(cm.AvgPool((1, 4, 4), 2).T)
    16
    """
    own = getattr(layer, "_nnz_estimate", None)
    if own is not None:
        return int(own())
    spec = getattr(layer, "spec", None)
    if spec is not None and hasattr(spec, "nnz_upper_bound"):
        return int(spec.nnz_upper_bound())
    view = layer.conv_view() if hasattr(layer, "conv_view") else None
    if view is not None:
        return int(view.spec.nnz_upper_bound())
    inner = getattr(layer, "layer", None)  # an adjoint: the same entries, transposed
    if inner is not None and hasattr(inner, "matrix"):
        return nnz_estimate(inner)
    return int(layer.matrix(max_bytes=None).nnz)


def apply_nbytes(factors: Any, batch: int, itemsize: int) -> int:
    """Bytes applying a chain of layers to ``batch`` samples holds at once (an estimate).

    Per factor: its input and output (and, for a convolution — a layer whose ``conv_view()``
    answers — the padded buffer the matrix-free apply works in, twice for the copy the padding
    makes); the largest factor counts, all in ``itemsize`` bytes per value. A channels-first
    convolution runs the tiled kernels, whose buffers never exceed :data:`WORKSPACE_BYTES` (or
    one sample's padded buffers, when that is more): for many samples the batch's input and
    output plus that bound.

    Examples
    --------
    >>> import convmatrix as cm
    >>> apply_nbytes(cm.Conv(np.ones((1, 1, 2)), (1, 4)).chain(), 10, 8)  # 10·(4 + 3 + 2·4)·8
    1200
    """
    largest = 0
    for factor in factors:
        values = math.prod(factor.input_shape) + math.prod(factor.output_shape)
        view = factor.conv_view() if hasattr(factor, "conv_view") else None
        work = 0
        if view is not None:
            padded = 2 * max(_padded_input(view.spec),
                             view.spec.out_channels * math.prod(view.spec.output_size))
            if view.layout == "channels_first":  # the tiled kernels' bounded workspace
                work = min(batch * padded * itemsize, WORKSPACE_BYTES + padded * itemsize)
            else:
                values += padded
        largest = max(largest, batch * values * itemsize + work)
    return largest


def _itemsize(dtype: Any) -> int:
    return max(np.dtype(dtype).itemsize, 8)  # comparisons run in float64 / complex128


def _padded_input(spec: ConvSpec) -> int:
    """Values of the forward convolution's padded input (the reference's largest buffer)."""
    return spec.in_channels * math.prod(n + b + a for n, (b, a) in
                                        zip(spec.input_size, spec.padding, strict=True))


def dense_nbytes(rows: int, cols: int, dtype: Any) -> int:
    """Bytes of a dense ``rows × cols`` array of ``dtype`` (``matrix.toarray()``).

    Examples
    --------
    >>> dense_nbytes(4, 9, np.int64)
    288
    """
    return rows * cols * np.dtype(dtype).itemsize


def verification_nbytes(spec: ConvSpec, dtype: Any, *, direction: Direction = "forward") -> int:
    """Bytes :func:`convmatrix.verify` needs: the matrix plus the dense reference arrays.

    Parameters
    ----------
    spec : ConvSpec
        The forward convolution (for a transposed layer, the one it transposes).
    dtype : dtype
        The weight's dtype.
    direction : {"forward", "adjoint"}, optional
        ``"adjoint"``: the layer is the transposed convolution (its matrix is built as CSC).

    Returns
    -------
    int

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> verification_nbytes(conv_spec((1, 1, 2, 2), (1, 3, 3)), np.float64,
    ...                     direction="forward") < 10_000
    True
    """
    _, matrix = estimate_nbytes(spec, dtype, direction=direction)
    rows, cols = spec.matrix_shape
    dense = _DENSE_COPIES * (rows + cols) + _PADDED_COPIES * _padded_input(spec)
    return int(matrix * _MATRIX_MARGIN) + dense * _itemsize(dtype)


def report_nbytes(spec: ConvSpec, dtype: Any, *, direction: Direction = "forward",
                  figures: bool = True) -> int:
    """Bytes a derivation report needs: verification, index table, overlap map and figures.

    The symbolic part (sampled outputs, matrices up to 400 entries) is small and bounded; what
    grows with the layer is the verification (:func:`verification_nbytes`), the index table of
    one channel pair, the overlap counts over the transposed layer's output pixels and the
    heat map drawn from them.

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_transpose_spec
    >>> huge = conv_transpose_spec((1, 1, 2, 2), (1, 3, 3), stride=99_999_999)
    >>> report_nbytes(huge, np.int64, direction="adjoint") > 10**18   # 2·10⁸ × 2·10⁸ outputs
    True
    """
    pixels_in, pixels_out = math.prod(spec.input_size), math.prod(spec.output_size)
    pairs = max(1, spec.out_channels * (spec.in_channels // spec.groups))
    table = -(-spec.nnz_upper_bound() // pairs) * _TABLE_BYTES_PER_ENTRY
    counts = 8 * (pixels_in + pixels_out)
    drawing = _FIGURE_BYTES_PER_PIXEL * pixels_in if figures else 0
    return verification_nbytes(spec, dtype, direction=direction) + table + counts + drawing


def stack_report_nbytes(layers: Any, *, figures: bool = True) -> int:
    """Bytes a stack report or a comparison of ``layers`` needs, from shapes alone (about).

    Per stack: the overlap verdicts (weight paths and the interior mask pushed through every
    factor's path matrix, the response to a constant input, the count maps they keep), the
    figure drawn from the first output channel, and the verification of each convolution
    (:func:`verification_nbytes`); a comparison keeps every stack's maps at once, so the
    stacks add up. A generous upper bound, like the other estimates here; the stack's own
    matrix is guarded separately (its line in the report says when it is not formed).

    Parameters
    ----------
    layers : sequence of Layer
        The stacks (or single layers) of the report.
    figures : bool, optional
        The PNG overlap maps are drawn.

    Returns
    -------
    int

    Examples
    --------
    >>> import convmatrix as cm
    >>> small = cm.Sequential([cm.Conv(np.ones((1, 1, 3, 3)), (1, 8, 8))])
    >>> stack_report_nbytes([small]) < 2**20
    True
    >>> huge = cm.Sequential([cm.Conv(np.ones((1, 1, 3, 3)), (1, 100_000, 100_000))])
    >>> format_bytes(stack_report_nbytes([huge, small]))
    '5.52 TiB'
    """
    total = 0
    for layer in layers:
        factors = layer.chain()
        pixels = math.prod(layer.output_shape)
        channel = pixels // max(1, min(layer.output_shape[0], layer.output_shape[-1]))
        steps, verifications = 0, 0
        for factor in factors:
            rows, cols = factor.matrix_shape
            nnz = nnz_estimate(factor)
            view = factor.conv_view()
            # the path matrix (int64 data and indices, with the builder's temporaries; a
            # kind without a convolution builds its matrix first), and the vectors around it
            copies = 2 if view is None else 1
            steps = max(steps, int(copies * _MATRIX_MARGIN * (16 * nnz + 8 * (rows + 1)))
                        + 32 * (rows + cols))
            if view is not None:
                verifications = max(verifications, verification_nbytes(
                    view.spec, view.weight.dtype, direction=view.direction))
        response = apply_nbytes(factors, 1, 16)
        drawing = 2 * _FIGURE_BYTES_PER_PIXEL * channel if figures else 0
        total += (max(steps, response, verifications) + _MAP_BYTES_PER_PIXEL * pixels
                  + drawing)
    return total


def check_budget(what: str, nbytes: int, max_bytes: int | None, *, flag: str = "max_bytes") -> None:
    """Raise :class:`~convmatrix.ConvMatrixError` when ``nbytes`` exceeds ``max_bytes``.

    Parameters
    ----------
    what : str
        What would be built, for the message (``"the report of Conv2d 1×3×3 → …"``).
    nbytes : int
        Its estimated size.
    max_bytes : int or None
        The budget; None disables the check.
    flag : str
        How the user sets the budget (``"max_bytes"`` or ``"--max-bytes"``).

    Examples
    --------
    >>> check_budget("a test", 2**40, 2**30)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    convmatrix._errors.ConvMatrixError: a test would need about 1 TiB, over `max_bytes` (=1 GiB)...
    """
    if max_bytes is None or nbytes <= max_bytes:
        return
    raise ConvMatrixError(
        f"{what} would need about {format_bytes(nbytes)}, over `{flag}` "
        f"(={format_bytes(max_bytes)}); raise `{flag}` if the machine has that much memory")


def format_bytes(nbytes: int) -> str:
    """``1.5 GiB``, ``4 GiB``, ``3.2e+06 TiB``: a byte count for messages.

    Examples
    --------
    >>> format_bytes(3 * 2**29), format_bytes(512)
    ('1.5 GiB', '512 B')
    """
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            value = nbytes / size
            return f"{value:.3g} {unit}" if value < 1e6 else f"{value:.2e} {unit}"
    return f"{nbytes} B"


def overlap_nbytes(spec: ConvSpec) -> int:
    """Bytes the overlap map of a layer and its per-axis counts and laws take (about).

    The map has one int64 per pixel of the forward input; per axis the count table has
    ``o·k`` entries, the counts one per pixel and the interior law one per stride residue.

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> overlap_nbytes(conv_spec((1, 1, 2, 2), (1, 3, 3)))
    488
    """
    per_axis = sum(17 * o * k + 24 * n + 32 * s for o, k, n, s in zip(
        spec.output_size, spec.kernel_size, spec.input_size, spec.stride, strict=True))
    return 16 * math.prod(spec.input_size) + per_axis


def law_nbytes(spec: ConvSpec) -> int:
    """Bytes of the per-axis counts and laws of a checkerboard verdict (no N-D map; about).

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> law_nbytes(conv_spec((1, 1, 2, 2), (1, 3, 3)))
    344
    """
    return overlap_nbytes(spec) - 16 * math.prod(spec.input_size)


def explain_nbytes(spec: ConvSpec) -> int:
    """Bytes :func:`convmatrix.symbolic.explain` needs for its arrays (about).

    The overlap map (:func:`overlap_nbytes`) and the checkerboard law's per-axis counts
    (:func:`law_nbytes`). The sampled outputs are computed from the index arithmetic a few
    rows at a time, without a table of the whole layer, so they add no term of its size.

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> explain_nbytes(conv_spec((1, 1, 2, 2), (1, 3, 3)))
    832
    """
    return overlap_nbytes(spec) + law_nbytes(spec)
