"""Structural patterns of layer products, for the size estimates of :class:`Sequential`.

A convolution's matrix has the pattern of a Kronecker product: the channel pattern
(block-diagonal by groups) times, per spatial axis, the 1-D pattern of which input pixels each
output pixel reads (taps through the padding mode). Kronecker products multiply factor by
factor, so the pattern of a product of convolutions — and its stored entries and multiply-adds
— is computed exactly from a few small matrices (``C_out × C_in`` and ``o × n`` per axis), never
from the full matrices. Any other layer with a small matrix contributes its own pattern whole.
Counts are *structural*: an upper bound on what is stored (cancellation only removes entries).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix.builder.budget import nnz_estimate
from convmatrix.builder.padding import pad_source

__all__ = ["FULL_PATTERN_LIMIT", "Pattern", "join_flops", "layer_pattern", "product_pattern"]

FULL_PATTERN_LIMIT: int = 2_000_000
"""Largest number of entries a whole (non-Kronecker) pattern may have; beyond it, no pattern."""

_DENSE_CHANNELS = 4096 * 4096


@dataclass(frozen=True)
class Pattern:
    """A 0/1 pattern: ``kron(*factors)`` (``layout`` names the order) or one matrix (``"full"``).

    Attributes
    ----------
    factors : tuple of scipy.sparse.csr_array
        0/1 matrices; for ``"channels_first"`` the channel factor then the spatial axes, for
        ``"channels_last"`` the spatial axes then the channel factor; one matrix for ``"full"``.
    layout : {"channels_first", "channels_last", "full"}
    """

    factors: tuple[sp.csr_array, ...]
    layout: str

    @property
    def nnz(self) -> int:
        """Entries of the pattern (the product of the factors' entries)."""
        return math.prod(int(f.nnz) for f in self.factors)

    @cached_property
    def row_max(self) -> int:
        """Most entries in one row (a Kronecker product's is the product of its factors')."""
        return math.prod(int(np.diff(f.indptr).max(initial=0)) for f in self.factors)

    @cached_property
    def column_max(self) -> int:
        """Most entries in one column (likewise)."""
        return math.prod(int(np.bincount(f.indices, minlength=1).max()) for f in self.factors)

    def full(self) -> sp.csr_array | None:
        """The pattern as one matrix, or None above :data:`FULL_PATTERN_LIMIT` entries."""
        if self.nnz > FULL_PATTERN_LIMIT:
            return None
        result = self.factors[0]
        for factor in self.factors[1:]:
            result = sp.kron(result, factor, format="csr")
        return _ones(sp.csr_array(result))


def _ones(matrix: Any) -> sp.csr_array:
    """1 where ``matrix`` stores a non-zero value.

    Zeros are dropped *before* any cast: a weight 0.5 is an entry, not an int64 0.
    """
    matrix = sp.csr_array(matrix, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return sp.csr_array((np.ones(matrix.nnz, np.int64), matrix.indices, matrix.indptr),
                        shape=matrix.shape)


def _axis_pattern(spec: Any, axis: int) -> sp.csr_array:
    """Output pixel ``p`` reads the input pixels ``source[p·s + t·d]`` (``source ≥ 0``)."""
    source = pad_source(spec, axis)
    o, k = spec.output_size[axis], spec.kernel_size[axis]
    s, d = spec.stride[axis], spec.dilation[axis]
    rows = np.repeat(np.arange(o), k)
    cols = source[(np.arange(o)[:, None] * s + np.arange(k)[None, :] * d).ravel()]
    keep = cols >= 0
    shape = (o, spec.input_size[axis])
    return _ones(sp.coo_array((np.ones(int(keep.sum()), np.int64), (rows[keep], cols[keep])),
                              shape=shape))


def _channel_pattern(spec: Any) -> sp.csr_array:
    groups = spec.groups
    block = np.ones((spec.out_channels // groups, spec.in_channels // groups), np.int64)
    return _ones(sp.block_diag([block] * groups, format="csr"))


def layer_pattern(layer: Any) -> Pattern | None:
    """The layer's structural pattern: Kronecker factors for a convolution, else whole if small."""
    view = layer.conv_view() if hasattr(layer, "conv_view") else None
    if view is not None and view.spec.in_channels * view.spec.out_channels <= _DENSE_CHANNELS:
        spec = view.spec
        axes = [_axis_pattern(spec, a) for a in range(spec.ndim)]
        channels = _channel_pattern(spec)
        if view.direction == "adjoint":
            axes = [sp.csr_array(a.T) for a in axes]
            channels = sp.csr_array(channels.T)
        if view.layout == "channels_last":
            return Pattern((*axes, channels), "channels_last")
        return Pattern((channels, *axes), "channels_first")
    if nnz_estimate(layer) > FULL_PATTERN_LIMIT:
        return None
    return Pattern((_ones(layer.matrix(max_bytes=None)),), "full")


def _compatible(later: Pattern, earlier: Pattern) -> bool:
    return (later.layout == earlier.layout and later.layout != "full"
            and len(later.factors) == len(earlier.factors)
            and all(a.shape[1] == b.shape[0] for a, b in
                    zip(later.factors, earlier.factors, strict=True)))


def _as_full_pair(later: Pattern, earlier: Pattern
                  ) -> tuple[tuple[sp.csr_array, ...], tuple[sp.csr_array, ...]] | None:
    if _compatible(later, earlier):
        return later.factors, earlier.factors
    a, b = later.full(), earlier.full()
    if a is None or b is None:
        return None
    return (a,), (b,)


def product_pattern(later: Pattern | None, earlier: Pattern | None) -> Pattern | None:
    """The pattern of ``later @ earlier`` (None when either is unknown or too large)."""
    if later is None or earlier is None:
        return None
    pair = _as_full_pair(later, earlier)
    if pair is None:
        return None
    factors = tuple(_ones(a @ b) for a, b in zip(*pair, strict=True))
    return Pattern(factors, later.layout if len(factors) > 1 else "full")


def join_flops(later: Pattern | None, earlier: Pattern | None) -> int | None:
    """Multiply-adds of ``later @ earlier`` on the patterns: ``Σ_k cols_k(later)·rows_k(earlier)``.

    Kronecker factors multiply, so the count is the product of the factors' counts.
    """
    if later is None or earlier is None:
        return None
    pair = _as_full_pair(later, earlier)
    if pair is None:
        return None
    total = 1
    for a, b in zip(*pair, strict=True):
        column_counts = np.bincount(a.indices, minlength=a.shape[1])
        row_counts = np.diff(b.indptr)
        total *= int(np.dot(column_counts.astype(np.int64), row_counts.astype(np.int64)))
    return total
