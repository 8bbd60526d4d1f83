"""One ONNX node as the translators see it: decoded attributes and constant inputs.

:class:`OnnxNode` is plain data (no ``onnx`` import): the graph reader decodes every attribute
(:func:`decode_attribute`: ints, floats, strings, lists of them, tensors as numpy arrays) and
collects the node's inputs that are constants — initializers, ``Constant`` outputs and the
shape plumbing folded on constant shapes (``Shape``, ``Gather``, ``Concat``, …) — so a
translator reads ``node.attributes`` and ``node.constant_input(i)`` and never the protobuf.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError

__all__ = ["OnnxNode", "decode_attribute"]


@dataclass(frozen=True)
class OnnxNode:
    """One node of an ONNX graph, decoded.

    Attributes
    ----------
    name : str
        The node's name (``"<op_type> #<index>"`` when the model leaves it empty).
    op_type : str
        The operator (``"Conv"``, ``"Resize"``, …).
    inputs, outputs : tuple of str
        The node's input and output value names (an omitted optional input is ``""``).
    attributes : Mapping[str, Any]
        Attribute name → decoded value: ``int``, ``float``, ``str``, tuples of those, tensors as
        numpy arrays.
    opset : int
        The model's opset version for the default (``ai.onnx``) domain.
    constants : Mapping[str, numpy.ndarray]
        Value name → array, for the inputs of this node whose value is known without the
        network's input (initializers, ``Constant`` nodes, folded shape computations).

    Examples
    --------
    >>> import numpy as np
    >>> from convmatrix.adapters.onnx.node import OnnxNode
    >>> node = OnnxNode("pad0", "Pad", ("x", "pads"), ("y",), {"mode": "reflect"}, 18,
    ...                 {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1])})
    >>> node.constant_input(1)
    array([0, 0, 1, 1, 0, 0, 1, 1])
    >>> node.constant_input(0) is None, node.constant_input(5) is None
    (True, True)
    >>> node.attribute("mode"), node.attribute("antialias", 0)
    ('reflect', 0)
    >>> node.where()
    "node 'pad0' (Pad, opset 18)"
    """

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: Mapping[str, Any] = field(default_factory=dict)
    opset: int = 0
    constants: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)

    def constant_input(self, i: int) -> np.ndarray | None:
        """Input ``i``'s value when it is a constant; None when absent, omitted or traced."""
        if i < 0 or i >= len(self.inputs) or not self.inputs[i]:
            return None
        return self.constants.get(self.inputs[i])

    def has_input(self, i: int) -> bool:
        """Whether input ``i`` is given (present and not the empty name of an omitted input)."""
        return 0 <= i < len(self.inputs) and bool(self.inputs[i])

    def attribute(self, name: str, default: Any = None) -> Any:
        """Attribute ``name``'s decoded value, or ``default`` when the node does not set it."""
        return self.attributes.get(name, default)

    def where(self) -> str:
        """``node 'name' (Op, opset N)`` for messages."""
        return f"node {self.name!r} ({self.op_type}, opset {self.opset})"

    def refuse(self, message: str) -> ConvMatrixError:
        """A :class:`~convmatrix.ConvMatrixError` that names this node: ``raise node.refuse(…)``."""
        return ConvMatrixError(f"ONNX {self.where()}: {message}")


def decode_attribute(attribute: Any) -> Any:
    """An ``onnx.AttributeProto``'s value: numbers, strings, tuples, tensors as numpy arrays.

    Strings are decoded from UTF-8; graphs (control flow) are returned as they are and refused by
    the reader.
    """
    import onnx
    from onnx import numpy_helper

    kind = attribute.type
    kinds = onnx.AttributeProto
    if kind == kinds.INT:
        return int(attribute.i)
    if kind == kinds.FLOAT:
        return float(attribute.f)
    if kind == kinds.STRING:
        return attribute.s.decode("utf-8")
    if kind == kinds.INTS:
        return tuple(int(v) for v in attribute.ints)
    if kind == kinds.FLOATS:
        return tuple(float(v) for v in attribute.floats)
    if kind == kinds.STRINGS:
        return tuple(v.decode("utf-8") for v in attribute.strings)
    if kind == kinds.TENSOR:
        return numpy_helper.to_array(attribute.t)
    if kind == kinds.TENSORS:
        return tuple(numpy_helper.to_array(t) for t in attribute.tensors)
    return onnx.helper.get_attribute_value(attribute)
