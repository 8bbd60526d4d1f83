"""Sparsity structure of a conv layer (channels ⊗ spatial axes), widened, and its colouring."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix.geometry.shapes import effective_kernel
from convmatrix.layers.base import Layer
from convmatrix.layers.conv import ConvLayer, ConvTranspose

__all__ = ["Structure", "greedy_colours", "layer_structure", "mirror_index"]

#: padding modes whose reads a widened pattern covers (every mode maps into the input)
_ALL_MODES = ("zeros", "reflect", "replicate", "circular", "symmetric")


def mirror_index(coord: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Map padded coordinates into ``[0, n)`` by a padding mode (−1 where ``"zeros"`` reads 0).

    Written from each mode's periodic definition, so it holds for any padding width.

    Examples
    --------
    >>> mirror_index(np.arange(-3, 6), 3, "symmetric").tolist()
    [2, 1, 0, 0, 1, 2, 2, 1, 0]
    >>> mirror_index(np.arange(-3, 6), 3, "reflect").tolist()
    [1, 2, 1, 0, 1, 2, 1, 0, 1]
    """
    if mode == "zeros":
        return np.where((coord >= 0) & (coord < n), coord, -1)
    if mode == "replicate":
        return np.clip(coord, 0, n - 1)
    if mode == "circular":
        return np.mod(coord, n)
    if mode == "reflect":
        if n == 1:
            return np.zeros_like(coord)
        period = np.mod(coord, 2 * n - 2)
        return np.minimum(period, 2 * n - 2 - period)
    if mode == "symmetric":
        period = np.mod(coord, 2 * n)
        return np.minimum(period, 2 * n - 1 - period)
    raise ValueError(f"unknown padding mode {mode!r}")  # pragma: no cover


def _axis_pattern(n: int, out: int, s: int, before: int, taps: np.ndarray,
                  modes: Sequence[str]) -> sp.csr_array:
    """``(out, n)`` boolean pattern: output ``o`` reads ``o·s − before + taps`` mapped by modes."""
    coord = np.arange(out)[:, None] * s - before + taps[None, :]
    rows, cols = [], []
    for mode in modes:
        index = mirror_index(coord, n, mode)
        keep = index >= 0
        rows.append(np.broadcast_to(np.arange(out)[:, None], coord.shape)[keep])
        cols.append(index[keep])
    pattern = sp.coo_array((np.ones(sum(r.size for r in rows), dtype=bool),
                            (np.concatenate(rows), np.concatenate(cols))), shape=(out, n))
    csr = sp.csr_array(pattern)
    csr.sum_duplicates()
    csr.data[:] = True
    return csr


def greedy_colours(pattern: Any) -> np.ndarray:
    """Colour the columns of a pattern so that columns sharing a row differ (greedy, in order).

    Examples
    --------
    >>> band = sp.csr_array(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]))
    >>> greedy_colours(band).tolist()
    [0, 1, 0, 1]
    """
    csr = sp.csr_array(pattern, dtype=bool)
    conflicts = sp.csr_array((csr.T @ csr).astype(bool))
    colours = np.full(csr.shape[1], -1, dtype=np.int64)
    for j in range(csr.shape[1]):
        neighbours = conflicts.indices[conflicts.indptr[j]:conflicts.indptr[j + 1]]
        used = set(colours[neighbours].tolist())
        c = 0
        while c in used:
            c += 1
        colours[j] = c
    return colours


@dataclass(frozen=True)
class Structure:
    """A pattern ``channels ⊗ axis_0 ⊗ axis_1 ⊗ …`` and a colouring of its columns.

    Attributes
    ----------
    channels : ndarray of bool, shape ``(C_out, C_in)``
        Which input channels feed which output channel.
    axes : list of csr_array
        Per spatial axis, which input positions feed which output position.
    label : str
        How the pattern was obtained (for reports).
    """

    channels: np.ndarray
    axes: tuple[sp.csr_array, ...]
    label: str

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one output sample."""
        return (self.channels.shape[0], *(a.shape[0] for a in self.axes))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample."""
        return (self.channels.shape[1], *(a.shape[1] for a in self.axes))

    def spatial(self) -> sp.csr_array:
        """The spatial pattern, the Kronecker product of the axes (C order), canonical CSR."""
        result = sp.csr_array(np.ones((1, 1), dtype=bool))
        for axis in self.axes:
            result = sp.csr_array(sp.kron(result, axis, format="csr"))
        result.sum_duplicates()
        result.sort_indices()
        return result

    def colours(self) -> tuple[np.ndarray, np.ndarray]:
        """Channel colours ``(C_in,)`` and spatial colours ``(∏input spatial,)`` (mixed radix)."""
        channel = greedy_colours(sp.csr_array(self.channels))
        spatial = np.zeros(1, dtype=np.int64)
        for axis in self.axes:
            c = greedy_colours(axis)
            spatial = (spatial[:, None] * (int(c.max(initial=0)) + 1) + c[None, :]).ravel()
        return channel, spatial

    def nnz(self) -> int:
        """Entries of the full pattern."""
        return int(self.channels.sum()) * math.prod(int(a.nnz) for a in self.axes)


def _channel_pattern(rows: int, cols: int, groups: int) -> np.ndarray:
    return (np.arange(rows)[:, None] // (rows // groups)
            == np.arange(cols)[None, :] // (cols // groups))


def layer_structure(layer: Layer, level: int) -> Structure | None:
    """The pattern of a conv layer's matrix at widening ``level`` (None past the last level).

    Level 0 is the layer's own pattern. Level 1 reads every channel and a window one pixel
    wider on each side, mapped through every padding mode (so a wrong padding, padding mode,
    kernel orientation or channel assignment stays inside it). Level 2 widens the window by
    the dilated kernel extent again. Non-conv layers have no structure (None).

    Examples
    --------
    >>> import convmatrix as cm
    >>> layer = cm.Conv(np.ones((1, 1, 3)), (1, 6), padding=1)
    >>> layer_structure(layer, 0).axes[0].toarray().astype(int)[:2]
    array([[1, 1, 0, 0, 0, 0],
           [1, 1, 1, 0, 0, 0]])
    """
    if not isinstance(layer, ConvLayer) or level > 2:
        return None
    spec = layer.spec
    transposed = isinstance(layer, ConvTranspose)
    axes = []
    for a in range(spec.ndim):
        k, d = spec.kernel_size[a], spec.dilation[a]
        extent = effective_kernel(k, d)
        modes: tuple[str, ...]
        if level == 0:
            taps, modes = np.arange(k) * d, (spec.padding_mode,)
        else:
            margin = 1 if level == 1 else extent + 1
            taps, modes = np.arange(-margin, extent + margin), _ALL_MODES
        forward = _axis_pattern(spec.input_size[a], spec.output_size[a], spec.stride[a],
                                spec.padding[a][0], taps, modes)
        axes.append(sp.csr_array(forward.T) if transposed else forward)
    if level == 0:
        channels = _channel_pattern(spec.out_channels, spec.in_channels, spec.groups)
    else:
        channels = np.ones((spec.out_channels, spec.in_channels), dtype=bool)
    if transposed:
        channels = channels.T
    label = {0: "the layer's pattern", 1: "the layer's pattern widened by 1 pixel, all channels",
             2: "the layer's pattern widened by the kernel extent, all channels"}[level]
    return Structure(np.ascontiguousarray(channels),
                     tuple(sp.csr_array(a) for a in axes), label)
