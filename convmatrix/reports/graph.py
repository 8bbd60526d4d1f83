"""A graph of layers explained: its nodes in a table, the paths from the input, the whole map."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers.base import Layer
from convmatrix.layers.graph import Cat, Graph, Sum

__all__ = ["GraphExplanation", "NodeRow", "explain_graph"]

_PATHS_LISTED = 12


@dataclass(frozen=True)
class NodeRow:
    """One node of the table: what it is and how it takes part in the map.

    Attributes
    ----------
    name, kind, op, inputs, shape : str
        The node's name, ``layer``/``sum``/``cat``, its operation, its inputs, its shape.
    nnz : int or None
        Stored entries of the node's own layer matrix (None for sums and concatenations, and
        over the memory guard).
    paths : int
        Paths from the graph's input to this node (each a product of layer matrices).
    contributes : bool
        Whether the output depends on the node.
    """

    name: str
    kind: str
    op: str
    inputs: str
    shape: str
    nnz: int | None
    paths: int
    contributes: bool


@dataclass(frozen=True)
class GraphExplanation:
    """A graph explained: its node table, its paths, the whole map's matrix and verdict.

    Attributes
    ----------
    layer : Graph
    rows : tuple of NodeRow
    paths : tuple of str
        The input-to-output paths (at most a dozen listed), e.g. ``x → conv → add``.
    path_count : int
        All input-to-output paths.
    matrix_shape : tuple of int
    nnz : int or None
        The whole matrix's nonzero entries (None over the memory guard).
    plan : str
        How :meth:`~convmatrix.Graph.matrix` forms it.
    verdict : str
        The checkerboard verdict of the whole map (or why there is none).
    """

    layer: Graph
    rows: tuple[NodeRow, ...]
    paths: tuple[str, ...]
    path_count: int
    matrix_shape: tuple[int, int]
    nnz: int | None
    plan: str
    verdict: str = field(default="")

    def __repr__(self) -> str:
        rows, columns = self.matrix_shape
        return (f"GraphExplanation({self.layer!r}: {len(self.rows)} nodes, {self.path_count} "
                f"paths, {rows}×{columns})")

    def _matrix_line(self) -> str:
        rows, columns = self.matrix_shape
        nnz = ("not built (over the memory guard)" if self.nnz is None
               else f"{self.nnz:,} nonzero entries")
        return f"The matrix M is {rows}×{columns}, {nnz}; {self.plan}."

    def __str__(self) -> str:
        lines = [str(self.layer), f"{self.path_count} path(s) from the input to the output:"]
        lines += [f"  {path}" for path in self.paths]
        if self.path_count > len(self.paths):
            lines.append(f"  … and {self.path_count - len(self.paths)} more")
        lines += [self._matrix_line(), self.verdict]
        return "\n".join(line for line in lines if line)

    def to_markdown(self, level: int = 2) -> str:
        """Markdown under a heading at ``level``: the nodes, the paths, the whole map."""
        h = "#" * level
        out = [f"{h} `{self.layer!r}`", "",
               "A graph: its matrix is the sum, over the paths from the input to the output, of "
               "the products of the layer matrices along each path (sums weight them, "
               "concatenations stack them).", "", f"{h}# The nodes", "",
               "| # | node | kind | operation | inputs | shape | nonzeros | paths | "
               "contributes |", "|---:|---|---|---|---|---|---:|---:|---|"]
        for number, row in enumerate(self.rows):
            nnz = "—" if row.nnz is None else f"{row.nnz:,}"
            out.append(f"| {number} | `{row.name}` | {row.kind} | `{row.op}` | {row.inputs} | "
                       f"{row.shape} | {nnz} | {row.paths:,} | "
                       f"{'yes' if row.contributes else 'no'} |")
        out += ["", f"{h}# The paths", "",
                f"{self.path_count:,} path(s) from the input to the output:", ""]
        out += [f"- {path}" for path in self.paths]
        if self.path_count > len(self.paths):
            out.append(f"- … and {self.path_count - len(self.paths):,} more")
        out += ["", f"{h}# The whole map", "", self._matrix_line()]
        if self.verdict:
            out += ["", self.verdict]
        return "\n".join(out)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _op_text(op: Any, inputs: tuple[str, ...]) -> str:
    if isinstance(op, Layer):
        return repr(op)
    if isinstance(op, Sum):
        return " ".join(f"{c:+g}·{name}" for c, name in zip(op.coefficients, inputs,
                                                           strict=True))
    assert isinstance(op, Cat)
    return f"cat axis {op.axis}"


def _paths(graph: Graph, limit: int) -> tuple[list[str], dict[str, int]]:
    """Input-to-output paths (the first ``limit``) and the number of paths to every node."""
    counts: dict[str, int] = {graph.input_name: 1}
    listed: dict[str, list[list[str]]] = {graph.input_name: [[graph.input_name]]}
    for node in graph.nodes:
        counts[node.name] = sum(counts[name] for name in node.inputs)
        found: list[list[str]] = []
        for name in node.inputs:
            for path in listed[name]:
                if len(found) < limit:
                    found.append([*path, node.name])
        listed[node.name] = found
    return [" → ".join(path) for path in listed[graph.output]], counts


def explain_graph(graph: Graph) -> GraphExplanation:
    """Explain a graph: a table of its nodes, its paths and its whole matrix.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> block = cm.Add(cm.Conv(np.ones((1, 1, 3)), (1, 6), padding=1), cm.Identity((1, 6)))
    >>> explanation = explain_graph(block)
    >>> explanation.paths
    ('input → branch0 → add', 'input → branch1 → add')
    >>> [row.nnz for row in explanation.rows]
    [16, 6, None]
    """
    paths, counts = _paths(graph, _PATHS_LISTED)
    rows = []
    for node in graph.nodes:
        nnz: int | None = None
        if isinstance(node.op, Layer):
            try:
                nnz = int((node.op.matrix("csr") != 0).nnz)
            except ConvMatrixError:
                nnz = None
        rows.append(NodeRow(node.name, node.kind, _op_text(node.op, node.inputs),
                            ", ".join(node.inputs), shape_text(graph.shape_of(node.name)), nnz,
                            counts[node.name], graph.contributes(node.name)))
    try:
        total: int | None = int((graph.matrix("csr") != 0).nnz)
    except ConvMatrixError:
        total = None
    try:
        board = graph.checkerboard()
        verdict = board.describe()
    except (ConvMatrixError, ValueError) as error:
        verdict = f"No checkerboard verdict: {error}"
    return GraphExplanation(graph, tuple(rows), tuple(paths), counts[graph.output],
                            graph.matrix_shape, total, str(graph.plan()), verdict)
