"""The kinds ONNX needs (issue 18): cm.Resize, cm.NumpyPad, cm.DepthToSpace, cm.SpaceToDepth —
against numpy (``numpy.pad``, a dense loop for the depth/space moves), the adjoint dot test,
the matrix-free operator against the matrix, and bad input refused by name. (Their ONNX
semantics are checked against onnx.reference in tests/adapters/onnx/test_ops_*.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng as seeded


def check_linear_map(layer, key):
    """matrix = apply, adjoint = matrix.T, operator both ways, the dot test."""
    x = seeded("kind x", key).standard_normal(layer.input_shape)
    y = seeded("kind y", key).standard_normal(layer.output_shape)
    matrix = layer.matrix()
    np.testing.assert_allclose(matrix @ x.ravel() + layer.offset(), layer(x).ravel(), atol=1e-12)
    np.testing.assert_allclose(layer.T(y).ravel(), matrix.T @ y.ravel(), atol=1e-12)
    operator = layer.operator()
    np.testing.assert_allclose(operator.matvec(x.ravel()), matrix @ x.ravel(), atol=1e-12)
    np.testing.assert_allclose(operator.rmatvec(y.ravel()), matrix.T @ y.ravel(), atol=1e-12)
    assert np.isclose(y.ravel() @ (matrix @ x.ravel()), (matrix.T @ y.ravel()) @ x.ravel())


@pytest.mark.parametrize("kwargs", [
    {"scales": (2.0, 0.5), "axes": (1, 2), "mode": "linear"},
    {"sizes": (3, 7), "axes": (2, 1), "mode": "cubic", "exclude_outside": True},
    {"scales": (1, 0.4, 0.6), "mode": "cubic", "antialias": True},
    {"sizes": (5,), "axes": (-1,), "mode": "nearest", "nearest_mode": "ceil",
     "coordinate_transformation_mode": "asymmetric"},
    {"sizes": (6, 4), "axes": (1, 2), "mode": "linear", "roi": (0.2, -0.3, 0.9, 1.2),
     "coordinate_transformation_mode": "tf_crop_and_resize", "extrapolation_value": 2.0},
])
def test_resize_is_a_consistent_linear_map(kwargs):
    layer = cm.Resize((2, 5, 4), **kwargs)
    check_linear_map(layer, repr(kwargs))
    blocks = list(layer.matrix_blocks(7))
    assert (sum(b.shape[0] for b in blocks), blocks[0].shape[1]) == layer.matrix_shape


def test_resize_nearest_is_an_integer_selection_and_repr():
    layer = cm.Resize((1, 3, 3), scales=(2, 2), axes=(1, 2))
    assert layer.dtype == np.int64 and layer.matrix().sum(axis=1).tolist() == [1] * 36
    x = np.arange(9).reshape(1, 3, 3)
    np.testing.assert_array_equal(layer(x), x.repeat(2, axis=1).repeat(2, axis=2))
    assert repr(layer) == "Resize(1×3×3 → 1×6×6, nearest, half_pixel)"
    assert layer.resized_axes == (1, 2)


def test_resize_keep_aspect_ratio_policy():
    smaller = cm.Resize((1, 4, 6), sizes=(8, 18), axes=(1, 2),
                        keep_aspect_ratio_policy="not_larger")
    larger = cm.Resize((1, 4, 6), sizes=(8, 18), axes=(1, 2),
                       keep_aspect_ratio_policy="not_smaller")
    assert smaller.output_shape == (1, 8, 12) and larger.output_shape == (1, 12, 18)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"scales": (2,), "mode": "area"}, r"`mode` \(='area'\) must be one of"),
    ({"scales": (2,), "coordinate_transformation_mode": "tf_half_pixel_for_nn"},
     "`coordinate_transformation_mode`"),
    ({"scales": (2,), "nearest_mode": "round"}, "`nearest_mode`"),
    ({"scales": (2, 2)}, r"`scales` .* must hold 1 numbers"),
    ({"scales": (-2,)}, "must hold positive numbers"),
    ({"sizes": (0,)}, r"`sizes` \(=0\) must be an int >= 1"),
    ({}, "give `scales` or `sizes`"),
    ({"scales": (2,), "axes": (0, 0)}, "distinct axes"),
    ({"scales": (2,), "axes": (3,)}, r"`axes` .* must hold axes of the sample"),
    ({"scales": (2,), "keep_aspect_ratio_policy": "not_larger"}, "applies to `sizes` alone"),
    ({"scales": (2,), "mode": "linear", "cubic_coeff_a": float("nan")}, "`cubic_coeff_a`"),
    ({"scales": (2,), "antialias": True}, "`antialias`"),
    ({"scales": (0.1,)}, "empty output"),
    ({"scales": (2,), "coordinate_transformation_mode": "tf_crop_and_resize"}, "`roi` must"),
    ({"scales": (2,), "roi": (0, 1, 2), "coordinate_transformation_mode": "tf_crop_and_resize"},
     "`roi` .* must hold 2 numbers"),
])
def test_bad_resize_arguments(kwargs, pattern):
    with pytest.raises(cm.ConvMatrixError, match=pattern):
        cm.Resize((4,), **kwargs)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_numpy_pad_matches_numpy(mode):
    for key in range(12):
        rng = seeded("numpy pad", mode, key)
        shape = tuple(int(v) for v in rng.integers(1, 5, int(rng.integers(1, 4))))
        widths = tuple((int(a), int(b)) for a, b in rng.integers(0, 8, (len(shape), 2)))
        x = rng.standard_normal(shape)
        kwargs = {"constant_values": 2.5} if mode == "constant" else {}
        layer = cm.NumpyPad(shape, widths, mode, **({"value": 2.5} if mode == "constant" else {}))
        np.testing.assert_array_equal(layer(x), np.pad(x, widths, mode=mode, **kwargs))
        check_linear_map(layer, (mode, key))


def test_numpy_pad_crops_first_then_pads():
    x = np.arange(1, 6)
    np.testing.assert_array_equal(cm.NumpyPad((5,), ((-2, 4),), "edge")(x), [3, 4, 5, 5, 5, 5, 5])
    np.testing.assert_array_equal(cm.NumpyPad((5,), ((-2, 4),), "wrap")(x), [3, 4, 5, 3, 4, 5, 3])
    np.testing.assert_array_equal(cm.NumpyPad((5,), ((2, -3),))(x), [0, 0, 1, 2])


@pytest.mark.parametrize("build, pattern", [
    (lambda: cm.NumpyPad((3,), ((1, 1),), "symmetric"), "`mode`"),
    (lambda: cm.NumpyPad((3,), ((1, 1), (1, 1))), "one .* pair of ints per axis"),
    (lambda: cm.NumpyPad((3,), (1, 1)), "one .* pair of ints per axis"),
    (lambda: cm.NumpyPad((3,), ((-2, -2),)), "crops axis 0"),
    (lambda: cm.NumpyPad((3,), ((-3, 1),), "reflect"), "before padding it in mode 'reflect'"),
    (lambda: cm.NumpyPad((3,), ((1, 1),), "edge", value=1), "`value`"),
    (lambda: cm.DepthToSpace((3, 2, 2), 2), "divisible by `blocksize`"),
    (lambda: cm.DepthToSpace((4, 2, 2), 2, "dcr"), "`mode`"),
    (lambda: cm.SpaceToDepth((1, 3, 2), 2), "divisible by `blocksize`"),
    (lambda: cm.SpaceToDepth((1, 4), 2), "2 spatial axes"),
])
def test_bad_pad_and_block_arguments(build, pattern):
    with pytest.raises(cm.ConvMatrixError, match=pattern):
        build()


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_against_a_dense_loop(mode):
    b, c, h, w = 2, 3, 2, 3
    x = seeded("d2s loop", mode).standard_normal((c * b * b, h, w))
    expected = np.empty((c, h * b, w * b))
    for ch, i, j, hh, ww in np.ndindex(c, b, b, h, w):
        source = (i * b + j) * c + ch if mode == "DCR" else ch * b * b + i * b + j
        expected[ch, hh * b + i, ww * b + j] = x[source, hh, ww]
    layer = cm.DepthToSpace(x.shape, b, mode)
    np.testing.assert_array_equal(layer(x), expected)
    np.testing.assert_array_equal(cm.SpaceToDepth(expected.shape, b, mode)(expected), x)
    check_linear_map(layer, mode)
    assert layer.T.T is layer and isinstance(layer.T, cm.SpaceToDepth)
