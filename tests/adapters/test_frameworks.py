"""Keras and torch adapters against recorded framework runs and, when installed, live torch."""

from __future__ import annotations

import copy
import doctest
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import reference
from convmatrix.adapters import (
    channels_last_matrix,
    keras_layer,
    keras_matrix,
    keras_output_shape,
    torch_bias,
    torch_matrix,
)
from tests import oracle
from tests.helpers import rng as seeded_rng

DOCS = Path(__file__).parents[2] / "docs" / "guides" / "conventions.md"

# ------------------------------------------------------------------------------------------
# Keras: every recorded TensorFlow/Keras run (float32, so a float32-sized tolerance)


@pytest.mark.parametrize("case", oracle.select("keras"), ids=lambda c: c["id"])
def test_keras_oracle(case):
    a = oracle.arrays(case)
    layer = json.loads(json.dumps(case["layer"]))  # JSON lists, as a user loads them
    C = keras_matrix(layer, a["kernel"], case["input_shape"])
    assert C.format == "csr" and C.has_canonical_format
    assert keras_output_shape(layer, case["input_shape"]) == tuple(case["output_shape"])
    y = C @ a["x"].ravel()
    scale = max(1.0, float(np.abs(a["y"]).max()))
    np.testing.assert_allclose(y, a["y"].ravel(), rtol=0, atol=1e-5 * scale)


def test_keras_seed_examples_exactly():
    conv, transpose = oracle.cases()[:2]
    C = keras_matrix(conv["layer"], np.ones((2, 2, 1, 1), dtype=int), (3, 3, 1))
    assert (C @ np.ones(9, dtype=int)).reshape(2, 2).tolist() == [[4, 4], [4, 4]]
    CT = keras_matrix(transpose["layer"], np.ones((2, 2, 1, 1), dtype=int), (2, 2, 1))
    assert (CT @ np.ones(4, dtype=int)).reshape(3, 3).tolist() == [[1, 2, 1], [2, 4, 2],
                                                                  [1, 2, 1]]
    # the seed's first snippet: (1, 3, 3, 1) -> Conv2D (1, 2, 2, 1), Conv2DTranspose (1, 4, 4, 1)
    assert keras_output_shape(conv["layer"], (3, 3, 1)) == (2, 2, 1)
    assert keras_output_shape(transpose["layer"], (3, 3, 1)) == (4, 4, 1)


def _config(class_name, **config):
    return {"class_name": class_name, "config": {"data_format": "channels_last", **config}}


def test_keras_channels_first_matches_channels_last():
    rng = np.random.default_rng(3)
    kernel = rng.standard_normal((3, 2, 2, 6))
    x_last = rng.standard_normal((7, 5, 4))
    last = _config("Conv2D", filters=6, kernel_size=[3, 2], strides=[2, 1], padding="same",
                   groups=2)
    first = copy.deepcopy(last)
    first["config"]["data_format"] = "channels_first"
    C_last = keras_matrix(last, kernel, x_last.shape)
    C_first = keras_matrix(first, kernel, (4, 7, 5))
    y_last = (C_last @ x_last.ravel()).reshape(keras_output_shape(last, x_last.shape))
    y_first = (C_first @ np.moveaxis(x_last, -1, 0).ravel()).reshape(
        keras_output_shape(first, (4, 7, 5)))
    np.testing.assert_allclose(np.moveaxis(y_last, -1, 0), y_first, rtol=1e-12)


def test_keras_causal_conv1d_pads_left_only():
    rng = np.random.default_rng(4)
    kernel = rng.standard_normal((3, 1, 1))
    x = rng.standard_normal((8, 1))
    C = keras_matrix(_config("Conv1D", filters=1, kernel_size=[3], padding="causal",
                             dilation_rate=[2]), kernel, x.shape)
    # closed form: y[t] = Σ_j k[j]·x[t − (2 − j)·2], zero before the start
    expected = [sum(kernel[j, 0, 0] * x[t - (2 - j) * 2, 0] for j in range(3)
                    if t - (2 - j) * 2 >= 0) for t in range(8)]
    np.testing.assert_allclose(C @ x.ravel(), expected, rtol=1e-12)


