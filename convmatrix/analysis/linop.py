"""A layer as a matrix-free ``scipy.sparse.linalg.LinearOperator`` (its matrix is never built)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.sparse.linalg import LinearOperator

from convmatrix._progress import Progress, ProgressArg, check_progress, interactive
from convmatrix.builder.apply import conv_apply, conv_apply_adjoint
from convmatrix.builder.budget import DEFAULT_MAX_BYTES, apply_nbytes, check_budget, check_max_bytes
from convmatrix.builder.dtypes import integer_dtype, max_abs
from convmatrix.geometry.view import AffineMap
from convmatrix.typing import Direction

__all__ = ["CHUNK_BYTES", "LayerOperator", "operator_dtype"]

CHUNK_BYTES: int = 64 * 2**20
"""Columns of a ``matmat`` go through the layer in batches of about this many bytes."""


def operator_dtype(layer: AffineMap) -> np.dtype[Any]:
    """The layer's dtype, or float64 for bool and integer weights."""
    dtype = np.dtype(layer.dtype)
    return np.dtype(np.float64) if dtype.kind in "biu" else dtype


def _abs_row_sum(layer: AffineMap, direction: Direction) -> int:
    """``‖M‖∞`` of the direction being applied: the layer's own, or its adjoint's."""
    target: Any = layer.T if direction == "adjoint" else layer
    return int(target.abs_row_sum()) if hasattr(target, "abs_row_sum") else 2**64


