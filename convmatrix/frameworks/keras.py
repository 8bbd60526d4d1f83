"""Deprecated alias of :mod:`convmatrix.adapters.keras` (kept for one release)."""

from convmatrix._deprecated import alias_module

alias_module(__name__, "convmatrix.adapters.keras")
