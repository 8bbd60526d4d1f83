"""The ONNX ``Pad`` translator: :class:`~convmatrix.NumpyPad` on one sample.

``pads`` is an attribute before opset 11 (``paddings`` in opset 1) and an input from opset 11;
``constant_value`` an attribute (``value``) or input 2; ``axes`` input 3 from opset 18.
Negative pads crop first, then the rest is padded (onnxruntime's rule; ``onnx.reference``
refuses negative pads, as ``numpy.pad`` does).
"""

from __future__ import annotations

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.onnx.node import OnnxNode
from convmatrix.layers.base import Layer
from convmatrix.layers.pad import NumpyPad

__all__ = ["pad"]


def _input(node: OnnxNode, index: int, name: str) -> np.ndarray | None:
    if not node.has_input(index):
        return None
    value = node.constant_input(index)
    if value is None:
        raise node.refuse(f"`{name}` (input {index}, {node.inputs[index]!r}) must be a constant "
                          f"(an initializer or folded from constant shapes)")
    return value


def pad(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``Pad`` (constant, reflect, edge, wrap) → :class:`~convmatrix.NumpyPad`."""
    rank = len(input_shape) + 1
    mode = node.attribute("mode", "constant")
    if node.opset < 11:
        pads = node.attribute("pads", node.attribute("paddings"))
        value = float(node.attribute("value", 0.0))
        axes = None
    else:
        pads = _input(node, 1, "pads")
        found = _input(node, 2, "constant_value")
        value = 0.0 if found is None or found.size == 0 else float(np.asarray(found).reshape(-1)[0])
        axes_value = _input(node, 3, "axes") if node.opset >= 18 else None
        axes = None if axes_value is None else [int(a) for a in np.asarray(axes_value).ravel()]
    if pads is None:
        raise node.refuse("`pads` is required")
    amounts = [int(v) for v in np.asarray(pads).ravel()]
    named = list(range(rank)) if axes is None else axes
    if any(not -rank <= a < rank for a in named) or len({a % rank for a in named}) != len(named):
        raise node.refuse(f"`axes` (={axes!r}) must name distinct axes of a rank-{rank} input")
    if len(amounts) != 2 * len(named):
        raise node.refuse(f"`pads` (={amounts!r}) must hold 2 × {len(named)} ints (the starts, "
                          f"then the ends, of the axes {named})")
    widths = [(0, 0)] * rank
    for i, axis in enumerate(named):
        widths[axis % rank] = (amounts[i], amounts[len(named) + i])
    if widths[0] != (0, 0):
        raise node.refuse(f"`pads` (={amounts!r}) pads the batch axis by {widths[0]}; "
                          f"convmatrix reads one sample, the batch axis must be left alone")
    if mode == "constant" and value != 0 and not np.isfinite(value):
        raise node.refuse(f"`constant_value` (={value!r}) must be finite")
    try:
        return NumpyPad(input_shape, widths[1:], mode=mode,
                        value=value if mode == "constant" else 0.0)
    except ConvMatrixError as error:
        raise node.refuse(str(error)) from None
