"""A stack of layer objects as one affine map, its matrix formed in a cheap association order."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.budget import check_max_bytes, nnz_estimate
from convmatrix.builder.dtypes import integer_dtype
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES, SparseFormat
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers.base import Layer
from convmatrix.layers.dense import APPLY_CHUNK_BYTES, DENSE_FILL, block_bytes, dense_product
from convmatrix.layers.patterns import Pattern, join_flops, layer_pattern, product_pattern
from convmatrix.typing import Layout

if TYPE_CHECKING:
    from convmatrix.geometry.view import AxisSteps

__all__ = ["Order", "ProductPlan", "Sequential", "nnz_estimate", "product_dtype"]

Order = int | tuple["Order", "Order"]
"""An association order over a chain: a leaf index, or ``(earlier, later)`` sub-orders whose
product is ``M_later @ M_earlier`` (leaves numbered in layer order, 0 = first applied)."""

_INDEX_BYTES = 4  # int32 indices; the estimates need only be close


def _nbytes(nnz: float, rows: int, itemsize: int) -> float:
    return nnz * (itemsize + _INDEX_BYTES) + (rows + 1) * _INDEX_BYTES


@dataclass(frozen=True)
class _Node:
    """Estimates of one product in a plan: ``M_stop-1 @ ... @ M_start``."""

    start: int
    stop: int
    rows: int
    cols: int
    nnz: float
    flops: float  # multiply-adds to form it from its two halves (0 for a leaf)
    cost: float  # total flops + entries written over the subtree
    peak: float  # bytes held at once while forming it
    order: Order
    blocks: tuple[tuple[int, int], ...] = ()  # (leaf, parts): a factor built in row blocks
    column_blocks: tuple[tuple[int, int], ...] = ()  # ... in column blocks
    row_max: float = math.inf  # upper bounds on the entries of one row / one column
    column_max: float = math.inf


@dataclass(frozen=True)
class ProductPlan:
    """How :meth:`Sequential.matrix` forms the product of its layers' matrices.

    Attributes
    ----------
    layers : tuple of Layer
        The chain, in layer order (nested stacks flattened).
    order : Order
        The association order (see :data:`Order`).
    nnz : float
        Estimated stored entries of the product.
    flops : float
        Estimated multiply-adds of all the sparse products.
    peak_bytes : float
        Estimated bytes held at once: factors are built one at a time, when needed, and
        dropped after use; a large convolution multiplied onto a small product is built in
        blocks of output channels (:attr:`blocks`), each multiplied and dropped in turn.
    blocks : dict of int to int
        Leaf index → number of row blocks it is built in (absent: built whole).
    column_blocks : dict of int to int
        Leaf index → number of column blocks (a large factor multiplied from the left by a
        product with fewer entries).
    """

    layers: tuple[Layer, ...]
    order: Order
    nnz: float
    flops: float
    peak_bytes: float
    blocks: dict[int, int]
    column_blocks: dict[int, int]

    def matrix(self, format: SparseFormat = "csr", *,
               max_bytes: int | None = DEFAULT_MAX_BYTES) -> sp.sparray:
        """Form the product in :attr:`order` (refused first if :attr:`peak_bytes` > max_bytes).

        Parameters
        ----------
        format : {"csr", "csc", "coo"}, optional
        max_bytes : int or None, optional
            Guard on the estimated peak (and on every factor as it is built).

        Returns
        -------
        scipy.sparse array, shape ``(∏output_shape, ∏input_shape)``
        """
        budget = check_max_bytes(max_bytes)
        dtype = product_dtype(self.layers, refuse=True)
        if budget is not None and self.peak_bytes > budget:
            raise ConvMatrixError(
                f"the stack's matrix needs an estimated {self.peak_bytes / 2**30:.2f} GiB at "
                f"its peak (product order {self.order}), over `max_bytes` "
                f"(={budget / 2**30:.2f} GiB); pass a larger max_bytes (or None) to build it")
        product = _evaluate(self.layers, self.order, budget, self.blocks, self.column_blocks,
                            dtype)
        return product.asformat(format)

    def __str__(self) -> str:
        return (f"product order {_order_text(self.order)}: ~{self.nnz:,.0f} entries, "
                f"~{self.flops:,.0f} multiply-adds, peak ~{self.peak_bytes / 2**20:,.1f} MiB")


def _order_text(order: Order) -> str:
    if isinstance(order, int):
        return f"M{order}"
    first, second = order
    return f"({_order_text(second)} @ {_order_text(first)})"


def _row_blocks(layer: Layer, parts: int) -> list[Layer] | None:
    """The layer split by output channels into ``parts`` layers whose matrices stack to its own.

    Only for ungrouped convolutions and transposed convolutions (None otherwise).
    """
    from convmatrix.layers.conv import ConvLayer

    if parts <= 1 or not isinstance(layer, ConvLayer) or layer.groups != 1:
        return None
    spec, weight = layer.spec, layer.weight
    bounds = np.linspace(0, layer.output_shape[0], min(parts, layer.output_shape[0]) + 1)
    blocks: list[Layer] = []
    for lo, hi in itertools.pairwise(bounds.astype(int).tolist()):
        if layer.direction == "forward":  # output channels: the spec's out_channels
            part = replace(spec, out_channels=hi - lo)
            blocks.append(ConvLayer.from_spec(part, weight[lo:hi]))
        else:  # a transposed layer's output channels are its spec's in_channels
            part = replace(spec, in_channels=hi - lo)
            blocks.append(ConvLayer.from_spec(part, weight[:, lo:hi], direction="adjoint"))
    return blocks


def _column_blocks(layer: Layer, parts: int) -> list[Layer] | None:
    """The layer split by input channels into ``parts`` layers whose matrices sit side by side.

    Only for ungrouped convolutions and transposed convolutions (None otherwise).
    """
    from convmatrix.layers.conv import ConvLayer

    if parts <= 1 or not isinstance(layer, ConvLayer) or layer.groups != 1:
        return None
    spec, weight = layer.spec, layer.weight
    bounds = np.linspace(0, layer.input_shape[0], min(parts, layer.input_shape[0]) + 1)
    blocks: list[Layer] = []
    for lo, hi in itertools.pairwise(bounds.astype(int).tolist()):
        if layer.direction == "forward":  # input channels: the spec's in_channels
            part = replace(spec, in_channels=hi - lo)
            blocks.append(ConvLayer.from_spec(part, weight[:, lo:hi]))
        else:  # a transposed layer's input channels are its spec's out_channels
            part = replace(spec, out_channels=hi - lo)
            blocks.append(ConvLayer.from_spec(part, weight[lo:hi], direction="adjoint"))
    return blocks


def product_dtype(layers: tuple[Layer, ...], *, refuse: bool = False) -> np.dtype[Any]:
    """The dtype the product of ``layers`` (and its offset) is formed in.

    The integer rule (:data:`convmatrix.builder.dtypes.INTEGER_RULE`): for integer and bool
    layers the smallest integer type holding ``∏ max(‖M_k‖∞, 1)`` (which bounds every entry
    and partial sum of the product, in any association order) and the offset's bound; a
    product of bool layers counts paths in int64. ``refuse``: raise
    :class:`~convmatrix.ConvMatrixError` when int64 cannot hold the bound (else int64).
    """
    natural = np.result_type(*(layer.dtype for layer in layers))
    if natural.kind not in "biu":
        return natural
    try:
        entries = math.prod(max(layer.abs_row_sum(), 1) for layer in layers)
        offsets = 0
        for layer in layers:
            offsets = layer._magnitude(offsets)
        return integer_dtype(natural, max(entries, offsets),
                             f"the product of {len(layers)} {natural} layers")
    except ConvMatrixError:
        if refuse:
            raise
        return np.dtype(np.int64)


def _leaf_matrix(layer: Layer, max_bytes: int | None, dtype: np.dtype[Any]) -> sp.csr_array:
    return sp.csr_array(layer.matrix_in(dtype, "csr", max_bytes=max_bytes))


def _evaluate(layers: tuple[Layer, ...], order: Order, max_bytes: int | None,
              blocks: dict[int, int], column_blocks: dict[int, int],
              dtype: np.dtype[Any]) -> sp.sparray:
    """Build leaves only when needed (in ``dtype``) and drop each operand after its product."""
    if isinstance(order, int):
        return _leaf_matrix(layers[order], max_bytes, dtype)
    first, second = order
    columns = (_column_blocks(layers[first], column_blocks.get(first, 1))
               if isinstance(first, int) else None)
    if columns is not None:  # the later product first, then one column block at a time
        later = _evaluate(layers, second, max_bytes, blocks, column_blocks, dtype)
        parts = [sp.csr_array(later @ _leaf_matrix(piece, max_bytes, dtype))
                 for piece in columns]
        del later
        return sp.csr_array(sp.hstack(parts, format="csr"))
    earlier = _evaluate(layers, first, max_bytes, blocks, column_blocks, dtype)
    pieces = (_row_blocks(layers[second], blocks.get(second, 1))
              if isinstance(second, int) else None)
    if pieces is not None:
        rows = [sp.csr_array(_leaf_matrix(piece, max_bytes, dtype) @ earlier)
                for piece in pieces]
        del earlier
        return sp.csr_array(sp.vstack(rows, format="csr"))
    later = _evaluate(layers, second, max_bytes, blocks, column_blocks, dtype)
    product = later @ earlier
    del earlier, later
    return sp.csr_array(product)


def _leaf_orders(order: Order) -> list[int]:
    if isinstance(order, int):
        return [order]
    return _leaf_orders(order[0]) + _leaf_orders(order[1])


def _check_order(order: Any, count: int) -> Order:
    def valid(node: Any) -> bool:
        if isinstance(node, bool):
            return False
        if isinstance(node, int):
            return 0 <= node < count
        return isinstance(node, tuple) and len(node) == 2 and valid(node[0]) and valid(node[1])

    if not valid(order) or _leaf_orders(order) != list(range(count)):
        raise ConvMatrixError(
            f"`order` (={order!r}) must be nested pairs (earlier, later) of the leaf indices "
            f"0..{count - 1}, each once and in layer order")
    return order  # type: ignore[no-any-return]


class _Estimator:
    """nnz / flops / peak estimates of sub-chain products.

    From the factors' structural patterns (:mod:`convmatrix.layers.patterns`: per-axis reach
    of convolutions, composed axis by axis; small other layers whole): the product's stored
    entries and multiply-adds are then exact structural counts, an upper bound on what the
    sparse product stores. A sub-chain without a pattern (a large non-convolution layer, mixed
    layouts) falls back to proven bounds from the halves: ``nnz(A B) ≤ min(rows·cols,
    nnz(A)·rowmax(B), nnz(B)·colmax(A))``, with the most entries per row and per column
    bounded the same way (``rowmax(A B) ≤ rowmax(A)·rowmax(B)``) from the leaves' patterns,
    or from ``min(cols, nnz)`` where a leaf has none. Its multiply-adds, which only rank the
    orders, assume uniformly spread entries.
    """

    def __init__(self, layers: tuple[Layer, ...]) -> None:
        self.layers = layers
        self.itemsize = max(product_dtype(layers).itemsize,
                            *(np.dtype(layer.dtype).itemsize for layer in layers))
        self.patterns: dict[tuple[int, int], Pattern | None] = {}
        self.leaves = [self._leaf(i) for i in range(len(layers))]
        self.blockable = [_row_blocks(layer, 2) is not None for layer in layers]

    def pattern(self, start: int, stop: int) -> Pattern | None:
        """The structural pattern of ``M_stop-1 @ ... @ M_start`` (cached)."""
        key = (start, stop)
        if key not in self.patterns:
            if stop - start == 1:
                self.patterns[key] = layer_pattern(self.layers[start])
            else:
                earlier = self.pattern(start, stop - 1)
                self.patterns[key] = (None if earlier is None else
                                      product_pattern(self.pattern(stop - 1, stop), earlier))
        return self.patterns[key]

    def _leaf(self, i: int) -> _Node:
        rows, cols = self.layers[i].matrix_shape
        nnz = float(nnz_estimate(self.layers[i]))
        pattern = self.pattern(i, i + 1)
        row_max, column_max = ((min(cols, nnz), min(rows, nnz)) if pattern is None else
                               (pattern.row_max, pattern.column_max))
        return _Node(i, i + 1, rows, cols, nnz, 0.0, 0.0,
                     _nbytes(nnz, rows, self.itemsize), i,
                     row_max=float(row_max), column_max=float(column_max))

    def join(self, earlier: _Node, later: _Node) -> _Node:
        """``later @ earlier``: flops ≈ nnz(later)·nnz(earlier)/inner (uniform rows)."""
        inner = max(earlier.rows, 1)
        flops = later.nnz * earlier.nnz / inner
        # proven bounds: every entry of later reaches at most a row of earlier, and so on
        nnz = min(float(later.rows) * earlier.cols, later.nnz * earlier.row_max,
                  earlier.nnz * later.column_max)
        row_max = min(float(earlier.cols), later.row_max * earlier.row_max)
        column_max = min(float(later.rows), later.column_max * earlier.column_max)
        pattern = self.pattern(earlier.start, later.stop)
        if pattern is not None:  # exact structural counts
            nnz = min(float(later.rows) * earlier.cols, float(pattern.nnz))
            row_max, column_max = float(pattern.row_max), float(pattern.column_max)
            counted = join_flops(self.pattern(later.start, later.stop),
                                 self.pattern(earlier.start, earlier.stop))
            if counted is not None:
                flops = float(counted)
        # the result plus scipy's per-column workspace of the product (a value and an index)
        size = (_nbytes(nnz, later.rows, self.itemsize)
                + earlier.cols * (self.itemsize + _INDEX_BYTES))
        earlier_size = _nbytes(earlier.nnz, earlier.rows, self.itemsize)
        later_size = _nbytes(later.nnz, later.rows, self.itemsize)
        blocks = earlier.blocks + later.blocks
        column_blocks = earlier.column_blocks + later.column_blocks
        peak = max(earlier.peak, earlier_size + later.peak, earlier_size + later_size + size)
        leaf = later.order
        if isinstance(leaf, int) and self.blockable[leaf]:  # the later factor in row blocks
            parts = min(math.ceil(later_size / max(size, earlier_size, 1.0)),
                        self.layers[leaf].output_shape[0])
            blocked = max(earlier.peak, earlier_size + later_size / parts + 2 * size)
            if parts > 1 and blocked < peak:
                peak, blocks = blocked, (*blocks, (leaf, parts))
        leaf = earlier.order
        if isinstance(leaf, int) and self.blockable[leaf] and len(blocks) == len(
                earlier.blocks + later.blocks):  # the earlier factor in column blocks
            parts = min(math.ceil(earlier_size / max(size, later_size, 1.0)),
                        self.layers[leaf].input_shape[0])
            blocked = max(later.peak, later_size + earlier_size / parts + 2 * size)
            if parts > 1 and blocked < peak:
                peak, column_blocks = blocked, (*column_blocks, (leaf, parts))
        return _Node(earlier.start, later.stop, later.rows, earlier.cols, nnz, flops,
                     earlier.cost + later.cost + flops + nnz, peak, (earlier.order, later.order),
                     blocks, column_blocks, row_max, column_max)

    def best(self) -> _Node:
        """Dynamic programming over the chain: the order of least flops + entries written."""
        n = len(self.leaves)
        table: dict[tuple[int, int], _Node] = {(i, i + 1): self.leaves[i] for i in range(n)}
        for length in range(2, n + 1):
            for start in range(n - length + 1):
                stop = start + length
                options = [self.join(table[start, cut], table[cut, stop])
                           for cut in range(start + 1, stop)]
                table[start, stop] = min(options, key=lambda node: (node.cost, node.peak))
        return table[0, n]

    def of(self, order: Order) -> _Node:
        if isinstance(order, int):
            return self.leaves[order]
        return self.join(self.of(order[0]), self.of(order[1]))


class Sequential(Layer):
    """Layers applied one after another: one affine map ``x ↦ M x + b``.

    ``M = M_L ⋯ M_2 M_1`` is the exact sparse product of the layers' matrices, formed in the
    association order that a dynamic program over the chain estimates cheapest (never
    dense; :meth:`plan` shows it), and ``b = M_L(⋯(M_2 b_1 + b_2)⋯) + b_L``.

    Parameters
    ----------
    layers : iterable of Layer
        At least one layer; each layer's output shape must be the next one's input shape.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> stack = cm.Sequential([cm.ConvTranspose(np.ones((1, 1, 2)), (1, 2)),
    ...                        cm.ConvTranspose(np.ones((1, 1, 2)), (1, 3), bias=[1.0])])
    >>> stack
    Sequential(2 layers, 1×2 → 1×4)
    >>> stack.matrix().toarray()
    array([[1., 0.],
           [2., 1.],
           [1., 2.],
           [0., 1.]])
    >>> stack(np.ones((1, 2)))
    array([[2., 4., 4., 2.]])
    >>> stack.T
    Sequential(2 layers, 1×4 → 1×2)
    """

    def __init__(self, layers: Iterable[Layer]) -> None:
        if isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
            raise ConvMatrixError(
                f"`layers` (={type(layers).__name__}) must be a list of layer objects")
        items = tuple(layers)
        if not items:
            raise ConvMatrixError("`layers` is empty; a Sequential needs at least one layer")
        for position, layer in enumerate(items):
            if not isinstance(layer, Layer):
                raise ConvMatrixError(
                    f"`layers[{position}]` (={type(layer).__name__}) is not a layer object "
                    f"(convmatrix.layers.base.Layer)")
        for position in range(len(items) - 1):
            before, after = items[position], items[position + 1]
            if before.output_shape != after.input_shape:
                raise ConvMatrixError(
                    f"shape mismatch between layers[{position}] and layers[{position + 1}]: "
                    f"{before!r} outputs {shape_text(before.output_shape)} but {after!r} takes "
                    f"{shape_text(after.input_shape)}")
        self.layers: tuple[Layer, ...] = items
        self._dtype: np.dtype[Any] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The first layer's input shape."""
        return self.layers[0].input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The last layer's output shape."""
        return self.layers[-1].output_shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of the product: the layers' common dtype, widened by the integer rule.

        Integer and bool stacks: the smallest integer type that holds every entry of the
        product (bound ``∏ max(‖M_k‖∞, 1)``) and of the offset; bool layers multiply to int64
        path counts (see :func:`product_dtype` and
        :data:`convmatrix.builder.dtypes.INTEGER_RULE`). Float stays float.
        """
        if self._dtype is None:
            self._dtype = product_dtype(self.chain())
        return self._dtype

    def abs_row_sum(self) -> int:
        """``∏ max(‖M_k‖∞, 1)``: bounds ``‖M‖∞`` and every partial product's entries."""
        return math.prod(max(layer.abs_row_sum(), 1) for layer in self.layers)

    def _magnitude(self, x_max: int) -> int:
        for layer in self.layers:
            x_max = layer._magnitude(x_max)
        return x_max

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    @overload
    def __getitem__(self, index: int) -> Layer: ...

    @overload
    def __getitem__(self, index: slice) -> Sequential: ...

    def __getitem__(self, index: int | slice) -> Layer:
        if isinstance(index, slice):
            return Sequential(self.layers[index])
        return self.layers[index]

    def chain(self) -> tuple[Layer, ...]:
        """The layers with nested stacks flattened, in layer order (the product's factors)."""
        return tuple(leaf for layer in self.layers for leaf in layer.chain())

    def plan(self, order: Order | None = None) -> ProductPlan:
        """How the product is formed: the cheapest estimated order, or the one given.

        Parameters
        ----------
        order : Order, optional
            Nested pairs ``(earlier, later)`` of leaf indices of :meth:`chain`; e.g.
            ``((0, 1), 2)`` multiplies the first two layers first (input side first) and
            ``(0, (1, 2))`` the last two. Default: the order a dynamic program over the chain
            estimates cheapest (multiply-adds plus entries written, assuming uniformly spread
            entries).

        Returns
        -------
        ProductPlan

        Examples
        --------
        >>> import numpy as np
        >>> import convmatrix as cm
        >>> stack = cm.Sequential([cm.Conv(np.ones((8, 1, 3)), (1, 50)),
        ...                        cm.Conv(np.ones((8, 8, 3)), (8, 48)),
        ...                        cm.Conv(np.ones((1, 8, 3)), (8, 46))])
        >>> stack.plan().order        # the narrow end first
        (0, (1, 2))
        """
        chain = self.chain()
        estimator = _Estimator(chain)
        if order is None:
            node = estimator.best()
        else:
            node = estimator.of(_check_order(order, len(chain)))
        return ProductPlan(chain, node.order, node.nnz, node.cost - node.nnz, node.peak,
                           dict(node.blocks), dict(node.column_blocks))

    def _check_budget(self, format: SparseFormat, max_bytes: int) -> None:
        """None here: :meth:`_build_matrix` refuses on the plan's peak, before building."""

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        plan = self.plan()
        dense = self._dense_nbytes(plan)
        if dense is not None and (max_bytes is None or dense <= max_bytes):
            return sp.csr_array(dense_product(
                self, None, chunk_bytes=block_bytes(max_bytes))).asformat(format)
        return plan.matrix(format, max_bytes=max_bytes)

    def _dense_nbytes(self, plan: ProductPlan) -> float | None:
        """Bytes of the dense build when the product is mostly full (else None).

        A product whose estimated entries reach :data:`~convmatrix.layers.dense.DENSE_FILL`
        of all entries is formed by applying the stack to blocks of unit vectors (no factor's
        matrix is built, no sparse product runs): the dense result, its CSR copy and one block
        of columns in flight.
        """
        rows, cols = self.matrix_shape
        dtype = self.dtype
        if dtype.kind not in "fc" or plan.nnz < DENSE_FILL * rows * cols:
            return None
        itemsize = max(dtype.itemsize, 8)
        return (rows * cols * itemsize + plan.nnz * (itemsize + 4) + (rows + 1) * 8
                + min(APPLY_CHUNK_BYTES, cols * self._apply_nbytes(1, itemsize)))

    def offset(self) -> np.ndarray:
        """``b = M_L(⋯(M_2 b_1 + b_2)⋯) + b_L``: each offset pushed through the later layers.

        Examples
        --------
        >>> import numpy as np
        >>> import convmatrix as cm
        >>> cm.Sequential([cm.Conv(np.ones((1, 1, 2)), (1, 3), bias=[1.0]),
        ...                cm.Conv(np.ones((1, 1, 2)), (1, 2), bias=[0.5])]).offset()
        array([2.5])
        """
        total = np.zeros((1, *self.input_shape), dtype=self.dtype)
        for layer in self.layers:
            total = layer.apply_forward(total) + layer.offset().reshape(1, *layer.output_shape)
        return total.reshape(-1)

    def apply_forward(self, x: np.ndarray) -> np.ndarray:
        """The linear part on a batch (see :meth:`Layer.apply_forward`)."""
        for layer in self.layers:
            x = layer.apply_forward(x)
        return x

    def apply_adjoint(self, y: np.ndarray) -> np.ndarray:
        """The adjoint on a batch (see :meth:`Layer.apply_adjoint`)."""
        for layer in reversed(self.layers):
            y = layer.apply_adjoint(y)
        return y

    def _adjoint(self) -> Layer:
        return Sequential([layer.T for layer in reversed(self.layers)])

    @property
    def layout(self) -> Layout:
        """The last layer's layout (how the stack's output is flattened)."""
        return self.layers[-1].layout

    def path_matrix(self) -> sp.csr_array:
        """The product of the layers' path matrices."""
        product = self.layers[0].path_matrix()
        for item in self.layers[1:]:
            product = sp.csr_array(item.path_matrix() @ product)
        return product

    def own_interior(self) -> np.ndarray:
        """The stack's interior: no border effect of any of its layers reaches the pixel."""
        from convmatrix.analysis.paths import interior_mask

        return interior_mask(self).ravel()

    def axis_steps(self) -> AxisSteps | None:
        """The layers' steps joined per axis (None if a layer has none), factors multiplied."""
        ndim = len(self.output_shape) - 1
        combined: list[list[Any] | None] = [[] for _ in range(ndim)]
        factor = 1
        for item in self.layers:
            found = item.axis_steps()
            if found is None or len(found[0]) != ndim:
                return None
            per_axis, item_factor = found
            factor *= item_factor
            for a in range(ndim):
                current, extra = combined[a], per_axis[a]
                combined[a] = None if current is None or extra is None else current + extra
        return combined, factor

    def _describe(self) -> str:
        count = f"{len(self)} layer" + ("" if len(self) == 1 else "s")
        return f"{count}, {shape_text(self.input_shape)} → {shape_text(self.output_shape)}"

    def _rows(self) -> list[tuple[str, str, str, str]]:
        return [(str(position), repr(layer), shape_text(layer.input_shape),
                 shape_text(layer.output_shape)) for position, layer in enumerate(self.layers)]

    def __str__(self) -> str:
        """A table: one line per layer with its input and output shapes.

        Examples
        --------
        >>> import numpy as np
        >>> import convmatrix as cm
        >>> print(cm.Sequential([cm.Conv(np.ones((2, 1, 2)), (1, 3))]))
        Sequential(1 layer, 1×3 → 2×2)
          #  layer                         input  output
          0  Conv(1→2, 1×3 → 2×2, kernel 2)  1×3    2×2
        """
        rows = [("#", "layer", "input", "output"), *self._rows()]
        widths = [max(len(row[column]) for row in rows) for column in range(4)]
        lines = [repr(self)]
        for row in rows:
            cells = [row[0].rjust(widths[0])] + [cell.ljust(width) for cell, width
                                                 in zip(row[1:], widths[1:], strict=True)]
            lines.append(("  " + "  ".join(cells)).rstrip())
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        lines = [f"`{self!r}`", "", "| # | layer | input | output |", "|---:|---|---|---|"]
        lines += [f"| {n} | `{layer}` | {a} | {b} |" for n, layer, a, b in self._rows()]
        return "\n".join(lines)

    def _nnz_estimate(self) -> float:
        return self.plan().nnz
