"""Deprecated alias of :mod:`convmatrix.analysis.inverse` (kept for one release)."""

from convmatrix._deprecated import alias_module

alias_module(__name__, "convmatrix.analysis.inverse")
