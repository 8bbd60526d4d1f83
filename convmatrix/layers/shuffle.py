"""Pixel shuffle and unshuffle (torch ``pixel_shuffle``) as permutation matrices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers._separable import as_int, as_shape
from convmatrix.layers.base import Layer
from convmatrix.layers.permute import Rearrangement

__all__ = ["PixelShuffle", "PixelUnshuffle"]


class _Shuffle(Rearrangement):
    """A pixel shuffle or unshuffle: a rearrangement with a factor."""

    factor: int

    def _describe(self) -> str:
        return (f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}, "
                f"factor {self.factor}")


class PixelShuffle(_Shuffle):
    """``(C·r², H, W) → (C, H·r, W·r)`` as torch's ``pixel_shuffle``: a permutation.

    ``out[c, h·r + i, w·r + j] = in[c·r² + i·r + j, h, w]``.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> shuffle = cm.PixelShuffle((4, 1, 1), 2)
    >>> shuffle
    PixelShuffle(4×1×1 → 1×2×2, factor 2)
    >>> shuffle(np.arange(4).reshape(4, 1, 1))
    array([[[0, 1],
            [2, 3]]])
    >>> shuffle.T
    PixelUnshuffle(1×2×2 → 4×1×1, factor 2)
    """

    def __init__(self, input_shape: Sequence[int], upscale_factor: int) -> None:
        shape = as_shape(input_shape, (2,))
        r = as_int(upscale_factor, "upscale_factor", 1)
        if shape[0] % (r * r):
            raise ConvMatrixError(
                f"`input_shape` (={shape}) must have channels divisible by "
                f"`upscale_factor`² (={r * r})")
        self.factor = r
        self._input_shape = shape
        self._output_shape = (shape[0] // (r * r), shape[1] * r, shape[2] * r)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        r = self.factor
        c, h, w = self._output_shape[0], self._input_shape[1], self._input_shape[2]
        return (x.reshape(x.shape[0], c, r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
                .reshape(x.shape[0], *self._output_shape))

    def _adjoint(self) -> Layer:
        return PixelUnshuffle(self.output_shape, self.factor)


class PixelUnshuffle(_Shuffle):
    """``(C, H·r, W·r) → (C·r², H, W)`` as torch's ``pixel_unshuffle`` (PixelShuffle's inverse).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> cm.PixelUnshuffle((1, 2, 2), 2)(np.arange(4).reshape(1, 2, 2)).ravel()
    array([0, 1, 2, 3])
    """

    def __init__(self, input_shape: Sequence[int], downscale_factor: int) -> None:
        shape = as_shape(input_shape, (2,))
        r = as_int(downscale_factor, "downscale_factor", 1)
        if shape[1] % r or shape[2] % r:
            raise ConvMatrixError(
                f"`input_shape` (={shape}) must have height and width divisible by "
                f"`downscale_factor` (={r})")
        self.factor = r
        self._input_shape = shape
        self._output_shape = (shape[0] * r * r, shape[1] // r, shape[2] // r)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        r = self.factor
        c, h, w = self._input_shape[0], self._output_shape[1], self._output_shape[2]
        return (x.reshape(x.shape[0], c, h, r, w, r).transpose(0, 1, 3, 5, 2, 4)
                .reshape(x.shape[0], *self._output_shape))

    def _adjoint(self) -> Layer:
        return PixelShuffle(self.output_shape, self.factor)
