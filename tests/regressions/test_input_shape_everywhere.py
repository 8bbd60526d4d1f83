"""Every public entry point that takes one sample's shape refuses a bad one by name.

The check had about a dozen near-copies (the torch, torch.fx, ONNX, flax and Keras readers,
``cm.Graph``, black-box probing, stack files, the separable and shape-generic kinds), which
disagreed: ``cm.from_flax`` read ``(4, 4.5, 1)`` as ``(4, 4, 1)`` (``int(4.5)``), a Keras
``Sequential`` or single non-convolution layer read ``input_shape="144"`` as ``(1, 4, 4)`` (and
4.5 as 4), a subclassed Keras model ran its ``call`` on ``"144"``, and the separable kinds
showed only the bad entry, not the shape. Now all read it
through :func:`convmatrix.geometry.spec.as_sample_shape`; this pins each entry point to
refusing ``(0, 4, 4)``, ``(1, 4.5, 4)`` and ``"144"`` with a :class:`~convmatrix.ConvMatrixError`
naming ``input_shape`` (a stack file's key is ``input``, so its message names ``input``), and
to accepting numpy ints as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.reports import parse_stack
from convmatrix.testing import identify, probe, probe_matrix

BAD = [(0, 4, 4), (1, 4.5, 4), "144"]


def _torch() -> Any:
    return pytest.importorskip("torch")


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _torch_graph(shape: Any) -> Any:
    torch = _torch()

    class Twice(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return torch.cat([x, 2 * x], dim=1)

    return cm.from_torch(Twice(), shape)


def _onnx(shape: Any) -> Any:
    pytest.importorskip("onnx")
    from tests.adapters.onnx.helpers import helper, model

    proto = model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv0")],
                  ("N", 4, "H", "W"), {"w": np.ones((1, 4, 3, 3), np.float32)})
    return cm.from_onnx(proto, shape)


def _flax(shape: Any) -> Any:
    pytest.importorskip("jax")
    nn = pytest.importorskip("flax.linen")
    variables = {"params": {"kernel": np.ones((3, 3, 4, 1)), "bias": np.zeros(1)}}
    return cm.from_flax(nn.Conv(1, (3, 3)), variables, shape)


def _keras_layer(shape: Any) -> Any:
    keras = _keras()
    layer = keras.layers.Conv2D(1, 3)
    layer.build((None, 4, 4, 4))
    return cm.from_keras(layer, input_shape=shape)


def _keras_config(shape: Any) -> Any:
    config = {"class_name": "Conv2D", "config": {"filters": 1, "kernel_size": [3, 3]}}
    return cm.from_keras(config, np.ones((3, 3, 4, 1)), shape)


def _keras_sequential(shape: Any) -> Any:
    keras = _keras()
    model = keras.Sequential([keras.layers.Conv2D(1, 3)])
    model.build((None, 4, 4, 4))
    return cm.from_keras(model, input_shape=shape)


def _keras_functional(shape: Any) -> Any:
    keras = _keras()
    inputs = keras.Input((None, None, 4))
    return cm.from_keras(keras.Model(inputs, keras.layers.Conv2D(1, 3)(inputs)),
                         input_shape=shape)


def _keras_subclassed(shape: Any) -> Any:
    keras = _keras()

    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.conv = keras.layers.Conv2D(1, 3)

        def call(self, x: Any) -> Any:
            return self.conv(x)

    return cm.from_keras(Net(), input_shape=shape)


def _keras_pooling_layer(shape: Any) -> Any:
    keras = _keras()
    return cm.from_keras(keras.layers.AveragePooling2D(2), input_shape=shape)


def _stack(shape: Any) -> Any:
    value = f'"{shape}"' if isinstance(shape, str) else repr(list(shape))
    return parse_stack(f"input = {value}\n[[layers]]\nkind = 'AvgPool'\nkernel_size = 1\n")


ENTRY_POINTS: dict[str, Callable[[Any], Any]] = {
    "from_torch module": lambda s: cm.from_torch(_torch().nn.Conv2d(4, 1, 3), s),
    "from_torch Sequential": lambda s: cm.from_torch(
        _torch().nn.Sequential(_torch().nn.Identity()), s),
    "from_torch graph (linearize's reader)": _torch_graph,
    "torch_matrix": lambda s: cm.torch_matrix(_torch().nn.Conv2d(4, 1, 3), s),
    "from_onnx": _onnx,
    "from_flax": _flax,
    "from_keras layer": _keras_layer,
    "from_keras config": _keras_config,
    "from_keras Sequential": _keras_sequential,
    "from_keras functional": _keras_functional,
    "from_keras subclassed": _keras_subclassed,
    "from_keras pooling layer": _keras_pooling_layer,
    "keras_output_shape": lambda s: cm.keras_output_shape(
        {"class_name": "Conv2D", "config": {"filters": 1, "kernel_size": [3, 3]}}, s),
    "Graph": lambda s: cm.Graph(s, [], "input"),
    "probe": lambda s: probe(lambda x: x, s, batched=False),
    "probe_matrix": lambda s: probe_matrix(lambda x: x, s),
    "identify": lambda s: identify(lambda x: x, s, np.ones((1, 1, 1, 1))),
    "stack file": _stack,
    "conv_matrix": lambda s: cm.conv_matrix(np.ones((1, 4, 1, 1)), s),
    "Conv": lambda s: cm.Conv(np.ones((1, 4, 1, 1)), s),
    "AvgPool (separable)": lambda s: cm.AvgPool(s, 1),
    "Upsample (separable)": lambda s: cm.Upsample(s, scale_factor=2),
    "Pad (separable)": lambda s: cm.Pad(s, (1, 1)),
    "PixelShuffle (separable)": lambda s: cm.PixelShuffle(s, 1),
    "BatchNorm (separable)": lambda s: cm.BatchNorm(s, [0.0] * 4, [1.0] * 4),
    "AdaptiveAvgPool (separable)": lambda s: cm.AdaptiveAvgPool(s, 2),
    "Scale": lambda s: cm.Scale(s, 2.0),
    "Flatten": lambda s: cm.Flatten(s),
    "Permute": lambda s: cm.Permute(s, (0, 2, 1)),
}


@pytest.mark.parametrize("bad", BAD, ids=repr)
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_refuses_a_bad_sample_shape_by_name(entry, bad):
    name = "`input`" if entry == "stack file" else "`input_shape`"
    with pytest.raises(cm.ConvMatrixError, match=name) as refused:
        ENTRY_POINTS[entry](bad)
    message = str(refused.value)
    shown = "4.5" if bad == (1, 4.5, 4) else "0, 4, 4" if bad == (0, 4, 4) else "144"
    assert shown in message, message                                    # names the value
    assert "must" in message, message                                   # and what is allowed


@pytest.mark.parametrize("entry", [e for e in ENTRY_POINTS if e not in ("stack file",
                                                                          "identify")])
def test_numpy_ints_stay_accepted(entry):
    result = ENTRY_POINTS[entry]((np.int64(4), np.int32(4), np.uint8(4)))
    shape = getattr(result, "input_shape", None)
    assert shape is None or tuple(shape) == (4, 4, 4)


def test_integral_floats_stay_accepted_where_they_were_and_4_5_is_no_longer_truncated():
    assert _flax((4, 4.0, 4)).input_shape == (4, 4, 4)
    assert _keras_sequential((4.0, 4, 4)).input_shape == (4, 4, 4)
    for reader in (_flax, _keras_sequential):
        with pytest.raises(cm.ConvMatrixError, match=r"`input_shape` \(=4.5\) must be an integer"):
            reader((4, 4.5, 4))
    with pytest.raises(cm.ConvMatrixError, match=r"`input_shape` \(=4.0\) must be an integer"):
        cm.from_torch(_torch().nn.Conv2d(4, 1, 3), (4, 4.0, 4))          # refused, as before


def test_linearize_refuses_an_empty_point():
    torch = _torch()
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.ReLU())
    with pytest.raises(cm.ConvMatrixError):
        cm.linearize(net, torch.ones(1, 0, 4, 4))
