"""Batch normalisation in inference (torch ``BatchNormNd.eval()``): a per-channel affine map."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers._separable import SeparableLayer, as_shape

__all__ = ["BatchNorm"]


def _per_channel(value: Any, channels: int, name: str, default: float | None) -> np.ndarray:
    if value is None:
        if default is None:
            raise ConvMatrixError(f"`{name}` is required (one value per channel)")
        return np.full(channels, default, dtype=np.float64)
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ConvMatrixError(f"`{name}` has dtype {array.dtype}; it must be real numbers")
    if array.shape != (channels,):
        raise ConvMatrixError(
            f"`{name}` has shape {array.shape}; it must have one value per channel ({channels},)")
    return array.astype(np.float64)


class BatchNorm(SeparableLayer):
    """``y = (x − mean) / √(var + eps) · weight + bias`` per channel (inference mode).

    The matrix is diagonal (``weight / √(var + eps)`` repeated over each channel's pixels),
    the offset ``bias − mean · weight / √(var + eps)``.

    Parameters
    ----------
    input_shape : sequence of int
        One sample ``(C, *spatial)`` (no spatial axes for ``BatchNorm1d`` on ``(N, C)``).
    running_mean, running_var : array_like, shape ``(C,)``
    weight, bias : array_like, shape ``(C,)``, optional
        The affine parameters (default 1 and 0).
    eps : float, optional
    axis : int, optional
        The axis of the sample that holds the channels (the normalised axis): 0 (torch's
        layout, the default), or any other axis of the sample, negative counting from the end
        (Keras' ``BatchNormalization(axis=...)`` minus its batch axis).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> bn = cm.BatchNorm((2, 2), running_mean=[1.0, 0.0], running_var=[4.0, 1.0], eps=0.0)
    >>> bn
    BatchNorm(2×2 → 2×2, 2 channels)
    >>> bn(np.array([[1.0, 3.0], [2.0, 4.0]]))
    array([[0., 1.],
           [2., 4.]])
    >>> cm.BatchNorm((2, 2), running_mean=[1.0, 0.0], running_var=[4.0, 1.0], eps=0.0,
    ...              axis=1)(np.array([[1.0, 3.0], [2.0, 4.0]]))   # channels along axis 1
    array([[0. , 3. ],
           [0.5, 4. ]])
    """

    def __init__(self, input_shape: Sequence[int], running_mean: Any, running_var: Any,
                 weight: Any = None, bias: Any = None, eps: float = 1e-5,
                 axis: int = 0) -> None:
        shape = as_shape(input_shape, (0, 1, 2, 3))
        if isinstance(axis, bool) or not hasattr(axis, "__index__") \
                or not -len(shape) <= int(axis) < len(shape):
            raise ConvMatrixError(
                f"`axis` (={axis!r}) must be an axis of the sample {shape}: an int in "
                f"[{-len(shape)}, {len(shape) - 1}]")
        self.axis = int(axis) % len(shape)
        channels = shape[self.axis]
        self.running_mean = _per_channel(running_mean, channels, "running_mean", None)
        self.running_var = _per_channel(running_var, channels, "running_var", None)
        self.weight = _per_channel(weight, channels, "weight", 1.0)
        self.bias = _per_channel(bias, channels, "bias", 0.0)
        if isinstance(eps, bool) or not isinstance(eps, int | float | np.floating) or eps < 0:
            raise ConvMatrixError(f"`eps` (={eps!r}) must be a non-negative number")
        if np.any(self.running_var + eps <= 0):
            raise ConvMatrixError(
                f"`running_var` + `eps` (={eps!r}) must be positive for every channel")
        self.eps = float(eps)
        self._input_shape = self._output_shape = shape
        self.scale = self.weight / np.sqrt(self.running_var + self.eps)
        self.shift = self.bias - self.running_mean * self.scale

    def _axis_matrices(self) -> list[sp.csr_array | None]:
        matrices: list[sp.csr_array | None] = [None] * len(self._input_shape)
        matrices[self.axis] = sp.csr_array(sp.diags_array(self.scale, format="csr"))
        return matrices

    def offset(self) -> np.ndarray:
        """``bias − running_mean · weight / √(running_var + eps)`` over each channel's pixels."""
        along = [1] * len(self._input_shape)
        along[self.axis] = -1
        return np.broadcast_to(self.shift.reshape(along), self._input_shape).reshape(-1)

    def _describe(self) -> str:
        where = "" if self.axis == 0 else f" along axis {self.axis}"
        return (f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}, "
                f"{self.input_shape[self.axis]} channels{where}")
