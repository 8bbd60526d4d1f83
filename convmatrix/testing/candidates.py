"""A bounded neighbourhood of conv geometries around a layer: the suspects a diagnosis tries."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from convmatrix import reference
from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import conv_transpose_output_length, effective_kernel
from convmatrix.geometry.spec import PADDING_MODES
from convmatrix.geometry.view import check_direction
from convmatrix.layers.conv import Conv, ConvLayer, ConvTranspose
from convmatrix.typing import Direction

__all__ = ["Candidate", "Geometry", "geometry_of", "neighbourhood"]

#: the vocabulary of ``ConvMismatch.differences`` keys, in the order messages list them
KEYS = ("shape", "padding", "padding_mode", "stride", "dilation", "groups", "output_padding",
        "kernel_flip", "weight_channels_swapped", "kernel_axes_swapped", "offset", "nonlinear")

#: most candidates a search applies to probes (the neighbourhood is enumerated lazily)
MAX_CANDIDATES = 4000

Pairs = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Geometry:
    """Everything that defines a conv layer, as plain values (validated by :meth:`layer`).

    ``direction`` is ``"forward"`` (a convolution) or ``"adjoint"`` (a transposed one); it
    replaces the boolean ``transposed`` of convmatrix 0.1.
    """

    direction: Direction
    weight: np.ndarray = field(repr=False)
    input_shape: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Pairs
    dilation: tuple[int, ...]
    groups: int
    padding_mode: str = "zeros"
    output_padding: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_direction(self.direction)  # a 0.1-style bool is refused, not misread

    @property
    def transposed(self) -> bool:
        """Deprecated: ``direction == "adjoint"``."""
        warnings.warn("`Geometry.transposed` is deprecated and will be removed in convmatrix "
                      "0.3; use `Geometry.direction` ('forward' or 'adjoint')",
                      DeprecationWarning, stacklevel=2)
        return self.direction == "adjoint"

    @property
    def ndim(self) -> int:
        """Spatial axes."""
        return len(self.input_shape) - 1

    def layer(self, bias: Any = None) -> ConvLayer:
        """The layer object (raises ConvMatrixError for an invalid geometry)."""
        if self.direction == "adjoint":
            return ConvTranspose(self.weight, self.input_shape, stride=self.stride,
                                 padding=self.padding, output_padding=self.output_padding,
                                 dilation=self.dilation, groups=self.groups, bias=bias)
        return Conv(self.weight, self.input_shape, stride=self.stride, padding=self.padding,
                    dilation=self.dilation, groups=self.groups, padding_mode=self.padding_mode,
                    bias=bias)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The linear map on one sample, by the independent dense reference."""
        if self.direction == "adjoint":
            return reference.conv_transpose(x, self.weight, stride=self.stride,
                                            padding=self.padding,
                                            output_padding=self.output_padding,
                                            dilation=self.dilation, groups=self.groups)
        return reference.conv(x, self.weight, stride=self.stride, padding=self.padding,
                              dilation=self.dilation, groups=self.groups,
                              padding_mode=self.padding_mode)


def geometry_of(layer: ConvLayer) -> Geometry:
    """The :class:`Geometry` of a :class:`Conv` or :class:`ConvTranspose`."""
    spec = layer.spec
    if isinstance(layer, ConvTranspose):
        return Geometry("adjoint", layer.weight, layer.input_shape, spec.stride, spec.padding,
                        spec.dilation, spec.groups, "zeros", layer.output_padding)
    return Geometry("forward", layer.weight, layer.input_shape, spec.stride, spec.padding,
                    spec.dilation, spec.groups, spec.padding_mode, (0,) * spec.ndim)


@dataclass(frozen=True)
class Candidate:
    """A geometry near the base one, and what differs (``key → (base value, its value)``)."""

    geometry: Geometry
    differences: dict[str, tuple[Any, Any]]
    closeness: int

    @property
    def rank(self) -> tuple[int, int]:
        """Sort key: fewer differing parameters first, then smaller numeric changes."""
        return len(self.differences), self.closeness


@dataclass(frozen=True)
class _Transform:
    weight: np.ndarray
    groups: int
    differences: dict[str, tuple[Any, Any]]


