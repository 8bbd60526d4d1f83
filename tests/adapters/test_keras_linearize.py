"""Keras models linearised at a point (issue 17, item 3, Keras side): the exact Jacobian.

The oracle is the Keras model itself on the torch backend: ``model(x)`` and its Jacobian by
torch's autodiff through the Keras call (``torch.func.jacrev``), never convmatrix. Models run
in float64; Keras computes ``matmul`` (``Dense``), ``mean`` and its normalisations in float32
even then, so models with those are compared at float32 precision, convolution/pooling
networks to float64 rounding.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import convmatrix as cm

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")
layers = keras.layers

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="the Jacobian oracle is torch's autodiff (KERAS_BACKEND=torch)")

EXACT = {"rtol": 1e-10, "atol": 1e-12}
FLOAT32 = {"rtol": 5e-5, "atol": 5e-6}


def linearize(model: Any, x: Any) -> Any:
    """cm.linearize (which hands a Keras model to the Keras adapter's linearize_keras)."""
    lin = cm.linearize(model, x)
    assert isinstance(lin, cm.Linearization) and lin.framework == "keras"
    return lin


@pytest.fixture(autouse=True)
def float64() -> Any:
    before, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    keras.utils.set_random_seed(17)
    yield
    keras.config.set_floatx(before)
    keras.config.set_dtype_policy(policy)


def _x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, *shape))


def keras_out(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x).detach().numpy()[0])


def keras_jacobian(model: Any, x: np.ndarray) -> np.ndarray:
    jac = torch.func.jacrev(lambda t: model(t)[0])(torch.tensor(x))
    return np.asarray(jac.detach().numpy().reshape(-1, x[0].size))


def check(model: Any, x: np.ndarray, tolerance: dict[str, float] = EXACT) -> Any:
    """linearize(model, x) against Keras: f(x) = J x + offset, and J = Keras' Jacobian."""
    lin = linearize(model, x)
    want = keras_out(model, x)
    assert lin.input_shape == x.shape[1:] and lin.output_shape == want.shape
    J = lin.matrix().toarray()
    np.testing.assert_allclose(J, keras_jacobian(model, x), **tolerance)
    np.testing.assert_allclose(J @ x[0].ravel() + lin.offset(), want.ravel(), **tolerance)
    np.testing.assert_allclose(lin(x[0]), want, **tolerance)
    return lin


def _relu_network() -> Any:
    inp = keras.Input((8, 8, 2), name="image")
    y = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
    y = layers.MaxPooling2D(2, name="pool1")(y)
    skip = layers.Conv2D(4, 1, name="proj")(y)
    y = layers.Conv2D(4, 3, padding="same", name="conv2")(y)
    y = layers.LeakyReLU(0.1, name="leaky")(y)
    y = layers.Add(name="residual")([y, skip])
    y = layers.ReLU(name="relu")(y)
    y = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(y)
    return keras.Model(inp, layers.GlobalMaxPooling2D(name="gmp")(y))


def test_piecewise_linear_network_is_exact_at_the_point() -> None:
    model = _relu_network()
    x = _x((8, 8, 2))
    lin = check(model, x)
    want = keras_out(model, x)
    rel = np.abs(lin.matrix() @ x[0].ravel() + lin.offset() - want.ravel()).max()
    assert rel <= 1e-12 * max(1.0, float(np.abs(want).max()))
    assert lin.piecewise_linear
    assert isinstance(lin.layer, cm.Graph)
    # the activation pattern: units passing conv1's relu, counted on Keras' own values
    pre = keras.Model(model.input, model.get_layer("conv1").output)(x).detach().numpy()
    site = next(s for s in lin.sites if s.name == "conv1")
    assert site.on == int((pre > 0).sum()) and site.off == int((pre <= 0).sum())
    kinds = {s.name: s.kind for s in lin.sites}
    assert kinds == {"conv1": "activation", "pool1": "selection", "leaky": "activation",
                     "relu": "activation", "pool2": "selection", "gmp": "selection"}


@pytest.mark.parametrize(("pool", "strides", "padding"), [
    (2, None, "valid"), (3, 1, "same"), (2, 1, "same"), (3, 2, "same"), ((2, 3), (1, 2), "same")])
def test_max_pooling_2d_paddings(pool: Any, strides: Any, padding: str) -> None:
    inp = keras.Input((7, 6, 2))
    out = layers.MaxPooling2D(pool, strides=strides, padding=padding)(inp)
    check(keras.Model(inp, out), _x((7, 6, 2), 3))


@pytest.mark.parametrize("rank", [1, 3])
def test_max_pooling_1d_3d(rank: int) -> None:
    shape = (7, 2) if rank == 1 else (4, 5, 3, 2)
    inp = keras.Input(shape)
    pool = getattr(layers, f"MaxPooling{rank}D")(2, padding="same")(inp)
    gmp = getattr(layers, f"GlobalMaxPooling{rank}D")(keepdims=True)(inp)
    check(keras.Model(inp, pool), _x(shape, rank))
    check(keras.Model(inp, gmp), _x(shape, rank))


def test_ties_follow_torchs_backward() -> None:
    """Tied windows (a constant patch, edge copies of 'same' padding) as Keras' autodiff."""
    x = _x((6, 6, 1), 4)
    x[0, :3, :3, 0] = 0.5
    x[0, :, -1, 0] = 5.0  # the last column (the maximum), copied by the asymmetric 'same' pad
    inp = keras.Input((6, 6, 1))
    for out in (layers.MaxPooling2D(2)(inp), layers.MaxPooling2D(2, 1, padding="same")(inp),
                layers.GlobalMaxPooling2D()(inp)):
        lin = check(keras.Model(inp, out), x)
        assert lin.kinks > 0


