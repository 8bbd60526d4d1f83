"""SymPy sparse matrices of a convolution and its transpose, entries in weight symbols."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import sympy

from convmatrix.geometry.spec import ConvSpec
from convmatrix.geometry.view import check_direction
from convmatrix.symbolic._guard import DEFAULT_MAX_TERMS, check_terms, layer_terms
from convmatrix.symbolic._layers import LazySymbols, as_object_array, layer_spec
from convmatrix.symbolic._rows import rows_entries
from convmatrix.typing import Direction

__all__ = [
    "matrix_entries",
    "spec_entries",
    "symbolic_conv_matrix",
    "symbolic_conv_transpose_matrix",
]


def matrix_entries(weight_shape: Sequence[int], input_shape: Sequence[int], *,
                   direction: Direction = "forward", weight: Any = None,
                   max_terms: int | None = DEFAULT_MAX_TERMS,
                   **geometry: Any) -> dict[tuple[int, int], sympy.Expr]:
    """Non-zero entries ``{(row, col): expr}`` of the layer's matrix (``C`` or ``Cᵀ``)."""
    spec = layer_spec(weight_shape, input_shape, direction, geometry)
    return spec_entries(spec, direction=direction, weight=weight, max_terms=max_terms)


def spec_entries(spec: ConvSpec, *, direction: Direction = "forward", weight: Any = None,
                 max_terms: int | None = DEFAULT_MAX_TERMS) -> dict[tuple[int, int], sympy.Expr]:
    """:func:`matrix_entries` for a forward spec (``direction="adjoint"``: the entries of ``Cᵀ``).

    Built from the same index arithmetic as the numeric matrices; one Python step per stored entry,
    never a dense matrix. Refused (:class:`~convmatrix.ConvMatrixError`) before any work when
    the rows or the weight terms of the entries exceed ``max_terms``.
    """
    transpose = check_direction(direction) == "adjoint"
    rows = spec.matrix_shape[1] if transpose else spec.matrix_shape[0]
    terms, exact = layer_terms(spec)
    shape = (rows, spec.matrix_shape[0] if transpose else spec.matrix_shape[1])
    check_terms(f"the symbolic matrix {'Cᵀ' if transpose else 'C'} {shape[0]}×{shape[1]}",
                rows, terms, max_terms, exact=exact, noun="rows")
    w = (LazySymbols("w", spec.weight_shape, 2) if weight is None
         else as_object_array(weight, spec.weight_shape, "weight").ravel())
    return {(row, col): sympy.Add(*(w[i] for i in widx))
            for row, entries in enumerate(rows_entries(spec, direction, range(rows)))
            for col, widx in entries}


def _sparse(entries: dict[tuple[int, int], sympy.Expr], shape: tuple[int, int]
            ) -> sympy.SparseMatrix:
    # mutable on purpose: SymPy's immutable sparse matrix sorts every entry into a hashable
    # Dict on creation, 30× the cost of building the entries (``.as_immutable()`` on demand)
    return sympy.SparseMatrix(shape[0], shape[1], entries)


