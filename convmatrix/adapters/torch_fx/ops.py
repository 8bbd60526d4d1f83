"""The torch.fx translator tables: operation name (or module class) → translator.

One table per family of operations lives next to its translators
(:mod:`~convmatrix.adapters.torch_fx.ops_arithmetic`, ``ops_shape``, ``ops_split``,
``ops_select``, ``ops_layers``, ``ops_linear``); this module merges them.
"""

from __future__ import annotations

from convmatrix.adapters.torch_fx import (
    ops_arithmetic,
    ops_layers,
    ops_linear,
    ops_select,
    ops_shape,
    ops_split,
)
from convmatrix.adapters.torch_fx.call import Translator

__all__ = ["FX_MODULE_TRANSLATORS", "FX_TRANSLATORS"]

FX_TRANSLATORS: dict[str, Translator] = {
    **ops_arithmetic.TRANSLATORS, **ops_split.TRANSLATORS, **ops_select.TRANSLATORS,
    **ops_shape.TRANSLATORS, **ops_layers.TRANSLATORS, **ops_linear.TRANSLATORS,
}
"""Operation name → translator (see :class:`~convmatrix.adapters.torch_fx.call.FxCall` for the
name: a function's or method's ``__name__``, an ``aten`` operator's base name, in-place forms
without the ``_``)."""

FX_MODULE_TRANSLATORS: dict[str, Translator] = {
    **ops_linear.MODULE_TRANSLATORS, **ops_shape.MODULE_TRANSLATORS,
    **ops_layers.MODULE_TRANSLATORS,
}
"""Module class name → translator, for modules the module reader does not read (their
functional form: ``nn.Linear`` as ``F.linear``, ``nn.AdaptiveAvgPool2d`` as its function)."""
