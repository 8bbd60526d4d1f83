"""from_onnx, operator by operator: the matrix and offset against onnx.reference (float64) and
onnxruntime (float32), on models built with onnx.helper and randomised attributes."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from tests.adapters.onnx.helpers import affine, as_double, helper, model, reference, runtime

AUTO_PADS = ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]


def _check(proto, x, *, ref=True, ort=True, ref_tol=1e-10, ort_tol=2e-4, input_shape=None):
    """The model's layer (in its own float32) against onnxruntime (float32) and, to float32
    rounding, onnx.reference; the same model in float64 against onnx.reference (float64) to
    ``ref_tol``."""
    layer = cm.from_onnx(proto, input_shape)
    got = affine(layer, x[0])
    if ref:
        want = reference(proto, x)
        assert got.shape == (want.size,) and layer.output_shape == want.shape[1:]
        assert np.abs(got - want.ravel()).max() <= 1e-5 * max(1, np.abs(want).max())
        double = affine(cm.from_onnx(as_double(proto), input_shape), x[0])
        assert np.abs(double - want.ravel()).max() <= ref_tol * max(1, np.abs(want).max())
    if ort:
        want = runtime(proto, x)
        assert got.shape == (want.size,)
        assert np.abs(got - want.ravel()).max() <= ort_tol * max(1, np.abs(want).max())
    return layer


def _ort_accepts(proto, x):
    try:
        runtime(proto, x)
    except Exception:  # onnxruntime refuses some combinations (dilated SAME, ...)
        return False
    return True


@pytest.mark.parametrize("seed", range(6))
def test_conv_random_attributes_match_reference_and_onnxruntime(seed):
    rng = np.random.default_rng(seed)
    for _ in range(5):
        nd = int(rng.integers(1, 4))
        groups = int(rng.integers(1, 3))
        k = [int(v) for v in rng.integers(1, 4, nd)]
        s = [int(v) for v in rng.integers(1, 4, nd)]
        d = [int(v) for v in rng.integers(1, 3, nd)]
        n = [int(v) + (kk - 1) * dd for v, kk, dd in zip(rng.integers(3, 6, nd), k, d, strict=True)]
        auto = AUTO_PADS[int(rng.integers(0, 4))]
        attrs = {"strides": s, "dilations": d, "auto_pad": auto, "group": groups}
        if auto == "NOTSET":
            attrs["pads"] = [int(v) for v in rng.integers(0, 3, 2 * nd)]
        w = rng.standard_normal((2 * groups, 2, *k)).astype(np.float32)
        b = rng.standard_normal(2 * groups).astype(np.float32)
        proto = model([helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)],
                      ["N", 2 * groups, *n], {"w": w, "b": b})
        x = rng.standard_normal((1, 2 * groups, *n))
        _check(proto, x, ort=_ort_accepts(proto, x))


@pytest.mark.parametrize("seed", range(8))
def test_conv_transpose_random_attributes_match_reference(seed):
    """output_padding, output_shape, pads and every auto_pad; group 1 (see the group test)."""
    rng = np.random.default_rng(100 + seed)
    checked = 0
    while checked < 5:
        nd = int(rng.integers(1, 4))
        k = [int(v) for v in rng.integers(1, 4, nd)]
        s = [int(v) for v in rng.integers(1, 4, nd)]
        d = [int(v) for v in rng.integers(1, 3, nd)]
        n = [int(v) for v in rng.integers(2, 5, nd)]
        auto = AUTO_PADS[int(rng.integers(0, 4))]
        attrs: dict = {"strides": s, "dilations": d, "auto_pad": auto}
        variant = int(rng.integers(0, 3))
        if variant == 1:
            attrs["output_padding"] = [int(rng.integers(0, max(a, b)))
                                       for a, b in zip(s, d, strict=True)]
        if variant == 2:
            attrs["output_shape"] = [int(v) for v in rng.integers(1, 12, nd)]
        if auto == "NOTSET" and rng.random() < 0.7:
            attrs["pads"] = [int(v) for v in rng.integers(0, 3, 2 * nd)]
        w = rng.standard_normal((2, 3, *k)).astype(np.float32)
        b = rng.standard_normal(3).astype(np.float32)
        proto = model([helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)],
                      [1, 2, *n], {"w": w, "b": b})
        x = rng.standard_normal((1, 2, *n))
        try:
            want = reference(proto, x)
        except Exception:
            continue
        if want.size == 0:
            continue
        layer = cm.from_onnx(proto)
        assert layer.output_shape == want.shape[1:]
        assert np.abs(affine(layer, x[0]) - want.ravel()).max() < 1e-10
        try:
            ort = runtime(proto, x)
        except Exception:
            ort = None
        same_shape_rule = auto.startswith("SAME") and any(
            (kk - 1) * dd + 1 < ss for kk, dd, ss in zip(k, d, s, strict=True))
        if ort is not None and not same_shape_rule and "output_shape" not in attrs:
            assert ort.shape == want.shape
            assert np.abs(ort - want).max() < 1e-4
        checked += 1


def test_conv_transpose_groups_match_onnxruntime_not_the_reference():
    """onnx.reference's grouped ConvTranspose slices the weight by output channels and writes
    one channel per group (a bug in the installed onnx: it fails or is wrong unless every group
    has one channel): for group > 1 the authority is onnxruntime, which agrees with torch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    w = rng.standard_normal((4, 2, 3, 2)).astype(np.float32)
    attrs = {"strides": [2, 1], "pads": [1, 0, 0, 1], "group": 2, "output_padding": [1, 0]}
    proto = model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attrs)], [1, 4, 3, 4],
                  {"w": w})
    x = rng.standard_normal((1, 4, 3, 4))
    layer = _check(proto, x, ref=False)
    # torch with the crop done by hand (pads are (begin, end) per axis)
    full = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(
        w.astype(np.float64)), stride=(2, 1), groups=2, output_padding=(1, 0))
    want = full[:, :, 1:, :-1].numpy()
    assert np.allclose(affine(layer, x[0]), want.ravel(), atol=1e-12)
    try:  # the reference's bug: it fails, or writes one channel per group
        wrong = not np.allclose(reference(proto, x), want, atol=1e-6)
    except ValueError:
        wrong = True
    assert wrong


