"""ONNX ``Resize`` of one sample as an exact (affine) matrix, one axis at a time.

The authority is ``onnx.reference`` of the installed ``onnx`` (where the operator's text is
ambiguous, the reference decides): it resizes one axis after the other, each output position
reading a few neighbours of a source coordinate with 1-D weights. So the matrix is the
Kronecker product of one ``(out, n)`` matrix per axis (:func:`resize_axis`, the one home of
those weights), and ``tf_crop_and_resize``'s ``extrapolation_value`` is the offset.

torch's ``F.interpolate`` (its own index rules, float32 ratios) is :class:`~convmatrix.Upsample`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.budget import DEFAULT_MAX_BYTES, format_bytes
from convmatrix.geometry.shapes import shape_text
from convmatrix.geometry.spec import as_sample_shape
from convmatrix.layers._separable import SeparableLayer, as_int, axis_matrix

__all__ = ["COORDINATE_MODES", "KEEP_ASPECT_RATIO_POLICIES", "NEAREST_MODES", "RESIZE_MODES",
           "Resize", "ResizeAxis", "resize_axis", "resize_plan"]

RESIZE_MODES = ("nearest", "linear", "cubic")
"""ONNX ``Resize`` ``mode`` values."""

COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                    "asymmetric", "tf_crop_and_resize")
"""ONNX ``coordinate_transformation_mode`` values (``tf_half_pixel_for_nn``, opsets 11-12
only, is not: ``onnx.reference`` refuses it)."""

NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
"""ONNX ``nearest_mode`` values."""

KEEP_ASPECT_RATIO_POLICIES = ("stretch", "not_larger", "not_smaller")
"""ONNX ``keep_aspect_ratio_policy`` values (with ``sizes``)."""

_TABLE_BYTES = 64  # per table entry while building: row, column, value, their CSR and temporaries


class ResizeAxis:
    """One axis of a :class:`Resize`: its 1-D matrix and the outputs it extrapolates.

    Attributes
    ----------
    matrix : scipy.sparse.csr_array, shape ``(out, n)``
        The weights of each output position on the input positions (rows of extrapolated
        positions are empty).
    extrapolated : numpy.ndarray of bool, shape ``(out,)``
        The positions ``tf_crop_and_resize`` sets to ``extrapolation_value``.
    """

    def __init__(self, matrix: sp.csr_array, extrapolated: np.ndarray) -> None:
        self.matrix = matrix
        self.extrapolated = extrapolated


def _keys(x: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel ``W(x)`` with coefficient ``a`` (0 for ``|x| >= 2``)."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _source(y: np.ndarray, n: int, out: int, scale: float, mode: str,
            roi: tuple[Any, Any] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Source coordinates of the outputs ``y`` (and, for tf_crop_and_resize, which extrapolate).

    ``out_float = scale · n`` (not the rounded size) is what the transformations divide by.
    """
    width = scale * n
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5, None
    if mode == "asymmetric":
        return y / scale, None
    if mode == "pytorch_half_pixel":
        if width == 1:
            return np.full(out, -0.5), None
        return (y + 0.5) / scale - 0.5, None
    if mode == "align_corners":
        if width == 1:
            return np.zeros(out), None
        return y * (n - 1) / (width - 1), None
    if mode == "half_pixel_symmetric":  # the centre of the input onto the centre of the output
        shift = n / 2 * (1 - out / width)
        return shift + (y + 0.5) / scale - 0.5, None
    assert roi is not None  # tf_crop_and_resize; the roi keeps its own dtype (float32 in models)
    start, end = roi  # evaluated in the reference's order (the roi's float32 terms matter)
    if width == 1:
        x = np.full(out, (end - start) * (n - 1) / 2, dtype=np.float64)
    else:
        x = y * (end - start) * (n - 1) / (width - 1)
    x = x + start * (n - 1)
    return x, (x < 0) | (x > n - 1)


