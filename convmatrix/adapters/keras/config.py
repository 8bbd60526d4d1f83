"""Keras 3 / tf.keras convolution configs (serialized layers) as convmatrix specs and matrices.

The translation of one serialized convolution layer (``keras.layers.serialize(layer)``) into
a channels-first :class:`~convmatrix.geometry.spec.ConvSpec`, a torch-layout weight and a
direction, checked the way Keras checks it: :func:`keras_layer` (the :class:`KerasLayer`
record), :func:`keras_matrix`, :func:`keras_output_shape`. Nothing here imports Keras.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.keras.activations import check_activation, layer_title
from convmatrix.builder.channels_last import channels_last_matrix
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES, spec_matrix
from convmatrix.builder.weights import as_weight
from convmatrix.geometry import shapes
from convmatrix.geometry.spec import (
    ConvSpec,
    as_int,
    as_sample_shape,
    check_bounded,
    conv_spec,
    sequence_items,
)
from convmatrix.geometry.view import check_direction
from convmatrix.typing import Direction

__all__ = ["SUPPORTED", "KerasLayer", "keras_layer", "keras_matrix", "keras_output_shape"]

_CONV = {"Conv1D": 1, "Conv2D": 2, "Conv3D": 3}
_TRANSPOSE = {"Conv1DTranspose": 1, "Conv2DTranspose": 2, "Conv3DTranspose": 3}
_DEPTHWISE = {"DepthwiseConv1D": 1, "DepthwiseConv2D": 2}
_SEPARABLE = ("SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D",
              "SeparableConvolution2D")
_ALIASES = {"Convolution1D": "Conv1D", "Convolution2D": "Conv2D", "Convolution3D": "Conv3D",
            "Convolution2DTranspose": "Conv2DTranspose",
            "Convolution3DTranspose": "Conv3DTranspose"}
SUPPORTED = (*_CONV, *_TRANSPOSE, *_DEPTHWISE)


@dataclass(frozen=True)
class KerasLayer:
    """A Keras convolution layer translated to convmatrix terms.

    Attributes
    ----------
    class_name : str
        The Keras class (``"Conv2DTranspose"``, ...).
    spec : ConvSpec
        The forward convolution (for a transposed layer: the convolution whose transpose it is),
        channels first.
    weight : ndarray
        The kernel in torch layout: ``spec.weight_shape``.
    direction : {"forward", "adjoint"}
        ``"adjoint"``: the layer is a transposed convolution (its matrix is ``Cᵀ`` of ``spec``).
    data_format : str
        ``"channels_last"`` or ``"channels_first"``.
    input_shape, output_shape : tuple of int
        One sample in the layer's own layout (no batch axis).
    """

    class_name: str
    spec: ConvSpec
    weight: np.ndarray
    direction: Direction
    data_format: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if isinstance(self.direction, bool):  # 0.1's bool field `transpose`
            warnings.warn(
                "KerasLayer with a bool `transpose` is deprecated and will be removed in "
                "convmatrix 0.3; pass direction='forward' or 'adjoint'", DeprecationWarning,
                stacklevel=3)
            object.__setattr__(self, "direction", "adjoint" if self.direction else "forward")
        check_direction(self.direction)

    @property
    def transpose(self) -> bool:
        """Deprecated: ``direction == "adjoint"``."""
        warnings.warn(
            "KerasLayer.transpose is deprecated and will be removed in convmatrix 0.3; use "
            "KerasLayer.direction ('forward' or 'adjoint')", DeprecationWarning, stacklevel=2)
        return self.direction == "adjoint"

    @property
    def channels_first_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Input and output shape of one sample, channels first."""
        if self.direction == "adjoint":
            return self.spec.output_shape, self.spec.input_shape
        return self.spec.input_shape, self.spec.output_shape

    def matrix(self, *, format: str = "csr",
               max_bytes: int | None = DEFAULT_MAX_BYTES) -> sp.sparray:
        """The layer's matrix for vectors flattened in the layer's own layout."""
        matrix = spec_matrix(self.spec, self.weight, direction=self.direction,
                             format="csr", max_bytes=max_bytes)
        if self.data_format == "channels_last":
            matrix = channels_last_matrix(matrix, *self.channels_first_shapes)
        return matrix.asformat(format)


def _tuple(config: Mapping[str, Any], key: str, rank: int, default: Any = 1) -> tuple[int, ...]:
    """A config entry given as one int or ``rank`` ints, each positive (numpy ints welcome)."""
    value = config.get(key, default)
    items = sequence_items(value)
    items = (value,) * rank if items is None else items
    if len(items) != rank or any(isinstance(v, bool) or not hasattr(v, "__index__")
                                 or as_int(v, key) < 1 for v in items):
        raise ConvMatrixError(f"`{key}` (={value!r}) must be {rank} positive ints")
    result = tuple(as_int(v, key) for v in items)
    for v in result:
        check_bounded(v, key, minimum=1, shown=value)
    return result


