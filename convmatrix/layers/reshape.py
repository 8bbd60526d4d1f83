"""Re-indexing kinds: ``Reshape``, ``Flatten`` and ``Slice`` (``chunk``/``split``/slicing).

``Reshape`` and ``Flatten`` are identity matrices between two shapes; ``Slice`` a selection
along one axis of the sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import shape_text
from convmatrix.geometry.spec import as_sample_shape
from convmatrix.layers._checks import sample_axis
from convmatrix.layers._separable import SelectionLayer, as_int, axis_matrix
from convmatrix.layers.base import Layer, ShapedLayer
from convmatrix.layers.identity import IdentityMatrix

__all__ = ["Flatten", "Reshape", "Slice"]


def _target_shape(shape: Any, size: int, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with at most one ``-1`` resolved so that it holds ``size`` values."""
    if isinstance(shape, str) or not hasattr(shape, "__iter__"):
        shape = (shape,)
    items = tuple(shape)
    for item in items:
        if isinstance(item, bool) or not hasattr(item, "__index__") \
                or (int(item) < 1 and int(item) != -1):
            raise ConvMatrixError(
                f"`shape` (={items!r}) must hold ints >= 1 and at most one -1, got {item!r}")
    values = [int(v) for v in items]
    if not values:
        raise ConvMatrixError("`shape` (=()) must have at least one axis")
    if values.count(-1) > 1:
        raise ConvMatrixError(f"`shape` (={items!r}) may hold at most one -1")
    known = math.prod(v for v in values if v != -1)
    if -1 in values:
        if size % known:
            raise ConvMatrixError(
                f"`shape` (={items!r}) cannot hold `input_shape` {input_shape} ({size} values): "
                f"{size} is not divisible by {known}")
        values[values.index(-1)] = size // known
    if math.prod(values) != size:
        raise ConvMatrixError(
            f"`shape` (={items!r}) holds {math.prod(values)} values but `input_shape` "
            f"{input_shape} holds {size}: a reshape keeps every value")
    return tuple(values)


class Reshape(IdentityMatrix, ShapedLayer):
    """``x.reshape(shape)`` of one sample (C order, as ``torch.reshape``/``view``): identity.

    Parameters
    ----------
    input_shape : sequence of int
        One sample, any shape.
    shape : sequence of int
        The output shape, with the same number of values; one entry may be ``-1``.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> layer = cm.Reshape((8,), (2, -1, 2))
    >>> layer
    Reshape(8 → 2×2×2)
    >>> layer(np.arange(8))[1]
    array([[4, 5],
           [6, 7]])
    >>> layer.T
    Reshape(2×2×2 → 8)
    """

    def __init__(self, input_shape: Sequence[int], shape: Sequence[int]) -> None:
        self._input_shape = as_sample_shape(input_shape)
        self._output_shape = _target_shape(shape, math.prod(self._input_shape),
                                           self._input_shape)

    def apply_forward(self, batch: np.ndarray) -> np.ndarray:
        """The reshaped batch, a copy (see :meth:`Layer.apply_forward`)."""
        return batch.reshape(batch.shape[0], *self._output_shape).copy()

    def apply_adjoint(self, batch: np.ndarray) -> np.ndarray:
        """The batch reshaped back (see :meth:`Layer.apply_adjoint`)."""
        return batch.reshape(batch.shape[0], *self._input_shape).copy()

    def _adjoint(self) -> Layer:
        return Reshape(self._output_shape, self._input_shape)


class Flatten(Reshape):
    """One sample flattened to a vector (torch ``nn.Flatten()`` per sample): identity.

    Parameters
    ----------
    input_shape : sequence of int
        One sample, any shape; the output is ``(∏input_shape,)``. (torch's
        ``nn.Flatten(start_dim, end_dim)`` over part of the axes is a :class:`Reshape`.)

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> flat = cm.Flatten((2, 2, 3))
    >>> flat
    Flatten(2×2×3 → 12)
    >>> flat.T
    Reshape(12 → 2×2×3)
    >>> flat(np.ones((2, 2, 3), dtype=int)).shape
    (12,)
    """

    def __init__(self, input_shape: Sequence[int]) -> None:
        super().__init__(input_shape, (-1,))


