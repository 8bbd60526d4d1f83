"""``jax.lax`` convolutions as layer objects: the input array replaced by its shape.

:func:`conv_general_dilated` and :func:`conv_transpose` take the arguments of their
``jax.lax`` namesakes, with ``lhs`` replaced by ``lhs_shape`` (batch axis included, batch 1),
and return the layer object of that one sample: its matrix acts on the sample flattened in C
order in the ``lhs`` layout, its output is in the ``out`` layout. JAX is not imported; ``rhs``
may be a NumPy array, a JAX array or anything ``numpy.asarray`` reads. What JAX refuses is
refused here too, with JAX's reason (``ConvMatrixError``).

Semantics (read from ``jax/_src/lax/convolution.py``): per spatial axis, the input is dilated
by ``lhs_dilation`` (``a − 1`` zeros between samples), padded by ``(lo, hi)`` (negative crops),
and cross-correlated with the kernel dilated by ``rhs_dilation`` at ``window_strides``.
``conv_transpose`` is that with ``lhs_dilation = strides`` and unit window strides; its
``'SAME'``/``'VALID'`` are the padding of the *forward* convolution, its integer pairs the
transposed convolution's own padding (unless ``use_consistent_padding=True``, jax#32267).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.spec import ConvSpec
from convmatrix.layers.base import Layer
from convmatrix.layers.channels_last import ChannelsLast, KerasConv
from convmatrix.layers.conv import Conv, ConvLayer, ConvTranspose
from convmatrix.layers.pad import Pad
from convmatrix.layers.permute import Permute
from convmatrix.layers.sequential import Sequential

__all__ = ["conv_general_dilated", "conv_transpose", "dilated_conv_layer",
           "dimension_permutations", "general_dilated_layer", "transpose_layer"]

#: JAX's reason for refusing string padding with input dilation (conv_general_dilated)
STRING_PADDING_REASON = (
    "String padding is not implemented for transposed convolution using this op. Please "
    "either exactly specify the required padding or use conv_transpose.")

_TRANSPOSE_DEFAULTS = {2: ("NC", "IO", "NC"), 3: ("NHC", "HIO", "NHC"),
                       4: ("NHWC", "HWIO", "NHWC"), 5: ("NHWDC", "HWDIO", "NHWDC")}


def _index(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ConvMatrixError(f"`{name}` (={value!r}) must be an int")
    try:
        return operator.index(value)
    except TypeError:
        raise ConvMatrixError(f"`{name}` (={value!r}) must be an int") from None


def _ints(value: Any, name: str, count: int, *, minimum: int) -> tuple[int, ...]:
    """``value`` as ``count`` ints ≥ ``minimum`` (one per spatial axis, canonical order)."""
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise ConvMatrixError(f"`{name}` (={value!r}) must be a sequence of {count} ints")
    items = tuple(_index(v, name) for v in value)
    if len(items) != count:
        raise ConvMatrixError(
            f"`{name}` (={value!r}) must have one int per spatial axis ({count}); JAX: "
            f"conv_general_dilated window and {name} must have the same number of "
            f"dimensions, but got {count} and {len(items)}")
    if any(v < minimum for v in items):
        raise ConvMatrixError(f"`{name}` (={value!r}) must hold ints ≥ {minimum}")
    return items


def _spec_perm(spec: Any, name: str, ndim: int) -> tuple[int, ...]:
    items = tuple(_index(v, f"dimension_numbers.{name}") for v in spec)
    if sorted(items) != list(range(ndim)):
        raise ConvMatrixError(
            f"`dimension_numbers.{name}` (={items!r}) must be a permutation of "
            f"range({ndim}): (batch/out-feature dimension, feature/in-feature dimension, "
            f"spatial dimensions...)")
    return items


def dimension_permutations(ndim: int, dimension_numbers: Any
                           ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``(lhs_perm, rhs_perm, out_perm)`` of JAX's dimension numbers, as ``ConvDimensionNumbers``.

    Each is ``(batch or out-feature axis, feature or in-feature axis, *spatial axes)``, the
    spatial axes in the order of the ``rhs`` spec (JAX's canonical order: ``window_strides``,
    padding and dilations are given in it).

    Parameters
    ----------
    ndim : int
        The arrays' number of axes (batch and feature axes included).
    dimension_numbers : None, tuple of three str, or ConvDimensionNumbers-like
        ``None`` (``NCHW``/``OIHW``/``NCHW``), strings such as ``("NHWC", "HWIO", "NHWC")``,
        or three integer permutations (a ``jax.lax.ConvDimensionNumbers`` or anything with
        ``lhs_spec``/``rhs_spec``/``out_spec``, or a plain tuple of three int tuples).

    Examples
    --------
    >>> dimension_permutations(4, ("NHWC", "HWIO", "NHWC"))
    ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
    >>> dimension_permutations(4, ("NHWC", "WHIO", "NCHW"))   # rhs order: W first
    ((0, 3, 2, 1), (3, 2, 0, 1), (0, 1, 3, 2))
    """
    if dimension_numbers is None:
        iota = tuple(range(ndim))
        return iota, iota, iota
    specs = tuple(getattr(dimension_numbers, n) for n in ("lhs_spec", "rhs_spec", "out_spec")) \
        if hasattr(dimension_numbers, "lhs_spec") else dimension_numbers
    if isinstance(specs, str) or not hasattr(specs, "__len__") or len(specs) != 3:
        raise ConvMatrixError(
            f"`dimension_numbers` (={dimension_numbers!r}) must be None, three strings "
            f"(lhs, rhs, out) or a ConvDimensionNumbers; JAX: convolution dimension_numbers "
            f"list/tuple must be length 3")
    if not all(isinstance(s, str) for s in specs):
        names = ("lhs_spec", "rhs_spec", "out_spec")
        lhs, rhs, out = (_spec_perm(s, n, ndim) for s, n in zip(specs, names, strict=True))
        return lhs, rhs, out
    for i, spec in enumerate(specs):
        if len(spec) != ndim:
            raise ConvMatrixError(
                f"`dimension_numbers[{i}]` (={spec!r}) must have one character per axis of "
                f"lhs and rhs ({ndim}); JAX: convolution dimension_numbers[{i}] must have len "
                f"equal to the ndim of lhs and rhs")
    pairs = (("N", "C"), ("O", "I"), ("N", "C"))
    for i, (spec, (a, b)) in enumerate(zip(specs, pairs, strict=True)):
        if not spec.count(a) == spec.count(b) == 1:
            raise ConvMatrixError(
                f"`dimension_numbers[{i}]` (={spec!r}) must contain the characters {a!r} and "
                f"{b!r} exactly once")
        if len(spec) != len(set(spec)):
            raise ConvMatrixError(
                f"`dimension_numbers[{i}]` (={spec!r}) cannot have duplicate characters")
    lhs_spec, rhs_spec, out_spec = specs
    if not set(lhs_spec) - {"N", "C"} == set(rhs_spec) - {"O", "I"} == set(out_spec) - {"N", "C"}:
        raise ConvMatrixError(
            f"`dimension_numbers` (={dimension_numbers!r}): the three specs must have the same "
            f"set of spatial characters")

    def perm(spec: str, pair: tuple[str, str]) -> tuple[int, ...]:
        spatial = [i for i, c in enumerate(spec) if c not in pair]
        spatial.sort(key=lambda i: rhs_spec.index(spec[i]))
        return (spec.index(pair[0]), spec.index(pair[1]), *spatial)

    return perm(lhs_spec, pairs[0]), perm(rhs_spec, pairs[1]), perm(out_spec, pairs[2])


