"""Names of :mod:`convmatrix.symbolic` renamed in 0.2, kept for one release with a warning.

``sym.conv_matrix`` / ``sym.conv_transpose_matrix`` / ``sym.checkerboard`` shared their names with
:func:`convmatrix.conv_matrix` & co. (other signatures), and ``sym.Checkerboard`` with
:class:`convmatrix.analysis.checkerboard.Checkerboard`; they are now
:func:`~convmatrix.symbolic.symbolic_conv_matrix`,
:func:`~convmatrix.symbolic.symbolic_conv_transpose_matrix`,
:func:`~convmatrix.symbolic.checkerboard_law` and :class:`~convmatrix.symbolic.CheckerboardLaw`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from convmatrix.builder.sparse import DEFAULT_MAX_BYTES
from convmatrix.geometry.spec import ConvSpec
from convmatrix.symbolic._guard import DEFAULT_MAX_TERMS
from convmatrix.symbolic.laws import CheckerboardLaw, checkerboard_law, spec_checkerboard_law
from convmatrix.symbolic.matrices import symbolic_conv_matrix, symbolic_conv_transpose_matrix

__all__ = ["RENAMED", "checkerboard", "renamed", "spec_checkerboard"]


def checkerboard(weight_shape: Any, input_shape: Sequence[int] | None = None,
                 transpose: bool = True, *, max_terms: int | None = DEFAULT_MAX_TERMS,
                 max_bytes: int | None = DEFAULT_MAX_BYTES, **geometry: Any) -> CheckerboardLaw:
    """Deprecated: :func:`~convmatrix.symbolic.checkerboard_law`.

    ``transpose=False`` is ``direction="forward"``.
    """
    return checkerboard_law(weight_shape, input_shape,
                            direction="adjoint" if transpose else "forward",
                            max_terms=max_terms, max_bytes=max_bytes, **geometry)


def spec_checkerboard(spec: ConvSpec, transpose: bool = True) -> CheckerboardLaw:
    """Deprecated: :func:`~convmatrix.symbolic.laws.spec_checkerboard_law`."""
    return spec_checkerboard_law(spec, direction="adjoint" if transpose else "forward")


#: old name -> (new name, the object the old name now gives)
RENAMED: dict[str, tuple[str, Any]] = {
    "conv_matrix": ("symbolic_conv_matrix", symbolic_conv_matrix),
    "conv_transpose_matrix": ("symbolic_conv_transpose_matrix", symbolic_conv_transpose_matrix),
    "checkerboard": ("checkerboard_law", checkerboard),
    "Checkerboard": ("CheckerboardLaw", CheckerboardLaw),
}


def renamed(module: str, name: str, stacklevel: int = 3) -> Any:
    """The object behind the old ``module.name``, with a :class:`DeprecationWarning`.

    Raises :class:`AttributeError` for any other name (so ``from module import submodule``
    still falls back to importing the submodule).
    """
    if name not in RENAMED:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new, value = RENAMED[name]
    warnings.warn(f"{module}.{name} is deprecated and will be removed in convmatrix 0.3; use "
                  f"{module}.{new} instead", DeprecationWarning, stacklevel=stacklevel)
    return value
