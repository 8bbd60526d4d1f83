"""Output sizes as SymPy formulas, and the relationships of Dumoulin & Visin (2016).

"A guide to convolution arithmetic for deep learning" (arXiv:1603.07285) states the output
size of a convolution and of its transpose in a sequence of relationships; each is a special
case of the two general formulas here, and :func:`check_relationships` confirms the ones that
apply to given numbers against the numeric shape functions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import sympy

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import conv_remainder, conv_transpose_output_length
from convmatrix.geometry.spec import ConvSpec, conv_output_shape, conv_transpose_output_shape
from convmatrix.geometry.view import check_direction
from convmatrix.symbolic._guard import DEFAULT_MAX_TERMS, check_max_terms
from convmatrix.symbolic.symbols import a, d, k, n, p, p_after, p_before, s
from convmatrix.typing import Direction

__all__ = [
    "RELATIONSHIPS",
    "Relationship",
    "check_relationships",
    "conv_output_size",
    "conv_transpose_output_size",
    "round_trip_output_padding",
    "round_trip_size",
    "round_trip_sizes",
    "size_derivation",
]



def conv_output_size(asymmetric: bool = False) -> sympy.Expr:
    """Output size of a convolution along one axis.

    ``⌊(n + 2p − d·(k − 1) − 1)/s⌋ + 1``, or with ``p_b + p_a`` for asymmetric padding.

    Examples
    --------
    >>> conv_output_size()
    floor((-d*(k - 1) + n + 2*p - 1)/s) + 1
    >>> conv_output_size().subs({n: 3, k: 2, s: 1, p: 0, d: 1})   # the seed: 3 -> 2
    2
    """
    pad = p_before + p_after if asymmetric else 2 * p
    return sympy.floor((n + pad - d * (k - 1) - 1) / s) + 1


def conv_transpose_output_size(asymmetric: bool = False) -> sympy.Expr:
    """Output size of a transposed convolution along one axis (torch's formula).

    ``(n − 1)·s − 2p + d·(k − 1) + a + 1`` with ``a`` the output padding.

    Examples
    --------
    >>> conv_transpose_output_size().subs({n: 2, k: 2, s: 1, p: 0, d: 1, a: 0})  # 2 -> 3
    3
    """
    pad = p_before + p_after if asymmetric else 2 * p
    return (n - 1) * s - pad + d * (k - 1) + a + 1


def round_trip_output_padding(n_in: int, kernel: int, stride: int = 1, padding: int = 0,
                              dilation: int = 1) -> int:
    """The ``output_padding`` that maps a convolution's output size back to its input size.

    With stride ``s``, the ``s`` input sizes ``n, n + 1, …`` can share one output size; the
    transposed layer tells them apart by ``a = (n + 2p − d·(k − 1) − 1) mod s``
    (Relationship 14, with dilation). The value is checked against the numeric shape functions
    (forward, then transposed with this ``a``) before it is returned.

    Parameters
    ----------
    n_in, kernel, stride, padding, dilation : int
        One axis of the forward convolution (symmetric padding ``padding``).

    Returns
    -------
    int
        ``a``, with ``0 <= a < stride`` (so torch accepts it as ``output_padding``).

    Raises
    ------
    ConvMatrixError
        An invalid geometry (the forward layer does not exist).

    Examples
    --------
    >>> round_trip_output_padding(8, 3, stride=2, padding=1)   # 8 -> 4 -> back to 8 needs a=1
    1
    >>> round_trip_output_padding(7, 3, stride=2, padding=1)   # 7 -> 4 -> back to 7 needs a=0
    0
    """
    o = conv_output_shape((1, 1, kernel), (1, n_in), stride=stride, padding=padding,
                          dilation=dilation)[1]
    a_value = conv_remainder(n_in, kernel, stride, (padding, padding), dilation, o)
    back = conv_transpose_output_shape((1, 1, kernel), (1, o), stride=stride, padding=padding,
                                       output_padding=a_value, dilation=dilation)[1]
    if back != n_in:  # pragma: no cover - Relationship 14 says this cannot happen
        raise ConvMatrixError(
            f"round trip failed: {n_in} -> {o} -> {back} with `output_padding` (={a_value})"
        )
    return a_value


def round_trip_sizes(n_out: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1, *,
                     max_terms: int | None = DEFAULT_MAX_TERMS) -> dict[int, int]:
    """Every forward input size with output size ``n_out``, and the ``output_padding`` for it.

    A transposed layer with input size ``n_out`` can produce any of these sizes; its
    ``output_padding`` picks which. With stride 1 there is one; with stride ``s`` up to ``s``.

    Parameters
    ----------
    n_out, kernel, stride, padding, dilation : int
        One axis: the forward output size (the transposed layer's input size) and geometry.
    max_terms : int or None, optional
        Refuse a stride above this (the answer has one entry per stride residue); default
        ``10**6``, None: no limit.

    Returns
    -------
    dict of int to int
        ``{n_in: a}``: the forward convolution maps ``n_in`` to ``n_out``, and the transposed
        convolution with ``output_padding=a`` maps ``n_out`` back to ``n_in``.

    Examples
    --------
    >>> round_trip_sizes(4, 3, stride=2, padding=1)     # 7 and 8 both give 4
    {7: 0, 8: 1}
    >>> round_trip_sizes(2, 2)                          # the seed: only 3 gives 2
    {3: 0}
    """
    for name, value, low in (("n_out", n_out, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                             ("padding", padding, 0), ("dilation", dilation, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConvMatrixError(f"`{name}` (={value!r}) must be an int >= {low}")
    check_max_terms(max_terms)
    if max_terms is not None and stride > max_terms:
        raise ConvMatrixError(
            f"round_trip_sizes would list up to {stride:,} input sizes (one per residue of "
            f"`stride` (={stride})), over `max_terms` (={max_terms:,}); pass a larger "
            f"max_terms (or max_terms=None) to list them anyway")
    smallest = conv_transpose_output_length(n_out, kernel, stride, (padding, padding), dilation)
    sizes = {}
    for n_in in range(max(1, smallest), smallest + stride):
        try:
            sizes[n_in] = round_trip_output_padding(n_in, kernel, stride, padding, dilation)
        except ConvMatrixError:
            continue  # the kernel does not fit this input
    return sizes


def round_trip_size() -> sympy.Expr:
    """The transposed layer's output size when it is fed the forward output size, symbolically.

    Substitutes ``o = ⌊(n + 2p − d(k − 1) − 1)/s⌋ + 1`` for the transposed layer's input size
    and ``a = (n + 2p − d(k − 1) − 1) mod s`` for its output padding. Since
    ``s·⌊m/s⌋ + (m mod s) = m``, it equals ``n`` for every geometry: the proof that
    Relationship 14's ``a`` restores the input size.

    Examples
    --------
    >>> e = round_trip_size()
    >>> sympy.expand(e.rewrite(sympy.floor))
    n
    """
    m = n + 2 * p - d * (k - 1) - 1
    return conv_transpose_output_size().subs({n: conv_output_size(), a: sympy.Mod(m, s)},
                                             simultaneous=True)


@dataclass(frozen=True)
class Relationship:
    """One relationship of Dumoulin & Visin: when it applies and the size it states.

    ``direction``: ``"forward"``, the size of a convolution's output; ``"adjoint"``, of a
    transposed convolution's.
    """

    number: int
    title: str
    condition: sympy.Basic
    size: sympy.Expr
    direction: Direction = "forward"

    @property
    def transposed(self) -> bool:
        """Deprecated: ``direction == "adjoint"``."""
        warnings.warn("Relationship.transposed is deprecated and will be removed in convmatrix "
                      "0.3; use .direction == 'adjoint'", DeprecationWarning, stacklevel=2)
        return self.direction == "adjoint"

    def applies(self, values: dict[sympy.Symbol, int]) -> bool:
        """Whether the relationship's condition holds for the numbers."""
        return bool(self.condition.subs(values))


_i = sympy.Integer
RELATIONSHIPS: tuple[Relationship, ...] = (
    Relationship(1, "no padding, unit strides",
                 sympy.And(sympy.Eq(s, 1), sympy.Eq(p, 0), sympy.Eq(d, 1)), n - k + 1),
    Relationship(2, "padding, unit strides", sympy.And(sympy.Eq(s, 1), sympy.Eq(d, 1)),
                 n - k + 2 * p + 1),
    Relationship(3, "half (same) padding: k odd, p = ⌊k/2⌋, unit strides",
                 sympy.And(sympy.Eq(s, 1), sympy.Eq(d, 1), sympy.Eq(sympy.Mod(k, 2), 1),
                           sympy.Eq(p, sympy.floor(k / 2))), n),
    Relationship(4, "full padding: p = k − 1, unit strides",
                 sympy.And(sympy.Eq(s, 1), sympy.Eq(d, 1), sympy.Eq(p, k - 1)), n + k - 1),
    Relationship(5, "no padding, non-unit strides", sympy.And(sympy.Eq(p, 0), sympy.Eq(d, 1)),
                 sympy.floor((n - k) / s) + 1),
    Relationship(6, "padding, non-unit strides", sympy.Eq(d, 1),
                 sympy.floor((n + 2 * p - k) / s) + 1),
    Relationship(8, "transpose of no padding, unit strides (full padding k − 1)",
                 sympy.And(sympy.Eq(s, 1), sympy.Eq(p, 0), sympy.Eq(d, 1), sympy.Eq(a, 0)),
                 n + (k - 1), direction="adjoint"),
    Relationship(9, "transpose of padding, unit strides",
                 sympy.And(sympy.Eq(s, 1), sympy.Eq(d, 1), sympy.Eq(a, 0)),
                 n + (k - 1) - 2 * p, direction="adjoint"),
    Relationship(10, "transpose of half padding", sympy.And(
        sympy.Eq(s, 1), sympy.Eq(d, 1), sympy.Eq(a, 0), sympy.Eq(sympy.Mod(k, 2), 1),
        sympy.Eq(p, sympy.floor(k / 2))), n, direction="adjoint"),
    Relationship(11, "transpose of full padding", sympy.And(
        sympy.Eq(s, 1), sympy.Eq(d, 1), sympy.Eq(a, 0), sympy.Eq(p, k - 1)),
        n - (k - 1), direction="adjoint"),
    Relationship(12, "transpose of no padding, strides dividing n − k (zeros inserted)",
                 sympy.And(sympy.Eq(p, 0), sympy.Eq(d, 1), sympy.Eq(a, 0)),
                 s * (n - 1) + k, direction="adjoint"),
    Relationship(13, "transpose of padding, strides dividing n + 2p − k",
                 sympy.And(sympy.Eq(d, 1), sympy.Eq(a, 0)), s * (n - 1) + k - 2 * p,
                 direction="adjoint"),
    Relationship(14, "transpose of padding, any strides: a = (n + 2p − k) mod s",
                 sympy.Eq(d, 1), s * (n - 1) + a + k - 2 * p, direction="adjoint"),
    Relationship(15, "dilated convolution: k replaced by k̂ = k + (k − 1)(d − 1)",
                 sympy.true, sympy.floor((n + 2 * p - k - (k - 1) * (d - 1)) / s) + 1),
)
"""The relationships of Dumoulin & Visin in the guide's numbering, each a :class:`Relationship`.

Each states a condition on the symbols and the output size it implies (``direction``
``"forward"``: a convolution's output, ``"adjoint"``: a transposed convolution's);
:func:`check_relationships` confirms those that apply to given numbers.
"""


def check_relationships(n_in: int, kernel: int, stride: int = 1, padding: int = 0,
                        dilation: int = 1, output_padding: int = 0
                        ) -> list[tuple[Relationship, int, int]]:
    """Evaluate every applicable relationship and the numeric shape it should match.

    For the forward relationships ``n`` is the convolution's input size; for the transposed
    ones it is the transposed layer's input size. Returns ``(relationship, formula value,
    numeric value)`` triples; they agree when the arithmetic is right.

    Examples
    --------
    >>> all(f == v for _, f, v in check_relationships(5, 3, stride=2, padding=1))
    True
    """
    values = {n: n_in, k: kernel, s: stride, p: padding, d: dilation, a: output_padding}
    results = []
    for rel in RELATIONSHIPS:
        if not rel.applies(values):
            continue
        try:
            if rel.direction == "adjoint":
                numeric = conv_transpose_output_shape(
                    (1, 1, kernel), (1, n_in), stride=stride, padding=padding,
                    output_padding=output_padding, dilation=dilation)[1]
            else:
                numeric = conv_output_shape((1, 1, kernel), (1, n_in), stride=stride,
                                            padding=padding, dilation=dilation)[1]
        except ConvMatrixError:
            continue  # no such layer in this direction (e.g. an empty output)
        results.append((rel, int(rel.size.subs(values)), numeric))
    return results


def size_derivation(spec: ConvSpec, *, direction: Direction = "forward",
                    latex: bool = False) -> list[str]:
    """Per axis, the output-size formula with the layer's numbers substituted.

    Parameters
    ----------
    spec : ConvSpec
        The forward convolution (for a transposed layer, the one it transposes).
    direction : {"forward", "adjoint"}
        ``"adjoint"``: derive the transposed layer's output size instead.
    latex : bool
        LaTeX instead of plain text.

    Returns
    -------
    list of str
        One line per spatial axis.

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_transpose_spec
    >>> size_derivation(conv_transpose_spec((1, 1, 2, 2), (1, 2, 2)), direction="adjoint")[0]
    "o' = (n' − 1)·s − p_b − p_a + d·(k − 1) + a + 1 = (2 − 1)·1 − 0 − 0 + 1·(2 − 1) + 0 + 1 = 3"
    """
    transpose = check_direction(direction) == "adjoint"
    lines = []
    for axis in range(spec.ndim):
        n, kk, ss = spec.input_size[axis], spec.kernel_size[axis], spec.stride[axis]
        (b, af), dd, o = spec.padding[axis], spec.dilation[axis], spec.output_size[axis]
        extra = spec.remainder[axis]
        if transpose and latex:
            lines.append(rf"o'_{axis} = (n'-1)s - p_b - p_a + d(k-1) + a + 1 = "
                         rf"({o}-1)\cdot {ss} - {b} - {af} + {dd}\cdot({kk}-1) + {extra} + 1"
                         rf" = {n}")
        elif transpose:
            lines.append(f"o' = (n' − 1)·s − p_b − p_a + d·(k − 1) + a + 1 = ({o} − 1)·{ss} − "
                         f"{b} − {af} + {dd}·({kk} − 1) + {extra} + 1 = {n}")
        elif latex:
            lines.append(rf"o_{axis} = \left\lfloor \frac{{n + p_b + p_a - d(k-1) - 1}}"
                         rf"{{s}} \right\rfloor + 1 = \left\lfloor \frac{{{n} + {b} + {af}"
                         rf" - {dd}\cdot({kk}-1) - 1}}{{{ss}}} \right\rfloor + 1 = {o}")
        else:
            lines.append(f"o = ⌊(n + p_b + p_a − d·(k − 1) − 1)/s⌋ + 1 = ⌊({n} + {b} + {af} − "
                         f"{dd}·({kk} − 1) − 1)/{ss}⌋ + 1 = {o}")
    return lines
