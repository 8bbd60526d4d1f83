"""Layers that act on channels-last samples ``(*spatial, C)``: a channels-first layer re-indexed.

Two kinds, both framework-neutral (the frameworks' readers in :mod:`convmatrix.adapters` build
them):

- :class:`KerasConv`: a convolution (a :class:`~convmatrix.Conv` or
  :class:`~convmatrix.ConvTranspose` core) in a named layout, titled with the class it stands
  for (Keras' ``Conv2D``, ``Conv2DTranspose``, ...); built from a core or from a spec and weight.
- :class:`ChannelsLast`: any channels-first layer seen in the channels-last layout.

Their matrix is the core's with rows and columns permuted
(:func:`~convmatrix.builder.channels_last.channels_last_matrix`).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.channels_last import channels_last_matrix
from convmatrix.builder.sparse import SparseFormat
from convmatrix.geometry.shapes import shape_text
from convmatrix.geometry.spec import ConvSpec
from convmatrix.geometry.view import ConvView
from convmatrix.layers.base import Layer
from convmatrix.layers.conv import ConvLayer
from convmatrix.typing import Direction, Layout

if TYPE_CHECKING:
    from convmatrix.geometry.view import AxisSteps
    from convmatrix.symbolic.explain import Explanation
    from convmatrix.verification import VerificationResult

__all__ = ["ChannelsLast", "KerasConv", "conv_layer"]

_LAYOUTS: tuple[Layout, ...] = ("channels_last", "channels_first")


def conv_layer(spec: ConvSpec, weight: Any, *, direction: Direction = "forward",
               bias: Any = None) -> ConvLayer:
    """The channels-first layer object of a forward spec and weight.

    ``direction="forward"``: the :class:`~convmatrix.Conv` of ``spec``; ``"adjoint"``: the
    :class:`~convmatrix.ConvTranspose` whose matrix is ``Cᵀ`` of ``spec``. ``bias`` has one
    value per output channel of that layer.
    """
    return ConvLayer.from_spec(spec, weight, direction=direction, bias=bias)


def _channels_last_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*shape[1:], shape[0])


class KerasConv(Layer):
    """A convolution in a framework's layout: its matrix and offset act on that layout's samples.

    ``layer.matrix() @ x.ravel() + layer.offset() == keras_layer(x[None])[0].ravel()`` for a
    sample ``x`` of shape :attr:`input_shape` in the layer's ``data_format`` (channels last
    unless its config says otherwise). :attr:`torch` is the same layer in convmatrix's
    channels-first torch terms (a :class:`~convmatrix.Conv` or
    :class:`~convmatrix.ConvTranspose`). :func:`convmatrix.from_keras` builds it from a Keras
    layer; nothing here knows Keras.

    Parameters
    ----------
    core : Conv or ConvTranspose
        The channels-first layer (with its bias).
    class_name : str
        The class the layer stands for (``"Conv2DTranspose"``, ...): its title.
    data_format : {"channels_last", "channels_first"}, optional
        How the layer flattens its samples.

    Attributes
    ----------
    class_name : str
        The class it stands for (``"Conv2DTranspose"``, ...).
    data_format : str
        ``"channels_last"`` or ``"channels_first"``.
    torch : ConvLayer
        The channels-first layer object.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> layer = KerasConv(cm.Conv(np.ones((2, 1, 2, 2)), (1, 3, 3)), "Conv2D")
    >>> layer
    Conv2D(1→2, 3×3×1 → 2×2×2, kernel 2×2)
    >>> layer(np.ones((3, 3, 1)))[..., 1]
    array([[4., 4.],
           [4., 4.]])
    """

    def __init__(self, core: ConvLayer, class_name: Any = None,
                 data_format: Layout = "channels_last") -> None:
        if not isinstance(core, Layer) and hasattr(core, "spec") and hasattr(core, "weight"):
            warnings.warn(
                "KerasConv(converted, bias) is deprecated and will be removed in convmatrix 0.3; "
                "use convmatrix.from_keras, KerasConv(core, class_name, data_format) or "
                "KerasConv.from_spec", DeprecationWarning, stacklevel=2)
            record, bias = core, class_name
            direction = getattr(record, "direction", None)
            core = conv_layer(record.spec, record.weight, bias=bias,
                              direction=direction or "forward")
            class_name, data_format = record.class_name, record.data_format
        if not isinstance(core, ConvLayer):
            raise ConvMatrixError(
                f"`core` (={core!r}) must be a channels-first convolution layer (cm.Conv or "
                f"cm.ConvTranspose)")
        if not isinstance(class_name, str):
            raise ConvMatrixError(f"`class_name` (={class_name!r}) must be a str")
        if data_format not in _LAYOUTS:
            raise ConvMatrixError(
                f"`data_format` (={data_format!r}) must be 'channels_last' or 'channels_first'")
        self.class_name = class_name
        self.data_format: Layout = data_format
        self.torch: ConvLayer = core

    @classmethod
    def from_spec(cls, spec: ConvSpec, weight: Any, *, class_name: str,
                  direction: Direction = "forward", data_format: Layout = "channels_last",
                  bias: Any = None) -> KerasConv:
        """The layer of a forward spec and torch-layout weight (see :func:`conv_layer`).

        ``direction="adjoint"``: the layer is the transposed convolution ``Cᵀ`` of ``spec``.
        """
        return cls(conv_layer(spec, weight, direction=direction, bias=bias), class_name,
                   data_format)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample in the layer's layout."""
        shape = self.torch.input_shape
        return _channels_last_shape(shape) if self.data_format == "channels_last" else shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """One output sample in the layer's layout."""
        shape = self.torch.output_shape
        return _channels_last_shape(shape) if self.data_format == "channels_last" else shape

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

    def apply_forward(self, x: np.ndarray) -> np.ndarray:
        """The linear part on a batch (see :meth:`Layer.apply_forward`)."""
        return self._from_core(self.torch.apply_forward(self._to_core(x)))

    def apply_adjoint(self, y: np.ndarray) -> np.ndarray:
        """The adjoint on a batch (see :meth:`Layer.apply_adjoint`)."""
        return self._from_core(self.torch.apply_adjoint(self._to_core(y)))

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
        """The channels-first layer's symbolic explanation, titled with the class name.

        ``x``, if given, is one sample in the layer's own layout.
        """
        from convmatrix.symbolic.explain import explain_spec

        view = self.torch.conv_view()
        x_first = None if x is None else self._channels_first(np.asarray(x))
        return explain_spec(view.spec, direction=view.direction, title=self.class_name,
                            weight=None if x is None else view.weight, x=x_first)

    def conv_view(self) -> ConvView:
        """The channels-first core's convolution, titled with the class name, in this layout."""
        core = self.torch.conv_view()
        return ConvView(core.spec, core.weight, core.direction, self.class_name,
                        self.data_format)

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


