"""Symbolic derivations with SymPy, from the same index arithmetic as the numeric matrices.

``symbolic_conv_matrix`` / ``symbolic_conv_transpose_matrix`` give the matrices in weight
symbols, ``conv_outputs`` / ``conv_transpose_outputs`` every output as an explicit sum of ``w·x``
products, ``overlap_counts`` / ``read_counts`` the counted overlap
(:mod:`~convmatrix.symbolic.counts`), ``overlap_formula`` / ``interior_overlap_formula`` and
``checkerboard_law`` the overlap law (:mod:`~convmatrix.symbolic.laws`), ``conv_output_size`` /
``conv_transpose_output_size`` / ``RELATIONSHIPS`` / ``round_trip_*`` the shape arithmetic, and
``explain`` bundles it all into an object that renders as text, LaTeX and Markdown. The names
before 0.2 (``conv_matrix``, ``conv_transpose_matrix``, ``checkerboard``, ``Checkerboard``) still
work for one release, with a ``DeprecationWarning``.

Layer objects are read through their ``conv_view()`` hook; this package never imports
:mod:`convmatrix.layers`.

The formulas are written in the symbols ``n, k, s, p, d, a, j, t, p_before, p_after`` of
:mod:`convmatrix.symbolic.symbols`, importable from here (``from convmatrix.symbolic import k``)
and free of SymPy assumptions, so ``.subs({k: 3})`` works with them or with a user's own
``sympy.Symbol("k")``.

Conventions: weight symbols ``w_{…}`` index the layer's own weight array (``w_{o,i,ky,kx}`` is
``weight[o, i, ky, kx]`` of a convolution, ``(C_out, C_in/groups, *k)``; ``w_{i,o,ky,kx}`` is
``weight[i, o, ky, kx]`` of a transposed convolution, ``(C_in, C_out/groups, *k)``); input
symbols ``x_{c,i,j}`` index the layer's input (for a transposed layer too). Both channel
indices are left out when the layer has one channel on each side, the input channel when the
input has one.
"""

from typing import Any

from convmatrix.symbolic import symbols
from convmatrix.symbolic._layers import input_symbols, weight_symbols
from convmatrix.symbolic.arithmetic import (
    RELATIONSHIPS,
    check_relationships,
    conv_output_size,
    conv_transpose_output_size,
    round_trip_output_padding,
    round_trip_size,
    round_trip_sizes,
)
from convmatrix.symbolic.counts import overlap_counts, read_counts
from convmatrix.symbolic.explain import Explanation, explain, explain_spec
from convmatrix.symbolic.laws import (
    AxisOverlap,
    CheckerboardLaw,
    checkerboard_law,
    interior_overlap_formula,
    overlap_formula,
    overlap_sum_formula,
)
from convmatrix.symbolic.matrices import symbolic_conv_matrix, symbolic_conv_transpose_matrix
from convmatrix.symbolic.outputs import conv_outputs, conv_transpose_outputs
from convmatrix.symbolic.symbols import a, d, j, k, n, p, p_after, p_before, s, t

__all__ = [
    "RELATIONSHIPS",
    "AxisOverlap",
    "CheckerboardLaw",
    "Explanation",
    "a",
    "check_relationships",
    "checkerboard_law",
    "conv_output_size",
    "conv_outputs",
    "conv_transpose_output_size",
    "conv_transpose_outputs",
    "d",
    "explain",
    "explain_spec",
    "input_symbols",
    "interior_overlap_formula",
    "j",
    "k",
    "n",
    "overlap_counts",
    "overlap_formula",
    "overlap_sum_formula",
    "p",
    "p_after",
    "p_before",
    "read_counts",
    "round_trip_output_padding",
    "round_trip_size",
    "round_trip_sizes",
    "s",
    "symbolic_conv_matrix",
    "symbolic_conv_transpose_matrix",
    "symbols",
    "t",
    "weight_symbols",
]


def __getattr__(name: str) -> Any:
    """The names before 0.2 (``conv_matrix``, ``checkerboard``, ...), deprecated."""
    from convmatrix.symbolic._deprecated import renamed

    return renamed(__name__, name)
