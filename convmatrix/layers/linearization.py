"""A network linearised at a point: its exact Jacobian as a layer, with what it knows about x.

:func:`convmatrix.linearize` (the adapters) reads a framework model at a point ``x`` into a
:class:`Linearization`: the tangent map ``h ↦ J h + (f(x) − J x)`` as a layer object (its
factors: the model's linear layers and the Jacobian kinds of its non-linearities), plus one
:class:`Site` per non-linearity — how many units are on, off, or on a kink, which pooled
inputs won, which derivative convention decided the kinks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp

from convmatrix.builder.sparse import SparseFormat
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers.base import Layer

if TYPE_CHECKING:
    from convmatrix.layers.sequential import ProductPlan

__all__ = ["Factor", "Linearization", "Site", "SiteKind", "constant_after"]

SiteKind = Literal["activation", "selection", "normalization", "constant", "product"]
"""What a non-linearity is: an element-wise ``activation`` (a diagonal Jacobian), a
``selection`` (max pooling: a 0/1 matrix), a ``normalization`` by the input's own
statistics (dense within each group), or a ``constant``: a value the framework's autograd
does not differentiate (torch's ``x.detach()``: a zero Jacobian, its value the offset), or a
``product`` of two branches (ONNX ``Mul``/``Div``, torch ``a * b``, ``a / b``, ``F.glu``: one
diagonal per branch; not piecewise linear, and no global Lipschitz constant, so the product bound
is infinite)."""


@dataclass(frozen=True)
class Site:
    """One non-linear operation of a linearised network, at the point.

    Attributes
    ----------
    name : str
        Where it is: the module's path in the model (``"features.1"``) or the graph node.
    op : str
        What it is: ``"ReLU"``, ``"MaxPool2d"``, ``"F.gelu"``, ``"GroupNorm"``, ...
    kind : SiteKind
    shape : tuple of int
        Its input's shape (one sample).
    on, off : int
        Activations: units whose derivative at the point is non-zero / zero (for a ReLU,
        units passing / blocked). Selections: outputs (windows), and the inputs no window
        picked. Normalisations: the units, and 0.
    kinks : int
        Units exactly on a kink of a piecewise-linear activation, or windows whose maximum
        is tied: there the derivative is the framework's convention (:attr:`convention`).
        Kinks and ties among locally constant inputs (e.g. a window of zeros from switched-off
        ReLUs) change nothing near the point and are not counted.
    piecewise_linear : bool
        The operation is piecewise linear (ReLU, LeakyReLU, max pooling, ...), so the network
        equals its linearisation on a whole region around (or at the boundary of) the point.
    lipschitz : float
        The operation's global Lipschitz constant (ℓ2), for the product bound.
    local_norm : float
        The norm of its Jacobian at the point (``max |f'|`` for an activation).
    convention : str
        The derivative convention at kinks and ties (empty for smooth operations).
    """

    name: str
    op: str
    kind: SiteKind
    shape: tuple[int, ...]
    on: int
    off: int
    kinks: int
    piecewise_linear: bool
    lipschitz: float
    local_norm: float
    convention: str = ""

    @property
    def units(self) -> int:
        """The number of entries of the operation's input (one sample)."""
        return math.prod(self.shape)

    def pattern_text(self) -> str:
        """``"412 on, 100 off, 3 on a kink"`` (activations) or what the pooling picked."""
        if self.kind == "activation":
            text = f"{self.on} on, {self.off} off"
            return text + (f", {self.kinks} on a kink" if self.kinks else "")
        if self.kind == "selection":
            text = f"{self.on} windows pick {self.units - self.off} of {self.units} inputs"
            return text + (f", {self.kinks} tied" if self.kinks else "")
        if self.kind == "constant":
            return f"{self.units} units held constant (no derivative)"
        if self.kind == "product":
            return f"{self.units} units, a product of two branches (no global Lipschitz constant)"
        return f"{self.units} units, dense per group"


@dataclass(frozen=True)
class Factor:
    """One step of a linearised network's graph, for the product bound and the explanation.

    Attributes
    ----------
    name : str
        The step's name (unique); the network's input is ``"input"``.
    layer : Layer or None
        Its linear(ised) map on its one input; None for a sum or a concatenation.
    inputs : tuple of str
        The steps it reads.
    site : Site or None
        The non-linearity it linearises (None: a linear layer of the model).
    combine : {"layer", "sum", "cat"}
        ``"sum"``: ``Σ coefficients[i] · inputs[i]``; ``"cat"``: the inputs concatenated.
    coefficients : tuple of float
        For ``"sum"``.
    """

    name: str
    layer: Layer | None
    inputs: tuple[str, ...]
    site: Site | None = None
    combine: Literal["layer", "sum", "cat"] = "layer"
    coefficients: tuple[float, ...] = ()


class Linearization(Layer):
    """A network's tangent map at a point ``x``: matrix ``J = ∂f/∂x``, offset ``f(x) − J x``.

    Made by :func:`convmatrix.linearize`. It answers everything a layer answers (its matrix,
    offset, adjoint, matrix-free operator, norms) by delegating to :attr:`layer`, the
    composition of the model's linear layers and the Jacobian kinds of its non-linearities
    at ``x``; and it keeps what the point decided (:attr:`sites`: the activation pattern,
    the pooling winners, the kinks).

    For a piecewise-linear network (ReLU-like activations, max pooling, the linear layers)
    ``J x + offset == f(x)`` holds to rounding, and the network *is* this affine map on the
    whole region of inputs with the same activation pattern and the same pooling winners —
    an open region when :attr:`kinks` is 0, otherwise a closed one with x on its boundary
    (units on a kink count as the framework's derivative convention says).

    Parameters
    ----------
    layer : Layer
        The tangent map (e.g. a :class:`~convmatrix.Sequential`).
    x : ndarray
        The point (one sample, the framework's layout).
    value : ndarray
        ``f(x)``, as the framework computed it (float64).
    sites : sequence of Site
    factors : sequence of Factor
        The graph of the tangent map's steps, for the Lipschitz product bound.
    framework : str
        ``"torch"``, ``"keras"``, ...
    output : str, optional
        The factor whose value is the output (default: the last factor).

    Examples
    --------
    A ReLU at ``x = (−1, 2)`` by hand (the adapters build these from framework models):

    >>> import numpy as np
    >>> import convmatrix as cm
    >>> x = np.array([-1.0, 2.0])
    >>> relu = cm.Scale((2,), (x > 0).astype(float))
    >>> site = Site("relu", "ReLU", "activation", (2,), 1, 1, 0, True, 1.0, 1.0, "ReLU'(0) = 0")
    >>> lin = Linearization(relu, x, np.maximum(x, 0), [site], [Factor("relu", relu, ("input",),
    ...                     site)], "by hand")
    >>> lin
    Linearization(2 → 2, by hand, 1 non-linear site)
    >>> lin.matrix().toarray(), lin.piecewise_linear, lin.residual()
    (array([[0., 0.],
           [0., 1.]]), True, 0.0)
    """

    def __init__(self, layer: Layer, x: np.ndarray, value: np.ndarray, sites: Sequence[Site],
                 factors: Sequence[Factor], framework: str, output: str | None = None) -> None:
        self.layer = layer
        self.output = output if output is not None else (factors[-1].name if factors
                                                         else "input")
        self.x = np.asarray(x, dtype=np.float64)
        self.value = np.asarray(value, dtype=np.float64)
        self.sites = tuple(sites)
        self.factors = tuple(factors)
        self.framework = framework

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The model's input shape (one sample)."""
        return self.layer.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The model's output shape (one sample)."""
        return self.layer.output_shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """float64."""
        return self.layer.dtype

    @property
    def piecewise_linear(self) -> bool:
        """Every non-linearity is piecewise linear (the map holds on a whole region)."""
        return all(site.piecewise_linear for site in self.sites)

    @property
    def kinks(self) -> int:
        """Units on a kink plus tied pooling windows, over all sites."""
        return sum(site.kinks for site in self.sites)

    def output_factors(self) -> tuple[Factor, ...]:
        """The factors the output depends on, in order (a graph's unused branches dropped)."""
        needed = {self.output}
        for factor in reversed(self.factors):
            if factor.name in needed:
                needed.update(factor.inputs)
        return tuple(f for f in self.factors if f.name in needed)

    def _check_budget(self, format: SparseFormat, max_bytes: int) -> None:
        """The tangent map's own guard decides (it refuses before building)."""

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        return self.layer.matrix(format, max_bytes=max_bytes)

    def offset(self) -> np.ndarray:
        """``f(x) − J x`` (flat): ``J x + offset`` is ``f(x)``."""
        return self.layer.offset()

    def plan(self) -> ProductPlan:
        """How the matrix is formed (the tangent map's :meth:`~convmatrix.Sequential.plan`)."""
        return self.layer.plan()  # type: ignore[attr-defined, no-any-return]

    def chain(self) -> tuple[Layer, ...]:
        """The tangent map's factors, first applied first."""
        return self.layer.chain()

    def apply_forward(self, batch: np.ndarray) -> np.ndarray:
        """``J h`` on a batch (matrix-free through the factors)."""
        return self.layer.apply_forward(batch)

    def apply_adjoint(self, batch: np.ndarray) -> np.ndarray:
        """``Jᵀ v`` on a batch (matrix-free through the factors)."""
        return self.layer.apply_adjoint(batch)

    def _apply_nbytes(self, batch: int, itemsize: int) -> int:
        return self.layer._apply_nbytes(batch, itemsize)

    def abs_row_sum(self) -> int:
        """The tangent map's bound on ``‖J‖∞``."""
        return self.layer.abs_row_sum()

    def _describe(self) -> str:
        where = "a kink" if self.kinks == 1 else "kinks"
        text = (f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}, "
                f"{self.framework}, {len(self.sites)} non-linear "
                f"site{'s' * (len(self.sites) != 1)}")
        return text + (f", {self.kinks} on {where}" if self.kinks else "")

    def residual(self) -> float:
        """``max|J x + offset − f(x)| / max(|f(x)|, 1)``: rounding only (the offset's definition).

        Computed matrix-free (the matrix is not built).
        """
        got = self.apply_forward(self.x[None])[0].reshape(-1) + self.offset()
        want = self.value.reshape(-1)
        scale = max(float(np.abs(want).max(initial=0.0)), 1.0)
        return float(np.abs(got - want).max(initial=0.0)) / scale



def constant_after(layer: Layer, constant: np.ndarray | None) -> np.ndarray | None:
    """Which outputs of ``layer`` are locally constant, given which inputs are (None: none).

    A conservative propagation for the kink counts of :class:`Site`: an element-wise map
    (:class:`~convmatrix.Scale`, an activation's derivative) keeps a constant input constant
    and makes a zero-derivative output constant; a max selection's output is constant when
    every tied input of its window is; reshapes and the identity carry the mask; any other
    layer makes every output non-constant (None).
    """
    from convmatrix.layers.identity import Identity
    from convmatrix.layers.selection import MaxSelection

    if isinstance(layer, MaxSelection):
        return layer.constant_outputs(constant)
    scale = getattr(layer, "scale", None)
    if type(layer).__name__ == "Scale" and scale is not None:
        zero = np.broadcast_to(np.asarray(scale) == 0, layer.output_shape)
        return zero.copy() if constant is None else (zero | constant.reshape(zero.shape))
    if constant is None:
        return None
    if isinstance(layer, Identity) or type(layer).__name__ in ("Reshape", "Flatten"):
        return constant.reshape(layer.output_shape)
    return None
