"""One Keras layer (live, duck-typed or serialized) as a layer object in Keras' own layout.

Convolutions (``Conv*``, ``Conv*Transpose``, ``DepthwiseConv*``) become
:class:`~convmatrix.layers.channels_last.KerasConv`; the other linear Keras layers are read by
class name through :data:`KERAS_READERS` into channels-first kinds wrapped in
:class:`~convmatrix.layers.channels_last.ChannelsLast` (``UpSampling*``, ``AveragePooling*``,
``ZeroPadding*``, ``Cropping*``, ``BatchNormalization``, dropouts) or into stacks
(``SeparableConv1D/2D``). Live layers are read through ``get_config()`` and their weights;
nothing imports Keras.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from convmatrix._arrays import to_numpy
from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.keras.activations import ACTIVATION_LAYERS, check_activation, layer_title
from convmatrix.adapters.keras.config import keras_layer
from convmatrix.geometry.spec import as_sample_shape
from convmatrix.layers.base import Layer
from convmatrix.layers.channels_last import ChannelsLast, KerasConv
from convmatrix.layers.identity import Identity
from convmatrix.layers.linear import Linear
from convmatrix.layers.norm import BatchNorm
from convmatrix.layers.pad import Pad
from convmatrix.layers.pool import AvgPool
from convmatrix.layers.repeat import Repeat
from convmatrix.layers.reshape import Flatten, Reshape
from convmatrix.layers.sequential import Sequential
from convmatrix.layers.upsample import Upsample

__all__ = ["KERAS_READERS", "LINEARIZABLE", "built_input_shape", "check_live_activation",
           "is_other_keras", "keras_conv", "read_keras_layer"]

KerasReader = Callable[[Any, dict[str, Any], tuple[int, ...]], Layer]


def keras_conv(layer_or_serialized: Any, kernel: Any = None,
               input_shape: Sequence[int] | None = None, *, bias: Any = None) -> KerasConv:
    """A Keras convolution layer (live or serialized) as a :class:`KerasConv`.

    See :func:`convmatrix.from_keras` for the parameters; a serialized layer needs ``kernel``
    and ``input_shape``, a live one gives its own ``kernel``, ``bias`` and built input shape.
    """
    if isinstance(layer_or_serialized, Mapping):
        if kernel is None or input_shape is None:
            raise ConvMatrixError(
                "a serialized Keras layer needs `kernel` (its weights in Keras layout) and "
                "`input_shape` (one sample, no batch axis)")
        return _keras_conv(layer_or_serialized, kernel, input_shape, bias)
    live = layer_or_serialized
    if not hasattr(live, "get_config"):
        raise ConvMatrixError(
            f"`layer_or_serialized` (={type(live).__name__}) must be a Keras layer or the dict "
            f"keras.layers.serialize(layer) returns")
    check_live_activation(live, f"`layer` ({layer_title(type(live).__name__, _name(live))})")
    serialized = {"class_name": type(live).__name__, "config": live.get_config()}
    if kernel is None:
        kernel = getattr(live, "kernel", None)
        if kernel is None:
            kernel = getattr(live, "depthwise_kernel", None)
        if kernel is None:
            raise ConvMatrixError(
                f"`layer_or_serialized` ({type(live).__name__}) has no `kernel`: build the "
                f"layer (call it once) or pass `kernel`")
    if bias is None and getattr(live, "bias", None) is not None:
        bias = keras_array(live.bias)
    if input_shape is None:
        input_shape = built_input_shape(live)
    return _keras_conv(serialized, keras_array(kernel), input_shape, bias)


def keras_array(value: Any) -> np.ndarray:
    """A Keras weight as a numpy array, read through its backend tensor.

    A Keras 3 ``Variable`` holds the backend's tensor in ``.value``; reading that (a torch
    tensor is detached, see :func:`convmatrix._arrays.to_numpy`) avoids ``np.asarray`` on the
    Variable, which on the torch backend goes through a deprecated numpy path.
    """
    inner = None if isinstance(value, np.ndarray) else getattr(value, "value", None)
    return to_numpy(value if inner is None else inner)


def _name(layer: Any) -> Any:
    """The layer's own name (its ``name``, else its config's), or None."""
    name = getattr(layer, "name", None)
    if name is None and hasattr(layer, "get_config"):
        try:
            name = dict(layer.get_config()).get("name")
        except Exception:  # a config Keras cannot serialize (a lambda activation): no name
            name = None
    return name


def check_live_activation(layer: Any, where: str) -> None:
    """Refuse a live layer that applies a non-linear activation (or is an activation layer).

    The layer's ``activation`` attribute is read first (a live layer's function, so a
    custom function whose config cannot be serialized is still named), else its config's.
    """
    if type(layer).__name__ in ACTIVATION_LAYERS:
        check_activation(layer, where)
    if hasattr(layer, "activation"):
        check_activation(layer.activation, where)
    else:
        check_activation(dict(layer.get_config()).get("activation"), where)


def _keras_conv(serialized: Mapping[str, Any], kernel: Any, input_shape: Sequence[int],
                bias: Any) -> KerasConv:
    converted = keras_layer(serialized, kernel, input_shape)
    return KerasConv.from_spec(converted.spec, converted.weight, class_name=converted.class_name,
                               direction=converted.direction,
                               data_format=converted.data_format,  # type: ignore[arg-type]
                               bias=bias)


def built_input_shape(layer: Any) -> tuple[int, ...]:
    """One sample's shape a live Keras layer was built for (its ``get_build_config()``)."""
    build = getattr(layer, "get_build_config", lambda: None)() or {}
    shape = build.get("input_shape")
    if shape is None or any(v is None for v in tuple(shape)[1:]):
        raise ConvMatrixError("give `input_shape`: the layer has no fully known input shape")
    return tuple(shape)[1:]