def _dense_groups(weight: np.ndarray, groups: int, direction: Direction, *, inputs: bool,
                  outputs: bool) -> np.ndarray:
    """A groups=1 weight whose zeros encode a channel→group assignment (interleaved or not)."""
    if direction == "adjoint":  # (C_in, C_out/g, *k): rows are the layer's inputs
        c_in, c_out_g = weight.shape[:2]
        c_out, c_in_g = c_out_g * groups, c_in // groups
        dense = np.zeros((c_in, c_out, *weight.shape[2:]), dtype=weight.dtype)
        for i in range(c_in):
            g = i % groups if inputs else i // c_in_g
            for local in range(c_out_g):
                o = local * groups + g if outputs else g * c_out_g + local
                dense[i, o] = weight[i, local]
        return dense
    c_out, c_in_g = weight.shape[:2]
    c_out_g = c_out // groups
    dense = np.zeros((c_out, c_in_g * groups, *weight.shape[2:]), dtype=weight.dtype)
    for o in range(c_out):
        g = o % groups if outputs else o // c_out_g
        for local in range(c_in_g):
            i = local * groups + g if inputs else g * c_in_g + local
            dense[o, i] = weight[o, local]
    return dense


def _transforms(base: Geometry) -> list[_Transform]:
    w, g = base.weight, base.groups
    spatial = tuple(range(2, w.ndim))
    found = [_Transform(w, g, {}),
             _Transform(np.flip(w, axis=spatial), g, {"kernel_flip": (False, True)}),
             _Transform(np.swapaxes(w, 0, 1), g, {"weight_channels_swapped": (False, True)}),
             # both: what a transposed convolution computes with its forward's kernel as its own
             # (flax ConvTranspose with transpose_kernel=False)
             _Transform(np.flip(np.swapaxes(w, 0, 1), axis=spatial), g,
                        {"kernel_flip": (False, True), "weight_channels_swapped": (False, True)})]
    for i, j in itertools.combinations(range(base.ndim), 2):
        found.append(_Transform(np.swapaxes(w, 2 + i, 2 + j), g,
                                {"kernel_axes_swapped": (None, (i, j))}))
    if g > 1:
        for inputs, outputs, text in ((True, False, "input"), (False, True, "output")):
            dense = _dense_groups(w, g, base.direction, inputs=inputs, outputs=outputs)
            found.append(_Transform(dense, 1, {"groups": (
                g, f"{g}, {text} channels interleaved (group of channel c: c % {g})")}))
    return found


def _options(values: set[int], minimum: int) -> list[int]:
    return sorted(v for v in values if v >= minimum)


def _axis_options(base: Geometry, axis: int, k: int, target: int) -> list[tuple[Any, ...]]:
    """Per-axis (stride, dilation, (before, after), output_padding, side) giving ``target``."""
    n = base.input_shape[1 + axis]
    s0, d0 = base.stride[axis], base.dilation[axis]
    b0, a0 = base.padding[axis]
    eff0 = d0 * (base.weight.shape[2 + axis] - 1) + 1
    limit = max(b0, a0) + eff0
    strides = _options({1, 2, 3, s0, s0 - 1, s0 + 1}, 1)
    dilations = _options({1, 2, 3, d0, d0 - 1, d0 + 1}, 1)
    base_op = base.output_padding[axis] if base.output_padding else 0
    found: dict[tuple[int, ...], tuple[tuple[int, int], tuple[Any, ...]]] = {}

    def keep(key: tuple[int, ...], option: tuple[Any, ...]) -> None:
        # of equivalent options (same matrix), keep the one changing fewest, smallest parameters
        s, d, (b, a), op, side = option
        cost = ((s != s0) + (d != d0) + ((b, a) != (b0, a0)) + (op != base_op or side != "after"),
                abs(s - s0) + abs(d - d0) + abs(b - b0) + abs(a - a0) + abs(op - base_op))
        if key not in found or cost < found[key][0]:
            found[key] = (cost, option)

    pairs = list(itertools.product(range(limit + 1), repeat=2))
    for s, d in itertools.product(strides, dilations):
        eff = effective_kernel(k, d)
        for b, a in pairs:
            if base.direction == "forward":
                padded = n + b + a
                if padded < eff or (padded - eff) // s + 1 != target:
                    continue
                used_after = a - (padded - eff) % s  # unused padding changes nothing
                keep((s, d, b, used_after), (s, d, (b, a), 0, "after"))
                continue
            for op in range(max(s, d)):
                if conv_transpose_output_length(n, k, s, (b, a), d, op) != target:
                    continue
                keep((s, d, b, a - op), (s, d, (b, a), op, "after"))
                if op and b >= op:  # the extra rows before instead: crop (b − op, a)
                    keep((s, d, b - op, a), (s, d, (b, a), op, "before"))
    return [option for _, option in found.values()]


