"""cm.from_keras on Keras Sequential models, channels last, with duck-typed Keras layer objects.

keras is not installable here, so each Keras layer is a fake object of the same class name
with the same ``get_config()`` and weight attributes a built Keras layer has. References: the
equivalent torch computation run live in channels-first (weights converted in the test), and
the recorded Keras oracle runs for convolution layers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import convmatrix as cm
from tests import oracle
from tests.helpers import rng

torch = pytest.importorskip("torch")
F = torch.nn.functional


def fake(class_name: str, config: dict[str, Any], **weights: Any) -> Any:
    """An object that reads like a built Keras layer of ``class_name``."""
    kind = type(class_name, (), {"get_config": lambda self: dict(config)})
    layer = kind()
    for key, value in weights.items():
        setattr(layer, key, value)
    return layer


class FakeSequential:
    def __init__(self, layers: list[Any]) -> None:
        self.layers = layers


def _t(array: np.ndarray) -> Any:
    return torch.from_numpy(np.ascontiguousarray(array))


def _tf_same_avg_pool(x: Any, k: int, s: int) -> Any:
    """TF's 'same' average pooling (the extra pad after, pads not counted), via torch."""
    pads = []
    for n in reversed(x.shape[2:]):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    ones = torch.ones_like(x)
    summed = F.avg_pool2d(F.pad(x, pads), k, s, divisor_override=1)
    counts = F.avg_pool2d(F.pad(ones, pads), k, s, divisor_override=1)
    return summed / counts


def _model_2d() -> tuple[FakeSequential, Any, tuple[int, ...]]:
    r = rng("keras-2d")
    c = 2
    conv_k, conv_b = r.standard_normal((3, 3, c, 3)), r.standard_normal(3)
    bn = {name: r.standard_normal(3) for name in ("gamma", "beta", "moving_mean")}
    bn["moving_variance"] = r.random(3) + 0.5
    dw_k, pw_k, sep_b = (r.standard_normal((2, 2, 3, 2)), r.standard_normal((1, 1, 6, 2)),
                         r.standard_normal(2))
    convt_k = r.standard_normal((3, 3, 2, 2))
    model = FakeSequential([
        fake("InputLayer", {}),
        fake("Conv2D", {"filters": 3, "kernel_size": [3, 3], "strides": [1, 1],
                        "padding": "valid", "data_format": "channels_last"},
             kernel=conv_k, bias=conv_b),
        fake("BatchNormalization", {"axis": -1, "epsilon": 1e-3}, **bn),
        fake("UpSampling2D", {"size": [2, 3], "interpolation": "nearest"}),
        fake("ZeroPadding2D", {"padding": [[1, 0], [2, 1]]}),
        fake("AveragePooling2D", {"pool_size": [3, 3], "strides": [2, 2], "padding": "same"}),
        fake("Cropping2D", {"cropping": [[1, 1], [0, 2]]}),
        fake("Dropout", {"rate": 0.5}),
        fake("UpSampling2D", {"size": [2, 2], "interpolation": "bilinear"}),
        fake("SeparableConv2D", {"filters": 2, "kernel_size": [2, 2], "strides": [1, 1],
                                 "padding": "valid", "depth_multiplier": 2, "use_bias": True},
             depthwise_kernel=dw_k, pointwise_kernel=pw_k, bias=sep_b),
        fake("Conv2DTranspose", {"filters": 2, "kernel_size": [3, 3], "strides": [2, 2],
                                 "padding": "valid", "output_padding": None},
             kernel=convt_k, bias=None),
    ])

    def forward(x: Any) -> Any:  # channels first, torch
        x = F.conv2d(x, _t(conv_k.transpose(3, 2, 0, 1)), _t(conv_b))
        x = F.batch_norm(x, _t(bn["moving_mean"]), _t(bn["moving_variance"]),
                         _t(bn["gamma"]), _t(bn["beta"]), training=False, eps=1e-3)
        x = x.repeat_interleave(2, dim=2).repeat_interleave(3, dim=3)
        x = F.pad(x, (2, 1, 1, 0))
        x = _tf_same_avg_pool(x, 3, 2)
        x = x[:, :, 1:-1, 0:-2]
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        depthwise = _t(dw_k.transpose(2, 3, 0, 1).reshape(6, 1, 2, 2))  # channel c·m + j
        x = F.conv2d(x, depthwise, groups=3)
        x = F.conv2d(x, _t(pw_k.transpose(3, 2, 0, 1)), _t(sep_b))
        return F.conv_transpose2d(x, _t(convt_k.transpose(3, 2, 0, 1)), stride=2)

    return model, forward, (7, 6, c)