KERAS_ERRORS = [
    (_config("Conv2DTranspose", filters=1, kernel_size=[3, 3], strides=[2, 2],
             output_padding=[2, 0]), (3, 3, 1, 1), (4, 4, 1),
     r"Keras requires `output_padding` < `strides`"),
    (_config("Conv2D", filters=1, kernel_size=[3, 3], strides=[2, 2], dilation_rate=[2, 2]),
     (3, 3, 1, 1), (9, 9, 1), r"strides` > 1 together with `dilation_rate` > 1"),
    (_config("Conv2D", filters=3, kernel_size=[1, 1], groups=2), (1, 1, 2, 3), (4, 4, 4),
     r"`groups` \(=2\) to divide both filters \(=3\)"),
    (_config("SeparableConv2D", filters=1, kernel_size=[1, 1]), (1, 1, 1, 1), (4, 4, 1),
     r"`class_name` \(='SeparableConv2D'\) is not a single convolution .*live layer to "
     r"convmatrix.from_keras"),
    (_config("Conv2D", filters=2, kernel_size=[3, 3]), (3, 3, 1, 1), (5, 5, 1),
     r"`kernel` has shape \(3, 3, 1, 1\); Conv2D with filters=2"),
    (_config("Conv2D", filters=1, kernel_size=[3, 3]), (3, 3, 1, 1), (1, 5, 5, 1),
     r"drop the batch axis"),
    (_config("Conv2D", filters=1, kernel_size=[3, 3], padding="causal"), (3, 3, 1, 1),
     (5, 5, 1), r"`padding` \(='causal'\) must be one of"),
    (_config("Conv2DTranspose", filters=1, kernel_size=[2, 2], strides=[2, 2], padding="same",
             output_padding=[0, 0]), (2, 2, 1, 1), (3, 3, 1), r"TensorFlow cannot run"),
]


@pytest.mark.parametrize(("layer", "kernel", "shape", "message"), KERAS_ERRORS,
                         ids=[m for *_, m in KERAS_ERRORS])
def test_keras_rejects_what_keras_rejects(layer, kernel, shape, message):
    with pytest.raises(cm.ConvMatrixError, match=message):
        keras_matrix(layer, np.ones(kernel), shape)


class _FakeKerasLayer:
    """Quacks like a built keras.layers.Conv2DTranspose (public API only)."""

    def __init__(self, config, kernel, build_shape):
        self._config, self.kernel, self._build = config, kernel, build_shape

    def get_config(self):
        return self._config

    def get_build_config(self):
        return {"input_shape": self._build}


def test_from_keras_reads_a_live_layer_through_its_public_api():
    case = oracle.cases()[1]  # the seed's Conv2DTranspose
    a = oracle.arrays(case)
    fake = type("Conv2DTranspose", (_FakeKerasLayer,), {})(
        case["layer"]["config"], a["kernel"], [None, None, 2, 1])
    with pytest.raises(cm.ConvMatrixError, match="input_shape"):
        cm.from_keras(fake)
    fake._build = [None, *case["input_shape"]]  # the batch axis may be unknown
    layer = cm.from_keras(fake)
    np.testing.assert_allclose(layer.matrix() @ a["x"].ravel(), a["y"].ravel(), atol=1e-5)
    np.testing.assert_allclose(layer(a["x"]), a["y"], atol=1e-5)


def _keras_numpy(value):
    """A Keras output or weight as numpy (on the torch backend without np.asarray on a tensor,
    which numpy 2 deprecates for torch's ``__array__``)."""
    value = getattr(value, "value", value)
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def test_from_keras_with_real_keras():
    keras = pytest.importorskip("keras")
    layer = keras.layers.Conv2D(2, 3, padding="same", strides=2)
    x = np.random.default_rng(0).standard_normal((1, 7, 5, 3)).astype("float32")
    y = _keras_numpy(layer(x)) - _keras_numpy(layer.bias)
    np.testing.assert_allclose(cm.from_keras(layer, input_shape=x.shape[1:])(x[0]).ravel(),
                               y.ravel(), atol=1e-5)


def test_channels_last_matrix_is_a_permutation_of_rows_and_columns():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 5))
    weight = rng.standard_normal((2, 3, 2, 2))
    C = cm.conv_matrix(weight, x.shape)
    C_last = channels_last_matrix(C, x.shape, (2, 3, 4))
    y = reference.conv(x, weight)
    np.testing.assert_allclose(C_last @ np.moveaxis(x, 0, -1).ravel(),
                               np.moveaxis(y, 0, -1).ravel(), rtol=1e-12)
    assert C_last.has_canonical_format


def test_keras_layer_exposes_spec_and_torch_weight():
    case = oracle.cases()[1]
    layer = keras_layer(case["layer"], oracle.arrays(case)["kernel"], case["input_shape"])
    assert layer.direction == "adjoint" and layer.spec.input_shape == (1, 3, 3)
    assert layer.weight.shape == layer.spec.weight_shape