def _count(config: Mapping[str, Any], key: str, default: int | None) -> int | None:
    """A positive int config entry (``filters``, ``groups``, ``depth_multiplier``) or default."""
    value = config.get(key)
    if value is None:
        return default
    return check_bounded(as_int(value, key), key, minimum=1, shown=value)


def _parse(serialized_layer: Mapping[str, Any]) -> tuple[str, int, dict[str, Any]]:
    if not isinstance(serialized_layer, Mapping) or "config" not in serialized_layer:
        raise ConvMatrixError(
            "`serialized_layer` must be the dict keras.layers.serialize(layer) returns, with "
            "'class_name' and 'config'")
    name = _ALIASES.get(serialized_layer.get("class_name", ""),
                        serialized_layer.get("class_name", ""))
    if name in _SEPARABLE:
        raise ConvMatrixError(
            f"`class_name` (={name!r}) is not a single convolution (a depthwise convolution "
            f"followed by a pointwise one): pass the live layer to convmatrix.from_keras, "
            f"which returns the stack of the two, or translate its halves as "
            f"DepthwiseConv{name[-2:]} and Conv{name[-2:]} with kernel_size 1")
    if name not in SUPPORTED:
        raise ConvMatrixError(
            f"`class_name` (={serialized_layer.get('class_name')!r}) is not supported; use one "
            f"of {', '.join(SUPPORTED)}")
    rank = {**_CONV, **_TRANSPOSE, **_DEPTHWISE}[name]
    if not isinstance(serialized_layer["config"], Mapping):
        raise ConvMatrixError(
            f"`serialized_layer['config']` (={serialized_layer['config']!r}) must be a dict")
    return name, rank, dict(serialized_layer["config"])


def _sample_shape(input_shape: Any, rank: int, data_format: str) -> tuple[int, ...]:
    """One sample's shape: ``rank + 1`` positive ints (numpy ints welcome, floats refused)."""
    items = sequence_items(input_shape)
    if items is not None and any(v is None for v in items):
        raise ConvMatrixError(
            f"`input_shape` (={items}) must be fully known: one sample without "
            f"the batch axis and no None sizes")
    return as_sample_shape(input_shape, rank=rank + 1,
                        layout=f"with {rank} spatial axes and a channel axis ({data_format})")


def _output_padding(config: Mapping[str, Any], rank: int, name: str) -> tuple[int, ...] | None:
    out_pad = config.get("output_padding")
    if out_pad is None:
        return None
    items = sequence_items(out_pad)
    items = (out_pad,) * rank if items is None else items
    if len(items) != rank or any(isinstance(a, bool) or not hasattr(a, "__index__")
                                 for a in items):
        raise ConvMatrixError(
            f"`output_padding` (={out_pad!r}) must be None or {rank} non-negative ints "
            f"(one per spatial axis of {name})")
    result = tuple(as_int(a, "output_padding") for a in items)
    for a in result:
        check_bounded(a, "output_padding", minimum=0, shown=out_pad)
    return result


@dataclass(frozen=True)
class _Geometry:
    """A Keras layer's geometry, before any kernel values are touched."""

    name: str
    spec: ConvSpec
    kind: str  # "conv", "transpose" or "depthwise"
    data_format: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...]
    groups: int


