"""Why the transpose is not the inverse: ``CᵀC``, rank, null space and the least-squares inverse.

A layer's matrix ``C`` (``m×n``) maps ``n`` input numbers to ``m`` output numbers. Its
transpose ``Cᵀ`` goes back the other way, but ``CᵀC`` is not the identity: its diagonal sums
the squared weights that read each input pixel (with all-ones weights: how many outputs read
it), and when ``rank C < n`` no map at all can undo ``C`` — ``n − rank C`` dimensions of the
input are lost. The least-squares inverse ``C⁺ y`` (here LSQR, which converges to the
minimum-norm solution) recovers ``x`` exactly when ``C`` has full column rank, and otherwise
returns only the part of ``x`` that ``C`` can see.

The demonstration input is generic by default (seeded random integers, :data:`DEFAULT_SEED`):
an input of all ones lies in the row space of many rank-deficient layers and would be
"recovered" by a layer that loses half its input dimensions. Recovering one ``x`` is not
invertibility; only ``rank C = n`` is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.view import AffineMap, ConvView

if TYPE_CHECKING:
    import sympy

__all__ = ["DEFAULT_SEED", "MAX_DENSE_ENTRIES", "MAX_EXACT_ENTRIES", "MAX_GRAM_COLUMNS",
           "InverseAnalysis", "transpose_vs_inverse"]

MAX_DENSE_ENTRIES = 4_000_000  # rank needs the dense matrix (an SVD): refuse beyond this
MAX_EXACT_ENTRIES = 400  # up to this many matrix entries: exact (SymPy) null space and C⁺ y
MAX_GRAM_COLUMNS = 9  # up to this many inputs: CᵀC in weight symbols
RECOVERY_TOLERANCE = 1e-8  # relative error below which LSQR "recovers" x
DEFAULT_SEED = 0
"""Seed of the default input (integers −9…9 from ``numpy.random.default_rng(DEFAULT_SEED)``)
and of the random weights the rank is compared with when all weights are equal."""


def _number(value: Any) -> str:
    """A stable short text for a number: exact for rationals, else 4 decimals, zeros dropped."""
    if hasattr(value, "is_Rational") and value.is_Rational:
        return str(value)
    text = f"{float(np.real(value)):.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _grid(values: Any, shape: tuple[int, ...]) -> str:
    """A small array as rows of numbers (spatial grid of one sample, channels first)."""
    array = np.empty(math.prod(shape), dtype=object)
    array[:] = list(values)
    array = array.reshape(shape)
    if array.ndim >= 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 1:
        return "[" + ", ".join(_number(v) for v in array) + "]"
    if array.ndim == 2:
        return "\n".join("[" + ", ".join(_number(v) for v in row) + "]" for row in array)
    return "\n".join(f"{index}: " + "[" + ", ".join(_number(v) for v in array[index].ravel())
                     + "]" for index in np.ndindex(array.shape[:-1]))


def _error_text(error: float) -> str:
    return f"below {RECOVERY_TOLERANCE:g}" if error < RECOVERY_TOLERANCE else f"{error:.4f}"


@dataclass(frozen=True, eq=False)
class InverseAnalysis:
    """What :func:`transpose_vs_inverse` found; renders as text and Markdown.

    Attributes
    ----------
    layer : AffineMap
        The layer analysed (its linear part ``C``; the offset plays no role).
    rows, columns : int
        The shape of ``C`` (outputs × inputs).
    rank : int
        The rank of ``C`` (numerically, from its singular values).
    x : ndarray, shape ``(columns,)``
        The input the demonstration uses.
    gram_diagonal : ndarray, shape ``(columns,)``
        The diagonal of ``CᵀC``: per input pixel, the sum of the squared weights reading it.
    reads : ndarray of int, shape ``(columns,)``
        Per input pixel, the number of outputs reading it (stored entries of its column).
    gram_x : ndarray, shape ``(columns,)``
        ``CᵀC x``: the input sent through the layer and back through its transpose.
    lsqr_x : ndarray, shape ``(columns,)``
        The LSQR solution of ``C x̂ = C x`` (from ``x̂ = 0``: the minimum-norm one, ``C⁺ C x``).
    lsqr_iterations : int
        LSQR iterations used.
    exact_x : tuple or None
        ``C⁺ C x`` in exact rational arithmetic (SymPy), for small integer matrices.
    gram : sympy.Matrix or None
        ``CᵀC`` in weight symbols, for convolution layers of at most 9 input pixels.
    nullspace : tuple of tuple or None
        A basis of the null space of ``C`` (exact, SymPy), for small integer matrices.
    random_weight_rank : int or None
        For a convolution whose weights are all equal and which has more than one channel per
        group on a side (so its channels are identical copies): the rank of the same geometry
        with random weights (seeded with :data:`DEFAULT_SEED`). None otherwise.
    """

    layer: AffineMap
    rows: int
    columns: int
    rank: int
    x: np.ndarray = field(repr=False)
    gram_diagonal: np.ndarray = field(repr=False)
    reads: np.ndarray = field(repr=False)
    gram_x: np.ndarray = field(repr=False)
    lsqr_x: np.ndarray = field(repr=False)
    lsqr_iterations: int = 0
    exact_x: tuple[Any, ...] | None = field(default=None, repr=False)
    gram: sympy.Matrix | None = field(default=None, repr=False)
    nullspace: tuple[tuple[Any, ...], ...] | None = field(default=None, repr=False)
    random_weight_rank: int | None = None

    @property
    def lost_dimensions(self) -> int:
        """``n − rank C``: the dimension of the null space (inputs ``C`` cannot see)."""
        return self.columns - self.rank

    @property
    def full_column_rank(self) -> bool:
        """``rank C == n``: ``C`` is injective, so a left inverse exists."""
        return self.rank == self.columns

    @property
    def gram_is_identity(self) -> bool:
        """Whether ``CᵀC x == x`` on the demonstration input (it almost never is)."""
        return bool(np.allclose(self.gram_x, self.x, rtol=1e-12, atol=1e-12))

    @property
    def recovery_error(self) -> float:
        """``‖x̂ − x‖ / ‖x‖`` of the least-squares inverse (0 for ``x = 0``).

        From the exact ``C⁺ C x`` where it was computed, else from LSQR's.
        """
        solved = (self.lsqr_x if self.exact_x is None
                  else np.array([float(v) for v in self.exact_x]))
        norm = float(np.linalg.norm(self.x))
        return float(np.linalg.norm(solved - self.x)) / norm if norm else 0.0

    @property
    def lsqr_matches_exact(self) -> bool | None:
        """LSQR's solution equals the exact ``C⁺ C x`` to 1e-8 (None: no exact one)."""
        if self.exact_x is None:
            return None
        exact = np.array([float(v) for v in self.exact_x])
        scale = max(1.0, float(np.abs(exact).max(initial=0.0)))
        return bool(np.abs(self.lsqr_x - exact).max(initial=0.0) <= RECOVERY_TOLERANCE * scale)

    @property
    def recovered(self) -> bool:
        """The least-squares inverse recovered ``x`` (relative error below 1e-8)."""
        return self.recovery_error < RECOVERY_TOLERANCE

    # -- renderings --------------------------------------------------------------------------

    def _name(self) -> str:
        return "Cᵀ" if _transposed_conv(self.layer) else "C"

    def _gram_name(self) -> tuple[str, str]:
        """The Gram matrix of the layer's matrix, as text and LaTeX (``CᵀC`` or ``CCᵀ``)."""
        return ("CCᵀ", "C C^T") if self._name() == "Cᵀ" else ("CᵀC", "C^T C")

    def verdict(self) -> str:
        """One sentence: rank, lost dimensions and whether the least-squares inverse works."""
        name = self._name()
        head = (f"{name} is {self.rows}×{self.columns} with rank {self.rank}: ")
        if self.full_column_rank:
            body = (f"full column rank, no input dimension is lost, so the least-squares "
                    f"inverse recovers every x (here relative error "
                    f"{_error_text(self.recovery_error)})")
        elif self.recovered:
            body = (f"{self.lost_dimensions} of the {self.columns} input dimensions are lost "
                    f"(the null space of {name}), so no map can undo {name}; this x has no "
                    f"part in that null space, so the least-squares inverse happens to "
                    f"recover it (relative error {_error_text(self.recovery_error)}), but "
                    f"recovering one x is not invertibility: x plus any null-space vector "
                    f"gives the same output")
        else:
            body = (f"{self.lost_dimensions} of the {self.columns} input dimensions are lost "
                    f"(the null space of {name}), so no map can undo {name}; the least-squares "
                    f"inverse returns only the part of x that {name} sees (relative error "
                    f"{_error_text(self.recovery_error)})")
        return head + body + "."

    def notes(self) -> list[str]:
        """What to keep in mind reading the verdict: one x is not invertibility; equal weights."""
        name = self._name()
        if self.full_column_rank:
            out = [f"Recovering one x alone would not show invertibility; here rank {name} = "
                   f"{self.columns} (full column rank), so every input is recovered."]
        else:
            out = [f"Recovering one x is not invertibility: only rank {name} = {self.columns} "
                   f"(full column rank) makes every input recoverable."]
        if self.random_weight_rank is not None:
            cause = ("the weights, not the geometry" if self.random_weight_rank > self.rank
                     else "the geometry (random weights lose as much)")
            view = self.layer.conv_view()
            assert view is not None
            spec = view.spec
            copies = []
            if spec.out_channels > spec.groups:
                copies.append("every output channel of a group is the same")
            if spec.in_channels > spec.groups:
                copies.append("only the sum of each group's input channels is read")
            out.append(
                f"Warning: all weights are equal, so the channels are identical copies "
                f"({' and '.join(copies)}): rank {self.rank} here, and the same geometry with "
                f"random weights (seed {DEFAULT_SEED}) has rank {self.random_weight_rank}: the "
                f"rank loss comes from {cause}.")
        return out

    def __repr__(self) -> str:
        lost = ("full column rank" if self.full_column_rank
                else f"{self.lost_dimensions} input dimensions lost")
        works = ("recovers every x" if self.full_column_rank
                 else "recovers this x only" if self.recovered else "does not recover x")
        return (f"InverseAnalysis({self.layer!r}: {self._name()} {self.rows}×{self.columns}, "
                f"rank {self.rank}, {lost}, least squares {works})")

    def __str__(self) -> str:
        shape = self.layer.input_shape
        name = self._name()
        gram = self._gram_name()[0]
        lines = [f"{self.layer!r}", self.verdict(), *self.notes(), "",
                 f"diagonal of {gram} (squared weights reading each input pixel):",
                 _grid(self.gram_diagonal, shape),
                 "reads per input pixel (outputs that read it):", _grid(self.reads, shape),
                 "", "x:", _grid(self.x, shape),
                 f"{gram} x (through the layer and back through its transpose):",
                 _grid(self.gram_x, shape),
                 f"least-squares inverse {name}⁺({name} x) (LSQR, {self.lsqr_iterations} "
                 f"iteration{'s' if self.lsqr_iterations != 1 else ''}"
                 + (", shown exactly" if self.exact_x is not None else "") + "):",
                 _grid(self.exact_x if self.exact_x is not None else self.lsqr_x, shape)]
        if self.nullspace:
            lines += ["", f"a basis of the null space of {name} ({len(self.nullspace)} "
                      "vectors):"]
            lines += [f"  {_grid(v, (len(v),))}" for v in self.nullspace]
        return "\n".join(lines)

    def to_markdown(self, level: int = 2) -> str:
        """Markdown (GitHub math) with headings at ``level``."""
        import sympy

        h = "#" * level
        name = self._name()
        tex = "C^T" if name == "Cᵀ" else "C"
        gram_text, gram_tex = self._gram_name()
        shape = self.layer.input_shape
        out = [f"{h} `{self.layer!r}`", "", f"**{self.verdict()}**", ""]
        out += [line for note in self.notes() for line in (note, "")]
        if self.gram is not None:
            out += [f"${gram_tex}$ in the weight symbols (entry $(i, j)$ sums "
                    f"$w_a w_b$ over the outputs reading both input pixels $i$ and $j$):", "",
                    "$$", f"{gram_tex} = {sympy.latex(self.gram, mat_delim='[')}", "$$", ""]
            diagonal = [self.gram[i, i] for i in range(self.gram.shape[0])]
            out += ["Its diagonal, entry by entry: "
                    + ", ".join(f"${sympy.latex(d)}$" for d in diagonal[:9])
                    + (", …" if len(diagonal) > 9 else "") + ".", ""]
        out += [f"The diagonal of ${gram_tex}$ with this layer's weights, per input pixel, and "
                "the reads per input pixel (how many outputs read it; the two coincide when "
                "every matrix entry is 1, as in one layer with all-ones weights):", "",
                "```text", "diagonal:",
                _grid(self.gram_diagonal, shape), "reads:", _grid(self.reads, shape), "```", "",
                f"Through the layer and back through its transpose, ${gram_tex}\\,x$ is not "
                f"$x$:", "", "```text", "x:", _grid(self.x, shape),
                f"{gram_text} x:",
                _grid(self.gram_x, shape), "```", ""]
        if self.nullspace:
            out += [f"A basis of the null space of ${tex}$ (exact; every such input gives the "
                    f"output 0, so nothing can tell $x$ from $x + v$):", "", "```text"]
            out += [_grid(v, shape) + ("\n" if n + 1 < len(self.nullspace) else "")
                    for n, v in enumerate(self.nullspace)]
            out += ["```", ""]
        solved = self.exact_x if self.exact_x is not None else self.lsqr_x
        lsqr = "LSQR (`scipy.sparse.linalg.lsqr` on the sparse matrix)"
        how = (f"{lsqr}, 4 decimals" if self.exact_x is None else
               f"exact rational arithmetic (SymPy); {lsqr} "
               + ("agrees to " if self.lsqr_matches_exact else "DIFFERS by more than ")
               + f"{RECOVERY_TOLERANCE:g}")
        plus = "(C^T)^+" if name == "Cᵀ" else "C^+"
        out += [f"The least-squares inverse $\\hat x = {plus} ({tex} x)$, in {how}:", "",
                "```text", _grid(solved, shape), "```", "",
                f"Relative error $\\lVert \\hat x - x \\rVert / \\lVert x \\rVert$: "
                f"{_error_text(self.recovery_error)}."]
        return "\n".join(out)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def transpose_vs_inverse(layer: AffineMap, x: Any = None, *, seed: int | None = None
                         ) -> InverseAnalysis:
    """Compare a layer's transpose with its (least-squares) inverse.

    Parameters
    ----------
    layer : AffineMap
        Any layer object; its linear part ``C`` is analysed (at most 4,000,000 matrix
        entries: the rank needs the singular values of the dense matrix).
    x : array_like, optional
        An input sample (shape ``layer.input_shape``). Default: a generic one, integers
        −9…9 from ``numpy.random.default_rng(DEFAULT_SEED)`` (:data:`DEFAULT_SEED` = 0), so
        that "recovers x" means what it says (all ones lies in the row space of many
        rank-deficient layers). Recovering one ``x`` is not invertibility: see ``rank``.
    seed : int, optional
        Instead of ``x``: a random standard-normal input from this seed.

    Returns
    -------
    InverseAnalysis

    Raises
    ------
    ConvMatrixError
        A matrix too large for the dense rank, or an ``x`` of the wrong shape.

    Notes
    -----
    LSQR started from zero converges to the minimum-norm least-squares solution
    ``C⁺ y``; with ``y = C x`` that is ``x`` minus its component in the null space of ``C``,
    so it equals ``x`` for every ``x`` exactly when ``rank C = n``.

    When all weights of a convolution are equal and a group has more than one channel on a
    side, the channels are identical copies and the rank loss comes from the weights; the
    analysis then also gives the rank of the same geometry with random weights
    (``random_weight_rank``) and says so in its text.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.ones((1, 1, 2, 2), dtype=int), (1, 3, 3))    # the seed's Conv2D
    >>> analysis = transpose_vs_inverse(conv)
    >>> analysis.rows, analysis.columns, analysis.rank, analysis.lost_dimensions
    (4, 9, 4, 5)
    >>> ones = transpose_vs_inverse(conv, np.ones((1, 3, 3)))
    >>> ones.gram_x.reshape(3, 3)                           # CᵀC x for x = ones: not x
    array([[ 4.,  8.,  4.],
           [ 8., 16.,  8.],
           [ 4.,  8.,  4.]])
    >>> analysis.recovered, transpose_vs_inverse(conv.T).recovered
    (False, True)
    """
    rows, columns = layer.matrix_shape
    if rows * columns > MAX_DENSE_ENTRIES:
        raise ConvMatrixError(
            f"`layer` {layer!r} has a {rows}×{columns} matrix ({rows * columns:,} entries); the "
            f"rank needs the dense matrix, allowed up to {MAX_DENSE_ENTRIES:,} entries")
    if x is not None and seed is not None:
        raise ConvMatrixError("give `x` or `seed`, not both")
    if x is None:
        sample = (np.random.default_rng(DEFAULT_SEED).integers(-9, 10, columns).astype(np.float64)
                  if seed is None else np.random.default_rng(seed).standard_normal(columns))
    else:
        array = np.asarray(x)
        if array.shape != layer.input_shape or array.dtype.kind not in "biuf":
            raise ConvMatrixError(f"`x` has shape {array.shape} and dtype {array.dtype}; it must "
                                  f"be a real array of shape {layer.input_shape}")
        sample = array.astype(np.float64).ravel()
    matrix = sp.csr_array(layer.matrix())
    if matrix.dtype.kind == "c":
        raise ConvMatrixError(f"`layer` {layer!r} has a complex matrix; the analysis is for "
                              f"real layers")
    real = matrix.astype(np.float64)
    rank = int(np.linalg.matrix_rank(real.toarray())) if rows and columns else 0
    y = real @ sample
    solution = spla.lsqr(real, y, atol=1e-15, btol=1e-15, conlim=1e16,
                         iter_lim=max(100, 10 * columns))
    pattern = real.copy()
    pattern.data = np.ones_like(pattern.data)  # stored entries: zero weights still read
    gram, nullspace, exact = _exact_parts(layer, matrix, sample)
    return InverseAnalysis(
        layer=layer, rows=rows, columns=columns, rank=rank, x=sample,
        gram_diagonal=np.asarray((real.multiply(real)).sum(axis=0)).ravel(),
        reads=np.asarray(pattern.sum(axis=0)).ravel().astype(np.int64),
        gram_x=real.T @ y, lsqr_x=solution[0], lsqr_iterations=int(solution[2]),
        exact_x=exact, gram=gram, nullspace=nullspace,
        random_weight_rank=_random_weight_rank(layer))


