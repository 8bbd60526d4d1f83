"""Deprecated alias of :mod:`convmatrix.builder.sparse` (kept for one release)."""

from convmatrix._deprecated import alias_module

alias_module(__name__, "convmatrix.builder.sparse")
