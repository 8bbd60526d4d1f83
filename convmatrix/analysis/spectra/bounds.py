"""Certified upper bounds of the operator norm, and a stack's Lipschitz constant beside them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse.linalg import LinearOperator

from convmatrix._errors import ConvMatrixError
from convmatrix._progress import Progress, ProgressArg, check_progress
from convmatrix.analysis.linop import LayerOperator
from convmatrix.analysis.spectra import methods
from convmatrix.analysis.spectra.fft import circulant_norm, is_circulant, torus_norm
from convmatrix.analysis.spectra.iterative import Product, gram_norm
from convmatrix.analysis.spectra.methods import (
    check_finite,
    check_layer,
    operator_norm,
    power_of_two_scale,
)
from convmatrix.geometry.shapes import used_length
from convmatrix.geometry.spec import ConvSpec
from convmatrix.geometry.view import AffineMap, is_affine_map

__all__ = ["ROUNDING_MARGIN", "LipschitzBounds", "lipschitz", "operator_norm_bound",
           "padding_norm"]

ROUNDING_MARGIN: float = 1e-9
"""Relative margin added to :func:`operator_norm_bound` for the rounding of its SVDs."""


def _used_extent(spec: ConvSpec, axis: int) -> int:
    return used_length(spec.output_size[axis], spec.kernel_size[axis], spec.stride[axis],
                       spec.dilation[axis])


def padding_norm(spec: ConvSpec) -> float:
    """``‖Pad‖₂`` of the padding map onto the used padded grid: ∏ over axes √(max copies)."""
    from convmatrix.builder.padding import pad_source

    factor = 1.0
    for axis in range(spec.ndim):
        source = pad_source(spec, axis)
        copies = np.bincount(source[source >= 0], minlength=spec.input_size[axis])
        factor *= math.sqrt(int(copies.max(initial=0)))
    return factor


def _conv_bound(spec: ConvSpec, weight: np.ndarray, progress: ProgressArg = False) -> float:
    if is_circulant(spec):
        return circulant_norm(spec, weight, progress)
    grid = tuple(_used_extent(spec, axis) for axis in range(spec.ndim))
    return torus_norm(spec, weight, grid, (0,) * spec.ndim, progress) * padding_norm(spec)


def operator_norm_bound(layer: AffineMap, *, progress: ProgressArg = None) -> float:
    """A certified upper bound of ``‖C‖₂``, cheap to compute (no matrix, no iteration).

    Parameters
    ----------
    layer : AffineMap
        Any layer object; a stack gives the product of its layers' bounds.
    progress : None, bool or callable, optional
        Progress over the frequency chunks (or row blocks): None shows a bar after about 2 s
        when interactive; a callable gets ``(done, total)``. See :mod:`convmatrix._progress`.

    Returns
    -------
    float
        ``≥ operator_norm(layer)``.

    Notes
    -----
    Why it is certified, for a convolution (and its transpose, which has the same norm):

    * Block-circulant layers (circular padding, stride 1, full output): the exact norm,
      ``max_f ‖K̂(f)‖₂`` (Sedghi, Gupta & Long 2019).
    * Otherwise ``C = S·V·P``: ``P`` pads the input onto the padded grid it uses (extent
      ``L = (o − 1)s + d(k − 1) + 1`` per axis), ``V`` is the stride-1 unpadded
      cross-correlation on that grid, ``S`` keeps every ``s``-th output. Embed the padded
      input into a torus of size ``L``: no output ``o·s`` the layer keeps reads past ``L − 1``,
      so ``S·V`` is a row selection (norm ≤ 1) of the circular convolution on the torus, whose
      norm is exactly ``max_f ‖K̂_L(f)‖₂`` over the ``∏L`` torus frequencies. ``P`` has one 1 per
      row, so ``PᵀP`` is diagonal with the number of padded copies of each pixel and
      ``‖P‖₂ = ∏_axes √(max copies)`` (1 for zeros). Hence
      ``‖C‖₂ ≤ ‖P‖₂ · max_f ‖K̂_L(f)‖₂``.
    * Other layer kinds: ``√(‖C‖₁ ‖C‖_∞)`` (Hölder), from the matrix row by row block.
    * A stack: the product of its layers' bounds (submultiplicativity).

    The per-frequency SVDs are floating point: the result is enlarged by
    :data:`ROUNDING_MARGIN` (relative), far above their rounding error.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.ones((1, 1, 3, 3)), (1, 8, 8), padding=1)
    >>> bound, norm = cm.operator_norm_bound(conv), cm.operator_norm(conv)
    >>> bool(norm <= bound <= 9 * (1 + 1e-9)), round(norm, 4)
    (True, 8.2909)
    """
    layer = check_layer(layer)
    progress = check_progress(progress)
    factors = layer.chain()
    if factors != (layer,):
        return math.prod(operator_norm_bound(part, progress=progress) for part in factors)
    view = layer.conv_view()  # a transpose has the same norm: ‖Cᵀ‖₂ = ‖C‖₂
    if view is not None:
        check_finite(layer, view.weight)
        if not np.any(view.weight):
            return 0.0
        scale = power_of_two_scale(view.weight)  # exact: no overflow or underflow inside
        return (_conv_bound(view.spec, view.weight / scale, progress) * scale
                * (1 + ROUNDING_MARGIN))
    return _hoelder_bound(layer, progress) * (1 + ROUNDING_MARGIN)


def _hoelder_bound(layer: AffineMap, progress: ProgressArg = False) -> float:
    """``√(‖C‖₁ ‖C‖_∞)`` from the matrix's row blocks."""
    from convmatrix.analysis.blocks import matrix_blocks

    row_max = 0.0
    column_sums = np.zeros(layer.matrix_shape[1])
    with Progress(layer.matrix_shape[0], progress, "rows") as bar:
        for block in matrix_blocks(layer):
            check_finite(layer, block.data, "matrix entries")
            magnitude = abs(block)
            row_max = max(row_max, float(magnitude.sum(axis=1).max(initial=0.0)))
            column_sums += magnitude.sum(axis=0)
            bar.advance(block.shape[0])
            del block, magnitude
    return math.sqrt(row_max * float(column_sums.max(initial=0.0)))


