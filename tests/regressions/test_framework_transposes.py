"""What "transposed convolution" means in each framework: the cited public issues, pinned.

Each test runs the real framework (skipped where it does not install), reads its operator as an
exact matrix (the framework's outputs for a batch of unit vectors, or torch autograd), and states
the issue as a ``relation`` between that matrix and convmatrix's own kinds (``cm.Conv``,
``cm.ConvTranspose``): "equals Cᵀ", or "equals Cᵀ up to …". The convmatrix kinds are pinned
to the same framework's forward convolution in the same test, so a statement never rests on
convmatrix alone; the jax.lax and ONNX matrices are also checked against convmatrix's readers
(``cm.lax``, ``cm.from_onnx``) on the way. JAX/flax are channels-last: their matrices are
compared in channels-first order (``_cf``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

import convmatrix as cm
from convmatrix.geometry.shapes import same_padding_tf
from convmatrix.testing import ProbeResult, relation

RNG = np.random.default_rng(18)


def _integers(shape):
    """Small non-zero integers: exact in float32, each tap identifiable."""
    return (RNG.integers(1, 10, size=shape) * RNG.choice([-1, 1], size=shape)).astype(np.float64)


def _matrix(fn, input_shape):
    """The dense matrix of a batched linear fn (framework arrays in, arrays out)."""
    n = math.prod(input_shape)
    out = np.asarray(fn(np.eye(n, dtype=np.float32).reshape(n, *input_shape)), dtype=np.float64)
    return out.reshape(n, -1).T


def _cf(matrix, in_shape, out_shape):
    """A channels-last matrix ``(*sp, C)`` re-indexed to channels-first order."""
    def order(shape):
        return np.moveaxis(np.arange(math.prod(shape)).reshape(shape), -1, 0).ravel()
    return matrix[order(out_shape)][:, order(in_shape)]


def _map(matrix, in_shape, out_shape):
    """A recovered map (channels first) as ``relation`` takes it."""
    return ProbeResult(sp.csr_array(matrix), np.zeros(matrix.shape[0]), tuple(in_shape),
                       tuple(out_shape), matrix.shape[1], 1, "unit vectors", 0)


def _hwio_to_torch(kernel):
    return np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)))


def _tf_same(n, k, s):
    return same_padding_tf(n, k, s)


# ------------------------------------------------------------------------------ torch


def test_torch_conv_transpose2d_padding_crops_the_output():
    """Converters (e.g. Samsung/TICO#420) treat ConvTranspose2d.padding as input padding.

    Reported: a Pad node inserted before the transposed convolution gives different values.
    Pinned: torch's ConvTranspose2d(padding=p) is exactly ``Cᵀ`` of Conv2d(padding=p); the
    transposed convolution without padding is ``Cᵀ`` of the unpadded conv, and padding the
    *input* of the transposed convolution instead is neither.
    """
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    w = torch.from_numpy(_integers((2, 3, 3, 3)))       # ConvTranspose2d(2 → 3) weight
    shape = (2, 4, 4)
    up = _matrix(lambda y: F.conv_transpose2d(torch.from_numpy(y).double(), w, padding=1),
                 shape)                                   # 4×4 → 4×4 (the full 6×6, cropped)
    conv = cm.Conv(w.numpy(), (3, 4, 4), padding=1)
    conv_torch = _matrix(lambda x: F.conv2d(torch.from_numpy(x).double(), w, padding=1),
                         (3, 4, 4))
    np.testing.assert_array_equal(conv.matrix().toarray(), conv_torch)
    assert relation(_map(up, shape, (3, 4, 4)), conv).exact
    # the converter's reading: pad the input, then a transposed conv without padding
    padded = _matrix(lambda y: F.conv_transpose2d(F.pad(torch.from_numpy(y).double(),
                                                        (1, 1, 1, 1)), w), shape)
    r = relation(_map(padded, shape, (3, 8, 8)), conv)
    assert r.verdict == "neither"
    full = relation(_map(up, shape, (3, 4, 4)), cm.Conv(w.numpy(), (3, 6, 6)))
    assert (full.verdict, full.differences["padding"]) == (
        "transpose", (((0, 0), (0, 0)), ((1, 1), (1, 1))))


# ------------------------------------------------------------------------------ flax / jax


def _flax():
    pytest.importorskip("jax")
    return pytest.importorskip("flax.linen")


def _flax_matrix(module, kernel, in_shape):
    import jax.numpy as jnp

    return _matrix(lambda x: module.apply({"params": {"kernel": jnp.asarray(kernel)}},
                                          jnp.asarray(x)), in_shape)


def test_flax_conv_transpose_default_is_not_the_adjoint_of_conv():
    """flax#2577 / flax#2578, flax#3137: ConvTranspose's transpose_kernel defaults to False.

    Reported: flax's ConvTranspose with the kernel of a Conv is not its transpose (the gradient);
    #2578 added ``transpose_kernel`` and kept the old default; #3137: the docs never said that
    torch/Keras compatibility needs ``transpose_kernel=True`` (and swapped channel axes).
    Pinned: with the same kernel, ``transpose_kernel=True`` is exactly ``Cᵀ`` of ``nn.Conv``;
    the default is ``Cᵀ`` up to a kernel flip and swapped weight channel axes.
    """
    nn = _flax()
    k = _integers((3, 3, 2, 2))                       # HWIO, 2 → 2 channels
    conv = nn.Conv(2, (3, 3), strides=2, padding="SAME", use_bias=False)
    forward = _cf(_flax_matrix(conv, k, (6, 6, 2)), (6, 6, 2), (3, 3, 2))
    mine = cm.Conv(_hwio_to_torch(k), (2, 6, 6), stride=2, padding=(_tf_same(6, 3, 2),) * 2)
    np.testing.assert_array_equal(mine.matrix().toarray(), forward)
    for transpose_kernel, want in ((True, {}), (False, {"kernel_flip": (False, True),
                                                        "weight_channels_swapped": (False, True)})):
        up = nn.ConvTranspose(2, (3, 3), strides=2, padding="SAME", use_bias=False,
                              transpose_kernel=transpose_kernel)
        matrix = _cf(_flax_matrix(up, k, (3, 3, 2)), (3, 3, 2), (6, 6, 2))
        r = relation(_map(matrix, (2, 3, 3), (2, 6, 6)), mine)
        assert (r.verdict, r.differences) == ("transpose", want)


def test_flax_conv_transpose_vs_torch():
    """jax#11252: flax ConvTranspose does not match torch ConvTranspose2d.

    Reported: ``ConvTranspose2d(C, C, 4, stride=4)`` and flax ``ConvTranspose(C, (4, 4),
    strides=4, padding="VALID")`` with the kernel ``weight.permute(2, 3, 1, 0)`` disagree.
    Pinned: with that kernel the default flax layer equals torch's up to a kernel flip and
    swapped weight channel axes; ``transpose_kernel=True`` with the same kernel equals torch's
    exactly.
    """
    nn = _flax()
    torch = pytest.importorskip("torch")
    w = _integers((2, 2, 2, 2))                      # torch ConvTranspose2d(2, 2, 2, stride=2)
    torch_up = _matrix(lambda y: torch.nn.functional.conv_transpose2d(
        torch.from_numpy(y).double(), torch.from_numpy(w), stride=2), (2, 3, 3))
    mine = cm.ConvTranspose(w, (2, 3, 3), stride=2)
    np.testing.assert_array_equal(mine.matrix().toarray(), torch_up)
    kernel = np.transpose(w, (2, 3, 1, 0))           # the permute(2, 3, 1, 0)
    for transpose_kernel, want in ((False, {"kernel_flip": (False, True),
                                            "weight_channels_swapped": (False, True)}),
                                   (True, {})):
        up = nn.ConvTranspose(2, (2, 2), strides=(2, 2), padding="VALID", use_bias=False,
                              transpose_kernel=transpose_kernel)
        matrix = _cf(_flax_matrix(up, kernel, (3, 3, 2)), (3, 3, 2), (6, 6, 2))
        r = relation(_map(matrix, (2, 3, 3), (2, 6, 6)), mine)
        assert (r.verdict, r.differences) == ("equal", want)


def _lax_conv(k, in_shape, strides, padding):
    """jax.lax's matrix, checked against convmatrix's reader ``cm.lax`` on the way."""
    import jax

    dn = ("NHWC", "HWIO", "NHWC")
    live = _matrix(lambda x: jax.lax.conv_general_dilated(
        x, k.astype(np.float32), strides, padding, dimension_numbers=dn), in_shape)
    read = cm.lax.conv_general_dilated((1, *in_shape), k, strides, padding,
                                       dimension_numbers=dn)
    np.testing.assert_array_equal(read.matrix().toarray(), live)
    return live


def _lax_conv_transpose(k, in_shape, strides, padding, **kw):
    """jax.lax's matrix, checked against ``cm.lax.conv_transpose`` on the way."""
    import jax

    dn = ("NHWC", "HWIO", "NHWC")
    live = _matrix(lambda y: jax.lax.conv_transpose(
        y, k.astype(np.float32), strides, padding, dimension_numbers=dn, **kw), in_shape)
    read = cm.lax.conv_transpose((1, *in_shape), k, strides, padding, dimension_numbers=dn,
                                 **kw)
    np.testing.assert_array_equal(read.matrix().toarray(), live)
    return live


def test_equinox_dot_test_with_lax():
    """equinox#728: ConvTranspose2d failed the dot test ⟨a, Cx⟩ = ⟨Cᵀa, x⟩ (here via jax.lax).

    Reported: equinox's Conv2d and ConvTranspose2d (2 → 2 channels, kernel 3, stride 1,
    'SAME', the same weight) fail the dot test; TF's conv2d_transpose passes it. equinox's
    ConvTranspose is lax's fractionally strided convolution with the kernel as given, i.e.
    ``lax.conv_transpose(transpose_kernel=False)`` (equinox is not installed here).
    Pinned: the dot test fails for ``transpose_kernel=False`` and passes for ``True``; the
    relation says why: at stride 1 the default is the convolution ``C`` itself (not ``Cᵀ``),
    ``transpose_kernel=True`` is exactly ``Cᵀ``.
    """
    pytest.importorskip("jax")
    k = _integers((3, 3, 2, 2))
    x, a = RNG.standard_normal((6, 6, 2)), RNG.standard_normal((6, 6, 2))
    conv = _lax_conv(k, (6, 6, 2), (1, 1), "SAME")
    mine = cm.Conv(_hwio_to_torch(k), (2, 6, 6), padding="same")
    np.testing.assert_array_equal(mine.matrix().toarray(), _cf(conv, (6, 6, 2), (6, 6, 2)))
    for transpose_kernel, verdict in ((False, "equal"), (True, "transpose")):
        up = _lax_conv_transpose(k, (6, 6, 2), (1, 1), "SAME",
                                 transpose_kernel=transpose_kernel)
        passes = np.isclose(a.ravel() @ (conv @ x.ravel()), (up @ a.ravel()) @ x.ravel(),
                            rtol=1e-9)
        assert passes == transpose_kernel
        r = relation(_map(_cf(up, (6, 6, 2), (6, 6, 2)), (2, 6, 6), (2, 6, 6)), mine)
        assert (r.verdict, r.differences) == (verdict, {})


def test_lax_conv_transpose_explicit_padding():
    """jax#32267 (fixed by jax#32268 as ``use_consistent_padding=True``).

    Reported: ``lax.conv_transpose`` reads a padding *string* as the forward convolution's but
    explicit integer pairs as the transposed convolution's own, so explicit padding does not
    give the transpose of ``conv_general_dilated`` with that padding.
    Pinned (jax 0.10): by default explicit pairs ``P`` give ``Cᵀ`` of the conv with padding
    ``k − 1 − P`` (and another output size); ``use_consistent_padding=True`` gives ``Cᵀ`` of
    the conv with padding ``P`` exactly.
    """
    jax = pytest.importorskip("jax")
    import inspect

    if "use_consistent_padding" not in inspect.signature(jax.lax.conv_transpose).parameters:
        pytest.skip("this jax predates jax#32268")
    k = _integers((3, 3, 1, 1))
    pads = [(0, 1), (0, 1)]
    conv = cm.Conv(_hwio_to_torch(k), (1, 6, 6), stride=2, padding=tuple(pads))
    np.testing.assert_array_equal(conv.matrix().toarray(),
                                  _lax_conv(k, (6, 6, 1), (2, 2), pads))
    fixed = _lax_conv_transpose(k, (3, 3, 1), (2, 2), pads, transpose_kernel=True,
                                use_consistent_padding=True)
    assert relation(_map(fixed, (1, 3, 3), (1, 6, 6)), conv).exact
    default = _lax_conv_transpose(k, (3, 3, 1), (2, 2), pads, transpose_kernel=True)
    r = relation(_map(default, (1, 3, 3), (1, 4, 4)), conv)
    assert r.verdict == "transpose"
    assert r.differences["padding"] == (((0, 1), (0, 1)), ((2, 1), (2, 1)))  # k − 1 − P
    assert set(r.differences) == {"shape", "padding"}


def test_lax_conv_transpose_valid_vs_zero_pairs():
    """jax#17618: 'VALID' and [(0, 0), (0, 0)] give different outputs.

    Reported: ``conv_transpose(..., strides=(4, 4), padding='VALID')`` on 128×128 gives
    512×512 but ``padding=[(0, 0), (0, 0)]`` gives 506×506 (kernel 4).
    Pinned (3×3 input, kernel 4, stride 4): 'VALID' is exactly ``Cᵀ`` of the VALID conv on
    12×12; the zero pairs are ``Cᵀ`` up to a crop of ``k − 1 = 3`` per side (6×6 output); with
    ``use_consistent_padding=True`` the zero pairs equal 'VALID'.
    """
    jax = pytest.importorskip("jax")
    import inspect

    k = _integers((4, 4, 1, 1))
    conv = cm.Conv(_hwio_to_torch(k), (1, 12, 12), stride=4)
    np.testing.assert_array_equal(conv.matrix().toarray(),
                                  _lax_conv(k, (12, 12, 1), (4, 4), "VALID"))
    valid = _lax_conv_transpose(k, (3, 3, 1), (4, 4), "VALID", transpose_kernel=True)
    zeros = _lax_conv_transpose(k, (3, 3, 1), (4, 4), [(0, 0), (0, 0)], transpose_kernel=True)
    assert valid.shape == (144, 9) and zeros.shape == (36, 9)
    assert relation(_map(valid, (1, 3, 3), (1, 12, 12)), conv).exact
    r = relation(_map(zeros, (1, 3, 3), (1, 6, 6)), conv)
    assert r.verdict == "transpose"
    assert r.differences["padding"] == (((0, 0), (0, 0)), ((3, 3), (3, 3)))
    if "use_consistent_padding" in inspect.signature(jax.lax.conv_transpose).parameters:
        consistent = _lax_conv_transpose(k, (3, 3, 1), (4, 4), [(0, 0), (0, 0)],
                                         transpose_kernel=True, use_consistent_padding=True)
        np.testing.assert_array_equal(consistent, valid)


def test_lax_output_shape_via_vjp():
    """jax#4592: no ``output_shape`` argument; derive the transposed conv via ``jax.vjp``.

    Reported: TF's conv_transpose takes ``output_shape``; JAX's answer: a transposed
    convolution is a gradient of the forward convolution, so ``jax.vjp`` of the forward conv
    on an input of the wanted shape gives it.
    Pinned: for 3×3 → 5×5 (stride 2, SAME) the vjp is exactly ``Cᵀ`` of the SAME conv on 5×5,
    while ``conv_transpose(..., 'SAME')`` can only give 6×6: ``Cᵀ`` of that conv up to shape
    and padding.
    """
    jax = pytest.importorskip("jax")
    k = _integers((3, 3, 1, 1)).astype(np.float32)
    conv5 = cm.Conv(_hwio_to_torch(k), (1, 5, 5), stride=2, padding=(_tf_same(5, 3, 2),) * 2)

    def forward(z):
        return jax.lax.conv_general_dilated(z, k, (2, 2), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def vjp(y):
        _, pullback = jax.vjp(forward, np.zeros((y.shape[0], 5, 5, 1), np.float32))
        return pullback(y)[0]

    by_vjp = _matrix(vjp, (3, 3, 1))
    assert relation(_map(by_vjp, (1, 3, 3), (1, 5, 5)), conv5).exact
    same = _lax_conv_transpose(k, (3, 3, 1), (2, 2), "SAME", transpose_kernel=True)
    r = relation(_map(same, (1, 3, 3), (1, 6, 6)), conv5)
    assert r.verdict == "transpose" and "shape" in r.differences and not r.exact


# ------------------------------------------------------------------------------ ONNX


def _onnx_model(attrs, x_shape, w):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, *x_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)],
        [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.astype(np.float32).ravel())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _reference(model, x_shape):
    """onnx.reference's matrix, checked against convmatrix's reader ``cm.from_onnx``."""
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(model)
    columns = [evaluator.run(None, {"x": e.reshape(1, *x_shape)})[0].ravel()
               for e in np.eye(math.prod(x_shape), dtype=np.float32)]
    matrix = np.stack(columns, axis=1).astype(np.float64)
    np.testing.assert_array_equal(cm.from_onnx(model, x_shape).matrix().toarray(), matrix)
    return matrix


