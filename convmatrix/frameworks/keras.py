"""Keras 3 / tf.keras convolution layers (serialized configs) as convmatrix specs and matrices."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.frameworks.layout import channels_last_matrix
from convmatrix.sparse import DEFAULT_MAX_BYTES, _as_weight, spec_matrix
from convmatrix.spec import ConvSpec, conv_spec

__all__ = ["KerasLayer", "keras_layer", "keras_matrix", "keras_output_shape"]

_CONV = {"Conv1D": 1, "Conv2D": 2, "Conv3D": 3}
_TRANSPOSE = {"Conv1DTranspose": 1, "Conv2DTranspose": 2, "Conv3DTranspose": 3}
_DEPTHWISE = {"DepthwiseConv1D": 1, "DepthwiseConv2D": 2}
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
    transpose : bool
        The layer is a transposed convolution (its matrix is ``Cᵀ``).
    data_format : str
        ``"channels_last"`` or ``"channels_first"``.
    input_shape, output_shape : tuple of int
        One sample in the layer's own layout (no batch axis).
    """

    class_name: str
    spec: ConvSpec
    weight: np.ndarray
    transpose: bool
    data_format: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]

    @property
    def channels_first_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Input and output shape of one sample, channels first."""
        if self.transpose:
            return self.spec.output_shape, self.spec.input_shape
        return self.spec.input_shape, self.spec.output_shape

    def matrix(self, *, format: str = "csr",
               max_bytes: int | None = DEFAULT_MAX_BYTES) -> sp.sparray:
        """The layer's matrix for vectors flattened in the layer's own layout."""
        matrix = spec_matrix(self.spec, self.weight, transpose=self.transpose,
                             format="csr", max_bytes=max_bytes)
        if self.data_format == "channels_last":
            matrix = channels_last_matrix(matrix, *self.channels_first_shapes)
        return matrix.asformat(format)


def _tuple(config: Mapping[str, Any], key: str, rank: int, default: Any = 1) -> tuple[int, ...]:
    value = config.get(key, default)
    items = list(value) if isinstance(value, list | tuple) else [value] * rank
    if len(items) != rank or any(isinstance(v, bool) or not hasattr(v, "__index__")
                                 or operator.index(v) < 1 for v in items):
        raise ConvMatrixError(f"`{key}` (={value!r}) must be {rank} positive ints")
    return tuple(operator.index(v) for v in items)


def _parse(serialized_layer: Mapping[str, Any]) -> tuple[str, int, dict[str, Any]]:
    if not isinstance(serialized_layer, Mapping) or "config" not in serialized_layer:
        raise ConvMatrixError(
            "`serialized_layer` must be the dict keras.layers.serialize(layer) returns, with "
            "'class_name' and 'config'")
    name = _ALIASES.get(serialized_layer.get("class_name", ""),
                        serialized_layer.get("class_name", ""))
    if name not in SUPPORTED:
        raise ConvMatrixError(
            f"`class_name` (={serialized_layer.get('class_name')!r}) is not supported; use one "
            f"of {', '.join(SUPPORTED)}")
    rank = {**_CONV, **_TRANSPOSE, **_DEPTHWISE}[name]
    return name, rank, dict(serialized_layer["config"])


def _same_padding(n: int, k_eff: int, s: int) -> tuple[int, int]:
    """Keras/TF 'same': output ⌈n/s⌉, total pad max((o − 1)·s + k̂ − n, 0), extra after."""
    o = -(-n // s)
    total = max((o - 1) * s + k_eff - n, 0)
    return total // 2, total - total // 2


def _transpose_length(n: int, k_eff: int, s: int, padding: str, output_padding: int | None) -> int:
    """Keras' own output length of a transposed convolution along one axis."""
    if output_padding is None:
        return n * s + max(k_eff - s, 0) if padding == "valid" else n * s
    pad = k_eff // 2 if padding == "same" else 0
    return (n - 1) * s + k_eff - 2 * pad + output_padding


