"""cm.from_keras on live Keras 3 functional, subclassed and saved models (issue 17, item 2).

Every model runs on Keras' torch backend in float64; the oracle is the Keras model itself:
its output ``model(x)`` and its Jacobian by torch's autodiff (``torch.func.jacrev`` over the
Keras call), never convmatrix. Keras 3.15 computes ``ops.matmul`` and ``ops.mean`` in float32
even for float64 inputs (its type promotion maps 64-bit to 32-bit), so models with a ``Dense``,
a global average pool or a BatchNormalization are compared at float32 precision; convolution
models agree to float64 rounding.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
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

EXACT = {"rtol": 1e-10, "atol": 1e-11}
FLOAT32 = {"rtol": 2e-5, "atol": 2e-6}  # Keras' matmul (Dense) runs in float32


@pytest.fixture(autouse=True)
def float64() -> Any:
    before, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")  # the global policy is cached from floatx
    keras.utils.set_random_seed(17)
    yield
    keras.config.set_floatx(before)
    keras.config.set_dtype_policy(policy)


def _x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(abs(seed)).standard_normal(shape)


def keras_out(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x[None]).detach().numpy()[0])


def keras_jacobian(model: Any, x: np.ndarray) -> np.ndarray:
    jac = torch.func.jacrev(lambda t: model(t[None])[0])(torch.tensor(x))
    out = math.prod(jac.shape[:jac.ndim - x.ndim])
    return np.asarray(jac.detach().numpy().reshape(out, x.size))


def check(model: Any, x: np.ndarray, tolerance: dict[str, float] = EXACT) -> Any:
    """from_keras(model) against Keras: the output at x, and the Jacobian (the matrix)."""
    layer = cm.from_keras(model)
    assert layer.input_shape == x.shape
    want = keras_out(model, x)
    assert layer.output_shape == want.shape
    np.testing.assert_allclose(layer.matrix() @ x.ravel() + layer.offset(), want.ravel(),
                               **tolerance)
    np.testing.assert_allclose(layer(x), want, **tolerance)
    np.testing.assert_allclose(layer.matrix().toarray(), keras_jacobian(model, x), **tolerance)
    adjoint = layer.operator().rmatvec(np.ones(want.size))
    np.testing.assert_allclose(adjoint, layer.matrix().T @ np.ones(want.size), **EXACT)
    return layer


@pytest.mark.parametrize("bn", [False, True])
def test_residual_block_with_add(bn: bool) -> None:
    inp = keras.Input((6, 5, 3), name="x")
    y = layers.Conv2D(3, 3, padding="same", name="conv1")(inp)
    y = layers.BatchNormalization(name="bn1")(y) if bn else layers.Identity(name="bn1")(y)
    y = layers.Conv2D(3, 3, padding="same", use_bias=False, name="conv2")(y)
    out = layers.Add(name="residual")([y, inp])
    model = keras.Model(inp, out)
    _randomise_bn(model)
    # Keras' BatchNormalization computes in float32 as its matmul does
    layer = check(model, _x((6, 5, 3)), FLOAT32 if bn else EXACT)
    assert isinstance(layer, cm.Graph)
    assert [node.name for node in layer.nodes] == ["conv1", "bn1", "conv2", "residual"]
    assert layer.nodes[-1].inputs == ("conv2", "x")


def _randomise_bn(model: Any) -> None:
    rng = np.random.default_rng(5)
    for lay in model.layers:
        if type(lay).__name__ == "BatchNormalization":
            c = lay.gamma.shape[0]
            lay.set_weights([rng.random(c) + 0.5, rng.standard_normal(c),
                             rng.standard_normal(c), rng.random(c) + 0.5])


def test_unet_like_concatenate_skip() -> None:
    inp = keras.Input((8, 8, 2))
    skip = layers.Conv2D(4, 3, padding="same")(inp)
    down = layers.AveragePooling2D(2)(skip)
    mid = layers.Conv2D(4, 3, padding="same")(down)
    up = layers.Conv2DTranspose(4, 2, strides=2)(mid)
    cat = layers.Concatenate()([up, skip])
    out = layers.Conv2D(1, 1)(cat)
    layer = check(keras.Model(inp, out), _x((8, 8, 2)))
    assert any(isinstance(node.op, cm.Cat) for node in layer.nodes)


@pytest.mark.parametrize("axis", [1, 2, -2, 3, -1])
def test_concatenate_any_axis(axis: int) -> None:
    inp = keras.Input((4, 3, 2))
    a = layers.Conv2D(2, 1)(inp)
    b = layers.ZeroPadding2D(0)(inp)
    check(keras.Model(inp, layers.Concatenate(axis=axis)([a, b, inp])), _x((4, 3, 2), axis))


def test_dense_classifier_head() -> None:
    inp = keras.Input((6, 6, 2))
    y = layers.Conv2D(3, 3, strides=2, padding="same")(inp)
    y = layers.Dropout(0.5)(y)
    y = layers.Flatten()(y)
    out = layers.Dense(5)(y)
    layer = check(keras.Sequential([inp, *[lay for lay in keras.Model(inp, out).layers[1:]]]),
                  _x((6, 6, 2)), FLOAT32)
    assert layer.output_shape == (5,)
    gap = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(inp))
    check(keras.Model(inp, layers.Dense(3)(gap)), _x((6, 6, 2), 1), FLOAT32)


@pytest.mark.parametrize("shape", [(7, 3), (4, 3, 2), (2, 3, 2, 3), (2, 2, 1, 2, 3)])
def test_dense_acts_per_position_on_the_last_axis(shape: tuple[int, ...]) -> None:
    inp = keras.Input(shape)
    out = layers.Dense(4, name="head")(inp)
    layer = check(keras.Model(inp, out), _x(shape), FLOAT32)
    assert layer.output_shape == (*shape[:-1], 4)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_average_pooling(rank: int, keepdims: bool) -> None:
    shape = (5, 4, 3, 2)[-rank - 1:]
    inp = keras.Input(shape)
    pool = getattr(layers, f"GlobalAveragePooling{rank}D")(keepdims=keepdims)
    check(keras.Model(inp, pool(inp)), _x(shape), FLOAT32)  # Keras' mean: float32


def test_subtract_and_average() -> None:
    inp = keras.Input((5, 2))
    a = layers.Conv1D(2, 3, padding="same")(inp)
    b = layers.Conv1D(2, 1)(inp)
    diff = layers.Subtract()([a, b])
    mean = layers.Average()([diff, inp, a])
    layer = check(keras.Model(inp, mean), _x((5, 2)))
    ops = {node.name: node.op for node in layer.nodes}
    assert ops["subtract"].coefficients == (1.0, -1.0)


def test_reshape_dcgan_like_generator_start() -> None:
    inp = keras.Input((6,))
    y = layers.Dense(4 * 4 * 2)(inp)
    y = layers.Reshape((4, 4, 2))(y)
    y = layers.Conv2DTranspose(1, 4, strides=2, padding="same")(y)
    layer = check(keras.Model(inp, y), _x((6,)), FLOAT32)
    assert layer.output_shape == (8, 8, 1)
    flat = layers.Reshape((-1,))(layers.Conv2D(2, 1)(keras.Input((3, 3, 2))))
    assert cm.from_keras(keras.Model(flat._keras_history.operation.input._keras_history
                                     .operation.input, flat)).output_shape == (18,)


def test_inference_identities() -> None:
    inp = keras.Input((5, 5, 2))
    y = layers.Conv2D(2, 3)(inp)
    for lay in (layers.Dropout(0.3), layers.SpatialDropout2D(0.3), layers.GaussianNoise(0.5),
                layers.GaussianDropout(0.2), layers.Identity(), layers.Activation("linear"),
                layers.ActivityRegularization(0.1)):
        y = lay(y)
    layer = check(keras.Model(inp, layers.Add()([y, layers.Conv2D(2, 3)(inp)])), _x((5, 5, 2)))
    assert isinstance(layer, cm.Graph)


def test_chain_model_reads_as_sequential_and_nested_models() -> None:
    inner = keras.Sequential([keras.Input((6, 6, 1)), layers.Conv2D(2, 3, padding="same"),
                              layers.UpSampling2D(2)])
    inp = keras.Input((6, 6, 1))
    out = layers.Add()([inner(inp), layers.UpSampling2D(2)(layers.Conv2D(2, 1)(inp))])
    layer = check(keras.Model(inp, out), _x((6, 6, 1)))
    assert isinstance(layer, cm.Graph)
    chain = keras.Model(inp, layers.Conv2D(1, 2)(layers.Conv2D(2, 2)(inp)))
    assert isinstance(check(chain, _x((6, 6, 1))), cm.Sequential)


def test_shared_layer_called_twice() -> None:
    conv = layers.Conv2D(2, 3, padding="same", name="shared")
    inp = keras.Input((5, 5, 2))
    out = layers.Add()([conv(inp), conv(conv(inp))])
    layer = check(keras.Model(inp, out), _x((5, 5, 2)))
    assert sorted(n.name for n in layer.nodes if isinstance(n.op, cm.Layer)) == [
        "shared", "shared_1", "shared_2"]


def test_ops_on_symbolic_tensors() -> None:
    inp = keras.Input((4, 4, 2))
    a = layers.Conv2D(2, 3, padding="same")(inp)
    y = (a + inp) * 2.0 - 1.5
    y = keras.ops.concatenate([y, -a / 4.0], axis=-1)
    check(keras.Model(inp, y), _x((4, 4, 2)))


class Residual(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.conv = layers.Conv2D(2, 3, padding="same")
        self.proj = layers.Conv2D(2, 1)

    def call(self, x: Any) -> Any:
        return self.conv(x) + self.proj(x)


def test_subclassed_model_is_traced() -> None:
    model = Residual()
    x = _x((5, 5, 3))
    model(x[None])
    layer = check(model, x)
    assert isinstance(layer, cm.Graph)
    assert layer.input_shape == (5, 5, 3)


def save(model: Any, path: Path) -> None:
    with warnings.catch_warnings():  # Keras' own saving on numpy 2
        warnings.simplefilter("ignore", DeprecationWarning)
        model.save(path)


def test_saved_model_file(tmp_path: Path) -> None:
    inp = keras.Input((5, 5, 1))
    out = layers.Add()([layers.Conv2D(1, 3, padding="same")(inp), inp])
    model = keras.Model(inp, out)
    save(model, tmp_path / "model.keras")
    layer = cm.from_keras(tmp_path / "model.keras")
    x = _x((5, 5, 1))
    np.testing.assert_allclose(layer(x), keras_out(model, x), **EXACT)
    assert isinstance(cm.from_keras(str(tmp_path / "model.keras")), cm.Graph)


def test_saved_lambda_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "lambda-ran.txt"
    code = eval(f"lambda t: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), t)[1]")
    inp = keras.Input((4, 4, 1))
    model = keras.Model(inp, layers.Lambda(code, name="sneaky")(layers.Conv2D(1, 2)(inp)))
    save(model, tmp_path / "lambda.keras")
    assert marker.exists()  # building the model ran it once
    marker.unlink()
    with pytest.raises(cm.ConvMatrixError, match=r"Lambda 'sneaky'.*never does"):
        cm.from_keras(tmp_path / "lambda.keras")
    assert not marker.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        keras.saving.load_model(tmp_path / "lambda.keras", safe_mode=False)  # the control
    assert marker.exists()
    with pytest.raises(cm.ConvMatrixError, match="Lambda layer: it runs arbitrary Python"):
        cm.from_keras(model)


def test_saved_file_errors(tmp_path: Path) -> None:
    with pytest.raises(cm.ConvMatrixError, match=r"must be a Keras 3 '\.keras' file"):
        cm.from_keras(tmp_path / "model.h5")
    with pytest.raises(cm.ConvMatrixError, match="is not a file"):
        cm.from_keras(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_text("not a zip")
    with pytest.raises(cm.ConvMatrixError, match=r"not a readable \.keras archive"):
        cm.from_keras(tmp_path / "junk.keras")


def test_several_inputs_or_outputs_are_refused_by_name() -> None:
    a, b = keras.Input((4,), name="left"), keras.Input((4,), name="right")
    with pytest.raises(cm.ConvMatrixError, match=r"2 inputs \('left', 'right'\)"):
        cm.from_keras(keras.Model([a, b], layers.Add()([a, b])))
    c = layers.Dense(2, name="c")(a)
    with pytest.raises(cm.ConvMatrixError, match="2 outputs"):
        cm.from_keras(keras.Model(a, [c, layers.Dense(2)(a)]))


def test_non_linear_layers_point_to_linearize() -> None:
    inp = keras.Input((6, 6, 2))
    conv = layers.Conv2D(2, 3, activation="relu", name="features")(inp)
    with pytest.raises(cm.ConvMatrixError,
                       match=r"node 0 'features' \(Conv2D\).*relu.*cm\.linearize"):
        cm.from_keras(keras.Model(inp, conv))
    for lay, text in ((layers.ReLU(name="act"), r"'act' \(ReLU\).*cm\.linearize"),
                      (layers.MaxPooling2D(name="pool"), r"'pool'.*max over windows.*linearize"),
                      (layers.LayerNormalization(name="ln"), r"'ln'.*standard deviation.*linea"),
                      (layers.Activation("softmax", name="sm"), r"'sm'.*softmax.*not element")):
        with pytest.raises(cm.ConvMatrixError, match=text):
            cm.from_keras(keras.Model(inp, lay(layers.Conv2D(2, 1)(inp))))


def test_other_refusals_name_the_node() -> None:
    inp = keras.Input((4, 4, 2))
    a = layers.Conv2D(2, 1, name="a")(inp)
    with pytest.raises(cm.ConvMatrixError,
                       match=r"'product' \(Multiply\) is not a linear.*product"):
        cm.from_keras(keras.Model(inp, layers.Multiply(name="product")([a, inp])))
    with pytest.raises(cm.ConvMatrixError, match=r"'drop' \(Dropout\).*training=True"):
        cm.from_keras(keras.Model(inp, layers.Dropout(0.5, name="drop")(a, training=True)))
    with pytest.raises(cm.ConvMatrixError, match=r"multiply op\).*two tensors|Multiply op"):
        cm.from_keras(keras.Model(inp, a * inp))
    with pytest.raises(cm.ConvMatrixError, match="data_format='channels_first'"):
        cm.from_keras(keras.Model(inp, layers.Flatten(data_format="channels_first")(a)))


class Untraceable(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.conv = layers.Conv2D(2, 3)

    def call(self, x: Any) -> Any:
        return torch.relu(self.conv(x))


def test_untraceable_subclassed_model_is_refused() -> None:
    model = Untraceable()
    model(_x((5, 5, 1))[None])
    with pytest.raises(cm.ConvMatrixError, match="could not be traced"):
        cm.from_keras(model)
    with pytest.raises(cm.ConvMatrixError, match="give `input_shape`"):
        cm.from_keras(Residual())


def test_input_shape_fills_unknown_sizes() -> None:
    inp = keras.Input((None, None, 1))
    model = keras.Model(inp, layers.Add()([layers.Conv2D(1, 3, padding="same")(inp), inp]))
    with pytest.raises(cm.ConvMatrixError, match="give `input_shape`"):
        cm.from_keras(model)
    layer = cm.from_keras(model, input_shape=(4, 6, 1))
    x = _x((4, 6, 1))
    np.testing.assert_allclose(layer(x), keras_out(model, x), **EXACT)
    with pytest.raises(cm.ConvMatrixError, match="does not fit the model's input"):
        cm.from_keras(model, input_shape=(4, 6, 2))
