"""The nodes of a :class:`~convmatrix.Graph`: what each node declares and the shape it gives.

A node applies a one-input :class:`~convmatrix.layers.base.Layer`, or combines several nodes with
a weighted :class:`Sum` or a concatenation :class:`Cat` along a per-sample axis.
:func:`node_shape` validates a node against its inputs' shapes; :func:`cat_rows` is the row order
of a concatenation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers.base import Layer

__all__ = ["Cat", "Node", "Op", "Sum", "cat_rows", "node_shape"]


@dataclass(frozen=True)
class Sum:
    """A node operation: ``Σ coefficients[i] · inputs[i]`` over inputs of one shape.

    ``Sum((1, 1))`` is ``a + b``, ``Sum((1, -1))`` is ``a − b``.

    Examples
    --------
    >>> import convmatrix as cm
    >>> cm.Sum((1, -1))
    Sum(coefficients=(1, -1))
    """

    coefficients: tuple[float, ...]

    def __post_init__(self) -> None:
        items = self.coefficients
        if isinstance(items, str) or not hasattr(items, "__iter__"):
            raise ConvMatrixError(
                f"`coefficients` (={items!r}) must be a sequence of numbers, one per input")
        values = tuple(items)
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ConvMatrixError(
                    f"`coefficients` (={values!r}) must hold real numbers, got {value!r}")
            if not math.isfinite(float(value)):
                raise ConvMatrixError(f"`coefficients` (={values!r}) must be finite")
        if not values:
            raise ConvMatrixError("`coefficients` is empty; a Sum needs at least one input")
        object.__setattr__(self, "coefficients", values)


@dataclass(frozen=True)
class Cat:
    """A node operation: the inputs concatenated along per-sample ``axis`` (0: channels).

    Every other axis must agree between the inputs; negative axes count from the last.

    Examples
    --------
    >>> import convmatrix as cm
    >>> cm.Cat(0)
    Cat(axis=0)
    """

    axis: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.axis, bool) or not isinstance(self.axis, int | np.integer):
            raise ConvMatrixError(f"`axis` (={self.axis!r}) must be an int (0: channels)")
        object.__setattr__(self, "axis", int(self.axis))


Op = Layer | Sum | Cat


@dataclass(frozen=True)
class Node:
    """One node of a :class:`Graph`: ``name = op(*inputs)``.

    Parameters
    ----------
    name : str
        Unique in the graph, and not the graph's input name.
    op : Layer, Sum or Cat
        A layer (exactly one input), a weighted :class:`Sum` or a concatenation :class:`Cat`.
    inputs : tuple of str
        Names of earlier nodes or of the graph's input.

    Examples
    --------
    >>> import convmatrix as cm
    >>> cm.Node("skip", cm.Identity((1, 4)), ("input",)).inputs
    ('input',)
    """

    name: str
    op: Op
    inputs: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConvMatrixError(f"a node's `name` (={self.name!r}) must be a non-empty str")
        inputs = self.inputs
        if isinstance(inputs, str):
            inputs = (inputs,)
        if not hasattr(inputs, "__iter__"):
            raise ConvMatrixError(
                f"node {self.name!r}: `inputs` (={inputs!r}) must be a tuple of node names")
        inputs = tuple(inputs)
        for item in inputs:
            if not isinstance(item, str):
                raise ConvMatrixError(
                    f"node {self.name!r}: `inputs` (={inputs!r}) must hold node names (str)")
        object.__setattr__(self, "inputs", inputs)
        if not isinstance(self.op, Layer | Sum | Cat):
            raise ConvMatrixError(
                f"node {self.name!r}: `op` (={type(self.op).__name__}) must be a layer object, "
                f"cm.Sum or cm.Cat")

    @property
    def kind(self) -> str:
        """``"layer"``, ``"sum"`` or ``"cat"``."""
        if isinstance(self.op, Sum):
            return "sum"
        if isinstance(self.op, Cat):
            return "cat"
        return "layer"


def node_shape(node: Node, position: int, shapes: Mapping[str, tuple[int, ...]]
               ) -> tuple[int, ...]:
    """The shape of ``node``'s value, validated against its inputs' ``shapes``.

    ``position`` is the node's index in the graph's list, for the messages: a layer takes one
    input of its own input shape, a sum inputs of one shape and one coefficient each, a
    concatenation inputs that agree off its axis.

    Examples
    --------
    >>> import convmatrix as cm
    >>> from convmatrix.layers.graph_nodes import node_shape
    >>> node_shape(cm.Node("both", cm.Cat(0), ("a", "b")), 0, {"a": (1, 4), "b": (2, 4)})
    (3, 4)
    """
    where = f"node {node.name!r} (nodes[{position}])"
    got = [shapes[name] for name in node.inputs]
    op = node.op
    if isinstance(op, Layer):
        if len(node.inputs) != 1:
            raise ConvMatrixError(
                f"{where} applies a layer, which takes one input; it names "
                f"{len(node.inputs)}: {node.inputs!r}")
        if got[0] != op.input_shape:
            raise ConvMatrixError(
                f"shape mismatch: {where} ({op!r}) takes {shape_text(op.input_shape)} but "
                f"its input {node.inputs[0]!r} gives {shape_text(got[0])}")
        return op.output_shape
    if not node.inputs:
        raise ConvMatrixError(f"{where} has no inputs")
    if isinstance(op, Sum):
        if len(op.coefficients) != len(node.inputs):
            raise ConvMatrixError(
                f"{where}: Sum has {len(op.coefficients)} coefficients for "
                f"{len(node.inputs)} inputs {node.inputs!r}")
        for name, other in zip(node.inputs[1:], got[1:], strict=True):
            if other != got[0]:
                raise ConvMatrixError(
                    f"shape mismatch in the sum {where}: {node.inputs[0]!r} gives "
                    f"{shape_text(got[0])} but {name!r} gives {shape_text(other)}")
        return got[0]
    ndim = len(got[0])
    axis = op.axis + ndim if op.axis < 0 else op.axis
    if not 0 <= axis < ndim:
        raise ConvMatrixError(
            f"{where}: Cat `axis` (={op.axis}) is out of range for inputs of "
            f"{ndim} axes ({shape_text(got[0])})")
    for name, other in zip(node.inputs[1:], got[1:], strict=True):
        if len(other) != ndim or other[:axis] + other[axis + 1:] != (
                got[0][:axis] + got[0][axis + 1:]):
            raise ConvMatrixError(
                f"shape mismatch in the concatenation {where} along axis {axis}: "
                f"{node.inputs[0]!r} gives {shape_text(got[0])} but {name!r} gives "
                f"{shape_text(other)}")
    return (*got[0][:axis], sum(s[axis] for s in got), *got[0][axis + 1:])


def cat_rows(node: Node, shapes: Mapping[str, tuple[int, ...]]) -> np.ndarray:
    """Rows of a concatenation's stacked inputs, in the order of its flat output.

    Examples
    --------
    >>> import convmatrix as cm
    >>> from convmatrix.layers.graph_nodes import cat_rows
    >>> cat_rows(cm.Node("both", cm.Cat(1), ("a", "b")), {"a": (2, 1), "b": (2, 2)})
    array([0, 2, 3, 1, 4, 5])
    """
    assert isinstance(node.op, Cat)
    inputs = [shapes[name] for name in node.inputs]
    axis = node.op.axis % len(inputs[0])
    offset = 0
    pieces = []
    for shape in inputs:
        size = math.prod(shape)
        pieces.append(np.arange(offset, offset + size).reshape(shape))
        offset += size
    return np.concatenate(pieces, axis=axis).ravel()
