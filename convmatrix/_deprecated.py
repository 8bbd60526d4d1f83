"""Deprecated module paths: old deep imports keep working for one release, with a warning."""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType

__all__ = ["alias_module"]


def alias_module(old: str, new: str) -> ModuleType:
    """Make the module named ``old`` an alias of ``new`` and warn that it moved.

    ``sys.modules[old]`` becomes the new module itself, so attribute access, ``from old
    import name`` and monkeypatching behave exactly as on the new path.

    Parameters
    ----------
    old, new : str
        Dotted module names.

    Returns
    -------
    types.ModuleType
        The module ``new``.
    """
    warnings.warn(
        f"{old} is deprecated and will be removed in convmatrix 0.3; import {new} instead",
        DeprecationWarning,
        stacklevel=3,
    )
    module = importlib.import_module(new)
    sys.modules[old] = module
    return module
