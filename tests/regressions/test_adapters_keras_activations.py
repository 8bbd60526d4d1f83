"""Issue 16 item 1: a Keras layer's non-linear activation is refused, never dropped.

``from_keras`` used to return the linear layer of ``Conv2D(..., activation="relu")``, off from
the model by 1.35 (relu), 0.72 (tanh), 1.89 (softmax). Live Keras (torch backend) is the oracle
where it is installed; serialized dicts and duck-typed layers need no Keras.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.adapters.keras.activations import ELEMENTWISE, NOT_ELEMENTWISE

_CONV = {"class_name": "Conv2D",
         "config": {"name": "conv_a", "filters": 2, "kernel_size": [3, 3], "strides": [1, 1],
                    "padding": "valid", "data_format": "channels_last"}}
_KERNEL = np.random.default_rng(1).standard_normal((3, 3, 1, 2))


def _serialized(activation: Any) -> dict[str, Any]:
    return {"class_name": _CONV["class_name"], "config": {**_CONV["config"],
                                                           "activation": activation}}


@pytest.mark.parametrize("activation", sorted(ELEMENTWISE))
def test_serialized_elementwise_activation_points_to_linearize(activation):
    with pytest.raises(cm.ConvMatrixError, match=r"cm\.linearize") as info:
        cm.from_keras(_serialized(activation), _KERNEL, (5, 5, 1))
    assert "'conv_a'" in str(info.value) and activation in str(info.value)
    with pytest.raises(cm.ConvMatrixError, match=activation):
        cm.keras_matrix(_serialized(activation), _KERNEL, (5, 5, 1))


@pytest.mark.parametrize("activation", sorted(NOT_ELEMENTWISE))
def test_serialized_softmax_is_refused_without_linearize(activation):
    with pytest.raises(cm.ConvMatrixError, match="not element-wise") as info:
        cm.from_keras(_serialized(activation), _KERNEL, (5, 5, 1))
    assert "linearize" not in str(info.value) and activation in str(info.value)


@pytest.mark.parametrize("activation", [
    {"module": "builtins", "class_name": "function", "config": "tanh",
     "registered_name": "function"},
    {"module": "keras.layers", "class_name": "LeakyReLU",
     "config": {"name": "leaky_re_lu", "negative_slope": 0.2}, "registered_name": None},
    "my_custom_activation",
])
def test_serialized_dict_and_unknown_activations_are_refused(activation):
    with pytest.raises(cm.ConvMatrixError, match="activation"):
        cm.from_keras(_serialized(activation), _KERNEL, (5, 5, 1))


@pytest.mark.parametrize("activation", ["linear", None, {
    "module": "keras.activations", "class_name": "function", "config": "linear",
    "registered_name": "function"}])
def test_linear_activation_reads_as_before(activation):
    x = np.random.default_rng(2).standard_normal((5, 5, 1))
    layer = cm.from_keras(_serialized(activation), _KERNEL, (5, 5, 1))
    expected = np.einsum("ijcf,ijc->f", _KERNEL, x[0:3, 0:3])  # output pixel (0, 0), by hand
    np.testing.assert_allclose(layer(x)[0, 0], expected, rtol=1e-12)


def _fake(class_name: str, config: dict[str, Any], **attrs: Any) -> Any:
    layer = type(class_name, (), {"get_config": lambda self: dict(config)})()
    for key, value in attrs.items():
        setattr(layer, key, value)
    return layer


class _FakeSequential:
    def __init__(self, layers: list[Any]) -> None:
        self.layers = layers


def test_duck_typed_layer_in_a_sequential_names_its_position():
    pad = _fake("ZeroPadding2D", {"padding": 1})
    conv = _fake("Conv2D", {**_CONV["config"], "activation": "relu"}, kernel=_KERNEL,
                 bias=np.zeros(2))
    with pytest.raises(cm.ConvMatrixError, match=r"`layers\[1\]` \(Conv2D 'conv_a'\).*'relu'"):
        cm.from_keras(_FakeSequential([pad, conv]), input_shape=(4, 4, 1))


# ------------------------------------------------------------------------------------------
# live Keras 3 on the torch backend


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("these tests run Keras on the torch backend")
    return keras


def _np(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _live_layers(keras: Any, activation: Any) -> list[tuple[Any, tuple[int, ...]]]:
    L = keras.layers
    return [(L.Conv2D(2, 3, activation=activation), (6, 6, 2)),
            (L.Conv1D(2, 3, activation=activation), (6, 2)),
            (L.Conv2DTranspose(2, 3, strides=2, activation=activation), (4, 4, 2)),
            (L.DepthwiseConv2D(3, activation=activation), (6, 6, 2)),
            (L.SeparableConv2D(3, 3, activation=activation), (6, 6, 2))]


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "softmax", "log_softmax"])
def test_live_layers_with_an_activation_are_refused(activation):
    keras = _keras()
    for layer, shape in _live_layers(keras, activation):
        layer.build((None, *shape))
        with pytest.raises(cm.ConvMatrixError, match=activation) as info:
            cm.from_keras(layer)
        assert layer.name in str(info.value)
        assert ("cm.linearize" in str(info.value)) == (activation in ELEMENTWISE)


@pytest.mark.parametrize("activation", ["linear", None])
def test_live_layers_with_linear_activation_match_keras(activation):
    keras = _keras()
    x = np.random.default_rng(3).standard_normal((1, 6, 6, 2)).astype("float32")
    for layer, shape in _live_layers(keras, activation):
        sample = x[:, :shape[0]] if len(shape) == 2 else x[:, :shape[0], :shape[1]]
        sample = sample[:, :, 0] if len(shape) == 2 else sample
        expected = _np(layer(sample))[0]
        read = cm.from_keras(layer)
        np.testing.assert_allclose(read(sample[0]), expected, rtol=1e-4, atol=1e-4)


def test_live_sequential_names_the_layer_and_its_position():
    keras = _keras()
    L = keras.layers
    model = keras.Sequential([keras.Input((6, 6, 1)), L.ZeroPadding2D(1),
                              L.Conv2D(2, 3, activation="relu", name="second")])
    x = np.random.default_rng(4).standard_normal((1, 6, 6, 1)).astype("float32")
    model(x)
    with pytest.raises(cm.ConvMatrixError, match=r"`layers\[1\]` \(Conv2D 'second'\)") as info:
        cm.from_keras(model)
    assert "'relu'" in str(info.value) and "cm.linearize" in str(info.value)


@pytest.mark.parametrize("make", [
    lambda L: L.ReLU(), lambda L: L.LeakyReLU(0.2), lambda L: L.ELU(), lambda L: L.PReLU(),
    lambda L: L.Softmax(), lambda L: L.Activation("sigmoid"),
    lambda L: L.Activation("softmax"), lambda L: L.Dense(3, activation="relu"),
])
def test_live_activation_layers_in_a_model_are_refused(make):
    keras = _keras()
    L = keras.layers
    model = keras.Sequential([keras.Input((4, 4, 1)), L.Conv2D(2, 3), make(L)])
    model(np.zeros((1, 4, 4, 1), dtype="float32"))
    with pytest.raises(cm.ConvMatrixError, match=r"`layers\[1\]`"):
        cm.from_keras(model)


def test_live_linear_activation_layer_is_the_identity():
    keras = _keras()
    L = keras.layers
    model = keras.Sequential([keras.Input((5, 5, 1)), L.Conv2D(2, 3, activation=None),
                              L.Activation("linear"), L.Conv2D(1, 2, activation="linear")])
    x = np.random.default_rng(5).standard_normal((1, 5, 5, 1)).astype("float32")
    expected = _np(model(x))[0]
    np.testing.assert_allclose(cm.from_keras(model)(x[0]), expected, rtol=1e-4, atol=1e-5)


def test_live_custom_function_activation_is_refused():
    keras = _keras()
    layer = keras.layers.Conv2D(1, 3, activation=lambda t: t * 2)
    layer.build((None, 5, 5, 1))
    with pytest.raises(cm.ConvMatrixError, match="activation"):
        cm.from_keras(layer)


def test_live_functional_model_with_two_outputs_is_not_read_as_a_chain():
    # found next to item 1: its two parallel convolutions were read one after the other
    keras = _keras()
    L = keras.layers
    inputs = keras.Input((5, 5, 1))
    model = keras.Model(inputs, [L.Conv2D(1, 3)(inputs), L.Conv2D(1, 3, padding="same")(inputs)])
    with pytest.raises(cm.ConvMatrixError, match="2 outputs"):
        cm.from_keras(model)
