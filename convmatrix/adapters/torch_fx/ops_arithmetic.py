"""Element-wise arithmetic of torch graphs: ``+``, ``-``, ``*``, ``/`` and signs.

A branch plus or minus a branch is a :class:`~convmatrix.layers.graph.Sum` (after torch's
broadcasting of one onto the other's shape); a branch times, over, plus or minus a constant (a
Python number, a buffer) is a :class:`~convmatrix.layers.scale.Scale`. A product of two
branches is not affine: the translators answer None (``cm.linearize`` reads it at a point).
"""

from __future__ import annotations

from typing import Any

from convmatrix.adapters.torch_fx.call import (
    FxCall,
    Produced,
    Refused,
    Steps,
    Traced,
    Translator,
    as_array,
    broadcast_constant,
    single_traced,
)
from convmatrix.layers.graph import Sum

__all__ = ["TRANSLATORS"]


def _scale(call: FxCall, source: Traced, scale: Any = 1.0, shift: Any = 0.0) -> Produced:
    from convmatrix.layers.scale import Scale

    shape = call.output_shape()
    if shape != source.shape:
        raise Refused(f"broadcasts its input {source.shape} to {shape}")
    scale_array = broadcast_constant(call, scale, shape, "factor") if not isinstance(
        scale, int | float) else scale
    shift_array = broadcast_constant(call, shift, shape, "term") if not isinstance(
        shift, int | float) else shift
    return Scale(shape, scale_array, shift=shift_array), (source.name,)


def _add(call: FxCall, sign: float = 1.0) -> Produced:
    a, b = call.arg(0, "input"), call.arg(1, "other")
    alpha = call.kwargs.get("alpha", call.args[2] if len(call.args) > 2 else 1)
    if isinstance(alpha, Traced):
        raise Refused("its alpha depends on the input")
    if isinstance(a, Traced) and isinstance(b, Traced):
        if a.shape != b.shape:
            return _broadcast_sum(call, (a, b), (1.0, sign * float(alpha)))
        return Sum((1.0, sign * float(alpha))), (a.name, b.name)
    if isinstance(a, Traced):
        return _scale(call, a, 1.0, sign * float(alpha) * as_array(b) if not isinstance(
            b, int | float) else sign * float(alpha) * b)
    if isinstance(b, Traced):
        return _scale(call, b, sign * float(alpha), a)
    return None


def _broadcast_sum(call: FxCall, terms: tuple[Traced, ...], weights: tuple[float, ...]
                   ) -> Produced:
    """A sum of branches of different shapes: each broadcast onto the output (torch's rule).

    ``h - h.mean((1, 2, 3), keepdim=True)``: the mean, one value per sample, is copied onto
    every entry first (:func:`~convmatrix.adapters.torch_fx.broadcast.broadcast_layer`).
    """
    from convmatrix._errors import ConvMatrixError
    from convmatrix.adapters.torch_fx.broadcast import broadcast_layer

    out = call.output_shape()
    steps: list[tuple[Any, tuple[str | int, ...]]] = []
    inputs: list[str | int] = []
    for term in terms:
        try:
            spread = broadcast_layer(term.shape, out)
        except ConvMatrixError:
            raise Refused(f"adds values of shapes {', '.join(str(t.shape) for t in terms)}, "
                          f"which do not broadcast onto one sample {out}") from None
        if spread is None:
            inputs.append(term.name)
        else:
            steps.append((spread, (term.name,)))
            inputs.append(len(steps) - 1)
    steps.append((Sum(weights), tuple(inputs)))
    return Steps(tuple(steps))


def _sub(call: FxCall) -> Produced:
    return _add(call, -1.0)


def _rsub(call: FxCall) -> Produced:  # aten.rsub / torch.rsub: other − alpha·input
    a, b = call.arg(0, "input"), call.arg(1, "other")
    alpha = float(call.kwargs.get("alpha", 1))
    if isinstance(a, Traced) and not isinstance(b, Traced):
        return _scale(call, a, -alpha, b)
    return None


def _mul(call: FxCall) -> Produced:
    a, b = call.arg(0, "input"), call.arg(1, "other")
    if isinstance(a, Traced) and isinstance(b, Traced):
        return None  # a product of two branches: not affine (a Jacobian at a point)
    if isinstance(a, Traced):
        return _scale(call, a, b)
    if isinstance(b, Traced):
        return _scale(call, b, a)
    return None


def _div(call: FxCall) -> Produced:
    a, b = call.arg(0, "input"), call.arg(1, "other")
    mode = call.kwargs.get("rounding_mode")
    if isinstance(b, Traced) or not isinstance(a, Traced) or mode is not None:
        return None  # a divisor that depends on the input: not affine (a Jacobian at a point)
    value = 1.0 / b if isinstance(b, int | float) else 1.0 / as_array(b)
    return _scale(call, a, value)


def _neg(call: FxCall) -> Produced:
    return _scale(call, single_traced(call), -1.0)


def _pos(call: FxCall) -> Produced:
    return single_traced(call)


TRANSLATORS: dict[str, Translator] = {
    "add": _add, "iadd": _add, "sub": _sub, "isub": _sub, "rsub": _rsub, "mul": _mul, "imul": _mul,
    "multiply": _mul, "div": _div, "truediv": _div, "itruediv": _div, "divide": _div, "neg": _neg,
    "negative": _neg, "pos": _pos,
}
"""This family's operation names → translators (merged into
:data:`~convmatrix.adapters.torch_fx.ops.FX_TRANSLATORS`)."""
