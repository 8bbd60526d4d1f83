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

__all__ = ["OnnxNode", "decode_attribute", "layer_dtype"]


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
    dtype : numpy.dtype or None
        The dtype :meth:`real` reads constant operands in: None for the model's own
        (:func:`layer_dtype`, ``from_onnx``), float64 at a point (``cm.linearize``).

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
    >>> node.real(np.ones(2, np.float32), "input 2").dtype
    dtype('float32')
    """

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: Mapping[str, Any] = field(default_factory=dict)
    opset: int = 0
    constants: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)
    dtype: np.dtype[Any] | None = field(default=None, repr=False)

    def constant_input(self, i: int) -> np.ndarray | None:
        """Input ``i``'s value when it is a constant; None when absent, omitted or traced."""
        if i < 0 or i >= len(self.inputs) or not self.inputs[i]:
            return None
        return self.constants.get(self.inputs[i])

    def has_input(self, i: int) -> bool:
        """Whether input ``i`` is given (present and not the empty name of an omitted input)."""
        return 0 <= i < len(self.inputs) and bool(self.inputs[i])

    def real(self, value: np.ndarray, what: str) -> np.ndarray:
        """A constant operand in the dtype its layer keeps, else refused.

        The model's own (:func:`layer_dtype`), or :attr:`dtype` when the reader sets one.

        ``what`` names the operand in the refusal (``"input 1 (weight)"``).
        """
        dtype = layer_dtype(value)
        if dtype is None:
            raise self.refuse(f"{what} has dtype {value.dtype}; it must be real numbers")
        return np.asarray(value, dtype=dtype if self.dtype is None else self.dtype)

    def attribute(self, name: str, default: Any = None) -> Any:
        """Attribute ``name``'s decoded value, or ``default`` when the node does not set it."""
        return self.attributes.get(name, default)

    def where(self) -> str:
        """``node 'name' (Op, opset N)`` for messages."""
        return f"node {self.name!r} ({self.op_type}, opset {self.opset})"

    def refuse(self, message: str) -> ConvMatrixError:
        """A :class:`~convmatrix.ConvMatrixError` that names this node: ``raise node.refuse(…)``."""
        return ConvMatrixError(f"ONNX {self.where()}: {message}")


def layer_dtype(value: np.ndarray) -> np.dtype[Any] | None:
    """The dtype a layer keeps for a real constant of ``value``'s dtype; None if not real.

    The model's own precision, as ``cm.from_torch`` keeps a module's: float32 stays float32 and
    float64 float64. The narrower floats widen exactly to float32: float16 (scipy.sparse has no
    float16) and the ``ml_dtypes`` floats ONNX reads as (bfloat16, float8, float4), as
    ``from_torch`` widens a bfloat16 module. Integers and booleans become float64.

    Examples
    --------
    >>> import numpy as np
    >>> from convmatrix.adapters.onnx.node import layer_dtype
    >>> layer_dtype(np.ones(2, np.float32)), layer_dtype(np.ones(2, np.float16))
    (dtype('float32'), dtype('float32'))
    >>> layer_dtype(np.ones(2, np.int64)), layer_dtype(np.array(["a"])) is None
    (dtype('float64'), True)
    """
    dtype = value.dtype
    if dtype in (np.float32, np.float64):
        return np.dtype(dtype)
    if dtype.kind in "fV" and dtype.itemsize <= 2 and dtype.name.startswith(("float", "bfloat")):
        return np.dtype(np.float32)
    if dtype.kind in "biu" or dtype.kind == "f":
        return np.dtype(np.float64)
    return None


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
