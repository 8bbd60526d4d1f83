"""Keras ``Sequential`` models and non-convolution Keras layers as layer objects (Keras layout)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.build.channels_last import channels_last_matrix
from convmatrix.build.sparse import SparseFormat
from convmatrix.layers._separable import SeparableLayer, as_shape, axis_matrix
from convmatrix.layers.base import Layer, shape_text

__all__ = ["KERAS_READERS", "ChannelsLast", "Repeat", "from_keras_other", "from_keras_sequential",
           "is_other_keras", "read_keras_layer"]

KerasReader = Callable[[Any, dict[str, Any], tuple[int, ...]], Layer]


class Repeat(SeparableLayer):
    """Each pixel repeated ``size`` times per spatial axis (Keras ``UpSampling*`` "nearest").

    Examples
    --------
    >>> import numpy as np
    >>> Repeat((1, 2), (3,))(np.array([[1, 2]]))
    array([[1, 1, 1, 2, 2, 2]])
    """

    def __init__(self, input_shape: Sequence[int], size: Sequence[int]) -> None:
        self._input_shape = as_shape(input_shape)
        self.size = tuple(int(s) for s in size)
        if len(self.size) != len(self._input_shape) - 1 or min(self.size) < 1:
            raise ConvMatrixError(
                f"`size` (={size!r}) must be one positive int per spatial axis of "
                f"{self._input_shape}")
        self._output_shape = (self._input_shape[0],
                              *(n * s for n, s in zip(self._input_shape[1:], self.size,
                                                      strict=True)))

    @property
    def dtype(self) -> np.dtype[Any]:
        """int64: a selection."""
        return np.dtype(np.int64)

    def _axis_matrices(self) -> list[sp.csr_array | None]:
        axes: list[sp.csr_array | None] = [None]
        for n, s in zip(self._input_shape[1:], self.size, strict=True):
            rows = np.arange(n * s)
            axes.append(axis_matrix(rows, rows // s, np.ones(n * s, dtype=np.int64),
                                    (n * s, n)))
        return axes

    def _describe(self) -> str:
        return (f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}, "
                f"size {shape_text(self.size)}")


class ChannelsLast(Layer):
    """A channels-first layer object seen in Keras' channels-last layout.

    ``layer(x) == moveaxis(core(moveaxis(x, -1, 0)), 0, -1)``; the matrix is the core's with
    its rows and columns re-indexed.

    Attributes
    ----------
    core : Layer
        The channels-first layer.
    class_name : str
        The Keras class it stands for (used in the repr).
    """

    def __init__(self, core: Layer, class_name: str) -> None:
        self.core = core
        self.class_name = class_name

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(*spatial, C)``."""
        return (*self.core.input_shape[1:], self.core.input_shape[0])

    @property
    def output_shape(self) -> tuple[int, ...]:
        """``(*spatial_out, C_out)``."""
        return (*self.core.output_shape[1:], self.core.output_shape[0])

    @property
    def dtype(self) -> np.dtype[Any]:
        """The core's dtype."""
        return self.core.dtype

    def _nnz_estimate(self) -> int:
        from convmatrix.layers.sequential import nnz_estimate

        return nnz_estimate(self.core)

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        matrix = self.core.matrix("csr", max_bytes=max_bytes)
        return channels_last_matrix(matrix, self.core.input_shape,
                                    self.core.output_shape).asformat(format)

    def offset(self) -> np.ndarray:
        """The core's offset, channels last."""
        return np.moveaxis(self.core.offset().reshape(self.core.output_shape), 0, -1).ravel()

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return np.moveaxis(self.core._apply(np.moveaxis(x, -1, 1)), 1, -1)

    def _apply_adjoint(self, y: np.ndarray) -> np.ndarray:
        return np.moveaxis(self.core._apply_adjoint(np.moveaxis(y, -1, 1)), 1, -1)

    def _adjoint(self) -> Layer:
        return ChannelsLast(self.core.T, f"{self.class_name}ᵀ")

    def _describe(self) -> str:
        return self.core._describe().replace(
            f"{shape_text(self.core.input_shape)} → {shape_text(self.core.output_shape)}",
            f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}")

    def __repr__(self) -> str:
        return f"{self.class_name}({self._describe()})"


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
    from convmatrix.layers.upsample import Upsample

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
    from convmatrix.layers.pool import AvgPool

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
    from convmatrix.layers.pad import Pad

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
    from convmatrix.adapters.torch import _numpy
    from convmatrix.layers.norm import BatchNorm

    axis = config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list | tuple) and len(axis) == 1 else axis
    if axis not in (-1, len(shape) - 1, 0):
        raise ConvMatrixError(
            f"`axis` (={axis!r}) of BatchNormalization must be the channel axis (-1, or 0 "
            f"for channels first)")
    last = axis != 0
    first = (shape[-1], *shape[:-1]) if last else shape
    weights = {key: getattr(layer, key, None) for key in ("gamma", "beta", "moving_mean",
                                                          "moving_variance")}
    if weights["moving_mean"] is None or weights["moving_variance"] is None:
        raise ConvMatrixError("BatchNormalization needs built weights (moving_mean, "
                              "moving_variance)")
    core = BatchNorm(first, _numpy(weights["moving_mean"]),
                     _numpy(weights["moving_variance"]),
                     weight=None if weights["gamma"] is None else _numpy(weights["gamma"]),
                     bias=None if weights["beta"] is None else _numpy(weights["beta"]),
                     eps=float(config.get("epsilon", 1e-3)))
    return _wrap(core, last, "BatchNormalization")


