"""ARPACK on the matrix-free operator: a few singular values, and Lanczos for the norm.

For convolutions the norm's Lanczos run starts from a plane wave at the frequency where the
kernel's symbol ``K̂(f)`` peaks.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh, svds

from convmatrix._errors import ConvMatrixError
from convmatrix._progress import Progress, ProgressArg
from convmatrix.analysis.linop import LayerOperator
from convmatrix.geometry.spec import ConvSpec
from convmatrix.geometry.view import AffineMap

__all__ = ["Product", "conv_norm", "gram_norm", "iterative_values"]


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
