"""Symbolic derivations with SymPy, from the same index table as the numeric matrices.

``conv_matrix`` / ``conv_transpose_matrix`` give the matrices in weight symbols,
``conv_outputs`` / ``conv_transpose_outputs`` every output as an explicit sum of ``w·x``
products, ``overlap_counts`` and ``checkerboard`` the overlap law, and ``explain`` bundles it
all into an object that renders as text, LaTeX and Markdown.
"""

from convmatrix.symbolic._layers import input_symbols, weight_symbols
from convmatrix.symbolic.arithmetic import (
    RELATIONSHIPS,
    check_relationships,
    conv_output_size,
    conv_transpose_output_size,
    round_trip_output_padding,
)
from convmatrix.symbolic.explain import Explanation, explain, explain_spec
from convmatrix.symbolic.matrices import conv_matrix, conv_transpose_matrix
from convmatrix.symbolic.outputs import conv_outputs, conv_transpose_outputs
from convmatrix.symbolic.overlap import (
    AxisOverlap,
    Checkerboard,
    checkerboard,
    overlap_counts,
    overlap_formula,
    overlap_sum_formula,
    read_counts,
)

__all__ = [
    "RELATIONSHIPS",
    "AxisOverlap",
    "Checkerboard",
    "Explanation",
    "check_relationships",
    "checkerboard",
    "conv_matrix",
    "conv_output_size",
    "conv_outputs",
    "conv_transpose_matrix",
    "conv_transpose_output_size",
    "conv_transpose_outputs",
    "explain",
    "explain_spec",
    "input_symbols",
    "overlap_counts",
    "overlap_formula",
    "overlap_sum_formula",
    "read_counts",
    "round_trip_output_padding",
    "weight_symbols",
]
