"""Single-node ONNX models for the translator tests (onnx18b): build, evaluate, translate."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from convmatrix.adapters.onnx.node import OnnxNode, decode_attribute  # noqa: E402
from convmatrix.adapters.onnx.ops import TRANSLATORS  # noqa: E402

DTYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


def single_node(op: str, shape: tuple[int, ...], constants: list[tuple[str, Any]],
                attributes: dict[str, Any], opset: int, dtype: Any = np.float64) -> Any:
    """A model ``Y = op(X, *constants)``; a constant named ``""`` is an omitted input."""
    names = ["X"] + [name for name, _ in constants]
    while names and names[-1] == "":
        names.pop()
    initializers = [numpy_helper.from_array(np.asarray(value), name)
                    for name, value in constants if name]
    node = helper.make_node(op, names, ["Y"], **attributes)
    element = DTYPES[np.dtype(dtype)]
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", element, shape)],
                              [helper.make_tensor_value_info("Y", element, None)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)  # what onnxruntime reads
    return model


def translate(model: Any) -> Any:
    """The model's one node through ``TRANSLATORS`` (as the reader calls it), on one sample."""
    node = model.graph.node[0]
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    decoded = OnnxNode(node.name or node.op_type, node.op_type, tuple(node.input),
                       tuple(node.output),
                       {a.name: decode_attribute(a) for a in node.attribute},
                       model.opset_import[0].version, constants)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value for d in dims)
    return TRANSLATORS[node.op_type](decoded, shape[1:])


def reference(model: Any, x: np.ndarray) -> np.ndarray:
    """``onnx.reference``'s output (the authority)."""
    return ReferenceEvaluator(model).run(None, {"X": x})[0]


def runtime(model: Any, x: np.ndarray) -> np.ndarray:
    """onnxruntime's output (CPU)."""
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 4
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"X": x})[0]
