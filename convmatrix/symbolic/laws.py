"""The overlap law of a transposed convolution in closed form, and the checkerboard verdict.

The counts of :mod:`convmatrix.symbolic.counts` (how many ``w·x`` terms land on each output
pixel of a transposed convolution) follow a law per axis: far from the borders the count
depends only on the residue of ``j + p`` modulo the stride, which explains the seed's ``1 2 1``
and, when the count varies periodically in the interior, the checkerboard artifacts of Odena,
Dumoulin & Olah (Distill, 2016). In N-D the count map is the outer product of the per-axis maps.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np
import sympy

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.budget import check_budget, check_max_bytes, law_nbytes
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES
from convmatrix.geometry.spec import ConvSpec
from convmatrix.geometry.view import check_direction
from convmatrix.symbolic._guard import DEFAULT_MAX_TERMS, check_residues
from convmatrix.symbolic._layers import is_layer, layer_spec, layer_view
from convmatrix.symbolic.counts import axis_overlap_counts
from convmatrix.symbolic.symbols import d, j, k, n, p, s, t
from convmatrix.typing import Direction

__all__ = [
    "AxisOverlap",
    "CheckerboardLaw",
    "checkerboard_law",
    "interior_overlap_formula",
    "overlap_formula",
    "overlap_sum_formula",
    "spec_checkerboard_law",
]


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
    stride_e, g, s_red, inverse = _stride_terms(stride, dilation)
    shifted = j + p
    t0 = sympy.Mod(sympy.floor(shifted / g) * inverse, s_red)
    lo = sympy.Max(0, sympy.ceiling((shifted - (n - 1) * stride_e) / dilation))
    hi = sympy.Min(k - 1, sympy.floor(shifted / dilation))
    count = sympy.Max(0, sympy.floor((hi - t0) / s_red) - sympy.floor((lo - 1 - t0) / s_red))
    if g == 1:
        return count
    return sympy.Piecewise((count, sympy.Eq(sympy.Mod(shifted, g), 0)), (0, True))


def interior_overlap_formula(stride: int | None = None, dilation: int = 1) -> sympy.Expr:
    """Closed form of the overlap count at an interior output pixel ``j`` (away from borders).

    Where no border cuts the sum (``d·(k − 1) ≤ j + p ≤ (n − 1)·s``) the count depends only on
    the residue ``r = (j + p) mod s``: it is the number of taps ``t ∈ [0, k)`` with
    ``t·d ≡ r (mod s)``. For ``d = 1`` that is ``⌊(k − 1 − r)/s⌋ + 1``, which takes the values
    ``⌈k/s⌉`` and ``⌊k/s⌋`` (one value when ``s`` divides ``k``): period ``s`` in ``j``. With
    dilation, ``g = gcd(d, s)``: residues not divisible by ``g`` receive nothing, and the others
    ``⌊(k − 1 − t₀)/s'⌋ + 1`` with ``s' = s/g`` and ``t₀ = (r/g)·(d/g)⁻¹ mod s'``.

    Parameters
    ----------
    stride : int, optional
        A number, or None for a symbolic ``s`` (dilation 1 only).
    dilation : int
        A number.

    Returns
    -------
    sympy.Expr
        In ``j, k, p`` (and ``s``).

    Raises
    ------
    ConvMatrixError
        A symbolic stride with ``dilation != 1``, or a non-positive stride or dilation.

    Examples
    --------
    >>> interior_overlap_formula()
    floor((k - Mod(j + p, s) - 1)/s) + 1
    >>> f = interior_overlap_formula(stride=2)          # k=3, s=2: 2, 1, 2, 1, ...
    >>> [f.subs({k: 3, p: 0, j: v}) for v in range(4)]
    [2, 1, 2, 1]
    >>> f = interior_overlap_formula(stride=2, dilation=2)   # every tap on even pixels
    >>> [f.subs({k: 3, p: 0, j: v}) for v in range(4)]
    [3, 0, 3, 0]
    """
    stride_e, g, s_red, inverse = _stride_terms(stride, dilation)
    # t0 from j + p itself: SymPy 1.14 rewrites Mod(2*Mod(x, 3), 3) as 2*Mod(x, 3), which is
    # wrong (sympy/sympy#29757, fixed after 1.14 by #29769), so Mods are never nested here
    if g == 1 and inverse == 1:
        t0: sympy.Expr = sympy.Mod(j + p, stride_e)
    else:
        t0 = sympy.Mod(sympy.floor((j + p) / g) * inverse, s_red)
    count = sympy.floor((k - 1 - t0) / s_red) + 1
    if g == 1:
        return count
    return sympy.Piecewise((count, sympy.Eq(sympy.Mod(j + p, g), 0)), (0, True))


def _stride_terms(stride: int | None, dilation: int
                  ) -> tuple[sympy.Expr, int, sympy.Expr | int, int]:
    """``(s, g, s', (d/g)⁻¹ mod s')`` for the closed forms, checking the arguments."""
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
        raise ConvMatrixError(f"`dilation` (={dilation!r}) must be a positive int")
    if stride is None:
        if dilation != 1:
            raise ConvMatrixError(
                f"a symbolic stride needs `dilation` (={dilation}) == 1: the modular inverse "
                f"of d has no closed form in a symbolic s; use overlap_sum_formula()"
            )
        return s, 1, s, 1
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ConvMatrixError(f"`stride` (={stride!r}) must be a positive int or None")
    g = math.gcd(dilation, stride)
    s_red = stride // g
    inverse = pow(dilation // g, -1, s_red) if s_red > 1 else 0
    return sympy.Integer(stride), g, s_red, inverse


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
    """The overlap law along one axis of a transposed convolution.

    Attributes
    ----------
    axis : int
        Spatial axis (0-based).
    kernel, stride, dilation : int
        The axis' geometry.
    interior_counts : tuple of int
        Taps landing on an interior output pixel ``j`` with ``(j + p) mod s = r``, for
        ``r = 0, …, s − 1`` (far from the borders the count depends only on that residue).
    size : int or None
        The transposed layer's input size ``n`` along the axis (None: not tied to a layer).
    padding : int
        Padding before (``p``, cropped from the start of the transposed layer's output).
    counts : tuple of int
        The counted overlap of every output pixel along the axis (empty: not tied to a layer).
        The N-D overlap map is the outer product of these.
    """

    axis: int
    kernel: int
    stride: int
    dilation: int
    interior_counts: tuple[int, ...]
    size: int | None = None
    padding: int = 0
    counts: tuple[int, ...] = ()

    @property
    def even(self) -> bool:
        """Every interior output receives the same number of taps."""
        return len(set(self.interior_counts)) == 1

    @property
    def period(self) -> int:
        """Smallest period of the interior counts (1 when even).

        Only divisors of the stride can be periods; each is checked in one vectorised pass.
        """
        counts = np.asarray(self.interior_counts)
        return next(q for q in _divisors(len(counts))
                    if np.array_equal(counts, np.roll(counts, -q)))

    @property
    def distinct(self) -> tuple[int, ...]:
        """The distinct interior counts, ascending."""
        return tuple(sorted(set(self.interior_counts)))

    @property
    def interior(self) -> range:
        """Output pixels ``j`` where no border cuts the sum: ``d(k − 1) ≤ j + p ≤ (n − 1)s``.

        Empty when the layer is too small to have an interior (or not tied to a layer).
        """
        if self.size is None:
            return range(0)
        lo = max(0, self.dilation * (self.kernel - 1) - self.padding)
        hi = (self.size - 1) * self.stride - self.padding
        if self.counts:
            hi = min(hi, len(self.counts) - 1)
        return range(lo, max(lo, hi + 1))

    def formula(self) -> sympy.Expr:
        """The closed form of :attr:`counts` in ``j``, with this axis' numbers substituted.

        Exact at every output pixel for zero padding (borders included), by
        :func:`overlap_formula`.
        """
        if self.size is None:
            raise ConvMatrixError("this AxisOverlap has no `size`: the formula needs n")
        return overlap_formula(self.stride, self.dilation).subs(
            {n: self.size, k: self.kernel, p: self.padding})

    def interior_formula(self) -> sympy.Expr:
        """The interior count in ``j`` (:func:`interior_overlap_formula`, numbers substituted)."""
        return interior_overlap_formula(self.stride, self.dilation).subs(
            {k: self.kernel, p: self.padding})

    def describe(self) -> str:
        """One sentence on this axis."""
        where = f"spatial axis {self.axis} (kernel {self.kernel}, stride {self.stride}" + (
            f", dilation {self.dilation})" if self.dilation > 1 else ")")
        if self.even:
            count = self.interior_counts[0]
            return f"{where}: every interior pixel gets {count} tap{'' if count == 1 else 's'}"
        reason = (f"the kernel size {self.kernel} is not divisible by the stride {self.stride}"
                  if self.dilation == 1 else
                  f"the dilated taps (every {self.dilation}) hit the stride-{self.stride} "
                  f"grid unevenly")
        cycle = [str(self.interior_counts[r]) for r in _shown_residues(self.period)]
        if len(cycle) < self.period:
            cycle.insert(-1, "…")
        return (f"{where}: interior counts cycle through {', '.join(cycle)} (period "
                f"{self.period}) because {reason}")

    def __repr__(self) -> str:
        """One line: ``AxisOverlap(spatial axis 0: kernel 3, stride 2, interior 2, 1)``."""
        counts = self.interior_counts[:self.period]
        shown = ", ".join(map(str, counts[:8])) + (", …" if len(counts) > 8 else "")
        return (f"AxisOverlap(spatial axis {self.axis}: kernel {self.kernel}, stride "
                f"{self.stride}" + (f", dilation {self.dilation}" if self.dilation > 1 else "")
                + f", interior {shown})")

    def __str__(self) -> str:
        return self.law()

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.law(latex=True)}$"

    def _repr_markdown_(self) -> str:
        return f"{self.describe()}.\n\n$$\n{self.law(latex=True)}\n$$"

    def law(self, *, latex: bool = False) -> str:
        """The interior law of this axis, in general and with its numbers, as text or LaTeX.

        Examples
        --------
        >>> print(checkerboard_law((1, 1, 3), (1, 4), stride=2).axes[0].law())
        c₀(j) = ⌊(k − 1 − r)/s⌋ + 1 = ⌊(2 − r)/2⌋ + 1 with r = j mod 2:
        2 for j ≡ 0, 1 for j ≡ 1 (mod 2), for 2 ≤ j ≤ 6
        """
        kk, ss, dd, pp = self.kernel, self.stride, self.dilation, self.padding
        shifted = f"j + {pp}" if pp else "j"
        if latex:
            name = f"c_{{{self.axis}}}(j)"
            if ss == 1:
                rule = rf"k = {kk} \text{{ (stride 1: every tap lands)}}"
            elif dd > 1:
                rule = (r"\left|\lbrace t \in [0, k) : t d \equiv j + p \pmod{s} \rbrace\right| = "
                        rf"\left|\lbrace t \in [0, {kk}) : {dd}t \equiv {shifted} \pmod{{{ss}}}"
                        r" \rbrace\right|")
            else:
                rule = (r"\left\lfloor \frac{k - 1 - r}{s} \right\rfloor + 1 = "
                        rf"\left\lfloor \frac{{{kk - 1} - r}}{{{ss}}} \right\rfloor + 1"
                        rf" \text{{ with }} r = "
                        + (rf"({shifted}) \bmod {ss}" if pp else rf"j \bmod {ss}"))
        else:
            name = f"c{_subscript(str(self.axis))}(j)"
            if ss == 1:
                rule = f"k = {kk} (stride 1: every tap lands)"
            elif dd > 1:
                rule = (f"#{{t ∈ [0, k) : t·d ≡ j + p (mod s)}} = #{{t ∈ [0, {kk}) : {dd}t ≡ "
                        f"{shifted} (mod {ss})}}")
            else:
                rule = (f"⌊(k − 1 − r)/s⌋ + 1 = ⌊({kk - 1} − r)/{ss}⌋ + 1 with r = "
                        + (f"({shifted}) mod {ss}" if pp else f"j mod {ss}"))
        phases, where = self._phases(latex), ""
        if self.size is not None:  # an even count is stated once, with where it holds
            phases = str(self.interior_counts[0]) if self.even else phases
            where = self._where(latex)
        colon = r":\quad " if latex else ": "
        return f"{name} = {rule}{colon}{phases}{where}"

    def _where(self, latex: bool) -> str:
        """Where the interior law holds: ``, for 2 ≤ j ≤ 6``, `` at j = 1``, or why nowhere."""
        span = self.interior
        sep = " " if self.even else ", "
        if not span:
            note = ("in the interior of a larger input (this layer is too small to have "
                    "interior pixels)" if self.even
                    else "though this layer is too small to have interior pixels")
            return rf"\text{{{sep}{note}}}" if latex else sep + note
        first, last = span.start, span.stop - 1
        if latex:
            sep = r"\ " if self.even else r",\ "
            return (rf"{sep}\text{{at }} j = {first}" if first == last
                    else rf"{sep}\text{{for }} {first} \le j \le {last}")
        return f"{sep}at j = {first}" if first == last else f"{sep}for {first} ≤ j ≤ {last}"

    def _phases(self, latex: bool) -> str:
        """``2 for j ≡ 0, 1 for j ≡ 1 (mod 2)``: the interior count per residue of ``j``."""
        counts = self.interior_counts
        if latex:
            if self.even:
                return rf"{counts[0]} \text{{ everywhere}}"
            parts = [rf"{counts[(r + self.padding) % self.stride]} \text{{ for }} j \equiv {r}"
                     for r in _shown_residues(self.period)]
            if len(parts) < self.period:
                parts.insert(-1, r"\dots")
            return r",\ ".join(parts) + rf" \pmod{{{self.period}}}"
        if self.even:
            return f"{counts[0]} everywhere"
        parts = [f"{counts[(r + self.padding) % self.stride]} for j ≡ {r}"
                 for r in _shown_residues(self.period)]
        if len(parts) < self.period:
            parts.insert(-1, "…")
        return ", ".join(parts) + f" (mod {self.period})"


MAX_RESIDUES_SHOWN = 8  # residues of a period written out before eliding the middle


def _shown_residues(period: int) -> list[int]:
    """The residues a law writes out: all, or the first few and the last of a long period."""
    if period <= MAX_RESIDUES_SHOWN:
        return list(range(period))
    return [*range(MAX_RESIDUES_SHOWN - 1), period - 1]


def _divisors(value: int) -> list[int]:
    """The divisors of a positive int, ascending (``O(√value)``)."""
    small = [q for q in range(1, math.isqrt(value) + 1) if value % q == 0]
    return small + [value // q for q in reversed(small) if q * q != value]


def _subscript(text: str) -> str:
    return text.translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def _interior_counts(kernel: int, stride: int, dilation: int) -> tuple[int, ...]:
    taps = np.arange(kernel) * dilation % stride
    return tuple(int(v) for v in np.bincount(taps, minlength=stride))


@dataclass(frozen=True)
class CheckerboardLaw:
    """The checkerboard verdict of a transposed convolution (all axes), from its overlap law.

    Named apart from :class:`convmatrix.analysis.checkerboard.Checkerboard` (the verdict of
    any layer or stack, from its counted paths); this one is the per-axis closed-form law of
    one (transposed) convolution.

    Attributes
    ----------
    axes : tuple of AxisOverlap
        The law of each axis.
    direction : {"adjoint", "forward"}
        Which layer is explained: ``"adjoint"`` (default), the transposed convolution itself;
        ``"forward"``, the convolution (the verdict concerns its transpose, the gradient with
        respect to its input, whose overlap counts are the convolution's reads per input
        pixel).
    padding_mode : str
        The convolution's padding mode (the border counts differ from zero padding's).
    """

    axes: tuple[AxisOverlap, ...]
    direction: Direction = "adjoint"
    padding_mode: str = "zeros"

    @property
    def forward(self) -> bool:
        """Deprecated: ``direction == "forward"``."""
        warnings.warn("CheckerboardLaw.forward is deprecated and will be removed in convmatrix "
                      "0.3; use .direction == 'forward'", DeprecationWarning, stacklevel=2)
        return self.direction == "forward"

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

    @property
    def period(self) -> tuple[int, ...]:
        """Per axis, the period of the interior counts."""
        return tuple(a.period for a in self.axes)

    def counts(self) -> np.ndarray:
        """The N-D overlap map as the outer product of the per-axis counts.

        Examples
        --------
        >>> checkerboard_law((1, 1, 2, 2), (1, 2, 2)).counts()
        array([[1, 2, 1],
               [2, 4, 2],
               [1, 2, 1]])
        """
        if not all(a.counts for a in self.axes):
            raise ConvMatrixError("this CheckerboardLaw is not tied to a layer: no counts")
        return reduce(np.multiply.outer, [np.asarray(a.counts, dtype=np.int64)
                                          for a in self.axes])

    def __repr__(self) -> str:
        """One line: ``CheckerboardLaw(uneven: interior counts 1, 2, 4, a 4× imbalance)``."""
        values = self.interior_values
        shown = ", ".join(map(str, values[:8])) + (", …" if len(values) > 8 else "")
        if self.even:
            return f"CheckerboardLaw(even: every interior count {values[0]})"
        ratio = "holes" if self.ratio == math.inf else f"a {self.ratio:g}× imbalance"
        return f"CheckerboardLaw(uneven: interior counts {shown}, {ratio})"

    def __str__(self) -> str:
        return "\n".join([*(a.law() for a in self.axes), "", self.describe()])

    def _repr_latex_(self) -> str:
        laws = "".join(rf"\[ {a.law(latex=True)} \]" + "\n" for a in self.axes)
        return f"{laws}\n{self.describe()}\n"  # MathJax shows the text verbatim

    def _repr_markdown_(self) -> str:
        laws = "".join(f"$$\n{a.law(latex=True)}\n$$\n\n" for a in self.axes)
        return f"{laws}{self.describe()}"

    def describe(self) -> str:
        """A short paragraph: verdict, per-axis laws, the N-D consequence."""
        lines = [a.describe() + "." for a in self.axes]
        values = ", ".join(map(str, self.interior_values))
        if self.direction == "forward":
            pixels, verb, unit = "input pixels", "are read", "times"
            opening = ("Its transpose (the gradient with respect to the input) overlaps "
                       + ("evenly" if self.even else "unevenly"))
        else:
            pixels, verb, unit = "output pixels", "receive", "terms"
            opening = "Even overlap" if self.even else "Uneven overlap"
        if self.padding_mode == "zeros":
            borders = "only pixels near the borders get fewer"
        else:
            borders = (f"near the borders the counts differ ({self.padding_mode} padding maps "
                       f"padded taps back onto edge pixels)")
        if self.even:
            head = (f"{opening}: the kernel size is a multiple of the stride along every axis, "
                    f"so all interior {pixels} {verb} the same number of {unit} "
                    f"({self.interior_values[0]}); {borders}.")
        else:
            imbalance = (f"some interior {pixels} receive no term at all (holes)"
                         if self.ratio == math.inf else f"a {self.ratio:g}× imbalance")
            head = (f"{opening} (checkerboard artifacts, Odena, Dumoulin & Olah 2016): interior "
                    f"{pixels} {verb} {values} {unit} — {imbalance}."
                    + (" In N-D the per-axis counts multiply." if len(self.axes) > 1 else ""))
        tail = []
        small = [str(a.axis) for a in self.axes if a.size is not None and not a.interior]
        if small:
            tail.append(f"This layer is too small to have interior pixels along spatial "
                        f"axis{'es' if len(small) > 1 else ''} "
                        f"{', '.join(small)}: every pixel there is within a kernel's reach of "
                        f"a border, so the map holds only border counts and the interior law "
                        f"describes larger inputs.")
        return " ".join([head, *lines, *tail])


def checkerboard_law(weight_shape: Any, input_shape: Sequence[int] | None = None, *,
                     direction: Direction = "adjoint",
                     max_terms: int | None = DEFAULT_MAX_TERMS,
                     max_bytes: int | None = DEFAULT_MAX_BYTES,
                     **geometry: Any) -> CheckerboardLaw:
    """The checkerboard verdict of a transposed layer (or of a convolution's transpose).

    Parameters
    ----------
    weight_shape, input_shape, **geometry
        A layer object (``cm.Conv``, ``cm.ConvTranspose``, their ``.T``, a Keras layer) alone;
        or the layer's shapes and keywords, as in :func:`convmatrix.conv_transpose_matrix`
        (or, with ``direction="forward"``, :func:`convmatrix.conv_matrix`).
    direction : {"adjoint", "forward"}
        With shapes: ``"adjoint"`` (default), the layer is a transposed convolution;
        ``"forward"``, a convolution, whose transpose the verdict concerns.
    max_terms : int or None, optional
        Refuse, before any work, a law with more stride residues (one count each) than this
        (default ``10**6``); None: no limit.
    max_bytes : int or None, optional
        Refuse, before any work, when the per-axis counts and laws would take more bytes than
        this; default :data:`convmatrix.DEFAULT_MAX_BYTES`, None: no limit.

    Returns
    -------
    CheckerboardLaw
        Per axis the interior counts, their period and closed form, and the counted map.

    Examples
    --------
    >>> verdict = checkerboard_law((1, 1, 3, 3), (1, 4, 4), stride=2)
    >>> verdict.even, verdict.interior_values, verdict.ratio, verdict.period
    (False, (1, 2, 4), 4.0, (2, 2))
    >>> verdict.describe()[:60]
    'Uneven overlap (checkerboard artifacts, Odena, Dumoulin & Ol'
    >>> checkerboard_law((1, 1, 4, 4), (1, 4, 4), stride=2).even
    True
    >>> import convmatrix as cm
    >>> checkerboard_law(cm.ConvTranspose(np.ones((1, 1, 3)), (1, 4), stride=2))
    CheckerboardLaw(uneven: interior counts 1, 2, a 2× imbalance)
    """
    if is_layer(weight_shape):
        if input_shape is not None or geometry:
            raise ConvMatrixError(
                "checkerboard_law(layer) takes the geometry from the layer object: pass no "
                "`input_shape` or geometry keywords with it")
        view = layer_view(weight_shape)
        spec, direction = view.spec, view.direction
    elif input_shape is None:
        raise ConvMatrixError("`input_shape` is required with a weight shape (or pass a layer "
                              "object, which knows its own)")
    else:
        spec = layer_spec(weight_shape, input_shape, direction, geometry)
    check_residues("the checkerboard verdict", spec, max_terms)
    check_budget("the checkerboard verdict", law_nbytes(spec), check_max_bytes(max_bytes))
    return spec_checkerboard_law(spec, direction=direction)


def spec_checkerboard_law(spec: ConvSpec, *, direction: Direction = "adjoint"
                          ) -> CheckerboardLaw:
    """:func:`checkerboard_law` for a forward spec (the verdict concerns its transpose).

    ``direction`` says which layer is being explained: the transposed convolution
    (``"adjoint"``, default) or the forward convolution ``spec`` itself (``"forward"``: the
    wording then speaks of its reads per input pixel); the counts are the same.
    """
    return CheckerboardLaw(tuple(
        AxisOverlap(axis, spec.kernel_size[axis], spec.stride[axis], spec.dilation[axis],
                    _interior_counts(spec.kernel_size[axis], spec.stride[axis],
                                     spec.dilation[axis]),
                    size=spec.output_size[axis], padding=spec.padding[axis][0],
                    counts=tuple(axis_overlap_counts(spec, axis).tolist()))
        for axis in range(spec.ndim)), direction=check_direction(direction),
        padding_mode=spec.padding_mode)
