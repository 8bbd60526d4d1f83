"""ONNX ``Resize`` → cm.Resize (issue 18), against ``onnx.reference`` (the authority) on random
single-node models (ranks, scales up and down, sizes, every mode and coordinate transformation,
antialias, axes, keep_aspect_ratio_policy, opsets 11-28), and against onnxruntime where the two
agree; the differences are pinned below with what onnxruntime does instead.
"""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from tests.adapters.onnx.onnx_single import reference, runtime, single_node, translate
from tests.helpers import rng as seeded

MODES = ["nearest", "linear", "cubic"]
TRANSFORMS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
              "asymmetric", "tf_crop_and_resize"]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
SCALES = [0.3, 0.5, 0.6, 0.75, 1.0, 1.5, 1.7, 2.0, 2.5, 3.0]


def resize_model(shape, attributes, *, roi=None, scales=None, sizes=None, opset=19,
                 dtype=np.float64):
    """``Resize(X, roi, scales, sizes)`` with the omitted inputs left out (opset 11/12: roi and
    scales present, possibly empty)."""
    constants = [("roi", np.asarray(roi, np.float32)) if roi is not None
                 else ("roi", np.zeros(0, np.float32)) if opset < 13 else ("", None),
                 ("scales", np.asarray(scales, np.float32)) if scales is not None
                 else ("scales", np.zeros(0, np.float32)) if opset < 13 else ("", None),
                 ("sizes", np.asarray(sizes, np.int64)) if sizes is not None else ("", None)]
    return single_node("Resize", shape, constants, attributes, opset, dtype)


def random_case(key):
    """One random Resize: (shape with a batch of 1, attributes, roi, scales, sizes, opset)."""
    rng = seeded("resize case", key)
    spatial = int(rng.integers(1, 4))
    shape = (1, int(rng.integers(1, 3)), *(int(v) for v in rng.integers(1, 7, spatial)))
    rank = len(shape)
    mode = str(rng.choice(MODES))
    opset = int(rng.choice([11, 13, 18, 19, 21, 28]))
    transforms = [t for t in TRANSFORMS if opset >= 19 or t != "half_pixel_symmetric"]
    attributes = {"mode": mode, "coordinate_transformation_mode": str(rng.choice(transforms))}
    if mode == "nearest":
        attributes["nearest_mode"] = str(rng.choice(NEAREST))
    if mode == "cubic":
        attributes["cubic_coeff_a"] = float(rng.choice([-0.75, -0.5, -0.6]))
    if rng.random() < 0.3:
        attributes["exclude_outside"] = 1
    axes = list(range(rank))
    if opset >= 18:
        if mode != "nearest" and rng.random() < 0.4:
            attributes["antialias"] = 1
        if rng.random() < 0.4:  # a subset of the sample's axes, in any order
            count = int(rng.integers(1, rank))
            axes = [int(a) + 1 for a in rng.permutation(rank - 1)[:count]]
            attributes["axes"] = axes
    roi = scales = sizes = None
    if attributes["coordinate_transformation_mode"] == "tf_crop_and_resize":
        starts = rng.uniform(-0.3, 0.6, len(axes))
        ends = starts + rng.uniform(0.1, 1.0, len(axes))
        if "axes" not in attributes:  # the batch axis: the whole of it
            starts[0], ends[0] = 0.0, 1.0
        roi = np.concatenate([starts, ends]).astype(np.float32)
        attributes["extrapolation_value"] = float(rng.choice([0.0, -1.5, 2.0]))
    if rng.random() < 0.5:
        scales = rng.choice(SCALES, len(axes)).astype(np.float32)
        if "axes" not in attributes:
            scales[0] = 1.0
    else:
        sizes = np.array([max(1, int(shape[a] * rng.uniform(0.3, 3.0))) for a in axes])
        if "axes" not in attributes:
            sizes[0] = 1
        elif opset >= 18 and rng.random() < 0.4:
            attributes["keep_aspect_ratio_policy"] = str(rng.choice(["not_larger",
                                                                     "not_smaller"]))
    return shape, attributes, roi, scales, sizes, opset


