"""Keras activations: only a linear one leaves a layer a matrix; the others are refused.

A Keras layer applies ``activation(W x + b)``. ``"linear"`` (Keras' default, also written
``None``) keeps the layer linear; any other activation makes it non-linear, so the layer has
no matrix and is refused with a :class:`~convmatrix.ConvMatrixError` naming the layer and the
activation. The activation may be given the ways Keras gives it: a name (``"relu"``), a
serialized function (``{"class_name": "function", "config": "relu", ...}``), a serialized or
live activation layer (``LeakyReLU``, ...), or the function itself (a live layer's
``activation`` attribute).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from convmatrix._errors import ConvMatrixError

__all__ = ["ACTIVATION_LAYERS", "ELEMENTWISE", "NOT_ELEMENTWISE", "activation_name",
           "check_activation", "layer_title"]

#: Keras activations applied to each value on its own (keras.activations, Keras 3.15)
ELEMENTWISE = frozenset({
    "celu", "elu", "exponential", "gelu", "hard_shrink", "hard_sigmoid", "hard_silu",
    "hard_swish", "hard_tanh", "leaky_relu", "log_sigmoid", "mish", "prelu", "relu", "relu6",
    "selu", "sigmoid", "silu", "soft_shrink", "softplus", "softsign", "sparse_plus",
    "sparse_sigmoid", "squareplus", "swish", "tanh", "tanh_shrink", "threshold",
})

#: Keras activations that mix the values along an axis (no element-wise linearization)
NOT_ELEMENTWISE = frozenset({"softmax", "log_softmax", "sparsemax", "glu"})

#: Keras activation layers → the activation they apply
ACTIVATION_LAYERS = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "PReLU": "prelu", "ELU": "elu",
                     "Softmax": "softmax"}

_LINEAR = frozenset({"linear", "identity"})


def activation_name(value: Any) -> tuple[str | None, str]:
    """``(name, shown)`` of an activation; ``name`` None: linear.

    ``name`` is the Keras function name (lower case) when it can be told, else the class or
    the text found; ``shown`` is how to quote it in a message.
    """
    if value is None:
        return None, "None"
    if isinstance(value, str):
        name = value.strip().lower()
        return (None if name in _LINEAR else name), repr(value)
    if isinstance(value, Mapping):
        class_name = str(value.get("class_name", ""))
        config = value.get("config")
        if class_name == "function" or value.get("registered_name") == "function":
            inner = config if isinstance(config, str) else str(config)
            name = inner.strip().lower()
            return (None if name in _LINEAR else name), repr(inner)
        if class_name == "Activation" and isinstance(config, Mapping):
            return activation_name(config.get("activation"))
        return ACTIVATION_LAYERS.get(class_name, class_name), f"{class_name} (a layer)"
    class_name = type(value).__name__
    if class_name == "Activation":
        return activation_name(getattr(value, "activation", None))
    if class_name in ACTIVATION_LAYERS:
        return ACTIVATION_LAYERS[class_name], f"{class_name} (a layer)"
    function = getattr(value, "__name__", None)
    if isinstance(function, str):
        name = function.lower()
        return (None if name in _LINEAR else name), repr(function)
    return class_name, repr(value)


def layer_title(class_name: str, layer_name: Any) -> str:
    """``Conv2D 'conv2d_1'`` (the class, and the layer's own name when it has one)."""
    return f"{class_name} {layer_name!r}" if isinstance(layer_name, str) and layer_name \
        else class_name


def check_activation(value: Any, where: str) -> None:
    """Raise :class:`ConvMatrixError` unless ``value`` is a linear activation.

    ``where`` names the layer (``"`layers[2]` (Conv2D 'conv2d_1')"``).
    """
    name, shown = activation_name(value)
    if name is None:
        return
    intro = (f"{where} applies activation={shown}, which is not linear, so the layer has no "
             f"matrix; convmatrix reads a Keras layer only with activation='linear' (or None)")
    if name in NOT_ELEMENTWISE:
        raise ConvMatrixError(
            f"{intro}. {name} is not element-wise either (it mixes the values along an axis), "
            f"so it is refused")
    if name in ELEMENTWISE:
        raise ConvMatrixError(
            f"{intro}. {name} is element-wise: use cm.linearize(model, x) for the network's "
            f"exact Jacobian at a point x, or read the layer built with activation=None for "
            f"its linear part")
    raise ConvMatrixError(f"{intro}; {shown} is not an activation convmatrix knows to be linear")
