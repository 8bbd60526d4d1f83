"""Dense reference convolutions (numpy loops over kernel taps), sharing no code with the builder.

This module is the yardstick the sparse matrices are checked against, so it is written to be
obviously correct rather than fast: ``np.pad`` for the padding modes, one strided slice of the
padded input per kernel tap for the convolution, and one strided scatter-add per kernel tap for
the transposed convolution. It follows PyTorch's conventions (one sample, channels first,
cross-correlation without a kernel flip, torch weight layouts) and imports nothing from the rest
of the package except the error type.

Functions
---------
conv
    ``convNd`` of one sample ``(C_in, *spatial)`` with a ``(C_out, C_in // groups, *k)`` weight.
conv_transpose
    ``conv_transposeNd`` of one sample with a ``(C_in, C_out // groups, *k)`` weight.
conv_adjoint
    The adjoint of :func:`conv` for a given input shape (any padding mode), by scatter-add.
pad, pad_adjoint
    torch's padding modes on the spatial axes, and the adjoint of that padding.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError

__all__ = ["conv", "conv_adjoint", "conv_transpose", "pad", "pad_adjoint"]

#: torch's ``padding_mode`` names and the ``np.pad`` mode doing the same thing
_NP_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
                 "circular": "wrap", "symmetric": "symmetric"}


# --------------------------------------------------------------------------- argument checks


def _is_sequence(value: Any) -> bool:
    return isinstance(value, list | tuple) or (isinstance(value, np.ndarray) and value.ndim > 0)


def _int(value: Any, name: str, whole: Any) -> int:
    """``value`` as a Python int (no silent truncation of floats), else a named error."""
    try:
        return operator.index(value)
    except TypeError:
        raise ConvMatrixError(f"`{name}` (={whole!r}) must hold integers") from None


def _per_axis(value: Any, ndim: int, name: str, minimum: int) -> tuple[int, ...]:
    """An int or one int per spatial axis, each at least ``minimum``, as a tuple."""
    entries = list(value) if _is_sequence(value) else [value] * ndim
    ints = tuple(_int(v, name, value) for v in entries)
    if len(ints) != ndim:
        raise ConvMatrixError(
            f"`{name}` (={value!r}) must be an int or {ndim} ints, one per spatial axis")
    if min(ints) < minimum:
        rule = "positive" if minimum == 1 else f">= {minimum}"
        raise ConvMatrixError(f"`{name}` (={value!r}) must be {rule}")
    return ints


def _pairs(padding: Any, ndim: int) -> tuple[tuple[int, int], ...]:
    """An int, one int per axis, or one ``(before, after)`` pair per axis, as pairs."""
    entries = list(padding) if _is_sequence(padding) else [padding] * ndim
    if len(entries) != ndim:
        raise ConvMatrixError(
            f"`padding` (={padding!r}) must be an int or have one entry per spatial axis "
            f"({ndim}): an int or a (before, after) pair")
    pairs: list[tuple[int, int]] = []
    for entry in entries:
        if not _is_sequence(entry):
            p = _int(entry, "padding", padding)
            pairs.append((p, p))
        elif len(entry) == 2:
            pairs.append((_int(entry[0], "padding", padding), _int(entry[1], "padding", padding)))
        else:
            raise ConvMatrixError(
                f"`padding` (={padding!r}) entries must be ints or (before, after) pairs")
    if min(min(pair) for pair in pairs) < 0:
        raise ConvMatrixError(f"`padding` (={padding!r}) must be non-negative")
    return tuple(pairs)


def _arrays(data: Any, weight: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Both operands as arrays, with ``(C, *spatial)`` and ``(C_a, C_b, *k)`` shapes checked."""
    data, weight = np.asarray(data), np.asarray(weight)
    if data.ndim < 2 or min(data.shape[1:]) < 1:
        raise ConvMatrixError(
            f"`{name}` (shape {data.shape}) must be one sample (C, *spatial) with at least one "
            f"non-empty spatial axis")
    if weight.ndim != data.ndim + 1 or min(weight.shape) < 1:
        raise ConvMatrixError(
            f"`weight` (shape {weight.shape}) must have {data.ndim + 1} non-empty axes (two "
            f"channel axes, then one kernel axis per spatial axis of `{name}` {data.shape})")
    return data, weight


