"""Issue 16 item 2: Keras ``BatchNormalization(axis=...)`` counts the batch axis.

The reader compared Keras' axis with per-sample positions: ``axis=2`` on a ``(4, 3, 3)`` sample
was read as the last axis (error 3.96, no warning) and the channels-first ``axis=1`` was
refused. Every axis Keras accepts is read now; live Keras (torch backend) is the oracle, and
a by-hand broadcast where Keras is not installed.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng


def _fake_bn(axis: Any, size: int, seed: str) -> Any:
    r = rng("bn", seed, size)
    weights = {"gamma": r.standard_normal(size), "beta": r.standard_normal(size),
               "moving_mean": r.standard_normal(size),
               "moving_variance": r.random(size) + 0.5}
    config = {"axis": axis, "epsilon": 1e-3}
    layer = type("BatchNormalization", (), {"get_config": lambda self: dict(config)})()
    for key, value in weights.items():
        setattr(layer, key, value)
    return layer


def _by_hand(layer: Any, x: np.ndarray, sample_axis: int) -> np.ndarray:
    along = [1] * x.ndim
    along[sample_axis] = -1
    scale = layer.gamma / np.sqrt(layer.moving_variance + 1e-3)
    return ((x - layer.moving_mean.reshape(along)) * scale.reshape(along)
            + layer.beta.reshape(along))


_CASES = [  # (sample shape, Keras axis, the sample axis it means)
    ((4, 3, 3), 1, 0), ((4, 3, 3), 2, 1), ((4, 3, 3), 3, 2), ((4, 3, 3), -1, 2),
    ((4, 3, 3), -2, 1), ((4, 3, 3), -3, 0), ((4, 3, 3), [2], 1), ((5,), 1, 0), ((5,), -1, 0),
    ((2, 3, 4, 5), 2, 1), ((2, 3, 4, 5), -2, 2), ((3, 4), 1, 0), ((3, 4), -1, 1),
]


@pytest.mark.parametrize(("shape", "axis", "sample_axis"), _CASES)
def test_keras_axis_is_read_per_sample(shape, axis, sample_axis):
    layer = _fake_bn(axis, shape[sample_axis], f"{shape}{axis}")
    x = rng("bn-x", shape).standard_normal(shape)
    read = cm.from_keras(layer, input_shape=shape)
    expected = _by_hand(layer, x, sample_axis)
    np.testing.assert_allclose(read(x), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(read.matrix() @ x.ravel() + read.offset(), expected.ravel(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("axis", "match"), [
    (0, "is the batch axis"), (-4, "is the batch axis"), (4, "out of range"),
    (-5, "out of range"), ([1, 2], "one int"), (1.0, "one int"), (True, "one int"),
])
def test_keras_axes_keras_cannot_mean_here_are_refused(axis, match):
    with pytest.raises(cm.ConvMatrixError, match=match):
        cm.from_keras(_fake_bn(axis, 4, "bad"), input_shape=(4, 3, 3))


def test_cm_batchnorm_axis_parameter():
    x = rng("bn-axis").standard_normal((2, 3, 4))
    bn = cm.BatchNorm(x.shape, running_mean=[1.0, 2.0, 3.0], running_var=[1.0, 4.0, 9.0],
                      eps=0.0, axis=-2)
    expected = (x - np.array([1.0, 2.0, 3.0])[None, :, None]) / np.array([1, 2, 3])[:, None]
    np.testing.assert_allclose(bn(x), expected, rtol=1e-12)
    with pytest.raises(cm.ConvMatrixError, match=r"`axis` \(=3\)"):
        cm.BatchNorm(x.shape, running_mean=[0.0] * 4, running_var=[1.0] * 4, axis=3)


# ------------------------------------------------------------------------------------------
# live Keras 3 on the torch backend


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("these tests run Keras on the torch backend")
    return keras


def _np(value: Any) -> np.ndarray:
    value = getattr(value, "value", value)
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _randomise(layer: Any, seed: str) -> None:
    for variable in layer.weights:
        r = rng("live-bn", seed, variable.path)
        values = r.standard_normal(tuple(variable.shape)).astype("float32")
        if "variance" in variable.path:
            values = np.abs(values) + 0.5
        variable.assign(values)


@pytest.mark.parametrize(("shape", "axis"), [
    ((4, 3, 3), 1), ((4, 3, 3), 2), ((4, 3, 3), 3), ((4, 3, 3), -1), ((4, 3, 3), -2),
    ((4, 3, 3), -3), ((5,), 1), ((5,), -1), ((2, 3, 4, 5), 2), ((2, 3, 4, 5), 4),
    ((2, 3, 4, 5), -3),
])
def test_live_keras_batchnorm_every_axis(shape, axis):
    keras = _keras()
    layer = keras.layers.BatchNormalization(axis=axis)
    layer.build((None, *shape))
    _randomise(layer, f"{shape}{axis}")
    x = rng("live-bn-x", shape).standard_normal((1, *shape)).astype("float32")
    expected = _np(layer(x, training=False))[0]
    read = cm.from_keras(layer)
    np.testing.assert_allclose(read(x[0]), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(read.matrix() @ x[0].ravel() + read.offset(), expected.ravel(),
                               rtol=1e-5, atol=1e-5)


def test_live_channels_first_model_with_batchnorm_axis_1():
    keras = _keras()
    L = keras.layers
    model = keras.Sequential([keras.Input((2, 6, 6)),
                              L.Conv2D(3, 3, data_format="channels_first"),
                              L.BatchNormalization(axis=1),
                              L.Conv2D(2, 1, data_format="channels_first")])
    _randomise(model.layers[1], "channels-first")
    x = rng("live-bn-cf").standard_normal((1, 2, 6, 6)).astype("float32")
    expected = _np(model(x, training=False))[0]
    np.testing.assert_allclose(cm.from_keras(model)(x[0]), expected, rtol=1e-4, atol=1e-4)