def _stack_layers(layer: Any) -> list[AffineMap] | None:
    """A stack's own layers (its ``layers``), or None for a map that is no stack."""
    layers = getattr(layer, "layers", None)
    return None if layers is None else list(layers)


@dataclass(frozen=True)
class LipschitzBounds:
    """A stack's exact Lipschitz constant (norm of the product) beside the usual bounds.

    Attributes
    ----------
    names : tuple of str
        Each layer's repr.
    norms : tuple of float
        Each layer's exact ``‖C_i‖₂``.
    bounds : tuple of float
        Each layer's certified :func:`operator_norm_bound`.
    exact : float
        ``‖C_n ⋯ C_1‖₂``, the smallest Lipschitz constant of the (linear) stack.
    combined : tuple of float, optional
        For a graph (:class:`~convmatrix.Graph`): the layers' norms and certified bounds
        combined along its paths (products along a path, sums at sums, root of squares at
        concatenations), which replace the plain products.
    """

    names: tuple[str, ...]
    norms: tuple[float, ...]
    bounds: tuple[float, ...]
    exact: float
    combined: tuple[float, float] | None = None

    @property
    def product_of_norms(self) -> float:
        """``∏ ‖C_i‖₂``: the Lipschitz bound people use (a graph: its paths' combination)."""
        return math.prod(self.norms) if self.combined is None else self.combined[0]

    @property
    def product_of_bounds(self) -> float:
        """``∏`` of the per-layer certified bounds (a graph: combined along its paths)."""
        return math.prod(self.bounds) if self.combined is None else self.combined[1]

    @property
    def ratio(self) -> float:
        """How loose the product bound is: ``∏‖C_i‖ / ‖∏C_i‖`` (≥ 1; inf for a zero map)."""
        return self.product_of_norms / self.exact if self.exact > 0 else math.inf

    def _bound_text(self) -> str:
        return ("the product of the layer norms" if self.combined is None else
                "the bound combining the layer norms along the paths")

    def _what(self) -> str:
        return "stack" if self.combined is None else "graph"

    def _rows(self) -> list[tuple[str, str, str]]:
        rows = [(name, f"{norm:.6g}", f"{bound:.6g}")
                for name, norm, bound in zip(self.names, self.norms, self.bounds, strict=True)]
        rows.append(("product of the layers" if self.combined is None else
                     "the layers combined along the graph's paths",
                     f"{self.product_of_norms:.6g}", f"{self.product_of_bounds:.6g}"))
        rows.append(("the stack (exact ‖∏C_i‖₂)" if self.combined is None else
                     "the graph (exact ‖M‖₂)", f"{self.exact:.6g}", ""))
        return rows

    def __str__(self) -> str:
        rows = [("layer", "‖C‖₂", "certified bound"), *self._rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                 .rstrip() for row in rows]
        lines.append(f"{self._bound_text()} {self._verdict()}")
        return "\n".join(lines)

    def _verdict(self) -> str:
        """How the bound compares with the exact norm: tight (to rounding) or loose by ratio×."""
        if abs(self.ratio - 1.0) <= 1e-9:
            return f"equals the {self._what()}'s Lipschitz constant (it is tight here)"
        return f"overestimates the {self._what()}'s Lipschitz constant {self.ratio:.3g}×"

    def _repr_markdown_(self) -> str:
        lines = ["| layer | ‖C‖₂ | certified bound |", "| --- | --- | --- |"]
        lines += [f"| `{a}` | {b} | {c} |" for a, b, c in self._rows()]
        lines.append("")
        lines.append(f"{self._bound_text().capitalize()} {self._verdict()}.")
        return "\n".join(lines)


