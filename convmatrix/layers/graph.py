"""Graphs of layers: residual sums, concatenations and splits as one exact affine map.

A :class:`Graph` is a directed acyclic graph of :class:`Node` objects over one input: each node
applies a one-input :class:`~convmatrix.layers.base.Layer`, or combines several nodes with a
weighted :class:`Sum` (``+``, ``−``) or a concatenation :class:`Cat` along a per-sample axis.
The whole graph is one affine map ``x ↦ M x + b``: :meth:`Graph.matrix` forms ``M`` exactly
(node by node from the input, each node's matrix with respect to the graph's input, kept only
until its last consumer has used it; a product whose result is mostly filled is formed densely by
applying the layer to the columns instead of by a sparse product), :meth:`Graph.operator` applies
it matrix-free (forward through the nodes, adjoint back through them), never forming a product.

:class:`Add` and :class:`Concat` are the two common graphs over a shared input: the sum of
several layers' maps (``Add(conv, Identity(shape))`` is a residual block) and their outputs
stacked along an axis.

This module is the layer; the node declarations (:class:`Node`, :class:`Sum`, :class:`Cat`) live
in :mod:`convmatrix.layers.graph_nodes` and the estimate behind :meth:`Graph.plan` in
:mod:`convmatrix.layers.graph_plan`. It re-exports :class:`Node`, :class:`Sum`, :class:`Cat` and
:class:`GraphPlan`, and holds the tunables the plan chooses by (:data:`STENCIL_FLOPS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.budget import format_bytes
from convmatrix.builder.dtypes import integer_dtype
from convmatrix.builder.sparse import SparseFormat
from convmatrix.geometry.shapes import shape_text
from convmatrix.geometry.spec import as_sample_shape
from convmatrix.layers.base import Layer
from convmatrix.layers.dense import APPLY_CHUNK_BYTES, DENSE_FILL, block_bytes, dense_product
from convmatrix.layers.graph_nodes import Cat, Node, Sum, cat_rows, node_shape
from convmatrix.layers.graph_plan import GraphPlan, estimate_nodes, sparse_bytes, stencil_form
from convmatrix.typing import Layout

if TYPE_CHECKING:
    from convmatrix.geometry.view import AxisSteps

__all__ = ["Add", "Cat", "Concat", "Graph", "GraphPlan", "Node", "Sum"]

_SPARSE_COST = 4.0  # a sparse product's multiply-add against a dense apply's (order of magnitude)
STENCIL_FLOPS: float = 2e6
"""Estimated sparse multiply-adds from which a graph of convolutions, sums and channel
concatenations forms its matrix in blocked form (:mod:`convmatrix.builder.stencil`; below
this, scipy's sparse products are as fast as the blocked form's fixed costs)."""


class Graph(Layer):
    """A directed acyclic graph of layers over one input: one affine map ``x ↦ M x + b``.

    Parameters
    ----------
    input_shape : sequence of int
        One input sample.
    nodes : sequence of Node
        In topological order: every node's inputs are the graph's input or earlier nodes.
    output : str
        The node whose value is the graph's output (the input's name: the identity).
    input : str, optional
        The name nodes use for the graph's input (default ``"input"``).

    Notes
    -----
    Validated at construction: duplicate names, unknown inputs, inputs named before they are
    defined (a cycle or a non-topological order), a layer's input shape against the shape its
    input node gives (naming both nodes and both shapes), a sum's inputs of different shapes,
    a concatenation's inputs that differ off its axis. Nodes the output does not depend on are
    kept (:meth:`explain` lists them) but never evaluated.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.ones((1, 1, 3)), (1, 4), padding=1)
    >>> block = cm.Graph((1, 4), [cm.Node("conv", conv, ("input",)),
    ...                           cm.Node("out", cm.Sum((1, 1)), ("conv", "input"))], "out")
    >>> block
    Graph(2 nodes, 1×4 → 1×4)
    >>> block.matrix().toarray()
    array([[2., 1., 0., 0.],
           [1., 2., 1., 0.],
           [0., 1., 2., 1.],
           [0., 0., 1., 2.]])
    >>> block(np.ones((1, 4)))
    array([[3., 4., 4., 3.]])
    >>> np.allclose(block.T.matrix().toarray(), block.matrix().toarray().T)
    True
    """

    def __init__(self, input_shape: Sequence[int], nodes: Sequence[Node], output: str, *,
                 input: str = "input") -> None:
        shape = as_sample_shape(input_shape)
        if not isinstance(input, str) or not input:
            raise ConvMatrixError(f"`input` (={input!r}) must be a non-empty str")
        if isinstance(nodes, Node) or not hasattr(nodes, "__iter__"):
            raise ConvMatrixError(f"`nodes` (={type(nodes).__name__}) must be a list of cm.Node")
        items = tuple(nodes)
        self._input_shape = shape
        self.input_name = input
        shapes: dict[str, tuple[int, ...]] = {input: self._input_shape}
        positions: dict[str, int] = {}
        names = {node.name for node in items if isinstance(node, Node)}
        for position, node in enumerate(items):
            if not isinstance(node, Node):
                raise ConvMatrixError(
                    f"`nodes[{position}]` (={type(node).__name__}) is not a cm.Node")
            if node.name == input:
                raise ConvMatrixError(
                    f"`nodes[{position}]` is named {node.name!r}, the graph's input name")
            if node.name in positions:
                raise ConvMatrixError(
                    f"`nodes[{position}]`: duplicate node name {node.name!r} (also "
                    f"nodes[{positions[node.name]}])")
            for name in node.inputs:
                if name in shapes:
                    continue
                if name in names:
                    later = next(i for i, n in enumerate(items) if n.name == name)
                    why = ("itself (a cycle)" if later == position else
                           f"nodes[{later}], which comes later: nodes must be in topological "
                           f"order (a cycle cannot be)")
                    raise ConvMatrixError(
                        f"node {node.name!r} (nodes[{position}]) takes {name!r}, defined by "
                        f"{why}")
                raise ConvMatrixError(
                    f"node {node.name!r} (nodes[{position}]) takes an unknown input {name!r}; "
                    f"known: {', '.join(map(repr, shapes))}")
            shapes[node.name] = node_shape(node, position, shapes)
            positions[node.name] = position
        if not isinstance(output, str) or output not in shapes:
            raise ConvMatrixError(
                f"`output` (={output!r}) is not a node of the graph; nodes: "
                f"{', '.join(map(repr, shapes))}")
        self.nodes: tuple[Node, ...] = items
        self.output = output
        self._shapes = shapes
        self._output_shape = shapes[output]
        self._live = self._contributing()
        self._dtype: np.dtype[Any] | None = None

    def _contributing(self) -> frozenset[str]:
        """The nodes the output depends on (the others are never evaluated)."""
        needed = {self.output}
        for node in reversed(self.nodes):
            if node.name in needed:
                needed.update(node.inputs)
        return frozenset(needed)

    # -- shapes and structure ---------------------------------------------------------------

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input sample."""
        return self._input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The output node's shape."""
        return self._output_shape

    def shape_of(self, name: str) -> tuple[int, ...]:
        """The shape of a node's value (or of the input's)."""
        if name not in self._shapes:
            raise ConvMatrixError(f"`name` (={name!r}) is not a node of the graph")
        return self._shapes[name]

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise ConvMatrixError(f"`name` (={name!r}) is not a node of the graph")

    def contributes(self, name: str) -> bool:
        """Whether the output depends on node ``name`` (lies on a path to the output)."""
        return name in self._live

    def _evaluated(self) -> list[Node]:
        return [node for node in self.nodes if node.name in self._live]

    def node_layers(self) -> Iterator[Layer]:
        """The layers of the contributing nodes, in node order."""
        for node in self._evaluated():
            if isinstance(node.op, Layer):
                yield node.op

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of the graph's matrix, widened by the integer rule.

        The common dtype of the layers and the sums' coefficients; integer and bool graphs
        (:data:`convmatrix.builder.dtypes.INTEGER_RULE`) widen to the smallest integer type
        that holds the bound on ``‖M‖∞`` and on the offset carried through the graph (int64
        when even that cannot; :meth:`matrix` then refuses). Integer arithmetic wraps modulo
        its width in sums and products alike, so intermediate products need no wider type
        than the result's.
        """
        if self._dtype is None:
            self._dtype = self._product_dtype(refuse=False)
        return self._dtype

    def _product_dtype(self, *, refuse: bool) -> np.dtype[Any]:
        types: list[Any] = []
        weak: list[Any] = []  # coefficients are weak Python numbers: float32 stays float32
        for node in self._evaluated():
            if isinstance(node.op, Layer):
                types.append(node.op.dtype)
            elif isinstance(node.op, Sum):
                weak += [int(c) if float(c).is_integer() else float(c)
                         for c in node.op.coefficients]
        natural = np.result_type(*(types or [np.dtype(np.int64)]), *weak)
        if natural.kind not in "biu":
            return natural
        try:
            return integer_dtype(natural, max(self.abs_row_sum(), self._magnitude(0)),
                                 f"the matrix of {self!r} ({natural} layers)")
        except ConvMatrixError:
            if refuse:
                raise
            return np.dtype(np.int64)

    @property
    def layout(self) -> Layout:
        """The output node's layer's layout (channels-first for a graph of sums and cats)."""
        for node in reversed(self._evaluated()):
            if isinstance(node.op, Layer):
                return node.op.layout
        return "channels_first"

    # -- the matrix ------------------------------------------------------------------------

    def plan(self) -> GraphPlan:
        """How :meth:`matrix` forms the product, estimated before anything is allocated.

        Each node's matrix with respect to the graph's input is bounded row by row (a layer's
        fullest row times its input's; a sum adds its inputs' rows; a concatenation keeps
        them); a node whose estimated fill reaches :data:`DENSE_FILL` is formed densely.

        Examples
        --------
        >>> import numpy as np
        >>> import convmatrix as cm
        >>> block = cm.Add(cm.Conv(np.ones((1, 1, 3)), (1, 64), padding=1),
        ...                cm.Identity((1, 64)))
        >>> print(block.plan())
        3 node matrices (0 dense): ~192 entries, peak ~0.0 MiB
        """
        cols = math.prod(self._input_shape)
        itemsize = max(self.dtype.itemsize, 8)
        if self.output == self.input_name:
            return GraphPlan((), float(cols), sparse_bytes(cols, cols, itemsize))
        estimate = estimate_nodes(self, itemsize=itemsize, dense_fill=DENSE_FILL)
        steps = estimate.steps
        nnz = steps[-1].nnz
        # a mostly full result, unless applying every layer to every column costs far more
        # than the sparse products (each sparse multiply-add costs several dense ones)
        if steps[-1].dense and estimate.dense_flops <= _SPARSE_COST * estimate.sparse_flops:
            rows = steps[-1].rows
            whole = (rows * cols * itemsize + nnz * (itemsize + 4) + (rows + 1) * 8
                     + min(APPLY_CHUNK_BYTES, cols * self._apply_nbytes(1, itemsize)))
            return GraphPlan(steps, nnz, whole, whole_dense=True)
        if estimate.sparse_flops >= STENCIL_FLOPS:
            program = stencil_form(self, itemsize)
            if program is not None:
                return GraphPlan(steps, nnz, program.peak_bytes, stencil=program)
        return GraphPlan(steps, nnz, estimate.peak_bytes)

    def _check_budget(self, format: SparseFormat, max_bytes: int) -> None:
        """None here: :meth:`_build_matrix` refuses on the plan's peak, before building."""

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        plan = self.plan()
        if max_bytes is not None and plan.peak_bytes > max_bytes:
            raise ConvMatrixError(
                f"the graph's matrix {self.matrix_shape} needs an estimated "
                f"{format_bytes(int(plan.peak_bytes))} at its peak ({plan}), over `max_bytes` "
                f"(={format_bytes(max_bytes)}); pass a larger max_bytes (or None) to build it")
        cols = math.prod(self._input_shape)
        dtype = self._product_dtype(refuse=True)
        if self.output == self.input_name:
            return sp.eye_array(cols, dtype=dtype, format=format)
        if plan.whole_dense:  # the result is mostly full: the graph applied to unit vectors
            return sp.csr_array(dense_product(
                self, None, chunk_bytes=block_bytes(max_bytes))).asformat(format)
        if plan.stencil is not None:  # convolutions, sums and concatenations in blocked form
            weights = {}
            for node in self._evaluated():
                if isinstance(node.op, Layer):
                    view = node.op.conv_view()
                    assert view is not None
                    weights[node.name] = view.weight
            return plan.stencil.run(weights, dtype).asformat(format)
        values: dict[str, Any] = {self.input_name: None}  # None: the identity
        for step, node in zip(plan.steps, self._evaluated(), strict=True):
            values[node.name] = self._node_matrix(node, values, step.dense, max_bytes, dtype)
            for name in step.frees:
                values.pop(name, None)
        result = values[self.output]
        if isinstance(result, np.ndarray):
            return sp.csr_array(result).asformat(format)
        return sp.csr_array(result).asformat(format)

    def _node_matrix(self, node: Node, values: dict[str, Any], dense: bool,
                     max_bytes: int | None, dtype: np.dtype[Any]) -> Any:
        cols = math.prod(self._input_shape)
        op = node.op
        inputs = [values[name] for name in node.inputs]
        if isinstance(op, Layer):
            earlier = inputs[0]
            if dense:
                return dense_product(op, earlier).astype(dtype, copy=False)
            factor = sp.csr_array(op.matrix_in(dtype, "csr", max_bytes=max_bytes))
            if earlier is None:
                return factor
            if isinstance(earlier, np.ndarray):
                earlier = sp.csr_array(earlier)
            return sp.csr_array(factor @ earlier)
        full = [sp.eye_array(cols, dtype=dtype, format="csr") if item is None else item
                for item in inputs]
        if isinstance(op, Sum):
            if dense:
                total = np.zeros((math.prod(self._shapes[node.name]), cols), dtype=dtype)
                for coefficient, item in zip(op.coefficients, full, strict=True):
                    total += coefficient * (item.toarray() if sp.issparse(item) else item)
                return total
            parts = [sp.csr_array(item) * coefficient if coefficient != 1 else sp.csr_array(item)
                     for coefficient, item in zip(op.coefficients, full, strict=True)]
            total_sparse = parts[0]
            for part in parts[1:]:
                total_sparse = total_sparse + part
            return sp.csr_array(total_sparse)
        order = cat_rows(node, self._shapes)
        if dense:
            stacked_dense = np.vstack([item.toarray() if sp.issparse(item) else item
                                       for item in full])
            return stacked_dense[order]
        stacked = sp.vstack([sp.csr_array(item) for item in full], format="csr")
        return sp.csr_array(stacked[order])


    def _nnz_estimate(self) -> float:
        return self.plan().nnz

    # -- applying --------------------------------------------------------------------------

    def _run(self, batch: np.ndarray, *, affine: bool) -> np.ndarray:
        values: dict[str, np.ndarray] = {self.input_name: batch}
        evaluated = self._evaluated()
        last_use: dict[str, int] = {}
        for index, node in enumerate(evaluated):
            for name in node.inputs:
                last_use[name] = index
        for index, node in enumerate(evaluated):
            inputs = [values[name] for name in node.inputs]
            op = node.op
            if isinstance(op, Layer):
                out = op.apply_forward(inputs[0])
                if affine and type(op).offset is not Layer.offset:
                    out = out + op.offset().reshape(op.output_shape)
            elif isinstance(op, Sum):
                out = sum((c * item for c, item in zip(op.coefficients, inputs, strict=True)),
                          start=np.zeros((), dtype=np.result_type(*inputs)))
                out = np.broadcast_to(out, inputs[0].shape).copy() if out.ndim == 0 else out
            else:
                out = np.concatenate(inputs, axis=1 + op.axis % (inputs[0].ndim - 1))
            for name in set(node.inputs):
                if last_use[name] == index and name != self.input_name:
                    del values[name]
            values[node.name] = out
        return values[self.output]

    def apply_forward(self, batch: np.ndarray) -> np.ndarray:
        """The linear part on a batch, node by node (never a product of matrices)."""
        if self.output == self.input_name:
            return batch.copy()
        return self._run(batch, affine=False)

    def apply_adjoint(self, batch: np.ndarray) -> np.ndarray:
        """The adjoint on a batch: back through the nodes in reverse order.

        A layer hands its node's gradient to its input through its own adjoint, a sum scales
        it into each input, a concatenation splits it; gradients meeting at a node add.
        """
        grads: dict[str, np.ndarray] = {self.output: batch}
        for node in reversed(self._evaluated()):
            grad = grads.pop(node.name, None)
            if grad is None:
                continue
            op = node.op
            if isinstance(op, Layer):
                parts = [op.apply_adjoint(grad)]
            elif isinstance(op, Sum):
                parts = [c * grad for c in op.coefficients]
            else:
                axis = 1 + op.axis % (grad.ndim - 1)
                sizes = [self._shapes[name][axis - 1] for name in node.inputs]
                parts = np.split(grad, np.cumsum(sizes)[:-1].tolist(), axis=axis)
            for name, part in zip(node.inputs, parts, strict=True):
                grads[name] = part if name not in grads else grads[name] + part
        result = grads.get(self.input_name)
        if result is None:  # pragma: no cover - the output always depends on the input
            return np.zeros((batch.shape[0], *self._input_shape), dtype=batch.dtype)
        return result.copy() if result is batch else result

    def offset(self) -> np.ndarray:
        """``b``: the graph run on a zero input (each layer's offset pushed through the rest).

        Examples
        --------
        >>> import numpy as np
        >>> import convmatrix as cm
        >>> conv = cm.Conv(np.ones((1, 1, 1)), (1, 2), bias=[0.5])
        >>> cm.Add(conv, conv).offset()
        array([1., 1.])
        """
        zero = np.zeros((1, *self._input_shape), dtype=self.dtype)
        if self.output == self.input_name:
            return zero.reshape(-1)
        return self._run(zero, affine=True).reshape(-1)

    def _apply_nbytes(self, batch: int, itemsize: int) -> int:
        """Bytes an apply holds: every contributing node's value at once (a generous bound)."""
        from convmatrix.builder.budget import apply_nbytes

        values = sum(math.prod(self._shapes[node.name]) for node in self._evaluated())
        return (apply_nbytes(tuple(self.node_layers()), batch, itemsize)
                + batch * (values + math.prod(self._input_shape)) * itemsize)

    def abs_row_sum(self) -> int:
        """A bound on ``‖M‖∞``: row sums bounded through the graph (sums add, layers multiply)."""
        return self._bound_through(1, lambda layer, bound: max(layer.abs_row_sum(), 1) * bound)

    def _magnitude(self, x_max: int) -> int:
        return self._bound_through(x_max, lambda layer, bound: layer._magnitude(bound))

    def _bound_through(self, start: int, through_layer: Callable[[Layer, int], int]) -> int:
        """An integer bound carried from the graph's input to its output.

        ``through_layer`` maps a layer node's input bound to its output bound; a sum gives
        ``Σ ⌈|c|⌉·bound``, a concatenation the largest of its inputs' bounds.
        """
        bound: dict[str, int] = {self.input_name: start}
        for node in self._evaluated():
            op = node.op
            if isinstance(op, Layer):
                bound[node.name] = through_layer(op, bound[node.inputs[0]])
            elif isinstance(op, Sum):
                bound[node.name] = sum(math.ceil(abs(c)) * bound[name]
                                       for c, name in zip(op.coefficients, node.inputs,
                                                          strict=True))
            else:
                bound[node.name] = max(bound[name] for name in node.inputs)
        return bound[self.output]

    # -- analysis hooks --------------------------------------------------------------------

    def lipschitz_parts(self) -> tuple[Layer, ...]:
        """The layers whose norms :meth:`combine_norms` combines (the contributing nodes')."""
        return tuple(self.node_layers())

    def combine_norms(self, norms: Sequence[float]) -> float:
        """The graph's Lipschitz bound from its layers' norms (in :meth:`lipschitz_parts` order).

        Along a path norms multiply, a sum adds its inputs' bounds weighted by
        ``|coefficient|``, a concatenation takes the root of the sum of squares
        (``‖[A; B] x‖² = ‖A x‖² + ‖B x‖²``): an upper bound on the norm of the whole map.

        Examples
        --------
        >>> import convmatrix as cm
        >>> cm.Add(cm.Identity((1, 3)), cm.Identity((1, 3))).combine_norms([1.0, 1.0])
        2.0
        """
        values = iter(norms)
        bound: dict[str, float] = {self.input_name: 1.0}
        for node in self._evaluated():
            op = node.op
            if isinstance(op, Layer):
                bound[node.name] = float(next(values)) * bound[node.inputs[0]]
            elif isinstance(op, Sum):
                bound[node.name] = sum(abs(float(c)) * bound[name] for c, name
                                       in zip(op.coefficients, node.inputs, strict=True))
            else:
                bound[node.name] = math.sqrt(sum(bound[name] ** 2 for name in node.inputs))
        return bound[self.output]

    def path_matrix(self) -> sp.csr_array:
        """Weight paths per entry: the layers' path matrices multiplied, added and stacked.

        Sums add paths (coefficients count as fixed weights 1), concatenations stack them.
        """
        cols = math.prod(self._input_shape)
        values: dict[str, sp.csr_array] = {
            self.input_name: sp.eye_array(cols, dtype=np.int64, format="csr")}
        for node in self._evaluated():
            op = node.op
            if isinstance(op, Layer):
                values[node.name] = sp.csr_array(op.path_matrix() @ values[node.inputs[0]])
            elif isinstance(op, Sum):
                total = values[node.inputs[0]]
                for name in node.inputs[1:]:
                    total = total + values[name]
                values[node.name] = sp.csr_array(total)
            else:
                stacked = sp.vstack([values[name] for name in node.inputs], format="csr")
                values[node.name] = sp.csr_array(stacked[cat_rows(node, self._shapes)])
        return values[self.output]

    def own_interior(self) -> np.ndarray:
        """The graph's interior: outputs reached by as many paths as the fullest output."""
        from convmatrix.analysis.paths import fullest_rows

        return fullest_rows(self.path_matrix())

    def axis_steps(self) -> AxisSteps | None:
        """The steps of a graph whose contributing nodes form one chain of layers, else None.

        A graph with sums or concatenations has no single per-axis law (its checkerboard is
        judged on :meth:`overlap_counts`).
        """
        evaluated = self._evaluated()
        if not evaluated or not all(isinstance(node.op, Layer) for node in evaluated):
            return None
        from convmatrix.layers.sequential import Sequential

        return Sequential(list(self.node_layers())).axis_steps()

    def _adjoint(self) -> Layer:
        from convmatrix.layers.base import Adjoint

        return Adjoint(self)

    def _describe(self) -> str:
        count = f"{len(self.nodes)} node" + ("" if len(self.nodes) == 1 else "s")
        return f"{count}, {shape_text(self.input_shape)} → {shape_text(self.output_shape)}"

    def _rows(self) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = []
        for position, node in enumerate(self.nodes):
            op = node.op
            what = repr(op) if isinstance(op, Layer) else (
                "sum " + ", ".join(f"{c:+g}·{n}" for c, n in zip(op.coefficients, node.inputs,
                                                                  strict=True))
                if isinstance(op, Sum) else f"cat axis {op.axis}")
            rows.append((str(position), node.name, node.kind, what, ", ".join(node.inputs),
                         shape_text(self._shapes[node.name]),
                         "yes" if node.name in self._live else "no"))
        return rows

    def __str__(self) -> str:
        """A table: one line per node with its kind, inputs, shape and whether it contributes.

        Examples
        --------
        >>> import convmatrix as cm
        >>> print(cm.Add(cm.Identity((1, 2)), cm.Identity((1, 2))))
        Add(3 nodes, 1×2 → 1×2)
          #  node     kind   op                         inputs            shape  contributes
          0  branch0  layer  Identity(1×2)              input             1×2    yes
          1  branch1  layer  Identity(1×2)              input             1×2    yes
          2  add      sum    sum +1·branch0, +1·branch1  branch0, branch1  1×2    yes
        """
        header = ("#", "node", "kind", "op", "inputs", "shape", "contributes")
        rows = [header, *self._rows()]
        widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
        lines = [repr(self)]
        for row in rows:
            cells = [row[0].rjust(widths[0])] + [cell.ljust(width) for cell, width
                                                 in zip(row[1:], widths[1:], strict=True)]
            lines.append(("  " + "  ".join(cells)).rstrip())
        return "\n".join(lines)


