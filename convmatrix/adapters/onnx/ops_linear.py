"""ONNX element-wise, normalisation, dense and shape operators on one traced input.

``BatchNormalization`` (inference), ``Add``/``Sub``/``Mul``/``Div`` by a constant, ``Neg``,
``Gemm``/``MatMul`` with constant weights, ``ReduceMean``/``ReduceSum`` over spatial axes,
``Reshape``/``Flatten``/``Squeeze``/``Unsqueeze`` (C-order reshapes of one sample, the batch
axis of 1 kept), ``Slice`` of a traced tensor, ``Cast`` to a float type. Every shape rule sees
the full tensor ``(1, *sample)``: the batch axis must stay first and of size 1.
"""

from __future__ import annotations

import math

import numpy as np

from convmatrix.adapters.onnx.node import OnnxNode
from convmatrix.layers.adaptive import GlobalAvgPool
from convmatrix.layers.base import Layer
from convmatrix.layers.identity import Identity
from convmatrix.layers.linear import Linear
from convmatrix.layers.norm import BatchNorm
from convmatrix.layers.reshape import Reshape, Slice
from convmatrix.layers.scale import Scale
from convmatrix.layers.sequential import Sequential

__all__ = ["arithmetic", "batch_normalization", "cast", "flatten", "gemm", "matmul", "neg",
           "reduce", "reshape", "sample_constant", "slice_", "squeeze", "unsqueeze"]

_FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def sample_constant(node: OnnxNode, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A constant operand as an array broadcasting to one sample (its batch axis removed)."""
    array = node.real(value, "a constant operand")
    full = (1, *shape)
    try:
        joint = np.broadcast_shapes(array.shape, full)
    except ValueError:
        raise node.refuse(f"the constant {array.shape} does not broadcast to the input "
                          f"{full}") from None
    if joint != full:
        raise node.refuse(f"the constant {array.shape} widens the input {full} to {joint}: "
                          f"not a map of one sample")
    if array.ndim == len(full):
        array = array[0]
    return array


def _traced_position(node: OnnxNode) -> int:
    for i in range(len(node.inputs)):
        if node.has_input(i) and node.constant_input(i) is None:
            return i
    raise node.refuse("no input depends on the network's input")  # pragma: no cover


def arithmetic(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``Add``/``Sub``/``Mul``/``Div`` of the traced input and one constant."""
    position = _traced_position(node)
    other = node.constant_input(1 - position)
    if other is None:
        raise node.refuse("expected one constant operand")  # pragma: no cover - reader checks
    constant = sample_constant(node, other, input_shape)
    op = node.op_type
    if op == "Add":
        return Scale(input_shape, 1.0, constant)
    if op == "Sub":
        return Scale(input_shape, 1.0, -constant) if position == 0 else \
            Scale(input_shape, -1.0, constant)
    if op == "Mul":
        return Scale(input_shape, constant)
    if position == 1:
        raise node.refuse("divides a constant by the input: not an affine map (use "
                          "cm.linearize for its Jacobian at a point)")
    if other.dtype.kind in "biu":
        raise node.refuse("integer division is not linear")
    if np.any(constant == 0):
        raise node.refuse("divides by a constant holding zeros")
    return Scale(input_shape, 1.0 / constant)


def neg(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``Neg``: ``−x``."""
    return Scale(input_shape, -1.0)


def cast(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``Cast`` to a floating type, read as the identity; other types are refused."""
    to = node.attribute("to")
    if to not in _FLOAT_TYPES:
        raise node.refuse(f"casts the input to type {to} (not a floating type): rounding is "
                          f"not linear")
    return Identity(input_shape)


def batch_normalization(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``BatchNormalization`` in inference mode: a per-channel scale and shift."""
    if node.attribute("training_mode", 0):
        raise node.refuse("`training_mode` is 1: it normalises by the batch's statistics; "
                          "export the model in eval mode")
    if sum(1 for name in node.outputs if name) > 1:
        raise node.refuse("has running-statistics outputs (training mode)")
    parts = []
    for index, what in ((1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")):
        value = node.constant_input(index)
        if value is None:
            raise node.refuse(f"input {index} ({what}) must be a constant")
        parts.append(node.real(value, f"input {index} ({what})").reshape(-1))
    scale, bias, mean, var = parts
    eps = float(node.attribute("epsilon", 1e-5))
    if len(input_shape) < 1:
        raise node.refuse("the input has no channel axis")
    return BatchNorm(input_shape, mean, var, scale, bias, eps=eps)


def gemm(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``Gemm``: ``alpha · A · B' + beta · C`` with ``A`` traced, ``B``/``C`` constant."""
    b = node.constant_input(1)
    if node.constant_input(0) is not None or b is None:
        raise node.refuse("reads A from the network and B as a constant only")
    if len(input_shape) != 1:
        raise node.refuse(f"A has sample shape {input_shape}; Gemm takes (1, K)")
    if node.attribute("transA", 0):
        raise node.refuse("`transA` = 1 would move the batch axis")
    b = node.real(b, "input 1 (B)")
    if node.attribute("transB", 0):
        b = b.T
    alpha = float(node.attribute("alpha", 1.0))
    beta = float(node.attribute("beta", 1.0))
    if b.ndim != 2 or b.shape[0] != input_shape[0]:
        raise node.refuse(f"B {b.shape} does not take A's {input_shape[0]} features")
    bias = None
    if node.has_input(2):
        c = node.constant_input(2)
        if c is None:
            raise node.refuse("input 2 (C) must be a constant")
        bias = beta * sample_constant(node, np.asarray(c), (b.shape[1],))
        bias = np.broadcast_to(bias, (b.shape[1],)).copy()
    return Linear(alpha * b.T, bias)


def matmul(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``MatMul`` of the traced input ``(1, K)`` by a constant ``(K, N)``."""
    b = node.constant_input(1)
    if b is None or node.constant_input(0) is not None:
        raise node.refuse("reads the network's tensor times a constant matrix only")
    b = node.real(b, "input 1 (B)")
    if len(input_shape) != 1 or b.ndim != 2 or b.shape[0] != input_shape[0]:
        raise node.refuse(f"multiplies a sample of shape {input_shape} by {b.shape}: "
                          f"convmatrix reads (1, K) @ (K, N)")
    return Linear(b.T)


def _reshaped(node: OnnxNode, input_shape: tuple[int, ...], full: tuple[int, ...]) -> Layer:
    if not full or full[0] != 1:
        raise node.refuse(f"reshapes (1, {', '.join(map(str, input_shape))}) to "
                          f"{full}: the batch axis of 1 must stay first")
    shape = full[1:]
    if math.prod(shape) != math.prod(input_shape):  # pragma: no cover - numpy checked it
        raise node.refuse(f"changes the size: {input_shape} → {shape}")
    if shape == input_shape:
        return Identity(input_shape)
    if not shape:
        shape = (1,)
    return Reshape(input_shape, shape)


def reshape(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``Reshape`` with a constant shape (``0`` copies a dimension unless ``allowzero``)."""
    target = node.constant_input(1)
    if target is None:
        raise node.refuse("the target shape must be a constant (or folded shape arithmetic)")
    full_in = (1, *input_shape)
    dims = [int(v) for v in np.asarray(target).reshape(-1)]
    if not node.attribute("allowzero", 0):
        dims = [full_in[i] if v == 0 and i < len(full_in) else v for i, v in enumerate(dims)]
    try:
        full = np.empty(full_in, dtype=np.int8).reshape(dims).shape
    except ValueError as error:
        raise node.refuse(f"cannot reshape {full_in} to {dims}: {error}") from None
    return _reshaped(node, input_shape, tuple(full))


def flatten(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``Flatten`` at ``axis`` (1 keeps the batch axis)."""
    full_in = (1, *input_shape)
    axis = int(node.attribute("axis", 1))
    if not -len(full_in) <= axis <= len(full_in):
        raise node.refuse(f"attribute `axis` (={axis}) is out of range for rank {len(full_in)}")
    if axis < 0:
        axis += len(full_in)
    full = (math.prod(full_in[:axis]), math.prod(full_in[axis:]))
    return _reshaped(node, input_shape, full)


def _axes(node: OnnxNode, index: int) -> list[int] | None:
    axes = node.attribute("axes")
    if axes is None and node.has_input(index):
        value = node.constant_input(index)
        if value is None:
            raise node.refuse(f"input {index} (axes) must be a constant")
        axes = value.reshape(-1).tolist()
    return None if axes is None else [int(v) for v in axes]


def squeeze(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``Squeeze`` (axes as attribute before opset 13, as input from 13)."""
    full_in = (1, *input_shape)
    axes = _axes(node, 1)
    if axes is None:
        axes = [i for i, n in enumerate(full_in) if n == 1 and i > 0]
    axes = [a % len(full_in) for a in axes]
    if 0 in axes:
        raise node.refuse("squeezes the batch axis")
    if any(full_in[a] != 1 for a in axes):
        raise node.refuse(f"squeezes axes {axes} of {full_in}, not all of size 1")
    full = tuple(n for i, n in enumerate(full_in) if i not in axes)
    return _reshaped(node, input_shape, full)


def unsqueeze(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``Unsqueeze`` (axes as attribute before opset 13, as input from 13)."""
    full_in = (1, *input_shape)
    axes = _axes(node, 1)
    if axes is None:
        raise node.refuse("needs `axes`")
    rank = len(full_in) + len(axes)
    axes = sorted(a % rank for a in axes)
    full = list(full_in)
    for a in axes:
        full.insert(a, 1)
    return _reshaped(node, input_shape, tuple(full))


def reduce(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``ReduceMean``/``ReduceSum`` over axes of the sample (never the batch axis)."""
    full_in = (1, *input_shape)
    axes = _axes(node, 1)
    keepdims = bool(node.attribute("keepdims", 1))
    if not axes:
        if node.attribute("noop_with_empty_axes", 0):
            return Identity(input_shape)
        axes = list(range(len(full_in)))
    axes = sorted({a % len(full_in) for a in axes})
    if 0 in axes:
        axes.remove(0)  # the batch axis has size 1: reducing over it changes nothing
        if not keepdims:
            raise node.refuse("reduces away the batch axis")
    if not axes:
        return Identity(input_shape)
    pool = GlobalAvgPool(input_shape, keepdims=keepdims, axes=[a - 1 for a in axes])
    if node.op_type == "ReduceSum":
        count = math.prod(input_shape[a - 1] for a in axes)
        return Sequential([pool, Scale(pool.output_shape, float(count))])
    return pool


def slice_(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``Slice`` of a traced tensor by constant starts/ends/axes/steps (or attributes < 10)."""
    full_in = (1, *input_shape)

    def values(index: int, name: str) -> list[int] | None:
        attribute = node.attribute(name)
        if attribute is not None:
            return [int(v) for v in attribute]
        if not node.has_input(index):
            return None
        value = node.constant_input(index)
        if value is None:
            raise node.refuse(f"input {index} ({name}) must be a constant")
        return [int(v) for v in value.reshape(-1)]

    starts, ends = values(1, "starts"), values(2, "ends")
    if starts is None or ends is None:
        raise node.refuse("needs `starts` and `ends`")
    axes = values(3, "axes") or list(range(len(starts)))
    steps = values(4, "steps") or [1] * len(starts)
    layers: list[Layer] = []
    shape = input_shape
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis %= len(full_in)
        n = full_in[axis]
        lo, hi, st = slice(start, end, step).indices(n)
        if axis == 0:
            if len(range(lo, hi, st)) != 1:
                raise node.refuse("slices the batch axis")
            continue
        stop: int | None = hi
        if st < 0 and hi < 0:
            stop = None
        layer = Slice(shape, axis - 1, lo, stop, st)
        if layer.output_shape != shape or st != 1:
            layers.append(layer)
            shape = layer.output_shape
    if not layers:
        return Identity(input_shape)
    return layers[0] if len(layers) == 1 else Sequential(layers)
