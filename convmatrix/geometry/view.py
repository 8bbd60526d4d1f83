"""The convolution behind a layer: one answer, given by each layer kind about itself.

Analyses (spectra, blocks, inverse, symbolic derivations, reports) ask a layer
:meth:`~convmatrix.layers.Layer.conv_view` instead of testing its class: a kind that is a
convolution, its adjoint or a re-indexed convolution (Keras' channels-last layout) answers
with a :class:`ConvView`; every other kind answers ``None``.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, overload

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.spec import ConvSpec
from convmatrix.typing import Direction, Layout, SparseFormat

__all__ = ["AffineMap", "AxisSteps", "ConvView", "check_direction", "direction_keyword", "flip",
           "is_affine_map"]

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


#: What :meth:`AffineMap.axis_steps` returns: per spatial axis the list of lattice steps
#: (:class:`convmatrix.symbolic.composed.AxisStep`, in application order) or None where the
#: axis is no step, and the channel factor (channel paths multiplying the per-axis counts).
AxisSteps = tuple[list[list[Any] | None], int]


class AffineMap(Protocol):
    """What the analyses (:mod:`convmatrix.analysis`) ask of a layer: shapes, matrix, hooks.

    Every layer kind (:class:`convmatrix.layers.Layer` and its subclasses) is one; the
    analyses are typed against this protocol and never import a layer kind, so a new kind
    (a graph node, an ONNX operator) gets every analysis by implementing these hooks — most
    of them have defaults on :class:`~convmatrix.layers.Layer` derived from :meth:`matrix`
    and :meth:`conv_view`.

    The hooks:

    conv_view()
        The convolution behind the map (spec, weight, direction, layout), or None.
    apply_forward(batch), apply_adjoint(batch)
        The linear part and its adjoint on a batch ``(B, *input_shape)`` /
        ``(B, *output_shape)``, matrix-free where the kind can.
    chain()
        The factors, first applied first (a stack's layers, flattened); ``(self,)`` otherwise.
    layout
        How the map flattens its output samples (``"channels_first"`` / ``"channels_last"``).
    path_matrix()
        The matrix with every learnable weight 1 (int64 CSR): weight paths per entry.
    own_interior()
        Flat bool per output pixel: no border effect of this map itself reaches it.
    axis_steps()
        Per spatial axis the lattice steps of the checkerboard law, and the channel factor
        (:data:`AxisSteps`), or None when the map is no per-axis step.
    """

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample."""

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one output sample."""

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """``(∏output_shape, ∏input_shape)``."""

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of :meth:`matrix`."""

    @property
    def layout(self) -> Layout:
        """How samples are flattened: channels first or last."""

    @property
    def T(self) -> AffineMap:
        """The adjoint map (its matrix is the transpose)."""

    def matrix(self, format: SparseFormat = "csr", *,
               max_bytes: int | None = ...) -> sp.sparray:
        """The exact sparse matrix of the linear part."""

    def offset(self) -> np.ndarray:
        """The flat offset (bias) added after the matrix."""

    def conv_view(self) -> ConvView | None:
        """The convolution behind the map, or None."""

    def apply_forward(self, batch: np.ndarray) -> np.ndarray:
        """The linear part on a batch ``(B, *input_shape)``."""

    def apply_adjoint(self, batch: np.ndarray) -> np.ndarray:
        """The adjoint on a batch ``(B, *output_shape)``."""

    def chain(self) -> tuple[AffineMap, ...]:
        """The factors, first applied first (``(self,)`` unless a stack)."""

    def path_matrix(self) -> sp.csr_array:
        """The matrix with every learnable weight 1 (int64 CSR)."""

    def own_interior(self) -> np.ndarray:
        """Flat bool per output pixel: out of reach of this map's own borders."""

    def axis_steps(self) -> AxisSteps | None:
        """Per-axis lattice steps and the channel factor, or None."""


_HOOKS = ("input_shape", "output_shape", "matrix_shape", "matrix", "offset", "conv_view",
          "apply_forward", "apply_adjoint", "chain", "path_matrix", "own_interior",
          "axis_steps")


def is_affine_map(obj: Any) -> bool:
    """Whether ``obj``'s class provides the :class:`AffineMap` hooks.

    Checked statically (``inspect.getattr_static``), so no property is evaluated (``T``
    would build the adjoint).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> is_affine_map(cm.Conv(np.ones((1, 1, 2)), (1, 3))), is_affine_map(np.ones(3))
    (True, False)
    """
    missing = object()
    return all(inspect.getattr_static(obj, name, missing) is not missing for name in _HOOKS)
