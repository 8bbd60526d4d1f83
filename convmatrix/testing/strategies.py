"""Hypothesis strategies drawing conv layer objects (with weights) for property tests.

Needs the optional ``hypothesis`` package (``pip install convmatrix[hypothesis]``).

Examples
--------
>>> from hypothesis import given
>>> from convmatrix.testing.strategies import conv_layers
>>> @given(conv_layers(dims=2, max_side=6))
... def test_matrix_shape(layer):
...     assert layer.matrix().shape == layer.matrix_shape
>>> test_matrix_shape()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import conv_transpose_output_length
from convmatrix.geometry.spec import PADDING_MODES
from convmatrix.geometry.view import direction_keyword
from convmatrix.layers.conv import Conv, ConvLayer, ConvTranspose
from convmatrix.typing import Direction

try:
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - exercised only without hypothesis
    raise ImportError(
        "convmatrix.testing.strategies needs the optional 'hypothesis' package: "
        "pip install 'convmatrix[hypothesis]' (or pip install hypothesis)") from None

__all__ = ["conv_layers"]


def _choices(value: int | Sequence[int], name: str) -> list[int]:
    values = [value] if isinstance(value, int) else list(value)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ConvMatrixError(f"`{name}` (={value!r}) must be a positive int or a sequence of them")
    return values


@st.composite
def _conv_layer(draw: Any, dims: list[int], directions: list[Direction], modes: list[str],
                max_side: int, max_channels: int, max_kernel: int, max_stride: int,
                max_dilation: int, max_padding: int, max_groups: int) -> ConvLayer:
    ndim = draw(st.sampled_from(dims))
    is_transposed = draw(st.sampled_from(directions)) == "adjoint"
    mode = "zeros" if is_transposed else draw(st.sampled_from(modes))
    groups = draw(st.integers(1, max_groups))
    c_in = groups * draw(st.integers(1, max(1, max_channels // groups)))
    c_out = groups * draw(st.integers(1, max(1, max_channels // groups)))
    sizes, kernel, stride, dilation, padding, out_pad = [], [], [], [], [], []
    for _ in range(ndim):
        n = draw(st.integers(1, max_side))
        s = draw(st.integers(1, max_stride))
        d = draw(st.integers(1, max_dilation))
        if is_transposed:
            k = draw(st.integers(1, max_kernel))
            a = draw(st.integers(0, max(s, d) - 1))
            # crop at most all but one output pixel
            room = conv_transpose_output_length(n, k, s, (0, 0), d, a) - 1
            before = draw(st.integers(0, min(max_padding, room)))
            after = draw(st.integers(0, min(max_padding, room - before)))
            out_pad.append(a)
        else:
            cap = {"reflect": n - 1, "circular": n, "symmetric": n}.get(mode, max_padding)
            before = draw(st.integers(0, min(max_padding, cap)))
            after = draw(st.integers(0, min(max_padding, cap)))
            fits = (n + before + after - 1) // d + 1  # largest kernel the padded input holds
            k = draw(st.integers(1, max(1, min(max_kernel, fits))))
        sizes.append(n)
        kernel.append(k)
        stride.append(s)
        dilation.append(d)
        padding.append((before, after))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if is_transposed:
        weight = rng.standard_normal((c_in, c_out // groups, *kernel))
        return ConvTranspose(weight, (c_in, *sizes), stride=tuple(stride),
                             padding=tuple(padding), output_padding=tuple(out_pad),
                             dilation=tuple(dilation), groups=groups)
    weight = rng.standard_normal((c_out, c_in // groups, *kernel))
    return Conv(weight, (c_in, *sizes), stride=tuple(stride), padding=tuple(padding),
                dilation=tuple(dilation), groups=groups, padding_mode=mode)


def conv_layers(
    *,
    dims: int | Sequence[int] = (1, 2),
    direction: Direction | None = None,
    padding_modes: Sequence[str] = PADDING_MODES,
    max_side: int = 8,
    max_channels: int = 4,
    max_kernel: int = 3,
    max_stride: int = 3,
    max_dilation: int = 2,
    max_padding: int = 2,
    max_groups: int = 2,
    transposed: Any = None,
) -> st.SearchStrategy[ConvLayer]:
    """A strategy drawing :class:`~convmatrix.Conv` / :class:`~convmatrix.ConvTranspose` layers.

    Every drawn geometry is valid (the kernel fits the padded input, padding modes within
    their limits, ``output_padding < max(stride, dilation)``); weights are standard normal
    float64 from a drawn seed. Compose it like any strategy (``.filter``, ``.map``,
    ``st.tuples``).

    Parameters
    ----------
    dims : int or sequence of int, optional
        Spatial dimensions to draw from.
    direction : {"forward", "adjoint"} or None, optional
        Only convolutions (``"forward"``) or transposed convolutions (``"adjoint"``); None
        draws both.
    padding_modes : sequence of str, optional
        Modes for forward layers (transposed layers use zeros, as torch).
    max_side, max_channels, max_kernel, max_stride, max_dilation, max_padding, max_groups : int
        Upper bounds (inclusive) of the input side, channel counts, kernel taps, stride,
        dilation, padding per side and groups.
    transposed : bool, optional
        Deprecated: ``transposed=True`` is ``direction="adjoint"``, ``False`` ``"forward"``.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of ``Conv`` or ``ConvTranspose`` objects.

    Raises
    ------
    ConvMatrixError
        For a bound that is not a positive int or an unknown padding mode.
    """
    direction = direction_keyword(direction, transposed, old_name="transposed", optional=True)
    dims_list = _choices(dims, "dims")
    bounds = {"max_side": max_side, "max_channels": max_channels, "max_kernel": max_kernel,
              "max_stride": max_stride, "max_dilation": max_dilation, "max_groups": max_groups}
    for name, value in bounds.items():
        _choices(value, name)
    if isinstance(max_padding, bool) or not isinstance(max_padding, int) or max_padding < 0:
        raise ConvMatrixError(f"`max_padding` (={max_padding!r}) must be a non-negative int")
    modes = list(padding_modes)
    unknown = [m for m in modes if m not in PADDING_MODES]
    if not modes or unknown:
        raise ConvMatrixError(f"`padding_modes` (={padding_modes!r}) must be a non-empty sequence "
                         f"from {PADDING_MODES}")
    kinds: list[Direction] = ["forward", "adjoint"] if direction is None else [direction]
    return _conv_layer(dims_list, kinds, modes, max_side, max_channels, max_kernel, max_stride,
                       max_dilation, max_padding, max_groups)