def neighbourhood(base: Geometry, target_shape: tuple[int, ...], max_distance: int
                  ) -> Iterator[Candidate]:
    """Geometries near ``base`` whose output shape is ``target_shape``, nearest first.

    Searched: padding pairs (each side up to the base's padding plus the dilated kernel),
    padding mode (forward layers), stride and dilation (1–3 and the base's ±1), output padding
    and its side (transposed layers), flipped kernel, swapped weight channel axes, swapped
    spatial kernel axes and interleaved group assignments; at most ``max_distance`` of them
    differ from ``base`` (``base`` itself comes first when its shape fits) and at most
    :data:`MAX_CANDIDATES` are produced.

    Examples
    --------
    >>> import convmatrix as cm
    >>> base = geometry_of(cm.Conv(np.ones((1, 1, 3)), (1, 8), padding=1))
    >>> [c.differences for c in neighbourhood(base, (1, 4), 1)][:2]
    [{'stride': ((1,), (2,))}, {'dilation': ((1,), (3,))}]
    """
    modes = [base.padding_mode] if base.direction == "adjoint" else [
        base.padding_mode, *(m for m in PADDING_MODES if m != base.padding_mode)]
    found: list[Candidate] = []
    for transform in _transforms(base):
        if len(transform.differences) > max_distance:
            continue
        kernel = transform.weight.shape[2:]
        per_axis = [_axis_options(base, a, kernel[a], target_shape[1 + a])
                    for a in range(base.ndim)]
        for combo in itertools.product(*per_axis):
            stride = tuple(c[0] for c in combo)
            dilation = tuple(c[1] for c in combo)
            nominal = tuple(c[2] for c in combo)
            out_pad = tuple(c[3] for c in combo)
            sides = tuple(c[4] for c in combo)
            differences = dict(transform.differences)
            if nominal != base.padding:
                differences["padding"] = (base.padding, nominal)
            if stride != base.stride:
                differences["stride"] = (base.stride, stride)
            if dilation != base.dilation:
                differences["dilation"] = (base.dilation, dilation)
            if "before" in sides:
                differences["output_padding"] = (
                    tuple((0, v) for v in base.output_padding),
                    tuple((v, 0) if side == "before" else (0, v)
                          for v, side in zip(out_pad, sides, strict=True)))
            elif out_pad != base.output_padding:
                differences["output_padding"] = (base.output_padding, out_pad)
            if len(differences) > max_distance:
                continue
            closeness = (sum(abs(p - q) for pair, bpair in zip(nominal, base.padding, strict=True)
                             for p, q in zip(pair, bpair, strict=True))
                         + sum(abs(x - y) for x, y in zip(stride, base.stride, strict=True))
                         + sum(abs(x - y) for x, y in zip(dilation, base.dilation, strict=True))
                         + sum(abs(x - y) for x, y in zip(out_pad, base.output_padding,
                                                          strict=True)))
            padding = tuple((b - v, a) if side == "before" else (b, a)
                            for (b, a), v, side in zip(nominal, out_pad, sides, strict=True))
            geometry = replace(base, weight=transform.weight, groups=transform.groups,
                               stride=stride, padding=padding, dilation=dilation,
                               output_padding=tuple(0 if side == "before" else v for v, side in
                                                    zip(out_pad, sides, strict=True)))
            for mode in modes:
                extra = {} if mode == base.padding_mode else {
                    "padding_mode": (base.padding_mode, mode)}
                if len(differences) + len(extra) > max_distance:
                    continue
                found.append(Candidate(replace(geometry, padding_mode=mode),
                                       {**differences, **extra}, closeness))
    found.sort(key=lambda c: c.rank)
    produced = 0
    for candidate in found:
        try:
            layer = candidate.geometry.layer()
        except ConvMatrixError:
            continue
        if tuple(layer.output_shape) != tuple(target_shape):
            continue
        yield candidate
        produced += 1
        if produced >= MAX_CANDIDATES:
            return
