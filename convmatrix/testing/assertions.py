"""``assert_conv_equal``: check a user's convolution against a layer and name what differs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import same_padding_tf, same_padding_torch
from convmatrix.layers.base import Layer
from convmatrix.layers.conv import ConvLayer, ConvTranspose
from convmatrix.testing.blackbox import BlackBox, as_numpy, check_linearity
from convmatrix.testing.candidates import KEYS, Candidate, geometry_of, neighbourhood
from convmatrix.testing.diagnose import channel_offsets, close_rows, matches, name_nonlinearity
from convmatrix.testing.probe import probe_box

__all__ = ["ConvMismatch", "assert_conv_equal", "difference_text"]

#: wrong outputs listed by position, and shown as sums of w·x terms
_POSITIONS, _SHOWN, _TERMS = 10, 3, 9


class ConvMismatch(AssertionError):
    """``fn`` does not compute the layer; the message says where and, if found, why.

    Attributes
    ----------
    differences : dict
        What differs → ``(layer's value, fn's value)``; keys from ``"shape"``, ``"padding"``,
        ``"padding_mode"``, ``"stride"``, ``"dilation"``, ``"groups"``, ``"output_padding"``,
        ``"kernel_flip"``, ``"weight_channels_swapped"``, ``"kernel_axes_swapped"``,
        ``"offset"``, ``"nonlinear"``. Empty when nothing searched explains the difference.
    match : Conv, ConvTranspose or None
        A layer fn computes exactly (with a ``bias`` for a per-channel offset), if found.
    """

    def __init__(self, message: str, differences: dict[str, tuple[Any, Any]],
                 match: Layer | None) -> None:
        super().__init__(message)
        self.differences = differences
        self.match = match


# ------------------------------------------------------------------------------ message parts


def _idx(index: tuple[int, ...]) -> str:
    return ", ".join(str(i) for i in index)


class _Namer:
    """Names matrix entries as weights (by value) and columns as input pixels."""

    def __init__(self, layer: ConvLayer, rtol: float, atol: float) -> None:
        self.weight = np.asarray(layer.weight)
        self.flat = self.weight.ravel()
        self.rtol, self.atol = rtol, atol
        self.input_shape = layer.input_shape

    def weight_name(self, value: complex) -> str:
        for sign, text in ((1, ""), (-1, "−")):
            hits = np.flatnonzero(np.abs(self.flat - sign * value)
                                  <= self.atol + self.rtol * abs(value))
            if hits.size == 1:
                return f"{text}w[{_idx(np.unravel_index(hits[0], self.weight.shape))}]"
        return f"{value:.6g}"

    def row_text(self, matrix: sp.csr_array, row: int) -> str:
        start, stop = matrix.indptr[row], matrix.indptr[row + 1]
        cols, vals = matrix.indices[start:stop], matrix.data[start:stop]
        keep = vals != 0
        cols, vals = cols[keep], vals[keep]
        if cols.size == 0:
            return "0"
        terms = [f"{self.weight_name(v)}·x[{_idx(np.unravel_index(c, self.input_shape))}]"
                 for c, v in zip(cols[:_TERMS], vals[:_TERMS], strict=True)]
        text = " + ".join(terms).replace("+ −", "− ")
        if cols.size > _TERMS:
            text += f" + … ({cols.size} terms)"
        return text


def _shape_lines(layer: ConvLayer, fn_shape: tuple[int, ...]) -> list[str]:
    spec = layer.spec
    lines = [f"shape: fn returns {fn_shape}; the layer gives {tuple(layer.output_shape)}."]
    if len(fn_shape) != len(layer.output_shape):
        return [*lines, "  (a different number of axes: fn's output must be (C_out, *spatial))"]
    if fn_shape[0] != layer.output_shape[0]:
        lines.append(f"  channels: fn has {fn_shape[0]}, the weight {layer.weight.shape} gives "
                     f"{layer.output_shape[0]}")
    transposed = isinstance(layer, ConvTranspose)
    formula = ("out = (n − 1)·s − p_before − p_after + d·(k − 1) + output_padding + 1"
               if transposed else "out = ⌊(n + p_before + p_after − d·(k − 1) − 1) / s⌋ + 1")
    lines.append(f"  per spatial axis the layer has {formula}:")
    for a in range(spec.ndim):
        k, s, d = spec.kernel_size[a], spec.stride[a], spec.dilation[a]
        b, p = spec.padding[a]
        want = fn_shape[1 + a] if len(fn_shape) > 1 + a else "?"
        if isinstance(layer, ConvTranspose):
            n, op = layer.input_shape[1 + a], layer.output_padding[a]
            text = (f"({n} − 1)·{s} − {b} − {p} + {d}·({k} − 1) + {op} + 1 = "
                    f"{layer.output_shape[1 + a]}")
        else:
            n = layer.input_shape[1 + a]
            text = (f"⌊({n} + {b} + {p} − {d}·({k} − 1) − 1) / {s}⌋ + 1 = "
                    f"{layer.output_shape[1 + a]}")
        mark = "" if want == layer.output_shape[1 + a] else f"   (fn: {want})"
        lines.append(f"    spatial axis {a}: {text}{mark}")
    return lines


def _explaining_shapes(layer: ConvLayer, fn_shape: tuple[int, ...]) -> list[str]:
    """Single-parameter changes that give fn's output shape (values not checked)."""
    if len(fn_shape) != len(layer.output_shape):
        return []
    seen: dict[str, str] = {}
    for candidate in neighbourhood(geometry_of(layer), fn_shape, 1):
        ((key, (_, value)),) = candidate.differences.items() or ((None, (None, None)),)
        if key is not None and key not in seen:
            seen[key] = f"{key}={value!r}"
        if len(seen) >= 4:
            break
    return list(seen.values())