def _model_1d_3d() -> list[tuple[FakeSequential, Any, tuple[int, ...]]]:
    r = rng("keras-1d-3d")
    k1, b1 = r.standard_normal((3, 2, 2)), r.standard_normal(2)
    dw, pw = r.standard_normal((2, 2, 1)), r.standard_normal((1, 2, 3))
    one_d = FakeSequential([
        fake("Conv1D", {"filters": 2, "kernel_size": [3], "strides": [1], "padding": "valid"},
             kernel=k1, bias=b1),
        fake("UpSampling1D", {"size": 3}),
        fake("ZeroPadding1D", {"padding": [2, 1]}),
        fake("AveragePooling1D", {"pool_size": 2, "strides": None, "padding": "valid"}),
        fake("Cropping1D", {"cropping": [1, 0]}),
        fake("SeparableConv1D", {"filters": 3, "kernel_size": [2], "strides": [2],
                                 "padding": "valid", "depth_multiplier": 1, "use_bias": False},
             depthwise_kernel=dw, pointwise_kernel=pw),
    ])

    def forward_1d(x: Any) -> Any:
        x = F.conv1d(x, _t(k1.transpose(2, 1, 0)), _t(b1))
        x = x.repeat_interleave(3, dim=2)
        x = F.avg_pool1d(F.pad(x, (2, 1)), 2)
        x = x[:, :, 1:]
        x = F.conv1d(x, _t(dw.transpose(1, 2, 0).reshape(2, 1, 2)), stride=2, groups=2)
        return F.conv1d(x, _t(pw.transpose(2, 1, 0)))

    three_d = FakeSequential([
        fake("UpSampling3D", {"size": [1, 2, 2]}),
        fake("ZeroPadding3D", {"padding": [1, 0, 2]}),
        fake("Cropping3D", {"cropping": [[0, 1], [1, 0], [0, 0]]}),
        fake("AveragePooling3D", {"pool_size": [2, 2, 1], "strides": [1, 2, 1],
                                  "padding": "valid"}),
    ])

    def forward_3d(x: Any) -> Any:
        x = x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
        x = F.pad(x, (2, 2, 0, 0, 1, 1))
        x = x[:, :, 0:-1, 1:, :]
        return F.avg_pool3d(x, (2, 2, 1), (1, 2, 1))

    return [(one_d, forward_1d, (9, 2)), (three_d, forward_3d, (2, 3, 2, 2))]


def _check(model: FakeSequential, forward: Any, shape: tuple[int, ...], key: str) -> cm.Layer:
    layer = cm.from_keras(model, input_shape=shape)
    assert isinstance(layer, cm.Sequential)
    r = rng("keras-data", key)
    x = r.standard_normal(shape)
    xt = torch.from_numpy(np.moveaxis(x, -1, 0)[None].copy()).requires_grad_()
    y = forward(xt)
    g = torch.from_numpy(r.standard_normal(tuple(y.shape)))
    (grad,) = torch.autograd.grad(y, xt, g)
    expected = np.moveaxis(y.detach().numpy()[0], 0, -1)
    assert layer.output_shape == expected.shape
    np.testing.assert_allclose(layer(x), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.matrix() @ x.ravel() + layer.offset(), expected.ravel(),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.T(np.moveaxis(g.numpy()[0], 0, -1)),
                               np.moveaxis(grad.numpy()[0], 0, -1), rtol=1e-10, atol=1e-10)
    return layer


