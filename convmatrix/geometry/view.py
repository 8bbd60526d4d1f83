"""The convolution behind a layer: one answer, given by each layer kind about itself.

Analyses (spectra, blocks, inverse, symbolic derivations, reports) ask a layer
:meth:`~convmatrix.layers.Layer.conv_view` instead of testing its class: a kind that is a
convolution, its adjoint or a re-indexed convolution (Keras' channels-last layout) answers
with a :class:`ConvView`; every other kind answers ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.spec import ConvSpec
from convmatrix.typing import Direction, Layout

__all__ = ["ConvView", "check_direction", "flip"]

_DIRECTIONS: tuple[Direction, ...] = ("forward", "adjoint")


def check_direction(direction: Any, name: str = "direction") -> Direction:
    """Validate a direction literal.

    Parameters
    ----------
    direction : {"forward", "adjoint"}
        ``"forward"`` is the convolution ``C``, ``"adjoint"`` its transpose ``Cᵀ``.
    name : str, optional
        The parameter's name in the error message.

    Returns
    -------
    {"forward", "adjoint"}

    Examples
    --------
    >>> check_direction("adjoint")
    'adjoint'
    >>> check_direction(True)
    Traceback (most recent call last):
    ...
    convmatrix._errors.ConvMatrixError: `direction` (=True) must be 'forward' or 'adjoint'
    """
    if isinstance(direction, str) and direction in _DIRECTIONS:
        return direction  # type: ignore[return-value]
    raise ConvMatrixError(f"`{name}` (={direction!r}) must be 'forward' or 'adjoint'")


def flip(direction: Direction) -> Direction:
    """The other direction: ``"forward"`` ↔ ``"adjoint"``.

    Examples
    --------
    >>> flip("forward")
    'adjoint'
    """
    return "adjoint" if direction == "forward" else "forward"


@dataclass(frozen=True)
class ConvView:
    """A layer seen as a convolution: its matrix is ``C`` or ``Cᵀ`` of ``spec`` and ``weight``.

    Attributes
    ----------
    spec : ConvSpec
        The *forward* convolution's geometry (a transposed convolution is the adjoint of it).
    weight : ndarray
        The forward convolution's weight, torch layout ``(C_out, C_in // groups, *k)``.
    direction : {"forward", "adjoint"}
        ``"forward"``: the layer's matrix is ``C``; ``"adjoint"``: it is ``Cᵀ``.
    title : str
        What the layer is called in explanations (``"Conv2d"``, ``"Conv2DTranspose"``,
        ``"Adjoint of Conv2d"``).
    layout : {"channels_first", "channels_last"}
        How the layer flattens its samples. ``"channels_last"``: its matrix is ``C`` (or
        ``Cᵀ``) with rows and columns permuted from channels-first to channels-last order.
    """

    spec: ConvSpec
    weight: np.ndarray
    direction: Direction
    title: str
    layout: Layout = "channels_first"

    def adjoint(self) -> ConvView:
        """The view of the adjoint map (same convolution, other direction)."""
        return replace(self, direction=flip(self.direction), title=f"Adjoint of {self.title}")
