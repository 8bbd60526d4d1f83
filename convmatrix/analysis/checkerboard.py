"""The checkerboard verdict of any layer or stack: period, interior values, imbalance, law.

Two maps can be judged (``weights=``):

- ``"ones"`` (default): :func:`convmatrix.analysis.paths.path_counts`, the weight paths
  landing on each output pixel with every learnable weight 1 — the overlap structure of the
  architecture, independent of training (Odena, Dumoulin & Olah 2016).
- ``"actual"``: :func:`convmatrix.analysis.paths.constant_response`, the layer's own linear
  part applied to an all-ones input — what the trained (or initialised) weights do to a flat
  image. A sub-pixel convolution (conv → pixel shuffle) has an even path structure but with random
  weights an uneven response; ICNR initialisation (Aitken et al. 2017: every sub-pixel kernel a
  copy of one) makes the response even at initialisation.

Both are read only at *interior* pixels (:func:`convmatrix.analysis.paths.interior_mask`): borders
always receive less. Where every layer of the stack is a per-axis step (transposed
convolutions, stride-1 convolutions, nearest upsampling by an integer factor, zero padding,
per-channel maps), the interior counts follow a closed form per axis
(:mod:`convmatrix.symbolic.composed`) that :attr:`Checkerboard.laws` states and
:attr:`Checkerboard.law_agrees` checks against the count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.analysis.paths import (
    constant_response,
    interior_mask,
    legacy_register,
    path_counts,
)
from convmatrix.geometry.shapes import shape_text
from convmatrix.geometry.view import AffineMap, AxisSteps, ConvView

if TYPE_CHECKING:
    from convmatrix.symbolic.composed import AxisStep, ComposedLaw

__all__ = ["Checkerboard", "Weights", "axis_steps", "checkerboard", "conv_axis_steps",
           "lattice_step", "spatial_axes"]

Weights = Literal["ones", "actual"]
_WEIGHTS: tuple[str, ...] = get_args(Weights)
_DIGITS = 9  # significant digits to which float interior values are told apart
_GRID_MAX = 32  # pixels per axis of the map printed in text


def spatial_axes(layer: AffineMap) -> tuple[int, ...]:
    """Indices of the spatial axes of ``layer.output_shape`` (from its ``layout`` hook)."""
    ndim = len(layer.output_shape)
    if layer.layout == "channels_last":
        return tuple(range(ndim - 1))
    return tuple(range(1, ndim))


def _distinct(values: np.ndarray) -> tuple[Any, ...]:
    if values.dtype.kind in "biu":
        return tuple(int(v) for v in np.unique(values))
    return tuple(sorted({float(f"{float(v):.{_DIGITS}g}") for v in values.ravel()}))


def _period(counts: np.ndarray, interior: np.ndarray, axis: int) -> int | None:
    """Smallest shift along ``axis`` under which the interior values repeat (None: unknown)."""
    size = counts.shape[axis]
    scale = float(np.abs(counts[interior]).max(initial=0.0)) or 1.0
    for q in range(1, size):
        head = [slice(None)] * counts.ndim
        tail = [slice(None)] * counts.ndim
        head[axis], tail[axis] = slice(0, size - q), slice(q, size)
        both = interior[tuple(head)] & interior[tuple(tail)]
        if not both.any():
            return None
        a, b = counts[tuple(head)][both], counts[tuple(tail)][both]
        if np.all(np.abs(a - b) <= 10.0 ** (1 - _DIGITS) * scale):
            return q
    return None


@dataclass(frozen=True, eq=False)
class Checkerboard:
    """The checkerboard verdict of a layer or stack; renders as text and Markdown.

    Attributes
    ----------
    layer : AffineMap
        What was judged.
    weights : {"ones", "actual"}
        Which map: weight paths with all-ones weights, or the response to a constant input.
    counts : ndarray, shape ``layer.output_shape``
        The map (int64 for ``"ones"``).
    interior : ndarray of bool, shape ``layer.output_shape``
        Pixels no border effect reaches.
    laws : tuple
        Per spatial axis the :class:`~convmatrix.symbolic.composed.ComposedLaw`, or None where
        no closed form applies (and always None for ``weights="actual"``).
    channel_factor : int or None
        Channel paths multiplying the per-axis laws (``∏ C_in/groups`` of the stack).
    """

    layer: AffineMap
    weights: str
    counts: np.ndarray = field(repr=False)
    interior: np.ndarray = field(repr=False)
    laws: tuple[ComposedLaw | None, ...] = field(repr=False)
    channel_factor: int | None = field(default=None, repr=False)

    @property
    def has_interior(self) -> bool:
        """Some output pixel is out of every border's reach."""
        return bool(self.interior.any())

    @property
    def interior_values(self) -> tuple[Any, ...]:
        """The distinct values at interior pixels, ascending (empty: no interior)."""
        return _distinct(self.counts[self.interior])

    @property
    def even(self) -> bool | None:
        """One interior value (None when the layer has no interior)."""
        return len(self.interior_values) == 1 if self.has_interior else None

    @property
    def ratio(self) -> float:
        """Largest over smallest interior value (``inf`` when the smallest is ≤ 0; nan: none)."""
        values = self.interior_values
        if not values:
            return math.nan
        return math.inf if values[0] <= 0 else float(values[-1] / values[0])

    @property
    def period(self) -> tuple[int | None, ...]:
        """Per spatial axis, the smallest shift repeating the interior values (None: unknown)."""
        return tuple(_period(self.counts, self.interior, axis)
                     for axis in spatial_axes(self.layer))

    @property
    def predicted_values(self) -> tuple[int, ...] | None:
        """The interior values the per-axis laws predict (None unless every axis has one)."""
        if self.channel_factor is None or not self.laws or any(v is None for v in self.laws):
            return None
        values = {self.channel_factor}
        for law in self.laws:
            assert law is not None
            values = {a * b for a in values for b in law.distinct}
        return tuple(sorted(values))

    @property
    def law_agrees(self) -> bool | None:
        """The laws' interior values and periods equal the counted ones (None: no law).

        Where the interior is shorter than one period along an axis (no counted period), it
        shows only some of the predicted values: they must be among them.
        """
        predicted = self.predicted_values
        if predicted is None or not self.has_interior:
            return None
        periods = tuple(law.period for law in self.laws if law is not None)
        counted = self.period
        same_periods = all(c is None or c == p for c, p in zip(counted, periods, strict=True))
        if None in counted:  # shorter than one period along an axis: it shows some values
            return set(self.interior_values) <= set(predicted) and same_periods
        return predicted == self.interior_values and same_periods

    @property
    def verdict(self) -> str:
        """``"even"``, ``"checkerboard"`` or ``"no interior"``."""
        if not self.has_interior:
            return "no interior"
        return "even" if self.even else "checkerboard"

    def _what(self) -> str:
        return ("weight paths per output pixel (all-ones weights)" if self.weights == "ones"
                else "response to a constant input (the layer's own weights)")

    def _values_text(self) -> str:
        return ", ".join(_value_text(v) for v in self.interior_values)

    def period_text(self) -> str:
        """The period per axis as text, e.g. ``"2×2"``.

        ``"—"`` along an axis where no shift within the interior repeats the values (an
        aperiodic pattern, e.g. a U-Net's layered strides and skips).

        Examples
        --------
        >>> import numpy as np
        >>> import convmatrix as cm
        >>> up = cm.ConvTranspose(np.ones((1, 1, 3, 3)), (1, 6, 6), stride=2)
        >>> up.checkerboard().period_text()
        '2×2'
        """
        return "×".join("—" if p is None else str(p) for p in self.period)

    def _period_phrase(self) -> str:
        note = (" (—: no shift along that axis repeats them within the interior)"
                if None in self.period else "")
        return f"repeating with period {self.period_text()}{note}"

    def describe(self) -> str:
        """A short paragraph: the verdict and the numbers behind it."""
        what = self._what()
        if not self.has_interior and not self.period:  # a flat output (Linear, pooling)
            return ("No interior: the output has no spatial axes, so there are no pixels to "
                    "compare and no checkerboard to read.")
        if not self.has_interior:
            return (f"No interior: every output pixel is within reach of a border, so the "
                    f"{what} are border effects only.")
        if self.even:
            text = (f"Even: every interior output pixel gets the same {what}: "
                    f"{_value_text(self.interior_values[0])}.")
        else:
            ratio = "∞" if self.ratio == math.inf else f"{self.ratio:.4g}"
            text = (f"Checkerboard: the interior {what} take the values {self._values_text()} "
                    f"(a {ratio}× imbalance), {self._period_phrase()}.")
        if self.predicted_values is not None:
            agree = ("agrees with the count" if self.law_agrees
                     else "DISAGREES with the count")
            if self.law_agrees and None in self.period:
                agree += (" (the interior is shorter than one period along an axis: it shows "
                          "some of them)")
            text += (" The composed per-axis law predicts "
                     + ", ".join(map(str, self.predicted_values)) + f", which {agree}.")
        return text

    def __repr__(self) -> str:
        head = f"Checkerboard({self.layer!r}, weights={self.weights!r}: {self.verdict}"
        if not self.has_interior:
            return head + ")"
        ratio = "inf" if self.ratio == math.inf else f"{self.ratio:.4g}"
        return (f"{head}, interior values {self._values_text()}, ratio {ratio}, period "
                f"{self.period_text()})")

    def __str__(self) -> str:
        lines = [f"{self.layer!r}", self.describe()]
        for law in self.laws:
            if law is not None:
                lines.append("  " + law.law())
        lines += [f"{self._what()} (channel 0; interior marked *):", self._grid_text()]
        return "\n".join(lines)

    def _grid_text(self) -> str:
        axes = spatial_axes(self.layer)
        counts, interior = self.counts, self.interior
        if axes and axes[0] == 0:  # channels last: channel axis at the end
            counts, interior = np.moveaxis(counts, -1, 0), np.moveaxis(interior, -1, 0)
        counts, interior = counts[0], interior[0]
        while counts.ndim > 2:
            middle = counts.shape[0] // 2
            counts, interior = counts[middle], interior[middle]
        if counts.ndim < 2:  # one spatial axis, or none (an output of channels only)
            counts, interior = counts.reshape(1, -1), interior.reshape(1, -1)
        note = ""
        if max(counts.shape) > _GRID_MAX:
            note = (f"\n(the top-left {min(counts.shape[0], _GRID_MAX)}×"
                    f"{min(counts.shape[1], _GRID_MAX)} of {shape_text(counts.shape)})")
            counts, interior = counts[:_GRID_MAX, :_GRID_MAX], interior[:_GRID_MAX, :_GRID_MAX]
        width = max(len(_value_text(v)) for v in counts.ravel()) + 1
        return "\n".join(" ".join(f"{_value_text(v) + ('*' if m else ' '):>{width}}"
                                  for v, m in zip(row, mask, strict=True)).rstrip()
                         for row, mask in zip(counts, interior, strict=True)) + note

    def ratio_text(self) -> str:
        """The imbalance as text: ``9``, ``∞``, or ``—`` without an interior."""
        if not self.has_interior:
            return "—"
        return "∞" if self.ratio == math.inf else f"{self.ratio:.4g}"

    def to_markdown(self, level: int = 2) -> str:
        """Markdown (GitHub math) under a heading: verdict table, laws, the map of channel 0."""
        return "\n".join([f"{'#' * level} `{self.layer!r}`", "", self.summary_markdown()])

    def summary_markdown(self) -> str:
        """:meth:`to_markdown` without the heading."""
        ratio = self.ratio_text()
        out = [f"**{self.describe()}**", "",
               "| verdict | interior values | imbalance (max/min) | period per axis |",
               "|---|---|---|---|",
               f"| {self.verdict} | {self._values_text() or '—'} | {ratio} | "
               f"{self.period_text() if self.has_interior else '—'} |", ""]
        laws = [law for law in self.laws if law is not None]
        if laws:
            out += ["Per spatial axis, the composed law (coefficient of $z^e$ in $H$: paths "
                    "offset by $e$; coefficient of $z^r$ in $R$: the interior count where "
                    "$(j + P) \\bmod S = r$):", ""]
            for law in laws:
                out += ["$$", law.law(latex=True), "$$", "",
                        f"Spatial axis {law.axis}: $S = {law.stride}$, $P = {law.offset}$, "
                        f"interior counts {', '.join(map(str, law.phase_counts))} for "
                        f"$j \\equiv {', '.join(map(str, range(law.stride)))} \\pmod"
                        f"{{{law.stride}}}$.", ""]
        out += [f"The {self._what()}, channel 0 (`*`: interior pixels):", "", "```text",
                self._grid_text(), "```"]
        return "\n".join(out)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _value_text(value: Any) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    text = f"{float(value):.4g}"
    return "0" if text == "-0" else text


