"""Splits, concatenations and tilings in torch graphs: ``cat``, ``chunk``, ``stack``, ``repeat``.

A concatenation is a :class:`~convmatrix.layers.graph.Cat` node; a split is one
:class:`~convmatrix.Slice` per output; tilings (``repeat``, ``expand``, ``tile``,
``repeat_interleave``) and ``roll`` are concatenations of copies or pieces (:class:`Steps`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from convmatrix.adapters.torch_fx.call import (
    FxCall,
    Produced,
    Refused,
    Steps,
    Traced,
    Translator,
    as_array,
    dims_arg,
    sample_axis,
    single_traced,
)
from convmatrix.layers.graph import Cat
from convmatrix.layers.sequential import Sequential

__all__ = ["TRANSLATORS"]


def _cat(call: FxCall) -> Produced:
    tensors = call.arg(0, "tensors")
    dim = call.arg(1, "dim", 0)
    if not isinstance(tensors, list | tuple) or not all(isinstance(t, Traced) for t in tensors):
        raise Refused("concatenates values of which some do not depend on the input "
                      "(constants inside a concatenation are not read)")
    ndim = len(tensors[0].shape) + 1
    axis = int(dim) % ndim
    if axis == 0:
        raise Refused("concatenates along the batch axis")
    if len(tensors) == 1:
        return tensors[0]
    return Cat(axis - 1), tuple(t.name for t in tensors)


def _slices(call: FxCall, source: Traced, dim: Any) -> Produced:
    """One :class:`~convmatrix.Slice` per output of ``chunk``/``split`` (their actual sizes)."""
    from convmatrix.layers.reshape import Slice

    outputs = call.output
    ndim = len(source.shape) + 1
    axis = int(dim) % ndim
    if axis == 0:
        raise Refused("splits along the batch axis")
    start = 0
    parts = []
    for value in outputs:
        size = int(value.shape[axis])
        parts.append((Slice(source.shape, axis - 1, start, start + size), (source.name,)))
        start += size
    return tuple(parts)


def _chunk(call: FxCall) -> Produced:
    return _slices(call, single_traced(call), call.arg(2, "dim", 0))


def _split(call: FxCall) -> Produced:
    return _slices(call, single_traced(call), call.arg(2, "dim", 0))


def _tiles(source: Traced, copies: Sequence[int]) -> Produced:
    """Each sample axis ``a`` tiled ``copies[a]`` times (a concatenation of copies per axis)."""
    steps: list[tuple[Any, tuple[str | int, ...]]] = []
    current: str | int = source.name
    for axis, count in enumerate(copies):
        if count > 1:
            steps.append((Cat(axis), (current,) * count))
            current = len(steps) - 1
    if not steps:
        return source
    return Steps(tuple(steps))


def _repeat(call: FxCall) -> Produced:
    """``x.repeat(1, r1, r2, …)``: tiling, a concatenation of copies along each axis."""
    source = single_traced(call)
    reps = dims_arg(call, "repeats")
    if len(reps) != len(source.shape) + 1 or reps[0] != 1:
        raise Refused(f"repeats {tuple(reps)}: only one factor per axis of the tensor, 1 for "
                      f"the batch axis, is read")
    return _tiles(source, [int(r) for r in reps[1:]])


def _expand(call: FxCall) -> Produced:
    """``x.expand(…)``/``expand_as``: axes of size 1 broadcast, copies concatenated."""
    source = call.args[0]
    if not isinstance(source, Traced):
        return None
    out = call.output_shape()
    if len(out) != len(source.shape):
        raise Refused(f"expands {source.shape} to {out}: new axes are not read")
    return _tiles(source, [o if n == 1 else 1 for n, o in zip(source.shape, out, strict=True)])


def _stack(call: FxCall) -> Produced:
    """``torch.stack(tensors, dim)``: each input given an axis of 1 there, then concatenated."""
    from convmatrix.layers.reshape import Reshape

    tensors = call.arg(0, "tensors")
    if not isinstance(tensors, list | tuple) or not tensors or not all(
            isinstance(t, Traced) for t in tensors):
        raise Refused("stacks values of which some do not depend on the input "
                      "(constants inside a stack are not read)")
    shape = tensors[0].shape
    dim = call.arg(1, "dim", 0)
    axis = int(dim) % (len(shape) + 2)
    if axis == 0:
        raise Refused("stacks along the batch axis")
    axis -= 1
    grown = (*shape[:axis], 1, *shape[axis:])
    steps: list[tuple[Any, tuple[str | int, ...]]] = [
        (Reshape(t.shape, grown), (t.name,)) for t in tensors]
    steps.append((Cat(axis), tuple(range(len(tensors)))))
    return Steps(tuple(steps))


def _tile(call: FxCall) -> Produced:
    """``torch.tile(x, dims)``/``x.tile(dims)``: ``repeat`` with ones prepended to ``dims``."""
    source = single_traced(call)
    reps = [int(r) for r in dims_arg(call, "dims")]
    ndim = len(source.shape) + 1
    if len(reps) > ndim:
        raise Refused(f"tiles {tuple(reps)}: more factors than the tensor's {ndim} axes adds "
                      f"axes before the batch axis")
    reps = [1] * (ndim - len(reps)) + reps
    if reps[0] != 1:
        raise Refused(f"tiles the batch axis ({tuple(reps)})")
    return _tiles(source, reps[1:])


def _repeat_interleave(call: FxCall) -> Produced:
    """``x.repeat_interleave(r, dim)`` with a constant count: each entry ``r`` times in a row.

    An axis of 1 after ``dim``, ``r`` copies concatenated along it, the two axes merged. A
    tensor of counts is read when all counts are equal; ``dim=None`` (flattening the batch
    too) is refused.
    """
    from convmatrix.layers.reshape import Reshape

    source = single_traced(call)
    repeats, dim = call.arg(1, "repeats"), call.arg(2, "dim")
    if dim is None:
        raise Refused("repeats without dim, which flattens the batch axis into the sample")
    counts = np.unique(as_array(repeats).astype(np.int64).reshape(-1))
    if counts.size != 1 or counts[0] < 0:
        raise Refused(f"repeats entries by the counts {as_array(repeats).tolist()}; one "
                      f"constant count for every entry is read")
    axis = sample_axis(call, source, dim, "repeats")
    count = int(counts[0])
    shape = source.shape
    if count == 1:
        return source
    if count == 0:
        raise Refused("repeats every entry 0 times (an empty output)")
    grown = (*shape[:axis + 1], 1, *shape[axis + 1:])
    return Steps(((Reshape(shape, grown), (source.name,)),
                  (Cat(axis + 1), (0,) * count),
                  (Reshape((*shape[:axis + 1], count, *shape[axis + 1:]),
                           call.output_shape()), (1,))))


def _unbind(call: FxCall) -> Produced:
    """``torch.unbind(x, dim)``: one slice per index, the axis dropped."""
    from convmatrix.layers.reshape import Reshape, Slice

    source = single_traced(call)
    axis = sample_axis(call, source, call.arg(1, "dim", 0), "unbinds")
    shape = source.shape
    dropped = (*shape[:axis], *shape[axis + 1:])
    return tuple((Sequential([Slice(shape, axis, i, i + 1),
                              Reshape((*shape[:axis], 1, *shape[axis + 1:]), dropped)]),
                  (source.name,)) for i in range(shape[axis]))


def _roll(call: FxCall) -> Produced:
    """``torch.roll(x, shifts, dims)``: per axis, its last ``s`` entries moved to the front.

    Each axis: two :class:`~convmatrix.Slice` s concatenated (a permutation); without dims
    the flattened tensor, batch axis included, would roll: refused.
    """
    from convmatrix.layers.reshape import Slice

    source = single_traced(call)
    shifts, dims = call.arg(1, "shifts"), call.arg(2, "dims")
    if dims is None or (isinstance(dims, list | tuple) and not dims):
        raise Refused("rolls without dims, which rolls the flattened batch")
    shifts = list(shifts) if isinstance(shifts, list | tuple) else [shifts]
    dims = list(dims) if isinstance(dims, list | tuple) else [dims]
    if len(shifts) != len(dims):
        raise Refused(f"rolls by {tuple(shifts)} along {tuple(dims)}: one shift per dim")
    steps: list[tuple[Any, tuple[str | int, ...]]] = []
    current: str | int = source.name
    for shift, dim in zip(shifts, dims, strict=True):
        axis = sample_axis(call, source, dim, "rolls")
        size = source.shape[axis]
        cut = size - int(shift) % size
        if cut == size:
            continue
        steps.append((Slice(source.shape, axis, cut, None), (current,)))
        steps.append((Slice(source.shape, axis, 0, cut), (current,)))
        steps.append((Cat(axis), (len(steps) - 2, len(steps) - 1)))
        current = len(steps) - 1
    return Steps(tuple(steps)) if steps else source


TRANSLATORS: dict[str, Translator] = {
    "cat": _cat, "concat": _cat, "concatenate": _cat, "chunk": _chunk, "split": _split,
    "split_with_sizes": _split, "repeat": _repeat, "expand": _expand, "expand_as": _expand,
    "stack": _stack, "tile": _tile, "repeat_interleave": _repeat_interleave, "unbind": _unbind,
    "roll": _roll,
}
"""This family's operation names → translators (merged into
:data:`~convmatrix.adapters.torch_fx.ops.FX_TRANSLATORS`)."""