def _ints(value: Any, rank: int, name: str) -> tuple[int, ...]:
    values = tuple(value) if isinstance(value, list | tuple) else (value,) * rank
    if len(values) != rank or not all(isinstance(v, int) and not isinstance(v, bool)
                                      for v in values):
        raise ConvMatrixError(f"`{name}` (={value!r}) must be an int or {rank} ints")
    return values


def _pairs(value: Any, rank: int, name: str) -> tuple[tuple[int, int], ...]:
    """Keras' padding/cropping forms: int, one int per axis, or a (before, after) pair each."""
    if isinstance(value, int) and not isinstance(value, bool):
        return ((value, value),) * rank
    items = tuple(value)
    if rank == 1 and len(items) == 2 and all(isinstance(v, int) for v in items):
        return ((items[0], items[1]),)
    if len(items) != rank:
        raise ConvMatrixError(f"`{name}` (={value!r}) must be an int, {rank} ints or {rank} pairs")
    pairs = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            pairs.append((item, item))
        else:
            before, after = tuple(item)
            pairs.append((int(before), int(after)))
    return tuple(pairs)


def _layout(config: dict[str, Any], shape: tuple[int, ...]) -> tuple[bool, tuple[int, ...]]:
    """``(channels_last, channels-first shape)``."""
    last = (config.get("data_format") or "channels_last") == "channels_last"
    return last, ((shape[-1], *shape[:-1]) if last else shape)


def _wrap(core: Layer, last: bool, class_name: str) -> Layer:
    return ChannelsLast(core, class_name) if last else core


def _rank(class_name: str) -> int:
    return int(class_name[-2]) if class_name[-2:] in ("1D", "2D", "3D") else 1


