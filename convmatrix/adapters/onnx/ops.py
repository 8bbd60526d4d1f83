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

from convmatrix.adapters.onnx import ops_conv, ops_linear
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
    "Conv": ops_conv.conv,
    "ConvTranspose": ops_conv.conv_transpose,
    "AveragePool": ops_conv.average_pool,
    "GlobalAveragePool": ops_conv.global_average_pool,
    "BatchNormalization": ops_linear.batch_normalization,
    "Add": ops_linear.arithmetic,
    "Sub": ops_linear.arithmetic,
    "Mul": ops_linear.arithmetic,
    "Div": ops_linear.arithmetic,
    "Neg": ops_linear.neg,
    "Cast": ops_linear.cast,
    "Gemm": ops_linear.gemm,
    "MatMul": ops_linear.matmul,
    "Reshape": ops_linear.reshape,
    "Flatten": ops_linear.flatten,
    "Squeeze": ops_linear.squeeze,
    "Unsqueeze": ops_linear.unsqueeze,
    "ReduceMean": ops_linear.reduce,
    "ReduceSum": ops_linear.reduce,
    "Slice": ops_linear.slice_,
}

# onnx18b's operators (their modules import this table's types only, not the table)
from convmatrix.adapters.onnx.ops_layout import (  # noqa: E402
    depth_to_space,
    space_to_depth,
    transpose,
)
from convmatrix.adapters.onnx.ops_pad import pad  # noqa: E402
from convmatrix.adapters.onnx.ops_resize import resize  # noqa: E402

TRANSLATORS.update({"Resize": resize, "Pad": pad, "Transpose": transpose,
                    "DepthToSpace": depth_to_space, "SpaceToDepth": space_to_depth})
