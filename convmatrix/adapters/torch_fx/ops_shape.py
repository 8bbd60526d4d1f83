"""Shape and view operations of torch graphs: reshapes, permutations, flips, same-value copies.

``view``/``reshape``/``flatten`` (:class:`~convmatrix.Reshape`), ``permute``/``transpose``/
``movedim``/``.T``/``.mT`` (:class:`~convmatrix.Permute`), ``flip`` (reversing
:class:`~convmatrix.Slice` s), and the operations that keep every value (``clone``, eval-mode
dropout, widening casts), which are aliases of their input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from convmatrix.adapters.torch_fx.call import (
    FxCall,
    Produced,
    Refused,
    Traced,
    Translator,
    dims_arg,
    replace_args,
    sample_axis,
    single_traced,
)
from convmatrix.layers.base import Layer
from convmatrix.layers.sequential import Sequential

__all__ = ["MODULE_TRANSLATORS", "TRANSLATORS", "matrix_transpose", "permutation"]


def _alias(call: FxCall) -> Produced:
    """``clone``, ``contiguous``, ``detach``-free copies and eval-mode dropout: the same value."""
    source = single_traced(call)
    if call.output_shape() != source.shape:
        raise Refused(f"changes the shape {source.shape} to {call.output_shape()}")
    return source


def _dropout(call: FxCall) -> Produced:
    training = call.kwargs.get("training", call.kwargs.get("train", call.arg(2, "training", True)
                                                           if call.kind != "dropout" or len(
                                                               call.args) > 2 else True))
    if call.op != "call_method" and training:
        raise Refused("runs in training mode (it zeroes random entries, not a fixed linear "
                      "map); call .eval() first")
    return _alias(call)


def _reshape(call: FxCall) -> Produced:
    """``view``, ``reshape``, ``flatten``, ``squeeze``, ``unsqueeze``: C order is kept."""
    from convmatrix.layers.reshape import Reshape

    source = single_traced(call)
    shape = call.output_shape()
    if shape == source.shape:
        return source
    return Reshape(source.shape, shape), (source.name,)


def _reshape_as(call: FxCall) -> Produced:
    """``x.view_as(y)``, ``x.reshape_as(y)``: ``y`` gives only the shape (it may be traced)."""
    from convmatrix.layers.reshape import Reshape

    source = call.args[0]
    if not isinstance(source, Traced):
        return None
    shape = call.output_shape()
    if shape == source.shape:
        return source
    return Reshape(source.shape, shape), (source.name,)


def _cast(call: FxCall) -> Produced:
    """``.to(dtype or device)``, ``.float()``, ``.double()``, ``.type_as(y)``: the same values.

    ``aten._to_copy`` is how ``run_decompositions()`` writes them.

    Only when no value changes: a conversion to a narrower type (float64 to float32) rounds.
    """
    source = call.args[0]
    if not isinstance(source, Traced):
        return None
    dtype = getattr(call.output, "dtype", None)
    before = getattr(call.values.get(source.name), "dtype", None)
    if dtype is None or before is None or not dtype.is_floating_point or dtype.is_complex or (
            dtype.itemsize < before.itemsize):
        raise Refused(f"converts {before} to {dtype}; only conversions that keep every value "
                      f"(to the same or a wider float type) are read, as the identity")
    if call.output_shape() != source.shape:
        raise Refused(f"changes the shape {source.shape} to {call.output_shape()}")
    return source


def _flip(call: FxCall) -> Produced:
    """``torch.flip(x, dims)``: one reversing :class:`~convmatrix.Slice` (step −1) per axis."""
    from convmatrix.layers.reshape import Slice

    source = single_traced(call)
    axes = sorted({sample_axis(call, source, d, "flips") for d in dims_arg(call, "dims")})
    layers: list[Layer] = [Slice(source.shape, axis, None, None, -1) for axis in axes]
    if not layers:
        return source
    return (layers[0] if len(layers) == 1 else Sequential(layers)), (source.name,)


def permutation(call: FxCall, source: Traced, order: Sequence[Any]) -> Produced:
    """A reordering of the tensor's axes (batch axis first) as a :class:`~convmatrix.Permute`."""
    from convmatrix.layers.permute import Permute

    ndim = len(source.shape) + 1
    if len(order) != ndim or any(isinstance(d, bool) or not isinstance(d, int) for d in order):
        raise Refused(f"reorders the axes as {tuple(order)}, which is not a permutation of "
                      f"the {ndim} axes")
    dims = [d % ndim for d in order]
    if sorted(dims) != list(range(ndim)):
        raise Refused(f"reorders the axes as {tuple(order)}, which is not a permutation of "
                      f"the {ndim} axes")
    if dims[0] != 0:
        raise Refused(f"moves the batch axis ({tuple(order)})")
    axes = [d - 1 for d in dims[1:]]
    if axes == sorted(axes):
        return source
    return Permute(source.shape, axes), (source.name,)


