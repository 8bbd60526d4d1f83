"""A layer's matrix as a stream of CSR row blocks, built channel range by channel range."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder import indexing
from convmatrix.builder.budget import DEFAULT_MAX_BYTES, check_budget, check_max_bytes
from convmatrix.builder.sparse import spec_matrix
from convmatrix.geometry.spec import ConvSpec
from convmatrix.geometry.view import AffineMap, ConvView
from convmatrix.typing import Direction

__all__ = ["BLOCK_BYTES", "BlockPlan", "block_plan", "block_rows", "matrix_blocks", "row_view"]

BLOCK_BYTES: int = 256 * 2**20
"""Default size of one row block (data and column indices) when ``rows_per_block`` is None."""



def row_view(layer: AffineMap) -> ConvView | None:
    """The convolution whose channel ranges give ``layer``'s rows, or None.

    The layer's :meth:`~convmatrix.Layer.conv_view` when its rows are those of ``C``
    (``direction="forward"``) or ``Cᵀ`` (``"adjoint"``) in channels-first order; None for
    other kinds and for channels-last layouts (whose rows interleave the channels).
    """
    view = layer.conv_view()
    if view is None or view.layout != "channels_first":
        return None
    return view


def block_rows(layer: AffineMap, rows_per_block: int | None = None) -> int:
    """Validate ``rows_per_block``, or choose one giving blocks of about :data:`BLOCK_BYTES`."""
    rows = layer.matrix_shape[0]
    if rows_per_block is not None:
        if isinstance(rows_per_block, bool) or not isinstance(rows_per_block, int | np.integer):
            raise ConvMatrixError(
                f"`rows_per_block` (={rows_per_block!r}) must be a positive int or None")
        if rows_per_block < 1:
            raise ConvMatrixError(
                f"`rows_per_block` (={rows_per_block!r}) must be a positive int or None")
        return int(rows_per_block)
    view = row_view(layer)
    if view is None:
        estimate = getattr(layer, "_matrix_nbytes", None)
        if not hasattr(layer, "matrix_rows") or estimate is None:
            return max(rows, 1)
        per_row = max(1.0, estimate("csr") / max(rows, 1))
        return max(1, min(rows, int(BLOCK_BYTES // per_row)))
    nnz = view.spec.nnz_upper_bound()
    per_row = max(1.0, nnz / max(rows, 1)) * (np.dtype(layer.dtype).itemsize + 8)
    return max(1, min(rows, int(BLOCK_BYTES // per_row)))


def matrix_blocks(layer: AffineMap, rows_per_block: int | None = None, *,
                  max_bytes: int | None = DEFAULT_MAX_BYTES) -> Iterator[sp.csr_array]:
    """Yield ``layer.matrix()`` as consecutive CSR row blocks.

    Parameters
    ----------
    layer : AffineMap
        Any layer object.
    rows_per_block : int, optional
        Rows per block (the last block of each channel range may be shorter); default: blocks
        of about :data:`BLOCK_BYTES`.
    max_bytes : int or None, optional
        Refuse (:class:`~convmatrix.ConvMatrixError`, when called, before anything is built)
        when what is held at once — one block, or for kinds built whole, the matrix — is
        estimated above this many bytes; None disables the guard.

    Yields
    ------
    scipy.sparse.csr_array, shape ``(rows, layer.matrix_shape[1])``
        ``scipy.sparse.vstack`` of all blocks equals ``layer.matrix()``.

    Notes
    -----
    Convolutions and transposed convolutions (and their adjoints) build each block directly:
    the rows of output channels ``c0:c1`` are the matrix of the same convolution restricted
    to those output channels (weight ``W[c0:c1]``, one group's input channels, columns
    shifted to that group); the rows of a transposed layer are the columns of ``C`` of a
    range of its input channels. Ranges never straddle a group. A block smaller than one
    channel is cut from that channel's block, so peak memory is one block or one channel.
    Kinds with a ``matrix_rows(start, stop)`` hook (the per-axis kinds — pooling, padding,
    upsampling, batch norm, repeat — and the identity) build each block by itself. Other
    layer kinds build the matrix once (guarded by ``max_bytes``) and slice it.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.ones((3, 2, 2, 2)), (2, 4, 4), padding=1)
    >>> [block.shape for block in conv.matrix_blocks(rows_per_block=50)]
    [(50, 32), (25, 32)]
    >>> [block.shape for block in conv.matrix_blocks(rows_per_block=10)][:4]
    [(10, 32), (10, 32), (5, 32), (10, 32)]
    >>> (sp.vstack(list(conv.matrix_blocks(rows_per_block=50))) != conv.matrix()).nnz
    0
    """
    step = block_rows(layer, rows_per_block)
    if row_view(layer) is None and hasattr(layer, "matrix_rows"):  # lazily: maybe many blocks
        return (build() for _, _, build in _row_ranges(layer, step, check_max_bytes(max_bytes)))
    plan = block_plan(layer, step, max_bytes=max_bytes)  # refused here, not when iterated
    return _stream(plan, step)


def _row_ranges(layer: Any, rows_per_block: int, budget: int | None
                ) -> Iterator[tuple[int, int, Callable[[], sp.csr_array]]]:
    """Blocks of a kind with a ``matrix_rows`` hook; refused (when called) over ``budget``."""
    total = layer.matrix_shape[0]
    estimate = getattr(layer, "_matrix_nbytes", None)
    if budget is not None and estimate is not None and total:
        block = min(rows_per_block, total)
        check_budget(f"one row block ({block:,} rows; pass a smaller `rows_per_block`) of "
                     f"{layer!r}", -(-estimate("csr") * block // total), budget)
    return ((start, min(start + rows_per_block, total),
             partial(layer.matrix_rows, start, min(start + rows_per_block, total)))
            for start in range(0, total, rows_per_block))


def _stream(plan: BlockPlan, step: int) -> Iterator[sp.csr_array]:
    for _, _, build in plan:
        block = build()
        if block.shape[0] <= step:
            yield block
        else:
            for start in range(0, block.shape[0], step):
                yield sp.csr_array(block[start:start + step])
        del block  # one block alive at a time: drop it before building the next


BlockPlan = list[tuple[int, int, Callable[[], sp.csr_array]]]


def block_plan(layer: AffineMap, rows_per_block: int, *,
               max_bytes: int | None = DEFAULT_MAX_BYTES) -> BlockPlan:
    """Consecutive row ranges ``(start, stop, build)``; ``build()`` returns those rows as CSR.

    Convolution kinds: ranges of whole channels within one group, as many as fit
    ``rows_per_block`` (at least one channel). Other layer kinds: one range, the matrix.
    Refused first (:class:`~convmatrix.ConvMatrixError`) when the largest block is estimated
    above ``max_bytes``; the whole-matrix build of other kinds is guarded by it too.
    """
    budget = check_max_bytes(max_bytes)
    view = row_view(layer)
    rows_of = getattr(layer, "matrix_rows", None)
    if view is None and rows_of is not None:  # a kind that builds any rows by itself
        return list(_row_ranges(layer, rows_per_block, budget))
    if view is None:
        estimate = getattr(layer, "_matrix_nbytes", None)
        if budget is not None and estimate is not None:
            check_budget(f"the matrix {layer.matrix_shape} of {layer!r} (built whole: this "
                         f"kind has no row blocks)", estimate("csr"), budget)
        return [(0, layer.matrix_shape[0],
                 lambda: sp.csr_array(layer.matrix("csr", max_bytes=budget)))]
    spec, weight, direction = view.spec, view.weight, view.direction
    forward = direction == "forward"
    groups = spec.groups
    cog, cig = spec.out_channels // groups, spec.in_channels // groups
    row_channels, row_pixels = ((cog, math.prod(spec.output_size)) if forward
                                else (cig, math.prod(spec.input_size)))
    per_block = max(1, rows_per_block // row_pixels)
    if budget is not None:  # the largest block: per_block channels of the closed-form bound
        rows = max(1, layer.matrix_shape[0])
        block = min(per_block, row_channels) * row_pixels
        nnz = -(-spec.nnz_upper_bound() * block // rows)
        nbytes = nnz * (np.dtype(layer.dtype).itemsize + 8) + (block + 1) * 8
        check_budget(f"one row block ({block:,} rows) of {layer!r}", nbytes, budget)
    plan: BlockPlan = []
    for group in range(groups):
        for first in range(0, row_channels, per_block):
            last = min(first + per_block, row_channels)
            start = (group * row_channels + first) * row_pixels
            stop = (group * row_channels + last) * row_pixels
            plan.append((start, stop, partial(_channel_block, spec, weight, group, first,
                                              last, direction=direction)))
    return plan


def _channel_block(spec: ConvSpec, weight: np.ndarray, group: int, first: int, last: int, *,
                   direction: Direction) -> sp.csr_array:
    """Rows of channels ``first:last`` of ``group`` of ``C`` (``"forward"``) or ``Cᵀ``."""
    groups = spec.groups
    cog, cig = spec.out_channels // groups, spec.in_channels // groups
    pixels_out, pixels_in = math.prod(spec.output_size), math.prod(spec.input_size)
    if direction == "forward":
        sub = dataclasses.replace(spec, in_channels=cig, out_channels=last - first, groups=1)
        rows = spec_matrix(sub, weight[group * cog + first: group * cog + last], format="csr",
                           max_bytes=None)
        return _shifted(rows, group * cig * pixels_in, spec.in_channels * pixels_in)
    sub = dataclasses.replace(spec, in_channels=last - first, out_channels=cog, groups=1)
    part = weight[group * cog:(group + 1) * cog, first:last]
    rows = spec_matrix(sub, part, direction="adjoint", format="csr", max_bytes=None)
    return _shifted(rows, group * cog * pixels_out, spec.out_channels * pixels_out)


def _shifted(block: Any, shift: int, columns: int) -> sp.csr_array:
    """``block`` with its column indices moved right by ``shift``, in ``columns`` columns."""
    if shift == 0 and block.shape[1] == columns:
        return sp.csr_array(block)
    index_dtype = indexing.index_dtype(block.nnz, (block.shape[0], columns))
    indices = block.indices.astype(index_dtype, copy=shift == 0)
    indices += shift
    indptr = block.indptr.astype(index_dtype, copy=False)
    return sp.csr_array((block.data, indices, indptr), shape=(block.shape[0], columns))
