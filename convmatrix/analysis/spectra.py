"""Singular values and operator norms of layers: FFT, dense SVD or ARPACK; certified bounds."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh, svds

from convmatrix._errors import ConvMatrixError
from convmatrix.analysis.linop import LayerOperator
from convmatrix.geometry.spec import ConvSpec
from convmatrix.geometry.view import AffineMap, is_affine_map

__all__ = [
    "DENSE_MAX_ENTRIES",
    "ROUNDING_MARGIN",
    "LipschitzBounds",
    "SpectrumMethod",
    "Which",
    "choose_method",
    "lipschitz",
    "operator_norm",
    "operator_norm_bound",
    "singular_values",
]

SpectrumMethod = Literal["auto", "fft", "dense", "iterative"]
Which = Literal["largest", "smallest"]
_METHODS: tuple[str, ...] = get_args(SpectrumMethod)
_WHICH: tuple[str, ...] = get_args(Which)

DENSE_MAX_ENTRIES: int = 1_000_000
"""``method="auto"`` takes the dense SVD of matrices with at most this many entries."""

ROUNDING_MARGIN: float = 1e-9
"""Relative margin added to :func:`operator_norm_bound` for the rounding of its SVDs."""

_FREQUENCY_BYTES = 64 * 2**20  # per-frequency matrices held at once


# ---------------------------------------------------------------------------------------------
# layer kinds: through the hooks (a layer's conv_view: its matrix is the view's C or Cᵀ up to
# permutations of rows and columns, which keep every singular value)


def _stack_layers(layer: Any) -> list[AffineMap] | None:
    """A stack's own layers (its ``layers``), or None for a map that is no stack."""
    layers = getattr(layer, "layers", None)
    return None if layers is None else list(layers)


def _is_circulant(spec: ConvSpec) -> bool:
    """Circular padding, stride 1 and output size == input size: ``C`` is block circulant."""
    return (spec.padding_mode == "circular" and all(s == 1 for s in spec.stride)
            and spec.output_size == spec.input_size)


# ---------------------------------------------------------------------------------------------
# per-frequency matrices of a kernel on a torus


