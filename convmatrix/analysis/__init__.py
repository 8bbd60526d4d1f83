"""Analyses of affine maps: paths, checkerboard, transpose vs inverse, spectra, blocks, saving.

Nothing here imports :mod:`convmatrix.layers`: analyses take any
:class:`~convmatrix.geometry.view.AffineMap` and work on the hooks every layer kind provides
(``conv_view``, ``apply_forward``/``apply_adjoint``, ``chain``, ``layout``, ``path_matrix``,
``own_interior``, ``axis_steps``).

The free functions live in their modules and are re-exported here, except
:func:`convmatrix.analysis.checkerboard.checkerboard`, which would shadow its module's name
(``import convmatrix.analysis.checkerboard as m`` must give the module).
"""

from convmatrix.analysis.checkerboard import Checkerboard
from convmatrix.analysis.inverse import InverseAnalysis, transpose_vs_inverse
from convmatrix.analysis.paths import path_counts
from convmatrix.analysis.save import save_matrix
from convmatrix.analysis.spectra import (
    LipschitzBounds,
    lipschitz,
    operator_norm,
    operator_norm_bound,
    singular_values,
)

__all__ = [
    "Checkerboard",
    "InverseAnalysis",
    "LipschitzBounds",
    "lipschitz",
    "operator_norm",
    "operator_norm_bound",
    "path_counts",
    "save_matrix",
    "singular_values",
    "transpose_vs_inverse",
]
