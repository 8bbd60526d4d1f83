"""TensorFlow's transposed convolutions against recorded runs (tests/data/oracle/tf_transpose.*).

TensorFlow is not installed with the project: ``scripts/record_tf_transpose.py`` recorded, with
TensorFlow 2.21 / Keras 3.15 on CPU, the exact Jacobian of ``tf.nn.conv2d_transpose`` (SAME and
VALID, strides 1–3, several ``output_shape`` choices for one input, one refused) and of Keras
``Conv2DTranspose`` (padding, strides, ``output_padding``), and of the forward convolution with
the same filter. These tests pin (1) that TensorFlow's and Keras' transposed convolutions are
exactly ``Cᵀ`` of their forward convolution (the adjoint the other frameworks are compared with
in the report), and (2) that convmatrix's readers (``from_keras`` and the report's
``tf_conv2d_transpose``) reproduce them entry for entry.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.reports.transposed import tf_conv2d, tf_conv2d_transpose
from convmatrix.testing import relation

DIR = Path(__file__).resolve().parents[1] / "data" / "oracle"


@cache
def _records():
    return tuple(json.loads((DIR / "tf_transpose.json").read_text()))


@cache
def _store():
    with np.load(DIR / "tf_transpose.npz") as archive:
        return {key: archive[key] for key in archive.files}


def _arrays(record):
    return {name: _store()[f"{record['id']}__{name}"] for name in record["arrays"]}


def _select(op, refused=False):
    return [r for r in _records() if r["op"] == op and bool(r.get("refused")) == refused]


def test_the_recording_covers_what_the_report_cites():
    nn = _select("conv2d_transpose")
    assert {r["padding"] for r in nn} == {"SAME", "VALID"}
    assert {tuple(r["strides"]) for r in nn} >= {(1, 1), (2, 2), (3, 3), (1, 2)}
    # one input, several output_shape choices (the ambiguity output_shape resolves)
    assert len({tuple(r["output_shape"]) for r in nn if r["id"].startswith(
        "tf-conv2d_transpose-05")}) == 3
    assert _select("conv2d_transpose", refused=True)
    assert len(_select("Conv2DTranspose")) >= 5


@pytest.mark.parametrize("record", _select("conv2d_transpose") + _select("Conv2DTranspose"),
                         ids=lambda r: r["id"])
def test_tensorflow_transpose_is_the_adjoint_of_its_conv(record):
    """TF's own matrices: conv2d_transpose / Conv2DTranspose = (conv2d / Conv2D)ᵀ, exactly."""
    arrays = _arrays(record)
    np.testing.assert_array_equal(arrays["matrix"], arrays["forward_matrix"].T)


@pytest.mark.parametrize("record", _select("conv2d_transpose"), ids=lambda r: r["id"])
def test_tf_nn_conv2d_transpose_matrix(record):
    arrays = _arrays(record)
    layer = tf_conv2d_transpose(arrays["filter"], record["input_shape"],
                                record["output_shape"], record["strides"], record["padding"])
    assert tuple(layer.output_shape) == tuple(record["output_shape"])
    np.testing.assert_array_equal(layer.matrix().toarray(), arrays["matrix"])
    forward = tf_conv2d(arrays["filter"], record["output_shape"], record["strides"],
                        record["padding"])
    np.testing.assert_array_equal(forward.matrix().toarray(), arrays["forward_matrix"])
    r = relation(layer, forward)
    assert (r.verdict, r.differences) == ("transpose", {})


@pytest.mark.parametrize("record", _select("conv2d_transpose", refused=True),
                         ids=lambda r: r["id"])
def test_tf_nn_conv2d_transpose_refusal(record):
    """An output_shape TF refuses ('Size of out_backprop doesn't match') is refused too."""
    assert "out_backprop" in record["message"]
    with pytest.raises(cm.ConvMatrixError, match="output_shape"):
        tf_conv2d_transpose(_arrays(record)["filter"], record["input_shape"],
                            record["output_shape"], record["strides"], record["padding"])


@pytest.mark.parametrize("record", _select("Conv2DTranspose"), ids=lambda r: r["id"])
def test_keras_conv2d_transpose_matrix(record):
    arrays = _arrays(record)
    layer = cm.from_keras(record["layer"], arrays["kernel"], record["input_shape"])
    assert tuple(layer.output_shape) == tuple(record["output_shape"])
    np.testing.assert_array_equal(layer.matrix().toarray(), arrays["matrix"])
    config = record["layer"]["config"]
    conv = cm.from_keras(
        {"class_name": "Conv2D",
         "config": {"filters": record["input_shape"][-1], "kernel_size": config["kernel_size"],
                    "strides": config["strides"], "padding": config["padding"],
                    "dilation_rate": config["dilation_rate"], "use_bias": False,
                    "data_format": "channels_last"}},
        arrays["kernel"], record["output_shape"])
    np.testing.assert_array_equal(conv.matrix().toarray(), arrays["forward_matrix"])
    r = relation(layer, conv)
    assert (r.verdict, r.differences) == ("transpose", {})
