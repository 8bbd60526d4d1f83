"""One object that explains a layer: shapes, matrix, outputs, overlap and checkerboard verdict."""

from __future__ import annotations

import itertools
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.budget import check_budget, check_max_bytes, explain_nbytes
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES
from convmatrix.geometry.indices import stored_entries
from convmatrix.geometry.shapes import shape_text
from convmatrix.geometry.spec import ConvSpec
from convmatrix.geometry.view import direction_keyword
from convmatrix.symbolic._guard import DEFAULT_MAX_TERMS, check_residues
from convmatrix.symbolic._layers import is_layer, layer_spec, layer_view, sample_channels_first
from convmatrix.symbolic.arithmetic import size_derivation
from convmatrix.symbolic.counts import overlap_map
from convmatrix.symbolic.laws import CheckerboardLaw, spec_checkerboard_law
from convmatrix.symbolic.matrices import spec_entries
from convmatrix.symbolic.outputs import spec_outputs
from convmatrix.typing import Direction

__all__ = ["Explanation", "explain", "explain_spec"]

MAX_MATRIX_ENTRIES = 400  # dense size up to which the symbolic matrix is written out
MAX_ALL_OUTPUTS = 36  # outputs up to which every one is derived
MAX_TERMS_SHOWN = 10  # terms of one output sum written out before eliding
MAX_SAMPLED = 16  # outputs derived for a large layer
GENERIC_RANK_MAX_ENTRIES = 250_000  # matrix size up to which explain computes the rank


