"""ONNX ``Transpose``, ``DepthToSpace`` (DCR, CRD) and ``SpaceToDepth`` → cm.Permute /
cm.DepthToSpace / cm.SpaceToDepth (issue 18), against ``onnx.reference``, onnxruntime and torch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import convmatrix as cm
from tests.adapters.onnx.onnx_single import reference, runtime, single_node, translate
from tests.helpers import rng as seeded


@pytest.mark.parametrize("shape", [(1, 5), (1, 2, 3), (1, 2, 3, 4), (1, 2, 1, 3, 2)])
@pytest.mark.parametrize("opset", [11, 21])
def test_transpose_matches_the_reference_and_onnxruntime(shape, opset):
    x = seeded("transpose", shape).standard_normal(shape).astype(np.float32)
    for rest in itertools.islice(itertools.permutations(range(1, len(shape))), 6):
        model = single_node("Transpose", shape, [], {"perm": [0, *rest]}, opset, np.float32)
        layer = translate(model)
        assert isinstance(layer, cm.Permute)
        expected = reference(model, x)
        np.testing.assert_array_equal(layer(x[0]), expected[0])
        np.testing.assert_array_equal(layer(x[0]), runtime(model, x)[0])
        y = seeded("transpose y", shape, rest).standard_normal(layer.output_shape)
        np.testing.assert_array_equal(layer.T(y), layer.matrix().T.dot(y.ravel()).reshape(
            shape[1:]))


def test_transpose_refuses_moving_the_batch_axis_and_the_default_perm():
    with pytest.raises(cm.ConvMatrixError, match=r"Transpose.*`perm` \(=\(1, 0, 2\)\) moves "
                                                 r"the batch axis"):
        translate(single_node("Transpose", (1, 2, 3), [], {"perm": [1, 0, 2]}, 13))
    with pytest.raises(cm.ConvMatrixError, match="moves the batch axis"):  # default: reversed
        translate(single_node("Transpose", (1, 2, 3), [], {}, 13))


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("shape, blocksize", [((1, 4, 2, 3), 2), ((1, 18, 1, 2), 3),
                                              ((1, 8, 3, 3), 2)])
def test_depth_to_space_matches_the_reference_and_onnxruntime(mode, shape, blocksize):
    model = single_node("DepthToSpace", shape, [], {"blocksize": blocksize, "mode": mode}, 13,
                        np.float32)
    x = seeded("d2s", shape, mode).standard_normal(shape).astype(np.float32)
    layer = translate(model)
    assert isinstance(layer, cm.DepthToSpace) and layer.mode == mode
    np.testing.assert_array_equal(layer(x[0]), reference(model, x)[0])
    np.testing.assert_array_equal(layer(x[0]), runtime(model, x)[0])
    back = single_node("SpaceToDepth", (1, *layer.output_shape), [], {"blocksize": blocksize},
                       13, np.float32)
    s2d = translate(back)
    y = reference(model, x)
    np.testing.assert_array_equal(s2d(y[0]), reference(back, y)[0])
    np.testing.assert_array_equal(s2d(y[0]), runtime(back, y)[0])
    if mode == "DCR":  # SpaceToDepth (DCR) undoes DepthToSpace (DCR): the inverse, the adjoint
        np.testing.assert_array_equal(s2d(y[0]), x[0])
    assert (layer.T.matrix() != layer.matrix().T).nnz == 0


def test_depth_to_space_crd_is_torch_pixel_shuffle():
    torch = pytest.importorskip("torch")
    x = seeded("crd torch").standard_normal((8, 2, 3))
    expected = torch.nn.functional.pixel_shuffle(torch.from_numpy(x)[None], 2)[0].numpy()
    np.testing.assert_array_equal(cm.DepthToSpace(x.shape, 2, "CRD")(x), expected)
    assert (cm.DepthToSpace(x.shape, 2, "CRD").matrix()
            != cm.PixelShuffle(x.shape, 2).matrix()).nnz == 0
    unshuffled = torch.nn.functional.pixel_unshuffle(torch.from_numpy(expected)[None], 2)[0]
    np.testing.assert_array_equal(cm.SpaceToDepth(expected.shape, 2, "CRD")(expected),
                                  unshuffled.numpy())


@pytest.mark.parametrize("op, shape, attributes, pattern", [
    ("DepthToSpace", (1, 3, 2, 2), {"blocksize": 2}, "divisible by `blocksize`"),
    ("DepthToSpace", (1, 4, 2, 2), {"blocksize": 2, "mode": "XYZ"}, "`mode`"),
    ("SpaceToDepth", (1, 1, 3, 2), {"blocksize": 2}, "divisible by `blocksize`"),
    ("SpaceToDepth", (1, 1, 4), {"blocksize": 2}, r"\(N, C, H, W\)"),
])
def test_bad_layout_nodes_are_refused_by_name(op, shape, attributes, pattern):
    with pytest.raises(cm.ConvMatrixError, match=f"ONNX node .*{op}.*{pattern}"):
        translate(single_node(op, shape, [], attributes, 13))
