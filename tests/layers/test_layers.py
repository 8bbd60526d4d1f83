"""Layer objects (cm.Conv, cm.ConvTranspose, cm.from_torch, cm.from_keras) against independent
computations: the dense reference, the recorded framework oracles and live torch modules."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import reference
from tests import oracle
from tests.helpers import rng as seeded

CONV_CASES = [
    ((2, 3, 3, 3), (3, 7, 6), {"stride": 2, "padding": 1}),
    ((4, 1, 2, 3), (2, 5, 6), {"groups": 2, "dilation": (2, 1), "padding": ((1, 0), (2, 1))}),
    ((1, 1, 3), (1, 6), {"padding": 2, "padding_mode": "reflect"}),
    ((2, 2, 3, 3), (2, 4, 4), {"padding": 1, "padding_mode": "circular"}),
    ((1, 2, 2, 2, 2), (2, 3, 4, 3), {"padding": 1, "padding_mode": "replicate"}),
    ((3, 1, 5), (1, 9), {"padding": "same", "dilation": 2}),
]

TRANSPOSE_CASES = [
    ((1, 1, 2, 2), (1, 2, 2), {}),
    ((2, 3, 3, 3), (2, 4, 4), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((4, 1, 2, 3), (4, 4, 5), {"stride": (1, 2), "groups": 2, "dilation": 2,
                               "output_padding": (1, 0)}),
    ((2, 1, 4), (2, 5), {"stride": 3, "padding": ((2, 1),), "output_padding": 2}),
]


@pytest.mark.parametrize(("weight_shape", "input_shape", "geometry"), CONV_CASES)
def test_conv_layer_matches_the_dense_reference(weight_shape, input_shape, geometry):
    rng = seeded(weight_shape, input_shape, geometry)
    weight = rng.standard_normal(weight_shape)
    bias = rng.standard_normal(weight_shape[0])
    x = rng.standard_normal(input_shape)
    layer = cm.Conv(weight, input_shape, bias=bias, **geometry)
    expected = reference.conv(x, weight, **geometry) + bias.reshape(-1, *[1] * (x.ndim - 1))
    assert layer.output_shape == expected.shape
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.matrix() @ x.ravel() + layer.offset(), expected.ravel(),
                               rtol=1e-12, atol=1e-12)
    # a batch goes through in one call
    xs = np.stack([x, 2 * x])
    np.testing.assert_allclose(layer(xs)[1], 2 * expected - layer.offset().reshape(expected.shape),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("weight_shape", "input_shape", "geometry"), TRANSPOSE_CASES)
def test_conv_transpose_layer_matches_the_dense_reference(weight_shape, input_shape, geometry):
    rng = seeded(weight_shape, input_shape, geometry)
    weight = rng.standard_normal(weight_shape)
    y = rng.standard_normal(input_shape)
    layer = cm.ConvTranspose(weight, input_shape, **geometry)
    expected = reference.conv_transpose(y, weight, **geometry)
    assert layer.output_shape == expected.shape
    np.testing.assert_allclose(layer(y), expected, rtol=1e-12, atol=1e-12)
    assert not layer.offset().any()


@pytest.mark.parametrize(("weight_shape", "input_shape", "geometry"),
                         CONV_CASES + [(w, i, g) for w, i, g in TRANSPOSE_CASES])
def test_adjoint_layer_is_the_transpose(weight_shape, input_shape, geometry):
    kind = cm.ConvTranspose if "output_padding" in geometry or weight_shape == (1, 1, 2, 2) \
        else cm.Conv
    rng = seeded(weight_shape, input_shape, geometry, "adjoint")
    layer = kind(rng.standard_normal(weight_shape), input_shape, **geometry)
    adjoint = layer.T
    assert adjoint.T is layer
    assert adjoint.input_shape == layer.output_shape
    assert adjoint.output_shape == layer.input_shape
    for fmt in ("csr", "csc", "coo"):
        assert (adjoint.matrix(fmt) != layer.matrix(fmt).T).nnz == 0
    # the dot test, through the layer calls alone
    x = rng.standard_normal(layer.input_shape)
    y = rng.standard_normal(layer.output_shape)
    lhs = np.vdot(layer(x) - layer.offset().reshape(layer.output_shape), y)
    assert lhs == pytest.approx(np.vdot(x, adjoint(y)), rel=1e-10)


def test_adjoint_of_zero_padded_conv_is_a_conv_transpose_matching_the_reference():
    rng = seeded("adjoint-kind")
    weight = rng.standard_normal((3, 2, 3, 3))
    conv = cm.Conv(weight, (2, 9, 8), stride=2, padding=1)
    assert isinstance(conv.T, cm.ConvTranspose)
    y = rng.standard_normal(conv.output_shape)
    # output_padding recovers the forward input size (9, 8) from the (5, 4) output
    expected = reference.conv_transpose(y, weight, stride=2, padding=1, output_padding=(0, 1))
    np.testing.assert_allclose(conv.T(y), expected, rtol=1e-12)
    reflect = cm.Conv(weight, (2, 9, 8), padding=1, padding_mode="reflect")
    assert isinstance(reflect.T, cm.Adjoint)
    np.testing.assert_allclose(
        reflect.T(y := rng.standard_normal(reflect.output_shape)),
        reference.pad_adjoint(reference.conv_transpose(y, weight), ((1, 1), (1, 1)), "reflect"),
        rtol=1e-12)


def test_conv_transpose_whose_adjoint_is_no_torch_conv():
    # output_padding >= stride (allowed below the dilation): the forward conv is cropped
    layer = cm.ConvTranspose(np.ones((1, 1, 2)), (1, 4), output_padding=1, dilation=2)
    assert isinstance(layer.T, cm.Adjoint)
    assert (layer.T.matrix() != layer.matrix().T).nnz == 0


@pytest.mark.parametrize(("make", "text"), [
    (lambda: cm.Conv(np.ones((1, 1, 2, 2)), (1, 3, 3)), "Conv(1→1, 1×3×3 → 1×2×2, kernel 2×2)"),
    (lambda: cm.ConvTranspose(np.ones((1, 1, 2, 2)), (1, 2, 2)),
     "ConvTranspose(1→1, 1×2×2 → 1×3×3, kernel 2×2)"),
    (lambda: cm.Conv(np.ones((4, 1, 3)), (2, 8), stride=2, padding=(1,), groups=2),
     "Conv(2→4, 2×8 → 4×4, kernel 3, stride 2, padding 1, groups 2)"),
    (lambda: cm.Conv(np.ones((1, 1, 3, 3)), (1, 5, 5), padding=((1, 0), (1, 0)),
                     padding_mode="replicate"),
     "Conv(1→1, 1×5×5 → 1×4×4, kernel 3×3, padding ((1, 0), (1, 0)), replicate)"),
])
def test_repr_is_one_short_line(make, text):
    layer = make()
    assert repr(layer) == text
    assert "\n" not in repr(layer.T)


def test_weight_and_bias_are_copied_and_read_only():
    weight = np.ones((1, 1, 2))
    layer = cm.Conv(weight, (1, 3), bias=[1.0])
    weight[...] = 5
    assert layer.matrix().toarray().max() == 1
    with pytest.raises(ValueError, match="read-only"):
        layer.weight[0, 0, 0] = 3


@pytest.mark.parametrize(("call", "match"), [
    (lambda: cm.Conv(np.ones((2, 1, 2)), (1, 3), bias=[1.0]), r"`bias` has shape \(1,\)"),
    (lambda: cm.Conv(np.ones((1, 1, 2)), (1, 3), bias=["a"]), "`bias` has dtype"),
    (lambda: cm.Conv(np.ones((1, 1, 2)), (1, 3))(np.ones(3)), r"`x` has shape \(3,\)"),
    (lambda: cm.Conv(np.ones((1, 1, 2)), (1, 3)).matrix("dense"), "`format`"),
    (lambda: cm.Conv(np.ones((1, 1, 2)), (1, 3)).matrix(max_bytes=-1), "`max_bytes`"),
    (lambda: cm.Conv(np.ones((1, 1, 2)), (1, 3)).matrix(max_bytes=10), "max_bytes"),
    (lambda: cm.from_torch(object(), (1, 3)), "not a linear layer"),
    (lambda: cm.from_torch(torch_free_module(), (1, 1, 3, 3)), "batch axis"),
    (lambda: cm.from_keras({"class_name": "Conv1D", "config": {}}), "needs `kernel`"),
    (lambda: cm.from_keras(3), "must be a Keras layer"),
])
def test_bad_input_is_refused_with_the_parameter_named(call, match):
    with pytest.raises(cm.ConvMatrixError, match=match):
        call()


def torch_free_module():
    from types import SimpleNamespace
    return SimpleNamespace(weight=np.ones((1, 1, 2, 2)), bias=None, stride=(1, 1),
                           padding=(0, 0), dilation=(1, 1), groups=1, padding_mode="zeros",
                           transposed=False)


def test_verify_and_explain_and_report_of_a_layer():
    layer = cm.ConvTranspose(np.ones((1, 1, 2, 2), dtype=int), (1, 2, 2))
    assert layer.verify().passed
    assert layer.T.verify().passed
    explanation = layer.explain(np.ones((1, 2, 2), dtype=int))
    assert explanation.numeric_outputs[(0, 1, 1)] == 4
    assert explanation.overlap.tolist() == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    text = layer.report()
    assert text.startswith("# ") and "1×2×2 → 1×3×3" in text
    reflect = cm.Conv(np.ones((1, 1, 3)), (1, 4), padding=1, padding_mode="reflect")
    assert reflect.T.verify().passed


# --- recorded framework oracles -------------------------------------------------------------


def _json(value):
    return tuple(value) if isinstance(value, list) else value


@pytest.mark.parametrize("case", oracle.select("torch"), ids=lambda c: c["id"])
def test_layer_objects_reproduce_recorded_torch_runs(case):
    a = oracle.arrays(case)
    geometry = {key: _json(case[key]) for key in ("stride", "dilation", "groups")}
    geometry["padding"] = oracle.torch_padding(case)
    if case["op"] == "conv":
        layer = cm.Conv(a["weight"], case["input_shape"], padding_mode=case["padding_mode"],
                        **geometry)
    else:
        layer = cm.ConvTranspose(a["weight"], case["input_shape"],
                                 output_padding=_json(case["output_padding"]), **geometry)
    scale = max(1.0, float(np.abs(a["y"]).max()))
    np.testing.assert_allclose(layer(a["x"]), a["y"], atol=1e-4 * scale)
    if "grad_out" in a:  # torch's input gradient: the adjoint applied to the output gradient
        np.testing.assert_allclose(layer.T(a["grad_out"]), a["grad_in"], atol=1e-4 * scale)


@pytest.mark.parametrize("case", oracle.select("keras"), ids=lambda c: c["id"])
def test_from_keras_reproduces_recorded_keras_runs(case):
    a = oracle.arrays(case)
    layer = cm.from_keras(case["layer"], a["kernel"], case["input_shape"],
                          bias=a.get("bias"))
    assert layer.input_shape == tuple(case["input_shape"])
    assert layer.output_shape == tuple(case["output_shape"])
    scale = max(1.0, float(np.abs(a["y"]).max()))
    np.testing.assert_allclose(layer(a["x"]), a["y"], atol=1e-5 * scale)
    assert repr(layer).startswith(case["layer"]["class_name"] + "(")


# --- live torch --------------------------------------------------------------------------------


def _torch_modules(torch):
    nn = torch.nn
    return [
        (nn.Conv2d(3, 4, 3, stride=2, padding=1), (3, 9, 8)),
        (nn.Conv2d(4, 4, (3, 2), padding="same", dilation=(1, 2), groups=2,
                   padding_mode="reflect"), (4, 6, 7)),
        (nn.Conv1d(2, 3, 4, padding=2, padding_mode="circular", bias=False), (2, 7)),
        (nn.Conv3d(2, 2, 2, padding=1, padding_mode="replicate"), (2, 3, 4, 3)),
        (nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1), (3, 4, 5)),
        (nn.ConvTranspose1d(4, 6, 3, stride=3, groups=2, dilation=2), (4, 5)),
        (nn.ConvTranspose3d(1, 2, 2, stride=(1, 2, 2), bias=False), (1, 2, 3, 2)),
    ]


@pytest.mark.parametrize("index", range(7))
def test_from_torch_matches_live_modules_and_their_input_gradients(index):
    torch = pytest.importorskip("torch")
    torch.manual_seed(index)
    module, shape = _torch_modules(torch)[index]
    module = module.double()
    layer = cm.from_torch(module, shape)
    x = torch.randn(1, *shape, dtype=torch.float64, requires_grad=True)
    y = module(x)
    np.testing.assert_allclose(layer(x.detach().numpy()[0]), y.detach().numpy()[0],
                               rtol=1e-10, atol=1e-12)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    np.testing.assert_allclose(layer.T(g.numpy()[0]), grad.numpy()[0], rtol=1e-10, atol=1e-12)
    assert layer.verify().passed


def test_layers_print_short_and_render_fully_in_jupyter():
    formatter = pytest.importorskip("IPython.core.formatters")
    layer = cm.ConvTranspose(np.ones((1, 1, 2, 2), dtype=int), (1, 2, 2))
    data, _ = formatter.DisplayFormatter().format(layer)
    assert data["text/plain"] == "ConvTranspose(1→1, 1×2×2 → 1×3×3, kernel 2×2)"
    markdown = data["text/markdown"]
    # the whole explanation: shapes, the matrix, outputs, overlap and why Cᵀ is no inverse
    for part in ("| 1×2×2 | 1×3×3 | 9×4 |", "### Shapes", "C^T", "w_{1,1}",
                 "Why the transpose is not the inverse"):
        assert part in markdown
    assert r"\begin{align*}" in data["text/latex"]
    # a layer over the symbolic size guard still renders, saying why it is not derived
    huge = cm.Conv(np.ones((1, 1, 1)), (1, 2 * 10**7), stride=10**7)
    text = huge._repr_markdown_()
    assert text.startswith("`Conv(1→1, 1×20000000 → 1×2") and "No symbolic explanation" in text
    assert "max_terms" in text and huge._repr_latex_() is None


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize(("kind", "weight_shape", "input_shape", "geometry"), [
    (cm.Conv, (3, 2, 3, 3), (2, 7, 6), {"padding": 1, "stride": 2}),
    (cm.Conv, (2, 1, 5), (2, 4), {"padding": 3, "padding_mode": "reflect", "groups": 2}),
    (cm.ConvTranspose, (2, 3, 3, 2), (2, 4, 5), {"stride": 2, "output_padding": 1}),
])
def test_in_place_refresh_equals_a_fresh_build(fmt, kind, weight_shape, input_shape, geometry):
    data = seeded("refresh", fmt, weight_shape, geometry)
    layer = kind(data.standard_normal(weight_shape), input_shape, **geometry)
    C = layer.matrix(fmt)
    new = data.standard_normal(weight_shape)
    assert layer.matrix(fmt, weight=new, out=C) is C
    fresh = kind(new, input_shape, **geometry)
    expected = np.stack([fresh(e.reshape(input_shape)).ravel()
                         for e in np.eye(int(np.prod(input_shape)))], axis=1)
    np.testing.assert_allclose(C.toarray(), expected, rtol=1e-12, atol=1e-12)


def test_in_place_refresh_refuses_what_it_cannot_overwrite():
    layer = cm.Conv(np.ones((1, 1, 3)), (1, 6), padding=1)
    C = layer.matrix()
    with pytest.raises(cm.ConvMatrixError, match="`out` has dtype int64"):
        layer.matrix(weight=np.ones((1, 1, 3)), out=C.astype(np.int64))
    with pytest.raises(cm.ConvMatrixError, match="`out` needs `weight`"):
        layer.matrix(out=C)
    edited = C.copy()
    edited.data[0] = 0
    edited.eliminate_zeros()
    with pytest.raises(cm.ConvMatrixError, match=r"`out` .* is not a matrix built by convmatrix"):
        layer.matrix(weight=np.ones((1, 1, 3)), out=edited)
    other = cm.Conv(np.ones((1, 1, 3)), (1, 7), padding=1).matrix()
    with pytest.raises(cm.ConvMatrixError, match=r"`out` .* is not a matrix built by convmatrix"):
        layer.matrix(weight=np.ones((1, 1, 3)), out=other)