@dataclass(frozen=True, eq=False)
class Explanation:
    """Everything :func:`explain` derived about a layer; renders as text, LaTeX and Markdown.

    Attributes
    ----------
    title : str
        What the layer is.
    spec : ConvSpec
        The forward convolution (for a transposed layer, the one it transposes).
    direction : {"forward", "adjoint"}
        ``"adjoint"``: the layer is the transposed convolution ``Cᵀ`` (of ``spec``).
    input_shape, output_shape : tuple of int
        One sample, channels first.
    matrix : sympy.ImmutableSparseMatrix or None
        The layer's matrix in weight symbols, when its dense size is at most 400 entries.
    outputs : dict
        Output index (channel first) → its symbolic sum: all outputs of small layers, a
        representative sample (corners, edges, interior phases) of large ones.
    numeric_outputs : dict
        The same outputs with the given numbers substituted (empty without numbers).
    overlap : ndarray of int
        Terms landing on each output pixel of the transposed layer (for a convolution: reads
        of each input pixel, the overlap map of its transpose).
    checkerboard : CheckerboardLaw
        The overlap verdict, with each axis' counts and closed-form law (the overlap map is
        their outer product).
    """

    title: str
    spec: ConvSpec
    direction: Direction
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    matrix: sympy.ImmutableSparseMatrix | None
    outputs: dict[tuple[int, ...], sympy.Expr]
    numeric_outputs: dict[tuple[int, ...], Any] = field(repr=False)
    overlap: np.ndarray = field(repr=False)
    checkerboard: CheckerboardLaw = field(repr=False)

    # -- derived text pieces -----------------------------------------------------------------

    @property
    def transpose(self) -> bool:
        """Deprecated: ``direction == "adjoint"``."""
        warnings.warn("Explanation.transpose is deprecated and will be removed in convmatrix "
                      "0.3; use .direction == 'adjoint'", DeprecationWarning, stacklevel=2)
        return self._adjoint

    @property
    def _adjoint(self) -> bool:
        return self.direction == "adjoint"

    @property
    def matrix_name(self) -> str:
        """``Cᵀ`` for a transposed layer, ``C`` otherwise."""
        return "Cᵀ" if self._adjoint else "C"

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """Shape of the layer's matrix (rows: its outputs)."""
        rows, cols = self.spec.matrix_shape
        return (cols, rows) if self._adjoint else (rows, cols)

    @property
    def all_outputs(self) -> bool:
        """Whether :attr:`outputs` holds every output (else a sample)."""
        return len(self.outputs) == math.prod(self.output_shape)

    @property
    def nnz(self) -> int:
        """Stored entries of the layer's matrix (exact: merged taps count once)."""
        return stored_entries(self.spec)

    def shape_derivation(self) -> list[str]:
        """Per axis, the output-size formula with this layer's numbers (plain text)."""
        return size_derivation(self.spec, direction=self.direction)

    def shape_derivation_latex(self) -> list[str]:
        """Per axis, the output-size formula with numbers, as LaTeX."""
        return size_derivation(self.spec, direction=self.direction, latex=True)

    def describe_layer(self) -> str:
        """One line: kind, shapes, kernel, geometry."""
        spec = self.spec
        parts = [f"kernel {shape_text(spec.kernel_size)}",
                 f"stride {shape_text(spec.stride)}"]
        if any(b or a for b, a in spec.padding):
            parts.append("padding " + ", ".join(f"({b}, {a})" for b, a in spec.padding))
        if any(d > 1 for d in spec.dilation):
            parts.append(f"dilation {shape_text(spec.dilation)}")
        if spec.groups > 1:
            parts.append(f"groups {spec.groups}")
        if spec.padding_mode != "zeros":
            parts.append(f"padding mode {spec.padding_mode}")
        if self._adjoint and any(spec.remainder):
            parts.append(f"output padding {shape_text(spec.remainder)}")
        return (f"{self.title}: {shape_text(self.input_shape)} → "
                f"{shape_text(self.output_shape)}, " + ", ".join(parts))

    # -- renderings --------------------------------------------------------------------------

    def _y_subscript(self, index: tuple[int, ...]) -> str:
        """``1,1`` for output ``(0, 1, 1)``: like ``x``, the channel is left out for one channel."""
        shown = index[1:] if self.output_shape[0] == 1 else index
        return ",".join(map(str, shown))

    def _output_latex(self, expr: sympy.Expr) -> str:
        terms = sympy.Add.make_args(expr)
        if len(terms) <= MAX_TERMS_SHOWN:
            return sympy.latex(expr)
        shown = " + ".join(sympy.latex(t) for t in _first_terms(terms))
        return rf"{shown} + \cdots \quad ({len(terms)}\text{{ terms}})"

    def _output_text(self, expr: sympy.Expr) -> str:
        terms = sympy.Add.make_args(expr)
        if len(terms) <= MAX_TERMS_SHOWN:
            return str(expr)
        shown = " + ".join(str(t) for t in _first_terms(terms))
        return f"{shown} + … ({len(terms)} terms)"

    def _overlap_latex(self) -> str:
        counts = self.overlap
        if counts.ndim == 1:
            counts = counts[None, :]
        if counts.ndim > 2 or counts.size > 400:
            return ""
        body = r" \\ ".join(" & ".join(map(str, row)) for row in counts.tolist())
        return rf"\begin{{bmatrix}} {body} \end{{bmatrix}}"

    def __str__(self) -> str:
        lines = [self.describe_layer(), "", "Output size per axis:"]
        lines += [f"  {line}" for line in self.shape_derivation()]
        rows, cols = self.matrix_shape
        lines += ["", f"{self.matrix_name}: {rows}×{cols}, {self.nnz} stored entries"]
        if self.matrix is not None:
            lines.append(sympy.pretty(self.matrix, use_unicode=True, wrap_line=False))
        lines += ["", "Outputs" + ("" if self.all_outputs else " (a sample)") + ":"]
        for index, expr in self.outputs.items():
            value = self.numeric_outputs.get(index)
            tail = "" if value is None else f"  = {value}"
            lines.append(f"  y{list(index)} = {self._output_text(expr)}{tail}")
        kind = "overlap counts" if self._adjoint else "reads per input pixel"
        lines += ["", f"{kind.capitalize()}:", str(self.overlap), "",
                  "Per axis, at pixel j"
                  + (f" ({self._outer_product_text()}):" if self.spec.ndim > 1 else ":")]
        for axis in self.checkerboard.axes:
            lines += [f"  {axis.law()}", f"    counted: {_sequence_text(axis.counts)}"]
        lines += ["", self.checkerboard.describe(), "", self.inverse_text()]
        return "\n".join(lines)

    def generic_rank(self) -> int | None:
        """The rank of the layer's matrix for generic weights (None: too large to compute).

        Computed from the singular values of the matrix with seeded random weights (any
        weights off a measure-zero set give this rank), for matrices up to 250,000 entries.
        """
        rows, cols = self.matrix_shape
        if rows * cols > GENERIC_RANK_MAX_ENTRIES:
            return None
        from convmatrix.builder.sparse import spec_matrix

        weight = np.random.default_rng(0).standard_normal(self.spec.weight_shape)
        dense = spec_matrix(self.spec, weight, direction=self.direction).toarray()
        return int(np.linalg.matrix_rank(dense)) if dense.size else 0

    def inverse_text(self) -> str:
        """Why the transpose is not the inverse: rank, lost input dimensions, ``CᵀC``."""
        rows, cols = self.matrix_shape
        name = self.matrix_name
        gram = "CCᵀ" if self._adjoint else "CᵀC"
        rank = self.generic_rank()
        bound = min(rows, cols)
        head = f"{name} is {rows}×{cols}, so its rank is at most {bound}"
        if rank is None:
            lost = (f"; at least {cols - bound} of the {cols} input dimensions are lost, so no "
                    f"matrix undoes it" if cols > bound else "")
            head += lost + " (the exact rank is not computed for a matrix this large)"
        elif rank < cols:
            head += (f"; for generic weights it is {rank}, so {cols - rank} of the {cols} input "
                     f"dimensions are lost (its null space) and no matrix undoes {name}")
        else:
            head += (f"; for generic weights it is {rank}: no input dimension is lost, so a "
                     f"left inverse exists, but the transpose {'C' if self._adjoint else 'Cᵀ'} is "
                     f"not it")
        return (f"{head}. Going back through the transpose gives {gram}, not the identity: its "
                f"diagonal sums the squared weights that read each input pixel (with all-ones "
                f"weights: how many outputs read it), and its off-diagonal entries mix "
                f"neighbouring pixels. "
                f"`layer.transpose_vs_inverse()` shows {gram}, the null space and the "
                f"least-squares inverse.")

    def _outer_product_text(self, latex: bool = False) -> str:
        """How the per-axis maps combine: ``c(j₀, j₁) = c₀(j₀)·c₁(j₁)`` (2-D and up)."""
        ndim = self.spec.ndim
        if latex:
            args = ", ".join(f"j_{{{a}}}" for a in range(ndim))
            factors = r" \cdot ".join(f"c_{{{a}}}(j_{{{a}}})" for a in range(ndim))
            return rf"c({args}) = {factors}"
        sub = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
        args = ", ".join(f"j{a}".translate(sub) for a in range(ndim))
        factors = "·".join(f"c{a}(j{a})".translate(sub) for a in range(ndim))
        return f"the N-D map is the outer product c({args}) = {factors}"

    def law_latex(self) -> list[str]:
        """Per axis, the interior overlap law with this layer's numbers, as LaTeX."""
        return [axis.law(latex=True) for axis in self.checkerboard.axes]

    def to_latex(self) -> str:
        """The whole explanation as a LaTeX fragment: text, ``align*`` and display-math blocks.

        The layer, its output sizes, the matrix (shape, stored entries, and the entries when
        small), the outputs, the overlap map, the per-axis laws and the checkerboard verdict.
        Text paragraphs have LaTeX's special characters escaped.
        """
        return self._latex(_latex_text)

    def _latex(self, _latex_text: Callable[[str], str]) -> str:
        """:meth:`to_latex` with the given rendering of plain-text paragraphs."""
        rows_cols = self.matrix_shape
        parts = [_latex_text(self.describe_layer()),
                 r"\begin{align*}", r" \\ ".join(self.shape_derivation_latex()),
                 r"\end{align*}",
                 _latex_text(f"{self.matrix_name}: {rows_cols[0]}×{rows_cols[1]}, "
                             f"{self.nnz} stored entries")]
        if self.matrix is not None:
            name = "C^T" if self._adjoint else "C"
            parts += [rf"\[ {name} = {sympy.latex(self.matrix, mat_delim='[')} \]"]
        rows = [rf"y_{{{self._y_subscript(index)}}} &= {self._output_latex(expr)}"
                + ("" if (v := self.numeric_outputs.get(index)) is None else f" = {v}")
                for index, expr in self.outputs.items()]
        parts += [_latex_text("Outputs" + ("" if self.all_outputs else " (a sample)") + ":"),
                  r"\begin{align*}", " \\\\\n".join(rows), r"\end{align*}"]
        overlap = self._overlap_latex()
        if overlap:
            kind = "Overlap counts" if self._adjoint else "Reads per input pixel"
            parts.append(rf"\[ \text{{{kind}: }} {overlap} \]")
        parts += [rf"\[ {law} \]" for law in self.law_latex()]
        if self.spec.ndim > 1:
            parts.append(rf"\[ {self._outer_product_text(latex=True)} \]")
        parts.append(_latex_text(self.checkerboard.describe()))
        parts.append(_latex_text(self.inverse_text()))
        return "\n".join(parts)

    def __repr__(self) -> str:
        """One line: ``Explanation(ConvTranspose2d 1×2×2 → 1×3×3, kernel 2×2)``."""
        return f"Explanation({_layer_line(self)})"

    def _repr_latex_(self) -> str:
        # Jupyter typesets text/latex with MathJax, which shows text outside math verbatim:
        # paragraphs stay unescaped there
        return self._latex(_mathjax_text)

    def to_markdown(self, level: int = 2) -> str:
        """GitHub-renderable Markdown (``$…$`` / ``$$…$$`` math), headings at ``level``."""
        h = "#" * level
        out = [f"{h} {self.title}", "", self.describe_layer(), "",
               f"{h}# Shapes", "",
               f"Input {shape_text(self.input_shape)} (channels first), output "
               f"{shape_text(self.output_shape)}. Per spatial axis:", ""]
        out += [f"$$\n{line}\n$$" for line in self.shape_derivation_latex()]
        rows_cols = self.matrix_shape
        out += ["", f"{h}# The matrix ${'C^T' if self._adjoint else 'C'}$", "",
                f"Shape {rows_cols[0]}×{rows_cols[1]} (rows: output pixels, columns: input "
                f"pixels, both flattened channels first in C order), {self.nnz} stored entries "
                f"({self.nnz / max(1, rows_cols[0] * rows_cols[1]):.2%} dense)."]
        if self.matrix is not None:
            name = "C^T" if self._adjoint else "C"
            out += ["", "$$", f"{name} = {sympy.latex(self.matrix, mat_delim='[')}", "$$"]
        out += ["", f"{h}# Outputs" + ("" if self.all_outputs else " (a representative sample)"),
                ""]
        out += ["$$", r"\begin{aligned}"]
        rows = []
        for index, expr in self.outputs.items():
            value = self.numeric_outputs.get(index)
            tail = "" if value is None else f" &&= {sympy.latex(value)}"
            rows.append(rf"y_{{{self._y_subscript(index)}}} &= {self._output_latex(expr)}{tail}")
        out += [" \\\\\n".join(rows), r"\end{aligned}", "$$"]
        kind = ("Overlap counts: terms landing on each output pixel" if self._adjoint
                else "Reads per input pixel (the overlap map of the transpose)")
        out += ["", f"{h}# {kind}", ""]
        overlap = self._overlap_latex()
        if overlap:
            out += ["$$", overlap, "$$", ""]
        pixel = "output" if self._adjoint else "input"
        combine = ("" if self.spec.ndim == 1 else
                   "; the N-D map is the outer product of the per-axis maps, "
                   f"${self._outer_product_text(latex=True)}$")
        out += [f"Per axis, the count at {pixel} pixel $j$ (the interior law{combine}):", ""]
        for axis, law in zip(self.checkerboard.axes, self.law_latex(), strict=True):
            out += ["$$", law, "$$", "",
                    f"Counted along spatial axis {axis.axis}: {_sequence_text(axis.counts)}.", ""]
        out += [self.checkerboard.describe(), "", f"{h}# Why the transpose is not the inverse",
                "", self.inverse_text()]
        return "\n".join(out)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _layer_line(e: Explanation) -> str:
    """``ConvTranspose2d 1×2×2 → 1×3×3, kernel 2×2`` (stride etc. only when not 1)."""
    spec = e.spec
    parts = [f"{e.title} {shape_text(e.input_shape)} → {shape_text(e.output_shape)}",
             f"kernel {shape_text(spec.kernel_size)}"]
    if any(v > 1 for v in spec.stride):
        parts.append(f"stride {shape_text(spec.stride)}")
    if any(b or a for b, a in spec.padding):
        parts.append("padding " + ", ".join(f"({b}, {a})" for b, a in spec.padding))
    if any(v > 1 for v in spec.dilation):
        parts.append(f"dilation {shape_text(spec.dilation)}")
    if spec.groups > 1:
        parts.append(f"groups {spec.groups}")
    if spec.padding_mode != "zeros":
        parts.append(spec.padding_mode)
    return ", ".join(parts)


