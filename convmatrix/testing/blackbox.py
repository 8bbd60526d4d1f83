"""Calling a user's function on batches of probe inputs, and checking that it is affine-linear."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.spec import as_sample_shape

__all__ = ["BlackBox", "Linearity", "as_numpy", "check_linearity"]

#: bytes of probe inputs plus outputs handed to ``fn`` in one batched call
BATCH_BYTES = 64 * 2**20


def as_numpy(value: Any) -> np.ndarray:
    """``value`` as a numpy array: torch tensors are detached and moved to the CPU first.

    Examples
    --------
    >>> as_numpy([1.0, 2.0])
    array([1., 2.])
    """
    if hasattr(value, "detach"):
        value = value.detach()
    if hasattr(value, "cpu") and not isinstance(value, np.ndarray):
        value = value.cpu()
    array = np.asarray(value)
    if array.dtype.kind not in "biufc":
        raise ConvMatrixError(
            f"`fn` returned {type(value).__name__} of dtype {array.dtype}; it must return "
            f"numbers (a numpy array, or anything np.asarray reads)")
    return array


class BlackBox:
    """A user's function of one sample (or of a batch) seen as ``(B, n) → (B, m)`` in float64.

    Parameters
    ----------
    fn : callable
        Takes a numpy array of shape ``input_shape`` (or ``(B, *input_shape)`` when
        ``batched``) and returns an array-like output (numpy, or e.g. a CPU torch tensor).
    input_shape : sequence of int
        One sample's shape.
    batched : bool
        Whether ``fn`` takes a leading batch axis.

    Attributes
    ----------
    samples, calls : int
        Samples evaluated and calls made so far.
    output_shape : tuple of int or None
        One output sample's shape, known after the first call.
    """

    def __init__(self, fn: Callable[[np.ndarray], Any], input_shape: Sequence[int],
                 batched: bool) -> None:
        if not callable(fn):
            raise ConvMatrixError(f"`fn` (={fn!r}) must be callable")
        self.fn = fn
        self.input_shape: tuple[int, ...] = as_sample_shape(input_shape, layout="(C_in, *spatial)")
        self.batched = bool(batched)
        self.n = math.prod(self.input_shape)
        self.output_shape: tuple[int, ...] | None = None
        self.dtype: np.dtype[Any] = np.dtype(np.float64)
        self.samples = 0
        self.calls = 0
        self.eps = 0.0  # largest rounding unit of fn's output dtypes (float32: 1.2e-7)

    @property
    def m(self) -> int:
        """Output size of one sample (after the first call)."""
        assert self.output_shape is not None
        return math.prod(self.output_shape)

    def batch_size(self) -> int:
        """Samples per call keeping inputs plus outputs near :data:`BATCH_BYTES`."""
        per_sample = 8 * (self.n + (self.m if self.output_shape is not None else self.n))
        return max(1, BATCH_BYTES // per_sample)

    def tolerance(self, rtol: float) -> float:
        """``rtol``, raised to 100 rounding units of fn's output precision (float32 code)."""
        return max(rtol, 100 * self.eps)

    def _record(self, shape: tuple[int, ...]) -> None:
        if self.output_shape is None:
            self.output_shape = shape
        elif shape != self.output_shape:
            raise ConvMatrixError(
                f"`fn` returned shape {shape} after returning {self.output_shape}: its output "
                f"shape must not depend on the input values")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``fn`` on the rows of ``x`` (``(B, n)``), as a ``(B, m)`` array."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        batch = x.shape[0]
        if self.batched:
            rows = []
            step = self.batch_size()
            for start in range(0, batch, step):
                chunk = x[start:start + step]
                out = as_numpy(self.fn(chunk.reshape(chunk.shape[0], *self.input_shape)))
                self.calls += 1
                if out.ndim < 1 or out.shape[0] != chunk.shape[0]:
                    raise ConvMatrixError(
                        f"`fn` returned shape {out.shape} for a batch of {chunk.shape[0]} "
                        f"samples; with batched=True it must return (batch, ...)")
                self._record(tuple(out.shape[1:]))
                rows.append(out.reshape(chunk.shape[0], -1))
            self.samples += batch
            return self._stack(rows, batch)
        rows = []
        for sample in x:
            out = as_numpy(self.fn(sample.reshape(self.input_shape)))
            self.calls += 1
            self._record(tuple(out.shape))
            rows.append(out.reshape(1, -1))
        self.samples += batch
        return self._stack(rows, batch)

    def _stack(self, rows: list[np.ndarray], batch: int) -> np.ndarray:
        for row in rows[:1]:
            if row.dtype.kind in "fc":
                self.eps = max(self.eps, float(np.finfo(row.dtype).eps))
        if not rows:
            return np.zeros((0, self.m if self.output_shape is not None else 0))
        dtype = np.result_type(np.float64, *rows)
        if dtype.kind == "c":
            self.dtype = np.dtype(np.complex128)
        return np.concatenate(rows, axis=0).astype(np.result_type(dtype, self.dtype), copy=False)


@dataclass(frozen=True)
class Linearity:
    """What five probes tell about ``fn``: its value at zero and whether it is linear there.

    Attributes
    ----------
    zero : ndarray, shape ``(m,)``
        ``fn(0)``, the affine offset.
    probe, response : ndarray
        A random input ``a`` and ``fn(a) − fn(0)``, used again to check recovered matrices.
    additive_error, homogeneous_error : float
        ``max|fn(a + b) − fn(a) − fn(b) + fn(0)|`` and ``max|fn(2a) − 2 fn(a) + fn(0)|``,
        relative to the largest response.
    """

    zero: np.ndarray
    probe: np.ndarray
    response: np.ndarray
    additive_error: float
    homogeneous_error: float

    def is_linear(self, rtol: float) -> bool:
        """Both errors within ``rtol``."""
        return max(self.additive_error, self.homogeneous_error) <= rtol

    def has_offset(self, atol: float = 0.0) -> bool:
        """``fn(0)`` differs from zero."""
        return bool(np.any(np.abs(self.zero) > atol))


def check_linearity(box: BlackBox, seed: int = 0) -> Linearity:
    """Evaluate ``fn`` at ``0, a, b, a + b, 2a`` (one batch) and measure its non-linearity.

    Examples
    --------
    >>> import numpy as np
    >>> box = BlackBox(lambda x: np.maximum(x, 0), (1, 4), batched=False)
    >>> check_linearity(box).is_linear(1e-9)
    False
    >>> check_linearity(BlackBox(lambda x: 3 * x + 1, (1, 4), batched=False)).has_offset()
    True
    """
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((2, box.n))
    out = box(np.stack([np.zeros(box.n), a, b, a + b, 2 * a]))
    zero, fa, fb, fab, f2a = out
    la, lb = fa - zero, fb - zero
    scale = max(float(np.max(np.abs(la), initial=0.0)), float(np.max(np.abs(lb), initial=0.0)),
                float(np.max(np.abs(zero), initial=0.0)), np.finfo(np.float64).tiny)
    additive = float(np.max(np.abs(fab - zero - la - lb), initial=0.0)) / scale
    homogeneous = float(np.max(np.abs(f2a - zero - 2 * la), initial=0.0)) / scale
    return Linearity(zero, a, la, additive, homogeneous)