def _read_upsampling(layer: Any, config: dict[str, Any], shape: tuple[int, ...]) -> Layer:
    name = type(layer).__name__
    rank = _rank(name)
    last, first = _layout(config, shape)
    size = _ints(config.get("size", 2), rank, "size")
    interpolation = config.get("interpolation", "nearest")
    if interpolation == "nearest":
        core: Layer = Repeat(first, size)
    elif interpolation == "bilinear" and rank == 2:
        # TF/JAX resize with half-pixel centres = torch bilinear, align_corners=False
        core = Upsample(first, scale_factor=tuple(float(s) for s in size), mode="bilinear",
                        align_corners=False)
    else:
        raise ConvMatrixError(
            f"`interpolation` (={interpolation!r}) of {name} is not supported; use 'nearest' "
            f"or (2-D) 'bilinear'")
    return _wrap(core, last, name)


def _read_average_pooling(layer: Any, config: dict[str, Any], shape: tuple[int, ...]) -> Layer:
    name = type(layer).__name__
    rank = _rank(name)
    last, first = _layout(config, shape)
    pool = _ints(config.get("pool_size", 2), rank, "pool_size")
    strides = _ints(config.get("strides") or pool, rank, "strides")
    padding = str(config.get("padding", "valid")).lower()
    if padding == "valid":
        pairs = tuple((0, 0) for _ in range(rank))
    elif padding == "same":  # TF: output ⌈n/s⌉, the extra pad after; pads are not counted
        pairs = tuple(_same(n, k, s) for n, k, s in zip(first[1:], pool, strides, strict=True))
    else:
        raise ConvMatrixError(f"`padding` (={padding!r}) of {name} must be 'valid' or 'same'")
    core = AvgPool(first, pool, strides, pairs, count_include_pad=False)
    return _wrap(core, last, name)


def _same(n: int, k: int, s: int) -> tuple[int, int]:
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _read_zero_padding(layer: Any, config: dict[str, Any], shape: tuple[int, ...]) -> Layer:
    name = type(layer).__name__
    rank = _rank(name)
    last, first = _layout(config, shape)
    sign = -1 if name.startswith("Cropping") else 1
    key = "cropping" if sign < 0 else "padding"
    pairs = _pairs(config.get(key, 1), rank, key)
    pad = tuple(sign * v for before, after in reversed(pairs) for v in (before, after))
    return _wrap(Pad(first, pad), last, name)


def _read_batch_normalization(layer: Any, config: dict[str, Any],
                              shape: tuple[int, ...]) -> Layer:
    position = _batch_norm_axis(config.get("axis", -1), shape)
    last = position == len(shape) - 1
    weights = {key: getattr(layer, key, None) for key in ("gamma", "beta", "moving_mean",
                                                          "moving_variance")}
    if weights["moving_mean"] is None or weights["moving_variance"] is None:
        raise ConvMatrixError("BatchNormalization needs built weights (moving_mean, "
                              "moving_variance)")
    first = (shape[-1], *shape[:-1]) if last else shape
    core = BatchNorm(first, keras_array(weights["moving_mean"]),
                     keras_array(weights["moving_variance"]),
                     weight=None if weights["gamma"] is None else keras_array(weights["gamma"]),
                     bias=None if weights["beta"] is None else keras_array(weights["beta"]),
                     eps=float(config.get("epsilon", 1e-3)), axis=0 if last else position)
    return _wrap(core, last, "BatchNormalization")