def _padding_rule(layer: ConvLayer, padding: Any, subject: str = "fn") -> str:
    """Name torch's or TF's "same" rule when a padding follows one of them."""
    spec = layer.spec
    if isinstance(layer, ConvTranspose) or not isinstance(padding, tuple):
        return ""
    torch_same, tf_same = [], []
    for a in range(spec.ndim):
        n, s = spec.input_size[a], spec.stride[a]
        k, d = spec.kernel_size[a], spec.dilation[a]
        torch_same.append(same_padding_torch(k, d))
        tf_same.append(same_padding_tf(n, k, s, d))
    rules = []
    if tuple(torch_same) == padding and all(s == 1 for s in spec.stride):
        rules.append("torch 'same'")
    if tuple(tf_same) == padding:
        rules.append("TF/Keras 'same'")
    mirrored = tuple((after, before) for before, after in tf_same)
    if not rules and mirrored == padding and mirrored != tuple(tf_same):
        rules.append("'same' with the odd pixel before instead of after (neither torch nor TF)")
    return f" ({subject}'s is {' = '.join(rules)})" if rules else ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def difference_text(layer: ConvLayer, differences: dict[str, tuple[Any, Any]], *,
                    subject: str = "fn", reference: str = "the layer") -> str:
    """One clause per difference (``key → (reference's value, subject's value)``), in order.

    The wording of :func:`assert_conv_equal`'s diagnosis, shared by
    :func:`~convmatrix.testing.relation`; ``layer`` is the reference geometry (it names
    torch's or TF's "same" rule when a padding follows one).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> layer = cm.Conv(np.ones((1, 1, 3)), (1, 5), padding=1)
    >>> text = difference_text(layer, {"kernel_flip": (False, True), "stride": ((1,), (2,))},
    ...                        subject="a", reference="b")
    >>> for clause in text.split("; "):
    ...     print(clause)
    a computes stride=(2,)
    b has (1,)
    a flips the kernel (true convolution)
    b cross-correlates (kernel_flip)
    """
    parts = []
    for key in KEYS:
        if key not in differences:
            continue
        mine, theirs = differences[key]
        if key == "kernel_flip":
            parts.append(f"{subject} flips the kernel (true convolution); {reference} "
                         f"cross-correlates (kernel_flip)")
        elif key == "weight_channels_swapped":
            parts.append(f"{subject} reads the weight with its two channel axes swapped "
                         f"(weight_channels_swapped)")
        elif key == "kernel_axes_swapped":
            parts.append(f"{subject} swaps the kernel's spatial axes {theirs} "
                         f"(kernel_axes_swapped)")
        elif key == "output_padding" and isinstance(theirs[0], tuple):
            parts.append(f"{subject} computes output_padding={theirs} as (before, after) per "
                         f"axis (the extra rows go before); {reference} has {mine}")
        else:
            rule = _padding_rule(layer, theirs, subject) if key == "padding" else ""
            parts.append(f"{subject} computes {key}={_text(theirs)}; {reference} has "
                         f"{_text(mine)}{rule}")
    return "; ".join(parts)


def _diagnosis_line(layer: ConvLayer, candidate: Candidate) -> str:
    return difference_text(layer, candidate.differences)


# ------------------------------------------------------------------------------ the assertion


