"""Singular values and the operator norm of a layer, by the method that fits it.

``"fft"`` for block-circulant convolutions (:mod:`.fft`), the dense SVD for small matrices,
ARPACK on the matrix-free operator otherwise (:mod:`.iterative`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix._progress import ProgressArg, check_progress
from convmatrix.analysis.linop import LayerOperator
from convmatrix.analysis.spectra.fft import circulant_norm, circulant_spectrum, is_circulant
from convmatrix.analysis.spectra.iterative import (
    TopEigen,
    conv_norm,
    conv_top,
    gram_norm,
    gram_top,
    iterative_values,
)
from convmatrix.geometry.view import AffineMap, is_affine_map

__all__ = ["DENSE_MAX_ENTRIES", "SpectrumMethod", "TopSingularValues", "Which", "check_finite",
           "check_layer", "choose_method", "operator_norm", "power_of_two_scale",
           "singular_values", "top_singular_values"]

SpectrumMethod = Literal["auto", "fft", "dense", "iterative"]
Which = Literal["largest", "smallest"]
_METHODS: tuple[str, ...] = get_args(SpectrumMethod)
_WHICH: tuple[str, ...] = get_args(Which)

DENSE_MAX_ENTRIES: int = 1_000_000
"""``method="auto"`` takes the dense SVD of matrices with at most this many entries."""


def _check_method(method: Any) -> str:
    """Validate a spectrum method name."""
    if method not in _METHODS:
        raise ConvMatrixError(
            f"`method` (={method!r}) must be one of {', '.join(map(repr, _METHODS))}")
    return str(method)


def check_layer(layer: Any) -> AffineMap:
    """Validate that ``layer`` is an affine map (a layer object)."""
    if not is_affine_map(layer):
        raise ConvMatrixError(f"`layer` (={layer!r}) must be a convmatrix layer object "
                              f"(cm.Conv, cm.ConvTranspose, cm.from_torch(...), ...)")
    return layer


def check_finite(layer: AffineMap, values: Any, what: str = "weights") -> None:
    """Refuse NaN or infinite ``values`` (a layer's weights or matrix entries)."""
    array = np.asarray(values)
    if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ConvMatrixError(
            f"`layer` {layer!r} has {bad} NaN or infinite {what}; singular values and norms "
            f"need finite {what}")


def power_of_two_scale(values: Any) -> float:
    """``2**e`` near ``max |values|`` (1.0 for zero or integer values).

    Dividing by a power of two is exact (short of subnormals), so a spectrum computed from
    ``values / scale`` and multiplied back by ``scale`` is the spectrum of ``values`` with
    no overflow (weights near 1e200: ``CᴴC`` would reach 1e400) or underflow (1e-200).
    """
    array = np.asarray(values)
    if array.dtype.kind not in "fc" or not array.size:
        return 1.0
    top = float(np.abs(array).max())
    if top == 0 or not math.isfinite(top):
        return 1.0
    return math.ldexp(1.0, math.frexp(top)[1] - 1)


def _dense_values(layer: AffineMap) -> np.ndarray:
    """All singular values from the dense SVD (refused above DENSE_MAX_ENTRIES)."""
    rows, cols = layer.matrix_shape
    if rows * cols > DENSE_MAX_ENTRIES:
        raise ConvMatrixError(
            f"method='dense' needs the {rows}×{cols} matrix as a dense array "
            f"({rows * cols} entries > DENSE_MAX_ENTRIES = {DENSE_MAX_ENTRIES}); use "
            f"method='iterative' with a k")
    dense = layer.matrix().toarray()
    if dense.dtype.kind in "biu":
        dense = dense.astype(np.float64)
    check_finite(layer, dense, "matrix entries")
    if not np.any(dense):
        return np.zeros(min(rows, cols))
    scale = power_of_two_scale(dense)
    return np.linalg.svd(dense / scale, compute_uv=False) * scale


def choose_method(layer: AffineMap, method: SpectrumMethod = "auto") -> str:
    """The method :func:`singular_values` and :func:`operator_norm` use for ``layer``.

    ``"auto"`` resolves to ``"fft"`` (block-circulant convolutions), ``"dense"`` (up to
    :data:`DENSE_MAX_ENTRIES` entries) or ``"iterative"``; an explicit method is checked.
    """
    method = _check_method(method)  # type: ignore[assignment]
    view = layer.conv_view()
    circulant = view is not None and is_circulant(view.spec)
    if method == "fft" and not circulant:
        raise ConvMatrixError(
            f"method='fft' needs a block-circulant layer (circular padding, stride 1, output "
            f"size = input size); {layer!r} is not one")
    if method != "auto":
        return method
    if circulant:
        return "fft"
    rows, cols = layer.matrix_shape
    return "dense" if rows * cols <= DENSE_MAX_ENTRIES else "iterative"


def singular_values(layer: AffineMap, k: int | None = None, which: Which = "largest", *,
                    tol: float = 1e-6, method: SpectrumMethod = "auto",
                    progress: ProgressArg = None) -> np.ndarray:
    """Singular values of a layer's matrix, without building it when it is large.

    Parameters
    ----------
    layer : AffineMap
        Any layer object.
    k : int, optional
        How many: the ``k`` largest or smallest; None means all ``min(rows, columns)``.
    which : {"largest", "smallest"}, optional
        Which end of the spectrum ``k`` takes.
    tol : float, optional
        The relative residual tolerance of ``method="iterative"``: each value's Ritz pair of
        ``CᴴC`` stops at ``‖CᴴC v − θ v‖ ≤ tol·θ``, ARPACK's criterion, with the default
        (1e-6) of :func:`operator_norm` and :func:`top_singular_values` (it was 0 before
        issue 19: pass ``tol=0`` for that); 0 means what rounding allows. The values are
        then relatively accurate to about ``tol/2`` at worst, and in practice to
        ``tol²/gap`` (see :func:`top_singular_values`). The
        largest values come from :func:`top_singular_values` (block Lanczos from a
        plane-wave start, with the residuals and gaps it reached; a ``RuntimeWarning`` when
        ``tol`` was not reached), the smallest from ARPACK's ``svds``.
    method : {"auto", "fft", "dense", "iterative"}, optional
        ``"fft"``: the exact spectrum of a block-circulant layer (circular padding, stride 1,
        output size = input size), per frequency the singular values of the ``C_out × C_in``
        matrix ``K̂(f)`` (Sedghi, Gupta & Long 2019); ``"dense"``: the SVD of the dense
        matrix; ``"iterative"``: ARPACK (``scipy.sparse.linalg.svds``) on
        :meth:`~convmatrix.Layer.operator`. ``"auto"`` picks fft, then dense for matrices up
        to :data:`DENSE_MAX_ENTRIES` entries, then iterative (which needs ``k``).
    progress : None, bool or callable, optional
        Progress of long work (frequency chunks, ARPACK/Lanczos products): None shows a bar
        (``tqdm``) after about 2 s when interactive and nothing otherwise; True always,
        False never; a callable is called as ``progress(done, total)`` (``total`` None for
        iterations, whose number is not known in advance). See :mod:`convmatrix._progress`.

    Returns
    -------
    ndarray, shape ``(k,)`` or ``(min(rows, columns),)``
        Descending.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.array([[[1.0, 2.0]]]), (1, 4), padding=((0, 1),),
    ...                padding_mode="circular")
    >>> cm.singular_values(conv)            # |1 + 2 e^{2πi f/4}| for f = 0, 1, 3, 2
    array([3.        , 2.23606798, 2.23606798, 1.        ])
    >>> np.linalg.svd(conv.matrix().toarray(), compute_uv=False)
    array([3.        , 2.23606798, 2.23606798, 1.        ])
    """
    layer = check_layer(layer)
    checked = _check_method(method)
    if which not in _WHICH:
        raise ConvMatrixError(f"`which` (={which!r}) must be 'largest' or 'smallest'")
    count = min(layer.matrix_shape)
    if k is not None and (isinstance(k, bool) or not isinstance(k, int | np.integer)
                          or not 1 <= k <= count):
        raise ConvMatrixError(f"`k` (={k!r}) must be None or an int between 1 and "
                              f"min(rows, columns) = {count}")
    if not tol >= 0:
        raise ConvMatrixError(f"`tol` (={tol!r}) must be >= 0")
    progress = check_progress(progress)
    chosen = choose_method(layer, checked)  # type: ignore[arg-type]
    view = _checked_view(layer)
    if chosen == "iterative" and which == "largest" and k is not None and k < count:
        top = _top(layer, k, tol, progress)
        _warn_unconverged(top, tol)
        return top.values
    if chosen == "iterative":
        if view is None:
            return iterative_values(layer, k, which, tol, progress=progress)
        scale = power_of_two_scale(view.weight)
        return iterative_values(layer, k, which, tol, view.spec, view.weight / scale, scale,
                                progress)
    if chosen == "fft":
        assert view is not None
        scale = power_of_two_scale(view.weight)
        if k == 1 and which == "largest":  # the norm: a maximum, not the sorted spectrum
            values = np.array([circulant_norm(view.spec, view.weight / scale, progress) * scale])
        else:
            values = circulant_spectrum(view.spec, view.weight / scale, progress) * scale
    else:
        values = _dense_values(layer)
    if k is None:
        return values
    return values[:k] if which == "largest" else values[-k:]


def operator_norm(layer: AffineMap, *, tol: float = 1e-6,
                  method: SpectrumMethod = "auto", progress: ProgressArg = None) -> float:
    """The spectral norm ``‖C‖₂`` (largest singular value) of a layer's matrix.

    Parameters
    ----------
    layer : AffineMap
        Any layer object (a stack too: the norm of the product).
    tol : float, optional
        ARPACK's relative residual tolerance for the top eigenpair of ``CᴴC``
        (``method="iterative"``). The eigenvalue converges about quadratically faster than
        its vector: on the ResNet-stage layer ``tol=1e-4`` already gives the norm to 4e-8
        (``benchmarks/bench_operator.py``).
    method : {"auto", "fft", "dense", "iterative"}, optional
        As in :func:`singular_values`; ``"iterative"`` runs ARPACK's Lanczos on the
        matrix-free ``CᴴC`` (one :meth:`~convmatrix.Layer.operator` product and one adjoint
        product per step), so the matrix is never built. For convolutions it starts from a
        plane wave at the frequency where the kernel's symbol ``K̂(f)`` peaks.
    progress : None, bool or callable, optional
        Progress of long work (frequency chunks, ARPACK/Lanczos products): None shows a bar
        (``tqdm``) after about 2 s when interactive and nothing otherwise; True always,
        False never; a callable is called as ``progress(done, total)`` (``total`` None for
        iterations, whose number is not known in advance). See :mod:`convmatrix._progress`.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.ones((1, 1, 3, 3)), (1, 20, 20), padding=1)
    >>> bool(abs(cm.operator_norm(conv, method="iterative") - cm.operator_norm(conv)) < 1e-9)
    True
    """
    layer = check_layer(layer)
    checked = _check_method(method)
    if not tol >= 0:
        raise ConvMatrixError(f"`tol` (={tol!r}) must be >= 0")
    progress = check_progress(progress)
    chosen = choose_method(layer, checked)  # type: ignore[arg-type]
    if chosen != "iterative":
        return float(singular_values(layer, 1, method=chosen,  # type: ignore[arg-type]
                                     progress=progress)[0])
    op = LayerOperator(layer)
    rows, cols = op.shape
    if min(rows, cols) <= 2:
        return float(singular_values(layer, 1, method="dense")[0])
    view = _checked_view(layer)
    if view is not None:
        scale = power_of_two_scale(view.weight)
        return conv_norm(view.spec, view.weight / scale, tol, progress) * scale
    value = gram_norm(op, tol, progress)
    if not math.isfinite(value):
        raise ConvMatrixError(f"`layer` {layer!r} gave a norm of {value}: its weights or "
                              f"matrix entries are not finite (or too large for float64)")
    return value


def _checked_view(layer: AffineMap) -> Any:
    """The layer's conv view (None if it has none), refusing non-finite weights.

    A stack's factors are checked too.
    """
    factors = layer.chain()
    if factors != (layer,):
        for part in factors:
            _checked_view(part)
        return None
    view = layer.conv_view()
    if view is not None:
        check_finite(layer, view.weight)
    return view


def _warn_unconverged(top: TopSingularValues, tol: float) -> None:
    """A ``RuntimeWarning`` naming the residuals when ``tol`` (or rounding's floor) was missed."""
    floor = 64 * np.finfo(np.float64).eps
    if not top.values.size or top.values[0] == 0:
        return
    squares = (top.values / top.values[0]) ** 2
    allowed = 10 * np.maximum(tol, floor / np.maximum(squares, 1e-300))
    if np.any(top.residuals > allowed):
        warnings.warn(f"the top {len(top.values)} singular values did not reach `tol` "
                      f"(={tol!r}): relative residuals {top.residuals}", RuntimeWarning,
                      stacklevel=3)


@dataclass(frozen=True)
class TopSingularValues:
    """The largest singular values of a layer with how well they are resolved.

    Attributes
    ----------
    values : ndarray, shape ``(k,)``
        Descending.
    residuals : ndarray, shape ``(k,)``
        Relative residual of each value's eigenpair of ``CᴴC``: ``‖CᴴC v − θ v‖ / θ`` with
        ``σ = √θ``, recomputed from fresh products after the iteration (0 for the exact
        methods). Each ``θ`` lies within ``residual·θ`` of an eigenvalue of ``CᴴC``, so each
        ``σ`` within about ``residual/2`` (relative) of a singular value.
    products : int
        Products with ``CᴴC`` spent (columns; 0 for the exact methods).
    method : str
        ``"block-lanczos"`` (convolutions with a cosine/sine pair at the top),
        ``"lanczos"`` (other convolutions: ARPACK from the plane wave), ``"arpack"`` (other
        layers, fixed start), ``"fft"`` or ``"dense"``.
    """

    values: np.ndarray
    residuals: np.ndarray
    products: int
    method: str

    @property
    def gaps(self) -> np.ndarray:
        """Relative gaps ``(σ_i − σ_{i+1}) / σ_1`` between neighbours, shape ``(k − 1,)``."""
        top = float(self.values[0]) if self.values.size and self.values[0] else 1.0
        return -np.diff(self.values) / top

    @property
    def separated(self) -> np.ndarray:
        """``gaps > residuals`` of both neighbours: the two values are told apart, ``(k − 1,)``.

        Where False, the pair is a cluster tighter than the tolerance: both values are still
        within their bound, but which singular vector belongs to which is not resolved.
        """
        bound = np.maximum(self.residuals[:-1], self.residuals[1:])
        return self.gaps > bound

    def __str__(self) -> str:
        lines = [f"top {len(self.values)} singular values ({self.method}, "
                 f"{self.products} products)",
                 f"{'σ':>14}  {'residual':>9}  {'gap to next':>11}"]
        gaps = [*(f"{g:.3g}" for g in self.gaps), ""]
        for value, residual, gap in zip(self.values, self.residuals, gaps, strict=True):
            lines.append(f"{value:14.10g}  {residual:9.2g}  {gap:>11}")
        if len(self.values) > 1:
            lines.append(self.separation())
        return "\n".join(lines)

    def separation(self) -> str:
        """One sentence on how the values are separated, relative to ``σ₁``.

        Examples
        --------
        >>> import numpy as np
        >>> top = TopSingularValues(np.array([2.0, 1.999, 1.5]), np.zeros(3), 0, "dense")
        >>> top.separation()
        'gaps (σᵢ − σᵢ₊₁)/σ₁ 0.0005…0.25; σ₃ 0.25 below σ₁; 2/2 pairs told apart'
        """
        gaps = self.gaps
        if not gaps.size:
            return "one value"
        spread = float(np.sum(gaps))
        return (f"gaps (σᵢ − σᵢ₊₁)/σ₁ {gaps.min():.2g}…{gaps.max():.2g}; "
                f"σ{_subscript(len(self.values))} {spread:.2g} below σ₁; "
                f"{int(np.sum(self.separated))}/{gaps.size} pairs told apart")


def _subscript(number: int) -> str:
    """``number`` in subscript digits."""
    return str(number).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def _top(layer: AffineMap, k: int, tol: float, progress: ProgressArg) -> TopSingularValues:
    """The iterative top-``k`` path: block Lanczos for convolutions, ARPACK otherwise."""
    view = _checked_view(layer)
    if view is not None:
        if not np.any(view.weight):
            return TopSingularValues(np.zeros(k), np.zeros(k), 0, "block-lanczos")
        scale = power_of_two_scale(view.weight)
        found: TopEigen = conv_top(view.spec, view.weight / scale, k, tol, progress)
        method = found.method
    else:
        scale = 1.0
        op = LayerOperator(layer)
        if not np.any(op.matvec(np.random.default_rng(0).standard_normal(op.shape[1]))):
            return TopSingularValues(np.zeros(k), np.zeros(k), 0, "arpack")
        found = gram_top(op, k, tol, progress)
        method = "arpack"
    values = np.sqrt(np.maximum(found.values, 0.0)) * scale
    if not np.all(np.isfinite(values)):
        raise ConvMatrixError(f"`layer` {layer!r} gave singular values {values}: its weights "
                              f"or matrix entries are not finite (or too large for float64)")
    return TopSingularValues(values, found.residuals, found.products, method)


def top_singular_values(layer: AffineMap, k: int = 6, *, tol: float = 1e-6,
                        method: SpectrumMethod = "auto", progress: ProgressArg = None
                        ) -> TopSingularValues:
    """The ``k`` largest singular values with their residuals and gaps.

    Parameters
    ----------
    layer : AffineMap
        Any layer object.
    k : int, optional
        How many, below ``min(rows, columns)`` for ``method="iterative"``.
    tol : float, optional
        Relative residual tolerance, as in :func:`operator_norm` (same default): each value's
        eigenpair of ``CᴴC`` stops at ``‖CᴴC v − θ v‖ ≤ tol·θ``; 0 means what rounding allows.
    method : {"auto", "fft", "dense", "iterative"}, optional
        As in :func:`singular_values`; the exact methods report zero residuals.
    progress : None, bool or callable, optional
        As in :func:`singular_values`.

    Returns
    -------
    TopSingularValues
        ``values`` (descending), ``residuals``, ``gaps``, ``separated``, ``products``;
        ``str()`` is a table.

    Notes
    -----
    The top of a convolution's spectrum is a tight cluster: the singular vectors near the top
    are plane waves ``v e^{2πi f·j}`` at the frequency ``f`` where the symbol ``‖K̂(f)‖₂``
    peaks, under smooth envelopes set by the borders, and their values differ by the symbol's
    curvature times ``(m/n)²`` — relative gaps of ``1e-5``–``1e-3`` on a 56×56 image. For real
    weights ``f`` and ``−f`` give a cosine and a sine wave whose values differ only through the
    borders (gaps down to ``1e-8``). Single-vector Lanczos sees one combination of such a
    pair and finds the other only late, or not at all when the pair is exactly degenerate.
    For such convolutions the iterative method is block Lanczos on ``CᴴC`` with the cosine
    and the sine wave at the peak (found as for :func:`operator_norm`'s ``k = 1``) as its
    block, reorthogonalisation against a basis of 48 vectors with thick restarts (the last
    blocks twice, the whole basis once, every other step only while it stays clean), and
    ARPACK's stopping rule per value. At a self-conjugate peak (``2f`` integer, e.g. the
    ResNet stage's ``(0, ½)``) there is no pair: for ``k <= 2`` ARPACK's Lanczos on ``CᴴC``
    from the plane wave (summed over the first three envelopes), with a subspace of
    ``k + 20`` vectors; for ``k > 2`` the block (cosine and a second envelope) is faster.
    Dilation ``d`` splits a stride-1 layer into ``∏d`` interleaved sub-grids whose values
    repeat exactly: the block then holds each start wave split into its sub-grid parts (a
    Krylov method finds no more copies of a repeated value than its block has vectors;
    groups with identical weights, which repeat values too, are not detected). The residuals
    are recomputed from fresh products; a value's relative error is at most about
    ``residual/2``, and in practice ``residual²/gap`` (Rayleigh–Ritz values converge
    quadratically). A ``RuntimeWarning`` is raised by :func:`singular_values` when a residual
    ends above ``tol``. Other layers (stacks, other kinds) use ARPACK's Lanczos on ``CᴴC``
    from a fixed start.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.random.default_rng(0).standard_normal((4, 4, 3, 3)), (4, 12, 12),
    ...                padding=1)
    >>> top = cm.top_singular_values(conv, 4, method="iterative")
    >>> exact = np.linalg.svd(conv.matrix().toarray(), compute_uv=False)[:4]
    >>> bool(np.allclose(top.values, exact, rtol=1e-6)), bool(np.all(top.residuals <= 1e-6))
    (True, True)
    >>> top.gaps.shape
    (3,)
    """
    layer = check_layer(layer)
    checked = _check_method(method)
    count = min(layer.matrix_shape)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= count:
        raise ConvMatrixError(f"`k` (={k!r}) must be an int between 1 and "
                              f"min(rows, columns) = {count}")
    if not tol >= 0:
        raise ConvMatrixError(f"`tol` (={tol!r}) must be >= 0")
    progress = check_progress(progress)
    chosen = choose_method(layer, checked)  # type: ignore[arg-type]
    if chosen != "iterative":
        values = singular_values(layer, k, method=chosen,  # type: ignore[arg-type]
                                 progress=progress)
        return TopSingularValues(values, np.zeros(k), 0, chosen)
    if k >= count:
        raise ConvMatrixError(
            f"method='iterative' computes a few singular values: `k` (={k!r}) must be below "
            f"min(rows, columns) = {count}; for all of them use method='dense'")
    return _top(layer, int(k), tol, progress)
