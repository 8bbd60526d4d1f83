"""Convolution and transposed convolution layers (torch semantics, channels first)."""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

from convmatrix._arrays import to_numpy
from convmatrix._errors import ConvMatrixError
from convmatrix.builder.apply import conv_apply, conv_apply_adjoint
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES, SparseFormat, spec_matrix
from convmatrix.builder.weights import as_weight
from convmatrix.geometry.shapes import shape_text
from convmatrix.geometry.spec import ConvSpec, IntOrSeq, PaddingArg, conv_spec, conv_transpose_spec
from convmatrix.geometry.view import ConvView, check_direction
from convmatrix.layers.base import Adjoint, Layer
from convmatrix.typing import Direction

if TYPE_CHECKING:
    from convmatrix.symbolic.explain import Explanation
    from convmatrix.verification import VerificationResult

__all__ = ["Conv", "ConvLayer", "ConvTranspose"]


def _frozen(array: np.ndarray) -> np.ndarray:
    copy = np.array(array, copy=True)
    copy.flags.writeable = False
    return copy


def _as_bias(bias: Any, channels: int) -> np.ndarray | None:
    """Validate a per-output-channel bias: None, or ``channels`` numbers."""
    if bias is None:
        return None
    array = to_numpy(bias)
    if array.dtype.kind not in "biufc":
        raise ConvMatrixError(f"`bias` has dtype {array.dtype}; it must be numeric")
    if array.shape != (channels,):
        raise ConvMatrixError(
            f"`bias` has shape {array.shape}; it must have one value per output channel "
            f"({channels},)")
    return _frozen(array)


def _padding_text(padding: tuple[tuple[int, int], ...]) -> str:
    if all(pair == padding[0] for pair in padding) and padding[0][0] == padding[0][1]:
        return str(padding[0][0])
    if all(before == after for before, after in padding):
        return f"({', '.join(str(before) for before, _ in padding)})"
    return str(padding)