def _runtime(model, x_shape):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return _matrix(lambda x: session.run(None, {"x": x})[0], x_shape)


W_ONNX = _integers((1, 1, 3, 3))
#: the forward conv whose Cᵀ a 3×3 → 6×6 stride-2 ConvTranspose would be: TF/ONNX "same"
CONV6 = cm.Conv(W_ONNX, (1, 6, 6), stride=2, padding=(_tf_same(6, 3, 2),) * 2)   # (0, 1)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_onnx_auto_pad_head_and_tail(auto_pad):
    """onnx#1609, onnxruntime#9370 (and #5368/#8769), onnxruntime#4086 / #4698.

    Reported: the spec's formula and its text put the odd padding at opposite ends
    (onnx#1609); onnxruntime's ConvTranspose split SAME_UPPER/SAME_LOWER the other way round
    from shape inference (#9370); onnxruntime ignored auto_pad and returned the unpadded
    shape (#4086, #4698).
    Pinned (onnx 1.23 reference, onnxruntime 1.32): both give 3×3 → 6×6 (= input·stride)
    and agree; total padding 1 goes to the *end* for SAME_UPPER — exactly ``Cᵀ`` of the
    SAME conv on 6×6 (TF's rule, odd pad after) — and to the *start* for SAME_LOWER, which is
    that ``Cᵀ`` up to a padding shift.
    """
    model = _onnx_model({"strides": [2, 2], "auto_pad": auto_pad}, (1, 3, 3), W_ONNX)
    reference, runtime = _reference(model, (1, 3, 3)), _runtime(model, (1, 3, 3))
    np.testing.assert_array_equal(reference, runtime)
    assert reference.shape == (36, 9)
    r = relation(_map(reference, (1, 3, 3), (1, 6, 6)), CONV6)
    assert r.verdict == "transpose"
    if auto_pad == "SAME_UPPER":
        assert r.exact
    else:
        assert r.differences == {"padding": (((0, 1), (0, 1)), ((1, 0), (1, 0)))}


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_onnx_auto_pad_with_output_padding(auto_pad):
    """onnxruntime#11927 and onnx#4299: ConvTranspose with auto_pad and output_padding.

    Reported: with ``auto_pad`` SAME_* and ``output_padding=[1, 1]`` (3×3 input, stride 2)
    shape inference gives 7×7 while onnxruntime returns something else; which is right?
    Pinned (onnx 1.23, onnxruntime 1.32): shape inference still says 7×7; the reference and
    onnxruntime agree with each other on 6×6 (= input·stride); output_padding enters the total
    padding (2, split evenly) and is added back at the end, so for SAME_UPPER *and*
    SAME_LOWER the odd pixel is cropped at the start: ``Cᵀ`` of the SAME conv up to a padding
    shift ``(0, 1) → (1, 0)`` — without output_padding SAME_UPPER is that ``Cᵀ`` exactly.
    """
    onnx = pytest.importorskip("onnx")
    model = _onnx_model({"strides": [2, 2], "auto_pad": auto_pad, "output_padding": [1, 1]},
                        (1, 3, 3), W_ONNX)
    inferred = onnx.shape_inference.infer_shapes(model).graph.output[0].type.tensor_type.shape
    assert [d.dim_value for d in inferred.dim][2:] == [7, 7]
    reference, runtime = _reference(model, (1, 3, 3)), _runtime(model, (1, 3, 3))
    np.testing.assert_array_equal(reference, runtime)
    assert reference.shape == (36, 9)
    r = relation(_map(reference, (1, 3, 3), (1, 6, 6)), CONV6)
    assert (r.verdict, r.differences) == (
        "transpose", {"padding": (((0, 1), (0, 1)), ((1, 0), (1, 0)))})


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_onnx_output_shape(auto_pad):
    """onnxruntime#13311: CPU behaviour with auto_pad when output_shape is given.

    Reported: the CPU EP computed the padding for ``output_shape`` differently from the spec
    (SAME_LOWER behaviour unless SAME_UPPER); #13311 changed it.
    Pinned: with ``output_shape=[6, 6]`` and SAME_UPPER / SAME_LOWER, the reference and
    onnxruntime agree and equal the auto_pad result without output_shape.
    """
    attrs = {"strides": [2, 2], "auto_pad": auto_pad}
    plain = _reference(_onnx_model(attrs, (1, 3, 3), W_ONNX), (1, 3, 3))
    model = _onnx_model({**attrs, "output_shape": [6, 6]}, (1, 3, 3), W_ONNX)
    reference, runtime = _reference(model, (1, 3, 3)), _runtime(model, (1, 3, 3))
    np.testing.assert_array_equal(reference, runtime)
    np.testing.assert_array_equal(reference, plain)