def _read_separable(layer: Any, config: dict[str, Any], shape: tuple[int, ...]) -> Layer:
    """``SeparableConv1D/2D`` = DepthwiseConv (strides, dilation) then a 1×1 Conv (bias)."""
    from convmatrix.layers.keras import from_keras
    from convmatrix.layers.sequential import Sequential

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
    first = from_keras(depthwise, np.asarray(layer.depthwise_kernel), shape)
    bias = getattr(layer, "bias", None) if config.get("use_bias", True) else None
    second = from_keras(pointwise, np.asarray(layer.pointwise_kernel), first.output_shape,
                        bias=None if bias is None else np.asarray(bias))
    return Sequential([first, second])


def _read_identity(layer: Any, config: dict[str, Any], shape: tuple[int, ...]) -> Layer:
    from convmatrix.layers.identity import Identity

    return Identity(shape)


def _read_conv(layer: Any, config: dict[str, Any], shape: tuple[int, ...]) -> Layer:
    from convmatrix.layers.keras import from_keras

    return from_keras(layer, input_shape=shape)


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
    "Identity": _read_identity,
}
"""Keras class name → reader (layer, config, input shape in Keras layout) → layer object.

Dropout layers are identities: Keras applies them only when called with ``training=True``,
and BatchNormalization is read in inference mode (moving statistics)."""

_SKIPPED = frozenset({"InputLayer"})


def _supported() -> list[str]:
    return sorted({n[:-2] + "ND" if n[-2:] in ("1D", "2D", "3D") else n for n in KERAS_READERS})


def is_other_keras(obj: Any) -> bool:
    """A Keras model with ``.layers``, or a Keras layer other than a convolution."""
    reader = KERAS_READERS.get(type(obj).__name__)
    if reader is None:
        return hasattr(obj, "layers")
    return reader is not _read_conv


def from_keras_other(obj: Any, input_shape: Sequence[int] | None) -> Layer:
    """:func:`from_keras_sequential` for a model; otherwise the one layer's reader."""
    if type(obj).__name__ not in KERAS_READERS:
        return from_keras_sequential(obj, input_shape)
    if input_shape is None:
        build = getattr(obj, "get_build_config", lambda: None)() or {}
        shape = build.get("input_shape")
        if shape is None or any(v is None for v in tuple(shape)[1:]):
            raise ConvMatrixError("give `input_shape`: the layer has no fully known input shape")
        input_shape = tuple(shape)[1:]
    return read_keras_layer(obj, input_shape)


def read_keras_layer(layer: Any, input_shape: Sequence[int], position: int | None = None
                     ) -> Layer:
    """One live (or duck-typed) Keras layer as a layer object in Keras' layout."""
    name = type(layer).__name__
    where = f"`layers[{position}]` ({name})" if position is not None else f"`layer` ({name})"
    reader = KERAS_READERS.get(name)
    if reader is None:
        raise ConvMatrixError(
            f"{where} is not a linear layer convmatrix can read; supported Keras layers: "
            f"{', '.join(_supported())}")
    config = dict(layer.get_config())
    try:
        return reader(layer, config, tuple(int(v) for v in input_shape))
    except ConvMatrixError as error:
        if position is None:
            raise
        raise ConvMatrixError(f"{where}: {error}") from None


def from_keras_sequential(model: Any, input_shape: Sequence[int] | None = None) -> Layer:
    """A Keras ``Sequential`` (anything with ``.layers``) as a :class:`~convmatrix.Sequential`.

    Parameters
    ----------
    model : keras.Sequential
        Its ``layers`` are read in order, each through :data:`KERAS_READERS`; ``InputLayer``
        entries are skipped.
    input_shape : sequence of int, optional
        One sample in Keras' layout (channels last unless the layers say otherwise); default:
        ``model.input_shape`` without the batch axis.

    Returns
    -------
    Layer
        A :class:`~convmatrix.Sequential` (or the single layer), in Keras' layout.
    """
    from convmatrix.layers.sequential import Sequential

    if input_shape is None:
        known = getattr(model, "input_shape", None)
        if known is None or any(v is None for v in tuple(known)[1:]):
            raise ConvMatrixError("give `input_shape`: the model has no fully known input shape")
        input_shape = tuple(known)[1:]
    shape = tuple(int(v) for v in input_shape)
    layers: list[Layer] = []
    for position, layer in enumerate(model.layers):
        if type(layer).__name__ in _SKIPPED:
            continue
        layers.append(read_keras_layer(layer, shape, position))
        shape = layers[-1].output_shape
    if not layers:
        raise ConvMatrixError("`model` has no layers to read")
    if math.prod(shape) == 0:
        raise ConvMatrixError("`model` produces an empty output")
    return layers[0] if len(layers) == 1 else Sequential(layers)