def _string_pads(padding: str, sizes: Sequence[int], kernels: Sequence[int],
                 strides: Sequence[int]) -> list[tuple[int, int]]:
    """JAX's ``padtype_to_pads``: ``'VALID'``, ``'SAME'`` or ``'SAME_LOWER'`` (any case)."""
    kind = padding.upper()
    if kind == "VALID":
        return [(0, 0)] * len(sizes)
    if kind not in ("SAME", "SAME_LOWER"):
        raise ConvMatrixError(
            f"`padding` (={padding!r}) must be 'VALID', 'SAME', 'SAME_LOWER' or (low, high) "
            f"pairs; JAX: Unrecognized padding type: expected 'VALID', 'SAME', or "
            f"'SAME_LOWER', got {padding}.")
    pads = []
    for n, k, s in zip(sizes, kernels, strides, strict=True):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        half = total // 2
        pads.append((half, total - half) if kind == "SAME" else (total - half, half))
    return pads


def _pair_pads(padding: Any, count: int) -> list[tuple[int, int]]:
    shown = f"`padding` (={padding!r})"
    if not hasattr(padding, "__iter__"):
        raise ConvMatrixError(f"{shown} must be a string or a sequence of (low, high) pairs")
    pairs = []
    for item in padding:
        if isinstance(item, str) or not hasattr(item, "__len__") or len(item) != 2:
            raise ConvMatrixError(
                f"{shown} must be a string or a sequence of (low, high) integer pairs; JAX: "
                f"padding argument to conv_general_dilated should be a string or a sequence "
                f"of (low, high) pairs")
        pairs.append((_index(item[0], "padding"), _index(item[1], "padding")))
    if len(pairs) != count:
        raise ConvMatrixError(
            f"{shown} must hold one (low, high) pair per spatial axis; JAX: Wrong number of "
            f"explicit pads for convolution: expected {count}, got {len(pairs)}.")
    return pairs