def _geometry(serialized_layer: Mapping[str, Any], kernel_shape: tuple[int, ...] | None,
              input_shape: Any) -> _Geometry:
    """Validate a serialized layer against a kernel shape (None: the config's) and an input."""
    name, rank, config = _parse(serialized_layer)
    data_format = config.get("data_format") or "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ConvMatrixError(
            f"`data_format` (={data_format!r}) must be 'channels_last' or 'channels_first'")
    ishape = _sample_shape(input_shape, rank, data_format)
    channels_last = data_format == "channels_last"
    c_in, spatial = (ishape[-1], ishape[:-1]) if channels_last else (ishape[0], ishape[1:])
    kernel_size = _tuple(config, "kernel_size", rank)
    strides = _tuple(config, "strides", rank)
    dilation = _tuple(config, "dilation_rate", rank)
    padding = str(config.get("padding", "valid")).lower()
    allowed = ("valid", "same", "causal") if name in ("Conv1D",) else ("valid", "same")
    if padding not in allowed:
        raise ConvMatrixError(f"`padding` (={padding!r}) must be one of {allowed} for {name}")
    if name not in _DEPTHWISE and max(strides) > 1 and max(dilation) > 1:
        raise ConvMatrixError(
            f"Keras rejects `strides` > 1 together with `dilation_rate` > 1 for {name} "
            f"(strides={strides}, dilation_rate={dilation}); only DepthwiseConv layers allow "
            f"both")
    if kernel_shape is not None and tuple(kernel_shape[:rank]) != kernel_size:
        raise ConvMatrixError(
            f"`kernel` has shape {kernel_shape}, which does not start with the config's "
            f"kernel_size {kernel_size}")

    if name in _TRANSPOSE:
        filters = _count(config, "filters", None if kernel_shape is None
                         else kernel_shape[rank] if len(kernel_shape) > rank else None) or 1
        needed = (*kernel_size, filters, c_in)
        out_pad = _output_padding(config, rank, name)
        if out_pad is not None and any(a >= s for a, s in zip(out_pad, strides, strict=True)):
            raise ConvMatrixError(
                f"Keras requires `output_padding` < `strides` (output_padding={out_pad}, "
                f"strides={strides})")
        if kernel_shape is not None and tuple(kernel_shape) != needed:
            raise ConvMatrixError(
                f"`kernel` has shape {kernel_shape}; {name} with filters={filters} on {c_in} "
                f"input channels needs {needed}")
        out_len, pairs = [], []
        for axis in range(rank):
            k, s, d = kernel_size[axis], strides[axis], dilation[axis]
            o = shapes.keras_transpose_output_length(
                spatial[axis], k, s, d, padding, None if out_pad is None else out_pad[axis])
            if padding == "same":
                pair = shapes.same_padding_tf(o, k, s, d)
                if -(-o // s) != spatial[axis]:
                    raise ConvMatrixError(
                        f"TensorFlow cannot run {name} with padding='same', kernel "
                        f"{kernel_size}, strides {strides}, output_padding {out_pad}: along "
                        f"spatial axis {axis} the output length {o} maps back to "
                        f"{-(-o // s)} inputs, not {spatial[axis]}")
            else:
                pair = (0, 0)
            out_len.append(o)
            pairs.append(pair)
        spec = ConvSpec(filters, c_in, tuple(out_len), kernel_size, strides, tuple(pairs),
                        dilation, 1, "zeros", spatial)
        out_cf: tuple[int, ...] = (filters, *out_len)
        kind, groups = "transpose", 1
    else:
        if name in _DEPTHWISE:
            multiplier = _count(config, "depth_multiplier", 1) or 1
            needed = (*kernel_size, c_in, multiplier)
            if kernel_shape is not None and tuple(kernel_shape) != needed:
                raise ConvMatrixError(
                    f"`kernel` has shape {kernel_shape}; {name} with depth_multiplier="
                    f"{multiplier} on {c_in} channels needs {needed}")
            weight_shape = (c_in * multiplier, 1, *kernel_size)
            kind, groups = "depthwise", c_in
        else:
            groups = _count(config, "groups", 1) or 1
            filters = _count(config, "filters", None if kernel_shape is None
                             else kernel_shape[-1]) or 1
            if filters % groups or c_in % groups:
                raise ConvMatrixError(
                    f"Keras requires `groups` (={groups}) to divide both filters (={filters}) "
                    f"and the input channels (={c_in})")
            needed = (*kernel_size, c_in // groups, filters)
            if kernel_shape is not None and tuple(kernel_shape) != needed:
                raise ConvMatrixError(
                    f"`kernel` has shape {kernel_shape}; {name} with filters={filters}, "
                    f"groups={groups} on {c_in} input channels needs {needed}")
            weight_shape = (filters, c_in // groups, *kernel_size)
            kind = "conv"
        if padding == "same":
            pairs = [shapes.same_padding_tf(n, k, s, d) for n, k, s, d in zip(
                spatial, kernel_size, strides, dilation, strict=True)]
        elif padding == "causal":
            pairs = [shapes.causal_padding(kernel_size[0], dilation[0])]
        else:
            pairs = [(0, 0)] * rank
        spec = conv_spec(weight_shape, (c_in, *spatial), stride=strides, padding=tuple(pairs),
                         dilation=dilation, groups=groups)
        out_cf = spec.output_shape
    output_shape = (*out_cf[1:], out_cf[0]) if channels_last else out_cf
    return _Geometry(name, spec, kind, data_format, ishape, output_shape, needed, groups)


def keras_layer(
    serialized_layer: Mapping[str, Any], kernel: Any, input_shape: Sequence[int]
) -> KerasLayer:
    """Translate a serialized Keras convolution layer and its kernel into a :class:`KerasLayer`.

    Parameters
    ----------
    serialized_layer : mapping
        ``keras.layers.serialize(layer)`` (``class_name`` and ``config``); JSON-loaded lists
        and numpy integers work.
    kernel : array_like
        ``layer.kernel``: ``(*k, C_in/groups, filters)`` (Conv), ``(*k, filters, C_in)``
        (ConvTranspose) or ``(*k, C_in, depth_multiplier)`` (DepthwiseConv).
    input_shape : sequence of int
        One sample in the layer's ``data_format``, no batch axis, e.g. ``(H, W, C)``.

    Returns
    -------
    KerasLayer

    Raises
    ------
    ConvMatrixError
        For unsupported layers (``SeparableConv`` is a stack of two), a non-linear
        ``activation``, configurations Keras
        itself rejects (``output_padding`` not below ``strides``, ``strides > 1`` with
        ``dilation_rate > 1`` outside DepthwiseConv, groups not dividing the channels, ...),
        non-integer or non-positive sizes, and kernels or inputs that do not fit the config.

    Notes
    -----
    ``DepthwiseConv1D/2D`` with ``strides > 1`` *and* ``dilation_rate > 1`` (allowed since
    Keras 3.15) is the dilated, strided depthwise convolution, with "same" padding split by
    the usual rule on the dilated kernel; that is what Keras' JAX and torch backends compute.
    TensorFlow's own kernels do not run this combination, so no TF oracle vectors exist for it.
    A non-linear ``activation`` (anything but ``"linear"`` or None) is refused: the layer then
    has no matrix.
    """
    name, _, config = _parse(serialized_layer)
    check_activation(config.get("activation"),
                     f"`serialized_layer` ({layer_title(name, config.get('name'))})")
    k = as_weight(kernel)
    geometry = _geometry(serialized_layer, tuple(k.shape), input_shape)
    rank = geometry.spec.ndim
    if geometry.kind == "depthwise":
        # output channel c·multiplier + m reads input channel c through kernel[..., c, m]
        weight = np.moveaxis(k.reshape(*k.shape[:rank], -1), -1, 0)[:, None]
    else:  # Keras' (*k, a, b) -> torch's (b, a, *k) for both Conv and ConvTranspose
        weight = np.transpose(k, (rank + 1, rank, *range(rank)))
    return KerasLayer(geometry.name, geometry.spec, np.ascontiguousarray(weight),
                      "adjoint" if geometry.kind == "transpose" else "forward",
                      geometry.data_format,
                      geometry.input_shape, geometry.output_shape)


def keras_matrix(
    serialized_layer: Mapping[str, Any],
    kernel: Any,
    input_shape: Sequence[int],
    *,
    format: str = "csr",
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> sp.sparray:
    """Matrix of a Keras convolution layer, for vectors flattened in the layer's own layout.

    ``C @ x.reshape(-1) == layer(x[None]).numpy().reshape(-1)`` without the bias, for one
    sample ``x`` of shape ``input_shape`` (channels last unless the config says otherwise).
    No TensorFlow or Keras import is needed.

    Parameters
    ----------
    serialized_layer : mapping
        ``keras.layers.serialize(layer)``: ``Conv1D/2D/3D`` (strides, dilation_rate, groups,
        padding valid/same, causal for Conv1D), ``Conv1D/2D/3DTranspose`` (valid/same,
        output_padding None or given) or ``DepthwiseConv1D/2D`` (depth_multiplier);
        ``data_format`` channels_last or channels_first.
    kernel : array_like
        ``layer.kernel`` in Keras' layout.
    input_shape : sequence of int
        One sample, no batch axis, in the layer's ``data_format``.
    format : {"csr", "csc", "coo"}, optional
        Layout of the result.
    max_bytes : int or None, optional
        Memory guard, as in :func:`convmatrix.conv_matrix`.

    Returns
    -------
    scipy.sparse array, shape ``(∏output_shape, ∏input_shape)``

    Examples
    --------
    The seed: ``Conv2DTranspose(1, 2)`` with a ones kernel on a 2×2 ones input.

    >>> import numpy as np
    >>> layer = {"class_name": "Conv2DTranspose",
    ...          "config": {"filters": 1, "kernel_size": [2, 2], "strides": [1, 1],
    ...                     "padding": "valid", "data_format": "channels_last"}}
    >>> CT = keras_matrix(layer, np.ones((2, 2, 1, 1)), (2, 2, 1))
    >>> (CT @ np.ones(4)).reshape(3, 3)
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    return keras_layer(serialized_layer, kernel, input_shape).matrix(format=format,
                                                                      max_bytes=max_bytes)


def keras_output_shape(
    serialized_layer: Mapping[str, Any], input_shape: Sequence[int]
) -> tuple[int, ...]:
    """Output shape (one sample, the layer's layout) of a serialized Keras layer.

    Examples
    --------
    >>> layer = {"class_name": "Conv2DTranspose",
    ...          "config": {"filters": 1, "kernel_size": [2, 2], "strides": [1, 1]}}
    >>> keras_output_shape(layer, (3, 3, 1))   # the seed's (1, 3, 3, 1) -> (1, 4, 4, 1)
    (4, 4, 1)
    """
    return _geometry(serialized_layer, None, input_shape).output_shape
