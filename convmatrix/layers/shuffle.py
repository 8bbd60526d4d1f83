"""Pixel shuffles and depth/space moves as permutation matrices.

torch's ``pixel_shuffle``/``pixel_unshuffle`` and ONNX's ``DepthToSpace``/``SpaceToDepth``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers._separable import as_int, as_shape
from convmatrix.layers.base import Layer
from convmatrix.layers.permute import Rearrangement

__all__ = ["DepthToSpace", "PixelShuffle", "PixelUnshuffle", "SpaceToDepth"]


class _Shuffle(Rearrangement):
    """A pixel shuffle or unshuffle: a rearrangement with a factor."""

    factor: int

    def _describe(self) -> str:
        return (f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}, "
                f"factor {self.factor}")

    def _set_shapes(self, input_shape: Sequence[int], factor: int, name: str,
                    direction: Literal["up", "down"]) -> None:
        """Validate and set the shapes: channels to space (``"up"``) or space to channels."""
        shape = as_shape(input_shape, (2,))
        r = as_int(factor, name, 1)
        if direction == "up" and shape[0] % (r * r):
            raise ConvMatrixError(
                f"`input_shape` (={shape}) must have channels divisible by "
                f"`{name}`² (={r * r})")
        if direction == "down" and (shape[1] % r or shape[2] % r):
            raise ConvMatrixError(
                f"`input_shape` (={shape}) must have height and width divisible by "
                f"`{name}` (={r})")
        self.factor = r
        self._input_shape = shape
        self._output_shape = ((shape[0] // (r * r), shape[1] * r, shape[2] * r)
                              if direction == "up"
                              else (shape[0] * r * r, shape[1] // r, shape[2] // r))


class PixelShuffle(_Shuffle):
    """``(C·r², H, W) → (C, H·r, W·r)`` as torch's ``pixel_shuffle``: a permutation.

    ``out[c, h·r + i, w·r + j] = in[c·r² + i·r + j, h, w]``.

    Parameters
    ----------
    input_shape : sequence of int
        One sample ``(C·r², H, W)``.
    upscale_factor : int
        ``r``, the factor each spatial axis grows by.

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
        self._set_shapes(input_shape, upscale_factor, "upscale_factor", "up")

    def _forward(self, x: np.ndarray) -> np.ndarray:
        r = self.factor
        c, h, w = self._output_shape[0], self._input_shape[1], self._input_shape[2]
        return (x.reshape(x.shape[0], c, r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
                .reshape(x.shape[0], *self._output_shape))

    def _adjoint(self) -> Layer:
        return PixelUnshuffle(self.output_shape, self.factor)


class PixelUnshuffle(_Shuffle):
    """``(C, H·r, W·r) → (C·r², H, W)`` as torch's ``pixel_unshuffle`` (PixelShuffle's inverse).

    Parameters
    ----------
    input_shape : sequence of int
        One sample ``(C, H·r, W·r)``.
    downscale_factor : int
        ``r``, the factor each spatial axis shrinks by.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> cm.PixelUnshuffle((1, 2, 2), 2)(np.arange(4).reshape(1, 2, 2)).ravel()
    array([0, 1, 2, 3])
    """

    def __init__(self, input_shape: Sequence[int], downscale_factor: int) -> None:
        self._set_shapes(input_shape, downscale_factor, "downscale_factor", "down")

    def _forward(self, x: np.ndarray) -> np.ndarray:
        r = self.factor
        c, h, w = self._input_shape[0], self._output_shape[1], self._output_shape[2]
        return (x.reshape(x.shape[0], c, h, r, w, r).transpose(0, 1, 3, 5, 2, 4)
                .reshape(x.shape[0], *self._output_shape))

    def _adjoint(self) -> Layer:
        return PixelShuffle(self.output_shape, self.factor)


_BLOCK_MODES = ("DCR", "CRD")


def _block_mode(mode: Any) -> str:
    if mode not in _BLOCK_MODES:
        raise ConvMatrixError(f"`mode` (={mode!r}) must be 'DCR' (depth-column-row, ONNX's "
                              f"default) or 'CRD' (column-row-depth, torch's pixel_shuffle)")
    return str(mode)


class DepthToSpace(_Shuffle):
    """ONNX ``DepthToSpace``: ``(C·b², H, W) → (C, H·b, W·b)``, a permutation.

    ``mode="DCR"`` (ONNX's default): ``out[c, h·b + i, w·b + j] = in[(i·b + j)·C + c, h, w]``;
    ``mode="CRD"``: ``in[c·b² + i·b + j, h, w]`` — torch's ``pixel_shuffle``
    (:class:`PixelShuffle`). The adjoint (and inverse) is :class:`SpaceToDepth` in the same mode.

    Parameters
    ----------
    input_shape : sequence of int
        One sample ``(C·b², H, W)``.
    blocksize : int
    mode : {"DCR", "CRD"}, optional

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> d2s = cm.DepthToSpace((4, 1, 1), 2)
    >>> d2s
    DepthToSpace(4×1×1 → 1×2×2, factor 2, DCR)
    >>> d2s(np.arange(4).reshape(4, 1, 1))
    array([[[0, 1],
            [2, 3]]])
    >>> cm.DepthToSpace((8, 1, 1), 2)(np.arange(8).reshape(8, 1, 1))[1]
    array([[1, 3],
           [5, 7]])
    >>> d2s.T
    SpaceToDepth(1×2×2 → 4×1×1, factor 2, DCR)
    """

    def __init__(self, input_shape: Sequence[int], blocksize: int, mode: str = "DCR") -> None:
        self.mode = _block_mode(mode)
        self._set_shapes(input_shape, blocksize, "blocksize", "up")

    def _forward(self, x: np.ndarray) -> np.ndarray:
        b = self.factor
        c, h, w = self._output_shape[0], self._input_shape[1], self._input_shape[2]
        if self.mode == "DCR":  # channel index (i·b + j)·C + c
            split = x.reshape(x.shape[0], b, b, c, h, w).transpose(0, 3, 4, 1, 5, 2)
        else:  # channel index c·b² + i·b + j
            split = x.reshape(x.shape[0], c, b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
        return split.reshape(x.shape[0], *self._output_shape)

    def _adjoint(self) -> Layer:
        return SpaceToDepth(self.output_shape, self.factor, self.mode)

    def _describe(self) -> str:
        return f"{super()._describe()}, {self.mode}"


class SpaceToDepth(_Shuffle):
    """ONNX ``SpaceToDepth``: ``(C, H·b, W·b) → (C·b², H, W)``, :class:`DepthToSpace`'s inverse.

    ``out[(i·b + j)·C + c, h, w] = in[c, h·b + i, w·b + j]`` (``mode="DCR"``, the ONNX
    operator's only layout); ``mode="CRD"`` puts the block offsets after the channel
    (``c·b² + i·b + j``, torch's ``pixel_unshuffle``).

    Parameters
    ----------
    input_shape : sequence of int
        One sample ``(C, H·b, W·b)``.
    blocksize : int
    mode : {"DCR", "CRD"}, optional

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> s2d = cm.SpaceToDepth((2, 2, 2), 2)
    >>> s2d(np.arange(8).reshape(2, 2, 2)).ravel()
    array([0, 4, 1, 5, 2, 6, 3, 7])
    >>> s2d.T
    DepthToSpace(8×1×1 → 2×2×2, factor 2, DCR)
    """

    def __init__(self, input_shape: Sequence[int], blocksize: int, mode: str = "DCR") -> None:
        self.mode = _block_mode(mode)
        self._set_shapes(input_shape, blocksize, "blocksize", "down")

    def _forward(self, x: np.ndarray) -> np.ndarray:
        b = self.factor
        c, h, w = self._input_shape[0], self._output_shape[1], self._output_shape[2]
        blocks = x.reshape(x.shape[0], c, h, b, w, b)
        order = (0, 3, 5, 1, 2, 4) if self.mode == "DCR" else (0, 1, 3, 5, 2, 4)
        return blocks.transpose(*order).reshape(x.shape[0], *self._output_shape)

    def _adjoint(self) -> Layer:
        return DepthToSpace(self.output_shape, self.factor, self.mode)

    def _describe(self) -> str:
        return f"{super()._describe()}, {self.mode}"