@pytest.mark.parametrize("key", range(160))
def test_resize_matches_the_reference(key):
    shape, attributes, roi, scales, sizes, opset = random_case(key)
    model = resize_model(shape, attributes, roi=roi, scales=scales, sizes=sizes, opset=opset)
    x = seeded("resize x", key).standard_normal(shape)
    expected = reference(model, x)
    if expected.size == 0:
        with pytest.raises(cm.ConvMatrixError, match="empty output"):
            translate(model)
        return
    layer = translate(model)
    assert isinstance(layer, cm.Resize)
    assert (1, *layer.output_shape) == expected.shape
    # the reference evaluates the cubic kernel in float32 (cubic_coeff_a is a float32
    # attribute): agreement to float32 rounding there, to float64 rounding elsewhere
    tolerance = 1e-5 if attributes["mode"] == "cubic" else 1e-10
    np.testing.assert_allclose(layer(x[0]), expected[0], rtol=tolerance, atol=tolerance)
    matrix = layer.matrix()
    np.testing.assert_allclose(matrix @ x.ravel() + layer.offset(), expected.ravel(),
                               rtol=tolerance, atol=tolerance)
    y = seeded("resize y", key).standard_normal(layer.output_shape)
    np.testing.assert_allclose(layer.T(y).ravel(), matrix.T @ y.ravel(), atol=1e-12)


def _runtime_case(key):
    """A Resize onnxruntime runs (4-D, outer scales 1) and computes as the reference does."""
    rng = seeded("resize runtime", key)
    shape = (1, int(rng.integers(1, 3)), int(rng.integers(2, 7)), int(rng.integers(2, 7)))
    mode = str(rng.choice(MODES))
    transform = str(rng.choice(TRANSFORMS[:5]))
    attributes = {"mode": mode, "coordinate_transformation_mode": transform}
    if mode == "nearest":
        attributes["nearest_mode"] = str(rng.choice(NEAREST))
    antialias = mode != "nearest" and rng.random() < 0.4
    if antialias:
        attributes["antialias"] = 1
    if mode == "cubic" and rng.random() < 0.3:
        attributes["exclude_outside"] = 1
    # sizes: the output length is scale · n exactly (onnxruntime's rounded length agrees)
    low = 1.0 if mode == "cubic" and not antialias else 0.4
    sizes = [1, shape[1], *(max(1, int(n * rng.uniform(low, 2.5))) for n in shape[2:])]
    return shape, attributes, sizes


