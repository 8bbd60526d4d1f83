"""Deprecated: :mod:`convmatrix.symbolic.overlap` was split in 0.2.

The counts moved to :mod:`convmatrix.symbolic.counts`, the closed-form laws and the checkerboard
verdict to :mod:`convmatrix.symbolic.laws` (``Checkerboard`` is now ``CheckerboardLaw``,
``checkerboard`` ``checkerboard_law``, ``spec_checkerboard`` ``spec_checkerboard_law``). The old
names stay readable here for one release; reading one warns (``DeprecationWarning``).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

# old name -> (module, name there, the replacement named in the warning)
_MOVED: dict[str, tuple[str, str, str]] = {
    "AxisOverlap": ("laws", "AxisOverlap", "convmatrix.symbolic.laws.AxisOverlap"),
    "Checkerboard": ("laws", "CheckerboardLaw", "convmatrix.symbolic.laws.CheckerboardLaw"),
    "axis_overlap_counts": ("counts", "axis_overlap_counts",
                            "convmatrix.symbolic.counts.axis_overlap_counts"),
    "checkerboard": ("_deprecated", "checkerboard",
                     "convmatrix.symbolic.laws.checkerboard_law (direction= for transpose=)"),
    "interior_overlap_formula": ("laws", "interior_overlap_formula",
                                 "convmatrix.symbolic.laws.interior_overlap_formula"),
    "overlap_counts": ("counts", "overlap_counts", "convmatrix.symbolic.counts.overlap_counts"),
    "overlap_formula": ("laws", "overlap_formula", "convmatrix.symbolic.laws.overlap_formula"),
    "overlap_sum_formula": ("laws", "overlap_sum_formula",
                            "convmatrix.symbolic.laws.overlap_sum_formula"),
    "read_counts": ("counts", "read_counts", "convmatrix.symbolic.counts.read_counts"),
    "spec_checkerboard": ("_deprecated", "spec_checkerboard",
                          "convmatrix.symbolic.laws.spec_checkerboard_law (direction= for "
                          "transpose=)"),
}

__all__ = sorted(_MOVED)


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute, replacement = _MOVED[name]
    warnings.warn(f"convmatrix.symbolic.overlap.{name} is deprecated and will be removed in "
                  f"convmatrix 0.3 (the module was split into counts and laws); use "
                  f"{replacement}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(f"convmatrix.symbolic.{module}"), attribute)
