"""Deprecated alias of :mod:`convmatrix.build.budget` (kept for one release)."""

from convmatrix._deprecated import alias_module

alias_module(__name__, "convmatrix.build.budget")