def lipschitz(stack: AffineMap | Sequence[AffineMap], *, tol: float = 1e-6
              ) -> LipschitzBounds:
    """The exact norm of a stack's product beside the product of its layers' norms.

    Parameters
    ----------
    stack : Layer with ``.layers`` (e.g. a ``Sequential``), or a sequence of layers
        Applied first to last; each layer's output shape must be the next one's input shape.
    tol : float, optional
        As in :func:`operator_norm`.

    Returns
    -------
    LipschitzBounds
        Renders as a table (``str``, Markdown in notebooks).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> a = cm.Conv(np.array([[[1.0, 1.0]]]), (1, 4))
    >>> b = cm.Conv(np.array([[[1.0, -1.0]]]), (1, 3))
    >>> result = cm.lipschitz([a, b])
    >>> result.exact <= result.product_of_norms
    True
    """
    parts = getattr(stack, "lipschitz_parts", None) if is_affine_map(stack) else None
    if parts is not None:  # a graph: its own way of combining its layers' norms
        return _graph_lipschitz(stack, tuple(parts()), tol)
    layers = _stack_layers(stack) if is_affine_map(stack) else list(stack)  # type: ignore[arg-type]
    if not layers:
        raise ConvMatrixError(f"`stack` (={stack!r}) must be a stack or a non-empty sequence "
                              f"of layers")
    for index, part in enumerate(layers):
        check_layer(part)
        if index and part.input_shape != layers[index - 1].output_shape:
            raise ConvMatrixError(
                f"layer {index} takes {part.input_shape} but layer {index - 1} gives "
                f"{layers[index - 1].output_shape}")
    norms = tuple(operator_norm(part, tol=tol) for part in layers)
    bounds = tuple(operator_norm_bound(part) for part in layers)
    product = Product([LayerOperator(part) for part in layers])
    exact = _product_norm(product, tol)
    return LipschitzBounds(tuple(repr(part) for part in layers), norms, bounds, exact)


def _graph_lipschitz(graph: Any, layers: tuple[AffineMap, ...], tol: float) -> LipschitzBounds:
    """A graph's exact norm beside the bound its ``combine_norms`` makes of its layers' norms."""
    norms = tuple(operator_norm(part, tol=tol) for part in layers)
    bounds = tuple(operator_norm_bound(part) for part in layers)
    exact = _product_norm(LayerOperator(graph), tol)
    return LipschitzBounds(tuple(repr(part) for part in layers), norms, bounds, exact,
                           combined=(float(graph.combine_norms(norms)),
                                     float(graph.combine_norms(bounds))))


def _product_norm(op: LinearOperator, tol: float) -> float:
    rows, cols = op.shape
    if rows * cols <= methods.DENSE_MAX_ENTRIES or min(rows, cols) <= 2:
        dense = op @ np.eye(cols, dtype=op.dtype)
        return float(np.linalg.svd(dense, compute_uv=False).max(initial=0.0))
    return gram_norm(op, tol)
