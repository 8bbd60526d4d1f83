"""Rearrangements: kinds that move every input entry to one output position.

Their matrices are 0/1 permutation matrices: :class:`Permute` (``numpy.transpose`` of one
sample) and the base the pixel shuffles and the depth/space moves share.
"""

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
from convmatrix.layers.base import Layer, ShapedLayer

__all__ = ["Permute", "Rearrangement"]


class Rearrangement(ShapedLayer):
    """A kind that copies every input entry to exactly one output position.

    Its matrix is a permutation matrix (int64, one 1 per row and per column). Subclasses give
    the shapes and :meth:`_forward` (the rearrangement of a batch); the matrix, its budget
    estimate and the adjoint application (a scatter) follow from it.
    """

    @property
    def dtype(self) -> np.dtype[Any]:
        """int64: a permutation."""
        return np.dtype(np.int64)

    def abs_row_sum(self) -> int:
        """1: every row of the matrix copies one input value."""
        return 1

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """The rearrangement of a batch ``(B, *input_shape)`` → ``(B, *output_shape)``."""
        raise NotImplementedError

    def sources(self) -> np.ndarray:
        """``sources[i]``: the flat (C-order) input index that flat output ``i`` copies."""
        index = np.arange(math.prod(self.input_shape)).reshape(1, *self.input_shape)
        return self._forward(index).reshape(-1)

    def _nnz_estimate(self) -> int:
        return math.prod(self.input_shape)

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        size = self._nnz_estimate()
        if max_bytes is not None and size * 16 > max_bytes:
            raise ConvMatrixError(
                f"the {type(self).__name__} matrix needs {size * 16 / 2**30:.2f} GiB, over "
                f"`max_bytes` (={max_bytes / 2**30:.2f} GiB)")
        matrix = sp.csr_array((np.ones(size, dtype=np.int64), self.sources(),
                               np.arange(size + 1)), shape=(size, size))
        return matrix.asformat(format)

    def apply_forward(self, batch: np.ndarray) -> np.ndarray:
        """The linear part on a batch (see :meth:`Layer.apply_forward`)."""
        return np.ascontiguousarray(self._forward(batch))

    def apply_adjoint(self, batch: np.ndarray) -> np.ndarray:
        """The adjoint on a batch: every output value put back where it came from."""
        flat = np.empty((batch.shape[0], math.prod(self.input_shape)), dtype=batch.dtype)
        flat[:, self.sources()] = batch.reshape(batch.shape[0], -1)
        return flat.reshape(batch.shape[0], *self.input_shape)


def _axes(axes: Any, ndim: int) -> tuple[int, ...]:
    """``axes`` as a permutation of ``range(ndim)`` (negative entries count from the end)."""
    allowed = f"a permutation of range({ndim}) (negative entries count from the end)"
    if axes is None:
        return tuple(range(ndim - 1, -1, -1))
    if isinstance(axes, str) or not hasattr(axes, "__iter__"):
        raise ConvMatrixError(f"`axes` (={axes!r}) must be {allowed}")
    items = tuple(axes)
    for item in items:
        if isinstance(item, bool) or not hasattr(item, "__index__") \
                or not -ndim <= int(item) < ndim:
            raise ConvMatrixError(f"`axes` (={items!r}) must be {allowed}; got {item!r}")
    values = tuple(int(item) % ndim for item in items)
    if sorted(values) != list(range(ndim)):
        raise ConvMatrixError(
            f"`axes` (={items!r}) must be {allowed}: every axis of the {ndim}-axis sample "
            f"exactly once")
    return values


class Permute(Rearrangement):
    """``numpy.transpose(x, axes)`` of one sample: a 0/1 permutation matrix.

    ``out[i_0, …, i_{n-1}]`` is ``x`` at the index whose axis ``axes[k]`` holds ``i_k``, with
    both sides flattened in C order (ONNX ``Transpose`` with ``perm`` without the batch axis,
    torch ``permute``/``transpose`` of one sample). The adjoint is the inverse permutation.

    Parameters
    ----------
    input_shape : sequence of int
        One sample, any shape (no batch axis).
    axes : sequence of int or None
        A permutation of ``range(len(input_shape))``: output axis ``k`` is input axis
        ``axes[k]``. Negative entries count from the end; None reverses the axes (numpy's
        default).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> layer = cm.Permute((2, 3, 4), (2, 0, 1))
    >>> layer
    Permute(2×3×4 → 4×2×3, axes (2, 0, 1))
    >>> x = np.arange(24).reshape(2, 3, 4)
    >>> bool((layer(x) == x.transpose(2, 0, 1)).all())
    True
    >>> layer.T
    Permute(4×2×3 → 2×3×4, axes (1, 2, 0))
    >>> cm.Permute((2, 3), None).matrix().toarray()
    array([[1, 0, 0, 0, 0, 0],
           [0, 0, 0, 1, 0, 0],
           [0, 1, 0, 0, 0, 0],
           [0, 0, 0, 0, 1, 0],
           [0, 0, 1, 0, 0, 0],
           [0, 0, 0, 0, 0, 1]])
    """

    def __init__(self, input_shape: Sequence[int], axes: Sequence[int] | None) -> None:
        shape = as_sample_shape(input_shape)
        self.axes = _axes(axes, len(shape))
        self._input_shape = shape
        self._output_shape = tuple(shape[a] for a in self.axes)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return x.transpose(0, *(a + 1 for a in self.axes))

    def inverse_axes(self) -> tuple[int, ...]:
        """The axes of the inverse permutation (those of :attr:`T`)."""
        return tuple(int(a) for a in np.argsort(self.axes))

    def apply_adjoint(self, batch: np.ndarray) -> np.ndarray:
        """The inverse permutation of a batch (see :meth:`Layer.apply_adjoint`)."""
        return np.ascontiguousarray(batch.transpose(0, *(a + 1 for a in self.inverse_axes())))

    def _adjoint(self) -> Layer:
        return Permute(self._output_shape, self.inverse_axes())

    def _describe(self) -> str:
        return (f"{shape_text(self._input_shape)} → {shape_text(self._output_shape)}, "
                f"axes {self.axes}")