def _batch_norm_axis(axis: Any, shape: tuple[int, ...]) -> int:
    """Keras' ``axis`` (it counts the batch axis; negative from the end) → a sample axis.

    Keras 3 takes one int; tf.keras also a list, read here when it holds one axis.
    """
    items = tuple(axis) if isinstance(axis, list | tuple) else (axis,)
    ndim = len(shape) + 1  # Keras' input: the batch axis, then the sample
    if len(items) != 1 or isinstance(items[0], bool) or not hasattr(items[0], "__index__"):
        raise ConvMatrixError(
            f"`axis` (={axis!r}) of BatchNormalization must be one int (Keras counts the batch "
            f"axis: 1 .. {ndim - 1}, or -1 .. -{ndim - 1} from the end); several axes are "
            f"not read")
    full = int(items[0])
    if not -ndim <= full < ndim:
        raise ConvMatrixError(
            f"`axis` (={axis!r}) of BatchNormalization is out of range for an input of "
            f"{ndim} axes (the batch axis and a sample {shape})")
    full %= ndim
    if full == 0:
        raise ConvMatrixError(
            f"`axis` (={axis!r}) of BatchNormalization is the batch axis: its statistics "
            f"would be per sample of the batch, not a map of one sample; use a sample axis "
            f"(1 .. {ndim - 1}, or -1 .. -{ndim - 1})")
    return full - 1


def _read_separable(layer: Any, config: dict[str, Any], shape: tuple[int, ...]) -> Layer:
    """``SeparableConv1D/2D`` = DepthwiseConv (strides, dilation) then a 1×1 Conv (bias)."""
    name = type(layer).__name__
    rank = _rank(name)
    common = {key: config[key] for key in ("padding", "data_format") if key in config}
    depthwise: dict[str, Any] = {"class_name": f"DepthwiseConv{rank}D",
                 "config": {**common, "kernel_size": config["kernel_size"],
                            "strides": config.get("strides", 1),
                            "dilation_rate": config.get("dilation_rate", 1),
                            "depth_multiplier": config.get("depth_multiplier", 1)}}
    pointwise: dict[str, Any] = {"class_name": f"Conv{rank}D",
                 "config": {**common, "filters": config["filters"], "kernel_size": [1] * rank,
                            "strides": 1, "padding": "valid"}}
    first = keras_conv(depthwise, keras_array(layer.depthwise_kernel), shape)
    bias = getattr(layer, "bias", None) if config.get("use_bias", True) else None
    second = keras_conv(pointwise, keras_array(layer.pointwise_kernel), first.output_shape,
                        bias=None if bias is None else keras_array(bias))
    return Sequential([first, second])


def _read_identity(layer: Any, config: dict[str, Any], shape: tuple[int, ...]) -> Layer:
    return Identity(shape)


def _read_activation(layer: Any, config: dict[str, Any], shape: tuple[int, ...]) -> Layer:
    # read_keras_layer has refused every activation but 'linear'
    return Identity(shape)


def _read_conv(layer: Any, config: dict[str, Any], shape: tuple[int, ...]) -> Layer:
    """A live convolution through its config (read_keras_layer has checked the activation)."""
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        kernel = getattr(layer, "depthwise_kernel", None)
    if kernel is None:
        raise ConvMatrixError(
            f"{type(layer).__name__} has no `kernel`: build the layer (call it once)")
    bias = getattr(layer, "bias", None)
    return _keras_conv({"class_name": type(layer).__name__, "config": config},
                       keras_array(kernel), shape, None if bias is None else keras_array(bias))


def _check_quantization(layer: Any, name: str) -> None:
    mode = getattr(layer, "quantization_mode", None)
    if mode is not None:
        raise ConvMatrixError(
            f"{name} is quantized (quantization_mode={mode!r}): its weights are not the real "
            f"matrix convmatrix reads; read the model before quantizing it")


