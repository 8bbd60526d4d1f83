"""Shared plumbing: geometry keywords or layer objects -> forward spec; a layer's symbol arrays.

A layer object is recognised by its ``conv_view()`` hook
(:class:`~convmatrix.geometry.view.ConvView`): the symbolic functions never import the layer
kinds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.spec import ConvSpec, conv_spec, conv_transpose_spec
from convmatrix.geometry.view import ConvView, check_direction
from convmatrix.symbolic._guard import DEFAULT_MAX_TERMS, check_max_terms
from convmatrix.typing import Direction

__all__ = [
    "input_symbols",
    "is_layer",
    "layer_spec",
    "layer_view",
    "sample_channels_first",
    "symbol_array",
    "weight_symbols",
]


def layer_spec(weight_shape: Sequence[int], input_shape: Sequence[int], direction: Direction,
               geometry: dict[str, Any]) -> ConvSpec:
    """The forward spec of a convolution (``"forward"``), or of the one behind its transpose."""
    if check_direction(direction) == "adjoint":
        return conv_transpose_spec(weight_shape, input_shape, **geometry)
    return conv_spec(weight_shape, input_shape, **geometry)


def symbol_array(name: str, shape: Sequence[int], skip_leading: int = 0, *,
                 max_terms: int | None = DEFAULT_MAX_TERMS) -> np.ndarray:
    """Object array of symbols ``name_{i,j,...}`` (C order), dropping leading unit axes.

    ``skip_leading`` leading axes are left out of the subscript when they all have size 1
    (a one-channel layer reads ``w_{0,1}`` rather than ``w_{0,0,0,1}``).
    """
    shape = tuple(shape)
    drop = skip_leading if all(v == 1 for v in shape[:skip_leading]) else 0
    check_max_terms(max_terms)
    count = math.prod(shape)
    if max_terms is not None and count > max_terms:
        raise ConvMatrixError(
            f"shape {shape} would make {count:,} symbols {name}_{{…}}, over `max_terms` "
            f"(={max_terms:,}); pass a larger max_terms (or max_terms=None) to make them anyway")
    symbols = [sympy.Symbol(f"{name}_{{{','.join(map(str, index[drop:]))}}}")
               for index in itertools.product(*(range(v) for v in shape))]
    array = np.empty(len(symbols), dtype=object)
    array[:] = symbols
    return array.reshape(shape)


class LazySymbols:
    """``symbol_array(name, shape, skip_leading).ravel()``, creating symbols only when read.

    Sampling a few outputs of a large layer then costs only the symbols those outputs use.
    """

    def __init__(self, name: str, shape: Sequence[int], skip_leading: int) -> None:
        self.name, self.shape = name, tuple(shape)
        self.drop = skip_leading if all(v == 1 for v in self.shape[:skip_leading]) else 0
        self._cache: dict[int, sympy.Symbol] = {}

    def __getitem__(self, flat: int) -> sympy.Symbol:
        symbol = self._cache.get(flat)
        if symbol is None:
            index = np.unravel_index(flat, self.shape)[self.drop:]
            symbol = sympy.Symbol(f"{self.name}_{{{','.join(str(int(i)) for i in index)}}}")
            self._cache[flat] = symbol
        return symbol


def weight_symbols(weight_shape: Sequence[int], name: str = "w", *,
                   max_terms: int | None = DEFAULT_MAX_TERMS) -> np.ndarray:
    """Symbols for every weight element: ``w_{o,i,ky,kx}`` (torch layout of the layer).

    For a transposed layer the layout is its own, ``(C_in, C_out/groups, *k)``, so the symbol
    ``w_{i,o,ky,kx}`` is ``weight[i, o, ky, kx]``. Channel indices are omitted when both channel
    axes have size 1. More than ``max_terms`` symbols (default ``10**6``; None: no limit) are
    refused before any is made.

    Examples
    --------
    >>> weight_symbols((1, 1, 2, 2)).tolist()
    [[[[w_{0,0}, w_{0,1}], [w_{1,0}, w_{1,1}]]]]
    """
    return symbol_array(name, weight_shape, skip_leading=2, max_terms=max_terms)


def input_symbols(input_shape: Sequence[int], name: str = "x", *,
                  max_terms: int | None = DEFAULT_MAX_TERMS) -> np.ndarray:
    """Symbols for every input element: ``x_{c,i,j}`` (channel omitted for one channel).

    More than ``max_terms`` symbols (default ``10**6``; None: no limit) are refused before any
    is made.

    Examples
    --------
    >>> input_symbols((2, 1, 2)).ravel().tolist()
    [x_{0,0,0}, x_{0,0,1}, x_{1,0,0}, x_{1,0,1}]
    """
    return symbol_array(name, input_shape, skip_leading=1, max_terms=max_terms)


def as_object_array(values: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Numbers or SymPy expressions in the given shape, as an object array of SymPy objects."""
    array = np.asarray(values, dtype=object)
    if array.shape != shape:
        raise ConvMatrixError(f"`{name}` has shape {array.shape}; the layer needs {shape}")
    flat = np.empty(array.size, dtype=object)
    flat[:] = [sympy.sympify(v) for v in array.ravel()]
    return flat.reshape(shape)


def is_layer(value: Any) -> bool:
    """Whether ``value`` is a layer object: it answers the ``conv_view()`` hook."""
    return callable(getattr(value, "conv_view", None))


def layer_view(layer: Any) -> ConvView:
    """The convolution behind a layer object (its ``conv_view()``), or a clear refusal.

    ``Conv`` / ``ConvTranspose``, their adjoints (``.T``, also of padding modes whose adjoint
    is no torch layer) and Keras layers (explained in channels-first terms, titled with the
    Keras class) answer; every other kind (a stack, pooling, ...) is refused.
    """
    view = layer.conv_view() if is_layer(layer) else None
    if view is None:
        raise ConvMatrixError(
            f"`layer` (={layer!r}) must be a convolution layer object (cm.Conv, "
            f"cm.ConvTranspose, their .T, or a Keras layer from cm.from_keras); explain a stack "
            f"layer by layer"
        )
    return view


def sample_channels_first(view: ConvView, x: Any) -> Any:
    """One sample in the layer's own layout, as convmatrix's channels-first sample."""
    if view.layout != "channels_last":
        return x  # checked against the layer's input shape where it is used
    x = np.asarray(x)
    first = view.spec.input_shape if view.direction == "forward" else view.spec.output_shape
    shape = (*first[1:], first[0])
    if x.shape != shape:
        raise ConvMatrixError(f"`x` has shape {x.shape}; the layer takes {shape}")
    return np.moveaxis(x, -1, 0)
