"""Resizing (torch ``F.interpolate`` / ``nn.Upsample``) as an exact matrix, one axis at a time."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.budget import DEFAULT_MAX_BYTES, format_bytes
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers._separable import SeparableLayer, as_shape, axis_matrix, per_axis

__all__ = ["MODES", "Upsample", "interpolation_matrix", "taps_per_row"]

MODES: dict[str, tuple[int, ...]] = {
    "nearest": (1, 2, 3), "nearest-exact": (1, 2, 3), "linear": (1,), "bilinear": (2,),
    "bicubic": (2,), "trilinear": (3,),
}
"""Mode → the numbers of spatial axes torch allows it for."""

_CUBIC_A = -0.75  # torch's cubic convolution coefficient
_TABLE_BYTES = 64  # per table entry while building: row, column, value, their CSR and temporaries


def _cubic_weights(t: np.ndarray) -> tuple[np.ndarray, ...]:
    """Keys' cubic convolution weights of the 4 taps around fractions ``t`` (A = -0.75)."""
    a = _CUBIC_A

    def near(x: np.ndarray) -> np.ndarray:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: np.ndarray) -> np.ndarray:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return far(t + 1), near(t), near(1 - t), far(2 - t)


def interpolation_matrix(n: int, out: int, mode: str, align_corners: bool,
                         scale: float | None) -> sp.csr_array:
    """The ``(out, n)`` matrix of one axis of ``F.interpolate`` (torch's CPU index rules).

    Parameters
    ----------
    n, out : int
        Input and output length.
    mode : str
        ``"nearest"``, ``"nearest-2d"`` (torch's 2-D nearest kernel: it copies when the size
        is unchanged and halves the index when it doubles, whatever the scale factor),
        ``"nearest-exact"``, ``"linear"`` (any linear mode) or ``"cubic"``.
    align_corners : bool
        Linear and cubic modes: map the corner pixel centres onto each other.
    scale : float or None
        The user's scale factor when torch uses it for the source index (given and not
        recomputed); otherwise the ratio of the sizes is used.

    Notes
    -----
    ``nearest``: source ``min(⌊i·r⌋, n − 1)`` with ``r = 1/scale`` (or ``n/out``) computed and
    multiplied in float32, as torch does; ``nearest-exact``: ``min(⌊(i + ½)·r⌋, n − 1)``.
    ``linear``: source ``x = r·(i + ½) − ½`` clamped at 0 (``x = i·(n−1)/(out−1)`` with
    ``align_corners``), weights ``1 − λ, λ`` on ``⌊x⌋`` and ``⌊x⌋ + 1`` (the last pixel
    alone at the end). ``cubic``: the same ``x`` unclamped, Keys' weights (A = −0.75) on the
    four taps ``⌊x⌋ − 1 … ⌊x⌋ + 2``, indices clamped to the border.

    Examples
    --------
    >>> interpolation_matrix(2, 4, "linear", False, 2.0).toarray()
    array([[1.  , 0.  ],
           [0.75, 0.25],
           [0.25, 0.75],
           [0.  , 1.  ]])
    """
    index = np.arange(out, dtype=np.int64)
    if mode in ("nearest", "nearest-2d", "nearest-exact"):
        ratio32 = (np.float32(1.0 / scale) if scale is not None and scale > 0
                   else np.float32(n) / np.float32(out))
        if mode == "nearest-2d" and out == n:
            src = index
        elif mode == "nearest-2d" and out == 2 * n:
            src = index >> 1
        else:  # float32 throughout, as torch (and as one scalar at a time would)
            shift = np.float32(0.5) if mode == "nearest-exact" else np.float32(0.0)
            scaled = (index.astype(np.float32) + shift) * ratio32
            src = np.minimum(np.floor(scaled).astype(np.int64), n - 1)
        return axis_matrix(index, src, np.ones(out, dtype=np.int64), (out, n))
    if align_corners:
        ratio = (n - 1) / (out - 1) if out > 1 else 0.0
    else:
        ratio = 1.0 / scale if scale is not None and scale > 0 else n / out
    cubic = mode == "cubic"
    x: np.ndarray
    if align_corners:
        x = ratio * index.astype(np.float64)
    else:
        x = ratio * (index + 0.5) - 0.5
        if not cubic:
            x = np.where(x < 0, 0.0, x)
    base = np.minimum(np.floor(x), n - 1).astype(np.int64)
    t = np.clip(x - base, 0.0, 1.0)
    if cubic:  # four taps per row, in tap order (duplicates at the border add up)
        rows = np.repeat(index, 4)
        cols = np.clip(base[:, None] + np.arange(-1, 3), 0, n - 1).ravel()
        values = np.stack(_cubic_weights(t), axis=1).ravel()
    elif out == n and not align_corners:
        rows, cols, values = index, index, np.ones(out)
    else:
        rows = np.repeat(index, 2)
        cols = np.stack([base, base + (base < n - 1)], axis=1).ravel()
        values = np.stack([1.0 - t, t], axis=1).ravel()
    matrix = axis_matrix(rows, cols, values, (out, n))
    matrix.eliminate_zeros()
    return matrix


def taps_per_row(mode: str) -> int:
    """Stored entries per row (at most) of :func:`interpolation_matrix` in ``mode``."""
    return 4 if mode == "cubic" else 2 if mode == "linear" else 1