def _read_dense(layer: Any, config: dict[str, Any], shape: tuple[int, ...]) -> Layer:
    """``Dense`` acts on the last axis (per position of a ``(*positions, C)`` tensor).

    A vector input is a :class:`~convmatrix.Linear`; otherwise the layer is the 1×1
    convolution it is (a :class:`KerasConv` titled ``Dense``), through a reshape to one
    position axis when there are more than three.
    """
    _check_quantization(layer, "Dense")
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        raise ConvMatrixError("Dense needs a built kernel: build the layer (call it once)")
    weight = keras_array(kernel)
    bias_value = getattr(layer, "bias", None) if config.get("use_bias", True) else None
    bias = None if bias_value is None else keras_array(bias_value)
    if weight.ndim != 2 or weight.shape[0] != shape[-1]:
        raise ConvMatrixError(
            f"Dense's kernel has shape {weight.shape}; on an input {shape} it must be "
            f"({shape[-1]}, units)")
    if len(shape) == 1:
        return Linear(weight.T, bias, input_shape=shape)
    positions = shape[:-1]
    flat = len(positions) > 3
    rank = 1 if flat else len(positions)
    serialized = {"class_name": f"Conv{rank}D",
                  "config": {"filters": weight.shape[1], "kernel_size": [1] * rank,
                             "strides": [1] * rank, "padding": "valid",
                             "data_format": "channels_last"}}
    inner = (math.prod(positions), shape[-1]) if flat else shape
    converted = keras_layer(serialized, weight.reshape(*(1,) * rank, *weight.shape), inner)
    conv = KerasConv.from_spec(converted.spec, converted.weight, class_name="Dense",
                               direction="forward", data_format="channels_last", bias=bias)
    if not flat:
        return conv
    return Sequential([Reshape(shape, inner), conv,
                       Reshape(conv.output_shape, (*positions, weight.shape[1]))])


def _read_flatten(layer: Any, config: dict[str, Any], shape: tuple[int, ...]) -> Layer:
    if (config.get("data_format") or "channels_last") == "channels_first" and len(shape) > 1:
        raise ConvMatrixError(
            f"Flatten(data_format='channels_first') on {shape} moves the channel axis last "
            f"before flattening (a permutation), which is not read; use "
            f"data_format='channels_last'")
    return Flatten(shape)


def _read_reshape(layer: Any, config: dict[str, Any], shape: tuple[int, ...]) -> Layer:
    target = config.get("target_shape")
    if target is None:
        target = getattr(layer, "target_shape", None)
    if target is None:
        raise ConvMatrixError("Reshape has no `target_shape`")
    return Reshape(shape, tuple(int(v) for v in target))


def _read_global_average_pooling(layer: Any, config: dict[str, Any],
                                 shape: tuple[int, ...]) -> Layer:
    name = type(layer).__name__
    last, first = _layout(config, shape)
    spatial = first[1:]
    if not spatial:
        raise ConvMatrixError(f"{name} needs spatial axes; the input is {shape}")
    pool = _wrap(AvgPool(first, spatial, spatial), last, name)
    if config.get("keepdims", False):
        return pool
    return Sequential([pool, Reshape(pool.output_shape, (first[0],))])


KERAS_READERS: dict[str, KerasReader] = {
    **{f"UpSampling{n}D": _read_upsampling for n in (1, 2, 3)},
    **{f"AveragePooling{n}D": _read_average_pooling for n in (1, 2, 3)},
    **{f"AvgPool{n}D": _read_average_pooling for n in (1, 2, 3)},
    **{f"{kind}{n}D": _read_zero_padding for kind in ("ZeroPadding", "Cropping")
       for n in (1, 2, 3)},
    **{f"SeparableConv{n}D": _read_separable for n in (1, 2)},
    **{f"{kind}{n}D": _read_conv for kind in ("Conv", "Convolution", "DepthwiseConv")
       for n in (1, 2, 3)},
    **{f"Conv{n}DTranspose": _read_conv for n in (1, 2, 3)},
    "BatchNormalization": _read_batch_normalization,
    "Dropout": _read_identity, "SpatialDropout1D": _read_identity,
    "SpatialDropout2D": _read_identity, "SpatialDropout3D": _read_identity,
    "GaussianNoise": _read_identity, "GaussianDropout": _read_identity,
    "AlphaDropout": _read_identity, "ActivityRegularization": _read_identity,
    "Identity": _read_identity, "Activation": _read_activation,
    "Dense": _read_dense, "Flatten": _read_flatten, "Reshape": _read_reshape,
    **{f"GlobalAveragePooling{n}D": _read_global_average_pooling for n in (1, 2, 3)},
    **{f"GlobalAvgPool{n}D": _read_global_average_pooling for n in (1, 2, 3)},
}
"""Keras class name → reader (layer, config, input shape in Keras layout) → layer object.

Dropout and noise layers (``Dropout``, ``SpatialDropout*``, ``GaussianNoise``,
``GaussianDropout``, ``AlphaDropout``) and ``ActivityRegularization`` are identities: Keras
applies them only when called with ``training=True``, and BatchNormalization is read in
inference mode (moving statistics). ``Activation`` is read
only as ``Activation("linear")`` (an identity): :func:`read_keras_layer` refuses every layer
with a non-linear ``activation``, and the activation layers (``ReLU``, ``Softmax``, ...)."""


