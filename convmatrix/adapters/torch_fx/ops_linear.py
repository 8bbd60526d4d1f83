"""Dense linear maps and reductions in torch graphs: ``F.linear``, ``x @ W``, ``sum``, ``mean``.

A flat sample times a constant matrix is a :class:`~convmatrix.Linear`; a sum or mean over
axes is an :class:`~convmatrix.AvgPool` (spatial axes) and/or a convolution of ones (channels).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convmatrix.adapters.torch_fx.call import (
    FxCall,
    Produced,
    Refused,
    Traced,
    Translator,
    as_array,
    broadcast_constant,
    replace_args,
    sample_axis,
    single_traced,
)
from convmatrix.layers.base import Layer
from convmatrix.layers.conv import Conv
from convmatrix.layers.pool import AvgPool
from convmatrix.layers.sequential import Sequential

__all__ = ["MODULE_TRANSLATORS", "TRANSLATORS"]


def _linear(call: FxCall) -> Produced:
    from convmatrix.layers.linear import Linear

    source = single_traced(call)
    bias = call.arg(2, "bias")
    weight = as_array(call.arg(1, "weight"))
    if len(source.shape) != 1:
        raise Refused(f"applies a linear map to the last axis of {source.shape}; only a flat "
                      f"sample is read")
    return Linear(weight, None if bias is None else as_array(bias), input_shape=source.shape), (
        source.name,)


def _float_dtype(call: FxCall) -> Any:
    return np.float32 if str(getattr(call.output, "dtype", "")) == "torch.float32" else np.float64


def _reduce(call: FxCall, average: bool) -> Produced:
    """``x.sum(dim)``/``x.mean(dim)`` over channels and/or spatial axes (keepdim or not).

    Spatial axes: an :class:`~convmatrix.AvgPool` whose window spans them (``divisor_override
    = 1`` for a sum); the channel axis: a convolution with one output channel of ones (``1/C``
    for a mean), or a :class:`~convmatrix.Linear` row for a flat sample.
    """
    from convmatrix.layers.linear import Linear
    from convmatrix.layers.reshape import Reshape

    source = single_traced(call)
    dims = call.arg(1, "dim")
    if dims is None or (isinstance(dims, list | tuple) and not dims):
        raise Refused(f"{'averages' if average else 'sums'} over every axis, the batch axis "
                      f"too")
    if call.kwargs.get("dtype") is not None:
        raise Refused("converts the dtype while reducing (dtype=...), which is not read")
    axes = sorted({sample_axis(call, source, d, "averages" if average else "sums")
                   for d in (dims if isinstance(dims, list | tuple) else (dims,))})
    shape = source.shape
    if axes == list(range(1, len(shape))) and average:  # the global average pool
        layers: list[Layer] = [AvgPool(shape, shape[1:])]
        shape = layers[0].output_shape
    else:
        layers = []
        dtype = _float_dtype(call) if not average else np.float64  # 1/C: not exact in float32
        if 0 in axes:
            channels = shape[0]
            weight = np.full((1, channels), 1.0 / channels if average else 1.0, dtype=dtype)
            if len(shape) == 1:
                layers.append(Linear(weight, input_shape=shape))
            else:
                layers.append(Conv(weight.reshape(1, channels, *(1,) * (len(shape) - 1)),
                                   shape))
            shape = layers[-1].output_shape
        spatial = [axis for axis in axes if axis > 0]
        if spatial:
            kernel = tuple(n if axis in spatial else 1 for axis, n in enumerate(shape) if axis)
            layers.append(AvgPool(shape, kernel, divisor_override=None if average else 1))
            shape = layers[-1].output_shape
    out = call.output_shape()
    if shape != out:
        layers.append(Reshape(shape, out))
    return (layers[0] if len(layers) == 1 else Sequential(layers)), (source.name,)


def _sum(call: FxCall) -> Produced:
    return _reduce(call, average=False)


def _mean(call: FxCall) -> Produced:
    """``x.mean(dim)``: over all spatial axes the global average pool; any axes but the batch."""
    return _reduce(call, average=True)


def _matmul_weight(call: FxCall, source: Any, matrix: Any) -> Any:
    """The constant right factor of ``x @ W`` on a flat sample, as a ``(out, in)`` weight."""
    if isinstance(matrix, Traced):
        return None  # a product of two branches
    if not isinstance(source, Traced):
        raise Refused("multiplies a constant by a value that depends on the input from the "
                      "right; only x @ W (the input on the left) is read")
    array = as_array(matrix)
    if len(source.shape) != 1 or array.ndim != 2:
        raise Refused(f"multiplies {source.shape} by a constant of shape {array.shape}; only "
                      f"a flat sample times a matrix is read")
    return array.T


def _matmul(call: FxCall) -> Produced:
    """``x @ W``, ``torch.mm``/``matmul`` with a constant ``W``: a :class:`~convmatrix.Linear`."""
    source = call.arg(0, "input")
    weight = _matmul_weight(call, source, call.arg(1, "other", call.kwargs.get("mat2")))
    if weight is None:
        return None
    return _linear(replace_args(call, (source, weight, None)))


def _addmm(call: FxCall) -> Produced:
    """``aten.addmm(b, x, W, beta, alpha)``: ``beta·b + alpha·(x @ W)`` (a decomposed Linear)."""
    bias, source = call.arg(0, "self"), call.arg(1, "mat1")
    if isinstance(bias, Traced):
        raise Refused("adds a value that depends on the input as its bias; only a constant "
                      "bias is read")
    weight = _matmul_weight(call, source, call.arg(2, "mat2"))
    if weight is None:
        return None
    beta, alpha = float(call.kwargs.get("beta", 1)), float(call.kwargs.get("alpha", 1))
    out = call.output_shape()
    return _linear(replace_args(call, (source, alpha * weight, beta * broadcast_constant(
        call, bias, out, "bias"))))


def _module_linear(call: FxCall) -> Produced:
    module = call.module
    return _linear(replace_args(call, (call.args[0], module.weight, module.bias)))


TRANSLATORS: dict[str, Translator] = {
    "mean": _mean, "linear": _linear, "sum": _sum, "addmm": _addmm, "mm": _matmul,
    "matmul": _matmul,
}
"""This family's operation names → translators (merged into
:data:`~convmatrix.adapters.torch_fx.ops.FX_TRANSLATORS`)."""

MODULE_TRANSLATORS: dict[str, Translator] = {"Linear": _module_linear}
"""This family's module class names → translators (merged into
:data:`~convmatrix.adapters.torch_fx.ops.FX_MODULE_TRANSLATORS`)."""
