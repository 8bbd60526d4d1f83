"""Every output of a convolution or transposed convolution as an explicit sum of w·x products."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import cmp_to_key
from typing import Any

import numpy as np
import sympy
from sympy.core.basic import Basic

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.spec import ConvSpec
from convmatrix.geometry.view import check_direction
from convmatrix.symbolic._guard import (
    DEFAULT_MAX_TERMS,
    check_terms,
    layer_terms,
    row_terms_bound,
)
from convmatrix.symbolic._layers import LazySymbols, as_object_array, layer_spec
from convmatrix.symbolic._rows import rows_entries
from convmatrix.typing import Direction

__all__ = ["conv_outputs", "conv_transpose_outputs", "layer_outputs", "spec_outputs"]


def layer_outputs(weight_shape: Sequence[int], input_shape: Sequence[int], *,
                  direction: Direction = "forward", weight: Any = None, x: Any = None,
                  positions: Sequence[int] | None = None,
                  max_terms: int | None = DEFAULT_MAX_TERMS,
                  **geometry: Any) -> np.ndarray:
    """Outputs as a flat object array (all, or only the flat ``positions`` asked for)."""
    spec = layer_spec(weight_shape, input_shape, direction, geometry)
    return spec_outputs(spec, direction=direction, weight=weight, x=x, positions=positions,
                        max_terms=max_terms)


def spec_outputs(spec: ConvSpec, *, direction: Direction = "forward", weight: Any = None,
                 x: Any = None, positions: Sequence[int] | None = None,
                 max_terms: int | None = DEFAULT_MAX_TERMS) -> np.ndarray:
    """:func:`layer_outputs` for a forward spec (``direction="adjoint"``: its transpose's).

    One ``w·x`` term per stored matrix entry and tap, computed row by row from the index
    arithmetic: the work grows with the non-zeros of the rows asked for, never with a dense matrix.
    Refused (:class:`~convmatrix.ConvMatrixError`) before any work when the outputs or their
    terms exceed ``max_terms``.
    """
    transpose = check_direction(direction) == "adjoint"
    in_shape, out_shape = ((spec.output_shape, spec.input_shape) if transpose
                           else (spec.input_shape, spec.output_shape))
    n_rows = math.prod(out_shape)
    what = f"{'the transposed convolution' if transpose else 'the convolution'} " \
        f"{'×'.join(map(str, in_shape))} → {'×'.join(map(str, out_shape))}"
    if positions is None:
        terms, exact = layer_terms(spec)
        check_terms(what, n_rows, terms, max_terms, exact=exact)
        rows: Sequence[int] = range(n_rows)
    else:
        check_terms(what, len(positions), len(positions) * row_terms_bound(spec, direction),
                    max_terms, exact=False)
        rows = [_position(v, n_rows) for v in positions]
    result = np.empty(len(rows), dtype=object)
    if weight is None and x is None:
        w, xs = LazySymbols("w", spec.weight_shape, 2), LazySymbols("x", in_shape, 1)
        result[:] = [_sum_of_symbol_products((w[i], xs[col]) for col, widx in entries
                                             for i in widx)
                     for entries in rows_entries(spec, direction, rows)]
        return result
    wv = (LazySymbols("w", spec.weight_shape, 2) if weight is None
          else as_object_array(weight, spec.weight_shape, "weight").ravel())
    xv = (LazySymbols("x", in_shape, 1) if x is None
          else as_object_array(x, in_shape, "x").ravel())
    result[:] = [sympy.Add(*(wv[i] * xv[col] for col, widx in entries for i in widx))
                 for entries in rows_entries(spec, direction, rows)]
    return result


def _position(value: Any, n_rows: int) -> int:
    position = int(value)
    if not 0 <= position < n_rows:
        raise ConvMatrixError(
            f"`positions` entry (={value!r}) must be a flat output index in [0, {n_rows})"
        )
    return position


_CANONICAL = cmp_to_key(Basic.compare)  # the key SymPy sorts the arguments of Add and Mul by


def _sum_of_symbol_products(pairs: Iterable[tuple[sympy.Symbol, sympy.Symbol]]) -> sympy.Expr:
    """``sympy.Add(*(a * b for a, b in pairs))`` for distinct products of distinct symbols.

    SymPy's general constructors spend most of their time looking for numbers, powers and
    like terms to collect; products of two different generated symbols, all different from
    each other, have none. So each product and the sum are put in SymPy's canonical argument
    order directly (the same expression, ``==`` and ``.args`` included, about ten times
    faster). Only for the generated weight and input symbols of a layer, whose products within
    one output are distinct by construction (one per matrix entry and tap).
    """
    terms = [sympy.Mul._from_args((a, b) if _CANONICAL(a) < _CANONICAL(b) else (b, a), True)
             for a, b in pairs]
    if len(terms) < 2:
        return terms[0] if terms else sympy.S.Zero
    terms.sort(key=_CANONICAL)
    return sympy.Add._from_args(terms, True)


def conv_outputs(weight_shape: Sequence[int], input_shape: Sequence[int], *,
                 weight: Any = None, x: Any = None, max_terms: int | None = DEFAULT_MAX_TERMS,
                 **geometry: Any) -> sympy.ImmutableDenseNDimArray:
    """Every output of a convolution as the explicit sum of its ``w·x`` products.

    Parameters
    ----------
    weight_shape : sequence of int
        ``(C_out, C_in // groups, *k)``.
    input_shape : sequence of int
        ``(C_in, *spatial)``.
    weight, x : array_like, optional
        Numbers or SymPy expressions in the layer's shapes; default the symbols ``w_{…}`` and
        ``x_{c,i,j}``.
    max_terms : int or None, optional
        Refuse, before any work, a layer with more outputs or ``w·x`` terms than this (default
        ``10**6``: about a minute and 200 MiB of SymPy objects, see
        ``benchmarks/bench_symbolic_guard.py``); None: no limit. The count is
        exact and closed-form (:meth:`convmatrix.ConvSpec.nnz_upper_bound`).
    **geometry
        ``stride``, ``padding``, ``dilation``, ``groups``, ``padding_mode``.

    Raises
    ------
    ConvMatrixError
        Invalid geometry, or more outputs or terms than ``max_terms``.

    Returns
    -------
    sympy.ImmutableDenseNDimArray, shape ``(C_out, *out)``

    Examples
    --------
    >>> y = conv_outputs((1, 1, 2, 2), (1, 3, 3))
    >>> y[0, 0, 0]
    w_{0,0}*x_{0,0} + w_{0,1}*x_{0,1} + w_{1,0}*x_{1,0} + w_{1,1}*x_{1,1}
    >>> conv_outputs((1, 1, 2, 2), (1, 3, 3), weight=[[[[1, 1], [1, 1]]]],
    ...              x=[[[1, 1, 1], [1, 1, 1], [1, 1, 1]]]).tolist()   # the seed
    [[[4, 4], [4, 4]]]
    """
    spec = layer_spec(weight_shape, input_shape, "forward", geometry)
    flat = spec_outputs(spec, weight=weight, x=x, max_terms=max_terms)
    return sympy.ImmutableDenseNDimArray(flat.tolist(), spec.output_shape)


def conv_transpose_outputs(weight_shape: Sequence[int], input_shape: Sequence[int], *,
                           weight: Any = None, x: Any = None,
                           max_terms: int | None = DEFAULT_MAX_TERMS,
                           **geometry: Any) -> sympy.ImmutableDenseNDimArray:
    """Every output of a transposed convolution as the explicit sum of its ``w·x`` products.

    Parameters
    ----------
    weight_shape : sequence of int
        ``(C_in, C_out // groups, *k)``.
    input_shape : sequence of int
        ``(C_in, *spatial)`` of the transposed layer's input.
    weight, x : array_like, optional
        Numbers or SymPy expressions; default symbols.
    max_terms : int or None, optional
        Refuse, before any work, a layer with more outputs or ``w·x`` terms than this (default
        ``10**6``); None: no limit.
    **geometry
        ``stride``, ``padding``, ``output_padding``, ``dilation``, ``groups``.

    Returns
    -------
    sympy.ImmutableDenseNDimArray, shape ``(C_out, *out)``

    Examples
    --------
    The seed's ``[[1, 2, 1], [2, 4, 2], [1, 2, 1]]``, explained: the middle output collects
    all four kernel taps, a corner only one.

    >>> y = conv_transpose_outputs((1, 1, 2, 2), (1, 2, 2))
    >>> y[0, 1, 1]
    w_{0,0}*x_{1,1} + w_{0,1}*x_{1,0} + w_{1,0}*x_{0,1} + w_{1,1}*x_{0,0}
    >>> y[0, 0, 0]
    w_{0,0}*x_{0,0}
    >>> ones = {s: 1 for s in y.free_symbols}
    >>> y.subs(ones).tolist()
    [[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]
    """
    spec = layer_spec(weight_shape, input_shape, "adjoint", geometry)
    flat = spec_outputs(spec, direction="adjoint", weight=weight, x=x, max_terms=max_terms)
    return sympy.ImmutableDenseNDimArray(flat.tolist(), spec.input_shape)