LINEARIZABLE: dict[str, str] = {
    **{f"{kind}{n}D": "a max over windows" for kind in ("MaxPooling", "MaxPool")
       for n in (1, 2, 3)},
    **{f"{kind}{n}D": "a max over the spatial axes" for kind in ("GlobalMaxPooling",
                                                                  "GlobalMaxPool")
       for n in (1, 2, 3)},
    "LayerNormalization": "it divides by the input's own standard deviation",
    "GroupNormalization": "it divides by the input's own standard deviation",
}
"""Non-linear Keras layers :func:`convmatrix.linearize` linearises at a point (their
refusal by :func:`read_keras_layer` points there)."""


def _supported() -> list[str]:
    return sorted({n[:-2] + "ND" if n[-2:] in ("1D", "2D", "3D") else n for n in KERAS_READERS})


def is_other_keras(obj: Any) -> bool:
    """A Keras model with ``.layers``, or a Keras layer other than a convolution."""
    reader = KERAS_READERS.get(type(obj).__name__)
    if reader is None:
        return hasattr(obj, "layers")
    return reader is not _read_conv


def read_keras_layer(layer: Any, input_shape: Sequence[int], position: int | None = None,
                     *, where: str | None = None, linear_part: bool = False) -> Layer:
    """One live (or duck-typed) Keras layer as a layer object in Keras' layout.

    ``position`` (its index in a ``Sequential``) or ``where`` (how to name it, e.g. a node of a
    functional model) prefix the messages. ``linear_part=True`` reads a layer with a
    non-linear ``activation`` as the affine map before it (the caller linearises the
    activation); by default such a layer is refused.
    """
    name = type(layer).__name__
    title = layer_title(name, _name(layer))
    prefixed = position is not None or where is not None
    if where is None:
        where = (f"`layers[{position}]` ({title})" if position is not None
                 else f"`layer` ({title})")
    reader = KERAS_READERS.get(name)
    if (reader is not None and not linear_part) or name in ACTIVATION_LAYERS:
        check_live_activation(layer, where)
    if name == "Lambda":
        raise ConvMatrixError(
            f"{where} is a Lambda layer: it runs arbitrary Python code, which convmatrix "
            f"neither reads nor runs; write the computation with Keras layers")
    if name in LINEARIZABLE:
        raise ConvMatrixError(
            f"{where} is not linear ({LINEARIZABLE[name]}), so it has no matrix; use "
            f"cm.linearize(model, x) for the network's exact Jacobian at a point x")
    if reader is None:
        raise ConvMatrixError(
            f"{where} is not a linear layer convmatrix can read; supported Keras layers: "
            f"{', '.join(_supported())}")
    config = dict(layer.get_config())
    if linear_part:
        config["activation"] = None
    try:
        # integral floats (4.0) have always been read as sizes here; 4.5 is refused
        return reader(layer, config, as_sample_shape(input_shape, integral_floats=True))
    except ConvMatrixError as error:
        if not prefixed:
            raise
        raise ConvMatrixError(f"{where}: {error}") from None