def _permute(call: FxCall) -> Produced:
    """``x.permute(…)``/``torch.permute``: a :class:`~convmatrix.Permute` of the sample."""
    return permutation(call, single_traced(call), dims_arg(call, "dims"))


def _transpose(call: FxCall) -> Produced:
    """``x.transpose(d0, d1)`` (``swapaxes``, ``swapdims``): two axes exchanged."""
    source = single_traced(call)
    ndim = len(source.shape) + 1
    first, second = call.arg(1, "dim0"), call.arg(2, "dim1")
    order = list(range(ndim))
    try:
        order[first], order[second] = order[second], order[first]
    except (IndexError, TypeError):
        raise Refused(f"exchanges axes {first!r} and {second!r} of {ndim}") from None
    return permutation(call, source, order)


def _movedim(call: FxCall) -> Produced:
    """``torch.movedim(x, source, destination)`` (``moveaxis``)."""
    source = single_traced(call)
    ndim = len(source.shape) + 1
    moved, where = call.arg(1, "source"), call.arg(2, "destination")
    moved = list(moved) if isinstance(moved, list | tuple) else [moved]
    where = list(where) if isinstance(where, list | tuple) else [where]
    try:
        moved = [int(d) % ndim for d in moved]
        where = [int(d) % ndim for d in where]
    except (TypeError, ValueError):
        raise Refused(f"moves axes {moved!r} to {where!r}") from None
    order: list[int | None] = [None] * ndim
    for axis, position in zip(moved, where, strict=False):
        order[position] = axis
    rest = iter(d for d in range(ndim) if d not in moved)
    return permutation(call, source, [next(rest) if d is None else d for d in order])


def _t(call: FxCall) -> Produced:
    """``x.t()`` (``torch.t``): the two axes of a 2-D tensor exchanged (the batch axis moves)."""
    source = single_traced(call)
    order = list(range(len(source.shape) + 1))[::-1] if len(source.shape) < 2 else []
    return permutation(call, source, order)


def _flip_side(call: FxCall) -> Produced:
    """``torch.fliplr`` (dim 1) and ``torch.flipud`` (dim 0: the batch axis, refused)."""
    return _flip(replace_args(call, (call.args[0], [1 if call.kind == "fliplr" else 0])))


def matrix_transpose(call: FxCall) -> Produced:
    """``x.mT`` (``aten.mT``): the last two axes exchanged."""
    source = single_traced(call)
    order = list(range(len(source.shape) + 1))
    order[-2:] = order[:-3:-1]
    return permutation(call, source, order)


TRANSLATORS: dict[str, Translator] = {
    "view": _reshape, "reshape": _reshape, "flatten": _reshape, "squeeze": _reshape,
    "unsqueeze": _reshape, "_unsafe_view": _reshape, "contiguous": _alias, "clone": _alias,
    "alias": _alias, "dropout": _dropout, "feature_dropout": _dropout, "alpha_dropout": _dropout,
    "dropout1d": _dropout, "dropout2d": _dropout, "dropout3d": _dropout, "view_as": _reshape_as,
    "reshape_as": _reshape_as, "to": _cast, "float": _cast, "double": _cast, "type_as": _cast,
    "_to_copy": _cast,
    "flip": _flip, "permute": _permute, "transpose": _transpose, "swapaxes": _transpose,
    "swapdims": _transpose, "movedim": _movedim, "moveaxis": _movedim, "detach": _alias, "t": _t,
    "numpy_T": _t, "fliplr": _flip_side, "flipud": _flip_side, "mT": matrix_transpose,
}
"""This family's operation names → translators (merged into
:data:`~convmatrix.adapters.torch_fx.ops.FX_TRANSLATORS`)."""

MODULE_TRANSLATORS: dict[str, Translator] = {"Flatten": _reshape, "Unflatten": _reshape}
"""This family's module class names → translators (merged into
:data:`~convmatrix.adapters.torch_fx.ops.FX_MODULE_TRANSLATORS`)."""
