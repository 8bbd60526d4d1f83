"""The ONNX ``Resize`` translator (opsets 11 and later): :class:`~convmatrix.Resize` on one sample.

The authority is ``onnx.reference``; where onnxruntime departs from it, the layer follows the
reference (each pinned in tests/adapters/onnx/test_ops_resize.py):

- a fractional ``scale · n`` (``scales`` given): the reference maps coordinates by ``scale · n``
  in ``align_corners``, ``tf_crop_and_resize`` and ``pytorch_half_pixel`` (whose "one output"
  case means ``scale · n = 1``), onnxruntime by the rounded output length;
- a ``roi`` on an axis whose size is unchanged: the reference crops, onnxruntime ignores it;
- ``pytorch_half_pixel`` with ``antialias`` down to one output: the reference reads ``x = −0.5``,
  onnxruntime ``x = 0``.

The reference evaluates the cubic kernel in float32 (``cubic_coeff_a`` is a float32
attribute); the layer in float64, so cubic outputs agree to float32 rounding. Negative ``axes``
count from the back as the operator says (the reference's transposition fails on them).
Integer inputs (the reference rounds and saturates its output) are read as the linear map.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.onnx.node import OnnxNode
from convmatrix.layers.base import Layer
from convmatrix.layers.resize import Resize

__all__ = ["resize"]


def _constant(node: OnnxNode, index: int, name: str) -> np.ndarray | None:
    """Input ``index`` as an array, None when omitted or empty; refused when not constant."""
    if not node.has_input(index):
        return None
    value = node.constant_input(index)
    if value is None:
        raise node.refuse(f"`{name}` (input {index}, {node.inputs[index]!r}) must be a constant "
                          f"(an initializer or folded from constant shapes)")
    return None if value.size == 0 else value


def resize(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``Resize`` → :class:`~convmatrix.Resize` of one sample (the batch axis left alone)."""
    if node.opset < 11:
        raise node.refuse("Resize before opset 11 (its scales-only form) is not read; "
                          "re-export at opset 11 or later")
    roi = _constant(node, 1, "roi")
    scales = _constant(node, 2, "scales")
    sizes = _constant(node, 3, "sizes")
    if (scales is None) == (sizes is None):
        raise node.refuse("give exactly one of `scales` and `sizes` (non-empty constants)")
    ctm = node.attribute("coordinate_transformation_mode", "half_pixel")
    if ctm == "tf_half_pixel_for_nn":
        raise node.refuse("coordinate_transformation_mode 'tf_half_pixel_for_nn' (opsets "
                          "11-12) is not read: onnx.reference does not define it")
    options: dict[str, Any] = {
        "mode": node.attribute("mode", "nearest"),
        "coordinate_transformation_mode": ctm,
        "nearest_mode": node.attribute("nearest_mode", "round_prefer_floor"),
        "cubic_coeff_a": node.attribute("cubic_coeff_a", -0.75),
        "exclude_outside": node.attribute("exclude_outside", 0),
        "extrapolation_value": node.attribute("extrapolation_value", 0.0),
        "antialias": node.attribute("antialias", 0),
    }
    full_shape = (1, *input_shape)
    try:
        # the whole tensor first (a batch of 1): keep_aspect_ratio_policy and the axes count
        # the batch axis as ONNX does
        full = Resize(full_shape, scales=scales, sizes=sizes, roi=roi,
                      axes=node.attribute("axes"),
                      keep_aspect_ratio_policy=node.attribute("keep_aspect_ratio_policy",
                                                              "stretch"), **options)
    except ConvMatrixError as error:
        raise node.refuse(str(error)) from None
    if full.output_shape[0] != 1 or 0 in full.resized_axes:
        raise node.refuse(
            f"it resizes the batch axis (scale {full.scales[0]:g}, output size "
            f"{full.output_shape[0]}); convmatrix reads one sample, the batch axis must be "
            f"left alone")
    order = [a for a in full.order if a != 0]
    sample_roi = None
    if full.roi is not None and order:
        sample_roi = np.array([full.roi[a][0] for a in order] + [full.roi[a][1] for a in order])
    if not order:  # only the batch axis named, and left alone: the identity
        order = [1]
    return Resize(input_shape, scales=[full.scales[a] for a in order],
                  sizes=[full.output_shape[a] for a in order], roi=sample_roi,
                  axes=[a - 1 for a in order], **options)
