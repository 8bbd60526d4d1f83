"""The report on transposed convolution in each framework: its matrices are the frameworks'.

The report builds every matrix with convmatrix's own readers and kinds (no framework import).
Here each case's transposed operator and forward convolution are rebuilt with the live framework
(torch, jax, flax, onnx.reference and onnxruntime; TensorFlow and Keras from the recorded runs in
tests/data/oracle/tf_transpose.*) and compared entry for entry, so the report's statements —
computed from those matrices by ``relation`` — are statements about the frameworks.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from convmatrix.reports.transposed import report_cases, transposed_convolution_report
from convmatrix.testing import relation

CASES = {case.key: case for case in report_cases()}
K = np.arange(1.0, 10.0).reshape(3, 3)
ORACLE = Path(__file__).resolve().parents[1] / "data" / "oracle"


def _matrix(fn, input_shape):
    """A batched framework function's dense matrix (unit vectors in, outputs flattened)."""
    n = math.prod(input_shape)
    out = np.asarray(fn(np.eye(n, dtype=np.float32).reshape(n, *input_shape)), dtype=np.float64)
    return out.reshape(n, -1).T


def _check(key, layer_matrix, forward_matrix):
    case = CASES[key]
    np.testing.assert_array_equal(case.layer.matrix().toarray(), layer_matrix)
    np.testing.assert_array_equal(case.forward.matrix().toarray(), forward_matrix)


# ------------------------------------------------------------------------------ torch


TORCH = {"torch": {"padding": 1, "output_padding": 1},
         "torch-no-output-padding": {"padding": 1},
         "torch-padding-crops": {}}


@pytest.mark.parametrize("key", sorted(TORCH))
def test_torch_cases(key):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    w = torch.from_numpy(K.reshape(1, 1, 3, 3))
    up = _matrix(lambda y: F.conv_transpose2d(torch.from_numpy(y).double(), w, stride=2,
                                              **TORCH[key]), (1, 2, 2))
    down = _matrix(lambda x: F.conv2d(torch.from_numpy(x).double(), w, stride=2, padding=1),
                   (1, 4, 4))
    _check(key, up, down)


# ------------------------------------------------------------------------------ TF / Keras


def _recorded(case_id):
    records = {r["id"]: r for r in json.loads((ORACLE / "tf_transpose.json").read_text())}
    with np.load(ORACLE / "tf_transpose.npz") as archive:
        return records[case_id], archive[f"{case_id}__matrix"], \
            archive[f"{case_id}__forward_matrix"]


@pytest.mark.parametrize(("key", "case_id"), [
    ("tf-4", "tf-conv2d_transpose-report-4x4"), ("tf-3", "tf-conv2d_transpose-report-3x3"),
    ("keras", "tf-keras-Conv2DTranspose-report")])
def test_tensorflow_and_keras_cases_from_recorded_runs(key, case_id):
    record, matrix, forward = _recorded(case_id)
    assert tuple(record["output_shape"]) == tuple(CASES[key].layer.output_shape)
    _check(key, matrix, forward)


# ------------------------------------------------------------------------------ flax / jax.lax


@pytest.mark.parametrize("key", ["flax-false", "flax-true", "flax-channels"])
def test_flax_cases(key):
    pytest.importorskip("jax")
    nn = pytest.importorskip("flax.linen")
    import jax.numpy as jnp

    channels = 2 if key == "flax-channels" else 1
    kernel = (np.arange(1.0, 37.0).reshape(3, 3, 2, 2) if channels == 2
              else K.reshape(3, 3, 1, 1))

    def run(module, shape):
        return _matrix(lambda x: module.apply({"params": {"kernel": jnp.asarray(kernel)}},
                                              jnp.asarray(x)), shape)

    up = nn.ConvTranspose(channels, (3, 3), strides=(2, 2), padding="SAME", use_bias=False,
                          transpose_kernel=key == "flax-true")
    conv = nn.Conv(channels, (3, 3), strides=(2, 2), padding="SAME", use_bias=False)
    _check(key, run(up, (2, 2, channels)), run(conv, (4, 4, channels)))


