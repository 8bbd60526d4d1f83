"""The translator table: one ONNX operator → a convmatrix layer on one sample.

A translator is a plain function ``translate(node, input_shape) -> Layer``: it gets the decoded
:class:`~convmatrix.adapters.onnx.node.OnnxNode` and ONE sample's shape of the node's (first,
traced) input without the batch axis, and returns the layer kind that is the node's exact affine
map on that sample (its constant inputs — weights, pads, scales — come from
``node.constant_input(i)``). Bad attributes are refused with ``raise node.refuse(message)``.

Operators with several traced inputs or outputs (``Add``/``Sub`` of two branches, ``Concat``,
``Split``) and the shape plumbing folded on constants are the graph reader's
(:mod:`convmatrix.adapters.onnx.reader`), not in this table.
"""

from __future__ import annotations

from collections.abc import Callable

from convmatrix.adapters.onnx.node import OnnxNode
from convmatrix.layers.base import Layer
from convmatrix.layers.identity import Identity

__all__ = ["TRANSLATORS", "Translator"]

Translator = Callable[[OnnxNode, tuple[int, ...]], Layer]
"""``translate(node, input_shape) -> Layer`` (``input_shape`` without the batch axis)."""


def identity(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``Identity``, and ``Dropout`` at inference (the mask output is refused by the reader)."""
    return Identity(input_shape)


#: ONNX ``op_type`` → translator (see the module docstring for the signature).
TRANSLATORS: dict[str, Translator] = {
    "Identity": identity,
    "Dropout": identity,
}
