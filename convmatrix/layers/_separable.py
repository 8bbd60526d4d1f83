"""Layers that act on each axis of a sample separately: ``M = A_0 ⊗ A_1 ⊗ ⋯`` (Kronecker)."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.sparse import SparseFormat
from convmatrix.geometry.spec import as_sample_shape
from convmatrix.layers.base import ShapedLayer

if TYPE_CHECKING:
    from convmatrix.geometry.view import AxisSteps

__all__ = ["SelectionLayer", "SeparableLayer", "as_int", "as_shape", "axis_matrix", "per_axis"]


def as_int(value: Any, name: str, minimum: int | None = None) -> int:
    """One integer argument, named in the error if it is not one (or below ``minimum``)."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ConvMatrixError(f"`{name}` (={value!r}) must be an int")
    number = int(value)
    if minimum is not None and number < minimum:
        raise ConvMatrixError(f"`{name}` (={value!r}) must be an int >= {minimum}")
    return number


def as_shape(input_shape: Any, spatial: Sequence[int] = (1, 2, 3)) -> tuple[int, ...]:
    """``(C, *spatial)`` of one sample with ``len(spatial)`` in ``spatial``; sizes >= 1."""
    shape = as_sample_shape(input_shape, layout="(C, *spatial)")
    if len(shape) - 1 not in spatial:
        allowed = " or ".join(str(n) for n in spatial)
        raise ConvMatrixError(
            f"`input_shape` (={shape}) must be (C, *spatial) with {allowed} spatial axes (one "
            f"sample, no batch axis)")
    return shape


def per_axis(value: Any, ndim: int, name: str, minimum: int | None = None) -> tuple[int, ...]:
    """An int or one int per spatial axis, as a tuple of ``ndim`` ints."""
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        return (as_int(value, name, minimum),) * ndim
    values = tuple(value)
    if len(values) == 1:
        values *= ndim
    if len(values) != ndim:
        raise ConvMatrixError(
            f"`{name}` (={value!r}) must be an int or {ndim} ints (one per spatial axis)")
    return tuple(as_int(v, name, minimum) for v in values)


def axis_matrix(rows: np.ndarray, cols: np.ndarray, values: np.ndarray,
                shape: tuple[int, int]) -> sp.csr_array:
    """A 1-D map along one axis from ``(row, col, value)`` triplets (duplicates add)."""
    matrix = sp.coo_array((values, (rows, cols)), shape=shape).tocsr()
    matrix.sum_duplicates()
    return sp.csr_array(matrix)


class SeparableLayer(ShapedLayer):
    """A layer whose matrix is the Kronecker product of one matrix per sample axis.

    Subclasses give :meth:`_axis_matrices` (one sparse matrix per axis of the sample, the
    channel axis first), and the shapes; the matrix, the nnz estimate and the matrix-free
    application along each axis (and its adjoint) follow.
    """

    @abstractmethod
    def _axis_matrices(self) -> list[sp.csr_array | None]:
        """``A_k`` of shape ``(output_shape[k], input_shape[k])`` per axis; None: identity."""

    def _full_axis_matrices(self) -> list[sp.csr_array]:
        return [sp.csr_array(sp.identity(n, dtype=self.dtype, format="csr")) if a is None else a
                for a, n in zip(self._axis_matrices(), self.input_shape, strict=True)]

    def _nnz_estimate(self) -> int:
        return math.prod(int(a.nnz) for a in self._full_axis_matrices())

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        axes = self._full_axis_matrices()
        nnz = math.prod(int(a.nnz) for a in axes)
        rows = math.prod(self.output_shape)
        nbytes = nnz * (self.dtype.itemsize + 8) + (rows + 1) * 8
        if max_bytes is not None and nbytes > max_bytes:
            raise ConvMatrixError(
                f"the {type(self).__name__} matrix needs {nbytes / 2**30:.2f} GiB, over "
                f"`max_bytes` (={max_bytes / 2**30:.2f} GiB); pass a larger max_bytes (or None)")
        matrix: sp.sparray = sp.csr_array(axes[-1])
        for axis in reversed(axes[:-1]):
            matrix = sp.kron(axis, matrix, format="csr")
        return sp.csr_array(matrix.astype(self.dtype, copy=False)).asformat(format)

    def matrix_rows(self, start: int, stop: int) -> sp.csr_array:
        """Rows ``start:stop`` of :meth:`matrix` (CSR), built without the rest of the matrix.

        The hook :func:`convmatrix.analysis.blocks.matrix_blocks` streams row blocks with:
        rows of a Kronecker product are Kronecker products of rows of its factors.
        """
        rows = sp.csr_array(_kron_rows(self._full_axis_matrices(), start, stop))
        return sp.csr_array(rows.astype(self.dtype, copy=False))

    def apply_forward(self, x: np.ndarray) -> np.ndarray:
        """The linear part on a batch (see :meth:`Layer.apply_forward`)."""
        return _along_axes(x, self._axis_matrices())

    def apply_adjoint(self, y: np.ndarray) -> np.ndarray:
        """The adjoint on a batch (see :meth:`Layer.apply_adjoint`)."""
        return _along_axes(y, [None if a is None else sp.csr_array(a.T)
                               for a in self._axis_matrices()])

    def axis_steps(self) -> AxisSteps | None:
        """Each spatial axis matrix read as a lattice step where it is one.

        Nearest upsampling by an integer factor ``r`` is ``k = s = r``, zero padding or cropping a
        shift (``k = s = 1``), a per-channel map the identity; decimating axes (pooling) are none.
        The channel factor is the entries per row of the channel matrix (None: not uniform).
        """
        from convmatrix.analysis.checkerboard import lattice_step
        from convmatrix.symbolic.composed import AxisStep

        matrices = self._axis_matrices()
        channel = matrices[0]
        if channel is None:
            factor = 1
        else:
            per_row = np.diff(sp.csr_array(channel).indptr)
            if per_row.size == 0 or np.any(per_row != per_row[0]):
                return None
            factor = int(per_row[0])
        steps: list[list[AxisStep] | None] = []
        for matrix in matrices[1:]:
            if matrix is None:
                steps.append([AxisStep(1, 1, label=type(self).__name__)])
                continue
            found = lattice_step(matrix)
            steps.append(None if found is None else
                         [AxisStep(*found, label=type(self).__name__)])
        return steps, factor