def test_conv_transpose_same_lower_kernel_smaller_than_stride_follows_the_reference():
    """SAME_LOWER, k=1 < s=3: the total padding s(n−1)+k−n·s is negative. onnx.reference
    keeps output n·s and starts one position before the full output (total −2 split −1 before,
    −1 after: a zero added at each end); onnxruntime clamps the
    padding to 0 and gives the shorter full output. convmatrix follows the reference."""
    w = np.array([[[2.0]]], np.float32)
    proto = model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[3],
                                    auto_pad="SAME_LOWER")], [1, 1, 3], {"w": w})
    x = np.array([[[1.0, 2.0, 3.0]]])
    layer = _check(proto, x, ort=False)
    assert layer.output_shape == (1, 9)
    assert np.allclose(affine(layer, x[0]), [0, 2, 0, 0, 4, 0, 0, 6, 0])
    assert runtime(proto, x).shape == (1, 1, 7)  # onnxruntime: (n−1)·s + k, no negative pad


@pytest.mark.parametrize("seed", range(5))
def test_average_pool_random_attributes_match_onnxruntime(seed):
    rng = np.random.default_rng(200 + seed)
    checked = 0
    while checked < 6:
        nd = int(rng.integers(1, 4))
        k = [int(v) for v in rng.integers(1, 4, nd)]
        s = [int(v) for v in rng.integers(1, 4, nd)]
        n = [int(v) for v in rng.integers(3, 7, nd)]
        auto = AUTO_PADS[int(rng.integers(0, 4))]
        ceil = int(rng.integers(0, 2)) if not auto.startswith("SAME") else 0
        attrs = {"kernel_shape": k, "strides": s, "auto_pad": auto, "ceil_mode": ceil,
                 "count_include_pad": int(rng.integers(0, 2))}
        if auto == "NOTSET":
            attrs["pads"] = [int(rng.integers(0, kk // 2 + 1)) for kk in k * 2]
        proto = model([helper.make_node("AveragePool", ["x"], ["y"], **attrs)], [1, 2, *n], {})
        x = rng.standard_normal((1, 2, *n))
        if not _ort_accepts(proto, x):
            continue
        simple = nd == 2 and not (ceil and auto != "NOTSET")
        _check(proto, x, ref=simple)
        checked += 1


@pytest.mark.parametrize("opset", [11, 13, 18, 21])
def test_reduce_mean_axes_as_attribute_or_input(opset):
    rng = np.random.default_rng(opset)
    inits = {}
    if opset >= 18:
        inits["axes"] = np.array([2, 3], np.int64)
        node = helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0)
    else:
        node = helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)
    proto = model([node], [1, 3, 4, 5], inits, opset=opset)
    layer = _check(proto, rng.standard_normal((1, 3, 4, 5)))
    assert layer.output_shape == (3,)


def test_global_average_pool_batch_norm_and_arithmetic_chain():
    rng = np.random.default_rng(3)
    c = 3
    inits = {"s": rng.uniform(0.5, 2, c).astype(np.float32),
             "b": rng.standard_normal(c).astype(np.float32),
             "m": rng.standard_normal(c).astype(np.float32),
             "v": rng.uniform(0.5, 2, c).astype(np.float32),
             "k": rng.standard_normal((c, 1, 1)).astype(np.float32),
             "h": np.array(2.5, np.float32), "t": rng.standard_normal((1, c, 4, 4)).astype(
                 np.float32)}
    nodes = [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["a"],
                              epsilon=1e-3),
             helper.make_node("Mul", ["a", "k"], ["a2"]),
             helper.make_node("Sub", ["h", "a2"], ["a3"]),
             helper.make_node("Div", ["a3", "h"], ["a4"]),
             helper.make_node("Add", ["t", "a4"], ["a5"]),
             helper.make_node("Neg", ["a5"], ["a6"]),
             helper.make_node("GlobalAveragePool", ["a6"], ["y"])]
    proto = model(nodes, [1, c, 4, 4], inits)
    layer = _check(proto, rng.standard_normal((1, c, 4, 4)))
    assert isinstance(layer, cm.Sequential) and layer.output_shape == (c, 1, 1)


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_split_concat_and_branch_sums(opset):
    rng = np.random.default_rng(5)
    inits = {}
    if opset >= 18:
        split = helper.make_node("Split", ["x"], ["p", "q", "r"], axis=1, num_outputs=3)
    elif opset >= 13:
        inits["sp"] = np.array([1, 2, 3], np.int64)
        split = helper.make_node("Split", ["x", "sp"], ["p", "q", "r"], axis=1)
    else:
        split = helper.make_node("Split", ["x"], ["p", "q", "r"], axis=1, split=[1, 2, 3])
    nodes = [split, helper.make_node("Concat", ["r", "p", "q"], ["c"], axis=1),
             helper.make_node("Sub", ["c", "x"], ["d"]),
             helper.make_node("Add", ["d", "c"], ["e"]),
             helper.make_node("Sum", ["e", "x", "c"], ["y"])]
    channels = 6
    proto = model(nodes, [1, channels, 3, 2], inits, opset=opset)
    layer = _check(proto, rng.standard_normal((1, channels, 3, 2)))
    assert isinstance(layer, cm.Graph)


