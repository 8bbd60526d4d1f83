"""Element-wise affine maps ``y = scale · x + shift``: a diagonal matrix and an offset."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.sparse import SparseFormat
from convmatrix.geometry.shapes import shape_text
from convmatrix.geometry.spec import as_sample_shape
from convmatrix.layers._checks import frozen, numeric_array
from convmatrix.layers.base import Layer, ShapedLayer

__all__ = ["Scale"]


def _broadcast(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = numeric_array(value, name)
    try:
        result = np.broadcast_shapes(array.shape, shape)
    except ValueError:
        result = None
    if result != shape:
        raise ConvMatrixError(
            f"`{name}` has shape {array.shape}, which does not broadcast to `input_shape` "
            f"{shape} (numpy's rule: align from the right; each size 1 or equal)")
    return array


def _weak(value: Any) -> Any:
    """A Python number stays weak for ``np.result_type`` (2 does not widen float32)."""
    return value if isinstance(value, bool | int | float | complex) else None


class Scale(ShapedLayer):
    """``y = scale · x + shift`` element-wise: a diagonal matrix plus an offset.

    Multiplying, dividing, adding or subtracting a constant (``2 * x``, ``x / 3``, ``x - mean``)
    and the Jacobian of an element-wise activation at a point (the diagonal of its
    derivatives) are this kind. The adjoint is the same diagonal without the shift.

    Parameters
    ----------
    input_shape : sequence of int
        One sample, any number of axes.
    scale : array_like
        The factors; any shape that broadcasts to ``input_shape`` (a number, one value per
        channel as ``(C, 1, 1)``, or a whole sample). Its dtype is the matrix's dtype
        (integers stay exact: see :data:`convmatrix.builder.dtypes.INTEGER_RULE`).
    shift : array_like, optional
        Added after scaling (the offset); broadcast like ``scale``. Default 0.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> layer = cm.Scale((2, 3), 2, shift=1)
    >>> layer
    Scale(2×3 → 2×3, scale 2, shift 1)
    >>> layer(np.arange(6).reshape(2, 3))
    array([[ 1,  3,  5],
           [ 7,  9, 11]])
    >>> per_channel = cm.Scale((2, 2, 2), np.array([0.5, -1.0]).reshape(2, 1, 1))
    >>> per_channel.matrix().diagonal()
    array([ 0.5,  0.5,  0.5,  0.5, -1. , -1. , -1. , -1. ])
    >>> per_channel.T
    Scale(2×2×2 → 2×2×2, scale per 2×1×1)
    """

    def __init__(self, input_shape: Sequence[int], scale: Any, shift: Any = 0) -> None:
        shape = as_sample_shape(input_shape)
        scale_array = _broadcast(scale, shape, "scale")
        shift_array = _broadcast(shift, shape, "shift")
        weak = [v for v in (_weak(scale), _weak(shift)) if v is not None]
        strong = [a for v, a in ((scale, scale_array), (shift, shift_array)) if _weak(v) is None]
        dtype = np.result_type(*strong, *weak) if strong else np.result_type(
            scale_array, shift_array)
        self._input_shape = self._output_shape = shape
        self._dtype = np.dtype(dtype)
        self.scale = frozen(scale_array.astype(self._dtype, copy=False))
        self.shift = frozen(shift_array.astype(self._dtype, copy=False))

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of ``scale`` and ``shift`` together (a Python number adapts to the other)."""
        return self._dtype

    def _diagonal(self) -> np.ndarray:
        return np.broadcast_to(self.scale, self._input_shape).reshape(-1)

    def _nnz_estimate(self) -> int:
        return math.prod(self._input_shape)

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        return self.matrix_rows(0, math.prod(self._input_shape)).asformat(format)

    def matrix_rows(self, start: int, stop: int) -> sp.csr_array:
        """Rows ``start:stop`` of :meth:`matrix` (CSR), for streaming row blocks."""
        values = self._diagonal()[start:stop]
        keep = np.flatnonzero(values)
        indptr = np.zeros(stop - start + 1, dtype=np.int64)
        indptr[keep + 1] = 1
        return sp.csr_array((values[keep].copy(), keep + start, np.cumsum(indptr)),
                            shape=(stop - start, math.prod(self._input_shape)))

    def offset(self) -> np.ndarray:
        """``shift`` over the whole sample, flat."""
        return np.broadcast_to(self.shift, self._input_shape).reshape(-1).copy()

    def abs_row_sum(self) -> int:
        """``max |scale|`` (exact for integers; rounded up for floats)."""
        from convmatrix.builder.dtypes import max_abs

        return max_abs(np.abs(self.scale) if self.scale.dtype.kind == "c" else self.scale)

    def apply_forward(self, batch: np.ndarray) -> np.ndarray:
        """The linear part on a batch: ``scale · x`` (see :meth:`Layer.apply_forward`)."""
        return batch * self.scale

    def apply_adjoint(self, batch: np.ndarray) -> np.ndarray:
        """The adjoint on a batch: the same diagonal (see :meth:`Layer.apply_adjoint`)."""
        return batch * self.scale

    def _adjoint(self) -> Layer:
        return Scale(self._input_shape, self.scale)

    def _describe(self) -> str:
        parts = [f"{shape_text(self._input_shape)} → {shape_text(self._output_shape)}",
                 _value_text("scale", self.scale)]
        if np.any(self.shift != 0):
            parts.append(_value_text("shift", self.shift))
        return ", ".join(parts)


def _value_text(name: str, values: np.ndarray) -> str:
    if values.size == 1:
        return f"{name} {values.reshape(-1)[0].item()!r}"
    return f"{name} per {shape_text(values.shape)}"
