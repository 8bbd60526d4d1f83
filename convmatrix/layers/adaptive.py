"""Global and adaptive average pooling (``x.mean(dim=…)``, torch ``adaptive_avg_pool1d/2d/3d``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import shape_text
from convmatrix.geometry.spec import as_sample_shape
from convmatrix.layers._checks import sample_axis
from convmatrix.layers._separable import SeparableLayer, as_int, as_shape, axis_matrix
from convmatrix.typing import Direction

if TYPE_CHECKING:
    from convmatrix.geometry.view import AxisSteps

__all__ = ["AdaptiveAvgPool", "GlobalAvgPool", "adaptive_bins"]


def adaptive_bins(n: int, out: int) -> list[tuple[int, int]]:
    """The adaptive pooling windows (torch's rule) along one axis: ``[⌊i·n/out⌋, ⌈(i+1)·n/out⌉)``.

    Examples
    --------
    >>> adaptive_bins(5, 3)
    [(0, 2), (1, 4), (3, 5)]
    >>> adaptive_bins(2, 4)          # more outputs than inputs: windows repeat
    [(0, 1), (0, 1), (1, 2), (1, 2)]
    """
    return [(i * n // out, -(-(i + 1) * n // out)) for i in range(out)]


def _float(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype a mean is computed in: float64, or complex128 for complex data."""
    return np.result_type(dtype, np.float64)


def _dense_along_axes(x: np.ndarray, axes: list[sp.csr_array | None], *,
                      direction: Direction) -> np.ndarray:
    """``A_k`` (``"adjoint"``: ``A_kᵀ``; dense, small) along axis ``k + 1`` of a batch."""
    x = x.astype(_float(x.dtype), copy=False)
    for position, matrix in enumerate(axes):
        if matrix is None:
            continue
        dense = matrix.toarray()
        if direction == "adjoint":
            dense = dense.T
        moved = np.moveaxis(x, position + 1, -2)
        x = np.moveaxis(dense @ moved, -2, position + 1)
    return np.ascontiguousarray(x)


def _mean_rows(bins: list[tuple[int, int]], n: int) -> sp.csr_array:
    rows = np.concatenate([np.full(b - a, i) for i, (a, b) in enumerate(bins)])
    cols = np.concatenate([np.arange(a, b) for a, b in bins])
    values = np.concatenate([np.full(b - a, 1.0 / (b - a)) for a, b in bins])
    return axis_matrix(rows, cols, values, (len(bins), n))


class GlobalAvgPool(SeparableLayer):
    """The mean over the spatial axes (or any ``axes``) of a sample: ``x.mean(dim=…)``.

    With ``keepdims=True`` the averaged axes stay as size 1 — torch's
    ``AdaptiveAvgPool2d(1)`` and ``x.mean(dim=(2, 3), keepdim=True)``, output ``(C, 1, 1)``;
    without, they are removed — ``x.mean(dim=(2, 3))``, output ``(C,)``. Both have the same
    matrix (each output row holds ``1/n`` over its ``n`` averaged inputs).

    Parameters
    ----------
    input_shape : sequence of int
        One sample, e.g. ``(C, H, W)``.
    keepdims : bool, optional
        Keep the averaged axes (as size 1). Default False.
    axes : int or sequence of int, optional
        The sample's axes to average (negative from the end). Default: every axis but the
        first (channels first: the spatial axes). Keras' channels-last global pooling on
        ``(H, W, C)`` is ``axes=(0, 1)``.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> pool = cm.GlobalAvgPool((2, 2, 2))
    >>> pool
    GlobalAvgPool(2×2×2 → 2, mean over axes 1, 2)
    >>> pool(np.arange(8.0).reshape(2, 2, 2))
    array([1.5, 5.5])
    >>> cm.GlobalAvgPool((2, 2, 2), keepdims=True).output_shape
    (2, 1, 1)
    >>> cm.GlobalAvgPool((3, 4), axes=0)(np.arange(12.0).reshape(3, 4))   # the mean over rows
    array([4., 5., 6., 7.])
    """

    def __init__(self, input_shape: Sequence[int], keepdims: bool = False,
                 axes: int | Sequence[int] | None = None) -> None:
        shape = as_sample_shape(input_shape)
        if not isinstance(keepdims, bool | np.bool_):
            raise ConvMatrixError(f"`keepdims` (={keepdims!r}) must be True or False")
        if axes is None:
            if len(shape) < 2:
                raise ConvMatrixError(
                    f"`input_shape` (={shape}) has no spatial axes to average (channels "
                    f"first); give `axes`")
            chosen = tuple(range(1, len(shape)))
        else:
            items = (axes,) if isinstance(axes, str) or not hasattr(axes, "__iter__") \
                else tuple(axes)
            chosen = tuple(sorted(sample_axis(a, shape, "axes") for a in items))
            if not chosen or len(set(chosen)) != len(chosen):
                raise ConvMatrixError(
                    f"`axes` (={axes!r}) must name one or more distinct axes of the sample "
                    f"{shape}")
        if not keepdims and len(chosen) == len(shape):
            raise ConvMatrixError(
                f"`axes` (={axes!r}) averages every axis of the sample {shape}, which leaves "
                f"no axis: pass keepdims=True")
        self.axes = chosen
        self.keepdims = bool(keepdims)
        self._input_shape = shape
        self._kept = tuple(1 if a in chosen else n for a, n in enumerate(shape))
        self._output_shape = self._kept if keepdims else tuple(
            n for a, n in enumerate(shape) if a not in chosen)

    def _axis_matrices(self) -> list[sp.csr_array | None]:
        return [_mean_rows([(0, n)], n) if a in self.axes else None
                for a, n in enumerate(self._input_shape)]

    def _count(self) -> int:
        return int(np.prod([self._input_shape[a] for a in self.axes]))

    def apply_forward(self, x: np.ndarray) -> np.ndarray:
        """The means on a batch (see :meth:`Layer.apply_forward`)."""
        total = x.sum(axis=tuple(a + 1 for a in self.axes), dtype=_float(x.dtype))
        return (total / self._count()).reshape(x.shape[0], *self._output_shape)

    def apply_adjoint(self, y: np.ndarray) -> np.ndarray:
        """Each mean spread back over its inputs, ``/ n`` (see :meth:`Layer.apply_adjoint`)."""
        spread = y.reshape(y.shape[0], *self._kept).astype(_float(y.dtype)) / self._count()
        return np.broadcast_to(spread, (y.shape[0], *self._input_shape)).copy()

    def axis_steps(self) -> AxisSteps | None:
        """None: a global mean is no lattice step."""
        return None

    def _describe(self) -> str:
        parts = [f"{shape_text(self._input_shape)} → {shape_text(self._output_shape)}",
                 f"mean over axes {', '.join(map(str, self.axes))}"]
        if self.keepdims:
            parts.append("keepdims")
        return ", ".join(parts)


class AdaptiveAvgPool(SeparableLayer):
    """Adaptive average pooling over 1, 2 or 3 spatial axes, exactly as torch's.

    Output pixel ``i`` along an axis of input length ``n`` and output length ``out`` averages
    the inputs ``⌊i·n/out⌋ … ⌈(i+1)·n/out⌉ − 1`` (windows may overlap, or repeat when
    ``out > n``); the axes are independent, so the matrix is a Kronecker product.

    Parameters
    ----------
    input_shape : sequence of int
        One sample ``(C, *spatial)`` with 1, 2 or 3 spatial axes.
    output_size : int or sequence of (int or None)
        The output's spatial size: one int for every axis, or one entry per spatial axis
        where None keeps that axis' input size (as torch allows).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> pool = cm.AdaptiveAvgPool((1, 5), 3)
    >>> pool
    AdaptiveAvgPool(1×5 → 1×3, output 3)
    >>> pool.matrix().toarray()
    array([[0.5       , 0.5       , 0.        , 0.        , 0.        ],
           [0.        , 0.33333333, 0.33333333, 0.33333333, 0.        ],
           [0.        , 0.        , 0.        , 0.5       , 0.5       ]])
    >>> cm.AdaptiveAvgPool((2, 6, 4), (None, 2)).output_shape
    (2, 6, 2)
    """

    def __init__(self, input_shape: Sequence[int], output_size: Any) -> None:
        shape = as_shape(input_shape)
        ndim = len(shape) - 1
        if isinstance(output_size, str) or not hasattr(output_size, "__iter__"):
            items: tuple[Any, ...] = (output_size,) * ndim
        else:
            items = tuple(output_size)
        if len(items) != ndim:
            raise ConvMatrixError(
                f"`output_size` (={output_size!r}) must be an int or {ndim} entries (int or "
                f"None), one per spatial axis of {shape}")
        sizes = tuple(n if v is None else as_int(v, "output_size", 1)
                      for v, n in zip(items, shape[1:], strict=True))
        self.output_size = sizes
        self._input_shape = shape
        self._output_shape = (shape[0], *sizes)
        self._axes: list[sp.csr_array | None] = [None]
        for n, out in zip(shape[1:], sizes, strict=True):
            self._axes.append(None if n == out else _mean_rows(adaptive_bins(n, out), n))

    def _axis_matrices(self) -> list[sp.csr_array | None]:
        return list(self._axes)

    def apply_forward(self, x: np.ndarray) -> np.ndarray:
        """The pooled batch: a small dense product per pooled axis (:meth:`Layer.apply_forward`)."""
        return _dense_along_axes(x, self._axes, direction="forward")

    def apply_adjoint(self, y: np.ndarray) -> np.ndarray:
        """The adjoint on a batch, the transposed products (see :meth:`Layer.apply_adjoint`)."""
        return _dense_along_axes(y, self._axes, direction="adjoint")

    def _describe(self) -> str:
        size = self.output_size
        text = str(size[0]) if len(set(size)) == 1 else shape_text(size)
        return (f"{shape_text(self._input_shape)} → {shape_text(self._output_shape)}, "
                f"output {text}")
