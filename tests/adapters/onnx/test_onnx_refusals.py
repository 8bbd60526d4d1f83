"""from_onnx refuses what it cannot read exactly, naming the op, the node and the opset;
external data is read only from inside the model's directory (CVE-2024-27318)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from onnx import TensorProto, numpy_helper

import convmatrix as cm
from tests.adapters.onnx.helpers import helper, model, onnx


def _conv_model(shape=("N", 1, 4, 4)):
    return model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv0")], shape,
                 {"w": np.ones((1, 1, 3, 3), np.float32)})


def test_unknown_op_names_op_node_and_opset():
    proto = model([helper.make_node("Hardmax", ["x"], ["y"], name="hm")], [1, 3], {}, opset=13)
    with pytest.raises(cm.ConvMatrixError, match=r"node 'hm' \(Hardmax, opset 13\).*'Hardmax'"):
        cm.from_onnx(proto)


def test_custom_domain_is_refused_by_name():
    node = helper.make_node("MyConv", ["x"], ["y"], name="mine", domain="com.example")
    proto = model([node], [1, 3], {})
    proto.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(cm.ConvMatrixError, match=r"'MyConv' of domain 'com.example'"):
        cm.from_onnx(proto)


@pytest.mark.parametrize("op", ["Relu", "Sigmoid", "MaxPool"])
def test_nonlinear_ops_point_to_linearize(op):
    attrs = {"kernel_shape": [2, 2]} if op == "MaxPool" else {}
    proto = model([helper.make_node(op, ["x"], ["y"], name="nl", **attrs)], [1, 1, 4, 4], {},
                  opset=18)
    with pytest.raises(cm.ConvMatrixError, match=rf"node 'nl' \({op}, opset 18\).*linearize"):
        cm.from_onnx(proto)


def test_product_of_branches_is_refused():
    proto = model([helper.make_node("Mul", ["x", "x"], ["y"], name="sq")], [1, 3], {})
    with pytest.raises(cm.ConvMatrixError, match=r"'sq'.*two branches"):
        cm.from_onnx(proto)


def test_two_inputs_and_two_outputs_are_refused_by_name():
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 2]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    with pytest.raises(cm.ConvMatrixError, match=r"2 inputs \('a', 'b'\)"):
        cm.from_onnx(helper.make_model(graph))
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["z"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2])])
    with pytest.raises(cm.ConvMatrixError, match=r"2 outputs \('y', 'z'\)"):
        cm.from_onnx(helper.make_model(graph))


def test_batch_above_one_is_refused_and_batch_one_or_symbolic_dropped():
    with pytest.raises(cm.ConvMatrixError, match="fixed batch of 4"):
        cm.from_onnx(_conv_model((4, 1, 4, 4)))
    assert cm.from_onnx(_conv_model((1, 1, 4, 4))).input_shape == (1, 4, 4)
    assert cm.from_onnx(_conv_model(("batch", 1, 4, 4))).input_shape == (1, 4, 4)


def test_dynamic_dims_need_input_shape_naming_the_input():
    proto = _conv_model(("N", 1, "H", "W"))
    with pytest.raises(cm.ConvMatrixError, match=r"input 'x' has dynamic dimensions.*input_shape"):
        cm.from_onnx(proto)
    assert cm.from_onnx(proto, (1, 6, 5)).output_shape == (1, 4, 3)
    with pytest.raises(cm.ConvMatrixError, match="fixes it to 1"):
        cm.from_onnx(proto, (2, 6, 5))
    with pytest.raises(cm.ConvMatrixError, match="has 2 axes"):
        cm.from_onnx(proto, (6, 5))


def test_old_opsets_and_bad_model_arguments():
    proto = _conv_model()
    proto.opset_import[0].version = 9
    with pytest.raises(cm.ConvMatrixError, match="opset 9"):
        cm.from_onnx(proto)
    with pytest.raises(cm.ConvMatrixError, match="must be a path"):
        cm.from_onnx(42)
    with pytest.raises(cm.ConvMatrixError, match="not a file"):
        cm.from_onnx("/nonexistent/model.onnx")


def test_training_mode_batch_norm_is_refused():
    c = 2
    inits = {k: np.ones(c, np.float32) for k in "sbmv"}
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn",
                            training_mode=1)
    with pytest.raises(cm.ConvMatrixError, match=r"'bn'.*training_mode"):
        cm.from_onnx(model([node], [1, c, 3], inits, opset=15))


def test_folded_constants_stay_under_max_bytes():
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"], name="cos"),
             helper.make_node("Add", ["x", "big"], ["y"])]
    proto = model(nodes, [1, 4], {"shape": np.array([1, 10**12], np.int64)})
    with pytest.raises(cm.ConvMatrixError, match=r"'cos'.*over `max_bytes`"):
        cm.from_onnx(proto)


def test_model_file_over_max_bytes(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save_model(_conv_model(), str(path))
    with pytest.raises(cm.ConvMatrixError, match="over `max_bytes`"):
        cm.from_onnx(path, max_bytes=10)


def _external_model(location: str) -> onnx.ModelProto:
    proto = _conv_model()
    tensor = proto.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "36")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return proto


def test_external_data_inside_the_model_directory_is_read(tmp_path):
    weights = np.arange(9, dtype=np.float32)
    (tmp_path / "w.bin").write_bytes(weights.tobytes())
    path = tmp_path / "m.onnx"
    onnx.save_model(_external_model("w.bin"), str(path))
    layer = cm.from_onnx(path)
    assert np.array_equal(layer.weight.reshape(-1), weights)
    with pytest.raises(cm.ConvMatrixError, match="pass the model's file path"):
        cm.from_onnx(onnx.load_model(str(path), load_external_data=False))


@pytest.mark.parametrize("location", ["../secret.bin", "sub/../../secret.bin", "/etc/passwd"])
def test_external_data_escaping_the_directory_is_refused(tmp_path, location):
    """CVE-2024-27318: a crafted location must not read files outside the model's folder."""
    (tmp_path / "secret.bin").write_bytes(b"\0" * 36)
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    path = folder / "m.onnx"
    onnx.save_model(_external_model(location), str(path))
    with pytest.raises(cm.ConvMatrixError, match="CVE-2024-27318"):
        cm.from_onnx(path)


def test_external_data_through_a_symlink_out_is_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 36)
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(tmp_path / "secret.bin", folder / "w.bin")
    path = folder / "m.onnx"
    onnx.save_model(_external_model("w.bin"), str(path))
    with pytest.raises(cm.ConvMatrixError, match="leads outside the model's directory"):
        cm.from_onnx(path)


def test_external_data_length_past_the_file_is_refused(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"\0" * 8)
    path = tmp_path / "m.onnx"
    onnx.save_model(_external_model("w.bin"), str(path))
    with pytest.raises(cm.ConvMatrixError, match="lies outside"):
        cm.from_onnx(path)


def test_given_model_proto_is_not_modified(tmp_path):
    proto = _conv_model()
    before = proto.SerializeToString()
    cm.from_onnx(proto)
    cm.from_onnx(before)  # bytes work too
    assert proto.SerializeToString() == before
    assert numpy_helper.to_array(proto.graph.initializer[0]).shape == (1, 1, 3, 3)