# ------------------------------------------------------------------------------------------
# torch: duck-typed modules (no torch needed) and, when installed, live modules


class _FakeConv:
    """Quacks like torch.nn.Conv2d (attributes only)."""

    def __init__(self, weight, bias=None, **attrs):
        self.weight, self.bias = weight, bias
        self.stride, self.padding, self.dilation = (1, 1), (0, 0), (1, 1)
        self.groups, self.padding_mode, self.transposed = 1, "zeros", False
        self.output_padding = (0, 0)
        self.__dict__.update(attrs)


def test_torch_matrix_reads_attributes_without_torch():
    weight = np.random.default_rng(6).standard_normal((2, 3, 3, 3))
    fake = _FakeConv(weight, bias=np.array([1.0, -1.0]), stride=(2, 1), padding=(1, 0))
    x = np.random.default_rng(7).standard_normal((3, 6, 5))
    M = torch_matrix(fake, x.shape)
    y = reference.conv(x, weight, stride=(2, 1), padding=(1, 0))
    np.testing.assert_allclose(M @ x.ravel(), y.ravel(), rtol=1e-12)
    bias = torch_bias(fake, x.shape)
    assert bias.shape == (y.size,) and bias[0] == 1.0 and bias[-1] == -1.0
    with pytest.raises(cm.ConvMatrixError, match="batch axis"):
        torch_matrix(fake, (1, *x.shape))
    with pytest.raises(cm.ConvMatrixError, match=r"nn\.ConvNd"):
        torch_matrix(object(), x.shape)




def _torch():
    return pytest.importorskip("torch")


def _module_from_case(torch_mod, case, weight):
    ndim = case["ndim"]
    c_in = case["input_shape"][0]
    kernel = tuple(case["weight_shape"][2:])
    if case["op"] == "conv":
        padding = oracle.torch_padding(case)
        cls = getattr(torch_mod.nn, f"Conv{ndim}d")
        module = cls(c_in, case["weight_shape"][0], kernel, stride=case["stride"],
                     padding=padding, dilation=case["dilation"], groups=case["groups"],
                     padding_mode=case["padding_mode"], bias=False, dtype=torch_mod.float64)
    else:
        cls = getattr(torch_mod.nn, f"ConvTranspose{ndim}d")
        module = cls(c_in, case["weight_shape"][1] * case["groups"], kernel,
                     stride=case["stride"], padding=case["padding"],
                     output_padding=case["output_padding"], dilation=case["dilation"],
                     groups=case["groups"], bias=False, dtype=torch_mod.float64)
    with torch_mod.no_grad():
        module.weight.copy_(torch_mod.from_numpy(weight))
    return module


# torch modules take symmetric padding only; the cases recorded with (before, after) pairs
# padded the input first, and test_sparse checks them through conv_matrix
MODULE_CASES = [c for c in oracle.select("torch")
                if not (isinstance(c["padding"], list) and isinstance(c["padding"][0], list))]


@pytest.mark.parametrize("case", MODULE_CASES, ids=lambda c: c["id"])
def test_torch_oracle_through_live_modules(case):
    torch_mod = _torch()
    a = oracle.arrays(case)
    module = _module_from_case(torch_mod, case, a["weight"])
    M = torch_matrix(module, case["input_shape"])
    np.testing.assert_allclose(M @ a["x"].ravel(), a["y"].ravel(), rtol=1e-12, atol=1e-12)
    live = module(torch_mod.from_numpy(a["x"])[None]).detach().numpy()[0]
    np.testing.assert_allclose(M @ a["x"].ravel(), live.ravel(), rtol=1e-12, atol=1e-12)


RANDOM_LAYERS = [  # torch itself refuses padding="same" with stride > 1
    v for v in itertools.product([1, 2, 3], ["zeros", "reflect", "replicate", "circular"],
                                 [1, 2], [1, 2], [0, 1, "same"])
    if not (v[4] == "same" and v[2] > 1)]


@pytest.mark.parametrize(("ndim", "mode", "stride", "groups", "padding"), RANDOM_LAYERS,
                         ids=str)
