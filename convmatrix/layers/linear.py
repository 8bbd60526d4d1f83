"""A fully connected layer (torch ``nn.Linear``): its weight is the matrix, stored sparse."""

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
from convmatrix.layers.base import ShapedLayer

__all__ = ["Linear"]


class Linear(ShapedLayer):
    """``y = W · x.ravel() + bias``: a dense weight in torch's layout ``(out, in)``.

    The matrix is the weight itself (stored as a sparse array, its zeros dropped); the
    matrix-free apply (:meth:`operator`, :meth:`__call__`) is a dense matrix product and
    never builds it.

    Parameters
    ----------
    weight : array_like, shape ``(out, in)``
        torch's ``nn.Linear.weight`` layout. Its dtype is the matrix's dtype.
    bias : array_like, shape ``(out,)``, optional
    input_shape : sequence of int, optional
        One sample of any shape whose size is ``in`` (flattened in C order, as
        ``torch.flatten``); default ``(in,)``. The output is ``(out,)``.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> layer = cm.Linear(np.array([[1, 2, 0, 0], [0, 0, 3, 4]]), bias=[1, -1],
    ...                   input_shape=(1, 2, 2))
    >>> layer
    Linear(1×2×2 → 2)
    >>> layer(np.ones((1, 2, 2), dtype=int))
    array([4, 6])
    >>> layer.matrix().nnz
    4
    >>> layer.T
    Adjoint(Linear(1×2×2 → 2))
    """

    def __init__(self, weight: Any, bias: Any = None,
                 input_shape: Sequence[int] | None = None) -> None:
        array = numeric_array(weight, "weight")
        if array.ndim != 2 or 0 in array.shape:
            raise ConvMatrixError(
                f"`weight` has shape {array.shape}; it must be (out_features, in_features), "
                f"both >= 1 (torch's nn.Linear layout)")
        out_features, in_features = array.shape
        shape = (in_features,) if input_shape is None else as_sample_shape(input_shape)
        if math.prod(shape) != in_features:
            raise ConvMatrixError(
                f"`input_shape` (={shape}) has {math.prod(shape)} values per sample, but "
                f"`weight` {array.shape} takes in_features={in_features}")
        self.weight = frozen(array)
        self.bias: np.ndarray | None = None
        if bias is not None:
            bias_array = numeric_array(bias, "bias")
            if bias_array.shape != (out_features,):
                raise ConvMatrixError(
                    f"`bias` has shape {bias_array.shape}; it must have one value per output "
                    f"feature ({out_features},)")
            self.bias = frozen(bias_array)
        self._input_shape = shape
        self._output_shape = (out_features,)

    @property
    def in_features(self) -> int:
        """Columns of the weight: values per input sample."""
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        """Rows of the weight: the output's length."""
        return int(self.weight.shape[0])

    @property
    def dtype(self) -> np.dtype[Any]:
        """The weight's dtype, which the matrix keeps."""
        return self.weight.dtype

    def _nnz_estimate(self) -> int:
        return int(self.weight.size)

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        return sp.csr_array(self.weight).asformat(format)

    def matrix_rows(self, start: int, stop: int) -> sp.csr_array:
        """Rows ``start:stop`` of :meth:`matrix` (CSR), for streaming row blocks."""
        return sp.csr_array(self.weight[start:stop])

    def offset(self) -> np.ndarray:
        """The bias (zeros without one)."""
        if self.bias is None:
            return np.zeros(self.out_features, dtype=self.dtype)
        return self.bias.copy()

    def abs_row_sum(self) -> int:
        """The largest absolute row sum of the weight (exact Python int for integers)."""
        from convmatrix.builder.dtypes import max_abs

        if self.weight.dtype.kind in "biu":
            top = max_abs(self.weight)
            if top * self.in_features < 2**62:  # int64 sums are exact
                return int(np.abs(self.weight.astype(np.int64)).sum(axis=1).max())
            return max(sum(abs(int(v)) for v in row) for row in self.weight.tolist())
        return max_abs(np.abs(self.weight).astype(np.float64).sum(axis=1))

    def apply_forward(self, batch: np.ndarray) -> np.ndarray:
        """``x @ Wᵀ`` on a batch, a dense GEMM (see :meth:`Layer.apply_forward`)."""
        return batch.reshape(batch.shape[0], -1) @ self.weight.T

    def apply_adjoint(self, batch: np.ndarray) -> np.ndarray:
        """``y @ W`` on a batch, reshaped to the input (see :meth:`Layer.apply_adjoint`)."""
        flat = batch.reshape(batch.shape[0], -1) @ self.weight
        return flat.reshape(batch.shape[0], *self._input_shape)

    def _describe(self) -> str:
        return f"{shape_text(self._input_shape)} → {shape_text(self._output_shape)}"