def _latex_text(text: str) -> str:
    """Plain text for a LaTeX fragment: its own paragraph, LaTeX specials escaped."""
    escaped = re.sub(r"([#%&_{}])", r"\\\1", text).replace("$", r"\$")
    return f"\n{escaped}\n"


def _mathjax_text(text: str) -> str:
    """Plain text for MathJax (Jupyter's text/latex): its own paragraph, only ``$`` escaped."""
    return "\n" + text.replace("$", r"\$") + "\n"


def _sequence_text(values: Sequence[int], limit: int = 32) -> str:
    """``1, 2, 1`` (elided in the middle past ``limit`` values)."""
    if len(values) <= limit:
        return ", ".join(map(str, values))
    half = limit // 2
    return (", ".join(map(str, values[:half])) + ", …, "
            + ", ".join(map(str, values[-half:])) + f" ({len(values)} values)")


def _first_terms(terms: Sequence[sympy.Expr]) -> list[sympy.Expr]:
    """The first terms of a long sum in natural index order (``w_{2}`` before ``w_{10}``)."""
    def key(term: sympy.Expr) -> list[int]:
        return [int(v) for v in re.findall(r"\d+", str(term))]
    return sorted(terms, key=key)[:MAX_TERMS_SHOWN - 2]


def sample_positions(shape: tuple[int, ...], stride: tuple[int, ...]) -> list[tuple[int, ...]]:
    """At most 16 outputs of channel 0: corners, edges, and the interior phases of the stride.

    Per axis the picks are the two ends and the middle with its neighbours up to a stride
    period (at most 16). When their product is too large, the interior phases come first (the
    checkerboard shows there) with room kept for the corners, then the corners, then the rest
    in order. The work is proportional to the sample, whatever the sizes and strides.
    """
    per_axis, phases, ends = [], [], []
    for size, s in zip(shape[1:], stride, strict=True):
        mid = size // 2  # a stride period of phases, but never more than the sample holds
        middle = list(range(mid, min(size, mid + max(2, min(s, MAX_SAMPLED)))))
        per_axis.append(sorted({0, size - 1, *middle}))
        phases.append(middle)
        ends.append(sorted({0, size - 1}))
    if math.prod(map(len, per_axis)) <= MAX_SAMPLED:
        combos = list(itertools.product(*per_axis))
    else:  # the first MAX_SAMPLED distinct picks, preferred ones first, never all of them
        corners = min(2 ** len(ends), MAX_SAMPLED // 2)  # room kept for the corners
        candidates = itertools.chain(
            itertools.islice(itertools.product(*phases), MAX_SAMPLED - corners),
            itertools.product(*ends), itertools.product(*phases), itertools.product(*per_axis))
        picked: dict[tuple[int, ...], None] = {}
        for combo in candidates:
            picked.setdefault(combo)
            if len(picked) == MAX_SAMPLED:
                break
        combos = sorted(picked)
    return [(0, *combo) for combo in combos]


def explain(weight_shape: Any, input_shape: Sequence[int] | None = None, *,
            direction: Direction = "forward", weight: Any = None, x: Any = None,
            title: str | None = None, max_terms: int | None = DEFAULT_MAX_TERMS,
            max_bytes: int | None = DEFAULT_MAX_BYTES, transpose: bool | None = None,
            **geometry: Any) -> Explanation:
    """Derive and bundle everything about a layer, for the REPL, notebooks and reports.

    Parameters
    ----------
    weight_shape : layer object or sequence of int
        A layer object (``cm.Conv``, ``cm.ConvTranspose``, their ``.T``, a Keras layer from
        ``cm.from_keras``: any object whose ``conv_view()`` names a convolution), which brings
        its geometry and weight; or a weight shape, as for
        :func:`~convmatrix.symbolic.conv_outputs` (or the transposed functions).
    input_shape : sequence of int
        With a weight shape: one input sample, channels first.
    direction : {"forward", "adjoint"}
        With a weight shape: ``"forward"`` (default) explains the convolution, ``"adjoint"``
        the transposed convolution.
    weight, x : array_like, optional
        Numbers to substitute as well (the symbolic forms always use symbols); with both given,
        each shown output also shows its value. For a layer object only ``x`` (in the layer's
        own layout), its weight is the layer's.
    title : str, optional
        Heading; default ``ConvNd`` / ``ConvTransposeNd``.
    max_terms : int or None, optional
        Refuse, before any work, when the sampled outputs could hold more ``w·x`` terms, or
        the overlap law more stride residues, than this (default ``10**6``); None: no limit.
    max_bytes : int or None, optional
        Refuse, before any work, when the overlap map and per-axis counts would take more
        bytes than this (default :data:`convmatrix.DEFAULT_MAX_BYTES`); None: no
        limit.
    transpose : bool, optional
        Deprecated (``DeprecationWarning``): ``transpose=True`` is ``direction="adjoint"``.
    **geometry
        The layer's keywords (stride, padding, dilation, groups, padding_mode or
        output_padding).

    Returns
    -------
    Explanation

    Raises
    ------
    ConvMatrixError
        Invalid geometry, or a layer too large for ``max_terms`` / ``max_bytes``.

    Examples
    --------
    >>> import convmatrix as cm
    >>> explain(cm.ConvTranspose(np.ones((1, 1, 2, 2)), (1, 2, 2)))
    Explanation(ConvTranspose2d 1×2×2 → 1×3×3, kernel 2×2)
    >>> ones = np.ones((1, 1, 2, 2), dtype=int)
    >>> e = explain((1, 1, 2, 2), (1, 2, 2), direction="adjoint", weight=ones, x=ones[0])
    >>> e.outputs[(0, 1, 1)], e.numeric_outputs[(0, 1, 1)]
    (w_{0,0}*x_{1,1} + w_{0,1}*x_{1,0} + w_{1,0}*x_{0,1} + w_{1,1}*x_{0,0}, 4)
    >>> e.overlap.tolist()
    [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    >>> e.checkerboard.even
    True
    """
    direction = direction_keyword(direction, transpose)
    if is_layer(weight_shape):
        if input_shape is not None or direction != "forward" or weight is not None or geometry:
            raise ConvMatrixError(
                "explain(layer) takes the geometry and weight from the layer object: pass no "
                "`input_shape`, `direction`, `weight` or geometry keywords with it (only `x`, "
                "`title`, `max_terms`, `max_bytes`)")
        view = layer_view(weight_shape)
        return explain_spec(view.spec, direction=view.direction,
                            weight=None if x is None else view.weight,
                            x=None if x is None else sample_channels_first(view, x),
                            title=title or view.title, max_terms=max_terms,
                            max_bytes=max_bytes)
    if input_shape is None:
        raise ConvMatrixError("`input_shape` is required with a weight shape (or pass a layer "
                              "object, which knows its own)")
    spec = layer_spec(weight_shape, input_shape, direction, geometry)
    return explain_spec(spec, direction=direction, weight=weight, x=x, title=title,
                        max_terms=max_terms, max_bytes=max_bytes)


def explain_spec(spec: ConvSpec, transpose: bool | None = None, *,
                 direction: Direction = "forward", weight: Any = None, x: Any = None,
                 title: str | None = None, max_terms: int | None = DEFAULT_MAX_TERMS,
                 max_bytes: int | None = DEFAULT_MAX_BYTES) -> Explanation:
    """:func:`explain` for a forward spec (``direction="adjoint"``: explain its transpose).

    ``transpose`` (a bool, positional or keyword) is deprecated: ``True`` is
    ``direction="adjoint"``.
    """
    direction = direction_keyword(direction, transpose)
    adjoint = direction == "adjoint"
    in_shape, out_shape = ((spec.output_shape, spec.input_shape) if adjoint
                           else (spec.input_shape, spec.output_shape))
    name = title or (f"ConvTranspose{spec.ndim}d" if adjoint else f"Conv{spec.ndim}d")
    what = f"explaining {name} {shape_text(in_shape)} → {shape_text(out_shape)}"
    check_residues(what, spec, max_terms)
    check_budget(what, explain_nbytes(spec), check_max_bytes(max_bytes))
    total = math.prod(out_shape)
    if total <= MAX_ALL_OUTPUTS:
        positions = list(itertools.product(*(range(v) for v in out_shape)))
    else:
        positions = sample_positions(out_shape, spec.stride)
    flat = [int(np.ravel_multi_index(index, out_shape)) for index in positions]
    symbolic = spec_outputs(spec, direction=direction, positions=flat, max_terms=max_terms)
    numeric: dict[tuple[int, ...], Any] = {}
    if weight is not None and x is not None:
        values = spec_outputs(spec, direction=direction, weight=weight, x=x, positions=flat,
                              max_terms=max_terms)
        numeric = {tuple(int(v) for v in index): value
                   for index, value in zip(positions, values, strict=True)}
    rows, cols = spec.matrix_shape
    matrix = None
    if rows * cols <= MAX_MATRIX_ENTRIES:
        shape = (cols, rows) if adjoint else (rows, cols)
        matrix = sympy.ImmutableSparseMatrix(*shape, spec_entries(spec, direction=direction,
                                                                   max_terms=None))
    return Explanation(
        title=name, spec=spec, direction=direction, input_shape=in_shape,
        output_shape=out_shape, matrix=matrix,
        outputs={tuple(int(v) for v in index): expr
                 for index, expr in zip(positions, symbolic, strict=True)},
        numeric_outputs=numeric, overlap=overlap_map(spec),
        checkerboard=spec_checkerboard_law(spec, direction=direction))