def _check_layers(layers: Sequence[Any], what: str) -> tuple[Layer, ...]:
    items = tuple(layers)
    if not items:
        raise ConvMatrixError(f"{what} needs at least one layer")
    for position, layer in enumerate(items):
        if not isinstance(layer, Layer):
            raise ConvMatrixError(
                f"{what}: argument {position} (={type(layer).__name__}) is not a layer object")
    for position, layer in enumerate(items[1:], start=1):
        if layer.input_shape != items[0].input_shape:
            raise ConvMatrixError(
                f"{what}: the layers share one input, but layer 0 ({items[0]!r}) takes "
                f"{shape_text(items[0].input_shape)} and layer {position} ({layer!r}) takes "
                f"{shape_text(layer.input_shape)}")
    return items


class Add(Graph):
    """The sum of layers' maps over one input: ``Add(a, b)(x) = a(x) + b(x)``.

    ``Add(conv_branch, Identity(shape))`` is a residual block.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> block = cm.Add(cm.Conv(np.ones((1, 1, 3)), (1, 5), padding=1), cm.Identity((1, 5)))
    >>> block.matrix().toarray()[1]
    array([1., 2., 1., 0., 0.])
    """

    def __init__(self, *layers: Layer) -> None:
        items = _check_layers(layers, "Add")
        for position, layer in enumerate(items[1:], start=1):
            if layer.output_shape != items[0].output_shape:
                raise ConvMatrixError(
                    f"Add: the layers' outputs are summed, but layer 0 ({items[0]!r}) gives "
                    f"{shape_text(items[0].output_shape)} and layer {position} ({layer!r}) "
                    f"gives {shape_text(layer.output_shape)}")
        names = tuple(f"branch{i}" for i in range(len(items)))
        nodes = [Node(name, layer, ("input",)) for name, layer in zip(names, items, strict=True)]
        nodes.append(Node("add", Sum((1,) * len(items)), names))
        super().__init__(items[0].input_shape, nodes, "add")


class Concat(Graph):
    """Layers over one input with their outputs concatenated along ``axis`` (0: channels).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> both = cm.Concat([cm.Identity((1, 3)), cm.Conv(np.ones((2, 1, 1)), (1, 3))])
    >>> both.output_shape
    (3, 3)
    """

    def __init__(self, layers: Sequence[Layer], axis: int = 0) -> None:
        if isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
            raise ConvMatrixError(
                f"`layers` (={type(layers).__name__}) must be a list of layer objects")
        items = _check_layers(layers, "Concat")
        names = tuple(f"branch{i}" for i in range(len(items)))
        nodes = [Node(name, layer, ("input",)) for name, layer in zip(names, items, strict=True)]
        nodes.append(Node("concat", Cat(axis), names))
        super().__init__(items[0].input_shape, nodes, "concat")