def _per_axis_text(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(set(values)) == 1 else shape_text(values)


class ConvLayer(Layer):
    """What a convolution and a transposed convolution share: a forward spec and a weight.

    Attributes
    ----------
    spec : ConvSpec
        The forward convolution; for a transposed layer, the convolution whose transpose it is.
    weight : ndarray
        torch layout, read-only: ``(C_out, C_in // groups, *k)`` for :class:`Conv`,
        ``(C_in, C_out // groups, *k)`` for :class:`ConvTranspose` (both are the forward
        convolution's weight).
    bias : ndarray or None
        One value per output channel, read-only.
    direction : {"forward", "adjoint"}
        The kind's direction (a class attribute): :class:`Conv`'s matrix is ``C`` of
        :attr:`spec`, :class:`ConvTranspose`'s is ``Cᵀ``.
    """

    direction: ClassVar[Direction]
    spec: ConvSpec
    weight: np.ndarray
    bias: np.ndarray | None
    _arguments: dict[str, Any]

    @staticmethod
    def from_spec(spec: ConvSpec, weight: Any, *, direction: Direction = "forward",
                  bias: Any = None) -> ConvLayer:
        """The layer whose matrix is ``C`` (``"forward"``) or ``Cᵀ`` (``"adjoint"``) of ``spec``.

        The one place a layer object is rebuilt from a forward spec and its weight.

        Parameters
        ----------
        spec : ConvSpec
            The forward convolution's geometry.
        weight : array_like
            The forward convolution's weight, ``(C_out, C_in // groups, *k)`` of ``spec``.
        direction : {"forward", "adjoint"}, optional
            ``"forward"``: a :class:`Conv`; ``"adjoint"``: a :class:`ConvTranspose`.
        bias : array_like, optional
            One value per output channel of the layer built.

        Returns
        -------
        Conv or ConvTranspose
            With ``layer.spec == spec``.

        Raises
        ------
        ConvMatrixError
            When no such layer has exactly this spec (a transposed convolution with a
            padding mode, or an ``output_padding`` that crops the forward output).

        Examples
        --------
        >>> import numpy as np
        >>> import convmatrix as cm
        >>> conv = cm.Conv(np.ones((2, 1, 3)), (1, 8), stride=2, padding=1)
        >>> up = ConvLayer.from_spec(conv.spec, conv.weight, direction="adjoint")
        >>> up
        ConvTranspose(2→1, 2×4 → 1×8, kernel 3, stride 2, padding 1, output_padding 1)
        >>> up.spec == conv.spec
        True
        """
        direction = check_direction(direction)
        geometry: dict[str, Any] = {"stride": spec.stride, "padding": spec.padding,
                                    "dilation": spec.dilation, "groups": spec.groups,
                                    "bias": bias}
        layer: ConvLayer
        if direction == "forward":
            layer = Conv(weight, spec.input_shape, padding_mode=spec.padding_mode, **geometry)
        else:
            if spec.padding_mode != "zeros":
                raise ConvMatrixError(
                    f"a transposed convolution has zero padding only; `spec` has "
                    f"padding_mode={spec.padding_mode!r}")
            layer = ConvTranspose(weight, spec.output_shape, output_padding=spec.remainder,
                                  **geometry)
        if layer.spec != spec:
            raise ConvMatrixError(f"no {type(layer).__name__} has exactly the spec {spec!r}")
        return layer

    @property
    def dtype(self) -> np.dtype[Any]:
        """The weight's dtype, which the matrix keeps."""
        return self.weight.dtype

    def matrix(self, format: SparseFormat = "csr", *,
               max_bytes: int | None = DEFAULT_MAX_BYTES, weight: Any = None,
               out: sp.sparray | None = None) -> sp.sparray:
        """The exact sparse matrix of the layer, optionally with other weight values.

        Parameters
        ----------
        format : {"csr", "csc", "coo"}, optional
            Layout of the result.
        max_bytes : int or None, optional
            Refuse a matrix estimated above this many bytes, before building it.
        weight : array_like, optional
            Other values for the weight, of this layer's weight shape (any supported dtype,
            which the result keeps): the matrix of the same geometry with these values. While
            the layer's last ``"csr"``/``"csc"`` matrix is still alive, the result shares its
            index arrays and only the new values are gathered (value refresh; see
            :func:`convmatrix.spec_matrix`'s ``like``), which is about twice as fast as a
            fresh build. The layer itself keeps its own weight.
        out : scipy.sparse array, optional
            With ``weight``: a matrix of this layer (same format and dtype) whose values are
            overwritten in place and which is returned — no allocation, the fastest refresh
            (see :func:`convmatrix.spec_matrix`).

        Returns
        -------
        scipy.sparse array, shape :attr:`matrix_shape`

        Examples
        --------
        >>> import numpy as np
        >>> import convmatrix as cm
        >>> conv = cm.Conv(np.ones((1, 1, 3, 3)), (1, 8, 8), padding=1)
        >>> C = conv.matrix()
        >>> C2 = conv.matrix(weight=np.full((1, 1, 3, 3), 2.0))   # shares C's index arrays
        >>> C2.indices is C.indices, bool(abs(C2 - 2 * C).max() == 0)
        (True, True)
        >>> conv.matrix(weight=np.full((1, 1, 3, 3), 3.0), out=C2) is C2    # in place
        True
        >>> bool(abs(C2 - 3 * C).max() == 0)
        True
        """
        if out is not None:
            if weight is None:
                raise ConvMatrixError("`out` needs `weight`: it refreshes a matrix's values")
            return spec_matrix(self.spec, as_weight(weight), direction=self.direction,
                               format=format, max_bytes=max_bytes, out=out)
        if weight is None:
            matrix = super().matrix(format, max_bytes=max_bytes)
        else:
            w = as_weight(weight)
            if w.shape != self.weight.shape:
                raise ConvMatrixError(
                    f"`weight` has shape {w.shape} but this layer's weight has shape "
                    f"{self.weight.shape}")
            if format not in ("csr", "csc", "coo"):
                raise ConvMatrixError(f"`format` (={format!r}) must be one of 'csr', 'csc', 'coo'")
            like = self._recent_pattern(format)
            direction = self.direction
            try:
                matrix = spec_matrix(self.spec, w, direction=direction, format=format,
                                     max_bytes=max_bytes, like=like)
            except ConvMatrixError:
                if like is None:
                    raise
                # the last matrix was edited in place: build afresh
                matrix = spec_matrix(self.spec, w, direction=direction, format=format,
                                     max_bytes=max_bytes)
        if format in ("csr", "csc") and self._recent_pattern(format) is None:
            # weak references to the index arrays: every refreshed matrix shares them, so they
            # live as long as any matrix of this layer built in this format
            self.__dict__.setdefault("_recent", {})[format] = (
                matrix.shape, weakref.ref(matrix.indptr), weakref.ref(matrix.indices))
        return matrix

    def matrix_in(self, dtype: Any, format: SparseFormat = "csr", *,
                  max_bytes: int | None = DEFAULT_MAX_BYTES) -> sp.sparray:
        """The matrix with the weight cast to ``dtype`` first, so merged taps sum in it.

        See :meth:`Layer.matrix_in`; a ``dtype`` that cannot hold the weight's values safely
        (not a widening) casts the built matrix instead.
        """
        target = np.dtype(dtype)
        if target == self.dtype or not np.can_cast(self.dtype, target, casting="safe"):
            return super().matrix_in(target, format, max_bytes=max_bytes)
        return self.matrix(format, max_bytes=max_bytes, weight=self.weight.astype(target))

    def __getstate__(self) -> dict[str, Any]:
        """The layer's state for ``pickle`` and ``copy``.

        Without the weak references to the index arrays of its last matrix: they cannot be
        pickled, and a copy builds matrices of its own.
        """
        state = self.__dict__.copy()
        state.pop("_recent", None)
        return state

    def _recent_pattern(self, format: str) -> Any:
        """The format, shape and index arrays of a live matrix of this layer, or None."""
        recent = self.__dict__.get("_recent", {}).get(format)
        if recent is None:
            return None
        shape, indptr, indices = recent[0], recent[1](), recent[2]()
        if indptr is None or indices is None:
            return None
        return SimpleNamespace(format=format, shape=shape, indptr=indptr, indices=indices)

    @property
    def ndim(self) -> int:
        """Number of spatial axes."""
        return self.spec.ndim

    @property
    def kernel_size(self) -> tuple[int, ...]:
        """Kernel taps per spatial axis."""
        return self.spec.kernel_size

    @property
    def stride(self) -> tuple[int, ...]:
        """Stride per spatial axis."""
        return self.spec.stride

    @property
    def padding(self) -> tuple[tuple[int, int], ...]:
        """``(before, after)`` padding per spatial axis (for a transposed layer: the crop)."""
        return self.spec.padding

    @property
    def dilation(self) -> tuple[int, ...]:
        """Dilation per spatial axis."""
        return self.spec.dilation

    @property
    def groups(self) -> int:
        """Channel groups."""
        return self.spec.groups

    def offset(self) -> np.ndarray:
        """The bias repeated over each output channel's pixels (zeros without a bias).

        Examples
        --------
        >>> import numpy as np
        >>> import convmatrix as cm
        >>> cm.Conv(np.ones((2, 1, 2)), (1, 3), bias=[1.0, -1.0]).offset()
        array([ 1.,  1., -1., -1.])
        """
        pixels = math.prod(self.output_shape[1:])
        if self.bias is None:
            return np.zeros(self.output_shape[0] * pixels, dtype=self.dtype)
        return np.repeat(self.bias, pixels)

    def _geometry_text(self) -> list[str]:
        parts = [f"kernel {shape_text(self.kernel_size)}"]
        if any(s != 1 for s in self.stride):
            parts.append(f"stride {_per_axis_text(self.stride)}")
        if any(p != (0, 0) for p in self.padding):
            parts.append(f"padding {_padding_text(self.padding)}")
        if any(d != 1 for d in self.dilation):
            parts.append(f"dilation {_per_axis_text(self.dilation)}")
        if self.groups != 1:
            parts.append(f"groups {self.groups}")
        return parts

    def _describe(self) -> str:
        c_in, c_out = self.input_shape[0], self.output_shape[0]
        return ", ".join([f"{c_in}→{c_out}", f"{shape_text(self.input_shape)} → "
                          f"{shape_text(self.output_shape)}", *self._geometry_text()])

    def _title(self) -> str:
        return f"{type(self).__name__}{self.ndim}d"

    def conv_view(self) -> ConvView:
        """The layer as a convolution: its forward spec, weight and direction."""
        return ConvView(self.spec, self.weight, self.direction, self._title())

    def verify(self, *, seed: int = 0) -> VerificationResult:
        """Prove :meth:`matrix` against the independent dense reference (and its adjoint).

        The reference receives the arguments this layer was built with, not the normalised
        spec, so a geometry bug cannot verify itself. See :func:`convmatrix.verify`.

        Examples
        --------
        >>> import numpy as np
        >>> import convmatrix as cm
        >>> cm.ConvTranspose(np.ones((1, 1, 2, 2)), (1, 2, 2)).verify().passed
        True
        """
        from convmatrix.verification import verify

        if self.direction == "adjoint":
            return verify(self.weight, self.input_shape, direction="adjoint", seed=seed,
                          **self._arguments)
        return verify(self.weight, self.input_shape, seed=seed, **self._arguments)

    def explain(self, x: Any = None) -> Explanation:
        """The symbolic explanation: shapes, matrix, outputs as sums of ``w·x``, overlap.

        Parameters
        ----------
        x : array_like, optional
            An input sample; each shown output then also shows its value with this layer's
            weights.
        """
        from convmatrix.symbolic.explain import explain_spec

        return explain_spec(self.spec, direction=self.direction, title=self._title(),
                            weight=None if x is None else self.weight, x=x)


class Conv(ConvLayer):
    """A convolution layer (torch ``convNd``): ``y = C @ x + b``.

    Parameters
    ----------
    weight : array_like, shape ``(C_out, C_in // groups, *kernel_size)``
        torch's ``ConvNd.weight`` layout; bool, integer, float or complex (the matrix keeps
        its dtype).
    input_shape : sequence of int
        One sample, channels first: ``(C_in, *spatial)``.
    stride, padding, dilation, groups, padding_mode
        As in :func:`convmatrix.conv_matrix`.
    bias : array_like, optional
        One value per output channel (the offset ``b``).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.ones((1, 1, 2, 2), dtype=int), (1, 3, 3))
    >>> conv
    Conv(1→1, 1×3×3 → 1×2×2, kernel 2×2)
    >>> conv.matrix().toarray()
    array([[1, 1, 0, 1, 1, 0, 0, 0, 0],
           [0, 1, 1, 0, 1, 1, 0, 0, 0],
           [0, 0, 0, 1, 1, 0, 1, 1, 0],
           [0, 0, 0, 0, 1, 1, 0, 1, 1]])
    >>> conv.T                      # its adjoint is the transposed convolution
    ConvTranspose(1→1, 1×2×2 → 1×3×3, kernel 2×2)
    >>> conv.T(np.ones((1, 2, 2), dtype=int))[0]
    array([[1, 2, 1],
           [2, 4, 2],
           [1, 2, 1]])
    """

    direction: ClassVar[Direction] = "forward"

    def __init__(self, weight: Any, input_shape: Sequence[int], *, stride: IntOrSeq = 1,
                 padding: PaddingArg = 0, dilation: IntOrSeq = 1, groups: int = 1,
                 padding_mode: str = "zeros", bias: Any = None) -> None:
        w = as_weight(weight)
        self._arguments = {"stride": stride, "padding": padding, "dilation": dilation,
                           "groups": groups, "padding_mode": padding_mode}
        self.spec = conv_spec(w.shape, input_shape, **self._arguments)
        self.weight = _frozen(w)
        self.bias = _as_bias(bias, self.spec.out_channels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(C_in, *spatial)``."""
        return self.spec.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """``(C_out, *output_spatial)``."""
        return self.spec.output_shape

    @property
    def padding_mode(self) -> str:
        """How padded pixels are filled."""
        return self.spec.padding_mode

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        return spec_matrix(self.spec, self.weight, format=format, max_bytes=max_bytes)

    def apply_forward(self, x: np.ndarray) -> np.ndarray:
        """The linear part on a batch (see :meth:`Layer.apply_forward`)."""
        return conv_apply(self.spec, self.weight, x)

    def apply_adjoint(self, y: np.ndarray) -> np.ndarray:
        """The adjoint on a batch (see :meth:`Layer.apply_adjoint`)."""
        return conv_apply_adjoint(self.spec, self.weight, y)

    def _geometry_text(self) -> list[str]:
        parts = super()._geometry_text()
        if self.padding_mode != "zeros":
            parts.append(self.padding_mode)
        return parts

    def _adjoint(self) -> Layer:
        if self.padding_mode != "zeros":
            return Adjoint(self)  # the adjoint of a padding mode is no torch layer
        return ConvLayer.from_spec(self.spec, self.weight, direction="adjoint")


class ConvTranspose(ConvLayer):
    """A transposed convolution layer (torch ``conv_transposeNd``): ``y = Cᵀ @ x + b``.

    ``C`` is the convolution from this layer's output back to its input with the same weight
    array, stride, padding, dilation and groups (:attr:`spec`); this layer is its adjoint.

    Parameters
    ----------
    weight : array_like, shape ``(C_in, C_out // groups, *kernel_size)``
        torch's ``ConvTransposeNd.weight`` layout.
    input_shape : sequence of int
        One sample of this layer's input, ``(C_in, *spatial)``.
    stride, padding, output_padding, dilation, groups
        As in :func:`convmatrix.conv_transpose_matrix`.
    bias : array_like, optional
        One value per output channel.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> up = cm.ConvTranspose(np.ones((1, 1, 3, 3)), (1, 4, 4), stride=2, padding=1,
    ...                       output_padding=1)
    >>> up
    ConvTranspose(1→1, 1×4×4 → 1×8×8, kernel 3×3, stride 2, padding 1, output_padding 1)
    >>> up.T.T is up
    True
    """

    direction: ClassVar[Direction] = "adjoint"

    def __init__(self, weight: Any, input_shape: Sequence[int], *, stride: IntOrSeq = 1,
                 padding: PaddingArg = 0, output_padding: IntOrSeq = 0, dilation: IntOrSeq = 1,
                 groups: int = 1, bias: Any = None) -> None:
        w = as_weight(weight)
        self._arguments = {"stride": stride, "padding": padding,
                           "output_padding": output_padding, "dilation": dilation,
                           "groups": groups}
        self.spec = conv_transpose_spec(w.shape, input_shape, **self._arguments)
        self.weight = _frozen(w)
        self.bias = _as_bias(bias, self.spec.in_channels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(C_in, *spatial)``."""
        return self.spec.output_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """``(C_out, *output_spatial)``."""
        return self.spec.input_shape

    @property
    def output_padding(self) -> tuple[int, ...]:
        """Extra output size at the end of each axis."""
        return self.spec.remainder

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        return spec_matrix(self.spec, self.weight, direction="adjoint", format=format,
                           max_bytes=max_bytes)

    def apply_forward(self, x: np.ndarray) -> np.ndarray:
        """The linear part on a batch (see :meth:`Layer.apply_forward`)."""
        return conv_apply_adjoint(self.spec, self.weight, x)

    def apply_adjoint(self, y: np.ndarray) -> np.ndarray:
        """The adjoint on a batch (see :meth:`Layer.apply_adjoint`)."""
        return conv_apply(self.spec, self.weight, y)

    def _geometry_text(self) -> list[str]:
        parts = super()._geometry_text()
        if any(self.output_padding):
            parts.append(f"output_padding {_per_axis_text(self.output_padding)}")
        return parts

    def _adjoint(self) -> Layer:
        try:
            return ConvLayer.from_spec(self.spec, self.weight)
        except ConvMatrixError:
            # output_padding >= stride (allowed below the dilation) crops the forward output:
            # then the adjoint is no torch convolution
            return Adjoint(self)