def test_random_torch_conv_modules(ndim, mode, stride, groups, padding):
    torch_mod = _torch()
    rng = seeded_rng(ndim, mode, stride, groups, padding)
    size = tuple(int(v) for v in rng.integers(3, 7, ndim))
    kernel = tuple(int(v) for v in rng.integers(1, 4, ndim))
    dilation = tuple(int(v) for v in rng.integers(1, 3, ndim))
    c_in, c_out = 2 * groups, groups * int(rng.integers(1, 3))
    cls = getattr(torch_mod.nn, f"Conv{ndim}d")
    try:
        module = cls(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, padding_mode=mode, dtype=torch_mod.float64)
        x = torch_mod.from_numpy(rng.standard_normal((c_in, *size)))
        expected = module(x[None]).detach().numpy()[0]
    except RuntimeError as error:  # torch's own geometry limits (e.g. reflect pad >= size)
        with pytest.raises(cm.ConvMatrixError):
            torch_matrix(module, (c_in, *size))
        assert str(error)
        return
    M = torch_matrix(module, (c_in, *size))
    offset = torch_bias(module, (c_in, *size))
    np.testing.assert_allclose(M @ x.numpy().ravel() + offset, expected.ravel(), rtol=1e-11,
                               atol=1e-11)


@pytest.mark.parametrize(("ndim", "stride", "output_padding", "dilation", "groups"), [
    (1, 3, 2, 1, 1), (2, (2, 1), (1, 0), 1, 2), (2, 1, 1, 2, 1), (3, 2, 1, (1, 2, 1), 1),
])
def test_random_torch_conv_transpose_modules(ndim, stride, output_padding, dilation, groups):
    torch_mod = _torch()
    rng = np.random.default_rng(ndim * 7 + groups)
    cls = getattr(torch_mod.nn, f"ConvTranspose{ndim}d")
    module = cls(2 * groups, 3 * groups, (3,) * ndim, stride=stride, padding=1,
                 output_padding=output_padding, dilation=dilation, groups=groups,
                 dtype=torch_mod.float64)
    y = torch_mod.from_numpy(rng.standard_normal((2 * groups, *(4,) * ndim)))
    expected = module(y[None]).detach().numpy()[0]
    M = torch_matrix(module, tuple(y.shape))
    np.testing.assert_allclose(M @ y.numpy().ravel() + torch_bias(module, tuple(y.shape)),
                               expected.ravel(), rtol=1e-11, atol=1e-11)


def test_conv_transpose_output_size_keyword():
    torch_mod = _torch()
    module = torch_mod.nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, bias=False,
                                          dtype=torch_mod.float64)
    y = torch_mod.randn(1, 1, 4, 4, dtype=torch_mod.float64)
    expected = module(y, output_size=[8, 8]).detach().numpy()
    M = torch_matrix(module, (1, 4, 4), output_size=(8, 8))
    np.testing.assert_allclose(M @ y.numpy().ravel(), expected.ravel(), rtol=1e-12)
    with pytest.raises(cm.ConvMatrixError, match=r"`output_size` .* must lie in \[7, 8\]"):
        torch_matrix(module, (1, 4, 4), output_size=(9, 9))


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_jacobian_of_torch_conv_is_the_matrix(mode):
    torch_mod = _torch()
    from torch.func import jacrev

    module = torch_mod.nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2),
                                 padding_mode=mode, bias=False, dtype=torch_mod.float64)
    shape = (2, 5, 6)
    x = torch_mod.randn(*shape, dtype=torch_mod.float64)
    jac = jacrev(lambda v: module(v.reshape(1, *shape)).reshape(-1))(x.reshape(-1))
    M = torch_matrix(module, shape)
    np.testing.assert_allclose(M.toarray(), jac.detach().numpy(), rtol=1e-13, atol=1e-13)


def test_jacobian_of_torch_conv_transpose_is_the_matrix():
    torch_mod = _torch()
    from torch.func import jacrev

    module = torch_mod.nn.ConvTranspose2d(2, 4, 3, stride=2, padding=1, output_padding=1,
                                          groups=2, bias=False, dtype=torch_mod.float64)
    shape = (2, 3, 3)
    y = torch_mod.randn(*shape, dtype=torch_mod.float64)
    jac = jacrev(lambda v: module(v.reshape(1, *shape)).reshape(-1))(y.reshape(-1))
    np.testing.assert_allclose(torch_matrix(module, shape).toarray(), jac.detach().numpy(),
                               rtol=1e-13, atol=1e-13)


# ------------------------------------------------------------------------------------------
# the conventions document's worked example runs as written


def test_conventions_doc_example_runs():
    result = doctest.testfile(str(DOCS), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted >= 20, "docs/guides/conventions.md must hold its worked examples"
    assert result.failed == 0