class Upsample(SeparableLayer):
    """Resizing of 1, 2 or 3 spatial axes, exactly as torch's ``F.interpolate``.

    Every mode torch offers without antialiasing is separable: the matrix is the Kronecker
    product of one interpolation matrix per spatial axis (see :func:`interpolation_matrix`).

    Parameters
    ----------
    input_shape : sequence of int
        One sample ``(C, *spatial)``.
    size : int or sequence of int, optional
        The output spatial size (give this or ``scale_factor``).
    scale_factor : float or sequence of float, optional
        Output size ``⌊n · scale_factor⌋`` per axis; torch then also uses ``1/scale_factor``
        for the source positions (unless ``recompute_scale_factor``).
    mode : str, optional
        ``"nearest"``, ``"nearest-exact"``, ``"linear"`` (1-D), ``"bilinear"``, ``"bicubic"``
        (2-D), ``"trilinear"`` (3-D).
    align_corners : bool, optional
        Linear and cubic modes only (torch's default there: False).
    recompute_scale_factor : bool, optional
        As in torch: with a ``scale_factor``, interpolate by the ratio of the sizes instead.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> up = cm.Upsample((1, 2), scale_factor=2, mode="linear", align_corners=True)
    >>> up
    Upsample(1×2 → 1×4, linear, align_corners)
    >>> up(np.array([[0.0, 3.0]]))
    array([[0., 1., 2., 3.]])
    """

    def __init__(self, input_shape: Sequence[int], size: Any = None, scale_factor: Any = None,
                 mode: str = "nearest", align_corners: bool | None = None,
                 recompute_scale_factor: bool | None = None) -> None:
        shape = as_shape(input_shape)
        ndim = len(shape) - 1
        if mode not in MODES:
            raise ConvMatrixError(
                f"`mode` (={mode!r}) must be one of {', '.join(map(repr, MODES))} "
                f"(antialiasing and 'area' are not supported)")
        if ndim not in MODES[mode]:
            raise ConvMatrixError(
                f"`mode` (={mode!r}) needs {MODES[mode][0]} spatial axes; `input_shape` "
                f"(={shape}) has {ndim}")
        interpolating = mode not in ("nearest", "nearest-exact")
        if align_corners is not None:
            if not interpolating:
                raise ConvMatrixError(
                    f"`align_corners` (={align_corners!r}) applies only to the interpolating "
                    f"modes (linear, bilinear, bicubic, trilinear), not {mode!r}")
            if not isinstance(align_corners, bool | np.bool_):
                raise ConvMatrixError(f"`align_corners` (={align_corners!r}) must be a bool")
        if (size is None) == (scale_factor is None):
            raise ConvMatrixError("give exactly one of `size` and `scale_factor`")
        scales: tuple[float, ...] | None = None
        if size is not None:
            out = per_axis(size, ndim, "size", 1)
        else:
            scales = _scales(scale_factor, ndim)
            out = tuple(math.floor(n * s) for n, s in zip(shape[1:], scales, strict=True))
            if any(o < 1 for o in out):
                raise ConvMatrixError(
                    f"`scale_factor` (={scale_factor!r}) gives an empty output for input "
                    f"{shape_text(shape[1:])}")
            if recompute_scale_factor:
                scales = None
        self.mode = mode
        self.align_corners = bool(align_corners) if interpolating else False
        self.scale_factor = scales
        self._input_shape = shape
        self._output_shape = (shape[0], *out)
        self._kind = ("cubic" if mode == "bicubic" else "linear" if interpolating
                      else "nearest-2d" if mode == "nearest" and ndim == 2 else mode)
        # the per-axis tables are built on first use; refuse first when they cannot fit
        table_entries = sum(o * taps_per_row(self._kind) for o in out)
        if table_entries * _TABLE_BYTES > DEFAULT_MAX_BYTES:
            raise ConvMatrixError(
                f"`scale_factor`/`size` (={scale_factor if size is None else size!r}) gives the "
                f"output {shape_text(self._output_shape)}: its per-axis tables alone would need "
                f"about {format_bytes(table_entries * _TABLE_BYTES)}, over the default budget "
                f"`max_bytes` (={format_bytes(DEFAULT_MAX_BYTES)}); choose a smaller output")
        self._axes: list[sp.csr_array | None] | None = None

    @property
    def dtype(self) -> np.dtype[Any]:
        """int64 for the nearest modes (a selection), float64 otherwise."""
        return np.dtype(np.int64 if self.mode.startswith("nearest") else np.float64)

    def _axis_matrices(self) -> list[sp.csr_array | None]:
        if self._axes is None:
            scales = self.scale_factor
            self._axes = [None] + [
                interpolation_matrix(n, o, self._kind, self.align_corners,
                                     None if scales is None else scales[axis])
                for axis, (n, o) in enumerate(zip(self.input_shape[1:], self.output_shape[1:],
                                                  strict=True))]
        return list(self._axes)

    def _nnz_estimate(self) -> int:
        """An upper bound from the sizes alone (the tables are not built)."""
        taps = taps_per_row(self._kind)
        return self.output_shape[0] * math.prod(o * taps for o in self.output_shape[1:])

    def _describe(self) -> str:
        parts = [f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}", self.mode]
        if self.align_corners:
            parts.append("align_corners")
        return ", ".join(parts)


def _scales(scale_factor: Any, ndim: int) -> tuple[float, ...]:
    values = (tuple(scale_factor) if hasattr(scale_factor, "__iter__")
              and not isinstance(scale_factor, str) else (scale_factor,) * ndim)
    if len(values) != ndim:
        raise ConvMatrixError(
            f"`scale_factor` (={scale_factor!r}) must be a number or {ndim} numbers")
    result = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise ConvMatrixError(f"`scale_factor` (={scale_factor!r}) must hold numbers")
        if not v > 0 or not math.isfinite(v):
            raise ConvMatrixError(f"`scale_factor` (={scale_factor!r}) must be positive")
        result.append(float(v))
    return tuple(result)