@pytest.mark.parametrize("activation", ["relu", "relu6", "leaky_relu", "elu", "selu", "gelu",
                                        "silu", "sigmoid", "tanh", "softplus", "softsign",
                                        "hard_sigmoid", "mish"])
def test_activation_arguments(activation: str) -> None:
    inp = keras.Input((6, 5, 2))
    out = layers.Conv2D(3, 3, activation=activation, name="conv")(inp)
    lin = check(keras.Model(inp, out), _x((6, 5, 2), 5))
    assert [s.op for s in lin.sites] == [activation]


def test_dense_and_activation_layers() -> None:
    inp = keras.Input((10,))
    y = layers.Dense(8, activation="tanh")(inp)
    y = layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25))(y)
    y = layers.ELU(alpha=0.5)(y)
    y = layers.Activation("swish")(y)
    y = layers.Activation("linear")(y)
    y = layers.Dense(3)(y)
    lin = check(keras.Model(inp, y), _x((10,), 6), FLOAT32)
    assert [s.op for s in lin.sites] == ["tanh", "PReLU", "ELU", "silu"]  # swish is silu
    assert not lin.piecewise_linear


def test_layer_and_group_normalization() -> None:
    inp = keras.Input((5, 4, 6))
    y = layers.LayerNormalization()(inp)
    y = layers.Conv2D(6, 1)(y)
    y = layers.GroupNormalization(3)(y)
    y = layers.LayerNormalization(axis=[-2, -1])(y)
    model = keras.Model(inp, y)
    rng = np.random.default_rng(7)
    for lay in model.layers:
        if "Normalization" in type(lay).__name__:
            for weight in lay.weights:
                weight.assign(rng.standard_normal(tuple(weight.shape)))
    lin = check(model, _x((5, 4, 6), 8), FLOAT32)
    assert [s.kind for s in lin.sites] == ["normalization"] * 3


def test_sequential_and_subclassed_models() -> None:
    seq = keras.Sequential([keras.Input((10,)), layers.Dense(6, activation="relu"),
                            layers.Dense(3)])
    check(seq, _x((10,), 9), FLOAT32)

    class Block(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.conv = layers.Conv1D(3, 3, padding="same")
            self.act = layers.ReLU()

        def call(self, x: Any) -> Any:
            return self.act(self.conv(x)) + x

    block = Block()
    block(_x((7, 3)))
    check(block, _x((7, 3), 10))


def test_nested_model_is_linearised_inside() -> None:
    inner = keras.Sequential([keras.Input((6, 2)), layers.Conv1D(2, 3, padding="same"),
                              layers.ReLU()], name="inner")
    inp = keras.Input((6, 2))
    out = layers.Add()([inner(inp), inp])
    lin = check(keras.Model(inp, out), _x((6, 2), 11))
    assert [s.name for s in lin.sites] == ["inner/re_lu"] or len(lin.sites) == 1


def test_refusals() -> None:
    inp = keras.Input((4, 4, 2))
    conv = layers.Conv2D(2, 1)(inp)
    model = keras.Model(inp, conv)
    with pytest.raises(cm.ConvMatrixError, match="batch axis of 1"):
        linearize(model, _x((4, 4, 2))[0])
    with pytest.raises(cm.ConvMatrixError, match="batch axis of 1"):
        linearize(model, np.zeros((2, 4, 4, 2)))
    with pytest.raises(cm.ConvMatrixError, match="non-finite"):
        linearize(model, np.full((1, 4, 4, 2), np.nan))
    with pytest.raises(cm.ConvMatrixError, match=r"'sm' \(Softmax\).*not element-wise"):
        linearize(keras.Model(inp, layers.Softmax(name="sm")(conv)), _x((4, 4, 2)))
    with pytest.raises(cm.ConvMatrixError, match=r"softmax.*not element-wise"):
        linearize(keras.Model(inp, layers.Dense(3, activation="softmax")(conv)), _x((4, 4, 2)))
    with pytest.raises(cm.ConvMatrixError, match="training=True"):
        linearize(keras.Model(inp, layers.Dropout(0.5)(conv, training=True)), _x((4, 4, 2)))
    with pytest.raises(cm.ConvMatrixError, match="Lambda layer"):
        linearize(keras.Model(inp, layers.Lambda(lambda t: t * t)(conv)), _x((4, 4, 2)))
    with pytest.raises(cm.ConvMatrixError, match="not an activation convmatrix knows"):
        linearize(keras.Model(inp, layers.Conv2D(2, 1, activation=lambda t: t)(inp)),
                  _x((4, 4, 2)))


def test_lipschitz_numbers_of_the_sites() -> None:
    lin = linearize(_relu_network(), _x((8, 8, 2), 12))
    by_name = {s.name: s for s in lin.sites}
    assert by_name["leaky"].lipschitz == 1.0 and by_name["relu"].lipschitz == 1.0
    assert by_name["pool1"].lipschitz == 1.0  # windows do not overlap
    assert by_name["pool2"].lipschitz == pytest.approx(math.sqrt(4))  # 3x3 stride 2: 2x2


def test_lipschitz_summary_of_a_keras_network() -> None:
    model = _relu_network()
    x = _x((8, 8, 2), 13)
    summary = cm.lipschitz_summary(model, x)
    exact = float(np.linalg.norm(keras_jacobian(model, x), 2))
    assert summary.local == pytest.approx(exact, rel=1e-5)
    assert summary.local <= summary.local_product * (1 + 1e-9) <= summary.upper_bound * (1 + 1e-9)
