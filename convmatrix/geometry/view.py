"""The convolution behind a layer: one answer, given by each layer kind about itself.

Analyses (spectra, blocks, inverse, symbolic derivations, reports) ask a layer
:meth:`~convmatrix.layers.Layer.conv_view` instead of testing its class: a kind that is a
convolution, its adjoint or a re-indexed convolution (Keras' channels-last layout) answers
with a :class:`ConvView`; every other kind answers ``None``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any, Literal, overload

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.spec import ConvSpec
from convmatrix.typing import Direction, Layout

__all__ = ["ConvView", "check_direction", "direction_keyword", "flip"]

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


@overload
def direction_keyword(direction: Any, old: Any = None, *, old_name: str = ...,
                      name: str = ..., stacklevel: int = ...,
                      optional: Literal[False] = ...) -> Direction: ...


@overload
def direction_keyword(direction: Any, old: Any = None, *, old_name: str = ...,
                      name: str = ..., stacklevel: int = ...,
                      optional: bool) -> Direction | None: ...


def direction_keyword(direction: Any, old: Any = None, *, old_name: str = "transpose",
                      name: str = "direction", stacklevel: int = 3,
                      optional: bool = False) -> Direction | None:
    """``direction=``, with a deprecated boolean keyword (``transpose=``) mapped onto it.

    Parameters
    ----------
    direction : {"forward", "adjoint"} or None
        The new keyword's value (None only with ``optional``: no direction asked).
    old : bool or None, optional
        The deprecated keyword's value; None when it was not passed. ``True`` means
        ``"adjoint"``. Passing it warns (``DeprecationWarning``).
    old_name, name : str, optional
        The two keywords' names, for the messages.
    stacklevel : int, optional
        Of the warning: 3 points at the caller of the function that takes the keywords.
    optional : bool, optional
        Accept ``direction=None`` (and return it), e.g. "either direction" in a search.

    Returns
    -------
    {"forward", "adjoint"} or None

    Examples
    --------
    >>> direction_keyword("forward")
    'forward'
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     direction_keyword("forward", True)
    'adjoint'
    """
    if old is None:
        if optional and direction is None:
            return None
        return check_direction(direction, name)
    implied: Direction = "adjoint" if old else "forward"
    warnings.warn(
        f"`{old_name}=` is deprecated and will be removed in convmatrix 0.3; pass "
        f"`{name}={implied!r}` instead", DeprecationWarning, stacklevel=stacklevel)
    if not isinstance(old, (bool, np.bool_)):
        raise ConvMatrixError(f"`{old_name}` (={old!r}) must be a bool (deprecated: use "
                              f"`{name}='forward'` or `{name}='adjoint'`)")
    default = None if optional else "forward"
    if direction != default and check_direction(direction, name) != implied:
        raise ConvMatrixError(
            f"`{old_name}` (={old!r}) and `{name}` (={direction!r}) disagree; pass only "
            f"`{name}`")
    return implied


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