def assert_conv_equal(
    fn: Callable[[np.ndarray], Any],
    layer: Layer,
    *,
    rtol: float = 1e-7,
    atol: float = 1e-12,
    batched: bool = False,
) -> None:
    """Assert that ``fn`` computes ``layer`` (shape and values); otherwise name the bug.

    fn's matrix is recovered by coloured probing (:func:`~convmatrix.testing.probe`) and
    compared entry by entry with ``layer.matrix()``; its offset ``fn(0)`` with
    ``layer.offset()``. On a difference, nearby geometries are searched (padding pairs incl.
    TF vs torch "same", padding mode incl. ``"symmetric"``, stride, dilation, groups
    assignment, output padding and its side, flipped kernel, swapped weight channel axes or
    spatial kernel axes — one or two changes at a time), each screened on a random probe with
    the dense reference and confirmed on fn's whole matrix.

    Parameters
    ----------
    fn : callable
        One numpy float64 sample of shape ``layer.input_shape`` in (or ``(B, *input_shape)``
        with ``batched=True``), the output out (numpy, or e.g. a CPU torch tensor).
    layer : Conv or ConvTranspose
        What fn should compute (weight, geometry, bias).
    rtol, atol : float, optional
        Entry-wise tolerance, ``|fn's − layer's| ≤ atol + rtol·|layer's|``.
    batched : bool, optional
        Whether fn takes a leading batch axis.

    Raises
    ------
    ConvMismatch
        An ``AssertionError`` whose message gives the shape mismatch (with the shape formula
        and the parameters that would explain it), the number and positions of wrong outputs,
        the first wrong outputs as sums of ``w·x`` terms (fn's and the layer's), and the
        diagnosis; ``.differences`` and ``.match`` carry the diagnosis as data.
    ConvMatrixError
        For a layer that is not a conv layer, or fn's output that is not numeric.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    >>> layer = cm.Conv(w, (1, 5, 5), padding=1)
    >>> assert_conv_equal(lambda x: cm.reference.conv(x, w, padding=1), layer)   # passes
    >>> flipped = lambda x: cm.reference.conv(x, w[..., ::-1, ::-1], padding=1)
    >>> try:
    ...     assert_conv_equal(flipped, layer)
    ... except AssertionError as err:
    ...     print(err.differences)
    {'kernel_flip': (False, True)}
    """
    if not isinstance(layer, ConvLayer):
        raise ConvMatrixError(
            f"`layer` (={layer!r}) must be a convmatrix Conv or ConvTranspose layer object")
    box = BlackBox(fn, layer.input_shape, batched)
    lin = check_linearity(box)
    assert box.output_shape is not None
    fn_shape = box.output_shape
    layer_shape = tuple(layer.output_shape)
    differences: dict[str, tuple[Any, Any]] = {}
    lines: list[str] = []
    if fn_shape != layer_shape:
        differences["shape"] = (layer_shape, fn_shape)
        lines += _shape_lines(layer, fn_shape)
        explain = _explaining_shapes(layer, fn_shape)
        if explain:
            lines.append(f"  fn's shape would follow from {' or '.join(explain)}")
        if math.prod(fn_shape) == 0:  # nothing to compare or diagnose
            lines.append("  fn's output is empty: no value to compare")
            raise ConvMismatch(_message(layer, lines), differences, None)
        if len(fn_shape) != len(layer_shape) and math.prod(fn_shape) == math.prod(layer_shape):
            lines.append("  (as many outputs as the layer: compared below reshaped to "
                         f"{layer_shape})")
            box = BlackBox(_reshaped(fn, layer_shape, batched), layer.input_shape, batched)
            lin = check_linearity(box)
            fn_shape = layer_shape

    if not lin.is_linear(box.tolerance(max(rtol, 1e-9))):
        name = name_nonlinearity(box, layer, rtol)
        differences["nonlinear"] = ("linear", f"{name}(layer(x))" if name else "not linear")
        lines.append(
            f"fn is not linear: fn(a + b) − fn(a) − fn(b) + fn(0) reaches "
            f"{lin.additive_error:.3g} and fn(2a) − 2·fn(a) + fn(0) {lin.homogeneous_error:.3g} "
            f"of the largest response" + (f"; fn computes {name}(layer(x))" if name else ""))
        raise ConvMismatch(_message(layer, lines), differences, None)

    # the offset: fn(0) against the layer's bias (per output channel when shapes differ)
    layer_bias = None if layer.bias is None else tuple(float(v) for v in layer.bias)
    per_channel = channel_offsets(lin.zero, fn_shape) if fn_shape else None
    if fn_shape == layer_shape:
        expected_offset = np.asarray(layer.offset(), dtype=float)
        offset_ok = bool(np.all(np.abs(lin.zero - expected_offset)
                                <= atol + rtol * np.abs(expected_offset)))
    elif per_channel is None:
        offset_ok = False
    else:
        want = np.zeros(len(per_channel)) if layer_bias is None else np.array(layer_bias)
        offset_ok = want.shape == (len(per_channel),) and bool(
            np.all(np.abs(np.array(per_channel) - want) <= atol + rtol * np.abs(want)))
    # the bias of a matching layer: fn's per-channel offset (None: no bias; no match if varying)
    bias = None if per_channel is None or not any(per_channel) else np.array(per_channel)
    if not offset_ok:
        differences["offset"] = (layer_bias, per_channel if per_channel is not None
                                 else "varies within output channels")
        lines.append(f"offset: fn(0) = {_offset_text(lin.zero, fn_shape)}; the layer adds "
                     f"{'no bias' if layer_bias is None else f'bias {layer_bias}'}")

    fn_matrix = None
    if fn_shape == layer_shape:
        fn_matrix = probe_box(box, lin, layer, None, max(rtol, 1e-9)).matrix
        wrong = close_rows(fn_matrix, layer.matrix(), rtol, atol)
        if wrong.size == 0:
            if offset_ok and "shape" not in differences:
                return
            if offset_ok:
                lines.append("the values match: only the shape of fn's output differs")
                raise ConvMismatch(_message(layer, lines), differences, None)
            match = (None if "shape" in differences or per_channel is None
                     else geometry_of(layer).layer(bias=bias))
            lines.append("the linear part matches: only the offset differs")
            raise ConvMismatch(_message(layer, lines, match), differences, match)
        lines += _wrong_lines(layer, fn_matrix, wrong, rtol, atol)

    found: list[Candidate] = []
    searchable = len(fn_shape) == len(layer_shape)
    for candidate, _ in (matches(box, lin, geometry_of(layer), 2, rtol=rtol, atol=atol,
                                 fn_matrix=fn_matrix) if searchable else ()):
        if found and candidate.rank[0] > found[0].rank[0]:
            break
        found.append(candidate)
        if len(found) >= 3:
            break
    match = None
    if found:
        differences.update(found[0].differences)
        match = None if per_channel is None else found[0].geometry.layer(bias=bias)
        lines.append(f"diagnosis: {_diagnosis_line(layer, found[0])}.")
        lines.append(f"  fn computes exactly {match!r}")
        for other in found[1:]:
            lines.append(f"  (equally: {_diagnosis_line(layer, other)})")
    else:
        keys = [k for k in differences if k in ("shape", "offset")]
        if set(keys) != {"offset"}:
            lines.append(
                "diagnosis: no geometry within the searched neighbourhood (padding pairs, "
                "padding mode, stride, dilation, groups assignment, output_padding, kernel "
                "flip, weight channel / kernel axes; up to two changes) reproduces fn; the "
                "differences above are what fn computes")
    raise ConvMismatch(_message(layer, lines, match), differences, match)


