"""Memory a layer's verification, report and dense print need, estimated from shapes alone.

The command line and :func:`convmatrix.reports.layer.layer_report` check these estimates against a
``max_bytes`` budget *before* allocating anything, so a layer whose report would need
terabytes (a huge stride or padding blows up the transposed layer's output) is refused in
one line instead of hanging or dying in numpy's allocator. The estimates are deliberately
generous upper bounds (a few copies of every dense array the step makes); the matrix itself is
counted exactly by :func:`convmatrix.estimate_nbytes`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.build.sparse import estimate_nbytes
from convmatrix.geometry.spec import ConvSpec
from convmatrix.typing import Direction

__all__ = ["check_budget", "check_max_bytes", "dense_nbytes", "explain_nbytes", "law_nbytes",
           "overlap_nbytes", "report_nbytes", "verification_nbytes"]

_DENSE_COPIES = 14  # x, y, a batch of 3 of each, reference outputs, comparison temporaries
_MATRIX_MARGIN = 1.1  # the builder's chunk temporaries on top of the final arrays
_PADDED_COPIES = 3  # the reference's padded input / scatter buffer, and its temporaries
_TABLE_BYTES_PER_ENTRY = 128  # index table (3 int64) + both patterns (indices, taps, pointers)
_FIGURE_BYTES_PER_PIXEL = 48  # overlap heat map: counts, float image, masks, RGBA resampling


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


def check_max_bytes(max_bytes: Any) -> int | None:
    """Validate a ``max_bytes`` budget: a non-negative int (numpy ints too), or None (no limit).

    Examples
    --------
    >>> check_max_bytes(np.int64(1024)), check_max_bytes(None)
    (1024, None)
    >>> check_max_bytes(-1)
    Traceback (most recent call last):
    ...
    convmatrix._errors.ConvMatrixError: `max_bytes` (=-1) must be a non-negative int or None
    """
    if max_bytes is None:
        return None
    if isinstance(max_bytes, bool) or not hasattr(max_bytes, "__index__"):
        raise ConvMatrixError(f"`max_bytes` (={max_bytes!r}) must be a non-negative int or None")
    value = int(max_bytes)
    if value < 0:
        raise ConvMatrixError(f"`max_bytes` (={max_bytes!r}) must be a non-negative int or None")
    return value


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

    The overlap map (:func:`overlap_nbytes`) plus the spatial index table of one channel pair
    and its two compressed patterns (about 64 bytes per (output pixel, tap) pair and 8 per
    pixel on either side).

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> explain_nbytes(conv_spec((1, 1, 2, 2), (1, 3, 3)))
    1616
    """
    pairs = math.prod(spec.output_size) * math.prod(spec.kernel_size)
    pixels = math.prod(spec.output_size) + math.prod(spec.input_size)
    return overlap_nbytes(spec) + 64 * pairs + 8 * pixels