def _frequency_matrices(spec: ConvSpec, weight: np.ndarray, grid: tuple[int, ...],
                        shifts: tuple[int, ...], half: bool) -> Iterator[np.ndarray]:
    """Yield chunks ``(F, G, C_out/G, C_in/G)`` of ``K̂(f) = Σ_t W[:, :, t] e^{2πi f·(t·d − b)/M}``.

    ``K̂(f)`` is the ``C_out × C_in`` block the circular cross-correlation on the grid ``M``
    applies to the frequency-``f`` Fourier mode of every input channel (Sedghi et al. 2019).
    Computed as a direct DFT of the ``∏k`` taps, chunk of frequencies by chunk, so the
    memory stays bounded. ``half`` keeps one of each conjugate pair ``±f`` (real weights).
    """
    groups = spec.groups
    cog, cig = spec.out_channels // groups, spec.in_channels // groups
    taps = list(itertools.product(*(range(k) for k in spec.kernel_size)))
    # (T, G·cog·cig): one row per tap
    w = np.asarray(weight, dtype=np.result_type(weight.dtype, np.float64))
    w = w.reshape(groups, cog, cig, len(taps)).transpose(3, 0, 1, 2).reshape(len(taps), -1)
    # the torus offset of each tap per axis
    offsets = np.array([[t * d - b for t, d, b in zip(tap, spec.dilation, shifts, strict=True)]
                        for tap in taps], dtype=np.float64)  # (T, ndim)
    axes = [np.arange(m) for m in grid]
    if half:
        axes[-1] = np.arange(grid[-1] // 2 + 1)
    total = math.prod(len(a) for a in axes)
    per_frequency = max(1, 16 * w.shape[1])
    step = max(1, _FREQUENCY_BYTES // per_frequency)
    scale = np.array(grid, dtype=np.float64)
    for start in range(0, total, step):
        flat = np.arange(start, min(start + step, total))
        freqs = np.stack(np.unravel_index(flat, [len(a) for a in axes]), axis=1)  # (F, ndim)
        phases = np.exp(2j * np.pi * ((freqs / scale) @ offsets.T))  # (F, T)
        yield (phases @ w).reshape(len(flat), groups, cog, cig)


def _circulant_spectrum(spec: ConvSpec, weight: np.ndarray) -> np.ndarray:
    """All singular values of a block-circulant convolution, descending."""
    shifts = tuple(b for b, _ in spec.padding)
    values = [np.linalg.svd(block, compute_uv=False).reshape(-1)
              for block in _frequency_matrices(spec, weight, spec.input_size, shifts, False)]
    return np.sort(np.concatenate(values))[::-1]


def _torus_norm(spec: ConvSpec, weight: np.ndarray, grid: tuple[int, ...],
                shifts: tuple[int, ...]) -> float:
    """``max_f ‖K̂(f)‖₂``: the norm of the circular convolution on ``grid``."""
    half = not np.iscomplexobj(weight)
    best = 0.0
    for block in _frequency_matrices(spec, weight, grid, shifts, half):
        best = max(best, float(np.linalg.svd(block, compute_uv=False).max(initial=0.0)))
    return best


def _used_extent(spec: ConvSpec, axis: int) -> int:
    return ((spec.output_size[axis] - 1) * spec.stride[axis]
            + spec.dilation[axis] * (spec.kernel_size[axis] - 1) + 1)


def _padding_norm(spec: ConvSpec) -> float:
    """``‖Pad‖₂`` of the padding map onto the used padded grid: ∏ over axes √(max copies)."""
    from convmatrix.build.apply import _pad_source

    factor = 1.0
    for axis in range(spec.ndim):
        source = _pad_source(spec, axis)
        copies = np.bincount(source[source >= 0], minlength=spec.input_size[axis])
        factor *= math.sqrt(int(copies.max(initial=0)))
    return factor


def _conv_bound(spec: ConvSpec, weight: np.ndarray) -> float:
    if _is_circulant(spec):
        return float(_circulant_spectrum(spec, weight)[0])
    grid = tuple(_used_extent(spec, axis) for axis in range(spec.ndim))
    return _torus_norm(spec, weight, grid, (0,) * spec.ndim) * _padding_norm(spec)


# ---------------------------------------------------------------------------------------------
# public functions


def _check_method(method: Any) -> str:
    if method not in _METHODS:
        raise ConvMatrixError(
            f"`method` (={method!r}) must be one of {', '.join(map(repr, _METHODS))}")
    return str(method)


def _check_layer(layer: Any) -> AffineMap:
    if not is_affine_map(layer):
        raise ConvMatrixError(f"`layer` (={layer!r}) must be a convmatrix layer object "
                              f"(cm.Conv, cm.ConvTranspose, cm.from_torch(...), ...)")
    return layer


def _dense_values(layer: AffineMap) -> np.ndarray:
    rows, cols = layer.matrix_shape
    if rows * cols > DENSE_MAX_ENTRIES:
        raise ConvMatrixError(
            f"method='dense' needs the {rows}×{cols} matrix as a dense array "
            f"({rows * cols} entries > DENSE_MAX_ENTRIES = {DENSE_MAX_ENTRIES}); use "
            f"method='iterative' with a k")
    dense = layer.matrix().toarray()
    if dense.dtype.kind in "biu":
        dense = dense.astype(np.float64)
    return np.linalg.svd(dense, compute_uv=False)


def choose_method(layer: AffineMap, method: SpectrumMethod = "auto") -> str:
    """The method :func:`singular_values` and :func:`operator_norm` use for ``layer``.

    ``"auto"`` resolves to ``"fft"`` (block-circulant convolutions), ``"dense"`` (up to
    :data:`DENSE_MAX_ENTRIES` entries) or ``"iterative"``; an explicit method is checked.
    """
    method = _check_method(method)  # type: ignore[assignment]
    view = layer.conv_view()
    circulant = view is not None and _is_circulant(view.spec)
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


def _start_vector(n: int, dtype: np.dtype[Any]) -> np.ndarray:
    """A fixed start vector (deterministic results), generic enough for ARPACK."""
    v = np.random.default_rng(n).standard_normal(n)
    return v.astype(dtype) if dtype.kind == "c" else v


def singular_values(layer: AffineMap, k: int | None = None, which: Which = "largest", *,
                    tol: float = 0.0, method: SpectrumMethod = "auto") -> np.ndarray:
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
        ARPACK's relative tolerance (``method="iterative"``); 0 means machine precision.
    method : {"auto", "fft", "dense", "iterative"}, optional
        ``"fft"``: the exact spectrum of a block-circulant layer (circular padding, stride 1,
        output size = input size), per frequency the singular values of the ``C_out × C_in``
        matrix ``K̂(f)`` (Sedghi, Gupta & Long 2019); ``"dense"``: the SVD of the dense
        matrix; ``"iterative"``: ARPACK (``scipy.sparse.linalg.svds``) on
        :meth:`~convmatrix.Layer.operator`. ``"auto"`` picks fft, then dense for matrices up
        to :data:`DENSE_MAX_ENTRIES` entries, then iterative (which needs ``k``).

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
    layer = _check_layer(layer)
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
    chosen = choose_method(layer, checked)  # type: ignore[arg-type]
    if chosen == "iterative":
        return _iterative_values(layer, k, which, tol)
    if chosen == "fft":
        view = layer.conv_view()
        assert view is not None
        values = _circulant_spectrum(view.spec, view.weight)
    else:
        values = _dense_values(layer)
    if k is None:
        return values
    return values[:k] if which == "largest" else values[-k:]


def _iterative_values(layer: AffineMap, k: int | None, which: str, tol: float) -> np.ndarray:
    count = min(layer.matrix_shape)
    if k is None or k >= count:
        raise ConvMatrixError(
            f"method='iterative' computes a few singular values: `k` (={k!r}) must be an int "
            f"below min(rows, columns) = {count}; for all of them use method='dense'")
    op = LayerOperator(layer)
    v0 = _start_vector(min(op.shape), op.dtype)
    values = svds(op, k=k, which="LM" if which == "largest" else "SM", tol=tol, v0=v0,
                  return_singular_vectors=False, solver="arpack")
    return np.sort(values)[::-1]


def operator_norm(layer: AffineMap, *, tol: float = 1e-6,
                  method: SpectrumMethod = "auto") -> float:
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
    layer = _check_layer(layer)
    checked = _check_method(method)
    if not tol >= 0:
        raise ConvMatrixError(f"`tol` (={tol!r}) must be >= 0")
    chosen = choose_method(layer, checked)  # type: ignore[arg-type]
    if chosen != "iterative":
        return float(singular_values(layer, 1, method=chosen)[0])  # type: ignore[arg-type]
    op = LayerOperator(layer)
    rows, cols = op.shape
    if min(rows, cols) <= 2:
        return float(singular_values(layer, 1, method="dense")[0])
    view = layer.conv_view()
    if view is not None:
        return _conv_norm(view.spec, view.weight, tol)
    gram = (op.H @ op) if cols <= rows else (op @ op.H)
    v0 = _start_vector(min(rows, cols), op.dtype)
    ncv = min(min(rows, cols), 24)
    (value,) = eigsh(_Hermitian(gram), k=1, which="LA", tol=tol, v0=v0, ncv=ncv,
                     return_eigenvectors=False)
    return math.sqrt(max(float(np.real(value)), 0.0))


def _conv_norm(spec: ConvSpec, weight: np.ndarray, tol: float) -> float:
    """``‖C‖₂`` of a convolution: Lanczos on ``CᴴC`` from a plane-wave start (see below)."""
    from convmatrix.build.apply import conv_apply, conv_apply_adjoint

    complex_ = np.iscomplexobj(weight)
    dtype = np.dtype(np.complex128 if complex_ else np.float64)
    w = np.asarray(weight, dtype=dtype)
    shape = spec.input_shape
    size = math.prod(shape)

    def gram(v: np.ndarray) -> np.ndarray:
        y = conv_apply(spec, w, v.reshape(1, *shape).astype(dtype, copy=False))
        if complex_:
            return np.conj(conv_apply_adjoint(spec, w, np.conj(y))).reshape(-1)
        return conv_apply_adjoint(spec, w, y).reshape(-1)

    operator = LinearOperator(shape=(size, size), matvec=gram, dtype=dtype)
    v0 = _plane_wave_start(spec, w)
    (value,) = eigsh(operator, k=1, which="LA", tol=tol, v0=v0, ncv=min(size, 24),
                     return_eigenvectors=False)
    return math.sqrt(max(float(np.real(value)), 0.0))


_START_GRID = 16  # coarse frequencies per axis searched for the start vector
_POWER_STEPS = 6


def _symbol(spec: ConvSpec, weight: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """``K̂(f) = Σ_t W[:, :, t] e^{2πi f·t·d}`` at frequencies ``cycles`` (F, ndim), per group."""
    groups = spec.groups
    cog, cig = spec.out_channels // groups, spec.in_channels // groups
    taps = list(itertools.product(*(range(k) for k in spec.kernel_size)))
    w = np.asarray(weight).reshape(groups, cog, cig, len(taps)).transpose(3, 0, 1, 2)
    offsets = np.array([[t * d for t, d in zip(tap, spec.dilation, strict=True)]
                        for tap in taps], dtype=np.float64)
    phases = np.exp(2j * np.pi * (cycles @ offsets.T))  # (F, T)
    return (phases @ w.reshape(len(taps), -1)).reshape(len(cycles), groups, cog, cig)


def _plane_wave_start(spec: ConvSpec, weight: np.ndarray) -> np.ndarray:
    """A start vector near the top right singular vector of a convolution.

    The top singular vectors of a convolution are close to a plane wave ``v e^{2πi f·j}``
    at the frequency ``f`` maximising ``‖K̂(f)‖₂``, with ``v`` the top right singular vector of
    ``K̂(f)`` (exactly so for circular padding), shaped by a sine window for the borders.
    ``f`` is searched on a coarse grid (batched power steps), then refined around the best
    point with exact SVDs. Starting Lanczos there instead of at random saves many of the
    steps the clustered top of a convolution's spectrum needs; a small random part keeps
    every direction present.
    """
    ndim, cig = spec.ndim, spec.in_channels // spec.groups
    rng = np.random.default_rng(0)
    coarse = [np.arange(min(n, _START_GRID)) / min(n, _START_GRID) for n in spec.input_size]
    grid = np.stack(np.meshgrid(*coarse, indexing="ij"), axis=-1).reshape(-1, ndim)
    best_gain, best_cycle = -1.0, grid[0]
    step = max(1, 2**22 // max(1, spec.out_channels * cig))
    for start in range(0, len(grid), step):
        block = _symbol(spec, weight, grid[start:start + step])
        v = rng.standard_normal((*block.shape[:2], cig, 1)) + 0j
        for _ in range(_POWER_STEPS):
            v = np.conj(np.swapaxes(block, 2, 3)) @ (block @ v)
            v /= np.maximum(np.linalg.norm(v, axis=2, keepdims=True), 1e-300)
        gain = np.linalg.norm(block @ v, axis=(2, 3)).max(axis=1)  # (F,)
        if gain.max() > best_gain:
            best_gain, best_cycle = float(gain.max()), grid[start + int(np.argmax(gain))]
    # refine: a finer grid around the coarse optimum, exact SVDs
    spacing = np.array([1.0 / len(c) for c in coarse])
    fine = np.stack(np.meshgrid(*([np.linspace(-1, 1, 5)] * ndim), indexing="ij"),
                    axis=-1).reshape(-1, ndim)
    cycles = best_cycle + fine * spacing
    blocks = _symbol(spec, weight, cycles)
    _, values, vh = np.linalg.svd(blocks)
    index = np.unravel_index(int(np.argmax(values[..., 0])), values.shape[:2])
    cycle, group = cycles[index[0]], int(index[1])
    vector = np.conj(vh[index][0])
    wave = np.ones((), dtype=complex)
    for axis, (n, f) in enumerate(zip(spec.input_size, cycle, strict=True)):
        j = np.arange(n)
        along = np.exp(2j * np.pi * f * j) * np.sin(np.pi * (j + 1) / (n + 1))
        wave = np.multiply.outer(wave, along) if axis else along
    initial = np.zeros((spec.in_channels, *spec.input_size), dtype=complex)
    initial[group * cig:(group + 1) * cig] = np.multiply.outer(vector, wave)
    flat = initial.reshape(-1)
    if not np.iscomplexobj(weight):
        flat = flat.real + 0j
    flat /= max(float(np.linalg.norm(flat)), 1e-300)
    noise = rng.standard_normal(flat.shape)
    flat += 1e-4 * noise / np.linalg.norm(noise)
    return flat if np.iscomplexobj(weight) else flat.real.copy()


class _Hermitian(LinearOperator):
    """``CᴴC`` as one operator (eigsh needs ``matvec`` only)."""

    def __init__(self, gram: LinearOperator) -> None:
        self.gram = gram
        super().__init__(dtype=gram.dtype, shape=gram.shape)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        return self.gram.matvec(x)


def operator_norm_bound(layer: AffineMap) -> float:
    """A certified upper bound of ``‖C‖₂``, cheap to compute (no matrix, no iteration).

    Parameters
    ----------
    layer : AffineMap
        Any layer object; a stack gives the product of its layers' bounds.

    Returns
    -------
    float
        ``≥ operator_norm(layer)``.

    Notes
    -----
    Why it is certified, for a convolution (and its transpose, which has the same norm):

    * Block-circulant layers (circular padding, stride 1, full output): the exact norm,
      ``max_f ‖K̂(f)‖₂`` (Sedghi, Gupta & Long 2019).
    * Otherwise ``C = S·V·P``: ``P`` pads the input onto the padded grid it uses (extent
      ``L = (o − 1)s + d(k − 1) + 1`` per axis), ``V`` is the stride-1 unpadded
      cross-correlation on that grid, ``S`` keeps every ``s``-th output. Embed the padded
      input into a torus of size ``L``: no output ``o·s`` the layer keeps reads past ``L − 1``,
      so ``S·V`` is a row selection (norm ≤ 1) of the circular convolution on the torus, whose
      norm is exactly ``max_f ‖K̂_L(f)‖₂`` over the ``∏L`` torus frequencies. ``P`` has one 1 per
      row, so ``PᵀP`` is diagonal with the number of padded copies of each pixel and
      ``‖P‖₂ = ∏_axes √(max copies)`` (1 for zeros). Hence
      ``‖C‖₂ ≤ ‖P‖₂ · max_f ‖K̂_L(f)‖₂``.
    * Other layer kinds: ``√(‖C‖₁ ‖C‖_∞)`` (Hölder), from the matrix row by row block.
    * A stack: the product of its layers' bounds (submultiplicativity).

    The per-frequency SVDs are floating point: the result is enlarged by
    :data:`ROUNDING_MARGIN` (relative), far above their rounding error.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.ones((1, 1, 3, 3)), (1, 8, 8), padding=1)
    >>> bound, norm = cm.operator_norm_bound(conv), cm.operator_norm(conv)
    >>> bool(norm <= bound <= 9 * (1 + 1e-9)), round(norm, 4)
    (True, 8.2909)
    """
    layer = _check_layer(layer)
    factors = layer.chain()
    if factors != (layer,):
        return math.prod(operator_norm_bound(part) for part in factors)
    view = layer.conv_view()  # a transpose has the same norm: ‖Cᵀ‖₂ = ‖C‖₂
    if view is not None:
        return _conv_bound(view.spec, view.weight) * (1 + ROUNDING_MARGIN)
    return _hoelder_bound(layer) * (1 + ROUNDING_MARGIN)


def _hoelder_bound(layer: AffineMap) -> float:
    """``√(‖C‖₁ ‖C‖_∞)`` from the matrix's row blocks."""
    from convmatrix.analysis.blocks import matrix_blocks

    row_max = 0.0
    column_sums = np.zeros(layer.matrix_shape[1])
    for block in matrix_blocks(layer):
        magnitude = abs(block)
        row_max = max(row_max, float(magnitude.sum(axis=1).max(initial=0.0)))
        column_sums += magnitude.sum(axis=0)
        del block, magnitude
    return math.sqrt(row_max * float(column_sums.max(initial=0.0)))


# ---------------------------------------------------------------------------------------------
# stacks


@dataclass(frozen=True)
class LipschitzBounds:
    """A stack's exact Lipschitz constant (norm of the product) beside the usual bounds.

    Attributes
    ----------
    names : tuple of str
        Each layer's repr.
    norms : tuple of float
        Each layer's exact ``‖C_i‖₂``.
    bounds : tuple of float
        Each layer's certified :func:`operator_norm_bound`.
    exact : float
        ``‖C_n ⋯ C_1‖₂``, the smallest Lipschitz constant of the (linear) stack.
    """

    names: tuple[str, ...]
    norms: tuple[float, ...]
    bounds: tuple[float, ...]
    exact: float

    @property
    def product_of_norms(self) -> float:
        """``∏ ‖C_i‖₂``: the Lipschitz bound people use."""
        return math.prod(self.norms)

    @property
    def product_of_bounds(self) -> float:
        """``∏`` of the per-layer certified bounds."""
        return math.prod(self.bounds)

    @property
    def ratio(self) -> float:
        """How loose the product bound is: ``∏‖C_i‖ / ‖∏C_i‖`` (≥ 1; inf for a zero map)."""
        return self.product_of_norms / self.exact if self.exact > 0 else math.inf

    def _rows(self) -> list[tuple[str, str, str]]:
        rows = [(name, f"{norm:.6g}", f"{bound:.6g}")
                for name, norm, bound in zip(self.names, self.norms, self.bounds, strict=True)]
        rows.append(("product of the layers", f"{self.product_of_norms:.6g}",
                     f"{self.product_of_bounds:.6g}"))
        rows.append(("the stack (exact ‖∏C_i‖₂)", f"{self.exact:.6g}", ""))
        return rows

    def __str__(self) -> str:
        rows = [("layer", "‖C‖₂", "certified bound"), *self._rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                 .rstrip() for row in rows]
        lines.append(f"the product of the layer norms overestimates the stack's Lipschitz "
                     f"constant {self.ratio:.3g}×")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        lines = ["| layer | ‖C‖₂ | certified bound |", "| --- | --- | --- |"]
        lines += [f"| `{a}` | {b} | {c} |" for a, b, c in self._rows()]
        lines.append("")
        lines.append(f"The product of the layer norms overestimates the stack's Lipschitz "
                     f"constant {self.ratio:.3g}×.")
        return "\n".join(lines)


class _Product(LinearOperator):
    def __init__(self, ops: list[LinearOperator]) -> None:
        self.ops = ops
        dtype = np.result_type(*(op.dtype for op in ops))
        super().__init__(dtype=dtype, shape=(ops[-1].shape[0], ops[0].shape[1]))

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        for op in self.ops:
            x = op.matvec(x)
        return x

    def _rmatvec(self, y: np.ndarray) -> np.ndarray:
        for op in reversed(self.ops):
            y = op.rmatvec(y)
        return y


def lipschitz(stack: AffineMap | Sequence[AffineMap], *, tol: float = 1e-6
              ) -> LipschitzBounds:
    """The exact norm of a stack's product beside the product of its layers' norms.

    Parameters
    ----------
    stack : Layer with ``.layers`` (e.g. a ``Sequential``), or a sequence of layers
        Applied first to last; each layer's output shape must be the next one's input shape.
    tol : float, optional
        As in :func:`operator_norm`.

    Returns
    -------
    LipschitzBounds
        Renders as a table (``str``, Markdown in notebooks).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> a = cm.Conv(np.array([[[1.0, 1.0]]]), (1, 4))
    >>> b = cm.Conv(np.array([[[1.0, -1.0]]]), (1, 3))
    >>> result = cm.lipschitz([a, b])
    >>> result.exact <= result.product_of_norms
    True
    """
    layers = _stack_layers(stack) if is_affine_map(stack) else list(stack)  # type: ignore[arg-type]
    if not layers:
        raise ConvMatrixError(f"`stack` (={stack!r}) must be a stack or a non-empty sequence "
                              f"of layers")
    for index, part in enumerate(layers):
        _check_layer(part)
        if index and part.input_shape != layers[index - 1].output_shape:
            raise ConvMatrixError(
                f"layer {index} takes {part.input_shape} but layer {index - 1} gives "
                f"{layers[index - 1].output_shape}")
    norms = tuple(operator_norm(part, tol=tol) for part in layers)
    bounds = tuple(operator_norm_bound(part) for part in layers)
    product = _Product([LayerOperator(part) for part in layers])
    exact = _product_norm(product, tol)
    return LipschitzBounds(tuple(repr(part) for part in layers), norms, bounds, exact)


def _product_norm(op: LinearOperator, tol: float) -> float:
    rows, cols = op.shape
    if rows * cols <= DENSE_MAX_ENTRIES or min(rows, cols) <= 2:
        dense = op @ np.eye(cols, dtype=op.dtype)
        return float(np.linalg.svd(dense, compute_uv=False).max(initial=0.0))
    gram = (op.H @ op) if cols <= rows else (op @ op.H)
    v0 = _start_vector(min(rows, cols), op.dtype)
    (value,) = eigsh(_Hermitian(gram), k=1, which="LA", tol=tol, v0=v0,
                     ncv=min(min(rows, cols), 24), return_eigenvectors=False)
    return math.sqrt(max(float(np.real(value)), 0.0))
