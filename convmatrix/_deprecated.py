"""Deprecated module paths: old deep imports keep working for one release, with a warning."""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["alias_module"]


class _CallableAlias(ModuleType):
    """A deprecated module path whose name is also a top-level function (``cm.checkerboard``).

    Importing ``convmatrix.checkerboard`` rebinds the attribute ``checkerboard`` of the
    ``convmatrix`` package to the imported module; this stand-in forwards every attribute to the
    new module *and* calls the function, so ``cm.checkerboard(layer)`` keeps working afterwards.
    """

    def __init__(self, name: str, module: ModuleType, function: Callable[..., Any]) -> None:
        super().__init__(name, module.__doc__)
        self._module = module
        self._function = function

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function(*args, **kwargs)


def alias_module(old: str, new: str, call: str | None = None) -> ModuleType:
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
    alias = module if call is None else _CallableAlias(old, module, getattr(module, call))
    sys.modules[old] = alias
    return alias
