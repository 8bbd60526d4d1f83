"""Overlap counts of a transposed convolution, their closed form, and the checkerboard verdict.

Output pixel ``j`` of a transposed convolution (one axis, input size ``n``, kernel ``k``, stride
``s``, padding ``p`` before, dilation ``d``) receives one ``w·x`` term for every pair
``(i, t)`` with ``i·s − p + t·d = j``, ``0 ≤ i < n``, ``0 ≤ t < k``. Counting those pairs
explains the seed's ``1 2 1`` and, when the count varies periodically in the interior, the
checkerboard artifacts of Odena, Dumoulin & Olah (Distill, 2016). In N-D the count map is the
outer product of the per-axis maps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np
import sympy

from convmatrix.indices import axis_taps, index_table
from convmatrix.spec import ConvSpec
from convmatrix.symbolic._layers import layer_spec

__all__ = [
    "AxisOverlap",
    "Checkerboard",
    "axis_overlap_counts",
    "checkerboard",
    "overlap_counts",
    "overlap_formula",
    "overlap_sum_formula",
    "read_counts",
]

j, n, k, s, p, d, t = sympy.symbols("j n k s p d t", integer=True, nonnegative=True)


def axis_overlap_counts(spec: ConvSpec, axis: int) -> np.ndarray:
    """Per-axis count of (input pixel, tap) pairs of the transposed layer landing on each pixel.

    ``spec`` is the forward convolution (its input axis is the transposed layer's output).
    """
    index, valid = axis_taps(spec.input_size[axis], spec.kernel_size[axis], spec.stride[axis],
                             spec.padding[axis], spec.dilation[axis], spec.output_size[axis],
                             spec.padding_mode)
    return np.bincount(index[valid], minlength=spec.input_size[axis])


def _counts(spec: ConvSpec) -> np.ndarray:
    table = index_table(spec)
    return np.bincount(table.in_pos, minlength=table.n_in).reshape(spec.input_size)


def overlap_counts(weight_shape: Sequence[int], input_shape: Sequence[int],
                   **geometry: Any) -> np.ndarray:
    """How many (input pixel, kernel tap) pairs of a transposed layer land on each output pixel.

    Parameters
    ----------
    weight_shape, input_shape, **geometry
        As in :func:`convmatrix.conv_transpose_matrix` (weight replaced by its shape).

    Returns
    -------
    ndarray of int64, shape of one output channel's spatial grid
        It equals the outer product of the per-axis counts.

    Examples
    --------
    >>> overlap_counts((1, 1, 2, 2), (1, 2, 2))          # the seed
    array([[1, 2, 1],
           [2, 4, 2],
           [1, 2, 1]])
    >>> overlap_counts((1, 1, 3), (1, 5), stride=2)      # k=3, s=2: uneven
    array([1, 1, 2, 1, 2, 1, 2, 1, 2, 1, 1])
    """
    return _counts(layer_spec(weight_shape, input_shape, True, geometry))


def read_counts(weight_shape: Sequence[int], input_shape: Sequence[int],
                **geometry: Any) -> np.ndarray:
    """For a convolution: how many (output pixel, tap) pairs read each input pixel.

    This is the overlap map of the convolution's transpose (its column counts per channel pair).

    Examples
    --------
    >>> read_counts((1, 1, 2, 2), (1, 3, 3))
    array([[1, 2, 1],
           [2, 4, 2],
           [1, 2, 1]])
    """
    return _counts(layer_spec(weight_shape, input_shape, False, geometry))


def overlap_formula(stride: int | None = None, dilation: int = 1) -> sympy.Expr:
    """Closed form of the per-axis overlap count at output pixel ``j``.

    Free symbols ``j, n, k, p`` (and ``s`` when ``stride`` is None, which needs
    ``dilation == 1``). With ``g = gcd(d, s)`` and ``s' = s/g``, the taps landing on ``j`` are
    those ``t ≡ t₀ (mod s')`` in ``[max(0, ⌈(j + p − (n − 1)·s)/d⌉), min(k − 1, ⌊(j + p)/d⌋)]``,
    where ``t₀ = ((j + p)/g)·(d/g)⁻¹ mod s'``, and none unless ``g`` divides ``j + p``.

    Parameters
    ----------
    stride : int, optional
        A number, or None for a symbolic ``s`` (dilation 1 only).
    dilation : int
        A number.

    Returns
    -------
    sympy.Expr

    Examples
    --------
    >>> f = overlap_formula()
    >>> [f.subs({n: 2, k: 2, p: 0, s: 1, j: v}) for v in range(3)]   # the seed, one axis
    [1, 2, 1]
    """
    if stride is None:
        if dilation != 1:
            raise ValueError("a symbolic stride needs dilation == 1")
        stride_e: sympy.Expr = s
        g, s_red, inverse = 1, s, 1
    else:
        stride_e = sympy.Integer(stride)
        g = math.gcd(dilation, stride)
        s_red = stride // g
        inverse = pow(dilation // g, -1, s_red) if s_red > 1 else 0
    shifted = j + p
    t0 = sympy.Mod(sympy.floor(shifted / g) * inverse, s_red)
    lo = sympy.Max(0, sympy.ceiling((shifted - (n - 1) * stride_e) / dilation))
    hi = sympy.Min(k - 1, sympy.floor(shifted / dilation))
    count = sympy.Max(0, sympy.floor((hi - t0) / s_red) - sympy.floor((lo - 1 - t0) / s_red))
    if g == 1:
        return count
    return sympy.Piecewise((count, sympy.Eq(sympy.Mod(shifted, g), 0)), (0, True))


def overlap_sum_formula() -> sympy.Sum:
    """The defining count as a SymPy ``Sum`` over taps (any ``s`` and ``d``, all symbolic).

    Examples
    --------
    >>> overlap_sum_formula().subs({n: 2, k: 2, p: 0, s: 1, d: 1, j: 1}).doit()
    2
    """
    lands = sympy.And(sympy.Eq(sympy.Mod(j + p - t * d, s), 0), t * d <= j + p,
                      j + p - t * d <= (n - 1) * s)
    return sympy.Sum(sympy.Piecewise((1, lands), (0, True)), (t, 0, k - 1))


@dataclass(frozen=True)
class AxisOverlap:
    """Interior overlap law along one axis of a transposed convolution.

    Attributes
    ----------
    axis : int
        Spatial axis (0-based).
    kernel, stride, dilation : int
        The axis' geometry.
    interior_counts : tuple of int
        Taps landing on an interior output pixel ``j`` with ``(j + p) mod s = r``, for
        ``r = 0, …, s − 1`` (far from the borders the count depends only on that residue).
    """

    axis: int
    kernel: int
    stride: int
    dilation: int
    interior_counts: tuple[int, ...]

    @property
    def even(self) -> bool:
        """Every interior output receives the same number of taps."""
        return len(set(self.interior_counts)) == 1

    @property
    def period(self) -> int:
        """Smallest period of the interior counts (1 when even)."""
        counts = self.interior_counts
        return next(q for q in range(1, len(counts) + 1)
                    if len(counts) % q == 0 and counts == counts[q:] + counts[:q])

    @property
    def distinct(self) -> tuple[int, ...]:
        """The distinct interior counts, ascending."""
        return tuple(sorted(set(self.interior_counts)))

    def describe(self) -> str:
        """One sentence on this axis."""
        where = f"axis {self.axis + 1} (kernel {self.kernel}, stride {self.stride}" + (
            f", dilation {self.dilation})" if self.dilation > 1 else ")")
        if self.even:
            return (f"{where}: every interior output receives {self.interior_counts[0]} "
                    f"tap(s)")
        reason = (f"the kernel size {self.kernel} is not divisible by the stride {self.stride}"
                  if self.dilation == 1 else
                  f"the dilated taps (every {self.dilation}) hit the stride-{self.stride} "
                  f"grid unevenly")
        return (f"{where}: interior counts cycle through "
                f"{', '.join(map(str, self.interior_counts[:self.period]))} (period "
                f"{self.period}) because {reason}")


def _interior_counts(kernel: int, stride: int, dilation: int) -> tuple[int, ...]:
    taps = np.arange(kernel) * dilation % stride
    return tuple(int(v) for v in np.bincount(taps, minlength=stride))


@dataclass(frozen=True)
class Checkerboard:
    """The checkerboard verdict of a transposed convolution (all axes)."""

    axes: tuple[AxisOverlap, ...]

    @property
    def even(self) -> bool:
        """True when every axis overlaps evenly (no checkerboard pattern in the interior)."""
        return all(a.even for a in self.axes)

    @property
    def interior_values(self) -> tuple[int, ...]:
        """The distinct interior counts of the N-D map (products of per-axis counts)."""
        products = reduce(lambda acc, a: {x * y for x in acc for y in a.distinct},
                          self.axes, {1})
        return tuple(sorted(products))

    @property
    def ratio(self) -> float:
        """Largest over smallest interior count (``inf`` when some outputs get none)."""
        values = self.interior_values
        return math.inf if values[0] == 0 else values[-1] / values[0]

    def describe(self) -> str:
        """A short paragraph: verdict, per-axis laws, the N-D consequence."""
        lines = [a.describe() + "." for a in self.axes]
        if self.even:
            head = ("Even overlap: the kernel size is a multiple of the stride along every "
                    "axis, so every interior output pixel receives the same number of terms "
                    f"({self.interior_values[0]}); only the borders receive fewer.")
        else:
            values = ", ".join(map(str, self.interior_values))
            imbalance = ("some interior outputs receive no term at all (holes)"
                         if self.ratio == math.inf else f"a {self.ratio:g}× imbalance")
            head = ("Uneven overlap (checkerboard artifacts, Odena, Dumoulin & Olah 2016): "
                    f"interior output pixels receive {values} terms — {imbalance}. In N-D the "
                    "per-axis counts multiply.")
        return " ".join([head, *lines])


def checkerboard(weight_shape: Sequence[int], input_shape: Sequence[int],
                 transpose: bool = True, **geometry: Any) -> Checkerboard:
    """The checkerboard verdict of a transposed layer (or of a convolution's transpose).

    Examples
    --------
    >>> checkerboard((1, 1, 3, 3), (1, 4, 4), stride=2).describe()[:60]
    'Uneven overlap (checkerboard artifacts, Odena, Dumoulin & Ol'
    >>> checkerboard((1, 1, 4, 4), (1, 4, 4), stride=2).even
    True
    """
    spec = layer_spec(weight_shape, input_shape, transpose, geometry)
    return checkerboard_of(spec)


def checkerboard_of(spec: ConvSpec) -> Checkerboard:
    """:func:`checkerboard` for a forward spec (the verdict concerns its transpose)."""
    return Checkerboard(tuple(
        AxisOverlap(axis, spec.kernel_size[axis], spec.stride[axis], spec.dilation[axis],
                    _interior_counts(spec.kernel_size[axis], spec.stride[axis],
                                     spec.dilation[axis]))
        for axis in range(spec.ndim)))
