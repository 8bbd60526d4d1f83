"""Deprecated alias of :mod:`convmatrix.cli.norm` (kept for one release)."""

from convmatrix._deprecated import alias_module

alias_module(__name__, "convmatrix.cli.norm")
