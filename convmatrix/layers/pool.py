"""Average pooling (torch ``avg_pool1d/2d/3d``) as an exact matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers._separable import SeparableLayer, as_int, as_shape, axis_matrix, per_axis

__all__ = ["AvgPool", "pool_output_size"]


def pool_output_size(n: int, k: int, s: int, before: int, after: int, ceil_mode: bool) -> int:
    """Torch's pooling output length along one axis.

    ``⌊(n + before + after − k) / s⌋ + 1`` (``⌈⋯⌉`` with ``ceil_mode``), and with ``ceil_mode``
    one less when the last window would start at or past ``n + before`` (in the right padding
    only).

    Examples
    --------
    >>> pool_output_size(5, 2, 2, 0, 0, ceil_mode=False), pool_output_size(5, 2, 2, 0, 0, True)
    (2, 3)
    >>> pool_output_size(4, 3, 3, 1, 1, ceil_mode=True)  # a window from 5 would start past 4+1
    2
    """
    span = n + before + after - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + before:
        out -= 1
    return out


class AvgPool(SeparableLayer):
    """Average pooling over 1, 2 or 3 spatial axes, exactly as torch's ``avg_poolNd``.

    Each output is the sum of its window's input pixels over a divisor: the window's size
    clipped to the padded input (``count_include_pad=True``; the ``ceil_mode`` overhang past
    the padding is not counted), the number of real pixels in it (``False``), or
    ``divisor_override``. A box window's count is a product of per-axis counts, so the matrix
    is a Kronecker product of one matrix per axis (the channel axis: identity).

    Parameters
    ----------
    input_shape : sequence of int
        One sample ``(C, *spatial)`` with 1, 2 or 3 spatial axes.
    kernel_size : int or sequence of int
    stride : int or sequence of int, optional
        Default: ``kernel_size``.
    padding : int or sequence of int, optional
        Implicit zero padding on both sides, at most half the kernel (torch's rule); a pair
        ``(before, after)`` per axis is accepted too (Keras' asymmetric "same").
    ceil_mode : bool, optional
        Round the output length up (the last window must still start inside the input or
        the left padding).
    count_include_pad : bool, optional
    divisor_override : int, optional
        A fixed non-zero divisor (torch has it for 2-D and 3-D pooling).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> pool = cm.AvgPool((1, 5), 2, ceil_mode=True)
    >>> pool
    AvgPool(1×5 → 1×3, kernel 2, stride 2, ceil_mode)
    >>> pool.matrix().toarray()
    array([[0.5, 0.5, 0. , 0. , 0. ],
           [0. , 0. , 0.5, 0.5, 0. ],
           [0. , 0. , 0. , 0. , 1. ]])
    """

    def __init__(self, input_shape: Sequence[int], kernel_size: Any, stride: Any = None,
                 padding: Any = 0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        shape = as_shape(input_shape)
        ndim = len(shape) - 1
        self.kernel_size = per_axis(kernel_size, ndim, "kernel_size", 1)
        self.stride = (self.kernel_size if stride is None or stride == []
                       else per_axis(stride, ndim, "stride", 1))
        self.padding = _padding_pairs(padding, ndim)
        for k, (before, after) in zip(self.kernel_size, self.padding, strict=True):
            if max(before, after) > k // 2:
                raise ConvMatrixError(
                    f"`padding` (={padding!r}) must be at most half the kernel "
                    f"(`kernel_size`={kernel_size!r}) on every axis")
        for name, flag in (("ceil_mode", ceil_mode), ("count_include_pad", count_include_pad)):
            if not isinstance(flag, bool | np.bool_):
                raise ConvMatrixError(f"`{name}` (={flag!r}) must be True or False")
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        if divisor_override is not None:
            divisor_override = as_int(divisor_override, "divisor_override")
            if divisor_override == 0:
                raise ConvMatrixError("`divisor_override` (=0) must be a non-zero int or None")
        self.divisor_override = divisor_override
        if ndim == 3 and any(n < k for n, k in zip(shape[1:], self.kernel_size, strict=True)):
            raise ConvMatrixError(
                f"`kernel_size` (={kernel_size!r}) is larger than the input "
                f"{shape_text(shape[1:])} on some axis: torch's avg_pool3d refuses that even "
                f"with padding")
        sizes = []
        for axis in range(ndim):
            out = pool_output_size(shape[axis + 1], self.kernel_size[axis], self.stride[axis],
                                   *self.padding[axis], self.ceil_mode)
            if out < 1:
                raise ConvMatrixError(
                    f"`kernel_size` (={kernel_size!r}) is larger than the padded input "
                    f"{shape_text(shape[1:])} on spatial axis {axis}: no output")
            sizes.append(out)
        self._input_shape = shape
        self._output_shape = (shape[0], *sizes)
        self._axes = [None, *(self._axis(axis) for axis in range(ndim))]

    def _axis(self, axis: int) -> sp.csr_array:
        n, out = self._input_shape[axis + 1], self._output_shape[axis + 1]
        k, s = self.kernel_size[axis], self.stride[axis]
        before, after = self.padding[axis]
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        for o in range(out):
            start = o * s - before
            stop = min(start + k, n + after)  # the window clipped to the padded input
            counted = stop - start
            first, last = max(start, 0), min(stop, n)
            if self.divisor_override is not None:
                weight = 1.0
            elif self.count_include_pad:
                weight = 1.0 / counted
            else:
                weight = 1.0 / (last - first)
            rows += [o] * (last - first)
            cols += range(first, last)
            values += [weight] * (last - first)
        matrix = axis_matrix(np.array(rows), np.array(cols, dtype=int), np.array(values),
                             (out, n))
        if self.divisor_override is not None and axis == 0:
            matrix = sp.csr_array(matrix / self.divisor_override)
        return matrix

    def _axis_matrices(self) -> list[sp.csr_array | None]:
        return list(self._axes)

    def _describe(self) -> str:
        parts = [f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}",
                 f"kernel {_text(self.kernel_size)}", f"stride {_text(self.stride)}"]
        if any(pair != (0, 0) for pair in self.padding):
            same = all(b == a for b, a in self.padding)
            parts.append("padding " + (_text(tuple(b for b, _ in self.padding)) if same
                                       else str(self.padding)))
        if self.ceil_mode:
            parts.append("ceil_mode")
        if not self.count_include_pad:
            parts.append("count_include_pad=False")
        if self.divisor_override is not None:
            parts.append(f"divisor {self.divisor_override}")
        return ", ".join(parts)


def _text(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(set(values)) == 1 else shape_text(values)


def _padding_pairs(padding: Any, ndim: int) -> tuple[tuple[int, int], ...]:
    if isinstance(padding, str) or not hasattr(padding, "__iter__"):
        p = as_int(padding, "padding", 0)
        return ((p, p),) * ndim
    items = tuple(padding)
    if len(items) == 1 and ndim > 1:
        items *= ndim
    if len(items) != ndim:
        raise ConvMatrixError(
            f"`padding` (={padding!r}) must be an int, {ndim} ints or {ndim} (before, after) "
            f"pairs")
    pairs = []
    for item in items:
        if isinstance(item, str) or not hasattr(item, "__iter__"):
            p = as_int(item, "padding", 0)
            pairs.append((p, p))
        else:
            pair = tuple(as_int(v, "padding", 0) for v in item)
            if len(pair) != 2:
                raise ConvMatrixError(f"`padding` (={padding!r}) pairs must be (before, after)")
            pairs.append((pair[0], pair[1]))
    return tuple(pairs)
