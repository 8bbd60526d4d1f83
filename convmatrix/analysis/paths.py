"""Weight paths through a layer or stack: overlap counts with all-ones weights, and the interior.

**What is counted.** ``path_counts(layer)[o]`` is the number of weight paths from the input to
output pixel ``o``: the layer (or every layer of a stack) with *every learnable weight set to 1*,
applied to an all-ones input. For one transposed convolution that is the number of
(input pixel, kernel tap) pairs landing on ``o`` — the overlap count of Odena, Dumoulin & Olah
(2016); for a stack it is the product of the layers' path matrices applied to ones, i.e. the
number of chains of taps, one per layer, joining some input pixel to ``o``.

- Convolutions count one path per kernel tap and input channel. Where padding merges several
  taps into one matrix entry (reflect, replicate, circular padding), each tap is its own path:
  the entry counts the taps it merges.
- Layers with fixed weights (pooling, upsampling, interpolation, pixel shuffle, padding, and
  any layer kind without learnable weights) count *structural* paths: one per non-zero matrix
  entry, whatever its value (an average pool's ``1/k²`` or an interpolation weight count 1; an
  interpolation weight that is exactly 0 is no path). Batch normalisation's per-channel scale
  is likewise one path per pixel.

**The interior.** An output pixel is *interior* when no border effect reaches it: every layer's
own rule marks it interior (a convolution: no tap in the padding; a transposed convolution:
every tap of the infinite lattice lands from an existing input pixel; other kinds: its matrix
row has as many entries as the fullest row) and none of its paths passes through a border
pixel of an earlier layer. Far from the borders the counts of a periodic stack repeat; the
checkerboard verdict (:mod:`convmatrix.analysis.checkerboard`) reads them there.

**Hooks.** Nothing here knows a layer kind: each map answers through the hooks of
:class:`~convmatrix.geometry.view.AffineMap` — ``chain()`` (a stack's factors),
``path_matrix()`` and ``own_interior()``. Layer kinds that are convolutions get both from
:func:`conv_path_matrix` and :func:`conv_interior` of their ``conv_view()``.
"""

from __future__ import annotations

import inspect
import math
import typing
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix.builder.channels_last import channels_last_matrix
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES, spec_matrix
from convmatrix.geometry.view import AffineMap, ConvView

__all__ = [
    "constant_response",
    "conv_interior",
    "conv_path_matrix",
    "fullest_rows",
    "interior_mask",
    "path_counts",
    "path_matrix",
    "structural_paths",
]


def path_matrix(layer: AffineMap) -> sp.csr_array:
    """The layer's path matrix: its matrix with every learnable weight 1 (int64, CSR).

    Fixed-weight layer kinds count structural paths (non-zero entries become 1). A stack's path
    matrix is the product of its layers' (:func:`path_counts` never forms it). The layer's
    ``path_matrix()`` hook.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.full((1, 1, 3), 0.5), (1, 4), padding=1, padding_mode="reflect")
    >>> path_matrix(conv).toarray()          # reflect padding: two taps read pixel 1
    array([[1, 2, 0, 0],
           [1, 1, 1, 0],
           [0, 1, 1, 1],
           [0, 0, 2, 1]])
    """
    return layer.path_matrix()


def structural_paths(matrix: sp.sparray) -> sp.csr_array:
    """One path per non-zero entry of ``matrix`` (int64 CSR): a fixed-weight map's paths."""
    csr = sp.csr_array(matrix)
    pattern = sp.csr_array(((csr.data != 0).astype(np.int64), csr.indices, csr.indptr),
                           shape=csr.shape)
    pattern.eliminate_zeros()
    return pattern


