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
"""

from __future__ import annotations

import math
from functools import singledispatch

import numpy as np
import scipy.sparse as sp

from convmatrix.build.channels_last import channels_last_matrix
from convmatrix.layers.base import Adjoint, Layer
from convmatrix.layers.channels_last import ChannelsLast, KerasConv
from convmatrix.layers.conv import Conv, ConvLayer, ConvTranspose
from convmatrix.layers.sequential import Sequential

__all__ = ["constant_response", "interior_mask", "path_counts", "path_matrix"]


@singledispatch
def path_matrix(layer: Layer) -> sp.csr_array:
    """The layer's path matrix: its matrix with every learnable weight 1 (int64, CSR).

    Fixed-weight layer kinds count structural paths (non-zero entries become 1). A stack's path
    matrix is the product of its layers' (:func:`path_counts` never forms it).

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
    matrix = sp.csr_array(layer.matrix())
    pattern = sp.csr_array(((matrix.data != 0).astype(np.int64), matrix.indices, matrix.indptr),
                           shape=matrix.shape)
    pattern.eliminate_zeros()
    return pattern


@path_matrix.register
def _(layer: ConvLayer) -> sp.csr_array:
    return sp.csr_array(_ones_like(layer).matrix())


@path_matrix.register
def _(layer: KerasConv) -> sp.csr_array:
    core = path_matrix(layer.torch)
    if layer.data_format != "channels_last":
        return core
    return sp.csr_array(channels_last_matrix(core, layer.torch.input_shape,
                                             layer.torch.output_shape))


@path_matrix.register
def _(layer: ChannelsLast) -> sp.csr_array:
    return sp.csr_array(channels_last_matrix(path_matrix(layer.core), layer.core.input_shape,
                                             layer.core.output_shape))


@path_matrix.register
def _(layer: Adjoint) -> sp.csr_array:
    return sp.csr_array(path_matrix(layer.layer).T)


@path_matrix.register
def _(layer: Sequential) -> sp.csr_array:
    product = path_matrix(layer.layers[0])
    for item in layer.layers[1:]:
        product = sp.csr_array(path_matrix(item) @ product)
    return product


def _ones_like(layer: ConvLayer) -> ConvLayer:
    """The same convolution with every weight 1 (int64) and no bias."""
    ones = np.ones(layer.weight.shape, dtype=np.int64)
    if isinstance(layer, ConvTranspose):
        return ConvTranspose(ones, layer.input_shape, **layer._arguments)
    assert isinstance(layer, Conv)
    return Conv(ones, layer.input_shape, **layer._arguments)


def _leaves(layer: Layer) -> list[Layer]:
    """A stack's layers in order (nested stacks flattened); one layer otherwise."""
    if isinstance(layer, Sequential):
        return [leaf for item in layer.layers for leaf in _leaves(item)]
    return [layer]


def path_counts(layer: Layer) -> np.ndarray:
    """Weight paths landing on each output pixel, with all-ones weights (see the module notes).

    Parameters
    ----------
    layer : Layer
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
    for leaf in _leaves(layer):
        vector = path_matrix(leaf) @ vector
    return np.asarray(vector).reshape(layer.output_shape)


def constant_response(layer: Layer) -> np.ndarray:
    """The layer's linear part (its own weights, no bias) applied to an all-ones input.

    Returns
    -------
    ndarray, shape ``layer.output_shape``
    """
    ones = np.ones((1, *layer.input_shape), dtype=np.result_type(layer.dtype, np.int64))
    return np.asarray(layer._apply(ones))[0]


def interior_mask(layer: Layer) -> np.ndarray:
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
    for leaf in _leaves(layer):
        pattern = path_matrix(leaf)
        touched = pattern @ (~mask).astype(np.int64)
        mask = _own_interior(leaf).ravel() & (np.asarray(touched) == 0)
    return mask.reshape(layer.output_shape)


@singledispatch
def _own_interior(layer: Layer) -> np.ndarray:
    """Default: rows with as many stored paths as the fullest row."""
    pattern = path_matrix(layer)
    per_row = np.diff(pattern.indptr)
    return (per_row == per_row.max(initial=0)) & (per_row > 0)


def _channels_last(mask: np.ndarray, core_shape: tuple[int, ...]) -> np.ndarray:
    return np.moveaxis(mask.reshape(core_shape), 0, -1).ravel()


@_own_interior.register
def _(layer: KerasConv) -> np.ndarray:
    own = _own_interior(layer.torch)
    if layer.data_format != "channels_last":
        return own
    return _channels_last(own, layer.torch.output_shape)


@_own_interior.register
def _(layer: ChannelsLast) -> np.ndarray:
    return _channels_last(_own_interior(layer.core), layer.core.output_shape)


@_own_interior.register
def _(layer: Conv) -> np.ndarray:
    spec = layer.spec
    axes = []
    for a in range(spec.ndim):
        o = np.arange(spec.output_size[a])
        start = o * spec.stride[a] - spec.padding[a][0]
        reach = start + spec.dilation[a] * (spec.kernel_size[a] - 1)
        axes.append((start >= 0) & (reach <= spec.input_size[a] - 1))
    return _outer(axes, layer.output_shape[0])


@_own_interior.register
def _(layer: ConvTranspose) -> np.ndarray:
    spec = layer.spec
    axes = []
    for a in range(spec.ndim):
        j = np.arange(spec.input_size[a])
        ok = np.ones(j.size, dtype=bool)
        for t in range(spec.kernel_size[a]):
            q = j + spec.padding[a][0] - t * spec.dilation[a]
            lands = q % spec.stride[a] == 0
            i = q // spec.stride[a]
            ok &= ~lands | ((i >= 0) & (i < spec.output_size[a]))
        axes.append(ok)
    return _outer(axes, layer.output_shape[0])


def _outer(axes: list[np.ndarray], channels: int) -> np.ndarray:
    grid = axes[0]
    for axis in axes[1:]:
        grid = np.logical_and.outer(grid, axis)
    return np.broadcast_to(grid, (channels, *grid.shape)).ravel()