@pytest.mark.parametrize("key", range(40))
def test_resize_matches_onnxruntime_where_they_agree(key):
    shape, attributes, sizes = _runtime_case(key)
    model = resize_model(shape, attributes, sizes=sizes, opset=19, dtype=np.float32)
    x = seeded("resize runtime x", key).standard_normal(shape).astype(np.float32)
    layer = translate(model)
    np.testing.assert_allclose(layer(x[0].astype(np.float64)), runtime(model, x)[0],
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("transform, width, scale, length", [
    ("align_corners", 6, 1.7, 10), ("tf_crop_and_resize", 6, 1.7, 10),
    ("tf_crop_and_resize", 6, 0.6, 3), ("pytorch_half_pixel", 4, 0.3, 1)])
def test_a_fractional_length_follows_the_reference_not_onnxruntime(transform, width, scale,
                                                                    length):
    """scale · n fractional (6 · 1.7 = 10.2 → 10 outputs): the reference maps coordinates by
    scale · n (align_corners: (n − 1)/(10.2 − 1); pytorch_half_pixel: "one output" means
    scale · n = 1), onnxruntime by the rounded length — which is the same resize given by
    ``sizes``."""
    shape = (1, 1, 2, width)
    attributes = {"mode": "linear", "coordinate_transformation_mode": transform}
    roi = [0, 0, 0, 0, 1, 1, 1, 1] if transform == "tf_crop_and_resize" else None
    by_scales = resize_model(shape, attributes, roi=roi, scales=[1, 1, 1, scale],
                             dtype=np.float32)
    by_sizes = resize_model(shape, attributes, roi=roi, sizes=[1, 1, 2, length],
                            dtype=np.float32)
    x = np.arange(2 * width, dtype=np.float32).reshape(shape)
    ours = translate(by_scales)(x[0].astype(np.float64))
    assert ours.shape == (1, 2, length)
    np.testing.assert_allclose(ours, reference(by_scales, x)[0], rtol=1e-6)
    if transform == "align_corners":
        assert ours[0, 0, -1] == pytest.approx(5 * 9 / (6 * np.float32(1.7) - 1), rel=1e-6)
    onnxruntime = runtime(by_scales, x)[0]
    assert np.abs(onnxruntime - ours).max() > 0.1
    np.testing.assert_allclose(onnxruntime, translate(by_sizes)(x[0].astype(np.float64)),
                               rtol=1e-5, atol=1e-6)


def test_a_roi_on_an_unchanged_axis_crops_in_the_reference_onnxruntime_ignores_it():
    shape = (1, 1, 1, 3)
    attributes = {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}
    model = resize_model(shape, attributes, roi=[0, 0, 0, 0.25, 1, 1, 1, 0.75],
                         sizes=[1, 1, 1, 3], dtype=np.float32)
    x = np.array([[[[1.0, 2.0, 3.0]]]], dtype=np.float32)
    layer = translate(model)
    np.testing.assert_allclose(layer(x[0]), [[[1.5, 2.0, 2.5]]])
    np.testing.assert_allclose(reference(model, x)[0], [[[1.5, 2.0, 2.5]]])
    np.testing.assert_allclose(runtime(model, x)[0], [[[1.0, 2.0, 3.0]]])


def test_negative_axes_as_the_spec_says_the_reference_fails_on_them():
    shape = (1, 2, 3, 4)
    attributes = {"mode": "linear", "axes": [-1, -2]}
    model = resize_model(shape, attributes, scales=[2.0, 1.5], opset=18, dtype=np.float32)
    x = seeded("negative axes").standard_normal(shape).astype(np.float32)
    with pytest.raises(ValueError, match="axes don't match array"):
        reference(model, x)  # onnx.reference transposes by the negative axes as given
    normalised = resize_model(shape, dict(attributes, axes=[3, 2]), scales=[2.0, 1.5],
                              opset=18, dtype=np.float32)
    ours = translate(model)(x[0].astype(np.float64))
    np.testing.assert_allclose(ours, reference(normalised, x)[0], rtol=1e-6)
    np.testing.assert_allclose(ours, runtime(model, x)[0], rtol=1e-5, atol=1e-6)


def test_extrapolation_value_is_the_offset():
    shape = (1, 1, 3, 3)
    attributes = {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
                  "extrapolation_value": 7.0}
    model = resize_model(shape, attributes, roi=[0, 0, -0.5, 0.5, 1, 1, 0.5, 1.5],
                         sizes=[1, 1, 3, 3])
    layer = translate(model)
    zeros = np.zeros(shape)
    np.testing.assert_allclose(layer.offset(), reference(model, zeros).ravel())
    assert set(np.unique(layer.offset())) == {0.0, 7.0}


@pytest.mark.parametrize("attributes, inputs, opset, pattern", [
    ({}, {"scales": [2.0, 1, 1, 1]}, 13, "resizes the batch axis"),
    ({"mode": "linear", "keep_aspect_ratio_policy": "not_smaller"}, {"sizes": [1, 1, 8, 8]}, 18,
     "resizes the batch axis"),
    ({}, {"scales": [1, 1, 2.0, 2.0]}, 10, "before opset 11"),
    ({"coordinate_transformation_mode": "tf_half_pixel_for_nn"}, {"scales": [1, 1, 2, 2]}, 11,
     "tf_half_pixel_for_nn"),
    ({"antialias": 1}, {"scales": [1, 1, 0.5, 0.5]}, 18, "`antialias`"),
    ({"mode": "area"}, {"scales": [1, 1, 2, 2]}, 13, "`mode`"),
    ({}, {"scales": [1, 1, 2, 2], "sizes": [1, 1, 8, 8]}, 13, "exactly one of"),
    ({"coordinate_transformation_mode": "tf_crop_and_resize"}, {"scales": [1, 1, 2, 2]}, 13,
     "`roi` must be given"),
])
def test_bad_resize_nodes_are_refused_by_name(attributes, inputs, opset, pattern):
    model = resize_model((1, 1, 4, 4), attributes, opset=max(opset, 11), **inputs)
    if opset == 10:
        model.opset_import[0].version = 10
    with pytest.raises(cm.ConvMatrixError, match=f"ONNX node .*Resize.*{pattern}"):
        translate(model)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_pytorch_half_pixel_antialias_to_length_one_onnxruntime_reads_zero(mode):
    """Downscaling an axis to one output: pytorch_half_pixel reads x = −0.5 (the reference and
    the spec); onnxruntime's antialias path reads x = 0, as asymmetric does."""
    shape = (1, 1, 4, 3)  # the last axis is left alone
    attributes = {"mode": mode, "antialias": 1,
                  "coordinate_transformation_mode": "pytorch_half_pixel"}
    model = resize_model(shape, attributes, sizes=[1, 1, 1, 3], opset=18, dtype=np.float32)
    centred = resize_model(shape, dict(attributes, coordinate_transformation_mode="asymmetric"),
                           sizes=[1, 1, 1, 3], opset=18, dtype=np.float32)
    x = seeded("pytorch_half_pixel antialias").standard_normal(shape).astype(np.float32)
    ours = translate(model)(x[0].astype(np.float64))
    np.testing.assert_allclose(ours, reference(model, x)[0], rtol=1e-5, atol=1e-6)
    onnxruntime = runtime(model, x)[0]
    assert np.abs(onnxruntime - ours).max() > 1e-3
    np.testing.assert_allclose(onnxruntime, translate(centred)(x[0].astype(np.float64)),
                               rtol=1e-4, atol=1e-5)