def test_keras_2d_sequential_matches_the_torch_equivalent():
    model, forward, shape = _model_2d()
    layer = _check(model, forward, shape, "2d")
    names = [repr(item).split("(")[0] for item in layer]
    assert names == ["Conv2D", "BatchNormalization", "UpSampling2D", "ZeroPadding2D",
                     "AveragePooling2D", "Cropping2D", "Identity", "UpSampling2D",
                     "Sequential", "Conv2DTranspose"]
    assert [repr(item).split("(")[0] for item in layer[8]] == ["DepthwiseConv2D", "Conv2D"]


@pytest.mark.parametrize("index", [0, 1])
def test_keras_1d_and_3d_sequentials_match_the_torch_equivalent(index):
    model, forward, shape = _model_1d_3d()[index]
    _check(model, forward, shape, f"1d-3d-{index}")


@pytest.mark.parametrize("case", oracle.select("keras")[:6], ids=lambda c: c["id"])
def test_keras_stack_of_recorded_layers_reproduces_the_recorded_runs(case):
    # a one-layer Keras Sequential of a recorded layer, plus an identity-like dropout
    a = oracle.arrays(case)
    weights = {"kernel": a["kernel"], "bias": a.get("bias")}
    name = case["layer"]["class_name"]
    if name.startswith("DepthwiseConv"):
        weights = {"depthwise_kernel": a["kernel"], "bias": a.get("bias")}
    model = FakeSequential([fake(name, case["layer"]["config"], **weights),
                            fake("Dropout", {"rate": 0.1})])
    layer = cm.from_keras(model, input_shape=case["input_shape"])
    scale = max(1.0, float(np.abs(a["y"]).max()))
    np.testing.assert_allclose(layer(a["x"]), a["y"], atol=1e-5 * scale)


def test_single_non_conv_keras_layer_and_channels_first():
    layer = cm.from_keras(fake("UpSampling2D", {"size": 2, "data_format": "channels_first"}),
                          input_shape=(1, 2, 2))
    assert isinstance(layer, cm.Upsample) or type(layer).__name__ == "Repeat"
    np.testing.assert_array_equal(layer(np.arange(4).reshape(1, 2, 2))[0],
                                  [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    last = cm.from_keras(fake("ZeroPadding2D", {"padding": 1}), input_shape=(2, 2, 3))
    assert repr(last) == "ZeroPadding2D(2×2×3 → 4×4×3, (1, 1, 1, 1))"


@pytest.mark.parametrize(("bad", "match"), [
    (fake("ReLU", {}), r"`layers\[1\]` \(ReLU\) applies activation=ReLU \(a layer\)"),
    (fake("MaxPooling2D", {"pool_size": 2}), r"`layers\[1\]` \(MaxPooling2D\)"),
    (fake("UpSampling2D", {"size": 2, "interpolation": "lanczos3"}),
     r"`layers\[1\]` \(UpSampling2D\): `interpolation` \(='lanczos3'\)"),
    (fake("BatchNormalization", {"axis": 0}), r"`axis` \(=0\) of BatchNormalization is the batch"),
])
def test_keras_stack_refuses_non_linear_layers_naming_the_position(bad, match):
    model = FakeSequential([fake("ZeroPadding2D", {"padding": 1}), bad])
    with pytest.raises(cm.ConvMatrixError, match=match):
        cm.from_keras(model, input_shape=(4, 4, 2))


def test_keras_model_needs_an_input_shape():
    with pytest.raises(cm.ConvMatrixError, match="give `input_shape`"):
        cm.from_keras(FakeSequential([fake("ZeroPadding2D", {"padding": 1})]))
