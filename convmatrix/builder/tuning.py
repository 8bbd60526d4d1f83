"""The matrix-free kernels' tunables and switches, each with its one home here.

The kernels (:mod:`convmatrix.builder.forward`, :mod:`convmatrix.builder.adjoint`,
:mod:`convmatrix.builder.tiles`, :mod:`convmatrix.builder.apply`) read them at call time as
``tuning.NAME``, so setting one here, or on :mod:`convmatrix.builder.apply` (which forwards
these names to this module), changes the next call. The workspace bound
:data:`~convmatrix.builder.budget.WORKSPACE_BYTES` is a memory budget: its home is the budget
module, read the same way. The private switches choose between equivalent kernels (tests run
every path with them); the defaults are the fastest measured.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["ACCUMULATE_CHANNELS", "ACCUMULATE_RATIO", "ADJOINT_AS_CONVOLUTION", "FLAT_GROUPS",
           "GROUP_TILE_BYTES", "PAD_FIRST", "PHASE_SPLIT", "SHIFT_GAIN", "SMALL_PRODUCT",
           "STRIDED_ADJOINT", "TAPS", "TAP_CHUNK_BYTES", "TILE_BYTES", "StridedAdjoint"]

TILE_BYTES: int = 16 * 2**20
"""The preferred tile (column matrix, padded rows and product): large enough for an efficient
matrix product, small enough to stay in the last-level cache (8–16 MiB measured fastest on
the benchmark layers, ``benchmarks/bench_operator.py``)."""

SMALL_PRODUCT: int = 2**22
"""Matrix products of fewer multiply-adds per BLAS call than this run on one BLAS thread:
threads only add synchronisation to them (the limit is set around the kernels' own calls,
with ``threadpoolctl``, never globally)."""

GROUP_TILE_BYTES: int = 4 * 2**20
"""A grouped convolution's tiles hold as many groups as fit in this many bytes (at least
one): its products are small (inner dimension ``C_in/G · ∏k``), so it runs at memory speed,
fastest with a tile in the mid-level cache (the depthwise benchmark layer: 4 MiB 10 % faster
than all 64 groups at once, 1 MiB slower again)."""

TAP_CHUNK_BYTES: int = 256 * 2**10
"""A channel-wise layer's taps are added in runs of this many bytes of output (the run and the
input it reads stay in the mid-level cache across the taps; 8 KiB–32 KiB runs measured slower
on the single-channel 1024² layer only by the calls' overhead)."""

SHIFT_GAIN: float = 1.25
"""A layer's last kernel axis is applied by shifted sums (``forward._shifted_into``) when the
column matrix of every tap would move this many times the values of the smaller column matrix
and the shifted products (a traffic model: the 3-D benchmark layer's adjoint 2.2, its forward
1.5, the ResNet stage 1.34, all measured 10–50 % faster shifted)."""

FLAT_GROUPS: int = 4
"""Grouped layers with more groups than this never take flat col2im
(``adjoint._flat_col2im_into``): it adds each group's taps with calls of their own (measured:
0.62× the phases' time at 4 groups, 1.36× at 8)."""

ACCUMULATE_RATIO: float = 2.0
"""Flat col2im (``adjoint._flat_col2im_into``) adds each tap's product onto its phase inside
BLAS (``gemm`` with ``beta = 1``, one call per tap) when ``C_out/G ≤`` this many times
``C_in/G`` (half as many in float32 and complex64) or ``C_out/G ≤ 16``: the column matrix of
every tap (``∏k·C_in/G`` values per position, written by one product, read and added back)
is never formed, and each tap's product is added while it is in the cache. With many more
output than input channels the per-tap products (inner dimension ``C_out/G``, only
``C_in/G`` columns) run below BLAS speed and one product of every tap is faster (measured,
float64, ratio of the accumulated time to one product's: 3 → 64 channels 4.8, 8 → 64 1.5,
16 → 64 1.15, 64 → 128 0.89, 8 → 16 0.40, 32 → 16 0.41; float32 32 → 64 1.15, 16 → 16
0.49; ``benchmarks/bench_strided_adjoint.py`` times every path on whole layers)."""

ACCUMULATE_CHANNELS = 16
"""Flat col2im accumulates inside BLAS whatever the ratio when ``C_out/G`` is at most this
(the product is memory-bound: 4 → 16 channels 0.70)."""

PAD_FIRST = True
"""The forward pads a padded layer's samples whole before its tiles (False: each tile pads
its own rows)."""

TAPS = True
"""A channel-wise layer's forward adds its taps with BLAS ``axpy`` (False: a column matrix
like any other layer)."""

ADJOINT_AS_CONVOLUTION = True
"""A stride-1 adjoint runs as the flipped convolution (False: col2im)."""

PHASE_SPLIT = True
"""col2im of a strided layer adds its taps into a buffer split by phases (False: onto the
strided windows in place)."""

StridedAdjoint = Literal["phases", "flat", "windows"]
"""How a strided layer's adjoint runs (``adjoint._strided_adjoint``)."""

STRIDED_ADJOINT: StridedAdjoint | Literal["auto"] = "auto"
"""Forces one way of running a strided layer's adjoint; ``"auto"``: the traffic model."""
