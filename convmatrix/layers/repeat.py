"""Integer repetition of pixels along each spatial axis (a selection matrix, Kronecker per axis)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers._separable import SelectionLayer, as_shape, axis_matrix

__all__ = ["Repeat"]


class Repeat(SelectionLayer):
    """Each pixel repeated ``size`` times per spatial axis (nearest-neighbour upsampling by ints).

    Keras' ``UpSampling*`` with ``interpolation="nearest"`` (channels first here; wrap it in
    :class:`~convmatrix.layers.channels_last.ChannelsLast` for Keras' layout).

    Examples
    --------
    >>> import numpy as np
    >>> Repeat((1, 2), (3,))(np.array([[1, 2]]))
    array([[1, 1, 1, 2, 2, 2]])
    """

    def __init__(self, input_shape: Sequence[int], size: Sequence[int]) -> None:
        self._input_shape = as_shape(input_shape)
        self.size = tuple(int(s) for s in size)
        if len(self.size) != len(self._input_shape) - 1 or min(self.size) < 1:
            raise ConvMatrixError(
                f"`size` (={size!r}) must be one positive int per spatial axis of "
                f"{self._input_shape}")
        self._output_shape = (self._input_shape[0],
                              *(n * s for n, s in zip(self._input_shape[1:], self.size,
                                                      strict=True)))

    def _axis_matrices(self) -> list[sp.csr_array | None]:
        axes: list[sp.csr_array | None] = [None]
        for n, s in zip(self._input_shape[1:], self.size, strict=True):
            rows = np.arange(n * s)
            axes.append(axis_matrix(rows, rows // s, np.ones(n * s, dtype=np.int64),
                                    (n * s, n)))
        return axes

    def _describe(self) -> str:
        return (f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}, "
                f"size {shape_text(self.size)}")
