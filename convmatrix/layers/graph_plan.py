"""The plan of a graph's matrix: per node, its entries and bytes, estimated from shapes alone.

:func:`estimate_nodes` bounds each node's matrix with respect to the graph's input row by row
(receptive fields cap the bound) and tracks the bytes held at once; :func:`stencil_form` is the
graph as a :mod:`convmatrix.builder.stencil` program when it is one. :class:`GraphPlan` is what
:meth:`convmatrix.Graph.plan` chooses from them. Nothing here allocates a matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from convmatrix.builder.budget import nnz_estimate
from convmatrix.builder.stencil import ProgramNode, StencilProgram, stencil_program
from convmatrix.layers.base import Layer
from convmatrix.layers.dense import APPLY_CHUNK_BYTES
from convmatrix.layers.graph_nodes import Cat, Node, Sum

__all__ = ["GraphLike", "GraphPlan", "NodeEstimate", "estimate_nodes", "sparse_bytes",
           "stencil_form"]

_INDEX_BYTES = 4


class GraphLike(Protocol):
    """What the plan reads of a graph (:class:`convmatrix.Graph`): its wiring and shapes."""

    input_name: str
    output: str
    nodes: tuple[Node, ...]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input sample."""

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of the graph's matrix."""

    def shape_of(self, name: str) -> tuple[int, ...]:
        """The shape of a node's value (or of the input's)."""

    def contributes(self, name: str) -> bool:
        """Whether the output depends on node ``name``."""


@dataclass(frozen=True)
class _Step:
    """The plan of one node's matrix with respect to the graph's input."""

    name: str
    rows: int
    row_nnz: float  # an upper bound on the stored entries per row
    nnz: float
    dense: bool
    nbytes: float
    frees: tuple[str, ...]  # matrices no later node needs


@dataclass(frozen=True)
class _Field:
    """The receptive field of a node's outputs in the graph's input, per spatial axis.

    ``reach[a]`` input pixels along axis ``a`` (``jump[a]`` input pixels between neighbouring
    outputs), in the standard receptive-field arithmetic; a node's row then reads at most
    ``C_in · ∏ min(n_a, reach_a)`` inputs, however many channels lie in between (the
    per-row product of the layers' fullest rows counts every channel again).
    """

    reach: tuple[float, ...]
    jump: tuple[float, ...]

    @staticmethod
    def start(shape: tuple[int, ...]) -> _Field | None:
        if len(shape) < 2:
            return None
        return _Field((1.0,) * (len(shape) - 1), (1.0,) * (len(shape) - 1))

    def row_bound(self, shape: tuple[int, ...]) -> float:
        return float(shape[0] * math.prod(min(n, math.ceil(r))
                                          for n, r in zip(shape[1:], self.reach, strict=True)))

    @staticmethod
    def through(node: Node, inputs: list[_Field | None], shape: tuple[int, ...]
                ) -> _Field | None:
        if any(f is None for f in inputs):
            return None
        fields = [f for f in inputs if f is not None]
        op = node.op
        if isinstance(op, Sum | Cat):
            if isinstance(op, Cat) and op.axis % len(shape) != 0:
                return None
            if any(f.jump != fields[0].jump for f in fields):
                return None
            return _Field(tuple(max(r) for r in zip(*(f.reach for f in fields), strict=True)),
                          fields[0].jump)
        assert isinstance(op, Layer)
        source = fields[0]
        view = op.conv_view()
        if view is not None and view.layout == "channels_first" and (
                view.spec.ndim == len(source.reach)):
            spec = view.spec
            reach, jump = [], []
            for r, j, k, d, st in zip(source.reach, source.jump, spec.kernel_size,
                                      spec.dilation, spec.stride, strict=True):
                if view.direction == "forward":
                    reach.append(r + (k - 1) * d * j)
                    jump.append(j * st)
                else:
                    reach.append(r + (math.ceil(((k - 1) * d + 1) / st) - 1) * j)
                    jump.append(j / st)
            return _Field(tuple(reach), tuple(jump))
        if (op.input_shape[1:] == op.output_shape[1:] and len(op.input_shape) == len(shape)
                and nnz_estimate(op) <= op.matrix_shape[0] * max(1, op.input_shape[0])
                and _max_row_nnz(op) <= op.input_shape[0]):
            return source  # per-pixel: batch norm, scale, identity, 1×1 channel mixing
        return None