def test_onnx_output_padding_is_a_crop_of_the_adjoint():
    """ONNX pads/output_padding follow torch: explicit ``pads`` crop, ``output_padding`` adds.

    Pinned: ``pads=[1, 1, 1, 1], output_padding=[1, 1]`` (3×3 → 6×6) is exactly ``Cᵀ`` of the
    conv with padding 1 on 6×6 in both the reference and onnxruntime; without output_padding
    (5×5) it is that ``Cᵀ`` up to the crop of the last row and column.
    """
    conv = cm.Conv(W_ONNX, (1, 6, 6), stride=2, padding=1)
    for output_padding, shape in (([1, 1], (1, 6, 6)), ([0, 0], (1, 5, 5))):
        model = _onnx_model({"strides": [2, 2], "pads": [1, 1, 1, 1],
                             "output_padding": output_padding}, (1, 3, 3), W_ONNX)
        reference, runtime = _reference(model, (1, 3, 3)), _runtime(model, (1, 3, 3))
        np.testing.assert_array_equal(reference, runtime)
        r = relation(_map(reference, (1, 3, 3), shape), conv)
        assert r.verdict == "transpose"
        if output_padding == [1, 1]:
            assert r.exact
        else:
            assert r.differences["output_padding"] == ((1, 1), (0, 0))


