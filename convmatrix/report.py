"""Deprecated alias of :mod:`convmatrix.reports.layer` (kept for one release)."""

from convmatrix._deprecated import alias_module

alias_module(__name__, "convmatrix.reports.layer")
