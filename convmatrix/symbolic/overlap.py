"""Deprecated: :mod:`convmatrix.symbolic.overlap` was split in 0.2.

The counts moved to :mod:`convmatrix.symbolic.counts`, the closed-form laws and the checkerboard
verdict to :mod:`convmatrix.symbolic.laws` (``Checkerboard`` is now ``CheckerboardLaw``,
``checkerboard`` ``checkerboard_law``, ``spec_checkerboard`` ``spec_checkerboard_law``). This
module re-exports the old names for one release and warns when imported.
"""

from __future__ import annotations

import warnings

from convmatrix.symbolic._deprecated import checkerboard, spec_checkerboard
from convmatrix.symbolic.counts import axis_overlap_counts, overlap_counts, read_counts
from convmatrix.symbolic.laws import (
    AxisOverlap,
    interior_overlap_formula,
    overlap_formula,
    overlap_sum_formula,
)
from convmatrix.symbolic.laws import CheckerboardLaw as Checkerboard

__all__ = [
    "AxisOverlap",
    "Checkerboard",
    "axis_overlap_counts",
    "checkerboard",
    "interior_overlap_formula",
    "overlap_counts",
    "overlap_formula",
    "overlap_sum_formula",
    "read_counts",
    "spec_checkerboard",
]

warnings.warn(
    "convmatrix.symbolic.overlap is deprecated and will be removed in convmatrix 0.3; import "
    "convmatrix.symbolic.counts (overlap counts) or convmatrix.symbolic.laws (overlap laws, "
    "CheckerboardLaw) instead",
    DeprecationWarning,
    stacklevel=2,
)