def _weights(ratio: np.ndarray, scale: float, mode: str, nearest_mode: str, a: float,
             antialias: bool) -> np.ndarray:
    """``(out, taps)`` weights for fractions ``ratio`` in ``(0, 1]`` (1 at integer sources)."""
    whole = ratio == 1.0
    if mode == "nearest":
        if nearest_mode == "round_prefer_floor":
            right = ratio > 0.5
        elif nearest_mode == "round_prefer_ceil":
            right = ratio >= 0.5
        else:
            right = np.full(ratio.shape, nearest_mode == "ceil")
        right = right | whole
        return np.stack([~right, right], axis=1).astype(np.float64)
    if not antialias:
        if mode == "linear":
            return np.stack([1 - ratio, ratio], axis=1)
        t = ratio[:, None]
        return np.concatenate([_keys(t + 1, a), _keys(t, a), _keys(1 - t, a), _keys(2 - t, a)],
                              axis=1)
    shrink = min(scale, 1.0)  # antialias: the kernel stretched by 1/scale when downscaling
    reach = 1 if mode == "linear" else 2
    first = int(np.floor(-reach / shrink) + 1)
    offsets = np.arange(first, 2 - first, dtype=np.float64)
    args = (offsets[None, :] - ratio[:, None]) * shrink
    kernel = np.clip(1 - np.abs(args), 0, 1) if mode == "linear" else _keys(args, a)
    return kernel / kernel.sum(axis=1, keepdims=True)


def resize_axis(n: int, out: int, scale: float, *, mode: str = "nearest",
                coordinate_transformation_mode: str = "half_pixel",
                nearest_mode: str = "round_prefer_floor", cubic_coeff_a: float = -0.75,
                exclude_outside: bool = False, antialias: bool = False,
                roi: tuple[Any, Any] | None = None) -> ResizeAxis:
    """The ``(out, n)`` matrix of one axis of ONNX ``Resize`` (as ``onnx.reference`` computes).

    Parameters
    ----------
    n, out : int
        Input and output length.
    scale : float
        The axis' scale (given, or ``sizes / n``): the coordinate transformations use it, and
        ``scale · n`` (not ``out``) as the output width.
    mode, coordinate_transformation_mode, nearest_mode, cubic_coeff_a, exclude_outside,
    antialias
        As ONNX's attributes (see :class:`Resize`).
    roi : (start, end), optional
        The axis' region of interest (``tf_crop_and_resize``), in the roi tensor's own dtype.

    Returns
    -------
    ResizeAxis
        The matrix and the positions set to ``extrapolation_value``.

    Notes
    -----
    Output ``i`` has the source coordinate ``x`` of the transformation; ``r = x − ⌊x⌋``, taken
    as 1 at an integer ``x`` (so the pixel left of ``x`` is preferred). The weights of the
    ``taps`` nearest input positions (ties to the smaller index): nearest ``[1, 0]`` or
    ``[0, 1]`` by ``nearest_mode``; linear ``[1 − r, r]``; cubic Keys' kernel with
    ``a = cubic_coeff_a`` at distances ``r + 1, r, 1 − r, 2 − r``; with ``antialias`` and
    ``scale < 1`` the linear or cubic kernel stretched by ``1/scale`` and normalised to sum 1.
    Positions outside the input read the border (edge padding) unless ``exclude_outside``,
    which drops their weights and renormalises. Duplicate reads of a border pixel add up.

    Examples
    --------
    >>> resize_axis(2, 4, 2.0, mode="linear").matrix.toarray()
    array([[1.  , 0.  ],
           [0.75, 0.25],
           [0.25, 0.75],
           [0.  , 1.  ]])
    >>> resize_axis(3, 2, 2 / 3, mode="nearest", nearest_mode="ceil").matrix.toarray()
    array([[0., 1., 0.],
           [0., 0., 1.]])
    """
    y = np.arange(out, dtype=np.float64)
    x, extrapolated = _source(y, n, out, scale, coordinate_transformation_mode, roi)
    whole = np.floor(x)
    ratio = np.where(x == whole, 1.0, x - whole)
    weights = _weights(ratio, scale, mode, nearest_mode, cubic_coeff_a, antialias)
    taps = weights.shape[1]
    # the taps nearest x in the edge-padded axis, ties to the smaller index (taps is even)
    pad = math.ceil(taps / 2)
    padded = x + pad
    base = np.floor(padded)
    first = base.astype(np.int64) - taps // 2 + (padded != base) - pad
    index = first[:, None] + np.arange(taps)[None, :]
    if exclude_outside:
        weights = np.where((index < 0) | (index >= n), 0.0, weights)
        total = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    if extrapolated is not None:
        weights = np.where(extrapolated[:, None], 0.0, weights)
    rows = np.repeat(np.arange(out), taps)
    matrix = axis_matrix(rows, np.clip(index, 0, n - 1).ravel(), weights.ravel(), (out, n))
    matrix.eliminate_zeros()
    return ResizeAxis(matrix, np.zeros(out, dtype=bool) if extrapolated is None else extrapolated)


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool | np.bool_) or (hasattr(value, "__index__") and int(value) in (0, 1)):
        return bool(value)
    raise ConvMatrixError(f"`{name}` (={value!r}) must be a bool (or 0/1, as ONNX's ints)")