def _regrouped(weight: np.ndarray, groups: int) -> np.ndarray:
    """``(C_out, C_in/g, *k)`` → ``(C_in, C_out/g, *k)``, kernel flipped.

    The forward weight of the transposed convolution equal to a stride-1 correlation over a
    dilated input.
    """
    c_out, c_in_g, *k = weight.shape
    w = weight.reshape(groups, c_out // groups, c_in_g, *k).swapaxes(1, 2)
    w = w.reshape(c_in_g * groups, c_out // groups, *k)
    return np.ascontiguousarray(np.flip(w, axis=tuple(range(2, w.ndim))))


def _pad_list(pairs: Sequence[tuple[int, int]]) -> list[int]:
    """cm.Pad's order: the last axis first, (before, after) each."""
    return [v for pair in reversed(pairs) for v in pair]


def dilated_conv_layer(input_shape: Sequence[int], weight: Any, *,
                       window_strides: Sequence[int], padding: Sequence[tuple[int, int]],
                       lhs_dilation: Sequence[int], rhs_dilation: Sequence[int],
                       groups: int = 1, padding_mode: str = "zeros", bias: Any = None) -> Layer:
    """The channels-first layer of ``conv_general_dilated`` on one sample, in canonical order.

    Per spatial axis: dilate the input by ``lhs_dilation``, pad by ``padding`` (negative
    crops), cross-correlate with the kernel dilated by ``rhs_dilation`` at ``window_strides``.
    The result is the simplest exact kind: a :class:`~convmatrix.Conv` (no input dilation,
    no crops), a :class:`~convmatrix.ConvTranspose` (input dilation at unit window stride:
    the transpose of a strided convolution with the flipped kernel), or a
    :class:`~convmatrix.Sequential` of a zero-inserting transposed convolution, a
    :class:`~convmatrix.Pad` and a :class:`~convmatrix.Conv` otherwise.

    Parameters
    ----------
    input_shape : sequence of int
        One sample ``(C_in, *spatial)``.
    weight : array_like
        ``(C_out, C_in // groups, *k)`` (JAX's ``OIHW``; torch's ``Conv`` layout).
    window_strides, lhs_dilation, rhs_dilation : sequence of int
        One positive int per spatial axis.
    padding : sequence of (int, int)
        ``(lo, hi)`` per spatial axis.
    groups : int, optional
        JAX's ``feature_group_count``.
    padding_mode : str, optional
        ``"zeros"``, or a padding mode of :class:`~convmatrix.Conv` (``"circular"``,
        ``"reflect"``, ...), allowed without input dilation and with non-negative padding.
    bias : array_like, optional
        One value per output channel.

    Returns
    -------
    Layer

    Examples
    --------
    >>> import numpy as np
    >>> dilated_conv_layer((1, 3), np.ones((1, 1, 2)), window_strides=(1,), padding=[(1, 1)],
    ...                    lhs_dilation=(2,), rhs_dilation=(1,))
    ConvTranspose(1→1, 1×3 → 1×6, kernel 2, stride 2)
    """
    w = np.asarray(weight)
    ndim = len(input_shape) - 1
    kernel = w.shape[2:]
    eff = [d * (k - 1) + 1 for k, d in zip(kernel, rhs_dilation, strict=True)]
    pads = [(int(lo), int(hi)) for lo, hi in padding]
    dilated = any(a > 1 for a in lhs_dilation)
    negative = any(v < 0 for pair in pads for v in pair)
    if padding_mode != "zeros" and (dilated or negative):
        raise ConvMatrixError(
            f"`padding_mode` (={padding_mode!r}) needs no input dilation and non-negative "
            f"padding; got lhs_dilation={tuple(lhs_dilation)}, padding={pads}")
    if not dilated and not negative:
        return Conv(w, input_shape, stride=tuple(window_strides), padding=pads,
                    dilation=tuple(rhs_dilation), groups=groups, padding_mode=padding_mode,
                    bias=bias)
    sizes = input_shape[1:]
    out = [((n - 1) * a + 1 + lo + hi - k) // s + 1 for n, a, (lo, hi), k, s
           in zip(sizes, lhs_dilation, pads, eff, window_strides, strict=True)]
    forward = [(k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(eff, pads, strict=True)]
    if dilated and all(s == 1 for s in window_strides) and min(min(f) for f in forward) >= 0:
        spec = ConvSpec(w.shape[0], input_shape[0], tuple(out), tuple(kernel),
                        tuple(lhs_dilation), tuple(forward), tuple(rhs_dilation), groups,
                        "zeros", tuple(sizes))
        try:
            return ConvLayer.from_spec(spec, _regrouped(w, groups), direction="adjoint",
                                       bias=bias)
        except ConvMatrixError:  # pragma: no cover - no torch ConvTranspose has this spec
            pass
    steps: list[Layer] = []
    shape = tuple(input_shape)
    if dilated:  # a − 1 zeros between samples: the transpose of a strided 1×…×1 selection
        c = shape[0]
        identity = np.ones((c, 1, *([1] * ndim)), dtype=w.dtype if w.dtype.kind in "fc"
                           else np.float64)
        steps.append(ConvTranspose(identity, shape, stride=tuple(lhs_dilation), groups=c))
        shape = steps[-1].output_shape
    conv_pads = pads
    if negative:
        spatial = shape[1:]
        if all(n + min(lo, 0) + min(hi, 0) >= 0 for n, (lo, hi) in zip(spatial, pads,
                                                                        strict=True)):
            steps.append(Pad(shape, _pad_list(pads)))
        else:  # the crops reach into the high padding: pad first, then crop
            grow = [(max(lo, 0), max(hi, 0)) for lo, hi in pads]
            steps.append(Pad(shape, _pad_list(grow)))
            steps.append(Pad(steps[-1].output_shape,
                             _pad_list([(min(lo, 0), min(hi, 0)) for lo, hi in pads])))
        shape = steps[-1].output_shape
        conv_pads = [(0, 0)] * ndim
    steps.append(Conv(w, shape, stride=tuple(window_strides), padding=conv_pads,
                      dilation=tuple(rhs_dilation), groups=groups, bias=bias))
    return Sequential(steps)


def _sample_axes(perm: Sequence[int]) -> tuple[int, ...]:
    """Axes of one sample (batch axis removed) in canonical order ``(C, *spatial)``."""
    batch = perm[0]
    return tuple(p - (p > batch) for p in perm[1:])


def _in_layouts(core: Layer, sample_shape: tuple[int, ...], in_axes: tuple[int, ...],
                out_axes: tuple[int, ...], title: str) -> Layer:
    """``core`` (channels first, canonical) seen from the lhs layout to the out layout."""
    ndim = len(in_axes)
    first = tuple(range(ndim))
    last = (ndim - 1, *range(ndim - 1))
    if in_axes == out_axes == first:
        return core
    if in_axes == out_axes == last:
        if isinstance(core, ConvLayer):
            return KerasConv(core, title)
        return ChannelsLast(core, title)
    steps: list[Layer] = []
    if in_axes != first:
        steps.append(Permute(sample_shape, in_axes))
    steps.append(core)
    if out_axes != first:  # out sample axis j holds canonical axis out_axes.index(j)
        steps.append(Permute(core.output_shape, tuple(int(a) for a in np.argsort(out_axes))))
    return Sequential(steps)


def general_dilated_layer(lhs_shape: Any, rhs: Any, window_strides: Any, padding: Any,
                          lhs_dilation: Any, rhs_dilation: Any, dimension_numbers: Any,
                          feature_group_count: Any, batch_group_count: Any, *, title: str,
                          padding_mode: str = "zeros", bias: Any = None) -> Layer:
    """:func:`conv_general_dilated` with a title, a padding mode and a bias (for the adapters).

    ``title`` names the layer in a channels-last layout (the framework's class);
    ``padding_mode`` (``"circular"``, ``"reflect"``, ...) fills explicit non-negative padding
    without input dilation as :class:`~convmatrix.Conv` does; ``bias`` is one value per output
    channel (the layer's offset).

    Examples
    --------
    >>> import numpy as np
    >>> general_dilated_layer((1, 4, 1), np.ones((3, 1, 1)), (1,), [(1, 1)], None, None,
    ...                       ("NHC", "HIO", "NHC"), 1, 1, title="Conv", padding_mode="circular",
    ...                       bias=[0.5])(np.arange(4.0).reshape(4, 1)).ravel()
    array([4.5, 3.5, 6.5, 5.5])
    """
    if isinstance(lhs_shape, str) or not hasattr(lhs_shape, "__iter__"):
        raise ConvMatrixError(
            f"`lhs_shape` (={lhs_shape!r}) must be the input's shape, batch axis included")
    shape = tuple(_index(v, "lhs_shape") for v in lhs_shape)
    kernel = np.asarray(rhs)
    if kernel.dtype.kind not in "biuf":
        raise ConvMatrixError(f"`rhs` has dtype {kernel.dtype}; it must be real numbers")
    if kernel.ndim != len(shape):
        raise ConvMatrixError(
            f"`rhs` has {kernel.ndim} axes and `lhs_shape` (={shape}) {len(shape)}; JAX: "
            f"convolution requires lhs and rhs ndim to be equal")
    if len(shape) < 3:
        raise ConvMatrixError(
            f"`lhs_shape` (={shape}) has no spatial axis; convmatrix needs at least one")
    if min(shape) < 1 or min(kernel.shape) < 1:
        raise ConvMatrixError(
            f"`lhs_shape` (={shape}) and `rhs.shape` (={kernel.shape}) must be positive")
    lhs_perm, rhs_perm, out_perm = dimension_permutations(len(shape), dimension_numbers)
    ndim = len(shape) - 2
    batch, c_in = shape[lhs_perm[0]], shape[lhs_perm[1]]
    if batch != 1:
        raise ConvMatrixError(
            f"`lhs_shape` (={shape}) has batch {batch} (axis {lhs_perm[0]}); it must be 1: "
            f"the layer acts on one sample")
    w = np.transpose(kernel, rhs_perm)  # (O, I, *k) in canonical spatial order
    groups = _index(feature_group_count, "feature_group_count")
    batch_groups = _index(batch_group_count, "batch_group_count")
    if groups < 1:
        raise ConvMatrixError(
            f"`feature_group_count` (={groups}) must be a positive integer")
    if c_in % groups:
        raise ConvMatrixError(
            f"`feature_group_count` (={groups}) must divide the lhs feature dimension size "
            f"{c_in}; JAX: conv_general_dilated feature_group_count must divide lhs feature "
            f"dimension size, but {groups} does not divide {c_in}.")
    if c_in // groups != w.shape[1]:
        raise ConvMatrixError(
            f"the lhs feature size {c_in} divided by `feature_group_count` (={groups}) must "
            f"equal the rhs input feature size {w.shape[1]} (`rhs.shape`={kernel.shape}); JAX: "
            f"conv_general_dilated lhs feature dimension size divided by feature_group_count "
            f"must equal the rhs input feature dimension size, but {c_in} // {groups} != "
            f"{w.shape[1]}.")
    if w.shape[0] % groups:
        raise ConvMatrixError(
            f"the rhs output feature size {w.shape[0]} must be a multiple of "
            f"`feature_group_count` (={groups}); JAX: conv_general_dilated rhs output feature "
            f"dimension size must be a multiple of feature_group_count")
    if batch_groups < 1:
        raise ConvMatrixError(
            f"`batch_group_count` (={batch_groups}) must be a positive integer")
    if batch_groups > 1:
        raise ConvMatrixError(
            f"`batch_group_count` (={batch_groups}) must divide the lhs batch size, which is "
            f"1 for one sample; JAX: conv_general_dilated batch_group_count must divide lhs "
            f"batch dimension size, but {batch_groups} does not divide 1.")
    strides = _ints(window_strides, "window_strides", ndim, minimum=1)
    lhs_dil = (1,) * ndim if lhs_dilation is None else _ints(lhs_dilation, "lhs_dilation",
                                                             ndim, minimum=1)
    rhs_dil = (1,) * ndim if rhs_dilation is None else _ints(rhs_dilation, "rhs_dilation",
                                                             ndim, minimum=1)
    sizes = [shape[a] for a in lhs_perm[2:]]
    eff = [d * (k - 1) + 1 for k, d in zip(w.shape[2:], rhs_dil, strict=True)]
    if isinstance(padding, str):
        if lhs_dilation is not None and any(a != 1 for a in lhs_dil):
            raise ConvMatrixError(
                f"`padding` (={padding!r}) is a string and `lhs_dilation` (={lhs_dil}) is not "
                f"all ones; JAX: {STRING_PADDING_REASON}")
        pads = _string_pads(padding, sizes, eff, strides)
    else:
        pads = _pair_pads(padding, ndim)
    for axis, (n, a, (lo, hi), k) in enumerate(zip(sizes, lhs_dil, pads, eff, strict=True)):
        padded = (n - 1) * a + 1 + lo + hi
        if padded < 0:
            raise ConvMatrixError(
                f"`padding` (={pads}) crops spatial axis {axis} (size {n}) below nothing; JAX: "
                f"Negative padding is larger than the size of the corresponding dimension")
        if padded < k:
            raise ConvMatrixError(
                f"the output is empty along spatial axis {axis}: the padded input "
                f"({padded}) is shorter than the dilated kernel ({k}); JAX returns an empty "
                f"array, convmatrix needs at least one output")
    sample = tuple(v for i, v in enumerate(shape) if i != lhs_perm[0])
    in_axes = _sample_axes(lhs_perm)
    core = dilated_conv_layer(tuple(sample[a] for a in in_axes), w, window_strides=strides,
                              padding=pads, lhs_dilation=lhs_dil, rhs_dilation=rhs_dil,
                              groups=groups, padding_mode=padding_mode, bias=bias)
    return _in_layouts(core, sample, in_axes, _sample_axes(out_perm), title)


def conv_general_dilated(lhs_shape: Sequence[int], rhs: Any, window_strides: Sequence[int],
                         padding: str | Sequence[tuple[int, int]],
                         lhs_dilation: Sequence[int] | None = None,
                         rhs_dilation: Sequence[int] | None = None,
                         dimension_numbers: Any = None, feature_group_count: int = 1,
                         batch_group_count: int = 1) -> Layer:
    """``jax.lax.conv_general_dilated`` of one sample as a layer object.

    ``layer.matrix() @ lhs[0].ravel()`` (batch axis removed, C order in the ``lhs`` layout)
    equals ``jax.lax.conv_general_dilated(lhs, rhs, ...)`` with the batch axis removed,
    flattened in the ``out`` layout.

    Parameters
    ----------
    lhs_shape : sequence of int
        The input's shape, batch axis included (its batch must be 1).
    rhs : array_like
        The kernel in the ``rhs`` layout (``OIHW`` by default).
    window_strides : sequence of int
        One per spatial axis, in the order of the ``rhs`` spec's spatial characters.
    padding : {'SAME', 'SAME_LOWER', 'VALID'} or sequence of (int, int)
        As in JAX: strings (any case) give the forward padding for ``ceil(n / s)`` outputs
        (the odd one after for ``'SAME'``, before for ``'SAME_LOWER'``); pairs are
        ``(low, high)`` per spatial axis, negative values crop.
    lhs_dilation, rhs_dilation : sequence of int, optional
        Input (transposed-convolution) and kernel (atrous) dilation per spatial axis. Input
        dilation needs explicit padding pairs, as in JAX.
    dimension_numbers : None, tuple of three str, or ConvDimensionNumbers, optional
        ``("NCHW", "OIHW", "NCHW")`` by default; e.g. ``("NHWC", "HWIO", "NHWC")``.
    feature_group_count : int, optional
        Grouped convolution.
    batch_group_count : int, optional
        Must be 1 (it must divide the batch, which is 1).

    Returns
    -------
    Layer
        A :class:`~convmatrix.Conv` or :class:`~convmatrix.ConvTranspose` for channels-first
        layouts, a channels-last :class:`~convmatrix.KerasConv` titled
        ``conv_general_dilated`` for channels-last ones, a :class:`~convmatrix.Sequential`
        with permutations for other layouts, and a stack of zero insertion, padding and
        convolution where no single convolution kind is exact (input dilation with window
        strides, negative padding).

    Raises
    ------
    ConvMatrixError
        For what JAX refuses (with JAX's reason), a batch other than 1, or an empty output.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> rhs = np.arange(1.0, 5.0).reshape(2, 2, 1, 1)          # HWIO
    >>> layer = cm.lax.conv_general_dilated((1, 3, 3, 1), rhs, (1, 1), "SAME",
    ...                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    >>> layer
    conv_general_dilated(1→1, 3×3×1 → 3×3×1, kernel 2×2, padding ((0, 1), (0, 1)))
    >>> (layer.matrix() @ np.ones(9)).reshape(3, 3)
    array([[10., 10.,  4.],
           [10., 10.,  4.],
           [ 3.,  3.,  1.]])
    >>> cm.lax.conv_general_dilated((1, 1, 3), np.ones((1, 1, 2)), (1,), [(1, 1)],
    ...                             lhs_dilation=(2,))
    ConvTranspose(1→1, 1×3 → 1×6, kernel 2, stride 2)
    >>> cm.lax.conv_general_dilated((1, 1, 3), np.ones((1, 1, 2)), (1,), "SAME",
    ...                             lhs_dilation=(2,))
    Traceback (most recent call last):
    ...
    convmatrix._errors.ConvMatrixError: `padding` (='SAME') is a string and `lhs_dilation`
    (=(2,)) is not all ones; JAX: String padding is not implemented for transposed
    convolution using this op. Please either exactly specify the required padding or use
    conv_transpose.
    """
    return general_dilated_layer(lhs_shape, rhs, window_strides, padding, lhs_dilation,
                                 rhs_dilation, dimension_numbers, feature_group_count,
                                 batch_group_count, title="conv_general_dilated")


def _transpose_pads(k: int, s: int, padding: Any) -> tuple[int, int]:
    """JAX's ``_conv_transpose_padding``: the transposed convolution's ``(lo, hi)`` padding.

    For the forward padding ``padding`` (``'SAME'``, ``'VALID'`` or a pair), dilated kernel
    ``k`` and stride ``s``.
    """
    if padding == "SAME":
        total = k + s - 2
        lo = k - 1 if s > k - 1 else -(-total // 2)
    elif padding == "VALID":
        total = k + s - 2 + max(k - s, 0)
        lo = k - 1
    elif not isinstance(padding, str) and hasattr(padding, "__len__") and len(padding) == 2:
        lo = k - _index(padding[0], "padding") - 1
        total = lo + k - _index(padding[1], "padding") - 1
    else:
        raise ConvMatrixError(f"`padding` (={padding!r}): JAX: Invalid padding mode: {padding}")
    return lo, total - lo


def conv_transpose(lhs_shape: Sequence[int], rhs: Any, strides: Sequence[int],
                   padding: str | Sequence[tuple[int, int]],
                   rhs_dilation: Sequence[int] | None = None, dimension_numbers: Any = None,
                   transpose_kernel: bool = False, use_consistent_padding: bool = False
                   ) -> Layer:
    """``jax.lax.conv_transpose`` of one sample as a layer object.

    JAX computes a correlation over the input dilated by ``strides`` (it does not differentiate
    a forward convolution): ``'SAME'``/``'VALID'`` are converted to the padding of that
    correlation as the *forward* convolution's padding, explicit pairs are the correlation's
    own padding unless ``use_consistent_padding=True`` (then they are the forward's, as in
    torch; jax#32267). The kernel is used as given unless ``transpose_kernel=True`` (spatial
    flip and in/out swap): only then is the layer ``Cᵀ`` of the forward
    :func:`conv_general_dilated` with the same kernel, stride and (consistent) padding.

    Parameters
    ----------
    lhs_shape : sequence of int
        The input's shape, batch axis included (its batch must be 1).
    rhs : array_like
        The kernel in the ``rhs`` layout (``HWIO`` by default).
    strides : sequence of int
        The fractional strides (the input dilation), one per spatial axis.
    padding : {'SAME', 'VALID'} or sequence of (int, int)
        See above; other strings reach :func:`conv_general_dilated` as JAX passes them (and
        are refused there for strides above 1).
    rhs_dilation : sequence of int, optional
        Kernel dilation.
    dimension_numbers : optional
        As in :func:`conv_general_dilated`; by default TensorFlow's (``NHWC``, ``HWIO``,
        ``NHWC`` and their 1-D/3-D versions).
    transpose_kernel : bool, optional
        Flip the kernel's spatial axes and swap its in/out feature axes.
    use_consistent_padding : bool, optional
        Explicit pairs are the forward convolution's padding (jax ≥ 0.8's fix of #32267).

    Returns
    -------
    Layer

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> k = np.arange(1.0, 4.0).reshape(3, 1, 1)                 # HIO
    >>> up = cm.lax.conv_transpose((1, 4, 1), k, (2,), "SAME", transpose_kernel=True)
    >>> up
    conv_transpose(1→1, 4×1 → 8×1, kernel 3, stride 2, padding ((0, 1),))
    >>> down = cm.lax.conv_general_dilated((1, 8, 1), k, (2,), "SAME",
    ...                                    dimension_numbers=("NHC", "HIO", "NHC"))
    >>> bool((up.matrix() != down.matrix().T).nnz == 0)           # Cᵀ, as JAX's vjp
    True
    >>> plain = cm.lax.conv_transpose((1, 4, 1), k, (2,), "SAME")  # kernel as given
    >>> bool((plain.matrix() != down.matrix().T).nnz == 0)
    False
    """
    return transpose_layer(lhs_shape, rhs, strides, padding, rhs_dilation, dimension_numbers,
                           transpose_kernel, use_consistent_padding, title="conv_transpose")


def transpose_layer(lhs_shape: Any, rhs: Any, strides: Any, padding: Any, rhs_dilation: Any,
                    dimension_numbers: Any, transpose_kernel: bool,
                    use_consistent_padding: bool, *, title: str, bias: Any = None) -> Layer:
    """:func:`conv_transpose` with a title and a bias (for the adapters).

    Examples
    --------
    >>> import numpy as np
    >>> transpose_layer((1, 2, 1), np.ones((2, 1, 1)), (2,), "VALID", None, None, False, False,
    ...                 title="ConvTranspose", bias=[1.0])(np.ones((2, 1))).ravel()
    array([2., 2., 2., 2.])
    """
    shape = tuple(_index(v, "lhs_shape") for v in lhs_shape) \
        if hasattr(lhs_shape, "__iter__") and not isinstance(lhs_shape, str) else lhs_shape
    kernel = np.asarray(rhs)
    if not isinstance(shape, tuple) or kernel.ndim != len(shape) or len(shape) < 2:
        raise ConvMatrixError(
            f"`lhs_shape` (={lhs_shape!r}) and `rhs` (shape {kernel.shape}) must have the same "
            f"number of axes, at least 2")
    if dimension_numbers is None:
        if len(shape) not in _TRANSPOSE_DEFAULTS:
            raise ConvMatrixError(
                f"`dimension_numbers` is needed for {len(shape)}-axis arrays; JAX: No 4+ "
                f"dimensional dimension_number defaults.")
        dimension_numbers = _TRANSPOSE_DEFAULTS[len(shape)]
    _, rhs_perm, _ = dimension_permutations(len(shape), dimension_numbers)
    ndim = len(shape) - 2
    kernel_size = [kernel.shape[a] for a in rhs_perm[2:]]
    fractional = _ints(strides, "strides", ndim, minimum=1)
    dilation = (1,) * ndim if rhs_dilation is None else _ints(rhs_dilation, "rhs_dilation",
                                                              ndim, minimum=1)
    pads: Any
    if use_consistent_padding or (isinstance(padding, str) and padding in ("SAME", "VALID")):
        per_axis = [padding] * ndim if isinstance(padding, str) else list(padding)
        if len(per_axis) != ndim:
            raise ConvMatrixError(
                f"`padding` (={padding!r}) must hold one (low, high) pair per spatial axis "
                f"({ndim})")
        pads = [_transpose_pads(d * (k - 1) + 1, s, p) for k, d, s, p
                in zip(kernel_size, dilation, fractional, per_axis, strict=True)]
    else:
        pads = padding
    if transpose_kernel:
        kernel = np.flip(kernel, axis=tuple(rhs_perm[2:])).swapaxes(rhs_perm[0], rhs_perm[1])
    return general_dilated_layer(shape, kernel, (1,) * ndim, pads, fractional, dilation,
                                 dimension_numbers, 1, 1, title=title, bias=bias)