def keras_layer(
    serialized_layer: Mapping[str, Any], kernel: Any, input_shape: Sequence[int]
) -> KerasLayer:
    """Translate a serialized Keras convolution layer and its kernel into a :class:`KerasLayer`.

    Parameters
    ----------
    serialized_layer : mapping
        ``keras.layers.serialize(layer)`` (``class_name`` and ``config``); JSON-loaded lists
        work.
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
        For unsupported layers, configurations Keras itself rejects (``output_padding`` not
        below ``strides``, ``strides > 1`` with ``dilation_rate > 1``, groups not dividing the
        channels, ...), and kernels or inputs that do not fit the config.
    """
    name, rank, config = _parse(serialized_layer)
    k = _as_weight(kernel)
    data_format = config.get("data_format") or "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ConvMatrixError(
            f"`data_format` (={data_format!r}) must be 'channels_last' or 'channels_first'")
    if any(v is None for v in input_shape):
        raise ConvMatrixError(
            f"`input_shape` (={tuple(input_shape)}) must be fully known: one sample without "
            f"the batch axis and no None sizes")
    ishape = tuple(int(v) for v in input_shape)
    if len(ishape) != rank + 1:
        hint = " (drop the batch axis)" if len(ishape) == rank + 2 else ""
        raise ConvMatrixError(
            f"`input_shape` (={ishape}) must be one sample with {rank} spatial axes and a "
            f"channel axis ({data_format}){hint}")
    channels_last = data_format == "channels_last"
    c_in, spatial = (ishape[-1], ishape[:-1]) if channels_last else (ishape[0], ishape[1:])
    kernel_size = _tuple(config, "kernel_size", rank)
    strides = _tuple(config, "strides", rank)
    dilation = _tuple(config, "dilation_rate", rank)
    padding = str(config.get("padding", "valid")).lower()
    allowed = ("valid", "same", "causal") if name in ("Conv1D",) else ("valid", "same")
    if padding not in allowed:
        raise ConvMatrixError(f"`padding` (={padding!r}) must be one of {allowed} for {name}")
    if max(strides) > 1 and max(dilation) > 1:
        raise ConvMatrixError(
            f"Keras rejects `strides` > 1 together with `dilation_rate` > 1 (strides={strides}, "
            f"dilation_rate={dilation})")
    if tuple(k.shape[:rank]) != kernel_size:
        raise ConvMatrixError(
            f"`kernel` has shape {k.shape}, which does not start with the config's "
            f"kernel_size {kernel_size}")
    k_eff = [d * (kk - 1) + 1 for kk, d in zip(kernel_size, dilation, strict=True)]
    taps_first = tuple(range(rank))  # torch layout: the two channel axes first, reversed
    to_torch = (rank + 1, rank, *taps_first)

    if name in _TRANSPOSE:
        filters = int(config.get("filters") or k.shape[rank])
        if k.shape != (*kernel_size, filters, c_in):
            raise ConvMatrixError(
                f"`kernel` has shape {k.shape}; {name} with filters={filters} on {c_in} input "
                f"channels needs {(*kernel_size, filters, c_in)}")
        out_pad = config.get("output_padding")
        out_pad_t = None if out_pad is None else (
            (out_pad,) * rank if isinstance(out_pad, int) else tuple(out_pad))
        if out_pad_t is not None and (len(out_pad_t) != rank or not all(
                isinstance(a, int) and a >= 0 for a in out_pad_t)):
            raise ConvMatrixError(
                f"`output_padding` (={out_pad!r}) must be None or {rank} non-negative ints "
                f"(one per spatial axis of {name})")
        if out_pad_t is not None and any(a >= s for a, s in zip(out_pad_t, strides, strict=True)):
            raise ConvMatrixError(
                f"Keras requires `output_padding` < `strides` (output_padding={out_pad_t}, "
                f"strides={strides})")
        out_len, pairs = [], []
        for axis in range(rank):
            o = _transpose_length(spatial[axis], k_eff[axis], strides[axis], padding,
                                  None if out_pad_t is None else out_pad_t[axis])
            if padding == "same":
                pair = _same_padding(o, k_eff[axis], strides[axis])
                if -(-o // strides[axis]) != spatial[axis]:
                    raise ConvMatrixError(
                        f"TensorFlow cannot run {name} with padding='same', kernel "
                        f"{kernel_size}, strides {strides}, output_padding {out_pad_t}: along "
                        f"spatial axis {axis} the output length {o} maps back to "
                        f"{-(-o // strides[axis])} inputs, not {spatial[axis]}")
            else:
                pair = (0, 0)
            out_len.append(o)
            pairs.append(pair)
        weight = np.transpose(k, to_torch)  # (C_in, filters, *k)
        spec = ConvSpec(filters, c_in, tuple(out_len), kernel_size, strides, tuple(pairs),
                        dilation, 1, "zeros", spatial)
        out_cf = (filters, *out_len)
        transpose = True
    else:
        if name in _DEPTHWISE:
            multiplier = int(config.get("depth_multiplier") or 1)
            if k.shape != (*kernel_size, c_in, multiplier):
                raise ConvMatrixError(
                    f"`kernel` has shape {k.shape}; {name} with depth_multiplier={multiplier} "
                    f"on {c_in} channels needs {(*kernel_size, c_in, multiplier)}")
            # output channel c·multiplier + m reads input channel c through kernel[..., c, m]
            weight = np.moveaxis(k.reshape(*kernel_size, c_in * multiplier), -1, 0)[:, None]
            groups = c_in
        else:
            groups = int(config.get("groups", 1) or 1)
            filters = int(config.get("filters") or k.shape[-1])
            if groups < 1 or filters % groups or c_in % groups:
                raise ConvMatrixError(
                    f"Keras requires `groups` (={groups}) to divide both filters (={filters}) "
                    f"and the input channels (={c_in})")
            if k.shape != (*kernel_size, c_in // groups, filters):
                raise ConvMatrixError(
                    f"`kernel` has shape {k.shape}; {name} with filters={filters}, "
                    f"groups={groups} on {c_in} input channels needs "
                    f"{(*kernel_size, c_in // groups, filters)}")
            weight = np.transpose(k, to_torch)  # (filters, C_in/groups, *k)
        if padding == "same":
            pairs = [_same_padding(n, ke, s) for n, ke, s in zip(spatial, k_eff, strides,
                                                                  strict=True)]
        elif padding == "causal":
            pairs = [(k_eff[0] - 1, 0)]
        else:
            pairs = [(0, 0)] * rank
        spec = conv_spec(weight.shape, (c_in, *spatial), stride=strides, padding=tuple(pairs),
                         dilation=dilation, groups=groups)
        out_cf = spec.output_shape
        transpose = False
    weight = np.ascontiguousarray(weight)
    output_shape: tuple[int, ...] = (*out_cf[1:], out_cf[0]) if channels_last else out_cf
    return KerasLayer(name, spec, weight, transpose, data_format, ishape, output_shape)


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
    name, rank, config = _parse(serialized_layer)
    data_format = config.get("data_format") or "channels_last"
    ishape = tuple(input_shape)
    if len(ishape) != rank + 1:
        raise ConvMatrixError(f"`input_shape` (={ishape}) must have {rank + 1} axes")
    c_in = ishape[-1] if data_format == "channels_last" else ishape[0]
    kernel_size = _tuple(config, "kernel_size", rank)
    if name in _TRANSPOSE:
        shape = (*kernel_size, config.get("filters", 1), c_in)
    elif name in _DEPTHWISE:
        shape = (*kernel_size, c_in, config.get("depth_multiplier", 1))
    else:
        groups = int(config.get("groups", 1) or 1)
        shape = (*kernel_size, max(c_in // groups, 1), config.get("filters", 1))
    dummy = np.lib.stride_tricks.as_strided(np.zeros(1), shape, [0] * len(shape))
    return keras_layer(serialized_layer, dummy, ishape).output_shape
