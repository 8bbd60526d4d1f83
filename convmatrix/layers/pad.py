"""Padding and cropping as an exact selection matrix plus an offset.

torch's ``F.pad`` (:class:`Pad`) and ``numpy.pad`` / ONNX ``Pad`` (:class:`NumpyPad`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.spec import as_sample_shape
from convmatrix.layers._separable import SelectionLayer, as_int, as_shape, axis_matrix

__all__ = ["NUMPY_PAD_MODES", "PAD_MODES", "NumpyPad", "Pad"]

PAD_MODES = ("constant", "reflect", "replicate", "circular")
"""``F.pad`` modes."""


def _source(q: int, lo: int, hi: int, mode: str) -> int | None:
    """The input index position ``q`` (input coordinates) reads; None: the constant.

    ``[lo, hi)`` is the range the mode extends: the whole axis for reflect and replicate
    (torch pads, then crops), the range left by the crops for circular (torch crops, then
    wraps).
    """
    if lo <= q < hi:
        return q
    if mode == "constant":
        return None
    if mode == "replicate":
        return min(max(q, lo), hi - 1)
    m = hi - lo
    if mode == "circular":
        return lo + (q - lo) % m
    period = 2 * (m - 1)  # reflect: mirror without repeating the edge
    r = abs(q - lo) % period if period else 0
    return lo + (period - r if r >= m else r)


class _PaddingSelection(SelectionLayer):
    """A padding: per axis a 0/1 selection matrix (``_axes``), the constant in the offset."""

    _axes: list[sp.csr_array | None]

    def _axis_matrices(self) -> list[sp.csr_array | None]:
        return list(self._axes)


class Pad(_PaddingSelection):
    """``F.pad(x, pad, mode, value)`` of one sample: padding (or cropping, if negative).

    ``pad`` lists ``(before, after)`` for the last axis first, then the one before it, ...
    (torch's order). ``"constant"`` may pad any axis, the channel axis included; the other
    modes pad spatial axes only. A non-zero ``value`` is the :meth:`offset` (the matrix only
    selects).

    Parameters
    ----------
    input_shape : sequence of int
        One sample ``(C, *spatial)``.
    pad : sequence of int
        An even number of ints, last axis first; negative entries crop (before any
        padding, as ``F.pad`` does: the crops of an axis must fit in it).
    mode : {"constant", "reflect", "replicate", "circular"}, optional
    value : float, optional
        The fill of ``"constant"``.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> pad = cm.Pad((1, 4), (2, 1), mode="reflect")
    >>> pad
    Pad(1×4 → 1×7, (2, 1), reflect)
    >>> pad(np.array([[1, 2, 3, 4]]))
    array([[3, 2, 1, 2, 3, 4, 3]])
    >>> cm.Pad((1, 3), (-1, 1), value=9)(np.array([[1, 2, 3]]))
    array([[2, 3, 9]])
    """

    def __init__(self, input_shape: Sequence[int], pad: Sequence[int], mode: str = "constant",
                 value: float = 0.0) -> None:
        shape = as_shape(input_shape)
        if mode not in PAD_MODES:
            raise ConvMatrixError(
                f"`mode` (={mode!r}) must be one of {', '.join(map(repr, PAD_MODES))}")
        if isinstance(pad, str) or not hasattr(pad, "__iter__"):
            raise ConvMatrixError(f"`pad` (={pad!r}) must be a sequence of ints, last axis first")
        amounts = tuple(as_int(v, "pad") for v in pad)
        axes = len(shape) if mode == "constant" else len(shape) - 1
        if len(amounts) % 2 or not 0 < len(amounts) <= 2 * axes:
            raise ConvMatrixError(
                f"`pad` (={pad!r}) must hold an even number of ints, at most {2 * axes} "
                f"(before/after for each of the last {axes} axes" + ("" if mode == "constant"
                                                                     else ", spatial only")
                + ")")
        if mode != "constant" and value != 0:
            raise ConvMatrixError(f"`value` (={value!r}) applies only to mode 'constant'")
        pairs = [(0, 0)] * len(shape)
        for i in range(len(amounts) // 2):
            pairs[len(shape) - 1 - i] = (amounts[2 * i], amounts[2 * i + 1])
        out = []
        for axis, (n, (before, after)) in enumerate(zip(shape, pairs, strict=True)):
            size = n + before + after
            if size < 1:
                raise ConvMatrixError(
                    f"`pad` (={pad!r}) crops axis {axis} (size {n}) to {size}: nothing left")
            kept = n - max(0, -before) - max(0, -after)
            if mode == "constant" and kept < 0:  # F.pad crops first: each crop must fit
                raise ConvMatrixError(
                    f"`pad` (={pad!r}) crops {n - kept} from axis {axis} of size {n}; torch's "
                    f"F.pad crops before it pads, so the crops of an axis must fit in it as "
                    f"given (torch raises 'narrow(): length must be non-negative')")
            if mode == "circular" and kept < 1:
                raise ConvMatrixError(
                    f"`pad` (={pad!r}) crops axis {axis} (size {n}) to nothing before padding")
            if mode == "reflect" and max(before, after) >= n:
                raise ConvMatrixError(
                    f"`pad` (={pad!r}) must be smaller than the axis (size {n}) in mode "
                    f"'reflect' (axis {axis})")
            if mode == "circular" and max(before, after) > kept:
                raise ConvMatrixError(
                    f"`pad` (={pad!r}) must be at most the axis size ({kept} after cropping) "
                    f"in mode 'circular' (axis {axis})")
            out.append(size)
        self.pad = amounts
        self.mode = mode
        self.value = value
        self.pairs = tuple(pairs)
        self._input_shape = shape
        self._output_shape = tuple(out)
        self._axes = [self._axis(n, pair, size)
                      for n, pair, size in zip(shape, pairs, out, strict=True)]
        self._filled = [np.array([_source(j - before, 0, n, mode) is None for j in range(size)])
                        for n, (before, _), size in zip(shape, pairs, out, strict=True)]

    def _axis(self, n: int, pair: tuple[int, int], size: int) -> sp.csr_array | None:
        before, after = pair
        if before == 0 and size == n:
            return None
        lo, hi = (max(0, -before), n - max(0, -after)) if self.mode == "circular" else (0, n)
        sources = [(j, _source(j - before, lo, hi, self.mode)) for j in range(size)]
        kept = [(j, q) for j, q in sources if q is not None]
        return axis_matrix(np.array([j for j, _ in kept], dtype=int),
                           np.array([q for _, q in kept], dtype=int),
                           np.ones(len(kept), dtype=np.int64), (size, n))

    def offset(self) -> np.ndarray:
        """``value`` at every padded position (zeros when ``value`` is 0).

        Examples
        --------
        >>> import convmatrix as cm
        >>> cm.Pad((1, 3), (1, 0), value=0.5).offset()
        array([0.5, 0. , 0. , 0. ])
        """
        size = math.prod(self.output_shape)
        if self.value == 0:
            return np.zeros(size, dtype=self.dtype)
        filled = np.zeros(self.output_shape, dtype=bool)
        for axis, mask in enumerate(self._filled):
            shape = [1] * len(self.output_shape)
            shape[axis] = mask.size
            filled = filled | mask.reshape(shape)
        return np.where(filled, self.value, 0).astype(np.result_type(self.value, self.dtype))\
            .reshape(-1)

    def _describe(self) -> str:
        from convmatrix.geometry.shapes import shape_text

        parts = [f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}",
                 str(self.pad)]
        if self.mode != "constant":
            parts.append(self.mode)
        elif self.value != 0:
            parts.append(f"value {self.value}")
        return ", ".join(parts)


NUMPY_PAD_MODES = ("constant", "reflect", "edge", "wrap")
"""``numpy.pad`` (and ONNX ``Pad``) modes :class:`NumpyPad` takes."""


class NumpyPad(_PaddingSelection):
    """``numpy.pad(x, pad_width, mode)`` of one sample (ONNX ``Pad``); negative widths crop.

    Any axis may be padded in any mode, by any amount ``numpy.pad`` allows (``reflect`` and
    ``wrap`` repeat the mirror image or the period as often as needed). A negative width
    crops that side first, then the cropped sample is padded (what onnxruntime does with
    ONNX's negative pads; ``numpy.pad`` itself refuses them). A non-zero ``value`` is the
    :meth:`offset`. torch's ``F.pad`` (its order of pads, its limits) is :class:`Pad`.

    Parameters
    ----------
    input_shape : sequence of int
        One sample, any rank.
    pad_width : sequence of (int, int)
        ``(before, after)`` for every axis of the sample, first axis first.
    mode : {"constant", "reflect", "edge", "wrap"}, optional
    value : float, optional
        The fill of ``"constant"``.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> pad = cm.NumpyPad((1, 3), ((0, 0), (5, -1)), mode="reflect")
    >>> pad
    NumpyPad(1×3 → 1×7, ((0, 0), (5, -1)), reflect)
    >>> pad(np.array([[1, 2, 3]]))
    array([[2, 1, 2, 1, 2, 1, 2]])
    >>> cm.NumpyPad((2,), ((1, 1),), value=7)(np.array([1, 2]))
    array([7, 1, 2, 7])
    """

    def __init__(self, input_shape: Sequence[int], pad_width: Sequence[Sequence[int]],
                 mode: str = "constant", value: float = 0.0) -> None:
        shape = as_sample_shape(input_shape)
        if mode not in NUMPY_PAD_MODES:
            raise ConvMatrixError(
                f"`mode` (={mode!r}) must be one of {', '.join(map(repr, NUMPY_PAD_MODES))}")
        if mode != "constant" and value != 0:
            raise ConvMatrixError(f"`value` (={value!r}) applies only to mode 'constant'")
        if isinstance(value, bool) or not isinstance(value, int | float | np.number) \
                or not math.isfinite(float(value)):
            raise ConvMatrixError(f"`value` (={value!r}) must be a finite number")
        pairs = self._pairs(pad_width, shape)
        out = []
        for axis, (n, (before, after)) in enumerate(zip(shape, pairs, strict=True)):
            kept = n - max(0, -before) - max(0, -after)
            size = kept + max(0, before) + max(0, after)
            if kept < 0 or size < 1:
                raise ConvMatrixError(
                    f"`pad_width` (={pad_width!r}) crops axis {axis} (size {n}) to nothing")
            if kept == 0 and mode != "constant":
                raise ConvMatrixError(
                    f"`pad_width` (={pad_width!r}) crops axis {axis} (size {n}) to nothing "
                    f"before padding it in mode {mode!r}")
            out.append(size)
        self.pad_width = pairs
        self.mode = mode
        self.value = value
        self._input_shape = shape
        self._output_shape = tuple(out)
        mode_name = {"edge": "replicate", "wrap": "circular"}.get(mode, mode)
        self._axes: list[sp.csr_array | None] = []
        self._filled: list[np.ndarray] = []
        for n, (before, after), size in zip(shape, pairs, out, strict=True):
            lo, hi = max(0, -before), n - max(0, -after)  # crop first, then pad
            sources = [_source(j - max(0, before) + lo, lo, hi, mode_name) for j in range(size)]
            self._filled.append(np.array([q is None for q in sources]))
            if before == 0 and after == 0:
                self._axes.append(None)
                continue
            kept_rows = [(j, q) for j, q in enumerate(sources) if q is not None]
            self._axes.append(axis_matrix(np.array([j for j, _ in kept_rows], dtype=int),
                                          np.array([q for _, q in kept_rows], dtype=int),
                                          np.ones(len(kept_rows), dtype=np.int64), (size, n)))

    @staticmethod
    def _pairs(pad_width: Any, shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        message = (f"`pad_width` (={pad_width!r}) must hold one (before, after) pair of ints per "
                   f"axis of the sample {shape}")
        if isinstance(pad_width, str) or not hasattr(pad_width, "__iter__"):
            raise ConvMatrixError(message)
        pairs = []
        for pair in pad_width:
            if isinstance(pair, str) or not hasattr(pair, "__iter__") or len(tuple(pair)) != 2:
                raise ConvMatrixError(message)
            before, after = (as_int(v, "pad_width") for v in pair)
            pairs.append((before, after))
        if len(pairs) != len(shape):
            raise ConvMatrixError(message)
        return tuple(pairs)

    def offset(self) -> np.ndarray:
        """``value`` at every padded position of mode ``"constant"`` (zeros otherwise)."""
        return _fill(self._filled, self.value, self.output_shape, self.dtype)

    def _describe(self) -> str:
        from convmatrix.geometry.shapes import shape_text

        parts = [f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}",
                 str(self.pad_width)]
        if self.mode != "constant":
            parts.append(self.mode)
        elif self.value != 0:
            parts.append(f"value {self.value}")
        return ", ".join(parts)


def _fill(masks: list[np.ndarray], value: float, shape: tuple[int, ...],
          dtype: np.dtype[Any]) -> np.ndarray:
    """``value`` where any axis' mask is set (the padded positions), zeros elsewhere, flat."""
    size = math.prod(shape)
    if value == 0:
        return np.zeros(size, dtype=dtype)
    filled = np.zeros(shape, dtype=bool)
    for axis, mask in enumerate(masks):
        view = [1] * len(shape)
        view[axis] = mask.size
        filled = filled | mask.reshape(view)
    return np.where(filled, value, 0).astype(np.result_type(value, dtype)).reshape(-1)