def test_shape_plumbing_is_folded_into_a_reshape():
    """Shape → Gather → Unsqueeze → Concat → Reshape, as torch exports x.view(x.size(0), -1)."""
    rng = np.random.default_rng(9)
    nodes = [helper.make_node("Shape", ["x"], ["sh"]),
             helper.make_node("Constant", [], ["zero"], value=helper.make_tensor(
                 "z", 7, [], [0])),
             helper.make_node("Gather", ["sh", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
             helper.make_node("Constant", [], ["minus"], value_ints=[-1]),
             helper.make_node("Concat", ["n1", "minus"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"]),
             helper.make_node("Unsqueeze", ["flat", "ax2"], ["u"]),
             helper.make_node("Squeeze", ["u", "ax2"], ["s"]),
             helper.make_node("Reshape", ["s", "shape0"], ["y"])]
    inits = {"ax": np.array([0], np.int64), "ax2": np.array([2], np.int64),
             "shape0": np.array([0, 3, -1], np.int64)}
    proto = model(nodes, ["N", 2, 3, 4], inits, opset=13)
    layer = _check(proto, rng.standard_normal((1, 2, 3, 4)))
    assert layer.output_shape == (3, 8)


def test_slice_flatten_gemm_matmul_identity_dropout():
    rng = np.random.default_rng(11)
    inits = {"st": np.array([1, 0], np.int64), "en": np.array([3, 100], np.int64),
             "axs": np.array([1, 3], np.int64), "stp": np.array([1, 2], np.int64),
             "B": rng.standard_normal((5, 12)).astype(np.float32),
             "C": rng.standard_normal((1, 5)).astype(np.float32),
             "M": rng.standard_normal((5, 4)).astype(np.float32)}
    nodes = [helper.make_node("Identity", ["x"], ["i"]),
             helper.make_node("Slice", ["i", "st", "en", "axs", "stp"], ["sl"]),
             helper.make_node("Dropout", ["sl"], ["dr"]),
             helper.make_node("Flatten", ["dr"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "B", "C"], ["g"], transB=1, alpha=0.5, beta=2.0),
             helper.make_node("MatMul", ["g", "M"], ["y"])]
    proto = model(nodes, [1, 4, 3, 4], inits, opset=13)
    layer = _check(proto, rng.standard_normal((1, 4, 3, 4)))
    assert layer.output_shape == (4,)


@pytest.mark.parametrize("opset", [11, 17, 22, 28])
def test_opsets_11_through_28(opset):
    rng = np.random.default_rng(opset)
    w = rng.standard_normal((2, 1, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1]),
             helper.make_node("ConvTranspose", ["c", "w2"], ["t"], strides=[2]),
             helper.make_node("Flatten", ["t"], ["y"])]
    proto = model(nodes, [1, 1, 5], {"w": w, "w2": w.transpose(1, 0, 2).copy().reshape(
        1, 2, 3).repeat(1, 0).reshape(1, 2, 3).transpose(1, 0, 2).copy()}, opset=opset)
    x = rng.standard_normal((1, 1, 5))
    _check(proto, x, ort=opset <= 22 and _ort_accepts(proto, x))


def test_conv_layer_kind_and_docstring_shape():
    w = np.ones((1, 1, 3, 3), np.float32)
    proto = model([helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER",
                                    strides=[2, 2])], ["N", 1, 6, 6], {"w": w})
    layer = _check(proto, np.random.default_rng(0).standard_normal((1, 1, 6, 6)))
    assert isinstance(layer, cm.Conv)
    assert layer.spec.padding == ((1, 0), (1, 0))  # SAME_LOWER: the larger half first


def test_average_pool_dilations_and_wide_pads_match_onnxruntime():
    """Opset 19 dilations and pads over half the kernel: a depthwise sum and a divisor."""
    rng = np.random.default_rng(19)
    checked = 0
    while checked < 8:
        nd = int(rng.integers(1, 4))
        k = [int(v) for v in rng.integers(2, 4, nd)]
        attrs = {"kernel_shape": k, "strides": [int(v) for v in rng.integers(1, 3, nd)],
                 "dilations": [int(v) for v in rng.integers(1, 3, nd)],
                 "pads": [int(rng.integers(0, kk)) for kk in k * 2],
                 "count_include_pad": int(rng.integers(0, 2))}
        shape = [1, 2, *(int(v) for v in rng.integers(5, 8, nd))]
        proto = model([helper.make_node("AveragePool", ["x"], ["y"], **attrs)], shape, {},
                      opset=19)
        x = rng.standard_normal(shape)
        if not _ort_accepts(proto, x):
            continue
        _check(proto, x, ref=False)
        checked += 1


@pytest.mark.parametrize("n, k, s, d, out", [(3, 3, 2, 1, 6), (3, 3, 2, 1, 5), (3, 3, 2, 1, 4),
                                             (4, 2, 3, 1, 10), (3, 3, 1, 2, 5), (3, 3, 2, 1, 8)])
def test_conv_transpose_output_shape_without_pads_crops_as_the_specification(n, k, s, d, out):
    """``output_shape`` shorter than the full output, no ``pads``, ``auto_pad`` NOTSET:
    onnx.reference raises; the specification splits the total padding with the larger half
    first, and onnxruntime computes exactly that (it was cut at the end: a silent wrong
    answer). A longer ``output_shape`` (by less than the stride) extends the end."""
    pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(n * 100 + out)
    w = rng.standard_normal((1, 2, k, k)).astype(np.float32)
    attrs = {"strides": [s, s], "dilations": [d, d], "output_shape": [out, out]}
    proto = model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attrs)],
                  [1, 1, n, n], {"w": w})
    x = rng.standard_normal((1, 1, n, n)).astype(np.float32)
    want = runtime(proto, x)
    layer = cm.from_onnx(proto)
    assert layer.output_shape == want.shape[1:] == (2, out, out)
    assert np.abs(affine(layer, x[0].astype(np.float64)) - want.ravel()).max() < 1e-4