def sparse_bytes(nnz: float, rows: int, itemsize: int) -> float:
    """Bytes of a CSR matrix with ``nnz`` entries of ``itemsize`` bytes in ``rows`` rows."""
    return nnz * (itemsize + _INDEX_BYTES) + (rows + 1) * _INDEX_BYTES


def _max_row_nnz(layer: Layer) -> float:
    """Stored entries of the fullest row of the layer's matrix (an estimate from its shapes).

    Exact for convolutions (every tap of every input channel of the group); else the average
    row, rounded up.
    """
    view = layer.conv_view()
    if view is not None:
        spec = view.spec
        if view.direction == "forward":
            return float(spec.in_channels // spec.groups * math.prod(spec.kernel_size))
        taps = math.prod(math.ceil(k * d / s) for k, d, s in
                         zip(spec.kernel_size, spec.dilation, spec.stride, strict=True))
        return float(spec.out_channels // spec.groups * taps)
    rows = max(layer.matrix_shape[0], 1)
    return float(math.ceil(nnz_estimate(layer) / rows))


@dataclass(frozen=True)
class GraphPlan:
    """How :meth:`convmatrix.Graph.matrix` forms the graph's matrix, estimated from shapes alone.

    Attributes
    ----------
    steps : tuple
        Per node in evaluation order: its name, the estimated entries of its matrix (with
        respect to the graph's input), whether it is formed densely, and its bytes.
    nnz : float
        Estimated stored entries of the result.
    peak_bytes : float
        Estimated bytes held at once (the matrices still needed by later nodes, plus the one
        being formed and its factor).
    whole_dense : bool
        The result is mostly full: the whole graph is applied to blocks of unit vectors (the
        dense result, its CSR copy and one block of columns in flight), never forming a node's
        matrix.
    stencil : StencilProgram or None
        A graph of convolutions, sums and channel concatenations with a large product: formed
        by :mod:`convmatrix.builder.stencil` (dense channel blocks on per-axis index tables,
        the multiply-adds as matrix products) instead of sparse products; its peak is
        :attr:`peak_bytes`.
    """

    steps: tuple[_Step, ...]
    nnz: float
    peak_bytes: float
    whole_dense: bool = False
    stencil: StencilProgram | None = None

    def __str__(self) -> str:
        dense = sum(step.dense for step in self.steps)
        how = ("dense: the graph applied to unit vectors" if self.whole_dense else
               f"{len(self.steps)} node products in blocked form (stencil)" if self.stencil
               else f"{len(self.steps)} node matrices ({dense} dense)")
        return f"{how}: ~{self.nnz:,.0f} entries, peak ~{self.peak_bytes / 2**20:,.1f} MiB"


@dataclass(frozen=True)
class NodeEstimate:
    """Each node's matrix, estimated: the steps, the peak bytes and the multiply-adds.

    ``sparse_flops`` counts the sparse products' multiply-adds, ``dense_flops`` those of
    applying every layer to every column of the input.
    """

    steps: tuple[_Step, ...]
    peak_bytes: float
    sparse_flops: float
    dense_flops: float


def _evaluated(graph: GraphLike) -> list[Node]:
    return [node for node in graph.nodes if graph.contributes(node.name)]


def estimate_nodes(graph: GraphLike, *, itemsize: int, dense_fill: float) -> NodeEstimate:
    """Each contributing node's matrix with respect to the graph's input, from shapes alone.

    A node's rows are bounded by a layer's fullest row times its input's, a sum's inputs'
    rows added, a concatenation's largest, and by the receptive field in the input; a node
    whose estimated fill reaches ``dense_fill`` is formed densely (floating graphs only). The
    peak counts the matrices later nodes still need, the one being formed and its factor.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> from convmatrix.layers.graph_plan import estimate_nodes
    >>> block = cm.Add(cm.Conv(np.ones((1, 1, 3)), (1, 64), padding=1),
    ...                cm.Identity((1, 64)))
    >>> [step.nnz for step in estimate_nodes(block, itemsize=8, dense_fill=0.5).steps]
    [192.0, 64.0, 192.0]
    """
    input_shape = graph.input_shape
    cols = math.prod(input_shape)
    evaluated = _evaluated(graph)
    last_use: dict[str, int] = {}
    for index, node in enumerate(evaluated):
        for name in node.inputs:
            last_use[name] = index
    row_nnz: dict[str, float] = {graph.input_name: 1.0}
    field: dict[str, _Field | None] = {graph.input_name: _Field.start(input_shape)}
    live: dict[str, float] = {}
    steps: list[_Step] = []
    peak = 0.0
    sparse_flops = dense_flops = 0.0
    for index, node in enumerate(evaluated):
        shape = graph.shape_of(node.name)
        rows = math.prod(shape)
        op = node.op
        factor = 0.0
        if isinstance(op, Layer):
            source = node.inputs[0]
            per_row = _max_row_nnz(op) * row_nnz[source]
            own = float(nnz_estimate(op))
            sparse_flops += own * min(row_nnz[source], float(cols))
            dense_flops += own * cols
            if source != graph.input_name and per_row / cols < dense_fill:
                factor = sparse_bytes(nnz_estimate(op), rows, itemsize)
        elif isinstance(op, Sum):
            per_row = sum(row_nnz[name] for name in node.inputs)
        else:
            per_row = max(row_nnz[name] for name in node.inputs)
        field[node.name] = _Field.through(node, [field[name] for name in node.inputs], shape)
        reach = field[node.name]
        if reach is not None:
            per_row = min(per_row, reach.row_bound(input_shape))
        per_row = min(per_row, float(cols))
        dense = per_row / cols >= dense_fill and graph.dtype.kind in "fc"
        nnz = per_row * rows
        nbytes = (rows * cols * itemsize) if dense else sparse_bytes(nnz, rows, itemsize)
        if dense and isinstance(op, Layer):
            factor = min(APPLY_CHUNK_BYTES, 3 * cols * (rows + math.prod(op.input_shape))
                         * itemsize)
        peak = max(peak, sum(live.values()) + nbytes + factor
                   + (nbytes if node.name == graph.output else 0))
        frees = tuple(name for name in set(node.inputs) if last_use[name] == index)
        for name in frees:
            live.pop(name, None)
        live[node.name] = nbytes
        row_nnz[node.name] = per_row
        steps.append(_Step(node.name, rows, per_row, nnz, dense, nbytes, frees))
    return NodeEstimate(tuple(steps), peak, sparse_flops, dense_flops)


def stencil_form(graph: GraphLike, itemsize: int) -> StencilProgram | None:
    """The graph as a program of convolutions, sums and channel concatenations.

    None for a node of another kind, a channels-last layer, an input without spatial axes, a
    dtype other than integer, float or complex.
    """
    input_shape = graph.input_shape
    if len(input_shape) < 2 or graph.dtype.kind not in "iufc":
        return None
    ndim = len(input_shape) - 1
    program = []
    for node in _evaluated(graph):
        op = node.op
        channels = graph.shape_of(node.name)[0]
        if isinstance(op, Layer):
            view = op.conv_view()
            if view is None or view.layout != "channels_first" or view.spec.ndim != ndim:
                return None
            program.append(ProgramNode(node.name, "conv", node.inputs, channels,
                                       view.spec, view.direction))
        elif isinstance(op, Sum):
            program.append(ProgramNode(node.name, "sum", node.inputs, channels,
                                       coefficients=tuple(op.coefficients)))
        elif op.axis % (ndim + 1) == 0:
            program.append(ProgramNode(node.name, "cat", node.inputs, channels))
        else:
            return None
    return stencil_program(graph.input_name, input_shape, program, graph.output, itemsize)
