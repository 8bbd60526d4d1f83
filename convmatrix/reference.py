"""Dense reference convolutions (numpy loops over kernel taps), sharing no code with the builder.

This module is the yardstick the sparse matrices are checked against, so it is written to be
obviously correct rather than fast: ``np.pad`` for the padding modes, one strided slice of the
padded input per kernel tap, and a scatter-add per tap for the transposed convolution. It
imports nothing from the rest of the package except the error type.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError

__all__ = ["conv", "conv_transpose", "pad", "pad_adjoint"]

_NP_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
                 "circular": "wrap"}


def _tuple(value: Any, ndim: int, name: str, minimum: int) -> tuple[int, ...]:
    values = tuple(int(v) for v in value) if np.ndim(value) else (int(value),) * ndim
    if len(values) != ndim or min(values) < minimum:
        raise ConvMatrixError(f"`{name}` (={value!r}) must be {ndim} ints >= {minimum}")
    return values


def _pairs(padding: Any, ndim: int) -> tuple[tuple[int, int], ...]:
    if np.ndim(padding) == 0:
        return ((int(padding), int(padding)),) * ndim
    pairs = tuple((int(p), int(p)) if np.ndim(p) == 0 else (int(p[0]), int(p[1]))
                  for p in padding)
    if len(pairs) != ndim or min(min(p) for p in pairs) < 0:
        raise ConvMatrixError(f"`padding` (={padding!r}) must be {ndim} non-negative entries")
    return pairs


def pad(x: np.ndarray, padding: Sequence[tuple[int, int]], mode: str = "zeros") -> np.ndarray:
    """Pad the spatial axes of ``x`` (``(C, *spatial)``) with torch's mode names.

    Examples
    --------
    >>> pad(np.array([[1, 2, 3]]), [(2, 1)], "reflect").tolist()
    [[3, 2, 1, 2, 3, 2]]
    """
    if mode not in _NP_PAD_MODES:
        raise ConvMatrixError(f"`padding_mode` (={mode!r}) must be one of {list(_NP_PAD_MODES)}")
    return np.pad(x, [(0, 0), *padding], mode=_NP_PAD_MODES[mode])  # type: ignore[call-overload]


def pad_adjoint(g: np.ndarray, padding: Sequence[tuple[int, int]], mode: str) -> np.ndarray:
    """Adjoint of :func:`pad`: add every padded pixel's value back onto the pixel it copies.

    Parameters
    ----------
    g : ndarray, shape ``(C, *padded_spatial)``
    padding : sequence of (int, int)
    mode : {"zeros", "reflect", "replicate", "circular"}

    Returns
    -------
    ndarray, shape ``(C, *spatial)``

    Examples
    --------
    >>> pad_adjoint(np.ones((1, 6)), [(2, 1)], "reflect").tolist()   # pixels 3 2 1 2 3 2
    [[1.0, 3.0, 2.0]]
    """
    size = tuple(n - b - a for n, (b, a) in zip(g.shape[1:], padding, strict=True))
    # which original pixel each padded position copies: pad the index grid itself
    source = pad(np.arange(int(np.prod(size))).reshape(1, *size), padding, mode)[0]
    out = np.zeros((g.shape[0], int(np.prod(size))), dtype=g.dtype)
    inside = tuple(slice(b, b + n) for (b, _), n in zip(padding, size, strict=True))
    if mode == "zeros":
        return np.array(g[(slice(None), *inside)])
    for c in range(g.shape[0]):
        np.add.at(out[c], source.ravel(), g[c].ravel())
    return out.reshape(g.shape[0], *size)


def conv(
    x: Any,
    weight: Any,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """Dense convolution of one sample (torch ``convNd``: cross-correlation, channels first).

    Parameters
    ----------
    x : array_like, shape ``(C_in, *spatial)``
    weight : array_like, shape ``(C_out, C_in // groups, *k)``
    stride, dilation : int or sequence of int
    padding : int, sequence of int or of (before, after) pairs, "valid" or "same"
    groups : int
    padding_mode : {"zeros", "reflect", "replicate", "circular"}

    Returns
    -------
    ndarray, shape ``(C_out, *out)``
        dtype ``np.result_type(x, weight)``.

    Examples
    --------
    >>> conv(np.ones((1, 3, 3), dtype=int), np.ones((1, 1, 2, 2), dtype=int)).tolist()
    [[[4, 4], [4, 4]]]
    >>> x, w = np.arange(6.0), np.array([1.0, -1.0, 2.0])
    >>> bool(np.allclose(conv(x[None], w[None, None])[0], np.correlate(x, w, "valid")))
    True
    """
    x, weight = np.asarray(x), np.asarray(weight)
    ndim = x.ndim - 1
    c_out, c_in_g, *kernel = weight.shape
    if x.shape[0] != c_in_g * groups or c_out % groups:
        raise ConvMatrixError(
            f"`x` has {x.shape[0]} channels; weight {weight.shape} with groups={groups} needs "
            f"{c_in_g * groups} (and C_out divisible by groups)")
    s = _tuple(stride, ndim, "stride", 1)
    d = _tuple(dilation, ndim, "dilation", 1)
    if isinstance(padding, str):
        if padding == "valid":
            pairs = ((0, 0),) * ndim
        elif padding == "same" and set(s) == {1}:
            pairs = tuple((dd * (k - 1) // 2, dd * (k - 1) - dd * (k - 1) // 2)
                          for k, dd in zip(kernel, d, strict=True))
        else:
            raise ConvMatrixError(f"`padding` (={padding!r}) must be 'valid' or 'same' "
                                  f"(stride 1)")
    else:
        pairs = _pairs(padding, ndim)
    xp = pad(x, pairs, padding_mode)
    out_size = [(n - dd * (k - 1) - 1) // ss + 1
                for n, k, ss, dd in zip(xp.shape[1:], kernel, s, d, strict=True)]
    if min(out_size) < 1:
        raise ConvMatrixError(f"the kernel does not fit the padded input {xp.shape[1:]}")
    out = np.zeros((c_out, *out_size), dtype=np.result_type(x, weight))
    c_out_g = c_out // groups
    for g in range(groups):
        xs = xp[g * c_in_g:(g + 1) * c_in_g]
        ws = weight[g * c_out_g:(g + 1) * c_out_g]
        for tap in itertools.product(*(range(k) for k in kernel)):
            window = tuple(slice(t * dd, t * dd + (o - 1) * ss + 1, ss)
                           for t, dd, o, ss in zip(tap, d, out_size, s, strict=True))
            patch = xs[(slice(None), *window)]              # (C_in/g, *out)
            w_tap = ws[(slice(None), slice(None), *tap)]    # (C_out/g, C_in/g)
            out[g * c_out_g:(g + 1) * c_out_g] += np.tensordot(w_tap, patch, axes=(1, 0))
    return out


def conv_transpose(
    y: Any,
    weight: Any,
    *,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> np.ndarray:
    """Dense transposed convolution of one sample (torch ``conv_transposeNd``), by scatter-add.

    Every input pixel ``i`` adds ``y[c, i] · weight[c, o, t]`` to output position
    ``i·s + t·d`` of a full buffer; the result drops ``padding[before]`` from the start and has
    ``(n − 1)·s − before − after + d·(k − 1) + output_padding + 1`` positions per axis.

    Parameters
    ----------
    y : array_like, shape ``(C_in, *spatial)``
    weight : array_like, shape ``(C_in, C_out // groups, *k)``
    stride, dilation, output_padding : int or sequence of int
    padding : int, sequence of int or of (before, after) pairs
    groups : int

    Returns
    -------
    ndarray, shape ``(C_out, *out)``

    Examples
    --------
    >>> conv_transpose(np.ones((1, 2, 2), dtype=int), np.ones((1, 1, 2, 2), dtype=int)).tolist()
    [[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]
    """
    y, weight = np.asarray(y), np.asarray(weight)
    ndim = y.ndim - 1
    c_in, c_out_g, *kernel = weight.shape
    if y.shape[0] != c_in or c_in % groups:
        raise ConvMatrixError(
            f"`y` has {y.shape[0]} channels; weight {weight.shape} needs {c_in} (divisible by "
            f"groups={groups})")
    s = _tuple(stride, ndim, "stride", 1)
    d = _tuple(dilation, ndim, "dilation", 1)
    a = _tuple(output_padding, ndim, "output_padding", 0)
    pairs = ((0, 0),) * ndim if padding == "valid" else _pairs(padding, ndim)
    n = y.shape[1:]
    out_size = [(nn - 1) * ss - b - af + dd * (k - 1) + aa + 1
                for nn, ss, (b, af), dd, k, aa in zip(n, s, pairs, d, kernel, a, strict=True)]
    if min(out_size) < 1:
        raise ConvMatrixError(f"the transposed convolution output {out_size} is empty")
    # full scatter buffer, long enough for every tap and for the requested output window
    full = [max((nn - 1) * ss + dd * (k - 1) + 1, b + o)
            for nn, ss, dd, k, (b, _), o in zip(n, s, d, kernel, pairs, out_size, strict=True)]
    c_in_g = c_in // groups
    buffer = np.zeros((c_out_g * groups, *full), dtype=np.result_type(y, weight))
    for g in range(groups):
        ys = y[g * c_in_g:(g + 1) * c_in_g]
        ws = weight[g * c_in_g:(g + 1) * c_in_g]
        for tap in itertools.product(*(range(k) for k in kernel)):
            window = tuple(slice(t * dd, t * dd + (nn - 1) * ss + 1, ss)
                           for t, dd, nn, ss in zip(tap, d, n, s, strict=True))
            w_tap = ws[(slice(None), slice(None), *tap)]    # (C_in/g, C_out/g)
            buffer[(slice(g * c_out_g, (g + 1) * c_out_g), *window)] += np.tensordot(
                w_tap, ys, axes=(0, 0))
    crop = tuple(slice(b, b + o) for (b, _), o in zip(pairs, out_size, strict=True))
    return buffer[(slice(None), *crop)]
