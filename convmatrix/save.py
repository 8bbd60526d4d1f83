"""Deprecated alias of :mod:`convmatrix.analysis.save` (kept for one release)."""

from convmatrix._deprecated import alias_module

alias_module(__name__, "convmatrix.analysis.save")
