"""Whole Keras objects as layer objects: :func:`from_keras` (a layer or a model) and models.

A Keras ``Sequential`` (anything with ``.layers``) becomes a :class:`~convmatrix.Sequential`
of its layers, each read by :func:`~convmatrix.adapters.keras.layers.read_keras_layer`; a
functional (or traceable subclassed) model a :class:`~convmatrix.Graph`
(:mod:`~convmatrix.adapters.keras.functional`); a ``.keras`` file is loaded safely first
(:mod:`~convmatrix.adapters.keras.saved`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.keras.functional import build_graph, is_keras_model, translate_step
from convmatrix.adapters.keras.layers import (
    KERAS_READERS,
    built_input_shape,
    is_other_keras,
    keras_conv,
    read_keras_layer,
)
from convmatrix.adapters.keras.saved import is_keras_path, load_keras_file
from convmatrix.geometry.spec import as_sample_shape
from convmatrix.layers.base import Layer
from convmatrix.layers.sequential import Sequential

__all__ = ["from_keras", "from_keras_functional", "from_keras_other", "from_keras_sequential"]

_SKIPPED = frozenset({"InputLayer"})


def from_keras(layer_or_serialized: Any, kernel: Any = None,
               input_shape: Sequence[int] | None = None, *, bias: Any = None) -> Layer:
    """The layer object of a Keras convolution layer (or model), in Keras' own layout.

    A Keras ``Sequential`` (anything with ``.layers``) becomes a :class:`~convmatrix.Sequential`
    and the other linear Keras layers (``UpSampling*``, ``AveragePooling*``, ``ZeroPadding*``,
    ``Cropping*``, ``BatchNormalization``, ``SeparableConv1D/2D``, ``Dense`` (on the last
    axis, per position), ``Flatten``, ``Reshape``, ``GlobalAveragePooling*``, dropouts and
    noise, ...) their layer objects: see :func:`from_keras_sequential`.

    A functional model (``keras.Model(inputs, outputs)``) or a subclassed model whose
    ``call`` traces on a symbolic input becomes a :class:`~convmatrix.Graph` over its one
    input (a :class:`~convmatrix.Sequential` when it is a chain): ``Add``, ``Subtract``,
    ``Average`` and ``+``/``-`` are sums, ``Concatenate`` (any axis) a concatenation, models
    inside the model are read whole; see :func:`from_keras_functional`. A path to a
    ``.keras`` file is loaded in Keras' safe mode first (a ``Lambda`` layer is refused by
    name and never deserialized). Non-linear layers are refused, naming the layer and
    pointing to :func:`convmatrix.linearize`.

    Parameters
    ----------
    layer_or_serialized : keras layer, keras model, mapping or path
        A built live layer or model (read through ``get_config()``, ``kernel`` and ``bias``;
        a layer needs no Keras import), the dict ``keras.layers.serialize(layer)`` returns,
        or the path of a ``.keras`` file.
    kernel : array_like, optional
        ``layer.kernel`` in Keras' layout; required with a serialized layer.
    input_shape : sequence of int, optional
        One sample, no batch axis, in the layer's ``data_format``; default for a live layer:
        the shape it was built for.
    bias : array_like, optional
        The bias (one value per output channel); a live layer's own bias by default.

    Returns
    -------
    KerasConv
        (or another layer object for a model or a non-convolution layer: for a functional
        model a :class:`~convmatrix.Graph`)

    Examples
    --------
    The seed: ``Conv2DTranspose(1, 2)`` with a ones kernel on a 2×2 ones input.

    >>> import numpy as np
    >>> config = {"class_name": "Conv2DTranspose",
    ...           "config": {"filters": 1, "kernel_size": [2, 2], "strides": [1, 1],
    ...                      "padding": "valid", "data_format": "channels_last"}}
    >>> deconv = from_keras(config, np.ones((2, 2, 1, 1)), (2, 2, 1))
    >>> deconv
    Conv2DTranspose(1→1, 2×2×1 → 3×3×1, kernel 2×2)
    >>> deconv(np.ones((2, 2, 1)))[..., 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    if is_keras_path(layer_or_serialized):
        return from_keras_other(load_keras_file(layer_or_serialized), input_shape)
    if not isinstance(layer_or_serialized, Mapping) and is_other_keras(layer_or_serialized):
        return from_keras_other(layer_or_serialized, input_shape)
    return keras_conv(layer_or_serialized, kernel, input_shape, bias=bias)


def from_keras_other(obj: Any, input_shape: Sequence[int] | None) -> Layer:
    """A model (functional, subclassed or a chain of ``.layers``), else the one layer's reader."""
    if type(obj).__name__ not in KERAS_READERS:
        if is_keras_model(obj):
            return from_keras_functional(obj, input_shape)
        return from_keras_sequential(obj, input_shape)
    if input_shape is None:
        input_shape = built_input_shape(obj)
    return read_keras_layer(obj, input_shape)


def from_keras_sequential(model: Any, input_shape: Sequence[int] | None = None) -> Layer:
    """A Keras ``Sequential`` (anything with ``.layers``) as a :class:`~convmatrix.Sequential`.

    Parameters
    ----------
    model : keras.Sequential
        Its ``layers`` are read in order, each through
        :data:`~convmatrix.adapters.keras.layers.KERAS_READERS`; ``InputLayer`` entries are
        skipped.
    input_shape : sequence of int, optional
        One sample in Keras' layout (channels last unless the layers say otherwise); default:
        ``model.input_shape`` without the batch axis.

    Returns
    -------
    Layer
        A :class:`~convmatrix.Sequential` (or the single layer), in Keras' layout.
    """
    for ends in ("inputs", "outputs"):
        tensors = getattr(model, ends, None)
        if isinstance(tensors, list | tuple) and len(tensors) > 1:
            raise ConvMatrixError(
                f"`model` ({type(model).__name__}) has {len(tensors)} {ends}: it is not a "
                f"chain of layers, which is all convmatrix reads of a Keras model (its layers "
                f"would be read one after the other, which is not what the model computes)")
    if input_shape is None:
        known = getattr(model, "input_shape", None)
        if known is None or any(v is None for v in tuple(known)[1:]):
            raise ConvMatrixError("give `input_shape`: the model has no fully known input shape")
        input_shape = tuple(known)[1:]
    # integral floats (4.0) have always been read as sizes here; 4.5 is refused
    shape = as_sample_shape(input_shape, integral_floats=True)
    layers: list[Layer] = []
    for position, layer in enumerate(model.layers):
        if type(layer).__name__ in _SKIPPED:
            continue
        if type(layer).__name__ not in KERAS_READERS and hasattr(layer, "layers"):
            try:  # a model inside the model
                layers.append(from_keras_other(layer, shape))
            except ConvMatrixError as error:
                raise ConvMatrixError(f"`layers[{position}]` (a model): {error}") from None
        else:
            layers.append(read_keras_layer(layer, shape, position))
        shape = layers[-1].output_shape
    if not layers:
        raise ConvMatrixError("`model` has no layers to read")
    if math.prod(shape) == 0:
        raise ConvMatrixError("`model` produces an empty output")
    return layers[0] if len(layers) == 1 else Sequential(layers)


def from_keras_functional(model: Any, input_shape: Sequence[int] | None = None) -> Layer:
    """A Keras functional (or traceable subclassed) model as one affine layer object.

    See :func:`from_keras`: the model's one input and one output per sample, in Keras'
    layout; a chain of layers is a :class:`~convmatrix.Sequential`, anything else a
    :class:`~convmatrix.Graph` whose node names are the Keras layers' names (its input's
    name is the model's ``Input``).
    """
    return build_graph(model, input_shape, lambda step: translate_step(step, from_keras_other))