class Slice(SelectionLayer):
    """``x[..., start:stop:step, ...]`` along one axis of a sample: a selection matrix.

    torch's slicing, ``torch.chunk``, ``torch.split`` and ``narrow`` along channels (axis 0) or
    any other axis of the sample are this kind. ``start``/``stop``/``step`` follow Python's
    slice rules: None for the ends, negative values counting from the end, out-of-range
    values clipped (``step`` may be negative as in Python; torch allows only positive).

    Parameters
    ----------
    input_shape : sequence of int
        One sample, any shape.
    axis : int
        The axis of the sample (0 = channels for channels-first; negative from the end).
    start, stop : int or None
    step : int, optional
        Non-zero; default 1.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> half = cm.Slice((4, 2), 0, 2, None)        # torch.chunk(x, 2, dim=1)[1]
    >>> half
    Slice(4×2 → 2×2, axis 0, 2:4)
    >>> half(np.arange(8).reshape(4, 2))
    array([[4, 5],
           [6, 7]])
    >>> cm.Slice((5,), -1, None, None, -2)(np.arange(5))
    array([4, 2, 0])
    >>> half.T(np.ones((2, 2), dtype=int))
    array([[0, 0],
           [0, 0],
           [1, 1],
           [1, 1]])
    """

    def __init__(self, input_shape: Sequence[int], axis: int, start: int | None,
                 stop: int | None, step: int = 1) -> None:
        shape = as_sample_shape(input_shape)
        self.axis = sample_axis(axis, shape)
        bounds = [None if v is None else as_int(v, name)
                  for v, name in ((start, "start"), (stop, "stop"))]
        self.step = as_int(step, "step")
        if self.step == 0:
            raise ConvMatrixError("`step` (=0) must be a non-zero int")
        n = shape[self.axis]
        self.start, self.stop, _ = slice(bounds[0], bounds[1], self.step).indices(n)
        self.indices = np.arange(self.start, self.stop, self.step)
        if self.indices.size == 0:
            raise ConvMatrixError(
                f"`start`:`stop`:`step` (={start!r}:{stop!r}:{step!r}) selects nothing from "
                f"axis {self.axis} of size {n} in `input_shape` {shape}")
        self._input_shape = shape
        out = list(shape)
        out[self.axis] = int(self.indices.size)
        self._output_shape = tuple(out)

    def _axis_matrices(self) -> list[sp.csr_array | None]:
        axes: list[sp.csr_array | None] = [None] * len(self._input_shape)
        count = self.indices.size
        axes[self.axis] = axis_matrix(np.arange(count), self.indices,
                                      np.ones(count, dtype=np.int64),
                                      (count, self._input_shape[self.axis]))
        return axes

    def _index(self) -> tuple[slice, ...]:
        stop = self.stop if self.stop >= 0 else None
        return ((slice(None),) * (self.axis + 1)
                + (slice(self.start, stop, self.step),))

    def apply_forward(self, batch: np.ndarray) -> np.ndarray:
        """The selected entries of a batch (see :meth:`Layer.apply_forward`)."""
        return batch[self._index()].copy()

    def apply_adjoint(self, batch: np.ndarray) -> np.ndarray:
        """Zeros with the batch put back where it was selected (see :meth:`Layer.apply_adjoint`)."""
        out = np.zeros((batch.shape[0], *self._input_shape), dtype=batch.dtype)
        out[self._index()] = batch
        return out

    def _describe(self) -> str:
        step = "" if self.step == 1 else f":{self.step}"
        stop = "" if self.stop < 0 else str(self.stop)
        return (f"{shape_text(self._input_shape)} → {shape_text(self._output_shape)}, "
                f"axis {self.axis}, {self.start}:{stop}{step}")