def _core_shapes(view: ConvView) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Input and output shape (channels first) of the convolution or its adjoint."""
    spec = view.spec
    if view.direction == "forward":
        return spec.input_shape, spec.output_shape
    return spec.output_shape, spec.input_shape


def conv_path_matrix(view: ConvView) -> sp.csr_array:
    """The convolution of ``view`` with every weight 1 (int64 CSR), in the view's layout.

    One path per kernel tap and input channel; where padding merges taps into one entry
    (reflect, replicate, circular) the entry counts them.
    """
    ones = np.ones(view.weight.shape, dtype=np.int64)
    matrix = spec_matrix(view.spec, ones, direction=view.direction, format="csr",
                         max_bytes=DEFAULT_MAX_BYTES)
    if view.layout == "channels_last":
        matrix = channels_last_matrix(matrix, *_core_shapes(view))
    return sp.csr_array(matrix)


def conv_interior(view: ConvView) -> np.ndarray:
    """Flat bool per output pixel: the convolution's own border rule, in the view's layout.

    A convolution: no tap of the output reads the padding. A transposed convolution: every
    tap of the infinite lattice landing on the output comes from an existing input pixel.
    """
    spec = view.spec
    axes = []
    if view.direction == "forward":
        for a in range(spec.ndim):
            o = np.arange(spec.output_size[a])
            start = o * spec.stride[a] - spec.padding[a][0]
            reach = start + spec.dilation[a] * (spec.kernel_size[a] - 1)
            axes.append((start >= 0) & (reach <= spec.input_size[a] - 1))
    else:
        for a in range(spec.ndim):
            j = np.arange(spec.input_size[a])
            ok = np.ones(j.size, dtype=bool)
            for t in range(spec.kernel_size[a]):
                q = j + spec.padding[a][0] - t * spec.dilation[a]
                lands = q % spec.stride[a] == 0
                i = q // spec.stride[a]
                ok &= ~lands | ((i >= 0) & (i < spec.output_size[a]))
            axes.append(ok)
    output_shape = _core_shapes(view)[1]
    mask = _outer(axes, output_shape[0])
    if view.layout == "channels_last":
        return np.moveaxis(mask.reshape(output_shape), 0, -1).ravel()
    return mask


def fullest_rows(pattern: sp.csr_array) -> np.ndarray:
    """Flat bool per row: as many stored paths as the fullest row (the structural interior)."""
    per_row = np.diff(sp.csr_array(pattern).indptr)
    return (per_row == per_row.max(initial=0)) & (per_row > 0)


def path_counts(layer: AffineMap) -> np.ndarray:
    """Weight paths landing on each output pixel, with all-ones weights (see the module notes).

    Parameters
    ----------
    layer : AffineMap
        Any layer object or stack.

    Returns
    -------
    ndarray of int64, shape ``layer.output_shape``

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> path_counts(cm.ConvTranspose(np.ones((1, 1, 2, 2)), (1, 2, 2)))    # the seed
    array([[[1, 2, 1],
            [2, 4, 2],
            [1, 2, 1]]])
    >>> k3 = cm.ConvTranspose(np.ones((1, 1, 3)), (1, 3), stride=2)
    >>> path_counts(cm.Sequential([k3, cm.ConvTranspose(np.ones((1, 1, 3)), (1, 7), stride=2)]))
    array([[1, 1, 2, 1, 3, 2, 3, 1, 3, 2, 3, 1, 2, 1, 1]])
    """
    vector = np.ones(math.prod(layer.input_shape), dtype=np.int64)
    for factor in layer.chain():
        vector = factor.path_matrix() @ vector
    return np.asarray(vector).reshape(layer.output_shape)


def constant_response(layer: AffineMap) -> np.ndarray:
    """The layer's linear part (its own weights, no bias) applied to an all-ones input.

    Returns
    -------
    ndarray, shape ``layer.output_shape``
    """
    ones = np.ones((1, *layer.input_shape), dtype=np.result_type(layer.dtype, np.int64))
    return np.asarray(layer.apply_forward(ones))[0]


def interior_mask(layer: AffineMap) -> np.ndarray:
    """Output pixels that no border effect reaches (see the module notes).

    Returns
    -------
    ndarray of bool, shape ``layer.output_shape``

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> interior_mask(cm.ConvTranspose(np.ones((1, 1, 3)), (1, 4), stride=2)).astype(int)
    array([[0, 1, 1, 1, 1, 1, 1, 1, 0]])
    """
    mask = np.ones(math.prod(layer.input_shape), dtype=bool)
    for factor in layer.chain():
        pattern = factor.path_matrix()
        touched = pattern @ (~mask).astype(np.int64)
        mask = factor.own_interior().ravel() & (np.asarray(touched) == 0)
    return mask.reshape(layer.output_shape)


def legacy_register(hook: str) -> Callable[..., Any]:
    """A deprecated ``singledispatch``-style ``register`` that installs a hook on a kind.

    In 0.1, :func:`path_matrix` and :func:`~convmatrix.analysis.checkerboard.axis_steps`
    dispatched on the layer's class; ``path_matrix.register(Kind)(function)`` now sets
    ``Kind.<hook>`` to ``function`` (deprecated: implement the hook method on the kind).
    """
    def register(kind: Any, function: Callable[..., Any] | None = None) -> Any:
        if function is None and not isinstance(kind, type):  # @register with an annotation
            function = kind
            first = next(iter(inspect.signature(function).parameters))
            kind = typing.get_type_hints(function)[first]
        if function is None:
            return lambda found: register(kind, found)
        warnings.warn(
            f"registering a function for {kind.__name__} is deprecated and will be removed in "
            f"convmatrix 0.3; implement the hook method {kind.__name__}.{hook}() instead",
            DeprecationWarning, stacklevel=2)
        setattr(kind, hook, function)
        return function

    return register


def _outer(axes: list[np.ndarray], channels: int) -> np.ndarray:
    grid = axes[0]
    for axis in axes[1:]:
        grid = np.logical_and.outer(grid, axis)
    return np.broadcast_to(grid, (channels, *grid.shape)).ravel()


path_matrix.register = legacy_register("path_matrix")  # type: ignore[attr-defined]