@pytest.mark.parametrize(("element", "kept"), [
    ("FLOAT", np.float32), ("DOUBLE", np.float64), ("FLOAT16", np.float32),
    ("BFLOAT16", np.float32)])
def test_layers_keep_the_models_float_type_and_linearize_reads_float64(element, kept):
    """Conv (weight, bias), Mul and Gemm by constants keep the model's type (float16 and
    bfloat16 widened exactly to float32, as from_torch widens bfloat16); BatchNormalization is
    float64 as cm.BatchNorm always is; cm.linearize reads every operand in float64. Values that
    every type holds exactly, so each model is the same map as its float64 twin."""
    from onnx import TensorProto

    kind = getattr(TensorProto, element)
    rng = np.random.default_rng(11)
    values = {"w": rng.integers(-4, 5, (2, 1, 3)) / 4, "b": rng.integers(-4, 5, 2) / 2,
              "k": np.array([[0.5], [-1.5]]), "g": rng.integers(-4, 5, (8, 3)) / 8,
              **{name: np.full(2, v) for name, v in (("s", 2.0), ("o", 0.5), ("m", 0.25),
                                                     ("v", 3.0))}}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "o", "m", "v"], ["n"]),
             helper.make_node("Mul", ["n", "k"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "g"], ["y"], alpha=0.5)]

    def build(kind):
        inits = [helper.make_tensor(name, kind, value.shape, value.ravel().tolist())
                 for name, value in values.items()]
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", kind, [1, 1, 4])],
                                  [helper.make_tensor_value_info("y", kind, None)], inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    proto = build(kind)
    layer = cm.from_onnx(proto)
    dtypes = {type(op).__name__: op.dtype for op in layer.chain()}
    assert dtypes == {"Conv": kept, "BatchNorm": np.float64, "Scale": kept, "Reshape": np.int64,
                      "Linear": kept}
    x = rng.standard_normal((1, 1, 4))
    want = reference(build(TensorProto.DOUBLE), x).ravel()
    assert np.abs(affine(layer, x[0]) - want).max() < 1e-12
    lin = cm.linearize(proto, x)
    assert {op.dtype for op in lin.layer.chain() if not isinstance(op, cm.Reshape)} \
        == {np.dtype(np.float64)}
    assert np.abs(lin(x[0]).ravel() - want).max() < 1e-12
