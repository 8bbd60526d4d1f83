"""ARPACK on the matrix-free operator: a few singular values, and Lanczos for the norm.

For convolutions the norm's Lanczos run starts from a plane wave at the frequency where the
kernel's symbol ``K̂(f)`` peaks.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh, svds

from convmatrix._errors import ConvMatrixError
from convmatrix._progress import Progress, ProgressArg
from convmatrix.analysis.linop import LayerOperator
from convmatrix.geometry.spec import ConvSpec
from convmatrix.geometry.view import AffineMap

__all__ = [
    "Product",
    "TopEigen",
    "conv_norm",
    "conv_top",
    "gram_norm",
    "gram_top",
    "iterative_values",
    "top_eigen",
]


def _start_vector(n: int, dtype: np.dtype[Any]) -> np.ndarray:
    """A fixed start vector (deterministic results), generic enough for ARPACK."""
    v = np.random.default_rng(n).standard_normal(n)
    return v.astype(dtype) if dtype.kind == "c" else v


def _conv_operator(spec: ConvSpec, weight: np.ndarray) -> LinearOperator:
    """``C`` of a convolution as a matrix-free operator on the given (e.g. rescaled) weight."""
    from convmatrix.builder.apply import conv_apply, conv_apply_adjoint

    complex_ = np.iscomplexobj(weight)
    dtype = np.dtype(np.complex128 if complex_ else np.float64)
    w = np.asarray(weight, dtype=dtype)
    in_shape, out_shape = spec.input_shape, spec.output_shape

    def matvec(v: np.ndarray) -> np.ndarray:
        return conv_apply(spec, w, np.asarray(v, dtype=dtype).reshape(1, *in_shape)).reshape(-1)

    def rmatvec(u: np.ndarray) -> np.ndarray:
        y = np.asarray(u, dtype=dtype).reshape(1, *out_shape)
        if complex_:
            return np.conj(conv_apply_adjoint(spec, w, np.conj(y))).reshape(-1)
        return conv_apply_adjoint(spec, w, y).reshape(-1)

    return LinearOperator(shape=(math.prod(out_shape), math.prod(in_shape)), matvec=matvec,
                          rmatvec=rmatvec, dtype=dtype)


def _counted(op: LinearOperator, bar: Progress) -> LinearOperator:
    """``op`` reporting each product (forward or adjoint) to ``bar``."""
    def matvec(v: np.ndarray) -> np.ndarray:
        out = op.matvec(v)
        bar.advance()
        return out

    def rmatvec(u: np.ndarray) -> np.ndarray:
        out = op.rmatvec(u)
        bar.advance()
        return out

    return LinearOperator(shape=op.shape, matvec=matvec, rmatvec=rmatvec, dtype=op.dtype)


def _is_zero(op: LinearOperator) -> bool:
    """``op`` is the zero map: it sends a generic (random, seeded) vector to exactly 0."""
    rows, cols = op.shape
    if cols <= rows:
        return not np.any(op.matvec(_start_vector(cols, op.dtype)))
    return not np.any(op.rmatvec(_start_vector(rows, op.dtype)))


def iterative_values(layer: AffineMap, k: int | None, which: str, tol: float,
                     spec: ConvSpec | None = None, weight: np.ndarray | None = None,
                     scale: float = 1.0, progress: ProgressArg = False) -> np.ndarray:
    """The ``k`` largest or smallest singular values by ARPACK (``svds``), descending.

    With ``spec`` and ``weight`` (a convolution's weight divided by ``scale``) the operator
    runs on that weight and the values are multiplied back by ``scale``.
    """
    count = min(layer.matrix_shape)
    if k is None or k >= count:
        raise ConvMatrixError(
            f"method='iterative' computes a few singular values: `k` (={k!r}) must be an int "
            f"below min(rows, columns) = {count}; for all of them use method='dense'")
    op = (LayerOperator(layer) if spec is None or weight is None
          else _conv_operator(spec, weight))
    v0 = _start_vector(min(op.shape), op.dtype)
    if _is_zero(op):
        return np.zeros(k)
    with Progress(None, progress, "ARPACK products") as bar:
        values = svds(_counted(op, bar), k=k, which="LM" if which == "largest" else "SM",
                      tol=tol, v0=v0, return_singular_vectors=False, solver="arpack")
    return np.sort(values)[::-1] * scale


def _conv_gram(spec: ConvSpec, weight: np.ndarray) -> LinearOperator:
    """``CᴴC`` of a convolution (on its input side) as a Hermitian operator with ``matmat``."""
    from convmatrix.builder.apply import conv_apply, conv_apply_adjoint

    complex_ = np.iscomplexobj(weight)
    dtype = np.dtype(np.complex128 if complex_ else np.float64)
    w = np.asarray(weight, dtype=dtype)
    shape = spec.input_shape
    size = math.prod(shape)

    def batch(columns: np.ndarray) -> np.ndarray:
        count = columns.shape[1]
        x = np.ascontiguousarray(columns.T, dtype=dtype).reshape(count, *shape)
        y = conv_apply(spec, w, x)
        if complex_:
            out = np.conj(conv_apply_adjoint(spec, w, np.conj(y)))
        else:
            out = conv_apply_adjoint(spec, w, y)
        return out.reshape(count, size).T

    return LinearOperator(shape=(size, size), matvec=lambda v: batch(v.reshape(-1, 1))[:, 0],
                          matmat=batch, dtype=dtype)


def _conv_gram_rows(spec: ConvSpec, weight: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``CᴴC`` of a convolution on a block of row vectors ``(b, n)``."""
    from convmatrix.builder.apply import conv_apply, conv_apply_adjoint

    complex_ = np.iscomplexobj(weight)
    dtype = np.dtype(np.complex128 if complex_ else np.float64)
    w = np.asarray(weight, dtype=dtype)
    shape = spec.input_shape

    def gram(rows: np.ndarray) -> np.ndarray:
        x = np.asarray(rows, dtype=dtype).reshape(len(rows), *shape)
        y = conv_apply(spec, w, x)
        if complex_:
            return np.conj(conv_apply_adjoint(spec, w, np.conj(y))).reshape(len(rows), -1)
        return conv_apply_adjoint(spec, w, y).reshape(len(rows), -1)

    return gram


class TopEigen:
    """The ``k`` largest eigenpairs of a Hermitian gram ``G`` by Lanczos, with their residuals.

    ``values`` descending, ``vectors`` their columns, ``residuals`` the relative residuals
    ``‖G v − θ v‖ / θ`` recomputed from fresh products (not ARPACK's estimates),
    ``products`` the number of gram products (columns) spent.
    """

    def __init__(self, values: np.ndarray, vectors: np.ndarray, residuals: np.ndarray,
                 products: int, method: str = "arpack") -> None:
        self.values, self.vectors, self.residuals = values, vectors, residuals
        self.products, self.method = products, method


def top_eigen(gram: LinearOperator, k: int, tol: float, v0: np.ndarray,
              progress: ProgressArg = False, ncv: int | None = None) -> TopEigen:
    """The ``k`` largest eigenvalues of the Hermitian ``gram`` by implicitly restarted Lanczos.

    ``tol`` is ARPACK's: each Ritz pair stops at ``‖G v − θ v‖ ≤ tol·θ`` (0: machine
    precision), the criterion :func:`conv_norm` uses for ``k = 1``. A start ``v0`` near the
    top eigenvectors (a plane wave, for convolutions) saves steps. The subspace holds
    ``ncv`` vectors (default ``k + 20``: the top of a convolution's spectrum is clustered, a
    roomy subspace restarts less often).
    """
    from scipy.sparse.linalg import ArpackNoConvergence

    size = gram.shape[0]
    ncv = min(size, ncv if ncv is not None else max(2 * k + 1, k + 20))
    counter = [0]
    with Progress(None, progress, "Lanczos steps") as bar:
        def step(v: np.ndarray) -> np.ndarray:
            counter[0] += 1
            bar.advance()
            return gram.matvec(v)

        operator = LinearOperator(shape=gram.shape, matvec=step, dtype=gram.dtype)
        try:
            values, vectors = eigsh(operator, k=k, which="LA", tol=tol, v0=v0, ncv=ncv)
        except ArpackNoConvergence as exc:
            raise ConvMatrixError(
                f"Lanczos did not reach `tol` (={tol!r}) for the {k} largest singular values "
                f"in {counter[0]} products ({len(exc.eigenvalues)} converged); raise `tol`"
            ) from None
    order = np.argsort(values)[::-1]
    values, vectors = np.real(values[order]), vectors[:, order]
    residual = gram.matmat(vectors) - vectors * values
    counter[0] += k
    scale = np.maximum(np.abs(values), np.finfo(np.float64).tiny)
    residuals = np.linalg.norm(residual, axis=0) / scale
    return TopEigen(values, vectors, residuals, counter[0])


def conv_norm(spec: ConvSpec, weight: np.ndarray, tol: float, progress: ProgressArg = False
              ) -> float:
    """``‖C‖₂`` of a convolution: Lanczos on ``CᴴC`` from a plane-wave start (see below).

    0.0 for the zero map (e.g. every tap reads padding). ``weight`` should be of moderate
    scale (:func:`~convmatrix.analysis.spectra.methods.operator_norm` divides it by a power
    of two first), so that ``CᴴC`` neither overflows nor underflows.
    """
    from convmatrix.builder.apply import conv_apply, conv_apply_adjoint

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

    if not np.any(w):
        return 0.0
    operator = LinearOperator(shape=(size, size), matvec=gram, dtype=dtype)
    v0 = _plane_wave_start(spec, w)
    if not np.any(gram(_start_vector(size, dtype))):
        return 0.0
    with Progress(None, progress, "Lanczos steps") as bar:
        (value,) = eigsh(_counted(operator, bar), k=1, which="LA", tol=tol, v0=v0,
                         ncv=min(size, 24), return_eigenvectors=False)
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


def _polyphase(spec: ConvSpec, weight: np.ndarray, outs: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """The per-frequency blocks of a (strided) convolution at output frequencies ``outs``.

    Stride ``s`` folds the input frequencies ``f_a = (g + a)/s`` (``a`` in ``∏ range(s)``,
    the aliases) onto the output frequency ``g``: a sum of plane waves ``Σ_a v_a e^{2πi f_a·j}``
    goes to ``e^{2πi g·o} Σ_a e^{−2πi f_a·p} K̂(f_a) v_a`` (``p`` the padding before). Returns
    the blocks ``[e^{−2πi f_a·p} K̂(f_a)]_a`` side by side, ``(F, groups, C_out/G, A·C_in/G)``
    (``a`` major), and the aliases' frequencies ``(F, A, ndim)``. Stride 1: ``A = 1``, ``K̂``.
    """
    ndim = spec.ndim
    alias = np.array(list(itertools.product(*(range(s) for s in spec.stride))), dtype=float)
    before = np.array([pad[0] for pad in spec.padding], dtype=float)
    cycles = (outs[:, None, :] + alias[None]) / np.array(spec.stride, dtype=float)
    flat = cycles.reshape(-1, ndim)
    blocks = _symbol(spec, weight, flat) * np.exp(-2j * np.pi * (flat @ before))[:, None, None,
                                                                                  None]
    count, groups = len(outs), spec.groups
    cog, cig = spec.out_channels // groups, spec.in_channels // groups
    blocks = blocks.reshape(count, len(alias), groups, cog, cig).transpose(0, 2, 3, 1, 4)
    return blocks.reshape(count, groups, cog, len(alias) * cig), cycles


def _peak(spec: ConvSpec, weight: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """``(f, group, v)``: the frequencies where the symbol's norm peaks, the group, the vectors.

    Stride 1: ``f`` ``(1, ndim)`` maximises ``‖K̂(f)‖₂``, ``v`` ``(1, C_in/G)`` is the top right
    singular vector of ``K̂(f)``. Strided: the output frequency ``g`` maximising the norm of
    :func:`_polyphase`'s block, ``f`` its ``A`` aliases and ``v`` ``(A, C_in/G)`` the block's
    top right singular vector cut per alias. ``g`` is searched on a coarse grid (batched power
    steps), then refined around the best point with exact SVDs.
    """
    ndim, cig = spec.ndim, spec.in_channels // spec.groups
    aliases = math.prod(spec.stride)
    rng = np.random.default_rng(0)
    coarse = [np.arange(min(n, _START_GRID)) / min(n, _START_GRID) for n in spec.output_size]
    grid = np.stack(np.meshgrid(*coarse, indexing="ij"), axis=-1).reshape(-1, ndim)
    best_gain, best_cycle = -1.0, grid[0]
    step = max(1, 2**22 // max(1, spec.out_channels * cig * aliases))
    for start in range(0, len(grid), step):
        block, _ = _polyphase(spec, weight, grid[start:start + step])
        v = rng.standard_normal((*block.shape[:2], block.shape[3], 1)) + 0j
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
    blocks, cycles = _polyphase(spec, weight, best_cycle + fine * spacing)
    _, values, vh = np.linalg.svd(blocks)
    index = np.unravel_index(int(np.argmax(values[..., 0])), values.shape[:2])
    vector = np.conj(vh[index][0]).reshape(aliases, cig)
    return cycles[index[0]], int(index[1]), vector


def _plane_wave(spec: ConvSpec, peak: tuple[np.ndarray, int, np.ndarray],
                modes: tuple[int, ...]) -> np.ndarray:
    """``Σ_a v_a e^{2πi f_a·j}`` at the peak, windowed by ``Σ_m ∏_axes sin(π m (j + 1)/(n + 1))/m``.

    Complex, flat, unit norm.
    """
    cycles, group, vectors = peak
    cig = spec.in_channels // spec.groups
    grids = [np.arange(n) for n in spec.input_size]
    window = np.ones(())
    for n, j in zip(spec.input_size, grids, strict=True):
        window = np.multiply.outer(window, sum(np.sin(np.pi * m * (j + 1) / (n + 1)) / m
                                               for m in modes))
    initial = np.zeros((spec.in_channels, *spec.input_size), dtype=complex)
    for cycle, vector in zip(cycles, vectors, strict=True):
        wave = np.ones((), dtype=complex)
        for f, j in zip(cycle, grids, strict=True):
            wave = np.multiply.outer(wave, np.exp(2j * np.pi * f * j))
        initial[group * cig:(group + 1) * cig] += np.multiply.outer(vector, wave * window)
    flat = initial.reshape(-1)
    return flat / max(float(np.linalg.norm(flat)), 1e-300)


def _most_real(flat: np.ndarray) -> np.ndarray:
    """``flat`` times the unit phase that makes its real part largest (``e^{−i arg(Σ x²)/2}``).

    A real layer's top singular vectors are real: this turns a complex plane wave (whose
    global phase the SVD leaves arbitrary) into the real wave it stands for, and leaves the
    smallest possible imaginary part (the sine of a cosine/sine pair).
    """
    total = complex(np.sum(flat * flat))
    return flat * np.exp(-0.5j * np.angle(total)) if total != 0 else flat


def _plane_wave_start(spec: ConvSpec, weight: np.ndarray) -> np.ndarray:
    """A start vector near the top right singular vector of a convolution.

    The top singular vectors of a convolution are close to a plane wave ``v e^{2πi f·j}``
    at the frequency ``f`` maximising ``‖K̂(f)‖₂``, with ``v`` the top right singular vector of
    ``K̂(f)`` (exactly so for circular padding), shaped by a sine window for the borders
    (:func:`_peak`, :func:`_plane_wave`); for a strided layer a sum of such waves over the
    frequencies that alias to the same output frequency (:func:`_polyphase`: on the ResNet
    stem this cut the norm's products from 242 to 182). Starting Lanczos there instead of at
    random saves many of the steps the clustered top of a convolution's spectrum needs; a
    small random part keeps every direction present.
    """
    rng = np.random.default_rng(0)
    flat = _plane_wave(spec, _peak(spec, weight), (1,))
    if not np.iscomplexobj(weight):
        flat = _most_real(flat).real + 0j
    flat /= max(float(np.linalg.norm(flat)), 1e-300)
    noise = rng.standard_normal(flat.shape)
    flat += 1e-4 * noise / np.linalg.norm(noise)
    return flat if np.iscomplexobj(weight) else flat.real.copy()


def _plane_wave_block(spec: ConvSpec, weight: np.ndarray) -> tuple[np.ndarray, bool]:
    """Two start vectors for the top of a convolution's spectrum, ``(size, 2)``.

    For real weights the peak ``f`` and ``−f`` give two real singular vectors, near the cosine
    and the sine wave, whose singular values are nearly equal (split only by the borders): the
    block holds both. At a self-conjugate peak (``2f`` an integer vector, the sine vanishes)
    and for complex weights the second vector is the wave under the next window modes. Both
    windows sum the modes ``m = 1, 2, 3`` (the envelopes of the next singular vectors at the
    same frequency). A small random part keeps every direction present.
    """
    rng = np.random.default_rng(0)
    peak = _peak(spec, weight)
    wave = _plane_wave(spec, peak, (1, 2, 3))
    other = _plane_wave(spec, peak, (2, 3))
    if not np.iscomplexobj(weight):
        wave, other = _most_real(wave), _most_real(other)
    paired = (not np.iscomplexobj(weight)
              and bool(np.linalg.norm(wave.imag) > 1e-3 * np.linalg.norm(wave.real)))
    if np.iscomplexobj(weight):
        columns = [wave, other]
    elif paired:
        columns = [wave.real, wave.imag]
    else:
        columns = [wave.real, other.real]
    phases = math.prod(spec.dilation)
    if phases > 1:  # dilation d: the d^ndim interleaved sub-grids may be exact copies
        classes = np.indices(spec.input_size).reshape(spec.ndim, -1)
        label = np.ravel_multi_index(tuple(c % d for c, d in zip(classes, spec.dilation,
                                                                  strict=True)),
                                     spec.dilation)
        label = np.tile(label, spec.in_channels)
        columns = [np.where(label == phase, column, 0) for column in columns
                   for phase in range(phases)]
    block = np.stack(columns, axis=1)
    block /= np.maximum(np.linalg.norm(block, axis=0), 1e-300)
    noise = rng.standard_normal(block.shape)
    block += 1e-4 * noise / np.linalg.norm(noise, axis=0)
    return block, paired


class _Hermitian(LinearOperator):
    """``CᴴC`` as one operator (eigsh needs ``matvec`` only)."""

    def __init__(self, gram: LinearOperator) -> None:
        self.gram = gram
        super().__init__(dtype=gram.dtype, shape=gram.shape)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        return self.gram.matvec(x)


class Product(LinearOperator):
    """A chain of operators applied first to last (and back for the adjoint)."""

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


def gram_norm(op: LinearOperator, tol: float, progress: ProgressArg = False) -> float:
    """``‖op‖₂`` by Lanczos on ``opᴴop`` (or ``op opᴴ``, the smaller), from a fixed start."""
    rows, cols = op.shape
    gram = (op.H @ op) if cols <= rows else (op @ op.H)
    v0 = _start_vector(min(rows, cols), op.dtype)
    if not np.any(gram.matvec(v0)):
        return 0.0
    with Progress(None, progress, "Lanczos steps") as bar:
        (value,) = eigsh(_counted(_Hermitian(gram), bar), k=1, which="LA", tol=tol, v0=v0,
                         ncv=min(min(rows, cols), 24), return_eigenvectors=False)
    return math.sqrt(max(float(np.real(value)), 0.0))


def conv_top(spec: ConvSpec, weight: np.ndarray, k: int, tol: float,
             progress: ProgressArg = False, block: bool | None = None) -> TopEigen:
    """The ``k`` largest eigenpairs of a convolution's ``CᴴC`` from plane-wave starts.

    Real weights whose symbol peaks at ``±f`` (not self-conjugate) have nearly degenerate
    cosine/sine pairs at the top: block Lanczos with both waves as its block
    (:func:`block_lanczos`, ``method`` "block-lanczos"); so does ``k > 2`` (fewer seconds
    on the ResNet stage: a block of two costs less than two single products). Otherwise (one
    wave at the peak, ``k <= 2``) ARPACK's Lanczos from the first wave, as :func:`conv_norm`
    for ``k = 1``, with a subspace of ``k + 20`` vectors ("lanczos"). Dilated layers always
    take the block (one vector per sub-grid, see :func:`_plane_wave_block`). ``block``
    forces either (benchmarks, tests). ``k = 1`` (unless ``block``) is :func:`conv_norm`'s
    run: ARPACK from the single plane wave with 24 vectors (a vector anywhere in a top pair
    has a small residual, so no block is needed).
    """
    gram = _conv_gram(spec, weight)
    if k == 1 and not block:  # the norm's own run: any vector of a top pair will do
        found = top_eigen(gram, 1, tol, _plane_wave_start(spec, weight), progress, ncv=24)
        found.method = "lanczos"
        return found
    start, paired = _plane_wave_block(spec, np.asarray(weight, dtype=gram.dtype))
    if block is None:  # measured on the ResNet stage: ARPACK is cheaper for k <= 2 only
        block = paired or start.shape[1] > 2 or k > 2
    if not block:
        found = top_eigen(gram, k, tol, start[:, 0], progress)
        found.method = "lanczos"
        return found
    return block_lanczos(_conv_gram_rows(spec, weight), start.T, k, tol, progress)


def gram_top(op: LinearOperator, k: int, tol: float, progress: ProgressArg = False
             ) -> TopEigen:
    """The ``k`` largest eigenpairs of ``opᴴop`` (or ``op opᴴ``, the smaller), fixed start."""
    rows, cols = op.shape
    gram = (op.H @ op) if cols <= rows else (op @ op.H)
    return top_eigen(gram, k, tol, _start_vector(min(rows, cols), op.dtype), progress)


_BASIS_BYTES = 128 * 2**20  # the Lanczos basis held at most (thick restarts beyond it)
_BASIS_VECTORS = 48  # the basis size (40 before: 8% more products on the stage, 9% on the stem)
_KEEP = 0.5  # the share of the basis a thick restart keeps (its top Ritz vectors)
_LOSS_BOUND = 1e-12  # a step may skip the full pass when the last one found at most this
_MAX_STEPS = 4000  # block steps before giving up (a warning names the residuals reached)


_CACHE_BYTES = 2**20  # the basis is read in column blocks of about this size (in cache)
_MIN_COLUMNS = 2048  # and at least this many columns per block


def _row_qr(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``block = Rᵀ Q`` by rows (``np.linalg.qr(block.T)``), by Cholesky QR twice when it can.

    Two passes of Cholesky QR on the ``b × b`` Gram matrix read a few-row block twice each;
    LAPACK's Householder QR of the tall transposed block copies it and is several times
    slower. A block too close to rank deficient for Cholesky takes the Householder QR.
    """
    q, total = block, np.eye(len(block), dtype=block.dtype)
    try:
        for _ in range(2):
            lower = np.linalg.cholesky(q @ (np.conj(q.T) if np.iscomplexobj(q) else q.T))
            q = np.linalg.inv(lower) @ q
            total = lower.T @ total
    except np.linalg.LinAlgError:
        q2, r = np.linalg.qr(block.T)
        return np.ascontiguousarray(q2.T), r
    if not np.all(np.isfinite(q)) or np.min(np.abs(np.diag(total))) < 1e-6 * np.max(
            np.abs(np.diag(total))):  # nearly dependent rows: Householder decides
        q2, r = np.linalg.qr(block.T)
        return np.ascontiguousarray(q2.T), r
    return q, total


def _orthonormal(block: np.ndarray, basis: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``block = Rᵀ Q`` by rows: ``Q`` orthonormal rows orthogonal to the rows of ``basis``.

    Rows of ``block`` inside the span of ``basis`` (an invariant subspace found) come back as
    fresh random directions orthogonal to it, with a zero column in ``R``.
    """
    q2, r = _row_qr(block)
    r2 = np.eye(len(q2))
    small = np.abs(np.diag(r)) < 1e-8 * max(float(np.abs(r).max(initial=0.0)), 1e-300)
    if np.any(small) and len(basis) + len(q2) <= basis.shape[1]:
        q2 = np.array(q2, copy=True)
        q2[small] = rng.standard_normal((int(small.sum()), q2.shape[1]))
        for _ in range(2 if len(basis) else 0):
            q2 = q2 - (q2 @ basis.conj().T) @ basis
        q2 = _row_qr(q2)[0]
        r2 = np.where(small[:, None], 0, r2)
    return q2, r2 @ r


def _fresh(r: np.ndarray | None) -> bool:
    """``R`` of :func:`_orthonormal` has a zero row: a row of ``Q`` is a fresh random one."""
    return r is not None and bool(np.any(np.all(r == 0, axis=1)))


def _project(w: np.ndarray, known: np.ndarray) -> np.ndarray:
    """One pass of classical Gram–Schmidt: ``w`` (in place) loses its parts along ``known``.

    The rows of ``w`` lose their components along the rows of ``known``; returns the
    coefficients ``w_before @ knownᴴ``. The basis is read twice (the coefficients, then the
    update), in column blocks that stay in cache, one ``gemv`` per row and block: not once
    per row (a ``gemv`` per row over the whole basis), and without the ``gemm`` that packs
    the whole basis for a two-row block.
    """
    size = known.shape[1]
    step = max(_MIN_COLUMNS, _CACHE_BYTES // max(1, len(known) * known.itemsize))
    coefficients = np.zeros((len(w), len(known)), dtype=w.dtype)
    if not len(known):
        return coefficients
    complex_ = np.iscomplexobj(known)
    for start in range(0, size, step):
        part = known[:, start:start + step]
        for row, out in zip(w[:, start:start + step], coefficients, strict=True):
            out += np.conj(part @ np.conj(row)) if complex_ else part @ row
    for start in range(0, size, step):
        w[:, start:start + step] -= coefficients @ known[:, start:start + step]
    return coefficients


def _orthogonalise(w: np.ndarray, basis: np.ndarray, local: int, full: bool
                   ) -> tuple[np.ndarray, float]:
    """Make the rows of ``w`` orthogonal to the rows of ``basis`` (in place).

    The rows from ``local`` on are where ``w = G q`` has its large components (the
    three-term recurrence: the current and the previous block; after a thick restart, all
    kept Ritz vectors): they are removed first (a few rows, cheap). What remains along the
    rest of the basis is rounding that built up (the loss of orthogonality Lanczos is known
    for), and with ``full`` one pass over the whole basis removes it to rounding again; for
    the local rows that full pass is the second ("twice is enough"). Without ``full`` the
    local rows get their second pass alone and the rounding along the older rows stays for
    the next full pass (see :func:`block_lanczos`), unless a row lost more than 99% of its
    norm to the local rows. Returns the coefficients
    ``w_before @ basisᴴ`` and the loss the full pass found: its largest coefficient on the
    older rows relative to the smallest row of ``w`` left (0.0 without ``full``).
    """
    coefficients = np.zeros((len(w), len(basis)), dtype=w.dtype)
    before = np.linalg.norm(w, axis=1)
    coefficients[:, local:] = _project(w, basis[local:])
    # a row that lost most of its norm to the local rows (a near-invariant subspace) would
    # magnify the rounding along the older rows: it takes the full pass
    if not full and np.all(np.linalg.norm(w, axis=1) >= 1e-2 * before):
        coefficients[:, local:] += _project(w, basis[local:])
        return coefficients, 0.0
    again = _project(w, basis)
    coefficients += again
    left = max(float(np.linalg.norm(w, axis=1).min(initial=np.inf)), 1e-300)
    return coefficients, float(np.abs(again[:, :local]).max(initial=0.0)) / left


def block_lanczos(gram: Callable[[np.ndarray], np.ndarray], start: np.ndarray, k: int,
                  tol: float, progress: ProgressArg = False, max_vectors: int | None = None
                  ) -> TopEigen:
    """The ``k`` largest eigenpairs of a Hermitian ``G`` by block Lanczos from ``start``.

    ``gram`` maps a block of row vectors ``(b, n)`` to ``G`` applied to each, ``start`` is
    ``(b, n)``. Each step applies ``G`` to a block of ``b`` vectors (one batched product),
    orthogonalises it against the basis (:func:`_orthogonalise`: the last blocks twice,
    the whole basis once) and takes the Rayleigh–Ritz values of ``H = V G Vᴴ``. Every other
    step may skip the pass over the whole basis (the basis is read once instead of twice
    per step) while the pass before found the older rows clean to :data:`_LOSS_BOUND`
    (``10⁴ ε``; one step without it leaves about ``10² ε`` on the ResNet layers, far inside
    the ``√ε`` semi-orthogonality that keeps ``H`` accurate to rounding; two in a row
    were measured to break down, so it never skips twice). A block finds the ``b`` members
    of a (nearly) degenerate cluster together, where single-vector Lanczos sees only one
    combination of them. Ritz pair ``i`` has
    converged when its residual ``‖G y_i − θ_i y_i‖ = ‖Rᵀ Y_{last, i}‖`` is at most
    ``tol·θ_i`` (ARPACK's criterion, as in :func:`conv_norm`), or ``64 ε θ_1`` (what rounding
    in the products allows). Past ``max_vectors`` basis vectors (default 48, fewer if
    they exceed :data:`_BASIS_BYTES`) the basis restarts from its top Ritz vectors (thick restart).
    """
    width, size = start.shape
    dtype = np.result_type(start.dtype, np.float64)
    rng = np.random.default_rng(size)
    limit = max_vectors or max(_BASIS_VECTORS, 3 * k + 4 * width)
    limit = min(limit, max(_BASIS_BYTES // (dtype.itemsize * size), k + 2 * width))
    limit = min(size, max(limit, k + 2 * width))
    basis = np.zeros((limit, size), dtype=dtype)
    h = np.zeros((limit, limit), dtype=dtype)
    q, _ = _orthonormal(start.astype(dtype), basis[:0], rng)
    basis[:width] = q
    used, new, products, checked, ritz = width, slice(0, width), 0, 0, 0
    local, keep_at = 0, -1  # the start of the local rows; where the last restart kept to
    skippable = False  # the next step may skip the full reorthogonalisation pass
    floor = 64 * np.finfo(np.float64).eps
    theta = y = residual = np.zeros(0)
    with Progress(None, progress, "Lanczos steps") as bar:
        for _ in range(_MAX_STEPS):
            w = np.asarray(gram(basis[new]), dtype=dtype)
            products += new.stop - new.start
            bar.advance(new.stop - new.start)
            known = basis[:used]
            full = local == 0 or not skippable
            coefficients, loss = _orthogonalise(w, known, local, full)
            skippable = full and loss <= _LOSS_BOUND
            h[new, :used] = coefficients.conj()
            h[:used, new] = coefficients.T
            h[new, new] = (h[new, new] + h[new, new].conj().T) / 2
            exhausted = used >= size
            q, r = _orthonormal(w, known, rng) if not exhausted else (w[:0], None)
            if used >= k and (used - checked >= max(4, used // 8) or exhausted
                              or used + width > limit):
                checked = ritz = used
                theta, y = np.linalg.eigh(h[:used, :used])
                theta, y = theta[::-1], y[:, ::-1]
                residual = (np.zeros(k) if r is None
                            else np.linalg.norm(r.T @ y[new, :k], axis=0))
                bound = np.maximum(tol * np.abs(theta[:k]), floor * abs(theta[0]))
                if exhausted or np.all(residual <= bound):
                    break
            assert r is not None
            step = min(width, size - used)
            if used + step > limit:  # thick restart: keep the top Ritz vectors
                keep = min(used - step, max(k + width, int(limit * _KEEP)))
                basis[:keep] = y[:, :keep].T @ known
                h[:] = 0
                h[np.arange(keep), np.arange(keep)] = theta[:keep]
                used = checked = keep_at = keep
            basis[used:used + step] = q[:step]
            # after a restart or a random row (an invariant subspace ended the last block)
            # the products have large components along the whole basis
            local = 0 if used == keep_at or _fresh(r) else max(0, used - width)
            new = slice(used, used + step)
            used += step
        else:
            ritz = new.start  # the basis vectors whose products are all in ``h``
            theta, y = np.linalg.eigh(h[:ritz, :ritz])
            theta, y = theta[::-1], y[:, ::-1]
            warnings.warn(
                f"block Lanczos stopped after {products} products without reaching `tol` "
                f"(={tol!r}): relative residuals {residual / np.abs(theta[:k])}",
                RuntimeWarning, stacklevel=3)
    values = np.real(theta[:k])
    vectors = y[:, :k].T @ basis[:ritz]
    fresh = np.asarray(gram(vectors)) - values[:, None] * vectors
    products += k
    scale = np.maximum(np.abs(values), np.finfo(np.float64).tiny)
    return TopEigen(values, vectors.T, np.linalg.norm(fresh, axis=1) / scale, products,
                    "block-lanczos")