def checkerboard(layer: AffineMap, weights: Weights = "ones") -> Checkerboard:
    """Judge a layer or stack for checkerboard artifacts.

    Parameters
    ----------
    layer : AffineMap
        Any layer object or stack.
    weights : {"ones", "actual"}
        ``"ones"``: weight paths with every learnable weight 1 (the architecture's overlap);
        ``"actual"``: the response of the layer's own weights to a constant input.

    Returns
    -------
    Checkerboard

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> up = cm.ConvTranspose(np.ones((1, 1, 3, 3)), (1, 6, 6), stride=2)
    >>> stack = cm.Sequential([up, cm.ConvTranspose(np.ones((1, 1, 3, 3)), (1, 13, 13),
    ...                                             stride=2)])
    >>> verdict = stack.checkerboard()
    >>> verdict.verdict, verdict.interior_values, verdict.ratio, verdict.period
    ('checkerboard', (1, 2, 3, 4, 6, 9), 9.0, (4, 4))
    >>> verdict.law_agrees
    True
    """
    if weights not in _WEIGHTS:
        raise ConvMatrixError(
            f"`weights` (={weights!r}) must be one of {', '.join(map(repr, _WEIGHTS))}")
    counts = path_counts(layer) if weights == "ones" else constant_response(layer)
    laws: tuple[ComposedLaw | None, ...] = tuple(None for _ in spatial_axes(layer))
    factor = None
    if weights == "ones":
        steps = layer.axis_steps()
        if steps is not None:
            from convmatrix.symbolic.composed import composed_law

            per_axis, factor = steps
            laws = tuple(None if axis is None else composed_law(axis, index)
                         for index, axis in enumerate(per_axis))
    return Checkerboard(layer, weights, counts, interior_mask(layer), laws, factor)


