"""Hooks the top package fills before any layer module is imported (this module imports nothing).

``import convmatrix`` must stay cheap, so it cannot import :mod:`convmatrix.layers` just to
register the presenter; it puts the factory here and :mod:`convmatrix.layers.base` reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["presenter_factories"]

#: the presenter factory (at most one) that :func:`convmatrix.layers.base.get_presenter` calls;
#: :mod:`convmatrix.layers.base` shares this very list as its registry
presenter_factories: list[Callable[[], Any]] = []
