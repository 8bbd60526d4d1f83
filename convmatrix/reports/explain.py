"""Explanations of layers without a symbolic derivation: read from the layer's exact matrix.

A pooling, upsampling, padding, pixel-shuffle, batch-norm or identity layer is explained by
what its matrix says: its shapes, what sampled outputs read (the inputs with their
coefficients), how many inputs each output reads and how many outputs read each input, its
per-axis law where one exists and its checkerboard verdict. A stack
(:class:`~convmatrix.Sequential`) is explained factor by factor (one line each) and as the
product. Convolutions keep their symbolic explanation
(:func:`convmatrix.symbolic.explain.explain_spec`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.analysis.checkerboard import Checkerboard, checkerboard
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers.base import Layer
from convmatrix.layers.sequential import Sequential

__all__ = ["Factor", "MatrixExplanation", "Read", "StackExplanation", "explain_matrix",
           "explain_stack"]

MAX_TERMS = 12  # terms shown per sampled output; more are elided ("… and 20 more")


@dataclass(frozen=True)
class Read:
    """What one output reads: ``y[output] = Σ coefficient · x[input] (+ offset)``.

    Attributes
    ----------
    output : tuple of int
        The output's index in :attr:`~convmatrix.Layer.output_shape`.
    terms : tuple of (tuple of int, number)
        Every input it reads (index in the input shape) with its coefficient, the matrix entry.
    offset : number
        The layer's offset (bias) at this output.
    value : number or None
        The output's value for the explained input sample (None without one).
    """

    output: tuple[int, ...]
    terms: tuple[tuple[tuple[int, ...], Any], ...]
    offset: Any = 0
    value: Any = None

    def text(self, limit: int = MAX_TERMS) -> str:
        """``0.25·x[0, 0, 0] + 0.25·x[0, 0, 1]`` (the first ``limit`` terms, then a count)."""
        parts = [(c, f"·x[{_index(i)}]") for i, c in self.terms[:limit]]
        if self.offset != 0:
            parts.append((self.offset, ""))
        text = ""
        for coefficient, rest in parts:
            number = _number(coefficient)
            negative = number.startswith("-")
            sign = ("−" if negative else "") if not text else (" − " if negative else " + ")
            text += sign + number.lstrip("-") + rest
        if len(self.terms) > limit:
            text += f" + … ({len(self.terms) - limit} more)"
        return text or "0"


def _index(index: tuple[int, ...]) -> str:
    return ", ".join(map(str, index))


def _number(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (complex, np.complexfloating)) and value.imag != 0:
        return f"({complex(value):.6g})"
    real = float(np.real(value))
    return str(int(real)) if real.is_integer() and abs(real) < 2**53 else f"{real:.6g}"


def _spread(values: np.ndarray) -> str:
    """``4`` when all equal, else ``1 to 4``."""
    if values.size == 0:
        return "0"
    low, high = int(values.min()), int(values.max())
    return str(low) if low == high else f"{low} to {high}"


@dataclass(frozen=True, eq=False)
class MatrixExplanation:
    """A layer explained from its exact matrix (kinds without a symbolic derivation).

    Attributes
    ----------
    layer : Layer
        The explained layer.
    title : str
        Its one-line repr.
    matrix_shape : tuple of int
        ``(rows, columns)`` of its matrix.
    nnz : int
        The matrix's nonzero entries.
    reads : tuple of Read
        The sampled outputs (the first, the middle and the last) and what they read.
    terms_per_output : ndarray of int, shape ``layer.output_shape``
        How many inputs each output reads (nonzero entries of its matrix row).
    reads_per_input : ndarray of int, shape ``layer.input_shape``
        How many outputs read each input (nonzero entries of its column): the overlap of the
        adjoint.
    checkerboard : Checkerboard or None
        The checkerboard verdict with the per-axis laws (None when it cannot be judged).
    checkerboard_note : str
        Why there is no verdict (empty when there is one).
    """

    layer: Layer
    title: str
    matrix_shape: tuple[int, int]
    nnz: int
    reads: tuple[Read, ...]
    terms_per_output: np.ndarray = field(repr=False)
    reads_per_input: np.ndarray = field(repr=False)
    checkerboard: Checkerboard | None = field(repr=False)
    checkerboard_note: str = ""

    @property
    def laws(self) -> list[str]:
        """The per-axis laws of the path counts, one line per axis that has one."""
        if self.checkerboard is None:
            return []
        return [law.law() for law in self.checkerboard.laws if law is not None]

    def _shape_lines(self) -> list[str]:
        rows, columns = self.matrix_shape
        density = self.nnz / max(1, rows * columns)
        return [f"Input {shape_text(self.layer.input_shape)}, output "
                f"{shape_text(self.layer.output_shape)} (one sample, flattened in C order). "
                f"The matrix is {rows}×{columns} with {self.nnz:,} nonzero entries "
                f"({density:.2%} dense): each output reads "
                f"{_spread(self.terms_per_output)} input(s); each input is read by "
                f"{_spread(self.reads_per_input)} output(s)."]

    def __repr__(self) -> str:
        rows, columns = self.matrix_shape
        return f"MatrixExplanation({self.title}: {rows}×{columns}, {self.nnz:,} nonzeros)"

    def __str__(self) -> str:
        lines = [self.title, *self._shape_lines(), "Sampled outputs:"]
        for read in self.reads:
            value = "" if read.value is None else f" = {_number(read.value)}"
            lines.append(f"  y[{_index(read.output)}] = {read.text()}{value}")
        if self.checkerboard is not None:
            lines.append(self.checkerboard.describe())
            lines += [f"  {law}" for law in self.laws]
        else:
            lines.append(self.checkerboard_note)
        return "\n".join(lines)

    def to_markdown(self, level: int = 2) -> str:
        """Markdown under a heading at ``level``: shapes, sampled outputs, overlap."""
        h = "#" * level
        out = [f"{h} `{self.title}`", "",
               "No symbolic derivation for this kind: everything below is read from its exact "
               "matrix.", "", f"{h}# Shapes and matrix", "", *self._shape_lines(), "",
               f"{h}# What each output reads", "",
               "Sampled outputs (the first, the middle and the last), with their "
               "coefficients from the matrix:", ""]
        with_values = any(read.value is not None for read in self.reads)
        out += ["| output | reads | value |" if with_values else "| output | reads |",
                "|---|---|---|" if with_values else "|---|---|"]
        for read in self.reads:
            row = f"| `y[{_index(read.output)}]` | `{read.text()}` |"
            if with_values:
                row += f" {_number(read.value)} |"
            out.append(row)
        out += ["", f"{h}# Overlap and checkerboard", ""]
        if self.checkerboard is not None:
            out.append(self.checkerboard.summary_markdown().rstrip("\n"))
            if not self.laws:
                out += ["", "No closed-form per-axis law for this kind: the verdict is read "
                            "from the counted paths."]
        else:
            out.append(self.checkerboard_note)
        return "\n".join(out) + "\n"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


@dataclass(frozen=True)
class Factor:
    """One factor of a stack in one line: the layer, its matrix and its verdict."""

    layer: Layer
    matrix_shape: tuple[int, int]
    nnz: int | None
    verdict: str

    def text(self) -> str:
        """``Conv(…): 1×4×4 → 1×2×2, matrix 4×16, 36 nonzeros, even``."""
        rows, columns = self.matrix_shape
        nnz = "not built (over the memory guard)" if self.nnz is None else f"{self.nnz:,} nonzeros"
        return (f"`{self.layer!r}`: {shape_text(self.layer.input_shape)} → "
                f"{shape_text(self.layer.output_shape)}, matrix {rows}×{columns}, {nnz}, "
                f"{self.verdict}")


@dataclass(frozen=True, eq=False)
class StackExplanation:
    """A stack explained: each factor in one line, then the product.

    Attributes
    ----------
    layer : Sequential
        The stack.
    factors : tuple of Factor
        The layers of :meth:`~convmatrix.Sequential.chain`, in layer order.
    matrix_shape : tuple of int
        The product's shape.
    nnz : int or None
        The product's nonzero entries (None when over the memory guard).
    plan : str
        How the product is formed (:meth:`~convmatrix.Sequential.plan`).
    checkerboard : Checkerboard or None
        The stack's verdict with its per-axis laws.
    checkerboard_note : str
        Why there is no verdict (empty when there is one).
    """

    layer: Sequential
    factors: tuple[Factor, ...]
    matrix_shape: tuple[int, int]
    nnz: int | None
    plan: str
    checkerboard: Checkerboard | None = field(repr=False)
    checkerboard_note: str = ""

    def _product_line(self) -> str:
        rows, columns = self.matrix_shape
        nnz = ("not built (over the memory guard)" if self.nnz is None
               else f"{self.nnz:,} nonzero entries")
        return (f"The product M = M{len(self.factors) - 1} ⋯ M0 is {rows}×{columns}, {nnz}; "
                f"{self.plan}.")

    def __repr__(self) -> str:
        rows, columns = self.matrix_shape
        return (f"StackExplanation({self.layer!r}: {len(self.factors)} factors, "
                f"{rows}×{columns})")

    def __str__(self) -> str:
        lines = [repr(self.layer)]
        lines += [f"  M{n}: {factor.text()}" for n, factor in enumerate(self.factors)]
        lines.append(self._product_line())
        if self.checkerboard is not None:
            lines.append(self.checkerboard.describe())
            lines += [f"  {law.law()}" for law in self.checkerboard.laws if law is not None]
        else:
            lines.append(self.checkerboard_note)
        return "\n".join(lines)

    def to_markdown(self, level: int = 2) -> str:
        """Markdown under a heading at ``level``: the factors, the product, its verdict."""
        h = "#" * level
        out = [f"{h} `{self.layer!r}`", "",
               "A stack: its matrix is the product of its factors' matrices (the last layer's "
               "on the left).", "", f"{h}# The factors", ""]
        out += [f"{n}. M{n} = {factor.text()}" for n, factor in
                enumerate(self.factors)]
        out += ["", f"{h}# The product", "", self._product_line(), ""]
        if self.checkerboard is not None:
            out.append(self.checkerboard.summary_markdown().rstrip("\n"))
        else:
            out.append(self.checkerboard_note)
        return "\n".join(out) + "\n"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _verdict(layer: Layer) -> tuple[Checkerboard | None, str]:
    try:
        return checkerboard(layer), ""
    except ConvMatrixError as error:
        return None, f"No checkerboard verdict: {error}"


def _samples(rows: int) -> list[int]:
    return sorted({0, rows // 2, rows - 1}) if rows else []


def explain_matrix(layer: Layer, x: Any = None) -> MatrixExplanation:
    """Explain any layer from its exact matrix (see :class:`MatrixExplanation`).

    Parameters
    ----------
    layer : Layer
        Any layer object.
    x : array_like, optional
        An input sample of shape ``layer.input_shape``; the sampled outputs show their value.

    Returns
    -------
    MatrixExplanation

    Examples
    --------
    >>> import convmatrix as cm
    >>> explained = explain_matrix(cm.AvgPool((1, 4, 4), 2))
    >>> explained
    MatrixExplanation(AvgPool(1×4×4 → 1×2×2, kernel 2, stride 2): 4×16, 16 nonzeros)
    >>> explained.reads[0].text()
    '0.25·x[0, 0, 0] + 0.25·x[0, 0, 1] + 0.25·x[0, 1, 0] + 0.25·x[0, 1, 1]'
    """
    matrix = layer.matrix("csr")
    matrix.sort_indices()
    nonzero = matrix != 0
    rows, columns = layer.matrix_shape
    terms = np.diff(nonzero.tocsr().indptr).reshape(layer.output_shape)
    reads = np.diff(nonzero.tocsc().indptr).reshape(layer.input_shape)
    offset = layer.offset()
    sample = None
    if x is not None:
        sample = np.asarray(x)
        if sample.shape != layer.input_shape:
            raise ConvMatrixError(f"`x` has shape {sample.shape}; the layer takes "
                                  f"{layer.input_shape}")
        y = matrix @ sample.reshape(-1) + offset
    found = []
    for row in _samples(rows):
        start, stop = matrix.indptr[row], matrix.indptr[row + 1]
        entries = tuple((tuple(int(v) for v in np.unravel_index(column, layer.input_shape)),
                         value.item())
                        for column, value in zip(matrix.indices[start:stop],
                                                 matrix.data[start:stop], strict=True)
                        if value != 0)
        found.append(Read(tuple(int(v) for v in np.unravel_index(row, layer.output_shape)),
                          entries, offset[row].item(),
                          None if sample is None else y[row].item()))
    verdict, note = _verdict(layer)
    return MatrixExplanation(layer, repr(layer), (rows, columns), int(nonzero.nnz),
                             tuple(found), terms, reads, verdict, note)


def explain_stack(layer: Sequential) -> StackExplanation:
    """Explain a stack: each factor in one line, then the product (see :class:`StackExplanation`).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> stack = cm.Sequential([cm.Conv(np.ones((1, 1, 3, 3)), (1, 4, 4)),
    ...                        cm.AvgPool((1, 2, 2), 2)])
    >>> print(explain_stack(stack).factors[1].text())
    `AvgPool(1×2×2 → 1×1×1, kernel 2, stride 2)`: 1×2×2 → 1×1×1, matrix 1×4, 4 nonzeros, even
    """
    factors = []
    for leaf in layer.chain():
        try:
            nnz: int | None = int((leaf.matrix("csr") != 0).nnz)
        except ConvMatrixError:
            nnz = None
        verdict, _ = _verdict(leaf)
        factors.append(Factor(leaf, leaf.matrix_shape, nnz,
                              "no verdict" if verdict is None else verdict.verdict))
    try:
        product: int | None = int((layer.matrix("csr") != 0).nnz)
    except ConvMatrixError:
        product = None
    verdict, note = _verdict(layer)
    return StackExplanation(layer, tuple(factors), layer.matrix_shape, product,
                            str(layer.plan()), verdict, note)

