"""ONNX ``Pad`` → cm.NumpyPad (issue 18): constant (the value is the offset), reflect, edge,
wrap; pads as attribute (opset 2) or input (11+), ``axes`` (18+), negative pads (crops) —
against ``onnx.reference`` and, for negative pads (which the reference refuses), onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from tests.adapters.onnx.onnx_single import reference, runtime, single_node, translate
from tests.helpers import rng as seeded

MODES = ["constant", "reflect", "edge", "wrap"]


def pad_model(shape, pads, mode, opset, *, value=None, axes=None, dtype=np.float64):
    if opset < 11:
        attributes = {"mode": mode, "pads": list(pads)}
        if value is not None:
            attributes["value"] = float(value)
        return single_node("Pad", shape, [], attributes, opset, dtype)
    constants = [("pads", np.asarray(pads, np.int64)),
                 ("value", np.asarray(value, dtype)) if value is not None else ("", None),
                 ("axes", np.asarray(axes, np.int64)) if axes is not None else ("", None)]
    return single_node("Pad", shape, constants, {"mode": mode}, opset, dtype)


@pytest.mark.parametrize("key", range(48))
def test_pad_matches_the_reference(key):
    rng = seeded("pad", key)
    mode = MODES[key % 4]
    opset = [2, 11, 13, 18, 19, 21][key % 6]
    shape = (1, *(int(v) for v in rng.integers(1, 5, int(rng.integers(1, 4)))))
    rank = len(shape)
    axes = None
    named = list(range(1, rank))
    if opset >= 18 and rng.random() < 0.5:
        named = [int(a) for a in rng.permutation(range(1, rank))[:int(rng.integers(1, rank))]]
        axes = [a - rank if rng.random() < 0.5 else a for a in named]
    pairs = {a: [int(v) for v in rng.integers(0, 6, 2)] for a in named}
    if axes is None:
        pairs[0] = [0, 0]
        named = list(range(rank))
    pads = [pairs[a][0] for a in named] + [pairs[a][1] for a in named]
    value = float(rng.choice([0.0, 1.5])) if mode == "constant" and rng.random() < 0.7 else None
    model = pad_model(shape, pads, mode, opset, value=value, axes=axes)
    x = rng.standard_normal(shape)
    expected = reference(model, x)
    layer = translate(model)
    assert isinstance(layer, cm.NumpyPad)
    np.testing.assert_array_equal(layer(x[0]), expected[0])
    np.testing.assert_array_equal(layer.matrix() @ x.ravel() + layer.offset(), expected.ravel())
    np.testing.assert_array_equal(layer.offset(), reference(model, np.zeros(shape)).ravel())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pads", [[0, 0, -1, 0, 0, 0, 0, 2], [0, 0, -2, 1, 0, 0, 1, -1],
                                  [0, 1, 0, -2, 0, -1, 0, 2]])
def test_negative_pads_crop_first_as_onnxruntime(mode, pads):
    shape = (1, 3, 4, 5)
    model = pad_model(shape, pads, mode, 13, dtype=np.float32)
    x = seeded("negative pads").standard_normal(shape).astype(np.float32)
    with pytest.raises(ValueError, match="negative"):
        reference(model, x)  # numpy.pad (the reference) refuses negative widths
    np.testing.assert_array_equal(translate(model)(x[0]), runtime(model, x)[0])


@pytest.mark.parametrize("pads, mode, opset, pattern", [
    ([1, 0, 0, 0, 0, 0], "constant", 13, "pads the batch axis"),
    ([1, 1], "constant", 13, r"`pads` .*must hold 2 × 3 ints"),
    ([0, 0, 1, 0, 0, 1], "symmetric", 13, "`mode`"),
    ([0, 0, -3, 0, 0, 0], "edge", 13, "crops axis 1"),
])
def test_bad_pad_nodes_are_refused_by_name(pads, mode, opset, pattern):
    model = pad_model((1, 3, 2), pads, mode, opset)
    with pytest.raises(cm.ConvMatrixError, match=f"ONNX node .*Pad.*{pattern}"):
        translate(model)