def symbolic_conv_matrix(weight_shape: Sequence[int], input_shape: Sequence[int], *,
                         weight: Any = None, max_terms: int | None = DEFAULT_MAX_TERMS,
                         **geometry: Any) -> sympy.SparseMatrix:
    """Symbolic ``C`` of a convolution: ``C @ x.ravel()`` is the convolution (torch semantics).

    The symbolic counterpart of :func:`convmatrix.conv_matrix` (which takes the weight's
    numbers and returns a scipy.sparse array); called ``conv_matrix`` before 0.2.

    Parameters
    ----------
    weight_shape : sequence of int
        ``(C_out, C_in // groups, *k)``.
    input_shape : sequence of int
        One sample, ``(C_in, *spatial)``.
    weight : array_like, optional
        Numbers or SymPy expressions in ``weight_shape``; default the symbols of
        :func:`~convmatrix.symbolic.weight_symbols`.
    max_terms : int or None, optional
        Refuse, before any work, a matrix with more rows or weight terms than this (default
        ``10**6``: about a minute and 200 MiB of SymPy objects, see
        ``benchmarks/bench_symbolic_guard.py``); None: no limit.
    **geometry
        ``stride``, ``padding``, ``dilation``, ``groups``, ``padding_mode`` as in
        :func:`convmatrix.conv_matrix`.

    Returns
    -------
    sympy.SparseMatrix, shape ``(C_out·∏out, C_in·∏in)``
        Only the stored entries are held (one per connection, in weight symbols);
        ``.as_immutable()`` makes it hashable.

    Examples
    --------
    >>> symbolic_conv_matrix((1, 1, 2), (1, 3))
    Matrix([
    [w_{0}, w_{1},     0],
    [    0, w_{0}, w_{1}]])
    >>> symbolic_conv_matrix((1, 1, 3), (1, 2), padding=1, padding_mode="reflect")
    Matrix([
    [        w_{1}, w_{0} + w_{2}],
    [w_{0} + w_{2},         w_{1}]])
    """
    spec = layer_spec(weight_shape, input_shape, "forward", geometry)
    return _sparse(spec_entries(spec, weight=weight, max_terms=max_terms), spec.matrix_shape)


def symbolic_conv_transpose_matrix(weight_shape: Sequence[int], input_shape: Sequence[int], *,
                                   weight: Any = None, max_terms: int | None = DEFAULT_MAX_TERMS,
                                   **geometry: Any) -> sympy.SparseMatrix:
    """Symbolic ``Cᵀ`` of a transposed convolution (torch ``conv_transposeNd`` semantics).

    The symbolic counterpart of :func:`convmatrix.conv_transpose_matrix`; called
    ``conv_transpose_matrix`` before 0.2.

    Parameters
    ----------
    weight_shape : sequence of int
        ``(C_in, C_out // groups, *k)``.
    input_shape : sequence of int
        One sample of the transposed layer's input, ``(C_in, *spatial)``.
    weight : array_like, optional
        Numbers or SymPy expressions in ``weight_shape``; default symbols ``w_{i,o,ky,kx}``.
    max_terms : int or None, optional
        Refuse, before any work, a matrix with more rows or weight terms than this (default
        ``10**6``); None: no limit.
    **geometry
        ``stride``, ``padding``, ``output_padding``, ``dilation``, ``groups``.

    Returns
    -------
    sympy.SparseMatrix, shape ``(C_out·∏out, C_in·∏in)``
        Only the stored entries are held (one per connection, in weight symbols);
        ``.as_immutable()`` makes it hashable.

    Examples
    --------
    The seed: every column is the 2×2 kernel placed at one input pixel.

    >>> symbolic_conv_transpose_matrix((1, 1, 2, 2), (1, 2, 2))[:, 0].T
    Matrix([[w_{0,0}, w_{0,1}, 0, w_{1,0}, w_{1,1}, 0, 0, 0, 0]])
    """
    spec = layer_spec(weight_shape, input_shape, "adjoint", geometry)
    shape = spec.matrix_shape
    return _sparse(spec_entries(spec, direction="adjoint", weight=weight, max_terms=max_terms),
                   (shape[1], shape[0]))


_RENAMED = {"conv_matrix": "symbolic_conv_matrix",
            "conv_transpose_matrix": "symbolic_conv_transpose_matrix"}


def __getattr__(name: str) -> Any:
    """The names before 0.2 (``conv_matrix``, ``conv_transpose_matrix``), deprecated."""
    if name not in _RENAMED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"{__name__}.{name} is deprecated and will be removed in convmatrix 0.3; use "
                  f"{__name__}.{_RENAMED[name]} instead", DeprecationWarning, stacklevel=2)
    return globals()[_RENAMED[name]]
