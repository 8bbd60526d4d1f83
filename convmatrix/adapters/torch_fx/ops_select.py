"""Selections of torch graphs: indexing, ``narrow``, ``select``, ``index_select``, picking outputs.

Constant indices only: every selection is a (stack of) :class:`~convmatrix.Slice` s; the
outputs of a node with several (``chunk``, ``torch.max(x, dim)``'s values) are picked by
``getitem``/``getattr``.
"""

from __future__ import annotations

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
    sample_axis,
    single_traced,
)
from convmatrix.adapters.torch_fx.ops_shape import matrix_transpose, permutation
from convmatrix.layers.base import Layer
from convmatrix.layers.graph import Cat
from convmatrix.layers.sequential import Sequential

__all__ = ["TRANSLATORS"]


def _narrow_slice(call: FxCall) -> Produced:  # aten.slice.Tensor(self, dim, start, end, step)
    from convmatrix.layers.reshape import Slice

    source = single_traced(call)
    dim = int(call.arg(1, "dim", 0)) % (len(source.shape) + 1)
    start, stop, step = call.arg(2, "start"), call.arg(3, "end"), call.arg(4, "step", 1)
    if dim == 0:
        raise Refused("slices the batch axis")
    size = source.shape[dim - 1]
    stop = None if stop is None else min(int(stop), size)
    return Slice(source.shape, dim - 1, start, stop, step or 1), (source.name,)


def _getitem(call: FxCall) -> Produced:
    """Indexing a traced tensor (slices, ints, Ellipsis, None on per-sample axes)."""
    from convmatrix.layers.reshape import Reshape, Slice

    source, index = call.args[0], call.args[1]
    if not isinstance(source, Traced):
        return None
    items = index if isinstance(index, tuple) else (index,)
    if any(isinstance(item, Traced) for item in items):
        raise Refused("indexes with values that depend on the input")
    ndim = len(source.shape) + 1
    if Ellipsis in items:
        at = items.index(Ellipsis)
        fill = ndim - (len(items) - 1 - sum(item is None for item in items))
        items = items[:at] + (slice(None),) * fill + items[at + 1:]
    layers: list[Layer] = []
    shape = source.shape
    axis = 0
    for item in items:
        if item is None:
            continue
        if axis == 0:
            if item != slice(None):
                raise Refused("indexes the batch axis")
        elif isinstance(item, slice):
            if item != slice(None):
                layers.append(Slice(shape, axis - 1, item.start, item.stop, item.step or 1))
                shape = layers[-1].output_shape
        elif isinstance(item, int):
            layers.append(Slice(shape, axis - 1, item, item + 1 if item != -1 else None))
            shape = layers[-1].output_shape
        else:
            raise Refused(f"indexes with {type(item).__name__} (only slices, ints, ... and "
                          f"None are read)")
        axis += 1
    out = call.output_shape()
    if shape != out:
        layers.append(Reshape(shape, out))
    if not layers:
        return source
    layer = layers[0] if len(layers) == 1 else Sequential(layers)
    return layer, (source.name,)


def _narrow(call: FxCall) -> Produced:
    """``x.narrow(dim, start, length)``: a :class:`~convmatrix.Slice`."""
    from convmatrix.layers.reshape import Slice

    source = single_traced(call)
    axis = sample_axis(call, source, call.arg(1, "dim"), "narrows")
    start, length = int(call.arg(2, "start")), int(call.arg(3, "length"))
    if start < 0:
        start += source.shape[axis]
    return Slice(source.shape, axis, start, start + length), (source.name,)


def _select(call: FxCall) -> Produced:
    """``aten.select(x, dim, index)`` (``x[:, i]`` in ``torch.export``): one index, axis dropped."""
    from convmatrix.layers.reshape import Reshape, Slice

    source = single_traced(call)
    axis = sample_axis(call, source, call.arg(1, "dim"), "selects")
    index = int(call.arg(2, "index")) % source.shape[axis]
    piece = Slice(source.shape, axis, index, index + 1)
    return Sequential([piece, Reshape(piece.output_shape, call.output_shape())]), (source.name,)


def _index_select(call: FxCall) -> Produced:
    """``index_select(x, dim, index)`` with constant indices: runs of consecutive indices.

    Each run is one :class:`~convmatrix.Slice`, the runs concatenated (``torch.roll`` and
    ``repeat_interleave`` decompose into this in ``torch.export``).
    """
    from convmatrix.layers.reshape import Slice

    source = single_traced(call)
    axis = sample_axis(call, source, call.arg(1, "dim"), "selects")
    index = as_array(call.arg(2, "index")).astype(np.int64).reshape(-1) % source.shape[axis]
    if index.size == 0:
        raise Refused("selects no index (an empty output)")
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    runs = [(int(run[0]), int(run[-1]) + 1) for run in np.split(index, breaks)]
    steps: list[tuple[Any, tuple[str | int, ...]]] = [
        (Slice(source.shape, axis, start, stop), (source.name,)) for start, stop in runs]
    if len(steps) == 1:
        return steps[0]
    steps.append((Cat(axis), tuple(range(len(runs)))))
    return Steps(tuple(steps))


def _pick(call: FxCall, container: tuple[Any, ...], index: Any) -> Traced:
    if not isinstance(index, int):
        raise Refused(f"selects {index!r} from several outputs")
    if not -len(container) <= index < len(container) or container[index] is None:
        raise Refused(f"takes output {index} of a node whose output {index} is not read (such "
                      f"as the indices of a max: integers, not a function convmatrix "
                      f"linearises)")
    found: Traced = container[index]
    return found


def _getitem_any(call: FxCall) -> Produced:
    source = call.args[0]
    if isinstance(source, tuple) and source and all(
            t is None or isinstance(t, Traced) for t in source):
        return _pick(call, source, call.args[1])
    return _getitem(call)


_FIELDS = {"values": 0, "indices": 1}
"""The named outputs read by ``getattr`` (``torch.max(x, dim).values``)."""


def _getattr(call: FxCall) -> Produced:
    """``getattr(node, "values")`` of a node with several named outputs; ``x.mT``."""
    source, name = call.args[0], call.args[1] if len(call.args) > 1 else None
    if isinstance(source, tuple) and name in _FIELDS:
        return _pick(call, source, _FIELDS[name])
    if isinstance(source, Traced) and name == "mT":
        return matrix_transpose(call)
    if isinstance(source, Traced) and name == "T":  # every axis reversed: the batch moves
        return permutation(call, source, list(range(len(source.shape) + 1))[::-1])
    raise Refused(f"reads the attribute {name!r} of a value that depends on the input, which "
                  f"is not read")


TRANSLATORS: dict[str, Translator] = {
    "slice": _narrow_slice, "getitem": _getitem_any, "narrow": _narrow, "select": _select,
    "index_select": _index_select, "getattr": _getattr,
}
"""This family's operation names → translators (merged into
:data:`~convmatrix.adapters.torch_fx.ops.FX_TRANSLATORS`)."""
