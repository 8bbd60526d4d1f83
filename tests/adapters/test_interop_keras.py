"""keras_matrix against an independent emulation of TensorFlow's ops, written with torch.

The oracle vectors (tests/test_frameworks.py) hold only channels-last layers and no dilated
transposed layer. Here TensorFlow's definitions are restated from its documentation and Keras'
source, sharing no code with convmatrix, and evaluated with torch in float64:

- ``tf.nn.convolution(padding="SAME")``: ``o = ⌈n/s⌉``, total pad ``max((o − 1)·s + k̂ − n, 0)``,
  ``⌊total/2⌋`` before; ``Conv1D(padding="causal")`` pads ``k̂ − 1`` on the left first.
- ``tf.nn.depthwise_conv2d``: ``out[..., c·m + q] = Σ kernel[..., c, q] ⋆ in[..., c]``.
- ``tf.nn.conv_transpose(y, kernel, output_shape)`` is the gradient of the convolution from
  ``output_shape`` to ``y``'s shape with the same kernel, strides and padding rule (a VJP here);
  Keras picks ``output_shape`` with ``keras.src.backend.common.backend_utils.
  _get_output_shape_given_tf_padding``.

The emulation tests skip without torch; the rest of this file needs neither torch nor Keras.
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import seed as seed_of

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the emulation needs torch; the rest of this file does not
    torch = F = None

requires_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


# ------------------------------------------------------------------------------------------
# TensorFlow, restated (channels first inside; float64)


def _tf_pads(n, k, s, d, padding):
    k_eff = d * (k - 1) + 1
    if padding == "same":
        o = -(-n // s)
        total = max((o - 1) * s + k_eff - n, 0)
        return total // 2, total - total // 2
    if padding == "causal":
        return k_eff - 1, 0
    return 0, 0


def _tf_conv(x, kernel, strides, padding, dilation, groups=1):
    """``tf.nn.convolution`` on a channels-first batch ``x``; kernel ``(*k, C_in/g, C_out)``."""
    rank = x.ndim - 2
    weight = kernel.permute(rank + 1, rank, *range(rank))  # TF filter -> torch layout
    pads = [_tf_pads(n, k, s, d, padding) for n, k, s, d in
            zip(x.shape[2:], kernel.shape[:rank], strides, dilation, strict=True)]
    x = F.pad(x, [p for pair in reversed(pads) for p in pair])
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank]
    return conv(x, weight, stride=strides, dilation=dilation, groups=groups)


def _tf_depthwise(x, kernel, strides, padding, dilation):
    """Depthwise convolution by its definition, one (channel, multiplier) pair at a time."""
    rank = x.ndim - 2
    c_in, multiplier = kernel.shape[rank], kernel.shape[rank + 1]
    outputs = [
        _tf_conv(x[:, c:c + 1], kernel[..., c:c + 1, q:q + 1], strides, padding, dilation)
        for c in range(c_in) for q in range(multiplier)  # channel c·m + q
    ]
    return torch.cat(outputs, dim=1)


def _keras_transpose_length(n, k, s, d, padding, output_padding):
    k_eff = (k - 1) * d + 1
    if padding == "valid":
        extra = max(k_eff, s) - k_eff if output_padding is None else output_padding
        return (n - 1) * s + k_eff + extra
    if output_padding is None:
        return n * s
    return (n - 1) * s + k_eff % 2 + output_padding


def _tf_conv_transpose(y, kernel, strides, padding, dilation, output_padding):
    """``tf.nn.conv_transpose``: the input gradient of the convolution from the output size."""
    rank = y.ndim - 2
    ops = [None] * rank if output_padding is None else output_padding
    out_len = [_keras_transpose_length(n, k, s, d, padding, a) for n, k, s, d, a in
               zip(y.shape[2:], kernel.shape[:rank], strides, dilation, ops, strict=True)]
    x0 = torch.zeros(y.shape[0], kernel.shape[rank], *out_len, dtype=y.dtype)
    forward_out, vjp = torch.func.vjp(
        lambda x: _tf_conv(x, kernel, strides, padding, dilation), x0)
    if forward_out.shape != y.shape:
        raise RuntimeError("TensorFlow rejects this shape")  # conv2d_backprop_input does
    return vjp(y)[0]


# ------------------------------------------------------------------------------------------
# random Keras configurations, seeded per case


def _random_layer(class_name, data_format, seed):
    rng = np.random.default_rng(seed)
    rank = int(re.search(r"(\d)D", class_name).group(1))
    kernel_size = [int(v) for v in rng.integers(1, 5, rank)]
    if rng.random() < 0.5:  # Keras rejects strides > 1 with dilation_rate > 1
        strides, dilation = [int(v) for v in rng.integers(1, 4, rank)], [1] * rank
    else:
        strides, dilation = [1] * rank, [int(v) for v in rng.integers(1, 4, rank)]
    paddings = ["valid", "same"] + (["causal"] if class_name == "Conv1D" else [])
    config = {"kernel_size": kernel_size, "strides": strides, "dilation_rate": dilation,
              "padding": str(rng.choice(paddings)), "data_format": data_format}
    c_in = int(rng.integers(1, 4))
    if class_name.startswith("Depthwise"):
        config["depth_multiplier"] = int(rng.integers(1, 4))
        kernel_shape = (*kernel_size, c_in, config["depth_multiplier"])
    elif "Transpose" in class_name:
        config["filters"] = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            config["output_padding"] = None
        else:
            config["output_padding"] = [int(rng.integers(0, s)) for s in strides]
        kernel_shape = (*kernel_size, config["filters"], c_in)
    else:
        groups = int(rng.choice([1, 2]))
        c_in *= groups
        config["groups"] = groups
        config["filters"] = groups * int(rng.integers(1, 3))
        kernel_shape = (*kernel_size, c_in // groups, config["filters"])
    k_eff = [d * (k - 1) + 1 for k, d in zip(kernel_size, dilation, strict=True)]
    spatial = [int(rng.integers(max(1, e - 1), e + 6)) for e in k_eff]
    layer = {"class_name": class_name, "config": config}
    return json.loads(json.dumps(layer)), kernel_shape, c_in, spatial, rng


CLASSES = ["Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
           "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D"]
GRID = list(itertools.product(CLASSES, ["channels_last", "channels_first"], range(6)))


@requires_torch
@pytest.mark.parametrize(("class_name", "data_format", "draw"), GRID, ids=str)
def test_keras_matrix_matches_tensorflow_semantics(class_name, data_format, draw):
    seed = seed_of(class_name, data_format, draw)
    layer, kernel_shape, c_in, spatial, rng = _random_layer(class_name, data_format, seed)
    config = layer["config"]
    kernel = rng.standard_normal(kernel_shape)
    x_cf = rng.standard_normal((c_in, *spatial))
    channels_last = data_format == "channels_last"
    x_keras = np.moveaxis(x_cf, 0, -1) if channels_last else x_cf
    args = (torch.from_numpy(x_cf)[None], torch.from_numpy(kernel), config["strides"],
            config["padding"], config["dilation_rate"])
    try:
        if "Transpose" in class_name:
            expected = _tf_conv_transpose(*args, config["output_padding"])
        elif class_name.startswith("Depthwise"):
            expected = _tf_depthwise(*args)
        else:
            expected = _tf_conv(*args, groups=config["groups"])
    except RuntimeError:  # no output (input smaller than the kernel) or TF refuses the shape
        with pytest.raises(cm.ConvMatrixError):
            cm.keras_matrix(layer, kernel, x_keras.shape)
        return
    y_cf = expected.numpy()[0]
    y_keras = np.moveaxis(y_cf, 0, -1) if channels_last else y_cf
    C = cm.keras_matrix(layer, kernel, x_keras.shape)
    assert cm.keras_output_shape(layer, x_keras.shape) == y_keras.shape
    assert C.shape == (y_keras.size, x_keras.size)
    assert C.format == "csr" and C.has_canonical_format
    np.testing.assert_allclose(C @ x_keras.ravel(), y_keras.ravel(), rtol=1e-12, atol=1e-12)


def test_the_grid_reaches_every_branch():
    """The random grid covers every padding rule, both output_padding forms and dilation."""
    seen = set()
    for class_name, data_format, draw in GRID:
        seed = seed_of(class_name, data_format, draw)
        layer, *_ = _random_layer(class_name, data_format, seed)
        config = layer["config"]
        seen.add(("Transpose" in class_name, config["padding"]))
        seen.add(("dilated", class_name, max(config["dilation_rate"]) > 1))
        if "Transpose" in class_name:
            seen.add(("output_padding", config["output_padding"] is None))
    for transposed, padding in [(False, "valid"), (False, "same"), (False, "causal"),
                                (True, "valid"), (True, "same")]:
        assert (transposed, padding) in seen
    assert ("output_padding", True) in seen and ("output_padding", False) in seen
    assert all(("dilated", name, True) in seen for name in CLASSES)


# ------------------------------------------------------------------------------------------
# the transposed layer is the adjoint of the Keras convolution it inverts (shapes permitting)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize(("n", "k", "s", "padding"), [(5, 3, 2, "same"), (6, 4, 2, "same"),
                                                       (7, 2, 3, "valid"), (4, 5, 1, "same")])
def test_keras_transpose_is_the_adjoint_of_the_keras_conv(data_format, n, k, s, padding):
    """``Conv2DTranspose(y)`` is ``Cᵀ y`` for the ``Conv2D`` taking its output back to ``y``."""
    rng = np.random.default_rng(n * 100 + k * 10 + s)
    kernel = rng.standard_normal((k, k, 2, 3))  # Conv2D: (*k, in=2, out=3); transpose: out=2
    base = {"kernel_size": [k, k], "strides": [s, s], "padding": padding,
            "data_format": data_format}
    transpose = {"class_name": "Conv2DTranspose", "config": {**base, "filters": 2}}
    y_shape = (n, n + 1, 3) if data_format == "channels_last" else (3, n, n + 1)
    out_shape = cm.keras_output_shape(transpose, y_shape)
    conv = {"class_name": "Conv2D", "config": {**base, "filters": 3}}
    assert cm.keras_output_shape(conv, out_shape) == y_shape
    CT = cm.keras_matrix(transpose, kernel, y_shape)
    C = cm.keras_matrix(conv, kernel, out_shape)
    assert abs(CT - C.T).max() == 0


# ------------------------------------------------------------------------------------------
# validation beyond tests/test_frameworks.py


@pytest.mark.parametrize(("layer", "kernel_shape", "input_shape", "message"), [
    ({"class_name": "DepthwiseConv1D", "config": {"kernel_size": [3], "padding": "causal"}},
     (3, 1, 1), (5, 1), r"`padding` \(='causal'\) must be one of \('valid', 'same'\)"),
    ({"class_name": "DepthwiseConv2D", "config": {"kernel_size": [3, 3],
                                                  "depth_multiplier": 2}},
     (3, 3, 2, 1), (5, 5, 2), r"depth_multiplier=2 on 2 channels needs \(3, 3, 2, 2\)"),
    ({"class_name": "Conv2DTranspose", "config": {"filters": 2, "kernel_size": [3, 3]}},
     (3, 3, 1, 2), (5, 5, 2), r"filters=2 on 2 input channels needs \(3, 3, 2, 2\)"),
    ({"class_name": "Conv1DTranspose", "config": {"filters": 1, "kernel_size": [3],
                                                  "strides": [2], "output_padding": 2}},
     (3, 1, 1), (5, 1), r"`output_padding` < `strides`"),
    ({"class_name": "Conv2D", "config": {"filters": 1, "kernel_size": [3, 3],
                                         "data_format": "channels_middle"}},
     (3, 3, 1, 1), (5, 5, 1), r"`data_format` \(='channels_middle'\)"),
    ({"class_name": "Conv2D", "config": {"filters": 1, "kernel_size": [3, 3],
                                         "strides": [1, 0]}},
     (3, 3, 1, 1), (5, 5, 1), r"`strides` \(=\[1, 0\]\) must be 2 positive ints"),
    ({"config": {"filters": 1, "kernel_size": [3, 3]}},
     (3, 3, 1, 1), (5, 5, 1), r"`class_name` \(=None\) is not supported"),
])
def test_keras_errors_name_the_field(layer, kernel_shape, input_shape, message):
    with pytest.raises(cm.ConvMatrixError, match=message):
        cm.keras_matrix(layer, np.ones(kernel_shape), input_shape)


def test_keras_full_serialized_dict_and_aliases():
    """What ``keras.layers.serialize`` really returns (module, dtype policy, build_config)."""
    layer = {"module": "keras.layers", "class_name": "Convolution2D", "registered_name": None,
             "build_config": {"input_shape": [None, 5, 6, 2]},
             "config": {"name": "conv2d", "trainable": True,
                        "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                  "config": {"name": "float32"}, "registered_name": None},
                        "filters": 4, "kernel_size": [3, 3], "strides": [1, 1],
                        "padding": "SAME", "data_format": "channels_last",
                        "dilation_rate": [1, 1], "groups": 2, "activation": "linear",
                        "use_bias": True}}
    kernel = np.arange(36.0).reshape(3, 3, 1, 4)
    C = cm.keras_matrix(layer, kernel, (5, 6, 2))
    assert C.shape == (5 * 6 * 4, 5 * 6 * 2)
    assert cm.keras_output_shape(layer, (5, 6, 2)) == (5, 6, 4)


def test_keras_float32_kernel_gives_a_float32_matrix():
    layer = {"class_name": "Conv1D", "config": {"filters": 1, "kernel_size": [2]}}
    C = cm.keras_matrix(layer, np.ones((2, 1, 1), dtype=np.float32), (4, 1))
    assert C.dtype == np.float32
    assert C.shape == (3, 4)


# ------------------------------------------------------------------------------------------
# once-failed: a negative output_padding was reported as an `output_size` error; an unknown (None)
# size raised a bare TypeError


def test_negative_output_padding_names_the_field():
    layer = {"class_name": "Conv2DTranspose",
             "config": {"filters": 1, "kernel_size": [3, 3], "strides": [2, 2],
                        "output_padding": [-1, 0]}}
    with pytest.raises(cm.ConvMatrixError, match=r"`output_padding`"):
        cm.keras_matrix(layer, np.ones((3, 3, 1, 1)), (4, 4, 1))


def test_unknown_input_size_is_a_convmatrix_error():
    layer = {"class_name": "Conv1D", "config": {"filters": 1, "kernel_size": [2]}}
    with pytest.raises(cm.ConvMatrixError, match="input_shape"):
        cm.keras_matrix(layer, np.ones((2, 1, 1)), (None, 1))
