"""Keras convolution layers as layer objects in Keras' own layout (channels last by default)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.keras import KerasLayer, keras_layer
from convmatrix.build.channels_last import channels_last_matrix
from convmatrix.build.sparse import SparseFormat
from convmatrix.geometry.view import ConvView
from convmatrix.layers.base import Layer, shape_text
from convmatrix.layers.conv import ConvLayer, _as_bias

if TYPE_CHECKING:
    from convmatrix.symbolic.explain import Explanation
    from convmatrix.verification import VerificationResult

__all__ = ["KerasConv", "from_keras"]


class KerasConv(Layer):
    """A Keras convolution layer: its matrix and offset act on Keras-flattened samples.

    ``layer.matrix() @ x.ravel() + layer.offset() == keras_layer(x[None])[0].ravel()`` for a
    sample ``x`` of shape :attr:`input_shape` in the layer's ``data_format`` (channels last
    unless its config says otherwise). :attr:`torch` is the same layer in convmatrix's
    channels-first torch terms (a :class:`~convmatrix.Conv` or
    :class:`~convmatrix.ConvTranspose`).

    Attributes
    ----------
    class_name : str
        The Keras class (``"Conv2DTranspose"``, ...).
    data_format : str
        ``"channels_last"`` or ``"channels_first"``.
    torch : ConvLayer
        The channels-first layer object.
    """

    def __init__(self, converted: KerasLayer, bias: Any = None) -> None:
        self._converted = converted
        self.class_name = converted.class_name
        self.data_format = converted.data_format
        out_channels = (converted.spec.in_channels if converted.transpose
                        else converted.spec.out_channels)
        core_bias = _as_bias(bias, out_channels)
        self.torch: ConvLayer = _core_layer(converted, core_bias)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample in the layer's layout."""
        return self._converted.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """One output sample in the layer's layout."""
        return self._converted.output_shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """The kernel's dtype."""
        return self.torch.dtype

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        matrix = self.torch.matrix("csr", max_bytes=max_bytes)
        if self.data_format == "channels_last":
            matrix = channels_last_matrix(matrix, self.torch.input_shape,
                                          self.torch.output_shape)
        return matrix.asformat(format)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return self._from_core(self.torch._apply(self._to_core(x)))

    def _apply_adjoint(self, y: np.ndarray) -> np.ndarray:
        return self._from_core(self.torch._apply_adjoint(self._to_core(y)))

    def _to_core(self, batch: np.ndarray) -> np.ndarray:
        """A batch in the layer's layout → channels first (the core layer's)."""
        return np.moveaxis(batch, -1, 1) if self.data_format == "channels_last" else batch

    def _from_core(self, batch: np.ndarray) -> np.ndarray:
        if self.data_format == "channels_first":
            return batch
        return np.ascontiguousarray(np.moveaxis(batch, 1, -1))

    def offset(self) -> np.ndarray:
        """The bias in the layer's layout (zeros without one)."""
        if self.torch.bias is None or self.data_format == "channels_first":
            return self.torch.offset()
        return np.tile(self.torch.bias, math.prod(self.torch.output_shape[1:]))

    def verify(self, *, seed: int = 0) -> VerificationResult:
        """The channels-first layer's verification (see :meth:`ConvLayer.verify`)."""
        return self.torch.verify(seed=seed)

    def explain(self, x: Any = None) -> Explanation:
        """The channels-first layer's symbolic explanation, titled with the Keras class.

        ``x``, if given, is one sample in the layer's own layout.
        """
        from convmatrix.symbolic.explain import explain_spec

        x_first = None if x is None else self._channels_first(np.asarray(x))
        return explain_spec(self.torch.spec, self._converted.transpose, title=self.class_name,
                            weight=None if x is None else self.torch.weight, x=x_first)

    def report(self, x: Any = None) -> str:
        """A Markdown derivation report (text only; the CLI adds figures)."""
        from convmatrix.reports.layer import layer_report

        return layer_report(self, x=x, figures=False).markdown

    def conv_view(self) -> ConvView:
        """The channels-first core's convolution, titled with the Keras class, in this layout."""
        core = self.torch.conv_view()
        return ConvView(core.spec, core.weight, core.direction, self.class_name,
                        self.data_format)  # type: ignore[arg-type]

    def _channels_first(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self.input_shape:
            raise ConvMatrixError(f"`x` has shape {x.shape}; the layer takes {self.input_shape}")
        return np.moveaxis(x, -1, 0) if self.data_format == "channels_last" else x

    def _describe(self) -> str:
        c_in, c_out = self.torch.input_shape[0], self.torch.output_shape[0]
        geometry = self.torch._geometry_text()
        return ", ".join([f"{c_in}→{c_out}", f"{shape_text(self.input_shape)} → "
                          f"{shape_text(self.output_shape)}", *geometry])

    def __repr__(self) -> str:
        return f"{self.class_name}({self._describe()})"


def _core_layer(converted: KerasLayer, bias: np.ndarray | None) -> ConvLayer:
    from convmatrix.layers.conv import Conv, ConvTranspose

    spec = converted.spec
    if converted.transpose:
        return ConvTranspose(converted.weight, spec.output_shape, stride=spec.stride,
                             padding=spec.padding, output_padding=spec.remainder,
                             dilation=spec.dilation, groups=spec.groups, bias=bias)
    return Conv(converted.weight, spec.input_shape, stride=spec.stride, padding=spec.padding,
                dilation=spec.dilation, groups=spec.groups, padding_mode=spec.padding_mode,
                bias=bias)


def from_keras(layer_or_serialized: Any, kernel: Any = None,
               input_shape: Sequence[int] | None = None, *, bias: Any = None) -> Layer:
    """The layer object of a Keras convolution layer (or model), in Keras' own layout.

    A Keras ``Sequential`` (anything with ``.layers``) becomes a :class:`~convmatrix.Sequential`
    and the other linear Keras layers (``UpSampling*``, ``AveragePooling*``, ``ZeroPadding*``,
    ``Cropping*``, ``BatchNormalization``, ``SeparableConv1D/2D``, ...) their layer objects:
    see :func:`convmatrix.layers.keras_stack.from_keras_sequential`.

    Parameters
    ----------
    layer_or_serialized : keras layer or mapping
        A built live layer (read through ``get_config()``, ``kernel`` and ``bias``; nothing
        is imported), or the dict ``keras.layers.serialize(layer)`` returns.
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
        (or another layer object for a model or a non-convolution layer)

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
    if not isinstance(layer_or_serialized, Mapping):
        from convmatrix.layers.keras_stack import from_keras_other, is_other_keras

        if is_other_keras(layer_or_serialized):
            return from_keras_other(layer_or_serialized, input_shape)
    if isinstance(layer_or_serialized, Mapping):
        if kernel is None or input_shape is None:
            raise ConvMatrixError(
                "a serialized Keras layer needs `kernel` (its weights in Keras layout) and "
                "`input_shape` (one sample, no batch axis)")
        return KerasConv(keras_layer(layer_or_serialized, kernel, input_shape), bias)
    live = layer_or_serialized
    if not hasattr(live, "get_config"):
        raise ConvMatrixError(
            f"`layer_or_serialized` (={type(live).__name__}) must be a Keras layer or the dict "
            f"keras.layers.serialize(layer) returns")
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
        bias = np.asarray(live.bias)
    if input_shape is None:
        build = getattr(live, "get_build_config", lambda: None)() or {}
        shape = build.get("input_shape")
        if shape is None or any(v is None for v in tuple(shape)[1:]):
            raise ConvMatrixError("give `input_shape`: the layer has no fully known input shape")
        input_shape = tuple(shape)[1:]
    return KerasConv(keras_layer(serialized, np.asarray(kernel), input_shape), bias)