def _reshaped(fn: Callable[[np.ndarray], Any], shape: tuple[int, ...], batched: bool
              ) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap ``fn`` so that its output is reshaped to ``shape`` (per sample)."""
    def wrapped(x: np.ndarray) -> np.ndarray:
        out = as_numpy(fn(x))
        return out.reshape((out.shape[0], *shape) if batched else shape)
    return wrapped


def _offset_text(zero: np.ndarray, shape: tuple[int, ...]) -> str:
    per_channel = channel_offsets(zero, shape)
    if per_channel is not None:
        return f"{per_channel} per output channel"
    return f"varies within output channels (first values {np.round(zero[:4], 6).tolist()})"


def _wrong_lines(layer: ConvLayer, fn_matrix: sp.csr_array, wrong: np.ndarray, rtol: float,
                 atol: float) -> list[str]:
    shape = tuple(layer.output_shape)
    total = math.prod(shape)
    positions = ", ".join(f"({_idx(np.unravel_index(r, shape))})" for r in wrong[:_POSITIONS])
    more = ", …" if wrong.size > _POSITIONS else ""
    lines = [f"values: {wrong.size} of {total} outputs differ, at {positions}{more}"]
    namer = _Namer(layer, rtol, atol)
    expected = sp.csr_array(layer.matrix())
    for r in wrong[:_SHOWN]:
        where = _idx(np.unravel_index(r, shape))
        lines.append(f"  y[{where}]  layer: {namer.row_text(expected, int(r))}")
        lines.append(f"  {' ' * (len(where) + 3)}  fn:    {namer.row_text(fn_matrix, int(r))}")
    return lines


def _message(layer: ConvLayer, lines: list[str], match: Layer | None = None) -> str:
    return "\n".join([f"fn does not compute {layer!r}", *lines])
