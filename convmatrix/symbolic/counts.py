"""Overlap counts of a transposed convolution: per axis and as the N-D map, counted.

Output pixel ``j`` of a transposed convolution (one axis, input size ``n``, kernel ``k``, stride
``s``, padding ``p`` before, dilation ``d``) receives one ``w·x`` term for every pair
``(i, t)`` with ``i·s − p + t·d = j``, ``0 ≤ i < n``, ``0 ≤ t < k``. This module counts those
pairs from the index arithmetic of :mod:`convmatrix.geometry.indices` (the closed forms and the
checkerboard verdict are in :mod:`convmatrix.symbolic.laws`). In N-D the count map is the
outer product of the per-axis maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from typing import Any

import numpy as np

from convmatrix.builder.budget import check_budget, check_max_bytes, overlap_nbytes
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES
from convmatrix.geometry.indices import axis_read_counts
from convmatrix.geometry.spec import ConvSpec
from convmatrix.symbolic._layers import layer_spec

__all__ = ["axis_overlap_counts", "overlap_counts", "overlap_map", "read_counts"]


def axis_overlap_counts(spec: ConvSpec, axis: int) -> np.ndarray:
    """Per-axis count of (input pixel, tap) pairs of the transposed layer landing on each pixel.

    ``spec`` is the forward convolution (its input axis is the transposed layer's output).
    """
    return axis_read_counts(spec.input_size[axis], spec.kernel_size[axis], spec.stride[axis],
                            spec.padding[axis], spec.dilation[axis], spec.output_size[axis],
                            spec.padding_mode)


def overlap_map(spec: ConvSpec) -> np.ndarray:
    """The N-D overlap map of ``spec``'s transpose: the outer product of the per-axis counts.

    Exact for every padding mode: the (output pixel, tap) pairs of the layer are the product
    of the per-axis pairs, and each axis maps its own coordinate. No size check: the public
    :func:`overlap_counts` / :func:`read_counts` check ``max_bytes`` first.
    """
    return reduce(np.multiply.outer, [axis_overlap_counts(spec, axis)
                                      for axis in range(spec.ndim)]).astype(np.int64, copy=False)


def overlap_counts(weight_shape: Sequence[int], input_shape: Sequence[int], *,
                   max_bytes: int | None = DEFAULT_MAX_BYTES, **geometry: Any) -> np.ndarray:
    """How many (input pixel, kernel tap) pairs of a transposed layer land on each output pixel.

    Parameters
    ----------
    weight_shape, input_shape, **geometry
        As in :func:`convmatrix.conv_transpose_matrix` (weight replaced by its shape).
    max_bytes : int or None, optional
        Refuse, before any work, a map (with its per-axis tables) larger than this; default
        :data:`convmatrix.DEFAULT_MAX_BYTES`, None: no limit.

    Returns
    -------
    ndarray of int64, shape of one output channel's spatial grid
        It equals the outer product of the per-axis counts.

    Examples
    --------
    >>> overlap_counts((1, 1, 2, 2), (1, 2, 2))          # the seed
    array([[1, 2, 1],
           [2, 4, 2],
           [1, 2, 1]])
    >>> overlap_counts((1, 1, 3), (1, 5), stride=2)      # k=3, s=2: uneven
    array([1, 1, 2, 1, 2, 1, 2, 1, 2, 1, 1])
    """
    spec = layer_spec(weight_shape, input_shape, "adjoint", geometry)
    check_budget("the overlap map", overlap_nbytes(spec), check_max_bytes(max_bytes))
    return overlap_map(spec)


def read_counts(weight_shape: Sequence[int], input_shape: Sequence[int], *,
                max_bytes: int | None = DEFAULT_MAX_BYTES, **geometry: Any) -> np.ndarray:
    """For a convolution: how many (output pixel, tap) pairs read each input pixel.

    This is the overlap map of the convolution's transpose (its column counts per channel pair).
    ``max_bytes`` as in :func:`overlap_counts`.

    Examples
    --------
    >>> read_counts((1, 1, 2, 2), (1, 3, 3))
    array([[1, 2, 1],
           [2, 4, 2],
           [1, 2, 1]])
    """
    spec = layer_spec(weight_shape, input_shape, "forward", geometry)
    check_budget("the read-count map", overlap_nbytes(spec), check_max_bytes(max_bytes))
    return overlap_map(spec)
