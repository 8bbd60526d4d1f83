"""Validated, normalised convolution geometry: the frozen spec every other module starts from."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from numbers import Real
from typing import Any, SupportsIndex, get_args

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry import shapes
from convmatrix.typing import IntOrSeq, PaddingArg, PaddingMode, ShapeLike

PADDING_MODES: tuple[str, ...] = get_args(PaddingMode)

__all__ = [
    "PADDING_MODES",
    "ConvSpec",
    "PaddingMode",
    "as_sample_shape",
    "conv_output_shape",
    "conv_spec",
    "conv_transpose_output_shape",
    "conv_transpose_spec",
]

_INT64_MAX = 2**63 - 1
_INT64_TEXT = "2**63 − 1 (convmatrix indexes with int64)"


@dataclass(frozen=True)
class ConvSpec:
    """Geometry of one forward convolution layer, validated and normalised per spatial axis.

    Every field is a plain ``int`` or a tuple of ``int`` (one entry per spatial axis), so a spec
    is hashable and the index tables computed from it can be cached. Build one with
    :func:`conv_spec` (torch-style arguments) or :func:`conv_transpose_spec` (the forward
    convolution whose transpose is a given transposed convolution). A spec checks itself on
    construction, so an invalid one cannot exist: building one directly with bad fields raises.

    Attributes
    ----------
    in_channels, out_channels, groups : int
        Channel counts; both divisible by ``groups``.
    input_size, output_size : tuple of int
        Spatial sizes of one input and one output channel.
    kernel_size, stride, dilation : tuple of int
        Per-axis kernel taps, stride and dilation (all positive).
    padding : tuple of (int, int)
        Per-axis ``(before, after)`` implicit padding (non-negative).
    padding_mode : {"zeros", "reflect", "replicate", "circular", "symmetric"}
        How padded pixels are filled (torch semantics; ``"symmetric"`` is numpy's / TF
        MirrorPad's edge-including mirror); ``reflect`` needs each pad below the input size,
        ``circular`` and ``symmetric`` at most the input size.

    Raises
    ------
    ConvMatrixError
        For a field of the wrong type or range, naming it, its value and the rule; also when an
        index the builders compute (a padded coordinate, a flat position, a matrix dimension)
        would not fit int64.

    Notes
    -----
    Per axis, with ``k̂ = d·(k − 1) + 1``, the natural output size is
    ``⌊(n + p_before + p_after − k̂) / s⌋ + 1``. ``output_size`` may be *smaller* than that: the
    forward convolution behind a transposed convolution with ``output_padding ≥ stride`` keeps
    only its first outputs, exactly as torch's gradient does.

    Examples
    --------
    >>> spec = conv_spec((1, 1, 2, 2), (1, 3, 3))
    >>> spec.output_shape, spec.matrix_shape
    ((1, 2, 2), (4, 9))
    >>> ConvSpec(1, 1, (3,), (2,), (1,), ((0, 0),), (1,), 1, "zeros", (5,))
    Traceback (most recent call last):
    ...
    convmatrix._errors.ConvMatrixError: `output_size` (=(5,)) must lie between 1 and the
    natural output size 2 along spatial axis 0
    """

    in_channels: int
    out_channels: int
    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int
    padding_mode: PaddingMode
    output_size: tuple[int, ...]

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("in_channels", "out_channels", "groups"):
            put(name, check_bounded(as_int(getattr(self, name), name), name, minimum=1))
        input_size = _field_tuple(self.input_size, "input_size", None, minimum=1)
        ndim = len(input_size)
        if ndim < 1:
            raise ConvMatrixError("a convolution needs at least one spatial axis")
        put("input_size", input_size)
        for name in ("kernel_size", "stride", "dilation", "output_size"):
            put(name, _field_tuple(getattr(self, name), name, ndim, minimum=1))
        put("padding", _field_pairs(self.padding, ndim))
        for label, count in (("`in_channels`", self.in_channels),
                             ("`out_channels`", self.out_channels)):
            if count % self.groups:
                raise ConvMatrixError(
                    f"{label} (={count}) must be divisible by `groups` (={self.groups})")
        _check_padding_mode(self.padding_mode, self.padding, self.input_size)
        for axis in range(ndim):
            n, (before, after) = self.input_size[axis], self.padding[axis]
            if n + before + after > _INT64_MAX:
                raise ConvMatrixError(
                    f"`padding` {(before, after)} along spatial axis {axis} makes the padded "
                    f"input {n} + {before} + {after} = {n + before + after} long; it must be "
                    f"at most {_INT64_TEXT}")
            natural = _natural_output(
                n, self.kernel_size[axis], self.stride[axis], self.padding[axis],
                self.dilation[axis], axis,
            )
            if not 1 <= self.output_size[axis] <= natural:
                raise ConvMatrixError(
                    f"`output_size` (={self.output_size}) must lie between 1 and the natural "
                    f"output size {natural} along spatial axis {axis}"
                )
        _check_flat_indices(self)

    @property
    def ndim(self) -> int:
        """Number of spatial axes."""
        return len(self.input_size)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample, channels first: ``(C_in, *input_size)``."""
        return (self.in_channels, *self.input_size)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one output sample, channels first: ``(C_out, *output_size)``."""
        return (self.out_channels, *self.output_size)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """Torch layout of the convolution weight: ``(C_out, C_in // groups, *kernel_size)``."""
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """Shape of the convolution matrix ``C``: ``(C_out·∏output_size, C_in·∏input_size)``."""
        return (math.prod(self.output_shape), math.prod(self.input_shape))

    @property
    def effective_kernel_size(self) -> tuple[int, ...]:
        """Dilated kernel extent per axis, ``d·(k − 1) + 1``."""
        return tuple(shapes.effective_kernel(k, d)
                     for k, d in zip(self.kernel_size, self.dilation, strict=True))

    @property
    def remainder(self) -> tuple[int, ...]:
        """Per axis, input pixels past the last full stride: ``n + p_b + p_a − k̂ − (o − 1)·s``.

        It is the ``output_padding`` the transposed layer needs to map this convolution's
        output size back to its input size (Dumoulin & Visin's ``a``).
        """
        return tuple(
            shapes.conv_remainder(n, k, s, p, d, o)
            for n, k, s, p, d, o in zip(self.input_size, self.kernel_size, self.stride,
                                        self.padding, self.dilation, self.output_size,
                                        strict=True))

    def nnz_upper_bound(self) -> int:
        """Number of stored entries of ``C`` (exact for ``"zeros"``, an upper bound otherwise).

        Computed per axis in closed form, without building anything, so it can guard
        allocations before they happen.
        """
        per_pair = 1
        for axis in range(self.ndim):
            if self.padding_mode == "zeros":
                per_pair *= _valid_pairs(
                    self.input_size[axis], self.kernel_size[axis], self.stride[axis],
                    self.padding[axis][0], self.dilation[axis], self.output_size[axis],
                )
            else:
                per_pair *= self.output_size[axis] * self.kernel_size[axis]
        return self.out_channels * (self.in_channels // self.groups) * per_pair


def _valid_pairs(n: int, k: int, s: int, before: int, d: int, out: int) -> int:
    """Count (output position, tap) pairs that read a real (non-padding) input pixel."""
    total = 0
    for t in range(k):
        offset = t * d - before  # tap t of output o reads input index o*s + offset
        lo = max(0, _ceil_div(-offset, s))
        hi = min(out - 1, (n - 1 - offset) // s)
        total += max(0, hi - lo + 1)
    return total


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def _natural_output(n: int, k: int, s: int, pad: tuple[int, int], d: int, axis: int) -> int:
    eff = shapes.effective_kernel(k, d)
    padded = n + pad[0] + pad[1]
    if padded < eff:
        raise ConvMatrixError(
            f"kernel (effective size {eff}) does not fit the padded input (size {padded}) "
            f"along spatial axis {axis}"
        )
    return shapes.conv_output_length(n, k, s, pad, d)


def _check_flat_indices(spec: ConvSpec) -> None:
    """Refuse a spec whose flat positions or matrix dimensions would not fit int64.

    The index table computes ``Σ_axis coordinate·stride_of_axis`` with int64 arrays, where a
    coordinate (a padded position, possibly outside the input) lies in ``[−before, n + after)``;
    the matrix has ``C_out·∏o`` rows and ``C_in·∏n`` columns.
    """
    rows, cols = spec.matrix_shape
    if max(rows, cols) > _INT64_MAX:
        raise ConvMatrixError(
            f"the matrix would have shape {(rows, cols)} (input {spec.input_shape}, output "
            f"{spec.output_shape}); each dimension must be at most {_INT64_TEXT}")
    reach = 0
    for axis in range(spec.ndim):
        n, (before, after) = spec.input_size[axis], spec.padding[axis]
        reach += max(before, n + after) * math.prod(spec.input_size[axis + 1:])
    if reach > _INT64_MAX:
        raise ConvMatrixError(
            f"`padding` (={spec.padding}) on input size {spec.input_size} reaches flat "
            f"position {reach}; padded positions must stay within {_INT64_TEXT}")


# --------------------------------------------------------------------------------------------
# argument normalisation (as_int, sequence_items, check_bounded: shared with the framework
# adapters' config checks; not in __all__)


def as_int(value: Any, name: str) -> int:
    """``value`` as a Python int (ints, numpy ints, 0-d integer arrays), else a named error."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ConvMatrixError(f"`{name}` (={value!r}) must be an integer")
    try:
        return operator.index(value)
    except TypeError:  # e.g. a 1-element float array, whose __index__ refuses
        raise ConvMatrixError(f"`{name}` (={value!r}) must be an integer") from None


def sequence_items(value: Any) -> tuple[Any, ...] | None:
    """The entries of a sequence (list, tuple, 1-d array, ...); None for a scalar.

    Strings count as scalars; so do 0-d arrays (``np.array(2)``), which are ints to convmatrix.
    """
    if isinstance(value, str | bytes):
        return None
    try:
        return tuple(value)
    except TypeError:  # not iterable, or a 0-d array ("iteration over a 0-d array")
        return None


def check_bounded(value: int, name: str, *, minimum: int, shown: Any = None) -> int:
    """Check ``minimum <= value <= 2**63 − 1``; the error shows ``shown`` (default value)."""
    shown = value if shown is None else shown
    if value < minimum:
        rule = "positive" if minimum == 1 else f">= {minimum}"
        if name == "padding":
            rule = "non-negative"
        raise ConvMatrixError(f"`{name}` (={shown!r}) must be {rule}")
    if value > _INT64_MAX:
        raise ConvMatrixError(f"`{name}` (={shown!r}) must be at most {_INT64_TEXT}")
    return value


def as_sample_shape(value: Any, name: str = "input_shape", *, rank: int | None = None,
                 minimum: int = 1, layout: str = "", integral_floats: bool = False
                 ) -> tuple[int, ...]:
    """One sample's shape, such as a user's ``input_shape``, checked and as a tuple of ints.

    The one check of a shape argument: every entry point that takes one sample's shape (the
    layers, the framework adapters, :class:`~convmatrix.Graph`, black-box probing, stack
    files) reads it here, and keeps only its own extra rules (a spatial rank, a layout).

    Parameters
    ----------
    value : sequence of int
        A tuple, list or 1-d array of ints (numpy ints too): the sizes of one sample, without
        the batch axis. Strings, scalars, bools and floats are refused.
    name : str, optional
        The parameter's name, for messages.
    rank : int, optional
        The number of axes the caller needs; default: any number from one up.
    minimum : int, optional
        The smallest size allowed (default 1: every axis holds something).
    layout : str, optional
        The axes' order, for messages (``"(C, *spatial)"``, ``"(*spatial, C)"``).
    integral_floats : bool, optional
        Read floats with an integral value (``4.0``) as ints, for the readers that always
        have (:func:`~convmatrix.from_flax`, Keras models); ``4.5`` is refused all the same.

    Returns
    -------
    tuple of int
        The sizes, as Python ints.

    Raises
    ------
    ConvMatrixError
        Naming ``name``, the value and what is allowed.

    Examples
    --------
    >>> import numpy as np
    >>> as_sample_shape([np.int64(1), 4, 4])
    (1, 4, 4)
    >>> as_sample_shape((1, 4.5, 4), layout="(C, *spatial)")
    Traceback (most recent call last):
    ...
    convmatrix._errors.ConvMatrixError: `input_shape` (=4.5) must be an integer: one sample's
    shape (C, *spatial), no batch axis, is a tuple of positive ints; got 4.5 in (1, 4.5, 4)
    >>> as_sample_shape((0, 4, 4))
    Traceback (most recent call last):
    ...
    convmatrix._errors.ConvMatrixError: `input_shape` (=(0, 4, 4)) must be a tuple of positive
    ints (one sample's shape, no batch axis): sizes are ints >= 1, got 0
    """
    rule = "positive ints" if minimum == 1 else f"ints >= {minimum}"
    where = f"one sample's shape{' ' + layout if layout else ''}, no batch axis"
    items = sequence_items(value)
    if items is None:
        raise ConvMatrixError(f"`{name}` (={value!r}) must be a tuple of {rule} ({where})")
    sizes = []
    for item in items:
        if (integral_floats and not hasattr(item, "__index__") and isinstance(item, Real)
                and float(item).is_integer()):
            item = int(float(item))
        if isinstance(item, bool) or not hasattr(item, "__index__"):
            raise ConvMatrixError(f"`{name}` (={item!r}) must be an integer: {where}, is a "
                                  f"tuple of {rule}; got {item!r} in {value!r}")
        sizes.append(as_int(item, name))
    if rank is not None and len(sizes) != rank:
        hint = "; drop the batch axis" if len(sizes) == rank + 1 else ""
        raise ConvMatrixError(f"`{name}` (={value!r}) must have {rank} axes ({where}{hint})")
    if rank is None and not sizes:
        raise ConvMatrixError(f"`{name}` (={value!r}) must have at least one axis ({where})")
    for size in sizes:
        if size < minimum:
            raise ConvMatrixError(f"`{name}` (={value!r}) must be a tuple of {rule} ({where}): "
                                  f"sizes are ints >= {minimum}, got {size}")
        check_bounded(size, name, minimum=minimum, shown=value)
    return tuple(sizes)


def _field_tuple(value: Any, name: str, ndim: int | None, *, minimum: int) -> tuple[int, ...]:
    """A :class:`ConvSpec` per-axis field: a sequence of ``ndim`` bounded ints, as a tuple."""
    items = sequence_items(value)
    if items is None or (ndim is not None and len(items) != ndim):
        count = "one int per spatial axis" if ndim is None else f"{ndim} ints (one per axis)"
        raise ConvMatrixError(f"`{name}` (={value!r}) must be a tuple of {count}")
    ints = tuple(as_int(v, name) for v in items)
    for v in ints:
        check_bounded(v, name, minimum=minimum, shown=value)
    return ints


def _field_pairs(value: Any, ndim: int) -> tuple[tuple[int, int], ...]:
    """:class:`ConvSpec` ``padding``: ``ndim`` bounded non-negative ``(before, after)`` pairs."""
    items = sequence_items(value)
    pairs = None if items is None or len(items) != ndim else [sequence_items(v) for v in items]
    if pairs is None or any(p is None or len(p) != 2 for p in pairs):
        raise ConvMatrixError(
            f"`padding` (={value!r}) must be a tuple of {ndim} (before, after) pairs")
    result = []
    for pair in pairs:
        assert pair is not None
        before, after = (check_bounded(as_int(v, "padding"), "padding", minimum=0, shown=value)
                         for v in pair)
        result.append((before, after))
    return tuple(result)


def per_axis(value: IntOrSeq, ndim: int, name: str, *, minimum: int) -> tuple[int, ...]:
    """Normalise an int or a per-axis sequence of ints to a tuple, checking both bounds."""
    if isinstance(value, str):
        raise ConvMatrixError(f"`{name}` (={value!r}) must be an int or {ndim} ints")
    items = sequence_items(value)
    if items is not None:
        if len(items) != ndim:
            raise ConvMatrixError(
                f"`{name}` (={value!r}) must be an int or a sequence of {ndim} ints "
                f"(one per spatial axis)"
            )
        result = tuple(as_int(v, name) for v in items)
    else:
        result = (as_int(value, name),) * ndim
    for v in result:
        check_bounded(v, name, minimum=minimum, shown=value)
    return result


def _padding_pairs(
    padding: PaddingArg,
    ndim: int,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[tuple[int, int], ...]:
    """Normalise ``padding`` to per-axis ``(before, after)`` pairs (torch's rules)."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ConvMatrixError(
                    f"`padding` (='same') is not supported for strided convolutions "
                    f"(`stride`={stride}), as in torch; give explicit padding, or use "
                    f"convmatrix.keras_matrix for Keras' 'same' rule"
                )
            return tuple(shapes.same_padding_torch(k, d)
                         for k, d in zip(kernel_size, dilation, strict=True))
        raise ConvMatrixError(
            f"`padding` (={padding!r}) must be 'valid', 'same', an int, {ndim} ints or "
            f"{ndim} (before, after) pairs"
        )
    items = sequence_items(padding)
    if items is None:
        p = check_bounded(as_int(padding, "padding"), "padding", minimum=0, shown=padding)
        return ((p, p),) * ndim
    if len(items) != ndim:
        hint = ""
        if ndim == 1 and len(items) == 2:
            hint = f"; for a (before, after) pair on a 1-D convolution write ({tuple(items)},)"
        raise ConvMatrixError(
            f"`padding` (={padding!r}) must have one entry per spatial axis ({ndim}): an int "
            f"or a (before, after) pair each{hint}"
        )
    pairs = []
    for item in items:
        pair = sequence_items(item)
        if isinstance(item, str) or (pair is not None and len(pair) != 2):
            raise ConvMatrixError(
                f"`padding` (={padding!r}) entries must be ints or (before, after) pairs"
            )
        before, after = (as_int(item, "padding"),) * 2 if pair is None else (
            as_int(pair[0], "padding"), as_int(pair[1], "padding"))
        for v in (before, after):
            check_bounded(v, "padding", minimum=0, shown=padding)
        pairs.append((before, after))
    return tuple(pairs)


def _split_weight_shape(
    weight_shape: ShapeLike, input_shape: ShapeLike
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Check both shapes are positive int tuples of matching rank; return them as tuples."""
    ishape = as_sample_shape(input_shape, layout="(C_in, *spatial)")
    wshape = tuple(as_int(v, "weight.shape")
                   for v in sequence_items(weight_shape) or (weight_shape,))
    if len(ishape) < 2:
        raise ConvMatrixError(
            f"`input_shape` (={ishape}) must be (C_in, *spatial) with at least one spatial axis"
        )
    if len(wshape) != len(ishape) + 1:
        raise ConvMatrixError(
            f"`weight` has shape {wshape} ({len(wshape)} axes) but `input_shape` (={ishape}) "
            f"has {len(ishape) - 1} spatial axes: the weight needs {len(ishape) + 1} axes "
            f"(out/in channels and one per spatial axis)"
        )
    if any(v < 1 for v in wshape):
        raise ConvMatrixError(f"`weight` shape {wshape} must have positive sizes")
    for v in wshape:
        check_bounded(v, "weight.shape", minimum=1, shown=wshape)
    return wshape, ishape


def _check_groups(groups: Any, channels: dict[str, int]) -> int:
    g = check_bounded(as_int(groups, "groups"), "groups", minimum=1, shown=groups)
    for label, count in channels.items():
        if count % g:
            raise ConvMatrixError(f"{label} (={count}) must be divisible by `groups` (={g})")
    return g


def conv_spec(
    weight_shape: ShapeLike,
    input_shape: ShapeLike,
    *,
    stride: IntOrSeq = 1,
    padding: PaddingArg = 0,
    dilation: IntOrSeq = 1,
    groups: SupportsIndex = 1,
    padding_mode: PaddingMode = "zeros",
) -> ConvSpec:
    """Validate torch-style convolution arguments and return the normalised :class:`ConvSpec`.

    Parameters
    ----------
    weight_shape : sequence of int
        ``(C_out, C_in // groups, *kernel_size)``, torch's ``ConvNd.weight`` layout.
    input_shape : sequence of int
        One sample, channels first: ``(C_in, *spatial)``.
    stride, dilation : int or sequence of int
        Positive; one value for all axes or one per spatial axis.
    padding : int, sequence, or {"valid", "same"}
        An int, one int per axis, one ``(before, after)`` pair per axis, or a string. ``"same"``
        follows torch: stride 1 only, ``d·(k − 1) // 2`` before and the rest after.
    groups : int
        Both channel counts must be divisible by it.
    padding_mode : {"zeros", "reflect", "replicate", "circular", "symmetric"}
        torch's modes, plus numpy's / TF MirrorPad's ``"symmetric"`` (edge-including mirror:
        ``c b a | a b c d | d c b``); ``reflect`` needs padding < input size, ``circular`` and
        ``symmetric`` padding <= input size (one mirror image at most; numpy would go further).

    Returns
    -------
    ConvSpec

    Raises
    ------
    ConvMatrixError
        For any invalid argument, naming it, its value and the rule.

    Examples
    --------
    >>> conv_spec((8, 3, 3, 3), (3, 32, 32), stride=2, padding=1).output_shape
    (8, 16, 16)
    >>> conv_spec((1, 1, 4), (1, 10), padding="same").padding
    ((1, 2),)
    """
    wshape, ishape = _split_weight_shape(weight_shape, input_shape)
    ndim = len(ishape) - 1
    in_channels, input_size = ishape[0], ishape[1:]
    out_channels, kernel_size = wshape[0], wshape[2:]
    g = _check_groups(groups, {"`C_in` (input_shape[0])": in_channels,
                               "`C_out` (weight.shape[0])": out_channels})
    if wshape[1] * g != in_channels:
        raise ConvMatrixError(
            f"`weight.shape[1]` (={wshape[1]}) times `groups` (={g}) must equal the input "
            f"channels `input_shape[0]` (={in_channels}); weight layout is "
            f"(C_out, C_in // groups, *kernel)"
        )
    stride_t = per_axis(stride, ndim, "stride", minimum=1)
    dilation_t = per_axis(dilation, ndim, "dilation", minimum=1)
    pairs = _padding_pairs(padding, ndim, kernel_size, stride_t, dilation_t)
    mode = _check_padding_mode(padding_mode, pairs, input_size)  # before sizes: clearer errors
    output_size = tuple(
        _natural_output(n, k, s, p, d, axis)
        for axis, (n, k, s, p, d) in enumerate(
            zip(input_size, kernel_size, stride_t, pairs, dilation_t, strict=True)
        )
    )
    return ConvSpec(in_channels, out_channels, input_size, kernel_size, stride_t, pairs,
                    dilation_t, g, mode, output_size)


def _check_padding_mode(
    padding_mode: Any, pairs: tuple[tuple[int, int], ...], input_size: tuple[int, ...]
) -> PaddingMode:
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ConvMatrixError(
            f"`padding_mode` (={padding_mode!r}) must be one of {', '.join(PADDING_MODES)}"
        )
    for axis, ((before, after), n) in enumerate(zip(pairs, input_size, strict=True)):
        if padding_mode == "reflect" and max(before, after) >= n:
            raise ConvMatrixError(
                f"`padding` {(before, after)} along spatial axis {axis} must be smaller than the "
                f"input size ({n}) for padding_mode='reflect' (mirroring without repeating the "
                f"edge needs that many pixels)"
            )
        if padding_mode == "symmetric" and max(before, after) > n:
            raise ConvMatrixError(
                f"`padding` {(before, after)} along spatial axis {axis} must be at most the input "
                f"size ({n}) for padding_mode='symmetric' (one mirror image, edge included)"
            )
        if padding_mode == "circular" and max(before, after) > n:
            raise ConvMatrixError(
                f"`padding` {(before, after)} along spatial axis {axis} must be at most the input "
                f"size ({n}) for padding_mode='circular' (torch refuses to wrap around more "
                f"than once)"
            )
    return padding_mode  # type: ignore[return-value]


def conv_transpose_spec(
    weight_shape: ShapeLike,
    input_shape: ShapeLike,
    *,
    stride: IntOrSeq = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    groups: SupportsIndex = 1,
) -> ConvSpec:
    """Return the forward :class:`ConvSpec` whose matrix transposed is a transposed convolution.

    A transposed convolution (torch ``conv_transposeNd``) with weight
    ``(C_in, C_out // groups, *k)`` maps ``input_shape = (C_in, *n)`` to
    ``(C_out, *o)`` with ``o = (n − 1)·s − p_before − p_after + d·(k − 1) + output_padding + 1``.
    It is the adjoint of the forward convolution from ``(C_out, *o)`` to ``(C_in, *n)`` with the
    same weight array, stride, padding, dilation and groups; this function returns that forward
    spec (``spec.input_shape`` is the transposed layer's output shape).

    Parameters
    ----------
    weight_shape : sequence of int
        ``(C_in, C_out // groups, *kernel_size)``, torch's ``ConvTransposeNd.weight`` layout.
    input_shape : sequence of int
        One sample of the transposed layer's input, ``(C_in, *spatial)``.
    stride, dilation : int or sequence of int
        Positive.
    padding : int, sequence of int, or sequence of (before, after) pairs
        Removed from the output (torch's ``padding``). Pairs allow asymmetric crops, as Keras'
        transposed layers need; ``"valid"`` means 0.
    output_padding : int or sequence of int
        Extra size at the end of each axis; ``0 <= output_padding < max(stride, dilation)`` as in
        torch.
    groups : int
        Both channel counts must be divisible by it.

    Returns
    -------
    ConvSpec
        The forward convolution; its ``input_shape`` is the transposed layer's output shape.

    Examples
    --------
    >>> spec = conv_transpose_spec((1, 1, 2, 2), (1, 2, 2))
    >>> spec.input_shape, spec.output_shape   # forward conv: 3x3 -> 2x2
    ((1, 3, 3), (1, 2, 2))
    >>> conv_transpose_spec((1, 1, 3, 3), (1, 4, 4), stride=2, padding=1,
    ...                     output_padding=1).input_shape
    (1, 8, 8)
    """
    wshape, ishape = _split_weight_shape(weight_shape, input_shape)
    ndim = len(ishape) - 1
    in_channels, input_size = ishape[0], ishape[1:]
    kernel_size = wshape[2:]
    if wshape[0] != in_channels:
        raise ConvMatrixError(
            f"`weight.shape[0]` (={wshape[0]}) must equal the input channels `input_shape[0]` "
            f"(={in_channels}); transposed-convolution weight layout is "
            f"(C_in, C_out // groups, *kernel)"
        )
    g = _check_groups(groups, {"`C_in` (input_shape[0])": in_channels})
    out_channels = wshape[1] * g
    stride_t = per_axis(stride, ndim, "stride", minimum=1)
    dilation_t = per_axis(dilation, ndim, "dilation", minimum=1)
    if isinstance(padding, str) and padding != "valid":
        raise ConvMatrixError(
            f"`padding` (={padding!r}) is not supported for a transposed convolution (torch "
            f"accepts only ints); give ints or (before, after) pairs, or use "
            f"convmatrix.keras_matrix for Keras' 'same'"
        )
    pairs = _padding_pairs(padding, ndim, kernel_size, stride_t, dilation_t)
    out_pad = per_axis(output_padding, ndim, "output_padding", minimum=0)
    output_size = []
    for axis in range(ndim):
        s, d, a = stride_t[axis], dilation_t[axis], out_pad[axis]
        if a >= max(s, d):
            raise ConvMatrixError(
                f"`output_padding` (={out_pad}) must be smaller than either `stride` "
                f"(={stride_t}) or `dilation` (={dilation_t}) along spatial axis {axis}, "
                f"as in torch"
            )
        o = shapes.conv_transpose_output_length(input_size[axis], kernel_size[axis], s,
                                                pairs[axis], d, a)
        if o < 1:
            raise ConvMatrixError(
                f"transposed convolution output would be empty along spatial axis {axis}: "
                f"(n − 1)·s − pad + d·(k − 1) + output_padding + 1 = {o} for n="
                f"{input_size[axis]}, k={kernel_size[axis]}, s={s}, pad={pairs[axis]}, d={d}, "
                f"output_padding={a}"
            )
        output_size.append(o)
    return ConvSpec(out_channels, in_channels, tuple(output_size), kernel_size, stride_t, pairs,
                    dilation_t, g, "zeros", input_size)


def conv_output_shape(
    weight_shape: ShapeLike, input_shape: ShapeLike, **geometry: Any
) -> tuple[int, ...]:
    """Output shape ``(C_out, *spatial)`` of a convolution; same keywords as :func:`conv_spec`.

    Examples
    --------
    >>> conv_output_shape((64, 3, 7, 7), (3, 224, 224), stride=2, padding=3)
    (64, 112, 112)
    """
    return conv_spec(weight_shape, input_shape, **geometry).output_shape


def conv_transpose_output_shape(
    weight_shape: ShapeLike, input_shape: ShapeLike, **geometry: Any
) -> tuple[int, ...]:
    """Output shape of a transposed convolution; same keywords as :func:`conv_transpose_spec`.

    Examples
    --------
    >>> conv_transpose_output_shape((1, 1, 2, 2), (1, 3, 3))   # the seed: (1, 3, 3, 1) -> 4x4
    (1, 4, 4)
    """
    return conv_transpose_spec(weight_shape, input_shape, **geometry).input_shape
