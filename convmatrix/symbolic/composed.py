"""The composed per-axis overlap law of a stack of (transposed) convolutions, derived with SymPy.

Along one axis, a transposed convolution with kernel ``k``, stride ``s``, dilation ``d`` and
padding ``p`` sends input pixel ``i`` to the outputs ``s·i + t·d − p`` (``0 ≤ t < k``). A stack
of such steps (transposed convolutions, stride-1 convolutions, nearest upsampling by an integer
factor, zero padding) sends input pixel ``i`` to ``S·i + e − P`` for every exponent ``e`` of

    H(z) = ∏ₗ Σ_{t<kₗ} z^{t·dₗ·Sₗ} = ∏ₗ (1 − z^{kₗ dₗ Sₗ}) / (1 − z^{dₗ Sₗ}),

where ``Sₗ`` is the product of the strides of the steps after step ``l``, ``S = ∏ sₗ`` and
``P = Σ pₗ Sₗ``. With all-ones weights the interior count at output ``j`` is therefore the sum
of the coefficients of ``H`` at the exponents ``e ≡ j + P (mod S)``: the coefficients of the
remainder ``R(z) = H(z) mod (z^S − 1)``. The stack overlaps evenly exactly when ``R`` has
equal coefficients. One step gives back ``⌊(k − 1 − r)/s⌋ + 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import sympy

from convmatrix._errors import ConvMatrixError

__all__ = ["AxisStep", "ComposedLaw", "composed_law"]

z = sympy.Symbol("z")


@dataclass(frozen=True)
class AxisStep:
    """One layer along one axis, as a transposed-convolution step ``i ↦ s·i + t·d − p``.

    Attributes
    ----------
    kernel, stride, dilation : int
        Taps ``k``, stride ``s`` and dilation ``d`` (a stride-1 convolution is the same step
        with its kernel reversed; nearest upsampling by ``r`` is ``k = s = r``).
    padding : int
        Pixels cropped before the output (negative: zero padding added before).
    label : str
        What the step is, for the text.
    """

    kernel: int
    stride: int
    dilation: int = 1
    padding: int = 0
    label: str = ""

    def __post_init__(self) -> None:
        for name in ("kernel", "stride", "dilation"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConvMatrixError(f"`{name}` (={value!r}) must be a positive int")


@dataclass(frozen=True)
class ComposedLaw:
    """The interior overlap law of a stack along one axis (all-ones weights).

    Attributes
    ----------
    axis : int
        Spatial axis (0-based).
    steps : tuple of AxisStep
        The layers along this axis, input side first.
    """

    axis: int
    steps: tuple[AxisStep, ...]

    @property
    def stride(self) -> int:
        """``S``: the product of the strides (output pixels per input pixel)."""
        return math.prod(step.stride for step in self.steps)

    def _after(self) -> list[int]:
        """``Sₗ`` per step: the product of the strides of the steps after it."""
        return [math.prod(step.stride for step in self.steps[n + 1:])
                for n in range(len(self.steps))]

    @property
    def offset(self) -> int:
        """``P = Σ pₗ Sₗ``: output ``j`` has phase ``(j + P) mod S``."""
        return sum(step.padding * after for step, after in zip(self.steps, self._after(),
                                                               strict=True))

    def product_form(self) -> sympy.Expr:
        """``H(z)`` as the unevaluated product of geometric sums."""
        factors = [(1 - z ** (step.kernel * step.dilation * after))
                   / (1 - z ** (step.dilation * after))
                   for step, after in zip(self.steps, self._after(), strict=True)]
        return sympy.Mul(*factors, evaluate=False)

    def polynomial(self) -> sympy.Expr:
        """``H(z)`` expanded: coefficient of ``z^e`` = paths with total offset ``e``."""
        terms = [sympy.Add(*(z ** (t * step.dilation * after) for t in range(step.kernel)))
                 for step, after in zip(self.steps, self._after(), strict=True)]
        return sympy.expand(sympy.Mul(*terms))

    def remainder(self) -> sympy.Expr:
        """``R(z) = H(z) mod (z^S − 1)``: its coefficient of ``z^r`` is the count at phase r."""
        if self.stride == 1:
            return sympy.Integer(self.polynomial().subs(z, 1))
        return sympy.rem(self.polynomial(), z ** self.stride - 1, z)

    @property
    def residue_counts(self) -> tuple[int, ...]:
        """``c_r`` for ``r = 0, …, S − 1``: the interior count where ``(j + P) mod S = r``."""
        poly = sympy.Poly(self.remainder(), z)
        return tuple(int(poly.coeff_monomial(z ** r)) for r in range(self.stride))

    @property
    def phase_counts(self) -> tuple[int, ...]:
        """The interior count at output ``j`` for ``j mod S = 0, …, S − 1``."""
        counts = self.residue_counts
        return tuple(counts[(q + self.offset) % self.stride] for q in range(self.stride))

    def count(self, j: int) -> int:
        """The interior count at output pixel ``j``."""
        return self.residue_counts[(j + self.offset) % self.stride]

    @property
    def distinct(self) -> tuple[int, ...]:
        """The distinct interior counts, ascending."""
        return tuple(sorted(set(self.residue_counts)))

    @property
    def even(self) -> bool:
        """Every interior output pixel receives the same count."""
        return len(self.distinct) == 1

    @property
    def period(self) -> int:
        """The smallest period of the interior counts in ``j`` (1 when even)."""
        counts = self.phase_counts
        return next(q for q in range(1, len(counts) + 1)
                    if len(counts) % q == 0 and counts == counts[q:] + counts[:q])

    def law(self, *, latex: bool = False) -> str:
        """``H(z)``, ``R(z)`` and the counts per phase of ``j``, as text or LaTeX.

        Examples
        --------
        >>> k3s2 = AxisStep(3, 2)
        >>> print(ComposedLaw(0, (k3s2, k3s2)).law())
        axis 0: H(z) = ((1 - z**3)/(1 - z))*((1 - z**6)/(1 - z**2)) = z**6 + z**5 + 2*z**4 + z**3 + 2*z**2 + z + 1; R(z) = H(z) mod (z^4 − 1) = z**3 + 3*z**2 + 2*z + 3: counts 3, 2, 3, 1 for j ≡ 0, 1, 2, 3 (mod 4)
        """  # noqa: E501
        stride, offset = self.stride, self.offset
        product, expanded, rest = self.product_form(), self.polynomial(), self.remainder()
        phases = ", ".join(map(str, self.phase_counts))
        residues = ", ".join(map(str, range(stride)))
        if latex:
            mod = "" if stride == 1 else rf" \bmod (z^{{{stride}}} - 1)"
            return (rf"H_{{{self.axis}}}(z) = {sympy.latex(product)} = {sympy.latex(expanded)},"
                    rf"\quad R_{{{self.axis}}}(z) = H_{{{self.axis}}}(z){mod} = "
                    rf"{sympy.latex(rest)}")
        mod = "" if stride == 1 else f" mod (z^{stride} − 1)"
        shift = f" (phase (j + {offset}) mod {stride})" if offset % stride else ""
        return (f"axis {self.axis}: H(z) = {product} = {expanded}; R(z) = H(z){mod} = {rest}: "
                f"counts {phases} for j ≡ {residues} (mod {stride}){shift}")


def composed_law(steps: Sequence[AxisStep], axis: int = 0) -> ComposedLaw:
    """The composed overlap law of ``steps`` (input side first) along one axis.

    Examples
    --------
    >>> composed_law([AxisStep(3, 2), AxisStep(3, 2)]).distinct         # two k3/s2 layers
    (1, 2, 3)
    >>> composed_law([AxisStep(4, 2, padding=1), AxisStep(4, 2, padding=1)]).even
    True
    >>> composed_law([AxisStep(2, 2), AxisStep(3, 1, padding=1)]).phase_counts  # resize-conv
    (3, 3)
    """
    if not steps:
        raise ConvMatrixError("`steps` is empty; a composed law needs at least one step")
    return ComposedLaw(axis, tuple(steps))
