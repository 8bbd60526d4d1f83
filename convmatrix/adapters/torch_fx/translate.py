"""One fx node's translation: affine translators first, linearisation's at a point, else a refusal.

:func:`translate` picks the translator for a node (the module reader, the tables of
:mod:`~convmatrix.adapters.torch_fx.ops`, the Jacobian translator at a point) and words the
refusal when none reads it: whether ``cm.linearize`` reads what ``from_torch`` refuses.
"""

from __future__ import annotations

from collections.abc import Sequence

from convmatrix.adapters.torch_fx.call import (
    FxCall,
    JacobianTranslator,
    ModuleReader,
    Produced,
    Refused,
    Traced,
    single_traced,
)
from convmatrix.adapters.torch_fx.ops import FX_MODULE_TRANSLATORS, FX_TRANSLATORS
from convmatrix.layers.base import Layer

__all__ = ["translate"]


_LINEARIZE_HINT = "cm.linearize(model, x) reads it as its Jacobian at a point x"
_NON_AFFINE_HINT = f"is not affine; {_LINEARIZE_HINT}"
_NOT_LINEARIZED = "is not affine, and cm.linearize does not read it either"
_PRODUCT = "multiplies two values that depend on the input (a product of branches): not affine"
_QUOTIENT = "divides by a value that depends on the input: not affine"


def translate(call: FxCall, module_reader: ModuleReader | None, nonlinear: frozenset[str],
              linearized: frozenset[str], jacobian: JacobianTranslator | None) -> Produced:
    """The node's translation: affine translators first, the Jacobian translator at a point.

    A module the caller calls non-linear goes to the Jacobian translator first, then to the
    module reader (which reads classes that are affine in some settings, such as an
    ``InstanceNorm`` with running statistics, and answers None for the others); refusals say
    whether ``cm.linearize`` reads what ``from_torch`` refuses.
    """
    produced = None
    if call.op == "call_module":
        if call.kind in nonlinear and jacobian is not None:
            answer = jacobian(call)
            if answer is not None:
                return _jacobian_nodes(call, answer)
        if module_reader is not None and (call.kind not in nonlinear or len(call.traced) == 1):
            source = single_traced(call)  # a non-linear class may be affine as set (InstanceNorm)
            layer = module_reader(call.module, source.shape)
            produced = None if layer is None else (layer, (source.name,))
        if produced is None and call.kind in FX_MODULE_TRANSLATORS:
            produced = FX_MODULE_TRANSLATORS[call.kind](call)
    elif jacobian is not None and call.kind in _GRADIENT_STOPS:
        answer = jacobian(call)  # at a point: torch's autograd sees a constant
        if answer is not None:
            return _jacobian_nodes(call, answer)
    if call.op != "call_module":
        translator = FX_TRANSLATORS.get(call.kind)
        if translator is not None:
            produced = translator(call)
    if produced is not None:
        return produced
    product = call.kind in _PRODUCTS and len(call.traced) > 1
    matrix_product = product and call.kind in _MATRIX_PRODUCTS
    if jacobian is not None:
        if call.op != "call_module" or call.kind not in nonlinear:
            answer = jacobian(call)
            if answer is not None:
                return _jacobian_nodes(call, answer)
        if matrix_product:
            raise Refused(f"{_PRODUCT}, and cm.linearize reads element-wise products of "
                          f"branches, not matrix products ({call.kind})")
        raise Refused(f"{call.kind} is neither affine nor a non-linearity cm.linearize reads "
                      f"(element-wise activations, max pooling, GroupNorm, LayerNorm, "
                      f"InstanceNorm, element-wise products, quotients, where, maximum and "
                      f"minimum of branches)")
    if matrix_product:
        raise Refused(f"{_PRODUCT}, and cm.linearize does not read matrix products of branches "
                      f"either")
    if product:
        raise Refused(f"{_PRODUCT}; {_LINEARIZE_HINT}")
    if call.kind in _QUOTIENTS and isinstance(call.arg(1, "other"), Traced):
        raise Refused(f"{_QUOTIENT}; {_LINEARIZE_HINT}")
    if call.op == "call_module":
        if call.kind in linearized:
            raise Refused(f"{call.kind} {_NON_AFFINE_HINT}")
        if call.kind in nonlinear:
            raise Refused(f"{call.kind} {_NOT_LINEARIZED}")
        raise Refused(f"{call.kind} is not a layer convmatrix can read")
    if call.kind in linearized:
        raise Refused(f"{call.kind} {_NON_AFFINE_HINT}")
    if call.kind in _KNOWN_NONLINEAR:
        raise Refused(f"{call.kind} {_NOT_LINEARIZED}")
    raise Refused(f"{call.kind} is not an operation convmatrix reads as affine (read: "
                  f"{', '.join(sorted(k for k in FX_TRANSLATORS if k[0] != '_'))})")


_GRADIENT_STOPS = frozenset({"detach"})
"""Operations that are the identity on values but stop torch's gradients: ``from_torch``
reads them as the identity (the forward map); at a point the Jacobian translator is asked
first (``cm.linearize`` matches ``torch.func.jacrev``: a detached value is a constant)."""


_MATRIX_PRODUCTS = frozenset({"mm", "matmul", "addmm", "bmm"})
_PRODUCTS = frozenset({"mul", "imul", "multiply", *_MATRIX_PRODUCTS})
_QUOTIENTS = frozenset({"div", "truediv", "itruediv", "divide", "true_divide"})

_KNOWN_NONLINEAR = frozenset({
    "relu", "relu6", "leaky_relu", "prelu", "elu", "selu", "celu", "gelu", "silu", "mish",
    "sigmoid", "tanh", "hardtanh", "hardswish", "hardsigmoid", "softplus", "softsign",
    "softmax", "log_softmax", "max_pool1d", "max_pool2d", "max_pool3d", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "layer_norm", "group_norm", "instance_norm",
    "abs", "exp", "log", "sqrt", "pow", "clamp", "clip", "max", "min", "amax", "amin",
    "max_pool2d_with_indices", "threshold",
})


def _jacobian_nodes(call: FxCall, answer: Layer | Sequence[Layer]) -> Produced:
    inputs = call.traced
    if isinstance(answer, Layer):
        if len(inputs) != 1:
            raise Refused(f"the Jacobian translator answered one layer for {len(inputs)} "
                          f"inputs")
        return answer, (inputs[0].name,)
    layers = list(answer)
    if len(layers) != len(inputs):
        raise Refused(f"the Jacobian translator answered {len(layers)} layers for "
                      f"{len(inputs)} inputs")
    return ("sum-of", tuple(zip(layers, (t.name for t in inputs), strict=True)))