class LayerOperator(LinearOperator):
    """``layer.matrix()`` as a LinearOperator that applies the layer instead of storing it.

    ``matvec``/``matmat`` run the layer's batch hook ``apply_forward`` and
    ``rmatvec``/``rmatmat`` its ``apply_adjoint`` (conjugated for complex weights, so
    ``rmatvec`` is the Hermitian adjoint ``Cᴴ``). The offset (bias) is not part of the
    operator. Columns are processed in batches of about :data:`CHUNK_BYTES` (at least one
    sample), so the working memory is a small multiple of one input plus one output beyond
    the result itself. A channels-first convolution (or its adjoint) is applied by its tiled
    kernels (:func:`convmatrix.builder.apply.conv_apply`), which read the columns in place
    and write straight into the result: beyond ``X`` and the result only their bounded
    workspace (:data:`convmatrix.builder.budget.WORKSPACE_BYTES`), so they take all columns
    in one call (in batches only while progress is reported).

    The operator's dtype is float64 for integer and bool layers (what scipy's solvers expect);
    integer or bool data on such a layer is applied exactly instead, in the smallest integer
    type that holds ``max(‖M‖∞, 1)·max|x|`` (‖Mᵀ‖∞ for the adjoint), or refused with
    :class:`~convmatrix.ConvMatrixError` beyond int64 — the rule of
    :data:`convmatrix.builder.dtypes.INTEGER_RULE`.

    Parameters
    ----------
    layer : AffineMap
        Any layer object.
    max_bytes : int or None, optional
        What a product may hold at once (the result plus one batch of columns in flight,
        with the layer's working buffers), checked before allocating; the operator itself is
        refused when one sample in flight already exceeds it. None disables the guard.
    progress : None, bool or callable, optional
        Progress of ``matmat``/``rmatmat`` over many columns (by batch): None shows a bar
        when interactive, a callable gets ``(columns done, columns)``; see
        :mod:`convmatrix._progress`.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.arange(4.0).reshape(1, 1, 2, 2), (1, 3, 3))
    >>> op = conv.operator()
    >>> op
    <4x9 LayerOperator with dtype=float64>
    >>> x = np.arange(9.0)
    >>> bool(np.allclose(op @ x, conv.matrix() @ x))
    True
    >>> bool(np.allclose(op.rmatvec(np.ones(4)), conv.matrix().T @ np.ones(4)))
    True
    """

    def __init__(self, layer: AffineMap, *, max_bytes: int | None = DEFAULT_MAX_BYTES,
                 progress: ProgressArg = None) -> None:
        self.layer = layer
        self.max_bytes = check_max_bytes(max_bytes)
        self.progress = check_progress(progress)
        super().__init__(dtype=operator_dtype(layer), shape=layer.matrix_shape)
        itemsize = max(self.dtype.itemsize, 8)
        check_budget(f"the operator of {layer!r} (one sample in flight)",
                     self._in_flight(1, itemsize), self.max_bytes)

    def _in_flight(self, columns: int, itemsize: int) -> int:
        chain = layer.chain() if hasattr(layer := self.layer, "chain") else (layer,)
        return apply_nbytes(chain, columns, itemsize)

    def _columns_per_batch(self, itemsize: int) -> int:
        n_out, n_in = self.shape
        return max(1, CHUNK_BYTES // (itemsize * (n_in + n_out)))

    def _reports(self) -> bool:
        """Whether progress is reported (a callable, True, or None in an interactive session)."""
        return self.progress is not False and (self.progress is not None or interactive())

    def _kernel(self, direction: Direction) -> Callable[[np.ndarray, np.ndarray], Any] | None:
        """The tiled kernel ``kernel(batch, out)`` of a channels-first convolution, or None.

        For one convolution (or its adjoint) the product is written straight into the result;
        any other layer goes through its apply hooks.

        ``conv_view()`` says the layer's matrix is ``C`` or ``Cᵀ`` of its spec and weight, so
        the operator runs :func:`~convmatrix.builder.apply.conv_apply` or its adjoint itself:
        the columns are read in place and no batch is copied into the result.
        """
        layer = self.layer
        chain = layer.chain() if hasattr(layer, "chain") else (layer,)
        view = layer.conv_view() if len(chain) == 1 and hasattr(layer, "conv_view") else None
        if view is None or view.layout != "channels_first":
            return None
        kernel = conv_apply if view.direction == direction else conv_apply_adjoint
        spec, weight = view.spec, view.weight
        return lambda batch, out: kernel(spec, weight, batch, out=out)

    def _batched(self, X: np.ndarray, apply: Any, in_shape: tuple[int, ...],
                 out_shape: tuple[int, ...], direction: Direction = "forward") -> np.ndarray:
        rows = math.prod(out_shape)
        X = np.asarray(X)
        dtype = np.result_type(self.dtype, X.dtype)
        layer_dtype = np.dtype(self.layer.dtype)
        if X.dtype.kind in "biu" and layer_dtype.kind in "biu":
            # integer data on an integer layer: exact, widened by the integer rule
            bound = max(_abs_row_sum(self.layer, direction), 1) * max_abs(X)
            dtype = integer_dtype(np.result_type(layer_dtype, X.dtype), bound,
                                  f"the operator of {self.layer!r} on {X.dtype} data")
        count = X.shape[1]
        step = self._columns_per_batch(dtype.itemsize)
        kernel = self._kernel(direction)
        conjugate = direction == "adjoint" and (np.iscomplexobj(X) or self.dtype.kind == "c")
        itemsize = max(dtype.itemsize, 8)
        check_budget(f"the operator product of {self.layer!r} with {count} column(s)",
                     rows * count * dtype.itemsize
                     + self._in_flight(min(step, max(count, 1)), itemsize), self.max_bytes)
        if kernel is not None and not self._reports():
            # the kernels' workspace is bounded whatever the batch: all columns in one call,
            # read and written in place (a batch of some columns is a strided block of the
            # result, which the kernels would write through a copy)
            step = max(count, 1)
        result = np.empty((rows, count), dtype=dtype)
        # progress over the columns when there is more than one batch (False: a single one)
        with Progress(count, self.progress if count > step else False, "columns") as bar:
            for start in range(0, count, step):
                stop = min(start + step, count)
                # the columns as a batch without copying them (the kernels read any strides)
                batch = X[:, start:stop].T.astype(dtype, copy=False)
                batch = batch.reshape(stop - start, *in_shape)
                if kernel is not None:
                    target = np.reshape(result[:, start:stop].T, (stop - start, *out_shape),
                                        copy=False)
                    kernel(np.conj(batch) if conjugate else batch, target)
                    if conjugate:
                        np.conjugate(target, out=target)
                    bar.advance(stop - start)
                    continue
                out = apply(batch)
                columns = out.reshape(stop - start, rows).T
                if (stop - start == count and columns.dtype == dtype
                        and not np.may_share_memory(columns, X)):
                    return columns  # one batch: the layer's output is the result
                result[:, start:stop] = columns
                bar.advance(stop - start)
        return result

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        layer = self.layer
        return self._batched(X, layer.apply_forward, layer.input_shape, layer.output_shape)

    def _rmatmat(self, X: np.ndarray) -> np.ndarray:
        layer = self.layer
        apply: Callable[[np.ndarray], np.ndarray] = layer.apply_adjoint
        if np.iscomplexobj(X) or self.dtype.kind == "c":
            def apply(y: np.ndarray) -> np.ndarray:
                return np.conj(layer.apply_adjoint(np.conj(y)))
        return self._batched(X, apply, layer.output_shape, layer.input_shape, direction="adjoint")

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        return self._matmat(np.reshape(x, (-1, 1)))[:, 0]

    def _rmatvec(self, x: np.ndarray) -> np.ndarray:
        return self._rmatmat(np.reshape(x, (-1, 1)))[:, 0]

    def __repr__(self) -> str:
        m, n = self.shape
        return f"<{m}x{n} {type(self).__name__} with dtype={self.dtype}>"
