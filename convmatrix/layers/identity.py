"""The identity layer (torch ``nn.Identity``, ``nn.Dropout`` in eval mode)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from convmatrix.builder.sparse import SparseFormat
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers._separable import as_int
from convmatrix.layers.base import Layer

if TYPE_CHECKING:
    from convmatrix.geometry.view import AxisSteps

__all__ = ["Identity", "IdentityMatrix"]


class IdentityMatrix(Layer):
    """A kind whose matrix is the identity on the flattened sample (identity, reshapes).

    One home for what such kinds share: an int64 identity matrix, its streamed rows, its entry
    count and its row-sum bound; the kind supplies the shapes and how a batch moves.
    """

    @property
    def dtype(self) -> np.dtype[Any]:
        """int64: an identity matrix."""
        return np.dtype(np.int64)

    def abs_row_sum(self) -> int:
        """1: every row of the matrix copies one input value."""
        return 1

    def _nnz_estimate(self) -> int:
        return math.prod(self.input_shape)

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        return sp.eye_array(math.prod(self.input_shape), dtype=np.int64, format=format)

    def matrix_rows(self, start: int, stop: int) -> sp.csr_array:
        """Rows ``start:stop`` of :meth:`matrix` (CSR), for streaming row blocks."""
        count = stop - start
        return sp.csr_array((np.ones(count, dtype=np.int64), np.arange(start, stop),
                             np.arange(count + 1)), shape=(count, math.prod(self.input_shape)))


class Identity(IdentityMatrix):
    """``y = x``: the identity matrix of one sample's size.

    Examples
    --------
    >>> import convmatrix as cm
    >>> cm.Identity((2, 3)).matrix().nnz
    6
    """

    def __init__(self, input_shape: Sequence[int]) -> None:
        self._shape = tuple(as_int(v, "input_shape", 1) for v in input_shape)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Any shape."""
        return self._shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The input shape."""
        return self._shape

    def apply_forward(self, x: np.ndarray) -> np.ndarray:
        """The linear part on a batch (see :meth:`Layer.apply_forward`)."""
        return x.copy()

    def apply_adjoint(self, y: np.ndarray) -> np.ndarray:
        """The adjoint on a batch (see :meth:`Layer.apply_adjoint`)."""
        return y.copy()

    def _adjoint(self) -> Layer:
        return Identity(self._shape)

    def axis_steps(self) -> AxisSteps:
        """A unit step on every spatial axis, channel factor 1."""
        from convmatrix.symbolic.composed import AxisStep

        return [[AxisStep(1, 1, label="identity")] for _ in self._shape[1:]], 1

    def _describe(self) -> str:
        return shape_text(self._shape)