def axis_steps(layer: AffineMap) -> AxisSteps | None:
    """Per spatial axis the layer's steps (None where it has none), and its channel factor.

    None for layer kinds that are no per-axis step (pixel shuffle, interpolation, ...). The
    layer's ``axis_steps()`` hook.
    """
    return layer.axis_steps()


def conv_axis_steps(view: ConvView, label: str | None = None) -> AxisSteps:
    """The lattice steps of a convolution (or its adjoint) and its channel factor.

    A transposed convolution (``view.direction == "adjoint"``) is a step ``(k, s, d, p)`` on
    every axis; a forward convolution is one (``k, 1, d, d(k − 1) − p``) only where its
    stride is 1 (a strided convolution decimates: None on that axis).
    """
    from convmatrix.symbolic.composed import AxisStep

    spec = view.spec
    steps: list[list[AxisStep] | None] = []
    if view.direction == "adjoint":
        for a in range(spec.ndim):
            k, s = spec.kernel_size[a], spec.stride[a]
            steps.append([AxisStep(k, s, spec.dilation[a], spec.padding[a][0],
                                   label=label or f"ConvTranspose k{k}/s{s}")])
        return steps, spec.out_channels // spec.groups
    for a in range(spec.ndim):
        k, d = spec.kernel_size[a], spec.dilation[a]
        steps.append(None if spec.stride[a] != 1 else
                     [AxisStep(k, 1, d, d * (k - 1) - spec.padding[a][0],
                               label=label or f"Conv k{k}")])
    return steps, spec.in_channels // spec.groups


def lattice_step(matrix: sp.sparray) -> tuple[int, int, int, int] | None:
    """``(k, s, 1, p)`` when input ``i`` feeds exactly the outputs ``s·i + t − p`` in range.

    How a per-axis matrix (upsampling, padding, cropping) is read as a lattice step; None
    when it is none.
    """
    matrix = sp.csc_array(matrix)
    matrix.eliminate_zeros()
    out, n = matrix.shape
    rows = [np.sort(matrix.indices[matrix.indptr[i]:matrix.indptr[i + 1]]) for i in range(n)]
    if n < 2 or any(r.size == 0 for r in rows):
        return None
    middle = n // 2
    kernel = max(r.size for r in rows)
    stride = int(rows[middle][0] - rows[middle - 1][0])
    padding = stride * middle - int(rows[middle][0])
    if stride < 1:
        return None
    for i, found in enumerate(rows):
        expected = np.arange(stride * i - padding, stride * i - padding + kernel)
        expected = expected[(expected >= 0) & (expected < out)]
        if not np.array_equal(found, expected):
            return None
    return kernel, stride, 1, padding


axis_steps.register = legacy_register("axis_steps")  # type: ignore[attr-defined]