def _groups(groups: Any, **channels: int) -> int:
    g = _int(groups, "groups", groups)
    if g < 1:
        raise ConvMatrixError(f"`groups` (={groups!r}) must be positive")
    for label, count in channels.items():
        if count % g:
            raise ConvMatrixError(f"`groups` (={g}) must divide {label} (={count})")
    return g


def _conv_pairs(padding: Any, padding_mode: str, kernel: Sequence[int], s: tuple[int, ...],
                d: tuple[int, ...], stride: Any) -> tuple[tuple[int, int], ...]:
    """A convolution's ``padding`` argument (ints, pairs, "valid", "same") as pairs."""
    ndim = len(kernel)
    if padding_mode not in _NP_PAD_MODES:
        raise ConvMatrixError(
            f"`padding_mode` (={padding_mode!r}) must be one of {list(_NP_PAD_MODES)}")
    if not isinstance(padding, str):
        return _pairs(padding, ndim)
    if padding == "valid":
        return ((0, 0),) * ndim
    if padding == "same":
        if max(s) > 1:
            raise ConvMatrixError(
                f"`padding`='same' needs stride 1 (torch rule); `stride` is {stride!r}")
        total = [dd * (k - 1) for k, dd in zip(kernel, d, strict=True)]
        return tuple((t // 2, t - t // 2) for t in total)
    raise ConvMatrixError(
        f"`padding` (={padding!r}) must be 'valid', 'same', an int, {ndim} ints or "
        f"{ndim} (before, after) pairs")


# --------------------------------------------------------------------------- padding


def pad(x: np.ndarray, padding: Sequence[tuple[int, int]], mode: str = "zeros") -> np.ndarray:
    """Pad the spatial axes of one sample with torch's padding-mode names.

    Parameters
    ----------
    x : array_like, shape ``(C, *spatial)``
        One sample, channels first; the channel axis is not padded.
    padding : sequence of (int, int)
        One non-negative ``(before, after)`` pair per spatial axis.
    mode : {"zeros", "reflect", "replicate", "circular", "symmetric"}
        torch's ``padding_mode``; done by ``np.pad`` modes ``constant``, ``reflect``, ``edge``
        and ``wrap``; ``"symmetric"`` is ``np.pad``'s own (edge-including mirror). (torch
        limits ``reflect`` to pads below the input size and ``circular`` to pads up to it;
        ``np.pad`` keeps reflecting or wrapping beyond, which agrees with torch wherever torch
        is defined.)

    Returns
    -------
    ndarray, shape ``(C, *(n + before + after))``

    Raises
    ------
    ConvMatrixError
        For an unknown ``mode``.

    Examples
    --------
    >>> pad(np.array([[1, 2, 3]]), [(2, 1)], "reflect").tolist()
    [[3, 2, 1, 2, 3, 2]]
    >>> pad(np.array([[1, 2, 3]]), [(2, 1)], "circular").tolist()
    [[2, 3, 1, 2, 3, 1]]
    >>> pad(np.array([[1, 2, 3]]), [(2, 2)], "symmetric").tolist()
    [[2, 1, 1, 2, 3, 3, 2]]
    """
    if mode not in _NP_PAD_MODES:
        raise ConvMatrixError(f"`padding_mode` (={mode!r}) must be one of {list(_NP_PAD_MODES)}")
    return np.pad(x, [(0, 0), *padding], mode=_NP_PAD_MODES[mode])  # type: ignore[call-overload]


def pad_adjoint(g: np.ndarray, padding: Sequence[tuple[int, int]], mode: str) -> np.ndarray:
    """Adjoint of :func:`pad`: add every padded pixel's value back onto the pixel it copies.

    Parameters
    ----------
    g : ndarray, shape ``(C, *padded_spatial)``
        A cotangent shaped like the padded sample.
    padding : sequence of (int, int)
        The ``(before, after)`` pairs that :func:`pad` used, one per spatial axis.
    mode : {"zeros", "reflect", "replicate", "circular", "symmetric"}
        The padding mode that :func:`pad` used.

    Returns
    -------
    ndarray, shape ``(C, *spatial)``
        ``padᵀ g``, so ``vdot(pad(x), g) == vdot(x, pad_adjoint(g))`` for every ``x``.

    Examples
    --------
    >>> pad_adjoint(np.ones((1, 6)), [(2, 1)], "reflect").tolist()   # pixels 3 2 1 2 3 2
    [[1.0, 3.0, 2.0]]
    """
    size = tuple(n - b - a for n, (b, a) in zip(g.shape[1:], padding, strict=True))
    if mode == "zeros":  # padding pixels are constants: keep the interior
        inside = tuple(slice(b, b + n) for (b, _), n in zip(padding, size, strict=True))
        return np.array(g[(slice(None), *inside)])
    # which original pixel each padded position copies: pad the grid of flat indices itself
    source = pad(np.arange(int(np.prod(size))).reshape(1, *size), padding, mode)[0]
    out = np.zeros((g.shape[0], int(np.prod(size))), dtype=g.dtype)
    for c in range(g.shape[0]):
        np.add.at(out[c], source.ravel(), g[c].ravel())
    return out.reshape(g.shape[0], *size)


# --------------------------------------------------------------------------- convolutions


def conv(
    x: Any,
    weight: Any,
    *,
    stride: int | Sequence[int] = 1,
    padding: Any = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """Dense convolution of one sample (torch ``convNd``: cross-correlation, channels first).

    ``out[o, j] = Σ_c Σ_t weight[o, c, t] · xp[g·C_in/groups + c, j·s + t·d]`` where ``xp`` is
    the padded input and ``g`` the group of output channel ``o``.

    Parameters
    ----------
    x : array_like, shape ``(C_in, *spatial)``
        One sample, channels first, with one or more spatial axes.
    weight : array_like, shape ``(C_out, C_in // groups, *k)``
        torch's ``Conv`` weight layout.
    stride : int or sequence of int, default 1
        Positive, one per spatial axis or one for all.
    padding : int, sequence of int, sequence of (int, int), "valid" or "same", default 0
        Non-negative: an int for every side, one int per axis (both sides), or one
        ``(before, after)`` pair per axis. ``"valid"`` is no padding; ``"same"`` (stride 1
        only, as in torch) pads ``d·(k − 1)`` per axis, ``d·(k − 1) // 2`` of it before.
    dilation : int or sequence of int, default 1
        Positive spacing between kernel taps.
    groups : int, default 1
        Must divide ``C_in`` and ``C_out``.
    padding_mode : {"zeros", "reflect", "replicate", "circular", "symmetric"}, default "zeros"
        How the padding pixels are filled (see :func:`pad`).

    Returns
    -------
    ndarray, shape ``(C_out, *out)``
        ``out = (n + before + after − d·(k − 1) − 1) // s + 1`` per axis; dtype
        ``np.result_type(x, weight)`` (integer inputs give exact integer outputs).

    Raises
    ------
    ConvMatrixError
        For inconsistent channels or groups, non-positive stride or dilation, negative or
        malformed padding, ``"same"`` with a stride above 1, an unknown padding string or mode,
        or an empty output.

    Examples
    --------
    >>> conv(np.ones((1, 3, 3), dtype=int), np.ones((1, 1, 2, 2), dtype=int)).tolist()
    [[[4, 4], [4, 4]]]
    >>> x, w = np.arange(6.0), np.array([1.0, -1.0, 2.0])
    >>> bool(np.allclose(conv(x[None], w[None, None])[0], np.correlate(x, w, "valid")))
    True
    """
    x, weight = _arrays(x, weight, "x")
    ndim = x.ndim - 1
    c_in, (c_out, c_in_g, *kernel) = x.shape[0], weight.shape
    groups = _groups(groups, C_in=c_in, C_out=c_out)
    if c_in_g * groups != c_in:
        raise ConvMatrixError(
            f"`weight` (shape {weight.shape}) takes {c_in_g} channels per group, so with "
            f"`groups`={groups} it needs {c_in_g * groups} input channels; `x` has {c_in}")
    s = _per_axis(stride, ndim, "stride", 1)
    d = _per_axis(dilation, ndim, "dilation", 1)
    pairs = _conv_pairs(padding, padding_mode, kernel, s, d, stride)
    xp = pad(x, pairs, padding_mode)
    span = [dd * (k - 1) + 1 for k, dd in zip(kernel, d, strict=True)]
    if any(n < sp for n, sp in zip(xp.shape[1:], span, strict=True)):
        raise ConvMatrixError(
            f"empty output: `x` spatial shape {x.shape[1:]} padded by `padding`={padding!r} "
            f"is {xp.shape[1:]}, shorter than the dilated kernel {tuple(span)} "
            f"(kernel {tuple(kernel)}, `dilation`={dilation!r})")
    out_size = [(n - sp) // ss + 1 for n, sp, ss in zip(xp.shape[1:], span, s, strict=True)]

    out = np.zeros((c_out, *out_size), dtype=np.result_type(x, weight))
    c_out_g = c_out // groups
    for g in range(groups):
        xs = xp[g * c_in_g:(g + 1) * c_in_g]                  # (C_in/g, *padded)
        ws = weight[g * c_out_g:(g + 1) * c_out_g]            # (C_out/g, C_in/g, *k)
        for tap in itertools.product(*(range(k) for k in kernel)):
            # the input pixels tap t reads for outputs j = 0, 1, ...: j·s + t·d
            window = tuple(slice(t * dd, t * dd + (o - 1) * ss + 1, ss)
                           for t, dd, o, ss in zip(tap, d, out_size, s, strict=True))
            patch = xs[(slice(None), *window)]                # (C_in/g, *out)
            w_tap = ws[(slice(None), slice(None), *tap)]      # (C_out/g, C_in/g)
            out[g * c_out_g:(g + 1) * c_out_g] += np.tensordot(w_tap, patch, axes=(1, 0))
    return out


def _scatter_taps(buffer: np.ndarray, y: np.ndarray, weight: np.ndarray, groups: int,
                  s: tuple[int, ...], d: tuple[int, ...]) -> None:
    """Add every kernel tap's contribution of ``y`` into ``buffer`` (the full, uncropped grid).

    ``weight[c, j, *tap]`` carries channel ``c`` of ``y`` (per group) to channel ``j`` of the
    buffer: entry ``i`` of ``y`` lands, through tap ``t``, at position ``i·s + t·d``.
    """
    per_group_in, per_group_out = y.shape[0] // groups, weight.shape[1]
    for g in range(groups):
        ys = y[g * per_group_in:(g + 1) * per_group_in]
        ws = weight[g * per_group_in:(g + 1) * per_group_in]
        outs = slice(g * per_group_out, (g + 1) * per_group_out)
        for tap in itertools.product(*(range(k) for k in weight.shape[2:])):
            window = tuple(slice(t * dd, t * dd + (nn - 1) * ss + 1, ss)
                           for t, dd, nn, ss in zip(tap, d, y.shape[1:], s, strict=True))
            taps: tuple[Any, ...] = (slice(None), slice(None), *tap)
            buffer[(outs, *window)] += np.tensordot(ws[taps], ys, axes=(0, 0))


def conv_transpose(
    y: Any,
    weight: Any,
    *,
    stride: int | Sequence[int] = 1,
    padding: Any = 0,
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> np.ndarray:
    """Dense transposed convolution of one sample (torch ``conv_transposeNd``), by scatter-add.

    Every input pixel ``i`` and kernel tap ``t`` add ``y[c, i] · weight[c, o, t]`` to position
    ``i·s + t·d`` of a full output buffer (within each group). Output index ``j`` is full
    position ``j + before``; there are ``(n − 1)·s − before − after + d·(k − 1) +
    output_padding + 1`` of them per axis, and positions past the full buffer (which
    ``output_padding`` can reach) are zero.

    Parameters
    ----------
    y : array_like, shape ``(C_in, *spatial)``
        One sample, channels first, with one or more spatial axes.
    weight : array_like, shape ``(C_in, C_out // groups, *k)``
        torch's ``ConvTranspose`` weight layout.
    stride : int or sequence of int, default 1
        Positive, one per spatial axis or one for all.
    padding : int, sequence of int or sequence of (int, int), default 0
        Non-negative: torch's symmetric padding (an int, or one int per axis), or one
        ``(before, after)`` pair per axis, which generalises it. ``"valid"`` means 0.
    output_padding : int or sequence of int, default 0
        Non-negative extra positions at the end of each axis. torch requires it below the
        stride or the dilation; this reference accepts any value (the extra positions are 0).
    dilation : int or sequence of int, default 1
        Positive spacing between kernel taps.
    groups : int, default 1
        Must divide ``C_in``; the result has ``groups · weight.shape[1]`` channels.

    Returns
    -------
    ndarray, shape ``(C_out, *out)``
        dtype ``np.result_type(y, weight)`` (integer inputs give exact integer outputs).

    Raises
    ------
    ConvMatrixError
        For inconsistent channels or groups, non-positive stride or dilation, negative or
        malformed padding or output padding, or an empty output.

    Examples
    --------
    >>> conv_transpose(np.ones((1, 2, 2), dtype=int), np.ones((1, 1, 2, 2), dtype=int)).tolist()
    [[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]
    >>> conv_transpose(np.array([[1, 2]]), np.array([[[1, 1, 1]]]), stride=2).tolist()
    [[1, 1, 3, 2, 2]]
    """
    y, weight = _arrays(y, weight, "y")
    ndim = y.ndim - 1
    c_in, (c_in_w, c_out_g, *kernel) = y.shape[0], weight.shape
    if c_in_w != c_in:
        raise ConvMatrixError(
            f"`weight` (shape {weight.shape}) takes {c_in_w} input channels; `y` has {c_in}")
    groups = _groups(groups, C_in=c_in)
    s = _per_axis(stride, ndim, "stride", 1)
    d = _per_axis(dilation, ndim, "dilation", 1)
    a = _per_axis(output_padding, ndim, "output_padding", 0)
    if isinstance(padding, str) and padding != "valid":
        raise ConvMatrixError(
            f"`padding` (={padding!r}) must be an int, {ndim} ints or {ndim} (before, after) "
            f"pairs for a transposed convolution ('valid' means 0)")
    pairs = _pairs(0 if isinstance(padding, str) else padding, ndim)

    n = y.shape[1:]
    full = [(nn - 1) * ss + dd * (k - 1) + 1 for nn, ss, dd, k in zip(n, s, d, kernel, strict=True)]
    out_size = [f - b - af + aa for f, (b, af), aa in zip(full, pairs, a, strict=True)]
    if min(out_size) < 1:
        raise ConvMatrixError(
            f"empty output: the transposed convolution of `y` spatial shape {n} with "
            f"`padding`={padding!r} and `output_padding`={output_padding!r} has shape "
            f"{tuple(out_size)}")

    # the scatter buffer: every tap's positions, extended (with zeros) to the output window
    buffer_size = [max(f, b + o) for f, (b, _), o in zip(full, pairs, out_size, strict=True)]
    buffer = np.zeros((c_out_g * groups, *buffer_size), dtype=np.result_type(y, weight))
    _scatter_taps(buffer, y, weight, groups, s, d)
    crop = tuple(slice(b, b + o) for (b, _), o in zip(pairs, out_size, strict=True))
    return np.ascontiguousarray(buffer[(slice(None), *crop)])


def conv_adjoint(
    y: Any,
    weight: Any,
    input_shape: Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: Any = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """Adjoint of :func:`conv` for inputs of shape ``input_shape``: ``Cᵀ y`` by scatter-add.

    Every output pixel ``j`` and tap ``t`` add ``weight[o, c, t] · y[o, j]`` back to the padded
    position ``j·s + t·d`` that :func:`conv` read, then :func:`pad_adjoint` folds the padding
    onto the pixels it copies. It takes the same arguments as :func:`conv` (every padding form
    and mode) and needs no output-padding arithmetic: the input shape is given.

    Parameters
    ----------
    y : array_like, shape ``(C_out, *out)``
        A cotangent shaped like the convolution's output.
    weight : array_like, shape ``(C_out, C_in // groups, *k)``
        torch's ``Conv`` weight layout (the same array :func:`conv` takes).
    input_shape : sequence of int
        ``(C_in, *spatial)`` of the convolution's input.
    stride, padding, dilation, groups, padding_mode
        As in :func:`conv`.

    Returns
    -------
    ndarray, shape ``input_shape``
        ``vdot(conv(x), y) == vdot(x, conv_adjoint(y))`` for every ``x`` (no conjugation).

    Raises
    ------
    ConvMatrixError
        For the errors :func:`conv` raises, and for a ``y`` with more outputs than the
        convolution of ``input_shape`` has.

    Examples
    --------
    >>> conv_adjoint(np.ones((1, 2)), np.array([[[1, 2]]]), (1, 3)).tolist()
    [[1.0, 3.0, 2.0]]
    >>> conv_adjoint(np.ones((1, 4)), np.ones((1, 1, 2)), (1, 3), padding=1,
    ...              padding_mode="reflect").tolist()   # padded pixels x1 x0 x1 x2 x1
    [[2.0, 4.0, 2.0]]
    """
    y, weight = _arrays(y, weight, "y")
    ndim = y.ndim - 1
    shape = tuple(_int(v, "input_shape", input_shape) for v in input_shape)
    if len(shape) != ndim + 1 or min(shape) < 1:
        raise ConvMatrixError(
            f"`input_shape` (={tuple(input_shape)}) must be (C_in, *spatial) with {ndim} "
            f"positive spatial sizes, like `y` {y.shape}")
    c_in, (c_out, c_in_g, *kernel) = shape[0], weight.shape
    if y.shape[0] != c_out:
        raise ConvMatrixError(
            f"`y` has {y.shape[0]} channels but `weight` (shape {weight.shape}) has {c_out} "
            f"output channels")
    groups = _groups(groups, C_in=c_in, C_out=c_out)
    if c_in_g * groups != c_in:
        raise ConvMatrixError(
            f"`weight` (shape {weight.shape}) takes {c_in_g} channels per group, so with "
            f"`groups`={groups} it needs {c_in_g * groups} input channels; `input_shape` has "
            f"{c_in}")
    s = _per_axis(stride, ndim, "stride", 1)
    d = _per_axis(dilation, ndim, "dilation", 1)
    pairs = _conv_pairs(padding, padding_mode, kernel, s, d, stride)
    padded = [n + b + a for n, (b, a) in zip(shape[1:], pairs, strict=True)]
    out = y.shape[1:]
    if any((o - 1) * ss + dd * (k - 1) + 1 > p
           for o, ss, dd, k, p in zip(out, s, d, kernel, padded, strict=True)):
        raise ConvMatrixError(
            f"`y` (shape {y.shape}) has more outputs than the convolution of `input_shape` "
            f"{shape} (padded to {tuple(padded)}) produces")

    grad = np.zeros((c_in, *padded), dtype=np.result_type(y, weight))
    _scatter_taps(grad, y, weight, groups, s, d)
    return pad_adjoint(grad, pairs, padding_mode)