def test_onnx_same_kernel_smaller_than_stride():
    """Where onnxruntime departs from onnx.reference: SAME_* with a kernel below the stride.

    Pinned (onnx 1.23 reference vs onnxruntime 1.32; kernel 2, stride 3, 3×3 input): the
    reference returns ``input·stride`` = 9×9 as the spec says — its total padding is negative
    (−1): SAME_LOWER appends a zero row and column at the end (exactly
    ``ConvTranspose(stride=3, output_padding=1)``), SAME_UPPER prepends them at the start.
    onnxruntime clamps the padding at 0 and returns 8×8, exactly ``Cᵀ`` of the VALID conv on
    8×8. convmatrix follows the reference (issue 18).
    """
    w = _integers((1, 1, 2, 2))
    appended = cm.ConvTranspose(w, (1, 3, 3), stride=3, output_padding=1)   # 9×9
    valid = cm.Conv(w, (1, 8, 8), stride=3)
    found = {}
    for auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        model = _onnx_model({"strides": [3, 3], "auto_pad": auto_pad}, (1, 3, 3), w)
        reference, runtime = _reference(model, (1, 3, 3)), _runtime(model, (1, 3, 3))
        assert reference.shape == (81, 9) and runtime.shape == (64, 9)
        assert relation(_map(runtime, (1, 3, 3), (1, 8, 8)), valid).exact
        found[auto_pad] = reference.reshape(9, 9, 9)
    assert relation(_map(found["SAME_LOWER"].reshape(81, 9), (1, 3, 3), (1, 9, 9)),
                    appended).exact
    upper, lower = found["SAME_UPPER"], found["SAME_LOWER"]
    np.testing.assert_array_equal(upper[1:, 1:], lower[:-1, :-1])     # shifted by one
    assert not upper[0].any() and not upper[:, 0].any()