def _choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConvMatrixError(f"`{name}` (={value!r}) must be one of "
                              f"{', '.join(map(repr, allowed))}")
    return str(value)


def _vector(value: Any, name: str, count: int, what: str) -> list[Any]:
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise ConvMatrixError(f"`{name}` (={value!r}) must be a sequence of {count} {what}")
    items = list(np.asarray(value).reshape(-1)) if isinstance(value, np.ndarray) else list(value)
    if len(items) != count:
        raise ConvMatrixError(f"`{name}` (={value!r}) must hold {count} {what} (one per "
                              f"resized axis), not {len(items)}")
    return items


def resize_plan(input_shape: tuple[int, ...], scales: Any = None, sizes: Any = None,
                axes: Any = None, keep_aspect_ratio_policy: str = "stretch"
                ) -> tuple[tuple[int, ...], tuple[float, ...], tuple[int, ...]]:
    """ONNX ``Resize``'s per-axis scales and output sizes from ``scales`` or ``sizes``.

    Returns ``(axes, scales, sizes)``: the resized axes in the order they are resized, the
    scale of every axis of the shape (1.0 for the others) and the output shape. ``scales``
    alone: ``size = ⌊scale · n⌋``; ``sizes`` alone: ``scale = size / n``, with
    ``keep_aspect_ratio_policy`` ``"not_larger"``/``"not_smaller"`` one scale for all the
    ``axes`` (the smallest/largest) and ``size = ⌊scale · n + ½⌋``; both: taken as they are.

    Examples
    --------
    >>> resize_plan((1, 4, 6), sizes=(8, 6), axes=(1, 2), keep_aspect_ratio_policy="not_larger")
    ((1, 2), (1.0, 1.0, 1.0), (1, 4, 6))
    >>> resize_plan((1, 4, 6), scales=(1.5,), axes=(-1,))
    ((2,), (1.0, 1.0, 1.5), (1, 4, 9))
    """
    rank = len(input_shape)
    policy = _choice(keep_aspect_ratio_policy, "keep_aspect_ratio_policy",
                     KEEP_ASPECT_RATIO_POLICIES)
    if axes is None:
        order = tuple(range(rank))
    else:
        if isinstance(axes, str) or not hasattr(axes, "__iter__"):
            raise ConvMatrixError(f"`axes` (={axes!r}) must be a sequence of distinct axes of "
                                  f"the sample {input_shape}")
        items = tuple(axes)
        for item in items:
            if isinstance(item, bool) or not hasattr(item, "__index__") \
                    or not -rank <= int(item) < rank:
                raise ConvMatrixError(
                    f"`axes` (={items!r}) must hold axes of the sample {input_shape}: ints in "
                    f"[{-rank}, {rank - 1}]; got {item!r}")
        order = tuple(int(item) % rank for item in items)
        if len(set(order)) != len(order) or not order:
            raise ConvMatrixError(f"`axes` (={items!r}) must name distinct axes of the sample "
                                  f"{input_shape}, at least one")
    if scales is None and sizes is None:
        raise ConvMatrixError("give `scales` or `sizes` (one per resized axis)")
    dims = [input_shape[a] for a in order]
    size_list: list[int] | None = None
    if sizes is not None:
        size_list = [as_int(v, "sizes", 1) for v in _vector(sizes, "sizes", len(order), "ints")]
    scale_list: list[float] | None = None
    if scales is not None:
        scale_list = []
        for v in _vector(scales, "scales", len(order), "numbers"):
            if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.number) \
                    or not (float(v) > 0 and math.isfinite(float(v))):
                raise ConvMatrixError(f"`scales` (={scales!r}) must hold positive numbers; "
                                      f"got {v!r}")
            scale_list.append(float(v))
    if policy != "stretch" and (size_list is None or scale_list is not None):
        raise ConvMatrixError(
            f"`keep_aspect_ratio_policy` (={policy!r}) applies to `sizes` alone")
    if size_list is None:
        assert scale_list is not None
        size_list = [int(s * d) for s, d in zip(scale_list, dims, strict=True)]
    elif scale_list is None:
        scale_list = [s / d for s, d in zip(size_list, dims, strict=True)]
        if policy != "stretch":
            one = min(scale_list) if policy == "not_larger" else max(scale_list)
            scale_list = [one] * len(order)
            size_list = [int(one * d + 0.5) for d in dims]
    if any(s < 1 for s in size_list):
        raise ConvMatrixError(
            f"`scales`/`sizes` (={scales if sizes is None else sizes!r}) give an empty output "
            f"for the axes {order} of size {tuple(dims)}")
    full_scales = [1.0] * rank
    out = list(input_shape)
    for axis, scale, size in zip(order, scale_list, size_list, strict=True):
        full_scales[axis], out[axis] = scale, size
    return order, tuple(full_scales), tuple(out)