def _along_axes(x: np.ndarray, axes: list[sp.csr_array | None]) -> np.ndarray:
    """Apply ``A_k`` along axis ``k + 1`` of a batch (axis 0) for every non-identity axis."""
    for position, matrix in enumerate(axes):
        if matrix is None:
            continue
        diagonal = _diagonal(matrix)
        if diagonal is not None:  # a per-channel scale (batch norm): broadcast, no product
            shape = [1] * x.ndim
            shape[position + 1] = diagonal.size
            x = x * diagonal.reshape(shape)
            continue
        moved = np.moveaxis(x, position + 1, 0)
        flat = matrix @ moved.reshape(moved.shape[0], -1)
        x = np.moveaxis(flat.reshape(matrix.shape[0], *moved.shape[1:]), 0, position + 1)
    return x


def _diagonal(matrix: sp.csr_array) -> np.ndarray | None:
    """The diagonal of a square CSR matrix that stores exactly its diagonal, else None."""
    n = matrix.shape[0]
    if matrix.shape[1] != n or matrix.nnz != n or not sp.issparse(matrix) \
            or matrix.format != "csr":
        return None
    if not (np.array_equal(matrix.indptr, np.arange(n + 1))
            and np.array_equal(matrix.indices, np.arange(n))):
        return None
    return np.asarray(matrix.data)


def _kron_rows(axes: list[sp.csr_array], start: int, stop: int) -> sp.sparray:
    """Rows ``start:stop`` of ``axes[0] ⊗ axes[1] ⊗ ⋯``, holding no more than those rows."""
    head = axes[0]
    if len(axes) == 1:
        return sp.csr_array(head[start:stop])
    tail_rows = math.prod(a.shape[0] for a in axes[1:])
    first, last = start // tail_rows, (stop - 1) // tail_rows
    if first == last:
        return sp.kron(head[first:first + 1], _kron_rows(axes[1:], start - first * tail_rows,
                                                         stop - first * tail_rows), format="csr")
    parts = [sp.kron(head[first:first + 1], _kron_rows(axes[1:], start - first * tail_rows,
                                                       tail_rows), format="csr")]
    if last > first + 1:  # whole tails: fewer rows than the block itself
        parts.append(sp.kron(head[first + 1:last], _kron_rows(axes[1:], 0, tail_rows),
                             format="csr"))
    parts.append(sp.kron(head[last:last + 1], _kron_rows(axes[1:], 0, stop - last * tail_rows),
                         format="csr"))
    return sp.vstack(parts, format="csr")


class SelectionLayer(SeparableLayer):
    """A separable layer whose axis matrices are 0/1 selections (padding, repetition, slicing).

    Its matrix is int64 and every row copies one input value (or none), so the row bound
    :meth:`abs_row_sum` is 1 whatever the shapes.
    """

    @property
    def dtype(self) -> np.dtype[Any]:
        """int64: the matrix selects (and may repeat) input values."""
        return np.dtype(np.int64)

    def abs_row_sum(self) -> int:
        """1: every row of the matrix copies one input value (or none)."""
        return 1
