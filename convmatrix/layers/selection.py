"""Max pooling linearised at a point: the 0/1 matrix that picks each window's winning input.

Max pooling is piecewise linear: near a point ``x`` where no window is tied it *is* the
linear map that copies each window's largest input, and that map is its Jacobian at ``x``.
The kinds here compute, from ``x`` alone (no framework), which input each output picks —
ties broken as torch's backward does — and are layer objects like any other: exact sparse
matrix, zero offset (``M x`` is the pooled ``x``), adjoint, matrix-free apply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.sparse import SparseFormat
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers._separable import as_int, per_axis
from convmatrix.layers.base import Layer, ShapedLayer
from convmatrix.layers.pool import pool_output_size

__all__ = ["AdaptiveMaxPoolAt", "GlobalMaxPoolAt", "MaxPoolAt", "MaxSelection", "Ties",
           "point_array"]

Ties = Literal["first", "split"]
"""How a window whose largest value occurs more than once is differentiated: ``"first"``
picks the first occurrence in the window's row-major order (torch's ``max_pool*`` and
``adaptive_max_pool*`` backward, ``x.max(dim)``), ``"split"`` shares the derivative evenly
among the tied inputs (torch's ``amax``/``max()`` reductions)."""

_TIES: tuple[str, ...] = get_args(Ties)


def point_array(x: Any, name: str = "x", spatial: Sequence[int] | None = (1, 2, 3)
                ) -> np.ndarray:
    """``x`` (one sample, no batch axis) as a finite float64 array, checked.

    Parameters
    ----------
    x : array_like or torch tensor
    name : str
        The argument's name in errors.
    spatial : sequence of int or None
        Allowed numbers of spatial axes after the channel axis (None: any shape, ndim >= 1).
    """
    from convmatrix._arrays import to_numpy

    array = to_numpy(x)
    if array.dtype.kind not in "biuf":
        raise ConvMatrixError(f"`{name}` has dtype {array.dtype}; it must be real numbers")
    if spatial is not None and array.ndim - 1 not in spatial:
        allowed = " or ".join(str(n) for n in spatial)
        raise ConvMatrixError(
            f"`{name}` has shape {array.shape}; it must be one sample (C, *spatial) with "
            f"{allowed} spatial axes (no batch axis)")
    if array.ndim == 0 or array.size == 0:
        raise ConvMatrixError(f"`{name}` has shape {array.shape}; it must be a non-empty sample")
    array = np.array(array, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ConvMatrixError(
            f"`{name}` holds {int(np.sum(~np.isfinite(array)))} non-finite value(s) (NaN or inf): "
            f"the derivative there is not defined")
    return array


def _check_ties(ties: Any) -> Ties:
    if ties not in _TIES:
        raise ConvMatrixError(f"`ties` (={ties!r}) must be one of "
                              f"{', '.join(map(repr, _TIES))}")
    return ties  # type: ignore[no-any-return]


class MaxSelection(ShapedLayer):
    """The Jacobian of a max over windows at a point: output ``o`` copies its window's winner.

    Built from the point ``x`` and, per spatial axis, a table of the positions each output
    reads (``-1``: outside the input, e.g. padding). The matrix has one 1 per row (``ties=
    "first"``) or ``1/t`` on each of the ``t`` tied maxima (``"split"``); its offset is zero:
    ``M @ x.ravel()`` is the pooled ``x`` exactly. On the set of inputs where no window is
    tied and every window keeps its winner, the pooling *is* this linear map.

    Subclasses (:class:`MaxPoolAt`, :class:`AdaptiveMaxPoolAt`, :class:`GlobalMaxPoolAt`)
    make the position tables; every analysis and the matrix-free apply come from here.

    Attributes
    ----------
    winners : ndarray of int64, shape :attr:`output_shape`
        The flat input index (C order) each output copies (the first winner).
    tied : ndarray of int64, shape :attr:`output_shape`
        How many inputs share each window's maximum (1: no tie).
    """

    def __init__(self, x: Any, positions: Sequence[np.ndarray], ties: Ties = "first") -> None:
        array = point_array(x)
        self.ties: Ties = _check_ties(ties)
        channels, spatial = array.shape[0], array.shape[1:]
        windows = self._window_indices(spatial, positions)
        self._input_shape = tuple(array.shape)
        self._output_shape = (channels, *(p.shape[0] for p in positions))
        flat = array.reshape(channels, -1)
        padded = np.concatenate([flat, np.full((channels, 1), -np.inf)], axis=1)
        values = padded[:, windows]  # (C, outputs per channel, window)
        best = values.argmax(axis=2)
        per_channel = math.prod(spatial)
        base = (np.arange(channels) * per_channel)[:, None]
        first = np.take_along_axis(windows[None], best[..., None], axis=2)[..., 0]
        self.winners = (first + base).reshape(self._output_shape).astype(np.int64)
        top = np.take_along_axis(values, best[..., None], axis=2)
        hits = values == top
        self.tied = hits.sum(axis=2).reshape(self._output_shape).astype(np.int64)
        size = math.prod(self._output_shape)
        counts = hits.sum(axis=2).reshape(-1)
        tied_cols = (np.broadcast_to(windows[None], values.shape) + base[..., None])[hits]
        self._hits = sp.csr_array((np.ones(tied_cols.size), tied_cols,
                                   np.concatenate([[0], np.cumsum(counts)])),
                                  shape=(size, math.prod(self._input_shape)))
        if self.ties == "first" or int(self.tied.max(initial=1)) == 1:
            self._csr = sp.csr_array((np.ones(size), self.winners.reshape(-1), np.arange(size + 1)),
                                     shape=(size, math.prod(self._input_shape)))
        else:
            self._csr = sp.csr_array((np.repeat(1.0 / counts, counts), tied_cols,
                                      self._hits.indptr),
                                     shape=(size, math.prod(self._input_shape)))

    @staticmethod
    def _window_indices(spatial: tuple[int, ...], positions: Sequence[np.ndarray]
                        ) -> np.ndarray:
        """Flat per-channel input index of every (output, tap); ``∏spatial`` outside."""
        if len(positions) != len(spatial):
            raise ConvMatrixError(  # pragma: no cover - subclasses pass one table per axis
                f"{len(positions)} position tables for {len(spatial)} spatial axes")
        sentinel = math.prod(spatial)
        flat: np.ndarray = np.zeros((1, 1), dtype=np.int64)
        valid: np.ndarray = np.ones((1, 1), dtype=bool)
        for n, table in zip(spatial, positions, strict=True):
            table = np.asarray(table, dtype=np.int64)
            ok = (table >= 0) & (table < n)
            flat = (flat[:, None, :, None] * n + np.where(ok, table, 0)[None, :, None, :])
            valid = valid[:, None, :, None] & ok[None, :, None, :]
            flat = flat.reshape(flat.shape[0] * flat.shape[1], -1)
            valid = valid.reshape(flat.shape)
        if not np.all(valid.any(axis=1)):
            raise ConvMatrixError(  # pragma: no cover - the shape rules leave no empty window
                "a pooling window lies wholly outside the input")
        return np.where(valid, flat, sentinel)

    @property
    def kinks(self) -> int:
        """Outputs whose window maximum is tied (the point sits on a kink of the pooling)."""
        return int(np.count_nonzero(self.tied > 1))

    def live_kinks(self, constant: np.ndarray | None) -> int:
        """Tied windows among whose tied inputs at least one is not locally constant.

        ``constant`` (bool, :attr:`input_shape`, or None: none) marks the inputs that do not
        change near the point (e.g. the zeros of switched-off ReLUs); a tie among such inputs
        only does not make the pooling non-linear there.
        """
        if constant is None:
            return self.kinks
        live = self._hits @ (~constant.reshape(-1)).astype(np.float64)
        return int(np.count_nonzero((self.tied.reshape(-1) > 1) & (live > 0)))

    def constant_outputs(self, constant: np.ndarray | None) -> np.ndarray | None:
        """The outputs that are locally constant: every tied input of their window is."""
        if constant is None:
            return None
        live = self._hits @ (~constant.reshape(-1)).astype(np.float64)
        return (live == 0).reshape(self._output_shape)

    def _nnz_estimate(self) -> int:
        return int(self._csr.nnz)

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        return self._csr.copy().asformat(format)

    def abs_row_sum(self) -> int:
        """1: every row copies one input (or averages tied ones)."""
        return 1

    def lipschitz_bound(self) -> float:
        """The pooling's global Lipschitz constant (ℓ2) is at most √(most windows per input).

        ``|max_w x − max_w y| ≤ max_{i∈w} |x_i − y_i|``, so the squared output difference is
        at most the sum over windows of the squared input differences, in which each input
        counts once per window that holds it.
        """
        pattern = self._window_pattern()
        return math.sqrt(float(np.bincount(pattern, minlength=1).max(initial=1)))

    def _window_pattern(self) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - every subclass sets it

    def apply_forward(self, batch: np.ndarray) -> np.ndarray:
        """Pick each output's winner from every sample of the batch."""
        flat = batch.reshape(batch.shape[0], -1)
        if self._csr.nnz == self._csr.shape[0] and self.ties == "first":
            out = flat[:, self.winners.reshape(-1)]
        else:
            out = (self._csr @ flat.T).T
        return np.asarray(out).reshape(batch.shape[0], *self._output_shape)

    def apply_adjoint(self, batch: np.ndarray) -> np.ndarray:
        """Scatter each output back to its winner(s), adding where an input wins twice."""
        flat = batch.reshape(batch.shape[0], -1)
        out = (self._csr.T @ flat.T).T
        return np.asarray(out).reshape(batch.shape[0], *self._input_shape)

    def _adjoint(self) -> Layer:
        from convmatrix.layers.base import Adjoint

        return Adjoint(self)

    def _describe(self) -> str:
        text = f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}"
        tied = self.kinks
        return text + (f", {tied} tied window{'s' * (tied != 1)}" if tied else "")


def _text(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(set(values)) == 1 else shape_text(values)


class MaxPoolAt(MaxSelection):
    """Torch's ``max_pool1d/2d/3d`` linearised at ``x``: its exact Jacobian there.

    Window ``o`` along an axis reads positions ``o·stride − padding + j·dilation`` for
    ``j < kernel_size`` (padding: ``−∞``, never a winner); the output length is torch's
    (:func:`~convmatrix.layers.pool.pool_output_size` with the dilated kernel, ``ceil_mode``
    included). Ties go to the first maximum in the window (torch's kernels keep the first
    strict maximum, and their backward routes the gradient to it).

    Parameters
    ----------
    x : array_like, shape ``(C, *spatial)``
        The point (one sample, 1 to 3 spatial axes), finite.
    kernel_size, stride, padding, dilation : int or sequence of int
        As torch's ``MaxPoolNd`` (``stride`` defaults to ``kernel_size``; ``padding`` at most
        half the kernel).
    ceil_mode : bool, optional
    ties : {"first", "split"}, optional
        See :data:`Ties`.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> x = np.array([[1.0, 3.0, 2.0, 2.0, 0.0]])
    >>> pool = cm.MaxPoolAt(x, 2, ceil_mode=True)
    >>> pool
    MaxPoolAt(1×5 → 1×3, kernel 2, stride 2, ceil_mode, 1 tied window)
    >>> pool.matrix().toarray()
    array([[0., 1., 0., 0., 0.],
           [0., 0., 1., 0., 0.],
           [0., 0., 0., 0., 1.]])
    >>> pool(x)
    array([[3., 2., 0.]])
    """

    def __init__(self, x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, ceil_mode: bool = False, *, ties: Ties = "first") -> None:
        array = point_array(x)
        ndim = array.ndim - 1
        self.kernel_size = per_axis(kernel_size, ndim, "kernel_size", 1)
        self.stride = (self.kernel_size if stride is None or stride == ()
                       or stride == [] else per_axis(stride, ndim, "stride", 1))
        self.padding = per_axis(padding, ndim, "padding", 0)
        self.dilation = per_axis(dilation, ndim, "dilation", 1)
        if not isinstance(ceil_mode, bool | np.bool_):
            raise ConvMatrixError(f"`ceil_mode` (={ceil_mode!r}) must be True or False")
        self.ceil_mode = bool(ceil_mode)
        tables = []
        for axis in range(ndim):
            n, k, s = array.shape[axis + 1], self.kernel_size[axis], self.stride[axis]
            p, d = self.padding[axis], self.dilation[axis]
            if p > k // 2:
                raise ConvMatrixError(
                    f"`padding` (={padding!r}) must be at most half the kernel "
                    f"(`kernel_size`={kernel_size!r}) on every axis, as in torch")
            out = pool_output_size(n, d * (k - 1) + 1, s, p, p, self.ceil_mode)
            if out < 1:
                raise ConvMatrixError(
                    f"`kernel_size` (={kernel_size!r}) with `dilation` (={dilation!r}) is "
                    f"larger than the padded input {shape_text(array.shape[1:])} on spatial "
                    f"axis {axis}: no output")
            tables.append(np.arange(out)[:, None] * s - p + np.arange(k)[None, :] * d)
        self._tables = tables
        super().__init__(array, tables, ties)

    def _window_pattern(self) -> np.ndarray:
        windows = self._window_indices(self._input_shape[1:], self._tables)
        return windows[windows < math.prod(self._input_shape[1:])]

    def _describe(self) -> str:
        parts = [f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}",
                 f"kernel {_text(self.kernel_size)}", f"stride {_text(self.stride)}"]
        if any(self.padding):
            parts.append(f"padding {_text(self.padding)}")
        if any(d != 1 for d in self.dilation):
            parts.append(f"dilation {_text(self.dilation)}")
        if self.ceil_mode:
            parts.append("ceil_mode")
        if self.ties != "first":
            parts.append(f"ties {self.ties}")
        tied = self.kinks
        if tied:
            parts.append(f"{tied} tied window{'s' * (tied != 1)}")
        return ", ".join(parts)


def adaptive_bins(n: int, out: int) -> np.ndarray:
    """Torch's adaptive pooling bins along one axis: ``(out, longest)`` positions, −1 padded.

    Bin ``o`` covers ``[⌊o·n/out⌋, ⌈(o+1)·n/out⌉)``.

    Examples
    --------
    >>> adaptive_bins(5, 3)
    array([[ 0,  1, -1],
           [ 1,  2,  3],
           [ 3,  4, -1]])
    """
    o = np.arange(out)
    start = (o * n) // out
    stop = -((-(o + 1) * n) // out)
    longest = int((stop - start).max())
    table = start[:, None] + np.arange(longest)[None, :]
    return np.where(table < stop[:, None], table, -1)


class AdaptiveMaxPoolAt(MaxSelection):
    """Torch's ``adaptive_max_pool1d/2d/3d`` linearised at ``x``: its exact Jacobian there.

    Output ``o`` along an axis of length ``n`` takes the maximum over
    ``[⌊o·n/out⌋, ⌈(o+1)·n/out⌉)`` (:func:`adaptive_bins`); ties go to the first maximum
    (torch's kernel and backward).

    Parameters
    ----------
    x : array_like, shape ``(C, *spatial)``
    output_size : int or sequence of int or None
        Per spatial axis (None keeps that axis' size, as torch).
    ties : {"first", "split"}, optional

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> cm.AdaptiveMaxPoolAt(np.array([[0.0, 4.0, 1.0, 1.0, 5.0]]), 2).winners
    array([[1, 4]])
    """

    def __init__(self, x: Any, output_size: Any, *, ties: Ties = "first") -> None:
        array = point_array(x)
        ndim = array.ndim - 1
        if isinstance(output_size, str) or not hasattr(output_size, "__iter__"):
            items = [output_size] * ndim
        else:
            items = list(output_size)
            if len(items) == 1:
                items *= ndim
        if len(items) != ndim:
            raise ConvMatrixError(f"`output_size` (={output_size!r}) must be an int or {ndim} "
                                  f"ints (one per spatial axis)")
        self.output_size = tuple(array.shape[axis + 1] if item is None
                                 else as_int(item, "output_size", 1)
                                 for axis, item in enumerate(items))
        self._tables = [adaptive_bins(n, out) for n, out
                        in zip(array.shape[1:], self.output_size, strict=True)]
        super().__init__(array, self._tables, ties)

    def _window_pattern(self) -> np.ndarray:
        windows = self._window_indices(self._input_shape[1:], self._tables)
        return windows[windows < math.prod(self._input_shape[1:])]

    def _describe(self) -> str:
        text = (f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}, "
                f"output size {_text(self.output_size)}")
        if self.ties != "first":
            text += f", ties {self.ties}"
        tied = self.kinks
        return text + (f", {tied} tied window{'s' * (tied != 1)}" if tied else "")


class GlobalMaxPoolAt(AdaptiveMaxPoolAt):
    """A global max pool (one output per channel) linearised at ``x``.

    ``ties="first"`` is torch's ``adaptive_max_pool(x, 1)`` and ``x.max(dim)``; ``"split"``
    is torch's ``x.amax(dims)``, whose backward shares the gradient among tied maxima.
    The output keeps one size-1 axis per spatial axis (``(C, 1, 1)`` for a 2-D input).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> x = np.array([[[1.0, 2.0], [2.0, 0.0]]])
    >>> cm.GlobalMaxPoolAt(x, ties="split").matrix().toarray()
    array([[0. , 0.5, 0.5, 0. ]])
    """

    def __init__(self, x: Any, *, ties: Ties = "first") -> None:
        array = point_array(x)
        super().__init__(array, 1, ties=ties)

    def _describe(self) -> str:
        text = f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}"
        if self.ties != "first":
            text += f", ties {self.ties}"
        tied = self.kinks
        return text + (f", {tied} tied window{'s' * (tied != 1)}" if tied else "")