def _random_weight_rank(layer: AffineMap) -> int | None:
    """The rank with random weights, for a convolution whose equal weights copy channels."""
    view = layer.conv_view()
    if view is None:
        return None
    weight = np.asarray(view.weight)
    spec = view.spec
    per_group = (spec.out_channels // spec.groups, spec.in_channels // spec.groups)
    if (not weight.size or not weight.flat[0] or not np.all(weight == weight.flat[0])
            or max(per_group) == 1):
        return None
    from convmatrix.builder.sparse import spec_matrix

    random = np.random.default_rng(DEFAULT_SEED).standard_normal(weight.shape)
    dense = spec_matrix(spec, random, direction=view.direction).toarray()
    return int(np.linalg.matrix_rank(dense)) if dense.size else 0


def _exact_parts(layer: AffineMap, matrix: sp.csr_array, x: np.ndarray
                 ) -> tuple[Any, tuple[tuple[Any, ...], ...] | None, tuple[Any, ...] | None]:
    """Symbolic ``CᵀC``, exact null space and exact ``C⁺ C x`` for small layers."""
    rows, columns = matrix.shape
    if rows * columns > MAX_EXACT_ENTRIES:
        return None, None, None
    import sympy

    gram = _symbolic_gram(layer) if columns <= MAX_GRAM_COLUMNS else None
    integral = (matrix.dtype.kind in "biu"
                or bool(np.all(np.asarray(matrix.data) == np.round(matrix.data))))
    if not integral:
        return gram, None, None
    dense = sympy.Matrix(matrix.toarray().astype(np.int64).tolist())
    basis = tuple(tuple(v) for v in dense.nullspace())
    nullspace = tuple(tuple(sympy.Rational(e) * _denominator_lcm(v) for e in v) for v in basis)
    exact = None
    if np.all(x == np.round(x)):
        xs = sympy.Matrix([int(v) for v in x])
        exact = tuple(dense.pinv() * (dense * xs))
    return gram, nullspace, exact


def _denominator_lcm(vector: tuple[Any, ...]) -> Any:
    """The factor that makes a rational vector integral (for a readable null-space basis)."""
    import sympy

    return sympy.ilcm(*[sympy.Rational(e).q for e in vector], 1)


def _plain_conv(layer: AffineMap) -> ConvView | None:
    """The layer's conv view when it is exactly ``C`` or ``Cᵀ`` of a zero-padded convolution.

    Channels first and zero padding: a torch ``Conv``/``ConvTranspose`` (or the same
    convolution under another name); None otherwise.
    """
    view = layer.conv_view()
    if view is None or view.layout != "channels_first" or view.spec.padding_mode != "zeros":
        return None
    return view


def _transposed_conv(layer: AffineMap) -> bool:
    view = _plain_conv(layer)
    return view is not None and view.direction == "adjoint"


def _symbolic_gram(layer: AffineMap) -> Any:
    """``CᵀC`` in weight symbols for a convolution layer (None for other kinds)."""
    view = layer.conv_view()
    if view is None or view.layout != "channels_first":
        return None
    import sympy

    from convmatrix.symbolic.matrices import spec_entries

    rows, columns = layer.matrix_shape
    symbolic = sympy.SparseMatrix(rows, columns, spec_entries(view.spec, direction=view.direction))
    return (symbolic.T * symbolic).applyfunc(sympy.expand)
