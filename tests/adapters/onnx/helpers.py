"""Shared helpers for the ONNX adapter tests: build single-op models, run the oracles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

onnx = __import__("pytest").importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def model(nodes: Sequence[Any], input_shape: Sequence[Any], initializers: dict[str, np.ndarray],
          opset: int = 17, dtype: int = TensorProto.FLOAT, output_shape: Any = None,
          input_name: str = "x", output_name: str = "y") -> Any:
    """A ModelProto of ``nodes`` with one input ``x`` and one output ``y``."""
    inits = [numpy_helper.from_array(value, name) for name, value in initializers.items()]
    graph = helper.make_graph(
        list(nodes), "g", [helper.make_tensor_value_info(input_name, dtype, list(input_shape))],
        [helper.make_tensor_value_info(output_name, dtype, output_shape)], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = min(proto.ir_version, 10)
    return proto


def as_double(proto: Any) -> Any:
    """The same model in float64 (initializers, Constant tensors, input/output types)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    graph = copy.graph
    for i, tensor in enumerate(graph.initializer):
        array = numpy_helper.to_array(tensor)
        if array.dtype == np.float32:
            graph.initializer[i].CopyFrom(numpy_helper.from_array(array.astype(np.float64),
                                                                  tensor.name))
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.DOUBLE
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                array = numpy_helper.to_array(attribute.t)
                if array.dtype == np.float32:
                    attribute.t.CopyFrom(numpy_helper.from_array(array.astype(np.float64),
                                                                 attribute.t.name))
            if node.op_type == "Cast" and attribute.name == "to" and \
                    attribute.i == TensorProto.FLOAT:
                attribute.i = TensorProto.DOUBLE
    return copy


def reference(proto: Any, x: np.ndarray) -> np.ndarray:
    """``onnx.reference`` of the model in float64 (x with its batch axis)."""
    from onnx.reference import ReferenceEvaluator

    double = as_double(proto)
    name = double.graph.input[0].name
    return np.asarray(ReferenceEvaluator(double).run(None, {name: x.astype(np.float64)})[0])


def runtime(proto: Any, x: np.ndarray) -> np.ndarray:
    """onnxruntime of the model in float32 (x with its batch axis)."""
    ort = __import__("pytest").importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: x.astype(np.float32)})[0], dtype=np.float64)


def affine(layer: Any, x: np.ndarray) -> np.ndarray:
    """``M x + b`` of one sample ``x`` (no batch axis), from the matrix and the offset."""
    return layer.matrix() @ x.reshape(-1) + layer.offset()