LAX = {
    "lax-stride1": ((3, 3, 1), (1, 1), "SAME", {}, (3, 3, 1), "SAME"),
    "lax-explicit-false": ((2, 2, 1), (2, 2), [(0, 1), (0, 1)], {"transpose_kernel": True},
                           (4, 4, 1), [(0, 1), (0, 1)]),
    "lax-explicit-true": ((2, 2, 1), (2, 2), [(0, 1), (0, 1)],
                          {"transpose_kernel": True, "use_consistent_padding": True},
                          (4, 4, 1), [(0, 1), (0, 1)]),
    "lax-valid": ((2, 2, 1), (2, 2), "VALID", {"transpose_kernel": True}, (5, 5, 1), "VALID"),
    "lax-zero-pairs": ((2, 2, 1), (2, 2), [(0, 0), (0, 0)], {"transpose_kernel": True},
                       (5, 5, 1), "VALID"),
}


@pytest.mark.parametrize("key", sorted(LAX))
def test_lax_cases(key):
    jax = pytest.importorskip("jax")
    in_shape, strides, padding, kw, conv_shape, conv_padding = LAX[key]
    k = K.reshape(3, 3, 1, 1).astype(np.float32)
    dn = ("NHWC", "HWIO", "NHWC")
    up = _matrix(lambda y: jax.lax.conv_transpose(y, k, strides, padding,
                                                  dimension_numbers=dn, **kw), in_shape)
    down = _matrix(lambda x: jax.lax.conv_general_dilated(x, k, strides, conv_padding,
                                                          dimension_numbers=dn), conv_shape)
    _check(key, up, down)


# ------------------------------------------------------------------------------ ONNX


ONNX = {
    "onnx-pads": ({"pads": [1, 1, 1, 1], "output_padding": [1, 1]},
                  {"pads": [1, 1, 1, 1]}, 4),
    "onnx-same-upper": ({"auto_pad": "SAME_UPPER"}, {"auto_pad": "SAME_UPPER"}, 4),
    "onnx-same-lower": ({"auto_pad": "SAME_LOWER"}, {"auto_pad": "SAME_LOWER"}, 4),
    "onnx-same-upper-output-padding": ({"auto_pad": "SAME_UPPER", "output_padding": [1, 1]},
                                       {"auto_pad": "SAME_UPPER"}, 4),
    "onnx-output-shape": ({"auto_pad": "SAME_UPPER", "output_shape": [3, 3]},
                          {"pads": [1, 1, 1, 1]}, 3),
}


def _onnx_single(op, attrs, x_shape):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    w = K.reshape(1, 1, 3, 3).astype(np.float32)
    node = helper.make_node(op, ["x", "w"], ["y"], strides=[2, 2], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *x_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)],
        [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _onnx_matrices(model, x_shape):
    ort = pytest.importorskip("onnxruntime")
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(model)
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    units = np.eye(math.prod(x_shape), dtype=np.float32)
    reference = np.stack([evaluator.run(None, {"x": e.reshape(1, *x_shape)})[0].ravel()
                          for e in units], axis=1).astype(np.float64)
    runtime = np.stack([session.run(None, {"x": e.reshape(1, *x_shape)})[0].ravel()
                        for e in units], axis=1).astype(np.float64)
    return reference, runtime


@pytest.mark.parametrize("key", sorted(ONNX))
def test_onnx_cases(key):
    """The reference and onnxruntime agree here; the report follows the reference."""
    up_attrs, conv_attrs, size = ONNX[key]
    up_ref, up_ort = _onnx_matrices(_onnx_single("ConvTranspose", up_attrs, (1, 2, 2)),
                                    (1, 2, 2))
    conv_ref, conv_ort = _onnx_matrices(_onnx_single("Conv", conv_attrs, (1, size, size)),
                                        (1, size, size))
    np.testing.assert_array_equal(up_ref, up_ort)
    np.testing.assert_array_equal(conv_ref, conv_ort)
    _check(key, up_ref, conv_ref)


# ------------------------------------------------------------------------------ the report


def test_every_case_is_checked_live():
    checked = {*TORCH, "tf-4", "tf-3", "keras", "flax-false", "flax-true", "flax-channels",
               *LAX, *ONNX}
    assert checked == set(CASES)


def test_report_states_the_relations():
    report = transposed_convolution_report(figures=False)
    text = report.markdown
    for case in CASES.values():
        assert f"`{case.call}`" in text
        for label, url in case.issues:
            assert f"[{label}]({url})" in text
    # the statements follow from relation, e.g. flax's default and equinox's stride-1 case
    assert relation(CASES["flax-false"].layer, CASES["flax-false"].forward).differences == {
        "kernel_flip": (False, True)}
    assert "**exactly C**" in text  # lax stride 1 without transpose_kernel: C itself
    assert report.summary.startswith(f"{text.count('**exactly Cᵀ**')} of {len(CASES)}")
