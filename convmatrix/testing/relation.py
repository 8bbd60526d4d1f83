"""``relation(a, b)``: whether ``a`` is ``b``, its transpose, or either up to a named change.

Both maps are compared by their exact matrices. When neither ``A = B`` nor ``A = Bᵀ`` holds and
``b`` is a convolution (or a transposed one), the neighbourhood :func:`assert_conv_equal
<convmatrix.testing.assert_conv_equal>` searches — padding pairs, stride, dilation, output
padding and its side, groups assignment, a flipped kernel, swapped weight channel axes or
spatial kernel axes, up to two changes — is searched around ``b`` and around ``bᵀ``, and the
nearest exact match names what differs in the same vocabulary as
:attr:`ConvMismatch.differences <convmatrix.testing.ConvMismatch>`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES
from convmatrix.geometry.shapes import shape_text
from convmatrix.geometry.view import flip
from convmatrix.layers.base import Layer
from convmatrix.layers.conv import ConvLayer
from convmatrix.testing.assertions import difference_text
from convmatrix.testing.blackbox import BlackBox, check_linearity
from convmatrix.testing.candidates import KEYS, Candidate, geometry_of
from convmatrix.testing.diagnose import close_rows, matches
from convmatrix.testing.probe import ProbeResult
from convmatrix.typing import Direction

__all__ = ["Relation", "Verdict", "relation"]

Verdict = Literal["equal", "transpose", "neither"]
"""What :func:`relation` found: ``a = b`` (``"equal"``), ``a = bᵀ`` (``"transpose"``), or
neither — each possibly up to the changes in :attr:`Relation.differences`."""

#: the changes searched (at most this many at once), as assert_conv_equal's diagnosis
_MAX_CHANGES = 2


@dataclass(frozen=True)
class _Map:
    """One side: its matrix in channels-first order, shapes, and the convolution behind it."""

    matrix: sp.csr_array
    input_shape: tuple[int, ...]   # channels first
    output_shape: tuple[int, ...]
    layout: str
    core: ConvLayer | None         # channels-first Conv/ConvTranspose with this matrix
    text: str


def _channels_first_order(shape: tuple[int, ...]) -> np.ndarray:
    """For each channels-first flat position, the channels-last flat index of that value."""
    return np.moveaxis(np.arange(math.prod(shape)).reshape(shape), -1, 0).ravel()


def _as_map(value: Any, name: str, max_bytes: int | None) -> _Map:
    if isinstance(value, ProbeResult):
        return _Map(sp.csr_array(value.matrix), tuple(value.input_shape),
                    tuple(value.output_shape), "channels_first", None,
                    f"a probed map {shape_text(value.input_shape)} → "
                    f"{shape_text(value.output_shape)}")
    if not isinstance(value, Layer):
        raise ConvMatrixError(
            f"`{name}` (={value!r}) must be a convmatrix layer object (e.g. cm.Conv, "
            f"cm.ConvTranspose, a reader's layer, a stack) or a ProbeResult from "
            f"convmatrix.testing.probe")
    matrix = sp.csr_array(value.matrix(max_bytes=max_bytes))
    in_shape, out_shape = tuple(value.input_shape), tuple(value.output_shape)
    layout = value.layout
    view = value.conv_view()
    core = None
    if view is not None:
        core = ConvLayer.from_spec(view.spec, view.weight, direction=view.direction)
    if layout == "channels_last":  # compare in channels-first order, as the cores are
        rows, cols = _channels_first_order(out_shape), _channels_first_order(in_shape)
        matrix = sp.csr_array(matrix[rows][:, cols])
        in_shape = (in_shape[-1], *in_shape[:-1])
        out_shape = (out_shape[-1], *out_shape[:-1])
    if core is not None and (tuple(core.input_shape), tuple(core.output_shape)) != (
            in_shape, out_shape):
        core = None  # not the plain re-indexed convolution (defensive: no such kind today)
    return _Map(matrix, in_shape, out_shape, layout, core, repr(value))


def _same(actual: sp.csr_array, expected: sp.sparray, rtol: float, atol: float) -> bool:
    return actual.shape == expected.shape and close_rows(actual, expected, rtol, atol).size == 0


def _box(a: _Map) -> BlackBox:
    matrix = a.matrix

    def fn(batch: np.ndarray) -> np.ndarray:
        flat = batch.reshape(batch.shape[0], -1)
        return np.asarray(matrix @ flat.T).T.reshape(batch.shape[0], *a.output_shape)

    return BlackBox(fn, a.input_shape, batched=True)


def _nearest(a: _Map, base: ConvLayer, rtol: float, atol: float, max_bytes: int | None
             ) -> tuple[Candidate, ConvLayer] | None:
    """The nearest change of ``base`` (at ``a``'s input shape) whose matrix is ``a``'s."""
    box = _box(a)
    lin = check_linearity(box)
    start = replace(geometry_of(base), input_shape=a.input_shape)
    for candidate, _ in matches(box, lin, start, _MAX_CHANGES, rtol=rtol, atol=atol,
                                fn_matrix=a.matrix, max_bytes=max_bytes):
        return candidate, candidate.geometry.layer()
    return None


@dataclass(frozen=True, repr=False)
class Relation:
    """How ``a`` relates to ``b`` (see :func:`relation`).

    Attributes
    ----------
    verdict : {"equal", "transpose", "neither"}
        ``"equal"``: ``A = B′``; ``"transpose"``: ``A = B′ᵀ``, where ``B′`` is the matrix of
        ``b`` with :attr:`differences` applied (``b`` itself when there are none).
        ``"neither"``: no such ``b′`` within two changes.
    differences : dict
        What differs → ``(b's value, the value for a)``, keys from the vocabulary of
        :attr:`ConvMismatch.differences <convmatrix.testing.ConvMismatch>` (``"padding"``,
        ``"stride"``, ``"dilation"``, ``"groups"``, ``"output_padding"``,
        ``"kernel_flip"``, ``"weight_channels_swapped"``, ``"kernel_axes_swapped"``,
        ``"padding_mode"``) plus ``"shape"`` (``((b's in, out), (a's in, out))`` when the
        maps' shapes differ). For ``"transpose"`` they are stated on ``bᵀ`` written as a
        layer of the other direction (a :class:`~convmatrix.ConvTranspose` for a
        :class:`~convmatrix.Conv` ``b``): its ``padding`` is the forward convolution's, its
        ``output_padding`` the rows its output gains at the end (fewer: a crop).
    changed : Conv, ConvTranspose or None
        ``b′``: ``b`` (channels first) with the differences applied — ``a``'s matrix is its
        matrix (``"equal"``) or that matrix's transpose (``"transpose"``). None for
        ``"neither"`` or when ``b`` is no convolution.
    match : Conv, ConvTranspose or None
        A layer (channels first, in ``a``'s direction) whose matrix is ``a``'s: ``b′`` or
        ``b′ᵀ``.
    a, b : str
        The two maps as given (their reprs).
    layouts : tuple of str
        ``a``'s and ``b``'s layouts; channels-last maps are compared in channels-first order.
    """

    verdict: Verdict
    differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    changed: ConvLayer | None = None
    match: ConvLayer | None = None
    a: str = ""
    b: str = ""
    layouts: tuple[str, str] = ("channels_first", "channels_first")
    explanation: str = ""

    @property
    def exact(self) -> bool:
        """The verdict needs no change (``a`` is ``b`` or ``bᵀ`` itself)."""
        return self.verdict != "neither" and not self.differences

    def summary(self) -> str:
        """One line: ``a = bᵀ up to kernel_flip`` and the like."""
        if self.verdict == "neither":
            return "a is neither b nor bᵀ (nor within two changes of them)"
        target = "b" if self.verdict == "equal" else "bᵀ"
        if not self.differences:
            return f"a = {target}"
        keys = ", ".join(k for k in (*KEYS, "layout") if k in self.differences)
        return f"a = {target} up to {keys}"

    def __repr__(self) -> str:
        keys = [k for k in (*KEYS, "layout") if k in self.differences]
        return f"Relation({self.verdict!r}" + (f", up to {', '.join(keys)})" if keys else ")")

    def __str__(self) -> str:
        lines = [f"a: {self.a}", f"b: {self.b}", self.summary()]
        if self.explanation:
            lines.append(f"  {self.explanation}")
        if self.changed is not None and self.differences:
            mark = "" if self.verdict == "equal" else "ᵀ"
            lines.append(f"  a = b′{mark} with b′ = {self.changed!r}")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The relation as Markdown: the verdict, what differs, the changed layer."""
        out = [f"**{self.summary()}**", "", f"- a: `{self.a}`", f"- b: `{self.b}`"]
        if self.explanation:
            out.append(f"- {self.explanation}")
        if self.changed is not None and self.differences:
            mark = "" if self.verdict == "equal" else "ᵀ"
            out.append(f"- a = b′{mark} with b′ = `{self.changed!r}`")
        return "\n".join(out)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _direction(layer: ConvLayer) -> Direction:
    view = layer.conv_view()
    assert view is not None
    return view.direction


def _other_direction(layer: ConvLayer) -> ConvLayer:
    """``layerᵀ`` as a layer of the other kind (ConvMatrixError with a padding mode)."""
    return ConvLayer.from_spec(layer.spec, layer.weight, direction=flip(_direction(layer)))


def _shape_difference(a: _Map, b_in: tuple[int, ...], b_out: tuple[int, ...]
                      ) -> dict[str, tuple[Any, Any]]:
    if (a.input_shape, a.output_shape) == (b_in, b_out):
        return {}
    return {"shape": ((b_in, b_out), (a.input_shape, a.output_shape))}


def _explain(differences: dict[str, tuple[Any, Any]], base: ConvLayer | None, target: str
             ) -> str:
    parts = []
    if "shape" in differences:
        (b_in, b_out), (a_in, a_out) = differences["shape"]
        parts.append(f"a maps {shape_text(a_in)} → {shape_text(a_out)}; {target} maps "
                     f"{shape_text(b_in)} → {shape_text(b_out)} (shape)")
    if "layout" in differences:
        parts.append(f"a is {differences['layout'][1]}; b is {differences['layout'][0]} "
                     f"(layout: compared in channels-first order)")
    rest = {k: v for k, v in differences.items() if k not in ("shape", "layout")}
    if rest and base is not None:
        parts.append(difference_text(base, rest, subject="a", reference=target))
    return "; ".join(parts)


def relation(a: Any, b: Any, *, rtol: float = 1e-7, atol: float = 1e-12,
             max_bytes: int | None = DEFAULT_MAX_BYTES) -> Relation:
    """Whether ``a`` equals ``b``, equals ``bᵀ``, or either up to a named change.

    The answer is exact: both matrices are built and compared entry by entry
    (``|A − B′| ≤ atol + rtol·|B′|``). First ``A = B`` and ``A = Bᵀ`` are checked; then, when
    ``b`` is a convolution or a transposed one, the geometries within two changes of ``b``
    and of ``bᵀ`` (the same neighbourhood :func:`~convmatrix.testing.assert_conv_equal`
    searches: padding pairs — a padding shift, or a crop/extension with a different shape —
    stride, dilation, output padding and its side, groups assignment, a flipped kernel, the
    weight's channel axes swapped, spatial kernel axes swapped, padding mode) are tried,
    fewest and smallest changes first, and the first whose matrix is exactly ``A`` decides.
    Only the linear parts are compared (a bias has no transpose).

    ``verdict="transpose"`` with ``differences={"kernel_flip": (False, True)}`` means
    ``A = B′ᵀ`` where ``b′`` is ``b`` with its kernel flipped on every spatial axis
    (:attr:`Relation.changed` is ``b′``).

    Parameters
    ----------
    a, b : Layer or ProbeResult
        Layer objects (``cm.Conv``, ``cm.ConvTranspose``, a framework reader's layer — Keras
        or flax channels-last layers are compared in channels-first order —, a stack, ``.T``
        of a layer) or maps recovered by :func:`~convmatrix.testing.probe` (channels first).
        Only a ``b`` with a convolution behind it (``b.conv_view()``) is searched for
        changes; any ``a`` can be matched.
    rtol, atol : float, optional
        Entry-wise tolerance.
    max_bytes : int or None, optional
        Memory guard for building each matrix.

    Returns
    -------
    Relation
        ``.verdict``, ``.differences``, ``.changed`` (``b′``), ``.match``; short repr,
        ``str()`` and Markdown (Jupyter) with the explanation.

    Raises
    ------
    ConvMatrixError
        For an ``a`` or ``b`` that is not a layer object or ProbeResult.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> w = np.arange(1.0, 19.0).reshape(2, 1, 3, 3)
    >>> conv = cm.Conv(w, (1, 6, 6), stride=2, padding=1)
    >>> relation(cm.ConvTranspose(w, (2, 3, 3), stride=2, padding=1, output_padding=1), conv)
    Relation('transpose')
    >>> flipped = cm.ConvTranspose(w[..., ::-1, ::-1], (2, 3, 3), stride=2, padding=1,
    ...                            output_padding=1)
    >>> r = relation(flipped, conv)
    >>> r
    Relation('transpose', up to kernel_flip)
    >>> r.differences
    {'kernel_flip': (False, True)}
    >>> r.changed        # a = b′ᵀ
    Conv(1→2, 1×6×6 → 2×3×3, kernel 3×3, stride 2, padding 1)
    >>> cropped = cm.ConvTranspose(w, (2, 3, 3), stride=2, padding=1)   # output 5×5
    >>> relation(cropped, conv).differences
    {'shape': (((2, 3, 3), (1, 6, 6)), ((2, 3, 3), (1, 5, 5))), 'output_padding': ((1, 1), (0, 0))}
    """
    left = _as_map(a, "a", max_bytes)
    right = _as_map(b, "b", max_bytes)
    layouts = (left.layout, right.layout)

    def result(verdict: Verdict, differences: dict[str, tuple[Any, Any]],
               changed: ConvLayer | None, match: ConvLayer | None, explanation: str = ""
               ) -> Relation:
        return Relation(verdict, differences, changed, match, left.text, right.text, layouts,
                        explanation)

    layout_diff: dict[str, tuple[Any, Any]] = (
        {} if left.layout == right.layout else {"layout": (right.layout, left.layout)})
    core = right.core
    if _same(left.matrix, right.matrix, rtol, atol):
        return result("equal", dict(layout_diff), core, core, _explain(layout_diff, core, "b"))
    if _same(left.matrix, sp.csr_array(right.matrix.T), rtol, atol):
        match = None if core is None else _other_direction(core)
        return result("transpose", dict(layout_diff), core, match,
                      _explain(layout_diff, core, "bᵀ"))
    if core is None:
        return result("neither", {}, None, None)

    found: list[tuple[tuple[int, int, int, int], Verdict, Candidate, ConvLayer, ConvLayer]] = []
    direction = _direction(core)
    own = None if left.core is None else _direction(left.core)
    bases: list[tuple[Verdict, ConvLayer]] = [("equal", core)]
    try:
        bases.append(("transpose", _other_direction(core)))
    except ConvMatrixError:
        pass  # a padding mode: the transpose is no transposed convolution
    for order, (verdict, base) in enumerate(bases):
        hit = _nearest(left, base, rtol, atol, max_bytes)
        if hit is None:
            continue
        candidate, layer = hit
        view = layer.conv_view()
        assert view is not None
        changed = ConvLayer.from_spec(view.spec, view.weight, direction=direction)
        # on a tie, the reading in a's own direction (a transposed conv as one) comes first
        prefer = 0 if own is None or view.direction == own else 1
        found.append(((*candidate.rank, prefer, order), verdict, candidate, changed, layer))
    if not found:
        return result("neither", {}, None, None)
    _, verdict, candidate, changed, layer = min(found, key=lambda item: item[0])
    base = bases[0][1] if verdict == "equal" else bases[-1][1]
    differences = {**_shape_difference(left, tuple(base.input_shape), tuple(base.output_shape)),
                   **layout_diff, **candidate.differences}
    target = "b" if verdict == "equal" else "bᵀ"
    return result(verdict, differences, changed, layer, _explain(differences, base, target))
