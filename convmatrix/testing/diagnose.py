"""Which conv geometry a black box really computes: screen a neighbourhood, confirm exactly."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES
from convmatrix.geometry.view import direction_keyword
from convmatrix.layers.conv import ConvLayer
from convmatrix.testing.blackbox import BlackBox, Linearity, check_linearity
from convmatrix.testing.candidates import Candidate, Geometry, neighbourhood
from convmatrix.testing.probe import probe_box
from convmatrix.typing import Direction

__all__ = ["channel_offsets", "close_rows", "identify", "matches", "name_nonlinearity"]

#: elementwise non-linearities recognised after a layer
_NONLINEARITIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda y: np.maximum(y, 0),
    "abs": np.abs,
    "square": np.square,
    "tanh": np.tanh,
    "sigmoid": lambda y: 1 / (1 + np.exp(-y)),
    "leaky_relu(0.01)": lambda y: np.where(y > 0, y, 0.01 * y),
}


def close_rows(actual: sp.sparray, expected: sp.sparray, rtol: float, atol: float
               ) -> np.ndarray:
    """Rows where ``|actual − expected| > atol + rtol·|expected|`` somewhere (sorted).

    Examples
    --------
    >>> a = sp.csr_array(np.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> close_rows(a, sp.csr_array(np.array([[1.0, 2.0], [3.0, 4.5]])), 1e-7, 0.0).tolist()
    [1]
    """
    excess = sp.csr_array(abs(sp.csr_array(actual) - sp.csr_array(expected))
                          - rtol * abs(sp.csr_array(expected)))
    excess.data = np.where(excess.data > atol, 1.0, 0.0)
    excess.eliminate_zeros()
    return np.unique(excess.tocoo().row)


def channel_offsets(offset: np.ndarray, output_shape: Sequence[int]) -> tuple[float, ...] | None:
    """One value per output channel if the flat offset is constant within channels, else None.

    Examples
    --------
    >>> channel_offsets(np.array([1.0, 1.0, 2.0, 2.0]), (2, 2))
    (1.0, 2.0)
    """
    if not output_shape or math.prod(output_shape) == 0:
        return None
    per = np.asarray(offset).reshape(output_shape[0], -1)
    if not np.all(per == per[:, :1]):
        return None
    return tuple(float(v) for v in per[:, 0])


def name_nonlinearity(box: BlackBox, layer: ConvLayer, rtol: float) -> str | None:
    """Name an elementwise non-linearity ``φ`` with ``fn(x) = φ(layer(x))``, if one fits."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, box.n))
    out = box(x)
    if box.output_shape != tuple(layer.output_shape):
        return None
    expected = np.stack([np.asarray(layer(row.reshape(layer.input_shape)), dtype=float).ravel()
                         for row in x])
    for name, phi in _NONLINEARITIES.items():
        if np.allclose(out, phi(expected), rtol=box.tolerance(max(rtol, 1e-9)), atol=1e-12):
            return name
    return None


def _screen(candidate: Candidate, lin: Linearity, input_shape: tuple[int, ...],
            rtol: float) -> bool:  # rtol: already raised to fn's precision
    """Whether the candidate reproduces fn's response to the random probe (dense reference)."""
    try:
        out = np.asarray(candidate.geometry.apply(lin.probe.reshape(input_shape))).ravel()
    except ConvMatrixError:
        return False
    if out.shape != lin.response.shape:
        return False
    scale = max(float(np.max(np.abs(lin.response), initial=0.0)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(out - lin.response), initial=0.0)) <= max(rtol, 1e-9) * scale


def matches(box: BlackBox, lin: Linearity, base: Geometry, max_distance: int, *, rtol: float,
            atol: float, fn_matrix: sp.csr_array | None = None,
            max_bytes: int | None = DEFAULT_MAX_BYTES) -> Iterator[tuple[Candidate, sp.csr_array]]:
    """Candidates near ``base`` that fn computes exactly, nearest first, with fn's matrix.

    Each candidate is screened on one random probe with the dense reference; survivors are
    confirmed on the full matrix of fn (``fn_matrix``, or probed once with the first
    survivor's pattern).
    """
    assert box.output_shape is not None
    for candidate in neighbourhood(base, box.output_shape, max_distance):
        if not _screen(candidate, lin, box.input_shape, box.tolerance(rtol)):
            continue
        layer = candidate.geometry.layer()
        if fn_matrix is None:
            fn_matrix = probe_box(box, lin, layer, max_bytes, max(rtol, 1e-9)).matrix
        if close_rows(fn_matrix, layer.matrix(), rtol, atol).size == 0:
            yield candidate, fn_matrix


def _bases(input_shape: tuple[int, ...], weight: np.ndarray, output_shape: tuple[int, ...],
           direction: Direction | None) -> list[Geometry]:
    ndim = len(input_shape) - 1
    zeros, ones = ((0, 0),) * ndim, (1,) * ndim
    bases = []
    if direction in (None, "forward") and weight.shape[1] and input_shape[0] % weight.shape[1] == 0:
        bases.append(Geometry("forward", weight, input_shape, ones, zeros, ones,
                              input_shape[0] // weight.shape[1], "zeros", (0,) * ndim))
    if (direction in (None, "adjoint") and weight.shape[1]
            and output_shape[0] % weight.shape[1] == 0):
        bases.append(Geometry("adjoint", weight, input_shape, ones, zeros, ones,
                              output_shape[0] // weight.shape[1], "zeros", (0,) * ndim))
    return bases


def identify(
    fn: Callable[[np.ndarray], Any],
    input_shape: Sequence[int],
    weight: Any,
    *,
    direction: Direction | None = None,
    batched: bool = False,
    rtol: float = 1e-7,
    atol: float = 1e-12,
    transposed: Any = None,
) -> list[ConvLayer]:
    """The conv layers with this weight that ``fn`` computes exactly (empty when none).

    Searches the same neighbourhood as :func:`~convmatrix.testing.assert_conv_equal`, around
    the default geometry (no padding, stride and dilation 1): padding pairs up to the dilated
    kernel per side, every padding mode, strides and dilations 1–3, output padding and its side,
    the kernel flipped, the weight's channel axes or spatial axes swapped, and interleaved
    groups, in any combination; screened on a random probe, confirmed on fn's whole matrix.

    Parameters
    ----------
    fn : callable
        One numpy sample (or a batch with ``batched=True``) in, an array out (see
        :func:`~convmatrix.testing.probe`).
    input_shape : sequence of int
        One sample, channels first.
    weight : array_like
        The kernel in torch layout; the search also tries its flips and axis swaps.
    direction : {"forward", "adjoint"} or None, optional
        Search only convolutions (``"forward"``) or transposed convolutions (``"adjoint"``);
        None tries both.
    batched, rtol, atol : optional
        As in :func:`~convmatrix.testing.assert_conv_equal`.
    transposed : bool, optional
        Deprecated: ``transposed=True`` is ``direction="adjoint"``, ``False`` ``"forward"``.

    Returns
    -------
    list of Conv or ConvTranspose
        Nearest to the default geometry first; an affine fn with one offset per output
        channel gives layers with that ``bias``. Empty for a non-linear fn.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> w = np.arange(1.0, 4.0).reshape(1, 1, 3)
    >>> fn = lambda x: cm.reference.conv(x, w, padding=[(2, 0)])      # causal padding
    >>> identify(fn, (1, 6), w, direction="forward")
    [Conv(1→1, 1×6 → 1×6, kernel 3, padding ((2, 0),))]
    """
    direction = direction_keyword(direction, transposed, old_name="transposed", optional=True)
    w = np.asarray(weight)
    if w.ndim != len(tuple(input_shape)) + 1:
        raise ConvMatrixError(
            f"`weight` has shape {w.shape}; with `input_shape` (={tuple(input_shape)}) it needs "
            f"{len(tuple(input_shape)) + 1} axes (two channel axes and one per spatial axis)")
    box = BlackBox(fn, input_shape, batched)
    lin = check_linearity(box)
    if not lin.is_linear(box.tolerance(max(rtol, 1e-9))):
        return []
    assert box.output_shape is not None
    bias = None
    if lin.has_offset():
        per_channel = channel_offsets(lin.zero, box.output_shape)
        if per_channel is None:
            return []
        bias = np.array(per_channel)
    found: dict[tuple[Any, ...], ConvLayer] = {}
    fn_matrix = None
    for base in _bases(box.input_shape, w, box.output_shape, direction):
        for candidate, matrix in matches(box, lin, base, len(base.input_shape) + 8,
                                         rtol=rtol, atol=atol, fn_matrix=fn_matrix):
            fn_matrix = matrix
            layer = candidate.geometry.layer(bias=bias)
            key = (type(layer), layer.spec, layer.weight.shape, layer.weight.tobytes())
            found.setdefault(key, layer)
    return list(found.values())
