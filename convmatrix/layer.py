"""A layer as the command line and reports see it: geometry, weight values and a label."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.frameworks.keras import KerasLayer, keras_layer
from convmatrix.sparse import _as_weight, spec_matrix
from convmatrix.spec import ConvSpec, conv_spec, conv_transpose_spec
from convmatrix.symbolic.explain import Explanation, explain_spec
from convmatrix.verification import VerificationResult, verify_spec

__all__ = ["Layer", "make_weight"]

WEIGHT_FILLS = ("ones", "arange", "random")


def make_weight(shape: Sequence[int], fill: str = "ones", seed: int = 0) -> np.ndarray:
    """Weight values for a layer described only by shapes.

    Parameters
    ----------
    shape : sequence of int
        The weight shape.
    fill : {"ones", "arange", "random"}
        All ones (integers, as in the seed example), ``1, 2, 3, ...`` (integers, so every tap is
        recognisable in an output), or seeded standard-normal floats.
    seed : int
        Seed for ``"random"``.

    Returns
    -------
    ndarray
        int64 for ``"ones"`` and ``"arange"``, float64 for ``"random"``.

    Examples
    --------
    >>> make_weight((1, 1, 2, 2), "arange")[0, 0].tolist()
    [[1, 2], [3, 4]]
    """
    shape = tuple(shape)
    if fill == "ones":
        return np.ones(shape, dtype=np.int64)
    if fill == "arange":
        return np.arange(1, math.prod(shape) + 1, dtype=np.int64).reshape(shape)
    if fill == "random":
        return np.random.default_rng(seed).standard_normal(shape)
    raise ConvMatrixError(f"`fill` (={fill!r}) must be one of {', '.join(WEIGHT_FILLS)}")


@dataclass(frozen=True)
class Layer:
    """A convolution or transposed convolution with concrete weights (torch layout).

    Attributes
    ----------
    spec : ConvSpec
        The forward convolution; for a transposed layer, the convolution whose transpose it is.
    weight : ndarray
        torch layout of the layer's own weight (for a transposed layer ``(C_in, C_out/g, *k)``,
        which is also the forward convolution's weight).
    transpose : bool
        The layer is the transposed convolution ``Cᵀ``.
    title : str
        Human-readable name.
    keras : KerasLayer or None
        The Keras layer this came from (its layout and shapes), if any.
    """

    spec: ConvSpec
    weight: np.ndarray = field(repr=False)
    transpose: bool
    title: str
    keras: KerasLayer | None = None

    @classmethod
    def conv(cls, weight: Any, input_shape: Sequence[int], *, title: str | None = None,
             **geometry: Any) -> Layer:
        """A convolution (torch ``convNd`` semantics)."""
        w = _as_weight(weight)
        spec = conv_spec(w.shape, input_shape, **geometry)
        return cls(spec, w, False, title or f"Conv{spec.ndim}d")

    @classmethod
    def conv_transpose(cls, weight: Any, input_shape: Sequence[int], *,
                       title: str | None = None, **geometry: Any) -> Layer:
        """A transposed convolution (torch ``conv_transposeNd`` semantics)."""
        w = _as_weight(weight)
        spec = conv_transpose_spec(w.shape, input_shape, **geometry)
        return cls(spec, w, True, title or f"ConvTranspose{spec.ndim}d")

    @classmethod
    def from_keras(cls, serialized_layer: dict[str, Any], kernel: Any,
                   input_shape: Sequence[int], *, title: str | None = None) -> Layer:
        """A Keras layer (serialized config, kernel in Keras layout, one sample's shape)."""
        converted = keras_layer(serialized_layer, kernel, input_shape)
        return cls(converted.spec, converted.weight, converted.transpose,
                   title or converted.class_name, converted)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The layer's input shape (channels first)."""
        return self.spec.output_shape if self.transpose else self.spec.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The layer's output shape (channels first)."""
        return self.spec.input_shape if self.transpose else self.spec.output_shape

    def matrix(self, format: str | None = None) -> sp.sparray:
        """The layer's matrix: ``C``, or ``Cᵀ`` for a transposed layer."""
        return spec_matrix(self.spec, self.weight, transpose=self.transpose,
                           format=format)  # type: ignore[arg-type]

    def framework_matrix(self) -> sp.sparray:
        """The matrix for vectors flattened in the layer's own framework layout (CSR).

        For a Keras layer that is :func:`convmatrix.keras_matrix`'s matrix (channels last by
        default); otherwise the channels-first :meth:`matrix`.
        """
        if self.keras is not None:
            return self.keras.matrix()
        return self.matrix(format="csr")

    def apply(self, x: Any) -> np.ndarray:
        """The layer's output for one input sample, computed as ``matrix @ x``."""
        x = np.asarray(x)
        if x.shape != self.input_shape:
            raise ConvMatrixError(f"`x` has shape {x.shape}; the layer takes {self.input_shape}")
        return (self.matrix() @ x.ravel()).reshape(self.output_shape)

    def verify(self, seed: int = 0) -> VerificationResult:
        """Reference and adjoint checks of :meth:`matrix` (see :func:`convmatrix.verify`)."""
        return verify_spec(self.spec, self.weight, transpose=self.transpose, seed=seed)

    def explain(self, x: Any = None) -> Explanation:
        """The symbolic explanation (numbers substituted when ``x`` is given)."""
        return explain_spec(self.spec, self.transpose, title=self.title,
                            weight=None if x is None else self.weight, x=x)