class ChannelsLast(Layer):
    """A channels-first layer object seen in the channels-last layout.

    ``layer(x) == moveaxis(core(moveaxis(x, -1, 0)), 0, -1)``; the matrix is the core's with
    its rows and columns re-indexed.

    Attributes
    ----------
    core : Layer
        The channels-first layer.
    class_name : str
        The class it stands for (Keras' ``UpSampling2D``, ...; used in the repr).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> up = ChannelsLast(cm.Upsample((2, 2), scale_factor=2), "UpSampling1D")
    >>> up
    UpSampling1D(2×2 → 4×2, nearest)
    >>> up(np.array([[1, 2], [3, 4]])).tolist()   # (length, channels)
    [[1, 2], [1, 2], [3, 4], [3, 4]]
    """

    def __init__(self, core: Layer, class_name: str) -> None:
        self.core = core
        self.class_name = class_name

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(*spatial, C)``."""
        return _channels_last_shape(self.core.input_shape)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """``(*spatial_out, C_out)``."""
        return _channels_last_shape(self.core.output_shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The core's dtype."""
        return self.core.dtype

    def _nnz_estimate(self) -> int:
        from convmatrix.builder.budget import nnz_estimate

        return nnz_estimate(self.core)

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        matrix = self.core.matrix("csr", max_bytes=max_bytes)
        return channels_last_matrix(matrix, self.core.input_shape,
                                    self.core.output_shape).asformat(format)

    def offset(self) -> np.ndarray:
        """The core's offset, channels last."""
        return np.moveaxis(self.core.offset().reshape(self.core.output_shape), 0, -1).ravel()

    def apply_forward(self, x: np.ndarray) -> np.ndarray:
        """The linear part on a batch (see :meth:`Layer.apply_forward`)."""
        return np.moveaxis(self.core.apply_forward(np.moveaxis(x, -1, 1)), 1, -1)

    def apply_adjoint(self, y: np.ndarray) -> np.ndarray:
        """The adjoint on a batch (see :meth:`Layer.apply_adjoint`)."""
        return np.moveaxis(self.core.apply_adjoint(np.moveaxis(y, -1, 1)), 1, -1)

    def _adjoint(self) -> Layer:
        return ChannelsLast(self.core.T, f"{self.class_name}ᵀ")

    # hooks of the analyses: the core's, re-indexed channels last
    @property
    def layout(self) -> Layout:
        """``"channels_last"``."""
        return "channels_last"

    def path_matrix(self) -> sp.csr_array:
        """The core's path matrix, rows and columns re-indexed channels last."""
        return sp.csr_array(channels_last_matrix(self.core.path_matrix(), self.core.input_shape,
                                                 self.core.output_shape))

    def own_interior(self) -> np.ndarray:
        """The core's interior, channels last."""
        own = self.core.own_interior().reshape(self.core.output_shape)
        return np.moveaxis(own, 0, -1).ravel()

    def axis_steps(self) -> AxisSteps | None:
        """The core's (the spatial axes are the same)."""
        return self.core.axis_steps()

    def _describe(self) -> str:
        return self.core._describe().replace(
            f"{shape_text(self.core.input_shape)} → {shape_text(self.core.output_shape)}",
            f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}")

    def __repr__(self) -> str:
        return f"{self.class_name}({self._describe()})"