class Resize(SeparableLayer):
    """ONNX ``Resize`` of one sample, exactly as ``onnx.reference`` computes it.

    Separable: the matrix is the Kronecker product of one 1-D matrix per resized axis
    (:func:`resize_axis`); ``tf_crop_and_resize`` with a non-zero ``extrapolation_value`` makes
    the map affine (the value at the extrapolated positions is the :meth:`offset`). Any axis of
    the sample may be resized (``axes``); ``scales``, ``sizes`` and ``roi`` refer to the sample
    (the ONNX reader strips the batch axis). torch's ``F.interpolate`` is
    :class:`~convmatrix.Upsample` instead.

    Parameters
    ----------
    input_shape : sequence of int
        One sample, any rank.
    scales : sequence of float, optional
        One per resized axis: the output size is ``⌊scale · n⌋`` and the coordinate
        transformation uses ``scale`` itself.
    sizes : sequence of int, optional
        One per resized axis: the output size; the scale is ``size / n`` (or one scale for all,
        by ``keep_aspect_ratio_policy``). Giving both ``scales`` and ``sizes`` takes each as
        it is (ONNX gives one; the reference resolves it to both, see :func:`resize_plan`).
    mode : {"nearest", "linear", "cubic"}, optional
    coordinate_transformation_mode : str, optional
        ``"half_pixel"`` (default), ``"half_pixel_symmetric"``, ``"pytorch_half_pixel"``,
        ``"align_corners"``, ``"asymmetric"`` or ``"tf_crop_and_resize"`` (with ``roi``).
    nearest_mode : {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}, optional
    cubic_coeff_a : float, optional
        Keys' coefficient (-0.75; TensorFlow's -0.5).
    exclude_outside : bool, optional
        Drop the weights of taps outside the input and renormalise.
    extrapolation_value : float, optional
        ``tf_crop_and_resize``: the value of outputs whose source lies outside the input.
    roi : sequence of float, optional
        ``tf_crop_and_resize``: ``[starts…, ends…]`` (normalised), one pair per resized axis.
    antialias : bool, optional
        Linear and cubic: when downscaling, the kernel stretched by ``1/scale``.
    axes : sequence of int, optional
        The resized axes, in the order ONNX resizes them (default: every axis).
    keep_aspect_ratio_policy : {"stretch", "not_larger", "not_smaller"}, optional
        With ``sizes``.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> up = cm.Resize((1, 2), scales=(2,), axes=(1,), mode="linear",
    ...                coordinate_transformation_mode="align_corners")
    >>> up
    Resize(1×2 → 1×4, linear, align_corners)
    >>> up(np.array([[0.0, 3.0]]))
    array([[0., 1., 2., 3.]])
    >>> crop = cm.Resize((3,), sizes=(3,), mode="linear", roi=(0.5, 1.5),
    ...                  coordinate_transformation_mode="tf_crop_and_resize",
    ...                  extrapolation_value=-1.0)
    >>> crop(np.array([0.0, 10.0, 20.0])), crop.offset()
    (array([10., 20., -1.]), array([ 0.,  0., -1.]))
    """

    def __init__(self, input_shape: Sequence[int], scales: Any = None, sizes: Any = None, *,
                 mode: str = "nearest", coordinate_transformation_mode: str = "half_pixel",
                 nearest_mode: str = "round_prefer_floor", cubic_coeff_a: float = -0.75,
                 exclude_outside: bool = False, extrapolation_value: float = 0.0,
                 roi: Any = None, antialias: bool = False, axes: Any = None,
                 keep_aspect_ratio_policy: str = "stretch") -> None:
        shape = as_sample_shape(input_shape)
        self.mode = _choice(mode, "mode", RESIZE_MODES)
        self.coordinate_transformation_mode = _choice(
            coordinate_transformation_mode, "coordinate_transformation_mode", COORDINATE_MODES)
        self.nearest_mode = _choice(nearest_mode, "nearest_mode", NEAREST_MODES)
        self.exclude_outside = _flag(exclude_outside, "exclude_outside")
        self.antialias = _flag(antialias, "antialias")
        if self.antialias and self.mode == "nearest":
            raise ConvMatrixError("`antialias` (=True) applies to modes 'linear' and 'cubic', "
                                  "not 'nearest' (onnx.reference refuses it)")
        for value, name in ((cubic_coeff_a, "cubic_coeff_a"),
                            (extrapolation_value, "extrapolation_value")):
            if isinstance(value, bool) or not isinstance(value, int | float | np.number) \
                    or not math.isfinite(float(value)):
                raise ConvMatrixError(f"`{name}` (={value!r}) must be a finite number")
        self.cubic_coeff_a = float(cubic_coeff_a)
        self.extrapolation_value = float(extrapolation_value)
        self.order, self.scales, out = resize_plan(shape, scales, sizes, axes,
                                                   keep_aspect_ratio_policy)
        self.keep_aspect_ratio_policy = keep_aspect_ratio_policy
        self.roi = self._roi(roi, shape)
        self._input_shape = shape
        self._output_shape = out
        self.resized_axes = tuple(a for a in self.order if not self._skips(a))
        if self.coordinate_transformation_mode == "tf_crop_and_resize" and self.resized_axes \
                and self.roi is None:
            raise ConvMatrixError("`roi` must be given with coordinate_transformation_mode "
                                  "'tf_crop_and_resize' (starts and ends, one per resized axis)")
        taps = 4 if self.mode == "cubic" else 2
        if self.antialias:
            reach = 1 if self.mode == "linear" else 2
            taps = max(taps, *(2 - 2 * int(np.floor(-reach / min(self.scales[a], 1.0)) + 1)
                               for a in self.resized_axes), 0)
        self._taps = taps
        entries = sum(out[a] * taps for a in self.resized_axes)
        if entries * _TABLE_BYTES > DEFAULT_MAX_BYTES:
            raise ConvMatrixError(
                f"the output {shape_text(out)} needs per-axis tables of about "
                f"{format_bytes(entries * _TABLE_BYTES)}, over the default budget `max_bytes` "
                f"(={format_bytes(DEFAULT_MAX_BYTES)}); choose a smaller output")
        self._axes: dict[int, ResizeAxis] | None = None
        self._offset: np.ndarray | None = None

    def _roi(self, roi: Any, shape: tuple[int, ...]) -> tuple[tuple[Any, Any], ...] | None:
        """Per axis of the sample ``(start, end)`` in the roi's dtype; None when not given."""
        if roi is None:
            return None
        values = np.asarray(roi)
        if values.size == 0:  # ONNX's empty roi input: none
            return None
        if values.dtype.kind not in "fiu":
            raise ConvMatrixError(f"`roi` (={roi!r}) must hold numbers")
        if values.dtype.kind != "f":
            values = values.astype(np.float64)
        flat = values.reshape(-1)
        count = len(self.order)
        if flat.size != 2 * count:
            raise ConvMatrixError(
                f"`roi` (={roi!r}) must hold {2 * count} numbers: the starts then the ends of "
                f"the {count} resized axes")
        pairs: list[tuple[Any, Any]] = [(flat.dtype.type(0), flat.dtype.type(1))] * len(shape)
        for i, axis in enumerate(self.order):
            pairs[axis] = (flat[i], flat[count + i])
        return tuple(pairs)

    def _skips(self, axis: int) -> bool:
        """The reference leaves an axis alone: scale ≈ 1, same size, the whole roi."""
        if not (math.isclose(self.scales[axis], 1.0)
                and self._output_shape[axis] == self._input_shape[axis]):
            return False
        if self.roi is None:
            return True
        start, end = self.roi[axis]
        return math.isclose(float(start), 0.0) and math.isclose(float(end), 1.0)

    def axis(self, axis: int) -> ResizeAxis | None:
        """Axis ``axis``'s 1-D matrix and extrapolated positions (None: left alone)."""
        if self._axes is None:
            self._axes = {
                a: resize_axis(self._input_shape[a], self._output_shape[a], self.scales[a],
                               mode=self.mode,
                               coordinate_transformation_mode=self.coordinate_transformation_mode,
                               nearest_mode=self.nearest_mode, cubic_coeff_a=self.cubic_coeff_a,
                               exclude_outside=self.exclude_outside, antialias=self.antialias,
                               roi=None if self.roi is None else self.roi[a])
                for a in self.resized_axes}
        return self._axes.get(axis)

    @property
    def dtype(self) -> np.dtype[Any]:
        """int64 for ``"nearest"`` (a selection), float64 otherwise."""
        return np.dtype(np.int64 if self.mode == "nearest" else np.float64)

    def _axis_matrices(self) -> list[sp.csr_array | None]:
        matrices: list[sp.csr_array | None] = []
        for a in range(len(self._input_shape)):
            found = self.axis(a)
            matrices.append(None if found is None
                            else sp.csr_array(found.matrix.astype(self.dtype)))
        return matrices

    def _nnz_estimate(self) -> int:
        """An upper bound from the sizes alone (the tables are not built)."""
        return math.prod(o * self._taps if a in self.resized_axes else o
                         for a, o in enumerate(self._output_shape))

    def offset(self) -> np.ndarray:
        """``extrapolation_value`` where it reaches the output (zeros otherwise).

        Computed as the reference does: each resized axis in turn, the extrapolated positions
        set to the value after the axis' interpolation (which later axes then interpolate).
        """
        size = math.prod(self._output_shape)
        value = self.extrapolation_value
        if value == 0 or not any(self.axis(a).extrapolated.any()  # type: ignore[union-attr]
                                 for a in self.resized_axes):
            return np.zeros(size, dtype=self.dtype)
        if self._offset is None:
            current = np.zeros((1, *self._input_shape))
            for a in self.resized_axes:
                found = self.axis(a)
                assert found is not None
                moved = np.moveaxis(current, a + 1, 0)
                flat = found.matrix @ moved.reshape(moved.shape[0], -1)
                flat[found.extrapolated] = value
                current = np.moveaxis(flat.reshape(found.matrix.shape[0], *moved.shape[1:]), 0,
                                      a + 1)
            self._offset = current.reshape(-1)
        return self._offset.copy()

    def _describe(self) -> str:
        parts = [f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}", self.mode,
                 self.coordinate_transformation_mode]
        if self.mode == "nearest" and self.nearest_mode != "round_prefer_floor":
            parts.append(self.nearest_mode)
        if self.mode == "cubic" and self.cubic_coeff_a != -0.75:
            parts.append(f"a={self.cubic_coeff_a:g}")
        if self.exclude_outside:
            parts.append("exclude_outside")
        if self.antialias:
            parts.append("antialias")
        if self.extrapolation_value != 0 and self.coordinate_transformation_mode \
                == "tf_crop_and_resize":
            parts.append(f"extrapolation {self.extrapolation_value:g}")
        return ", ".join(parts)
