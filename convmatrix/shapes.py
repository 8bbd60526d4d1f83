"""Deprecated alias of :mod:`convmatrix.geometry.shapes` (kept for one release)."""

from convmatrix._deprecated import alias_module

alias_module(__name__, "convmatrix.geometry.shapes")
