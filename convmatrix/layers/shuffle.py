"""Pixel shuffle and unshuffle (torch ``pixel_shuffle``) as permutation matrices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.sparse import SparseFormat
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers._separable import as_int, as_shape
from convmatrix.layers.base import Layer, ShapedLayer

__all__ = ["PixelShuffle", "PixelUnshuffle"]


class _Permutation(ShapedLayer):
    """A layer that moves every input entry to one output position."""

    _input_shape: tuple[int, ...]
    _output_shape: tuple[int, ...]
    factor: int

    @property
    def dtype(self) -> np.dtype[Any]:
        """int64: a permutation."""
        return np.dtype(np.int64)

    def abs_row_sum(self) -> int:
        """1: every row of the matrix copies one input value (or none)."""
        return 1

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """The rearrangement on a batch (``(B, *input_shape)``)."""
        raise NotImplementedError

    def _sources(self) -> np.ndarray:
        """``sources[i]``: the flat input index output ``i`` copies."""
        index = np.arange(int(np.prod(self.input_shape))).reshape(1, *self.input_shape)
        return self._forward(index).reshape(-1)

    def _nnz_estimate(self) -> int:
        return int(np.prod(self.input_shape))

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        size = self._nnz_estimate()
        if max_bytes is not None and size * 16 > max_bytes:
            raise ConvMatrixError(
                f"the {type(self).__name__} matrix needs {size * 16 / 2**30:.2f} GiB, over "
                f"`max_bytes` (={max_bytes / 2**30:.2f} GiB)")
        matrix = sp.csr_array((np.ones(size, dtype=np.int64), self._sources(),
                               np.arange(size + 1)), shape=(size, size))
        return matrix.asformat(format)

    def apply_forward(self, x: np.ndarray) -> np.ndarray:
        """The linear part on a batch (see :meth:`Layer.apply_forward`)."""
        return self._forward(x)

    def apply_adjoint(self, y: np.ndarray) -> np.ndarray:
        """The adjoint on a batch (see :meth:`Layer.apply_adjoint`)."""
        flat = np.empty((y.shape[0], int(np.prod(self.input_shape))), dtype=y.dtype)
        flat[:, self._sources()] = y.reshape(y.shape[0], -1)
        return flat.reshape(y.shape[0], *self.input_shape)

    def _describe(self) -> str:
        return (f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}, "
                f"factor {self.factor}")


class PixelShuffle(_Permutation):
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


class PixelUnshuffle(_Permutation):
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
