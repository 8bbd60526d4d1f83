"""torch networks through ``torch.fx``: a traced graph as one :class:`~convmatrix.Graph`.

:func:`read_fx` traces a module with ``torch.fx`` (or takes a ``GraphModule`` the user traced,
or a ``torch.export`` ``ExportedProgram``), runs it once on a sample (``torch.fx.Interpreter``:
every node's value, hence its shape), and translates every node that depends on the input into
a node of a :class:`~convmatrix.Graph`: leaf modules through the module reader the caller passes
(:func:`convmatrix.adapters.torch.read_module`), functions, methods and ``aten`` operators
through :data:`FX_TRANSLATORS` (one translator per operation name). Nodes that do not depend on
the input (parameters, buffers, ``x.size(0)``) are constants the translators read.

Linearisation plugs in here: with a point ``x`` and a ``jacobian`` translator, a node no affine
translator reads (a ReLU, a max-pool, a normalisation) is handed to ``jacobian`` with its values
at ``x`` (an :class:`FxCall`); it answers with the layer of the node's Jacobian at ``x`` whose
offset is ``f(x) − J x`` (see :data:`JacobianTranslator`). :func:`walk_fx` also returns the
network's value at the point; with ``dtype`` the network runs with its floating parameters and
buffers seen in that dtype (``torch.func.functional_call``: the module itself is untouched). This
is the one torch.fx walker: :func:`convmatrix.from_torch` and :func:`convmatrix.linearize` both
read graphs through it.

torch is imported only inside functions (an adapter never makes ``import convmatrix`` import
a framework).
"""

from __future__ import annotations

import inspect
import math
import operator
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convmatrix._arrays import to_numpy
from convmatrix._errors import ConvMatrixError
from convmatrix.layers.base import Layer
from convmatrix.layers.conv import Conv, ConvTranspose
from convmatrix.layers.graph import Cat, Graph, Node, Sum
from convmatrix.layers.norm import BatchNorm
from convmatrix.layers.pad import Pad
from convmatrix.layers.pool import AvgPool
from convmatrix.layers.sequential import Sequential
from convmatrix.layers.shuffle import PixelShuffle, PixelUnshuffle
from convmatrix.layers.upsample import Upsample

__all__ = ["FX_MODULE_TRANSLATORS", "FX_TRANSLATORS", "FxCall", "FxWalk", "JacobianTranslator",
           "ModuleReader", "Traced", "read_fx", "replace_args", "walk_fx"]


@dataclass(frozen=True)
class Traced:
    """A value that depends on the network's input: the graph node holding it, and its shape.

    ``shape`` is one sample's shape (the batch axis of 1 removed).
    """

    name: str
    shape: tuple[int, ...]


@dataclass
class FxCall:
    """One fx node, as a translator sees it.

    Attributes
    ----------
    name : str
        The fx node's name (also the name of the graph node made from it).
    position : int
        The node's index in the fx graph (placeholders and constants count).
    op : str
        ``"call_module"``, ``"call_function"`` or ``"call_method"``.
    target : object
        The module's path, the function (an ``aten`` operator for ``torch.export``) or the
        method's name.
    kind : str
        The operation's name: the module's class name, the function's or method's name
        (``"add"``, ``"conv2d"``, ``"view"``); an ``aten`` operator's base name; in-place forms
        without their trailing ``_`` (see :attr:`inplace`).
    module : torch.nn.Module or None
        The submodule (``call_module``).
    args, kwargs
        The node's arguments: a :class:`Traced` for each value that depends on the input,
        the value itself for constants (tensors, numbers, shapes).
    values : dict
        Traced node name → its value at the point (a torch tensor with its batch axis of 1).
    output : object
        The node's own value at the point (a tensor with batch axis 1, or a tuple of them).
    inplace : bool
        The operation writes into its first argument (``add_``, ``aten.add_``, ``x[i] = v``,
        a module or function with ``inplace=True``).
    built : Mapping[str, Node]
        The graph nodes made so far (name → :class:`~convmatrix.Node`, in order): what the
        earlier nodes became (a Jacobian translator reads, e.g., which inputs are locally
        constant from them).
    """

    name: str
    position: int
    op: str
    target: Any
    kind: str
    module: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    values: dict[str, Any] = field(repr=False)
    output: Any = field(repr=False)
    inplace: bool = False
    built: Mapping[str, Node] = field(default_factory=dict, repr=False)

    @property
    def traced(self) -> list[Traced]:
        """The traced arguments, in order (lists such as ``torch.cat``'s flattened)."""
        found: list[Traced] = []

        def visit(value: Any) -> None:
            if isinstance(value, Traced):
                found.append(value)
            elif isinstance(value, list | tuple):
                for item in value:
                    visit(item)
            elif isinstance(value, dict):
                for item in value.values():
                    visit(item)

        visit(self.args)
        visit(self.kwargs)
        return found

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """Positional argument ``index`` or keyword ``name`` (``default`` when absent)."""
        if len(self.args) > index:
            return self.args[index]
        return self.kwargs.get(name, default)

    def output_shape(self) -> tuple[int, ...]:
        """One sample's shape of the node's tensor output (batch axis 1 removed)."""
        return _sample_shape(self.output)  # the reader names the node

    def where(self) -> str:
        """``node 'name' (position N, call_function add)`` for messages."""
        return f"node {self.name!r} (position {self.position}, {self.op} {_target_text(self)})"


Produced = Any
"""What a translator returns: a :class:`Traced` (the node is an alias: ``clone``, eval
dropout), a ``(op, input names)`` pair (``op`` a Layer, Sum or Cat), a tuple of those (an
operation with several outputs: ``chunk``, ``split``), a ``_Steps`` (several nodes for one
operation: ``torch.stack``, ``repeat``), or None (not read: refused, or handed to the Jacobian
translator at a point)."""

Translator = Callable[[FxCall], Produced]

ModuleReader = Callable[[Any, tuple[int, ...]], "Layer | None"]
"""How a leaf module (``call_module``) is read: the layer, or None when its class is not read."""

JacobianTranslator = Callable[[FxCall], "Layer | Sequence[Layer] | None"]
"""Linearisation's hook: ``jacobian(call)`` for a node no affine translator reads.

Called only with a point ``x`` (``read_fx(..., x=x, jacobian=...)``), after the graph ran on
``x``: ``call.values`` and ``call.output`` hold the values at ``x``. Answer with the node's
Jacobian at ``x`` as a layer whose input is the node's one traced tensor (``call.traced[0]``)
and whose offset is ``f(x) − J x`` (so the graph's offset is the network's ``f(x) − J x``), or
with one layer per traced tensor (``call.traced``, each from that input to the node's output;
their maps are summed, the offsets of all of them added), or None to refuse the node.
"""


class _Refused(Exception):
    """A translator refuses: the message says why (the reader adds where)."""


def _target_text(call: Any) -> str:
    target = call.target
    if call.op == "call_module":
        return f"{target} ({type(call.module).__name__})"
    if isinstance(target, str):
        return f".{target}()"
    name = getattr(target, "__name__", None) or str(target)
    module = getattr(target, "__module__", None)
    if hasattr(target, "_schema"):
        return str(target)
    return f"{module}.{name}" if module and module not in ("_operator", "builtins") else name


def _sample_shape(value: Any, call: FxCall | None = None) -> tuple[int, ...]:
    shape = tuple(int(s) for s in getattr(value, "shape", ()))
    if not shape or shape[0] != 1:
        where = "" if call is None else f"{call.where()}: "
        raise _Refused(f"{where}its value has shape {shape}, which has no batch axis of 1 "
                       f"(an operation across the batch axis is not a map of one sample)")
    return shape[1:]


def _array(value: Any) -> np.ndarray:
    if isinstance(value, int | float | bool):
        return np.asarray(value, dtype=np.float64)
    return np.asarray(to_numpy(value))


def _single(call: FxCall) -> Traced:
    traced = call.traced
    if len(traced) != 1:
        raise _Refused(f"takes {len(traced)} values that depend on the input; the affine "
                       f"reading of {call.kind} takes one")
    return traced[0]


def _layer(call: FxCall, layer: Layer) -> Produced:
    return layer, (_single(call).name,)


def _constant(call: FxCall, value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A constant operand broadcast onto one sample of ``shape`` (never across the batch)."""
    array = _array(value)
    try:
        full = np.broadcast_to(array, (1, *shape)) if array.ndim > len(shape) else (
            np.broadcast_to(array, shape)[None])
    except ValueError:
        raise _Refused(f"its constant {what} of shape {array.shape} does not broadcast onto one "
                       f"sample {shape}") from None
    if array.ndim > len(shape) + 1:
        raise _Refused(f"its constant {what} of shape {array.shape} broadcasts the batch axis")
    return np.array(full[0])


# -- element-wise arithmetic ----------------------------------------------------------------


def _scale(call: FxCall, source: Traced, scale: Any = 1.0, shift: Any = 0.0) -> Produced:
    from convmatrix.layers.scale import Scale

    shape = call.output_shape()
    if shape != source.shape:
        raise _Refused(f"broadcasts its input {source.shape} to {shape}")
    scale_array = _constant(call, scale, shape, "factor") if not isinstance(
        scale, int | float) else scale
    shift_array = _constant(call, shift, shape, "term") if not isinstance(
        shift, int | float) else shift
    return Scale(shape, scale_array, shift=shift_array), (source.name,)


def _add(call: FxCall, sign: float = 1.0) -> Produced:
    a, b = call.arg(0, "input"), call.arg(1, "other")
    alpha = call.kwargs.get("alpha", call.args[2] if len(call.args) > 2 else 1)
    if isinstance(alpha, Traced):
        raise _Refused("its alpha depends on the input")
    if isinstance(a, Traced) and isinstance(b, Traced):
        if a.shape != b.shape:
            raise _Refused(f"adds values of different shapes ({a.shape} from {a.name!r}, "
                           f"{b.shape} from {b.name!r}); broadcasting between branches is not "
                           f"read")
        return Sum((1.0, sign * float(alpha))), (a.name, b.name)
    if isinstance(a, Traced):
        return _scale(call, a, 1.0, sign * float(alpha) * _array(b) if not isinstance(
            b, int | float) else sign * float(alpha) * b)
    if isinstance(b, Traced):
        return _scale(call, b, sign * float(alpha), a)
    return None


def _sub(call: FxCall) -> Produced:
    return _add(call, -1.0)


def _rsub(call: FxCall) -> Produced:  # aten.rsub / torch.rsub: other − alpha·input
    a, b = call.arg(0, "input"), call.arg(1, "other")
    alpha = float(call.kwargs.get("alpha", 1))
    if isinstance(a, Traced) and not isinstance(b, Traced):
        return _scale(call, a, -alpha, b)
    return None


def _mul(call: FxCall) -> Produced:
    a, b = call.arg(0, "input"), call.arg(1, "other")
    if isinstance(a, Traced) and isinstance(b, Traced):
        return None  # a product of two branches: not affine (a Jacobian at a point)
    if isinstance(a, Traced):
        return _scale(call, a, b)
    if isinstance(b, Traced):
        return _scale(call, b, a)
    return None


def _div(call: FxCall) -> Produced:
    a, b = call.arg(0, "input"), call.arg(1, "other")
    mode = call.kwargs.get("rounding_mode")
    if isinstance(b, Traced):
        raise _Refused("divides by a value that depends on the input: not affine, and "
                       "cm.linearize does not read it either")
    if not isinstance(a, Traced) or mode is not None:
        return None
    value = 1.0 / b if isinstance(b, int | float) else 1.0 / _array(b)
    return _scale(call, a, value)


def _neg(call: FxCall) -> Produced:
    return _scale(call, _single(call), -1.0)


def _pos(call: FxCall) -> Produced:
    return _single(call)


# -- shapes, selections, concatenation --------------------------------------------------------


def _alias(call: FxCall) -> Produced:
    """``clone``, ``contiguous``, ``detach``-free copies and eval-mode dropout: the same value."""
    source = _single(call)
    if call.output_shape() != source.shape:
        raise _Refused(f"changes the shape {source.shape} to {call.output_shape()}")
    return source


def _dropout(call: FxCall) -> Produced:
    training = call.kwargs.get("training", call.kwargs.get("train", call.arg(2, "training", True)
                                                           if call.kind != "dropout" or len(
                                                               call.args) > 2 else True))
    if call.op != "call_method" and training:
        raise _Refused("runs in training mode (it zeroes random entries, not a fixed linear "
                       "map); call .eval() first")
    return _alias(call)


def _reshape(call: FxCall) -> Produced:
    """``view``, ``reshape``, ``flatten``, ``squeeze``, ``unsqueeze``: C order is kept."""
    from convmatrix.layers.reshape import Reshape

    source = _single(call)
    shape = call.output_shape()
    if shape == source.shape:
        return source
    return Reshape(source.shape, shape), (source.name,)


def _cat(call: FxCall) -> Produced:
    tensors = call.arg(0, "tensors")
    dim = call.arg(1, "dim", 0)
    if not isinstance(tensors, list | tuple) or not all(isinstance(t, Traced) for t in tensors):
        raise _Refused("concatenates values of which some do not depend on the input "
                       "(constants inside a concatenation are not read)")
    ndim = len(tensors[0].shape) + 1
    axis = int(dim) % ndim
    if axis == 0:
        raise _Refused("concatenates along the batch axis")
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
        raise _Refused("splits along the batch axis")
    start = 0
    parts = []
    for value in outputs:
        size = int(value.shape[axis])
        parts.append((Slice(source.shape, axis - 1, start, start + size), (source.name,)))
        start += size
    return tuple(parts)


def _chunk(call: FxCall) -> Produced:
    return _slices(call, _single(call), call.arg(2, "dim", 0))


def _split(call: FxCall) -> Produced:
    return _slices(call, _single(call), call.arg(2, "dim", 0))


def _narrow_slice(call: FxCall) -> Produced:  # aten.slice.Tensor(self, dim, start, end, step)
    from convmatrix.layers.reshape import Slice

    source = _single(call)
    dim = int(call.arg(1, "dim", 0)) % (len(source.shape) + 1)
    start, stop, step = call.arg(2, "start"), call.arg(3, "end"), call.arg(4, "step", 1)
    if dim == 0:
        raise _Refused("slices the batch axis")
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
        raise _Refused("indexes with values that depend on the input")
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
                raise _Refused("indexes the batch axis")
        elif isinstance(item, slice):
            if item != slice(None):
                layers.append(Slice(shape, axis - 1, item.start, item.stop, item.step or 1))
                shape = layers[-1].output_shape
        elif isinstance(item, int):
            layers.append(Slice(shape, axis - 1, item, item + 1 if item != -1 else None))
            shape = layers[-1].output_shape
        else:
            raise _Refused(f"indexes with {type(item).__name__} (only slices, ints, ... and "
                           f"None are read)")
        axis += 1
    out = call.output_shape()
    if shape != out:
        layers.append(Reshape(shape, out))
    if not layers:
        return source
    layer = layers[0] if len(layers) == 1 else Sequential(layers)
    return layer, (source.name,)


# -- functional forms of the layer kinds ----------------------------------------------------


def _tuple(value: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * ndim
    items = tuple(int(v) for v in value)
    return items * ndim if len(items) == 1 else items


def _conv(call: FxCall) -> Produced:
    source = _single(call)
    if isinstance(call.arg(1, "weight"), Traced) or isinstance(call.arg(2, "bias"), Traced):
        raise _Refused("its weight or bias depends on the input")
    weight = _array(call.arg(1, "weight"))
    bias = call.arg(2, "bias")
    ndim = weight.ndim - 2
    padding = call.arg(4, "padding", 0)
    padding = padding if isinstance(padding, str) else _tuple(padding, ndim)
    layer = Conv(weight, source.shape, stride=_tuple(call.arg(3, "stride", 1), ndim),
                 padding=padding, dilation=_tuple(call.arg(5, "dilation", 1), ndim),
                 groups=int(call.arg(6, "groups", 1)),
                 bias=None if bias is None else _array(bias))
    return layer, (source.name,)


def _conv_transpose(call: FxCall) -> Produced:
    source = _single(call)
    weight = _array(call.arg(1, "weight"))
    bias = call.arg(2, "bias")
    ndim = weight.ndim - 2
    layer = ConvTranspose(weight, source.shape, stride=_tuple(call.arg(3, "stride", 1), ndim),
                          padding=_tuple(call.arg(4, "padding", 0), ndim),
                          output_padding=_tuple(call.arg(5, "output_padding", 0), ndim),
                          groups=int(call.arg(6, "groups", 1)),
                          dilation=_tuple(call.arg(7, "dilation", 1), ndim),
                          bias=None if bias is None else _array(bias))
    return layer, (source.name,)


def _linear(call: FxCall) -> Produced:
    from convmatrix.layers.linear import Linear

    source = _single(call)
    bias = call.arg(2, "bias")
    weight = _array(call.arg(1, "weight"))
    if len(source.shape) != 1:
        raise _Refused(f"applies a linear map to the last axis of {source.shape}; only a flat "
                       f"sample is read")
    return Linear(weight, None if bias is None else _array(bias), input_shape=source.shape), (
        source.name,)


def _avg_pool(call: FxCall) -> Produced:
    source = _single(call)
    ndim = len(source.shape) - 1
    kernel = _tuple(call.arg(1, "kernel_size"), ndim)
    stride = call.arg(2, "stride")
    stride = kernel if stride is None or stride == [] else _tuple(stride, ndim)
    return AvgPool(source.shape, kernel, stride, _tuple(call.arg(3, "padding", 0), ndim),
                   ceil_mode=bool(call.arg(4, "ceil_mode", False)),
                   count_include_pad=bool(call.arg(5, "count_include_pad", True)),
                   divisor_override=call.arg(6, "divisor_override")), (source.name,)


def _adaptive_avg_pool(call: FxCall) -> Produced:
    source = _single(call)
    ndim = len(source.shape) - 1
    size = call.arg(1, "output_size")
    out = call.output_shape()[1:]
    spatial = source.shape[1:]
    if all(n % o == 0 for n, o in zip(spatial, out, strict=True)):
        kernel = tuple(n // o for n, o in zip(spatial, out, strict=True))
        return AvgPool(source.shape, kernel, kernel), (source.name,)
    from convmatrix.layers.adaptive import AdaptiveAvgPool

    del size, ndim  # the output's own sizes: None entries (keep the axis) are resolved
    return AdaptiveAvgPool(source.shape, out), (source.name,)


def _pad(call: FxCall) -> Produced:
    source = _single(call)
    mode = call.arg(2, "mode", "constant")
    value = call.arg(3, "value", 0.0)
    return Pad(source.shape, tuple(int(p) for p in call.arg(1, "pad")), mode=mode,
               value=float(value or 0.0)), (source.name,)


def _interpolate(call: FxCall) -> Produced:
    source = _single(call)
    if call.kwargs.get("antialias"):
        raise _Refused("uses antialias, which is not read")
    return Upsample(source.shape, size=call.arg(1, "size"),
                    scale_factor=call.arg(2, "scale_factor"), mode=call.arg(3, "mode", "nearest"),
                    align_corners=call.arg(4, "align_corners"),
                    recompute_scale_factor=call.arg(5, "recompute_scale_factor")), (source.name,)


def _batch_norm(call: FxCall) -> Produced:
    """``F.batch_norm(x, mean, var, weight, bias, training, momentum, eps)`` in eval mode."""
    source = _single(call)
    if call.arg(5, "training", False):
        raise _Refused("normalises by the batch's statistics (training=True); call .eval()")
    if hasattr(call.target, "_schema"):  # aten: (input, weight, bias, mean, var, training, ...)
        weight, bias = call.arg(1, "weight"), call.arg(2, "bias")
        mean, var = call.arg(3, "running_mean"), call.arg(4, "running_var")
    else:  # F.batch_norm: (input, running_mean, running_var, weight, bias, training, ...)
        weight, bias = call.arg(3, "weight"), call.arg(4, "bias")
        mean, var = call.arg(1, "running_mean"), call.arg(2, "running_var")
    if mean is None or var is None:
        raise _Refused("has no running statistics: it normalises by the batch's")
    return BatchNorm(source.shape, _array(mean), _array(var),
                     weight=None if weight is None else _array(weight),
                     bias=None if bias is None else _array(bias),
                     eps=float(call.arg(7, "eps", 1e-5))), (source.name,)


def _aten_batch_norm(call: FxCall) -> Produced:
    """``aten._native_batch_norm_legit_no_training(x, w, b, mean, var, momentum, eps)``.

    Its value is a tuple (output, saved mean, saved invstd); only the output is read.
    """
    source = _single(call)
    weight, bias = call.arg(1, "weight"), call.arg(2, "bias")
    layer = BatchNorm(source.shape, _array(call.arg(3, "running_mean")),
                      _array(call.arg(4, "running_var")),
                      weight=None if weight is None else _array(weight),
                      bias=None if bias is None else _array(bias), eps=float(call.arg(6, "eps")))
    return ((layer, (source.name,)),)


def _pixel_shuffle(call: FxCall) -> Produced:
    source = _single(call)
    return PixelShuffle(source.shape, int(call.arg(1, "upscale_factor"))), (source.name,)


def _pixel_unshuffle(call: FxCall) -> Produced:
    source = _single(call)
    return PixelUnshuffle(source.shape, int(call.arg(1, "downscale_factor"))), (source.name,)


# -- more affine operations: views, flips, reductions, tiling, stacking, casts ----------------


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

    Only when no value changes: a conversion to a narrower type (float64 to float32) rounds.
    """
    source = call.args[0]
    if not isinstance(source, Traced):
        return None
    dtype = getattr(call.output, "dtype", None)
    before = getattr(call.values.get(source.name), "dtype", None)
    if dtype is None or before is None or not dtype.is_floating_point or dtype.is_complex or (
            dtype.itemsize < before.itemsize):
        raise _Refused(f"converts {before} to {dtype}; only conversions that keep every value "
                       f"(to the same or a wider float type) are read, as the identity")
    if call.output_shape() != source.shape:
        raise _Refused(f"changes the shape {source.shape} to {call.output_shape()}")
    return source


def _sample_axis(call: FxCall, source: Traced, dim: Any, what: str) -> int:
    """A torch dim of a batched tensor as an axis of one sample (the batch axis refused)."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise _Refused(f"{what} along {dim!r}; a dim is an int")
    ndim = len(source.shape) + 1
    axis = dim % ndim
    if axis == 0:
        raise _Refused(f"{what} along the batch axis")
    return axis - 1


def _narrow(call: FxCall) -> Produced:
    """``x.narrow(dim, start, length)``: a :class:`~convmatrix.Slice`."""
    from convmatrix.layers.reshape import Slice

    source = _single(call)
    axis = _sample_axis(call, source, call.arg(1, "dim"), "narrows")
    start, length = int(call.arg(2, "start")), int(call.arg(3, "length"))
    if start < 0:
        start += source.shape[axis]
    return Slice(source.shape, axis, start, start + length), (source.name,)


def _dims(call: FxCall, name: str) -> list[Any]:
    """A dims argument given as a list, an int, or (methods) several ints."""
    if call.op == "call_method" and len(call.args) > 2:
        return list(call.args[1:])
    dims = call.arg(1, name)
    return list(dims) if isinstance(dims, list | tuple) else [dims]


def _flip(call: FxCall) -> Produced:
    """``torch.flip(x, dims)``: one reversing :class:`~convmatrix.Slice` (step −1) per axis."""
    from convmatrix.layers.reshape import Slice

    source = _single(call)
    axes = sorted({_sample_axis(call, source, d, "flips") for d in _dims(call, "dims")})
    layers: list[Layer] = [Slice(source.shape, axis, None, None, -1) for axis in axes]
    if not layers:
        return source
    return (layers[0] if len(layers) == 1 else Sequential(layers)), (source.name,)


def _float_dtype(call: FxCall) -> Any:
    return np.float32 if str(getattr(call.output, "dtype", "")) == "torch.float32" else np.float64


def _reduce(call: FxCall, average: bool) -> Produced:
    """``x.sum(dim)``/``x.mean(dim)`` over channels and/or spatial axes (keepdim or not).

    Spatial axes: an :class:`~convmatrix.AvgPool` whose window spans them (``divisor_override
    = 1`` for a sum); the channel axis: a convolution with one output channel of ones (``1/C``
    for a mean), or a :class:`~convmatrix.Linear` row for a flat sample.
    """
    from convmatrix.layers.linear import Linear
    from convmatrix.layers.reshape import Reshape

    source = _single(call)
    dims = call.arg(1, "dim")
    if dims is None or (isinstance(dims, list | tuple) and not dims):
        raise _Refused(f"{'averages' if average else 'sums'} over every axis, the batch axis "
                       f"too")
    if call.kwargs.get("dtype") is not None:
        raise _Refused("converts the dtype while reducing (dtype=...), which is not read")
    axes = sorted({_sample_axis(call, source, d, "averages" if average else "sums")
                   for d in (dims if isinstance(dims, list | tuple) else (dims,))})
    shape = source.shape
    if axes == list(range(1, len(shape))) and average:  # the global average pool
        layers: list[Layer] = [AvgPool(shape, shape[1:])]
        shape = layers[0].output_shape
    else:
        layers = []
        dtype = _float_dtype(call) if not average else np.float64  # 1/C: not exact in float32
        if 0 in axes:
            channels = shape[0]
            weight = np.full((1, channels), 1.0 / channels if average else 1.0, dtype=dtype)
            if len(shape) == 1:
                layers.append(Linear(weight, input_shape=shape))
            else:
                layers.append(Conv(weight.reshape(1, channels, *(1,) * (len(shape) - 1)),
                                   shape))
            shape = layers[-1].output_shape
        spatial = [axis for axis in axes if axis > 0]
        if spatial:
            kernel = tuple(n if axis in spatial else 1 for axis, n in enumerate(shape) if axis)
            layers.append(AvgPool(shape, kernel, divisor_override=None if average else 1))
            shape = layers[-1].output_shape
    out = call.output_shape()
    if shape != out:
        layers.append(Reshape(shape, out))
    return (layers[0] if len(layers) == 1 else Sequential(layers)), (source.name,)


def _sum(call: FxCall) -> Produced:
    return _reduce(call, average=False)


def _mean(call: FxCall) -> Produced:
    """``x.mean(dim)``: over all spatial axes the global average pool; any axes but the batch."""
    return _reduce(call, average=True)


@dataclass(frozen=True)
class _Steps:
    """Several graph nodes for one fx node, in order; the last one is the node's value.

    ``steps`` holds ``(op, inputs)`` pairs; an input is a node name, or an int: the value of
    an earlier step of this node.
    """

    steps: tuple[tuple[Any, tuple[str | int, ...]], ...]


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
    return _Steps(tuple(steps))


def _repeat(call: FxCall) -> Produced:
    """``x.repeat(1, r1, r2, …)``: tiling, a concatenation of copies along each axis."""
    source = _single(call)
    reps = _dims(call, "repeats")
    if len(reps) != len(source.shape) + 1 or reps[0] != 1:
        raise _Refused(f"repeats {tuple(reps)}: only one factor per axis of the tensor, 1 for "
                       f"the batch axis, is read")
    return _tiles(source, [int(r) for r in reps[1:]])


def _expand(call: FxCall) -> Produced:
    """``x.expand(…)``/``expand_as``: axes of size 1 broadcast, copies concatenated."""
    source = call.args[0]
    if not isinstance(source, Traced):
        return None
    out = call.output_shape()
    if len(out) != len(source.shape):
        raise _Refused(f"expands {source.shape} to {out}: new axes are not read")
    return _tiles(source, [o if n == 1 else 1 for n, o in zip(source.shape, out, strict=True)])


def _stack(call: FxCall) -> Produced:
    """``torch.stack(tensors, dim)``: each input given an axis of 1 there, then concatenated."""
    from convmatrix.layers.reshape import Reshape

    tensors = call.arg(0, "tensors")
    if not isinstance(tensors, list | tuple) or not tensors or not all(
            isinstance(t, Traced) for t in tensors):
        raise _Refused("stacks values of which some do not depend on the input "
                       "(constants inside a stack are not read)")
    shape = tensors[0].shape
    dim = call.arg(1, "dim", 0)
    axis = int(dim) % (len(shape) + 2)
    if axis == 0:
        raise _Refused("stacks along the batch axis")
    axis -= 1
    grown = (*shape[:axis], 1, *shape[axis:])
    steps: list[tuple[Any, tuple[str | int, ...]]] = [
        (Reshape(t.shape, grown), (t.name,)) for t in tensors]
    steps.append((Cat(axis), tuple(range(len(tensors)))))
    return _Steps(tuple(steps))


def _permutation(call: FxCall, source: Traced, order: Sequence[Any]) -> Produced:
    """A reordering of the tensor's axes (batch axis first) as a :class:`~convmatrix.Permute`."""
    from convmatrix.layers.permute import Permute

    ndim = len(source.shape) + 1
    if len(order) != ndim or any(isinstance(d, bool) or not isinstance(d, int) for d in order):
        raise _Refused(f"reorders the axes as {tuple(order)}, which is not a permutation of "
                       f"the {ndim} axes")
    dims = [d % ndim for d in order]
    if sorted(dims) != list(range(ndim)):
        raise _Refused(f"reorders the axes as {tuple(order)}, which is not a permutation of "
                       f"the {ndim} axes")
    if dims[0] != 0:
        raise _Refused(f"moves the batch axis ({tuple(order)})")
    axes = [d - 1 for d in dims[1:]]
    if axes == sorted(axes):
        return source
    return Permute(source.shape, axes), (source.name,)


def _permute(call: FxCall) -> Produced:
    """``x.permute(…)``/``torch.permute``: a :class:`~convmatrix.Permute` of the sample."""
    return _permutation(call, _single(call), _dims(call, "dims"))


def _transpose(call: FxCall) -> Produced:
    """``x.transpose(d0, d1)`` (``swapaxes``, ``swapdims``): two axes exchanged."""
    source = _single(call)
    ndim = len(source.shape) + 1
    first, second = call.arg(1, "dim0"), call.arg(2, "dim1")
    order = list(range(ndim))
    try:
        order[first], order[second] = order[second], order[first]
    except (IndexError, TypeError):
        raise _Refused(f"exchanges axes {first!r} and {second!r} of {ndim}") from None
    return _permutation(call, source, order)


def _movedim(call: FxCall) -> Produced:
    """``torch.movedim(x, source, destination)`` (``moveaxis``)."""
    source = _single(call)
    ndim = len(source.shape) + 1
    moved, where = call.arg(1, "source"), call.arg(2, "destination")
    moved = list(moved) if isinstance(moved, list | tuple) else [moved]
    where = list(where) if isinstance(where, list | tuple) else [where]
    try:
        moved = [int(d) % ndim for d in moved]
        where = [int(d) % ndim for d in where]
    except (TypeError, ValueError):
        raise _Refused(f"moves axes {moved!r} to {where!r}") from None
    order: list[int | None] = [None] * ndim
    for axis, position in zip(moved, where, strict=False):
        order[position] = axis
    rest = iter(d for d in range(ndim) if d not in moved)
    return _permutation(call, source, [next(rest) if d is None else d for d in order])


def _tile(call: FxCall) -> Produced:
    """``torch.tile(x, dims)``/``x.tile(dims)``: ``repeat`` with ones prepended to ``dims``."""
    source = _single(call)
    reps = [int(r) for r in _dims(call, "dims")]
    ndim = len(source.shape) + 1
    if len(reps) > ndim:
        raise _Refused(f"tiles {tuple(reps)}: more factors than the tensor's {ndim} axes adds "
                       f"axes before the batch axis")
    reps = [1] * (ndim - len(reps)) + reps
    if reps[0] != 1:
        raise _Refused(f"tiles the batch axis ({tuple(reps)})")
    return _tiles(source, reps[1:])


def _repeat_interleave(call: FxCall) -> Produced:
    """``x.repeat_interleave(r, dim)`` with a constant count: each entry ``r`` times in a row.

    An axis of 1 after ``dim``, ``r`` copies concatenated along it, the two axes merged. A
    tensor of counts is read when all counts are equal; ``dim=None`` (flattening the batch
    too) is refused.
    """
    from convmatrix.layers.reshape import Reshape

    source = _single(call)
    repeats, dim = call.arg(1, "repeats"), call.arg(2, "dim")
    if dim is None:
        raise _Refused("repeats without dim, which flattens the batch axis into the sample")
    counts = np.unique(_array(repeats).astype(np.int64).reshape(-1))
    if counts.size != 1 or counts[0] < 0:
        raise _Refused(f"repeats entries by the counts {_array(repeats).tolist()}; one "
                       f"constant count for every entry is read")
    axis = _sample_axis(call, source, dim, "repeats")
    count = int(counts[0])
    shape = source.shape
    if count == 1:
        return source
    if count == 0:
        raise _Refused("repeats every entry 0 times (an empty output)")
    grown = (*shape[:axis + 1], 1, *shape[axis + 1:])
    return _Steps(((Reshape(shape, grown), (source.name,)),
                   (Cat(axis + 1), (0,) * count),
                   (Reshape((*shape[:axis + 1], count, *shape[axis + 1:]),
                            call.output_shape()), (1,))))


def _unbind(call: FxCall) -> Produced:
    """``torch.unbind(x, dim)``: one slice per index, the axis dropped."""
    from convmatrix.layers.reshape import Reshape, Slice

    source = _single(call)
    axis = _sample_axis(call, source, call.arg(1, "dim", 0), "unbinds")
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

    source = _single(call)
    shifts, dims = call.arg(1, "shifts"), call.arg(2, "dims")
    if dims is None or (isinstance(dims, list | tuple) and not dims):
        raise _Refused("rolls without dims, which rolls the flattened batch")
    shifts = list(shifts) if isinstance(shifts, list | tuple) else [shifts]
    dims = list(dims) if isinstance(dims, list | tuple) else [dims]
    if len(shifts) != len(dims):
        raise _Refused(f"rolls by {tuple(shifts)} along {tuple(dims)}: one shift per dim")
    steps: list[tuple[Any, tuple[str | int, ...]]] = []
    current: str | int = source.name
    for shift, dim in zip(shifts, dims, strict=True):
        axis = _sample_axis(call, source, dim, "rolls")
        size = source.shape[axis]
        cut = size - int(shift) % size
        if cut == size:
            continue
        steps.append((Slice(source.shape, axis, cut, None), (current,)))
        steps.append((Slice(source.shape, axis, 0, cut), (current,)))
        steps.append((Cat(axis), (len(steps) - 2, len(steps) - 1)))
        current = len(steps) - 1
    return _Steps(tuple(steps)) if steps else source


def _t(call: FxCall) -> Produced:
    """``x.t()`` (``torch.t``): the two axes of a 2-D tensor exchanged (the batch axis moves)."""
    source = _single(call)
    order = list(range(len(source.shape) + 1))[::-1] if len(source.shape) < 2 else []
    return _permutation(call, source, order)


def _select(call: FxCall) -> Produced:
    """``aten.select(x, dim, index)`` (``x[:, i]`` in ``torch.export``): one index, axis dropped."""
    from convmatrix.layers.reshape import Reshape, Slice

    source = _single(call)
    axis = _sample_axis(call, source, call.arg(1, "dim"), "selects")
    index = int(call.arg(2, "index")) % source.shape[axis]
    piece = Slice(source.shape, axis, index, index + 1)
    return Sequential([piece, Reshape(piece.output_shape, call.output_shape())]), (source.name,)


def _index_select(call: FxCall) -> Produced:
    """``index_select(x, dim, index)`` with constant indices: runs of consecutive indices.

    Each run is one :class:`~convmatrix.Slice`, the runs concatenated (``torch.roll`` and
    ``repeat_interleave`` decompose into this in ``torch.export``).
    """
    from convmatrix.layers.reshape import Slice

    source = _single(call)
    axis = _sample_axis(call, source, call.arg(1, "dim"), "selects")
    index = _array(call.arg(2, "index")).astype(np.int64).reshape(-1) % source.shape[axis]
    if index.size == 0:
        raise _Refused("selects no index (an empty output)")
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    runs = [(int(run[0]), int(run[-1]) + 1) for run in np.split(index, breaks)]
    steps: list[tuple[Any, tuple[str | int, ...]]] = [
        (Slice(source.shape, axis, start, stop), (source.name,)) for start, stop in runs]
    if len(steps) == 1:
        return steps[0]
    steps.append((Cat(axis), tuple(range(len(runs)))))
    return _Steps(tuple(steps))


def _flip_side(call: FxCall) -> Produced:
    """``torch.fliplr`` (dim 1) and ``torch.flipud`` (dim 0: the batch axis, refused)."""
    return _flip(replace_args(call, (call.args[0], [1 if call.kind == "fliplr" else 0])))


def _mt(call: FxCall) -> Produced:
    """``x.mT`` (``aten.mT``): the last two axes exchanged."""
    source = _single(call)
    order = list(range(len(source.shape) + 1))
    order[-2:] = order[:-3:-1]
    return _permutation(call, source, order)


def _convolution(call: FxCall) -> Produced:
    """``aten.convolution`` (``torch.export``'s decomposed graphs): a conv or a transposed one.

    Its arguments: ``(input, weight, bias, stride, padding, dilation, transposed,
    output_padding, groups)``.
    """
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "transposed",
             "output_padding", "groups")
    x, weight, bias, stride, padding, dilation, transposed, output_padding, groups = (
        call.arg(i, name) for i, name in enumerate(names))
    if transposed:
        return _conv_transpose(replace_args(call, (x, weight, bias, stride, padding,
                                                   output_padding, groups, dilation)))
    return _conv(replace_args(call, (x, weight, bias, stride, padding, dilation, groups)))


def _matmul_weight(call: FxCall, source: Any, matrix: Any) -> Any:
    """The constant right factor of ``x @ W`` on a flat sample, as a ``(out, in)`` weight."""
    if isinstance(matrix, Traced):
        return None  # a product of two branches
    if not isinstance(source, Traced):
        raise _Refused("multiplies a constant by a value that depends on the input from the "
                       "right; only x @ W (the input on the left) is read")
    array = _array(matrix)
    if len(source.shape) != 1 or array.ndim != 2:
        raise _Refused(f"multiplies {source.shape} by a constant of shape {array.shape}; only "
                       f"a flat sample times a matrix is read")
    return array.T


def _matmul(call: FxCall) -> Produced:
    """``x @ W``, ``torch.mm``/``matmul`` with a constant ``W``: a :class:`~convmatrix.Linear`."""
    source = call.arg(0, "input")
    weight = _matmul_weight(call, source, call.arg(1, "other", call.kwargs.get("mat2")))
    if weight is None:
        return None
    return _linear(replace_args(call, (source, weight, None)))


def _addmm(call: FxCall) -> Produced:
    """``aten.addmm(b, x, W, beta, alpha)``: ``beta·b + alpha·(x @ W)`` (a decomposed Linear)."""
    bias, source = call.arg(0, "self"), call.arg(1, "mat1")
    if isinstance(bias, Traced):
        raise _Refused("adds a value that depends on the input as its bias; only a constant "
                       "bias is read")
    weight = _matmul_weight(call, source, call.arg(2, "mat2"))
    if weight is None:
        return None
    beta, alpha = float(call.kwargs.get("beta", 1)), float(call.kwargs.get("alpha", 1))
    out = call.output_shape()
    return _linear(replace_args(call, (source, alpha * weight, beta * _constant(
        call, bias, out, "bias"))))


def _instance_norm(call: FxCall) -> Produced:
    """``F.instance_norm``/``aten.instance_norm`` with running statistics: per-channel affine.

    By the input's own statistics (``use_input_stats=True``) it is not affine: not read here
    (``cm.linearize`` reads it).
    """
    source = _single(call)
    if hasattr(call.target, "_schema"):  # (input, weight, bias, mean, var, use_input_stats, ...)
        names = ("input", "weight", "bias", "running_mean", "running_var")
    else:  # F.instance_norm(input, running_mean, running_var, weight, bias, use_input_stats, ...)
        names = ("input", "running_mean", "running_var", "weight", "bias")
    values = {name: call.arg(i, name) for i, name in enumerate(names)}
    if call.arg(5, "use_input_stats", True):
        return None
    mean, var = values["running_mean"], values["running_var"]
    if mean is None or var is None:
        raise _Refused("has use_input_stats=False but no running statistics")
    weight, bias = values["weight"], values["bias"]
    return BatchNorm(source.shape, _array(mean), _array(var),
                     weight=None if weight is None else _array(weight),
                     bias=None if bias is None else _array(bias),
                     eps=float(call.arg(7, "eps", 1e-5))), (source.name,)


FX_TRANSLATORS: dict[str, Translator] = {
    "add": _add, "iadd": _add, "sub": _sub, "isub": _sub, "rsub": _rsub, "mul": _mul,
    "imul": _mul, "multiply": _mul, "div": _div, "truediv": _div, "itruediv": _div,
    "divide": _div, "neg": _neg, "negative": _neg, "pos": _pos,
    "cat": _cat, "concat": _cat, "concatenate": _cat, "chunk": _chunk, "split": _split,
    "split_with_sizes": _split, "slice": _narrow_slice, "getitem": _getitem,
    "view": _reshape, "reshape": _reshape, "flatten": _reshape, "squeeze": _reshape,
    "unsqueeze": _reshape, "_unsafe_view": _reshape, "contiguous": _alias, "clone": _alias,
    "alias": _alias, "dropout": _dropout, "feature_dropout": _dropout, "alpha_dropout": _dropout,
    "dropout1d": _dropout, "dropout2d": _dropout, "dropout3d": _dropout, "mean": _mean,
    "conv1d": _conv, "conv2d": _conv, "conv3d": _conv, "conv_transpose1d": _conv_transpose,
    "conv_transpose2d": _conv_transpose, "conv_transpose3d": _conv_transpose,
    "linear": _linear, "avg_pool1d": _avg_pool, "avg_pool2d": _avg_pool, "avg_pool3d": _avg_pool,
    "adaptive_avg_pool1d": _adaptive_avg_pool, "adaptive_avg_pool2d": _adaptive_avg_pool,
    "adaptive_avg_pool3d": _adaptive_avg_pool, "pad": _pad, "interpolate": _interpolate,
    "upsample": _interpolate, "batch_norm": _batch_norm,
    "_native_batch_norm_legit_no_training": _aten_batch_norm, "pixel_shuffle": _pixel_shuffle,
    "pixel_unshuffle": _pixel_unshuffle,
    "view_as": _reshape_as, "reshape_as": _reshape_as, "to": _cast, "float": _cast,
    "double": _cast, "type_as": _cast, "narrow": _narrow, "flip": _flip, "sum": _sum,
    "repeat": _repeat, "expand": _expand, "expand_as": _expand, "stack": _stack,
    "permute": _permute, "transpose": _transpose, "swapaxes": _transpose, "swapdims": _transpose,
    "movedim": _movedim, "moveaxis": _movedim, "detach": _alias, "tile": _tile,
    "repeat_interleave": _repeat_interleave, "unbind": _unbind, "roll": _roll, "t": _t,
    "numpy_T": _t, "convolution": _convolution, "addmm": _addmm, "mm": _matmul,
    "matmul": _matmul, "instance_norm": _instance_norm, "select": _select,
    "index_select": _index_select, "fliplr": _flip_side, "flipud": _flip_side, "mT": _mt,
}
"""Operation name → translator (see :class:`FxCall` for the name: a function's or method's
``__name__``, an ``aten`` operator's base name, in-place forms without the ``_``)."""

def _module_linear(call: FxCall) -> Produced:
    module = call.module
    return _linear(replace_args(call, (call.args[0], module.weight, module.bias)))


def _module_adaptive_avg_pool(call: FxCall) -> Produced:
    return _adaptive_avg_pool(replace_args(call, (call.args[0], call.module.output_size)))


def replace_args(call: FxCall, args: tuple[Any, ...]) -> FxCall:
    """The call with other arguments (a module read as its functional form)."""
    from dataclasses import replace

    return replace(call, args=args, kwargs={})


FX_MODULE_TRANSLATORS: dict[str, Translator] = {
    "Linear": _module_linear, "Flatten": _reshape, "Unflatten": _reshape,
    **{f"AdaptiveAvgPool{n}d": _module_adaptive_avg_pool for n in (1, 2, 3)},
}
"""Module class name → translator, for modules the module reader does not read (their
functional form: ``nn.Linear`` as ``F.linear``, ``nn.AdaptiveAvgPool2d`` as its function)."""

_NON_AFFINE_HINT = "is not affine; cm.linearize(model, x) reads it as its Jacobian at a point x"
_NOT_LINEARIZED = "is not affine, and cm.linearize does not read it either"
_PRODUCT = "multiplies two values that depend on the input (a product of branches): not affine"


def _kind(node: Any, module: Any) -> tuple[str, bool]:
    """The operation's name and whether it is in place."""
    target = node.target
    if node.op == "call_module":
        return type(module).__name__, False
    if node.op == "call_method":
        name = str(target)
    elif hasattr(target, "_schema"):
        name = target._schema.name.split("::")[-1]
    else:
        name = getattr(target, "__name__", str(target))
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
    inplace = name.endswith("_") and not name.startswith("_") and name != "_"
    if name in ("iadd", "isub", "imul", "itruediv", "setitem"):
        inplace = True
    return (name[:-1] if inplace and name.endswith("_") else name), inplace


def _inplace_flag(node: Any, module: Any) -> bool:
    """A module or function told to write in place (``inplace=True``, also positionally).

    ``nn.ReLU(inplace=True)``, ``F.relu(y, inplace=True)``, ``F.relu(y, True)``.
    """
    if node.op == "call_module":
        return getattr(module, "inplace", False) is True
    if node.op != "call_function":
        return False
    if node.kwargs.get("inplace") is True:
        return True
    try:
        names = list(inspect.signature(node.target).parameters)
    except (TypeError, ValueError):
        return False
    if "inplace" not in names:
        return False
    index = names.index("inplace")
    return len(node.args) > index and node.args[index] is True


@dataclass
class _Trace:
    """A traced module kept for the next read: the key it was traced under, and checks done."""

    key: tuple[Any, ...]
    gm: Any
    differs: dict[tuple[Any, ...], bool] = field(default_factory=dict)


_TRACES: weakref.WeakKeyDictionary[Any, _Trace] = weakref.WeakKeyDictionary()
"""module → its trace: a module is traced once while its submodules are the same objects with
the same plain settings (``training``, flags such as ``inplace``), so reading or linearising it
at many points traces once and checks the trace once."""


def _trace_key(module: Any) -> tuple[Any, ...]:
    """What a trace depends on besides the classes: the submodules and their plain attributes."""
    plain = (bool, int, float, str, type(None))
    return tuple((name, id(sub), tuple(sorted((k, v) for k, v in vars(sub).items()
                                              if isinstance(v, plain))))
                 for name, sub in module.named_modules())


def _graph_module(module: Any, parameter: str = "module") -> tuple[Any, _Trace | None]:
    """A GraphModule for the module: the user's own, an ExportedProgram's, or a (cached) trace.

    The second item is the cache entry of a trace made here (None for the user's own graph).
    """
    import torch

    if any(cls.__name__ == "ExportedProgram" for cls in type(module).__mro__):
        return module.module(), None
    if isinstance(module, torch.fx.GraphModule):
        return module, None
    if not isinstance(module, torch.nn.Module):
        raise ConvMatrixError(
            f"`{parameter}` (={type(module).__name__}) is not a torch.nn.Module, GraphModule or "
            f"ExportedProgram")
    key = _trace_key(module)
    try:
        cached = _TRACES.get(module)
    except TypeError:  # pragma: no cover - an unhashable module
        cached = None
    if cached is not None and cached.key == key:
        return cached.gm, cached
    try:
        gm = torch.fx.symbolic_trace(module)
    except Exception as error:  # TraceError, data-dependent control flow, ...
        raise ConvMatrixError(
            f"`{parameter}` ({type(module).__name__}) could not be traced by torch.fx, so its "
            f"graph cannot be read: {type(error).__name__}: {str(error).splitlines()[0]}"
        ) from None
    entry = _Trace(key, gm)
    try:
        _TRACES[module] = entry
    except TypeError:  # pragma: no cover
        pass
    return gm, entry


def _holder_class() -> Any:
    """An ``nn.Module`` holding the roots whose forward is a given function (made once)."""
    global _HOLDER
    if _HOLDER is None:
        import torch

        class Holder(torch.nn.Module):  # type: ignore[misc]
            def __init__(self, roots: list[Any], fn: Callable[[], Any]) -> None:
                super().__init__()
                self.roots = torch.nn.ModuleList(roots)
                self.fn = fn

            def forward(self) -> Any:
                return self.fn()

        _HOLDER = Holder
    return _HOLDER


_HOLDER: Any = None


def _in_dtype(root: Any, dtype: Any, fn: Callable[[], Any]) -> Any:
    """``fn()`` with the floating parameters and buffers of ``root`` seen in ``dtype``.

    ``torch.func.functional_call`` swaps converted copies in for the call only, each
    (module, attribute) once even when a module is reachable by two paths, so the modules are
    exactly as before afterwards (no ``.double()`` on the user's model). A module already in
    ``dtype`` is called directly.
    """
    import torch

    holder = _holder_class()([root], fn)
    state: dict[str, Any] = {}
    converted: dict[int, Any] = {}
    for path, sub in holder.named_modules():  # each module once
        for name, tensor in (*sub.named_parameters(recurse=False, remove_duplicate=False),
                             *sub.named_buffers(recurse=False, remove_duplicate=False)):
            if tensor is None or not tensor.is_floating_point() or tensor.dtype == dtype:
                continue
            if id(tensor) not in converted:  # tied tensors stay tied
                converted[id(tensor)] = tensor.detach().to(dtype)
            state[f"{path}.{name}" if path else name] = converted[id(tensor)]
    if not state:
        return fn()
    return torch.func.functional_call(holder, state, (), tie_weights=False)


def _trace_differs(module: Any, gm: Any, shape: tuple[int, ...], dtype: Any) -> bool:
    """Whether fx's trace computes something else than the module's own forward.

    ``torch.fx`` records ``a += b`` on a traced value as ``a + b`` (a Proxy has no in-place
    operators): when ``a`` is used again later the module reads the changed value, the trace
    the old one. Both run on one seeded random sample.
    """
    import torch

    probe = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0), dtype=dtype)
    with torch.no_grad():
        try:
            want, got = module(probe.clone()), gm(probe.clone())
        except Exception:  # the module's own failure is reported where the trace runs
            return False
    while isinstance(want, list | tuple) and len(want) == 1:
        want = want[0]
    while isinstance(got, list | tuple) and len(got) == 1:
        got = got[0]
    if not isinstance(want, torch.Tensor) or not isinstance(got, torch.Tensor):
        return False
    if want.shape != got.shape:
        return True
    finite = want[torch.isfinite(want)]
    scale = float(finite.abs().max()) if finite.numel() else 0.0
    return not torch.allclose(got, want, rtol=1e-5, atol=1e-6 * max(scale, 1.0), equal_nan=True)


def _input_shape(input_shape: Any) -> tuple[int, ...]:
    if isinstance(input_shape, str) or not hasattr(input_shape, "__iter__"):
        raise ConvMatrixError(
            f"`input_shape` (={input_shape!r}) must be a tuple (C, *spatial) for one sample")
    shape = []
    for v in input_shape:
        if isinstance(v, bool) or not hasattr(v, "__index__") or int(v) < 1:
            raise ConvMatrixError(
                f"`input_shape` (={tuple(input_shape)!r}) must hold positive ints, got {v!r}")
        shape.append(int(v))
    return tuple(shape)


def _module_dtype(module: Any) -> Any:
    import torch

    for tensor in module.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    for tensor in module.buffers():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


def _run(gm: Any, sample: Any) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """Every node's value on ``sample`` (a batch of one): as produced, and as a snapshot.

    The first dict holds the tensors the graph produced (their memory tells which values alias
    each other); the second holds each node's value as it was when the node ran: before a node
    that may write in place (``nn.ELU(inplace=True)``, ``out += identity``, ``add_``,
    ``setitem``, ``out=``) every earlier value sharing memory with its arguments is copied, so
    the write cannot change what an earlier node's value was — the Jacobian of an activation is
    taken at its input, not at its output. Other values are not copied.
    """
    import torch

    values: dict[Any, Any] = {}
    snapshots: dict[Any, Any] = {}

    def snapshot(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.detach().clone()
        if type(value) in (list, tuple):
            return type(value)(snapshot(v) for v in value)
        if isinstance(value, tuple):  # torch.return_types (values, indices) and the like
            try:
                return type(value)([snapshot(v) for v in value])
            except TypeError:
                return value
        return value

    from torch.fx.node import map_arg

    modules = dict(gm.named_modules())

    def load(node: Any) -> Any:
        return values[node]

    copied: set[Any] = set()
    with torch.no_grad():  # torch.fx.Interpreter's rules, without its per-node bookkeeping
        for node in gm.graph.nodes:
            args = map_arg(node.args, load)
            kwargs = map_arg(node.kwargs, load)
            if _may_write(node, modules, args, kwargs):
                memory = _storages([*args, *kwargs.values()], torch)
                for earlier, value in values.items():
                    if earlier not in copied and memory & _storages(value, torch):
                        snapshots[earlier] = snapshot(value)
                        copied.add(earlier)
            if node.op == "placeholder":
                result = sample
            elif node.op == "get_attr":
                result = gm
                for part in str(node.target).split("."):
                    result = getattr(result, part)
            elif node.op == "call_function":
                result = node.target(*args, **kwargs)
            elif node.op == "call_method":
                result = getattr(args[0], node.target)(*args[1:], **kwargs)
            elif node.op == "call_module":
                result = modules[node.target](*args, **kwargs)
            else:  # output
                break
            values[node] = snapshots[node] = result
    return values, snapshots


_WRITING = frozenset({"iadd", "isub", "imul", "itruediv", "ifloordiv", "imod", "ipow", "iand",
                      "ior", "ixor", "ilshift", "irshift", "imatmul", "setitem", "__setitem__"})


def _may_write(node: Any, modules: dict[str, Any], args: Any, kwargs: Any) -> bool:
    """Whether a node may write into one of its arguments (conservatively: when in doubt, yes)."""
    if node.op == "call_module":
        return bool(getattr(modules.get(node.target), "inplace", False))
    if node.op not in ("call_function", "call_method"):
        return False
    if kwargs.get("inplace") or kwargs.get("out") is not None or any(
            a is True for a in args[1:]):
        return True
    target = node.target
    if isinstance(target, str):
        name = target
    elif hasattr(target, "_schema"):
        name = target._schema.name.split("::")[-1] + ("_" if "!" in str(target._schema) else "")
    else:
        name = getattr(target, "__name__", "")
    return name in _WRITING or (name.endswith("_") and not name.endswith("__"))


def _holds_tensor(value: Any, torch: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, list | tuple) and any(_holds_tensor(v, torch) for v in value)


def _mutated_later(node: Any, target: Any, order: dict[Any, int]) -> bool:
    return any(order[user] > order[node] for user in target.users if user is not node)


def _storages(value: Any, torch: Any) -> set[int]:
    if isinstance(value, torch.Tensor):
        return {value.untyped_storage().data_ptr()}
    if isinstance(value, list | tuple):
        return set().union(*(_storages(v, torch) for v in value)) if value else set()
    return set()


def _alias_used_later(node: Any, target: Any, values: dict[Any, Any], traced: dict[Any, Any],
                      order: dict[Any, int], torch: Any) -> Any:
    """A traced value sharing ``target``'s memory, read after the in-place ``node``.

    A view (a slice, a chunk, ``view``, an ``nn.Identity`` output) or its source, or the input
    itself: the in-place write changes it, which the graph would not see.
    """
    memory = _storages(values.get(target), torch)
    if not memory:
        return None
    for other in traced:
        if other is target or other is node or not (_storages(values.get(other), torch)
                                                    & memory):
            continue
        if other.op == "placeholder" or _mutated_later(node, other, order):
            return other
    return None


@dataclass(frozen=True)
class FxWalk:
    """What :func:`walk_fx` read: the graph, and the network's value where it ran.

    Attributes
    ----------
    graph : Graph
        One node per fx node that depends on the input (its input named after the fx
        placeholder).
    value : torch.Tensor
        The network's output on the point (on zeros without one), with its batch axis of 1,
        in the dtype the network ran in.
    """

    graph: Graph
    value: Any = field(repr=False)


def read_fx(module: Any, input_shape: Sequence[int], *, x: Any = None,
            jacobian: JacobianTranslator | None = None,
            module_reader: ModuleReader | None = None,
            nonlinear_modules: frozenset[str] = frozenset(),
            linearized: frozenset[str] = frozenset(), dtype: str | None = None,
            parameter: str = "module") -> Graph:
    """A traced torch network as one :class:`~convmatrix.Graph` (affine, or linearised at ``x``).

    Parameters
    ----------
    module : torch.nn.Module, torch.fx.GraphModule or torch.export.ExportedProgram
        One tensor input and one tensor output; traced with ``torch.fx.symbolic_trace`` unless
        it is a graph already (a trace is kept for the next read of the same module).
    input_shape : sequence of int
        One sample (no batch axis).
    x : array_like, optional
        The point, one sample with its batch axis of 1; the network runs on it (else on zeros)
        and ``jacobian`` reads the non-affine nodes there.
    jacobian : JacobianTranslator, optional
        Linearisation's translator for nodes no affine translator reads (only with ``x``); it is
        asked first for the modules in ``nonlinear_modules``.
    module_reader : callable, optional
        ``module_reader(module, input_shape)`` → the layer of one leaf module, or None when its
        class is not read (:func:`convmatrix.adapters.torch.read_module`, which
        :func:`convmatrix.adapters.torch.read_graph` passes); without it every module is
        refused.
    nonlinear_modules : frozenset of str, optional
        Module class names that are not affine (never handed to ``module_reader``).
    linearized : frozenset of str, optional
        Module classes and operation names :func:`convmatrix.linearize` reads: a refusal of
        one of them points to it.
    dtype : str, optional
        Run the network in this torch dtype (``"float64"``), its floating parameters and
        buffers converted for the run only (the module is untouched); default: the module's
        own.
    parameter : str, optional
        The name of the caller's parameter holding the module, for messages.

    Returns
    -------
    Graph
        One node per fx node that depends on the input; ``graph(x) == module(x[None])[0]``.

    Raises
    ------
    ConvMatrixError
        An fx trace error (data-dependent control flow), several inputs or outputs, an
        in-place operation on the input or on a value used again later, or a node no
        translator reads (a non-linear module, a product of two branches, a softmax) — naming
        the node, its position in the graph and its operation.

    Examples
    --------
    >>> import torch
    >>> class Residual(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.conv = torch.nn.Conv1d(1, 1, 3, padding=1, bias=False)
    ...         torch.nn.init.ones_(self.conv.weight)
    ...     def forward(self, x):
    ...         return self.conv(x) + x
    >>> from convmatrix.adapters.torch import read_module
    >>> graph = read_fx(Residual(), (1, 4), module_reader=read_module)
    >>> graph
    Graph(2 nodes, 1×4 → 1×4)
    >>> graph.matrix().toarray()
    array([[2., 1., 0., 0.],
           [1., 2., 1., 0.],
           [0., 1., 2., 1.],
           [0., 0., 1., 2.]], dtype=float32)
    """
    return walk_fx(module, input_shape, x=x, jacobian=jacobian, module_reader=module_reader,
                   nonlinear_modules=nonlinear_modules, linearized=linearized, dtype=dtype,
                   parameter=parameter).graph


def walk_fx(module: Any, input_shape: Sequence[int], *, x: Any = None,
            jacobian: JacobianTranslator | None = None,
            module_reader: ModuleReader | None = None,
            nonlinear_modules: frozenset[str] = frozenset(),
            linearized: frozenset[str] = frozenset(), dtype: str | None = None,
            parameter: str = "module") -> FxWalk:
    """:func:`read_fx`, also returning the network's value at the point (an :class:`FxWalk`).

    The parameters are :func:`read_fx`'s; :func:`convmatrix.linearize` uses the value as
    ``f(x)``.

    Examples
    --------
    >>> import torch
    >>> class Double(torch.nn.Module):
    ...     def forward(self, x):
    ...         return 2 * x.flatten(1)
    >>> walk = walk_fx(Double(), (2, 2), x=torch.ones(1, 2, 2), dtype="float64")
    >>> walk.graph, walk.value
    (Graph(2 nodes, 2×2 → 4), tensor([[2., 2., 2., 2.]], dtype=torch.float64))
    """
    import torch

    shape = _input_shape(input_shape)
    gm, entry = _graph_module(module, parameter)
    own = _module_dtype(gm)
    run_dtype = own if dtype is None else getattr(torch, dtype)
    walk = _in_dtype(gm, run_dtype, lambda: _walk(
        module, gm, shape, x, jacobian, module_reader, nonlinear_modules, linearized,
        run_dtype, parameter))
    if gm is not module and isinstance(module, torch.nn.Module) and _differs(
            entry, module, gm, shape, own):
        raise ConvMatrixError(
            f"`{parameter}` ({type(module).__name__}): its torch.fx trace computes something "
            f"else than its forward (an in-place update such as `a += b` of a value used again "
            f"later, which fx records as `a + b`); write that update out of place")
    return walk


def _walk(module: Any, gm: Any, shape: tuple[int, ...], x: Any,
          jacobian: JacobianTranslator | None, module_reader: ModuleReader | None,
          nonlinear_modules: frozenset[str], linearized: frozenset[str], dtype: Any,
          parameter: str) -> FxWalk:
    import torch

    if x is None:
        sample = torch.zeros((1, *shape), dtype=dtype)
    else:
        sample = torch.as_tensor(np.asarray(to_numpy(x)) if not isinstance(x, torch.Tensor)
                                 else x.detach()).to(dtype)
        if tuple(sample.shape) != (1, *shape):
            raise ConvMatrixError(
                f"`x` has shape {tuple(sample.shape)}; give one sample with its batch axis: "
                f"{(1, *shape)}")
        if isinstance(x, torch.Tensor) and sample.data_ptr() == x.data_ptr():
            sample = sample.clone()  # the network may write into its input: never into x
    nodes = list(gm.graph.nodes)
    order = {node: index for index, node in enumerate(nodes)}
    placeholders = [node for node in nodes if node.op == "placeholder"]
    if len(placeholders) != 1:
        raise ConvMatrixError(
            f"`{parameter}` has {len(placeholders)} inputs ("
            f"{', '.join(n.name for n in placeholders)}); a graph is read with exactly one")
    try:
        values, snapshots = _run(gm, sample)
    except Exception as error:
        text = str(error).splitlines()[0] if str(error) else ""
        hint = ("; a torch.export program runs only on inputs shaped like its example: export "
                "it with one sample (batch axis of 1) of this shape, or with dynamic shapes"
                ) if "Guard failed" in text else ""
        raise ConvMatrixError(
            f"`{parameter}` ({type(module).__name__}) fails on a sample of shape "
            f"{(1, *shape)}: {type(error).__name__}: {text}{hint}") from None
    placeholder = placeholders[0]
    traced: dict[Any, Any] = {placeholder: Traced(placeholder.name, shape)}
    at_point: dict[str, Any] = {placeholder.name: snapshots[placeholder]}
    built: dict[str, Node] = {}
    modules = dict(gm.named_modules())
    output_node = None
    point = x is not None and jacobian is not None
    for position, node in enumerate(nodes):
        if node.op in ("placeholder", "get_attr"):
            continue
        if node.op == "output":
            output_node = node
            break
        module_ = modules.get(node.target) if node.op == "call_module" else None
        depends = any(arg in traced for arg in node.all_input_nodes)
        if not depends:
            continue  # a constant (x.size(0) too): its value is read where it is used
        kind, inplace = _kind(node, module_)
        inplace = inplace or _inplace_flag(node, module_)
        if not inplace and not _holds_tensor(values.get(node), torch):
            continue

        def convert(value: Any) -> Any:
            if isinstance(value, torch.fx.Node):
                return traced[value] if value in traced else snapshots.get(value)
            if isinstance(value, list | tuple):
                return type(value)(convert(v) for v in value)
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            return value

        call = FxCall(node.name, position, node.op, node.target, kind, module_,
                      tuple(convert(a) for a in node.args),
                      {k: convert(v) for k, v in node.kwargs.items()}, at_point,
                      snapshots.get(node), inplace, built)
        if kind.startswith("_guards") or (node.op == "call_module" and values.get(node) is None
                                           and module_ is not None
                                           and "guard" in node.name):
            continue  # torch.export's input guards: no value
        if kind == "getitem" and not node.users:
            continue  # an output nobody reads (torch.export keeps a max pool's indices)
        if inplace:
            _check_inplace(call, node, placeholder, values, traced, order, torch)
            if not _holds_tensor(values.get(node), torch):
                continue  # setitem into a value nobody reads again: no value of its own
        try:
            produced = _translate(call, module_reader, nonlinear_modules, linearized,
                                  jacobian if point else None)
            traced[node] = found = _record(call, produced, built)
        except _Refused as refusal:
            raise ConvMatrixError(f"{call.where()}: {refusal}") from None
        except ConvMatrixError as error:
            raise ConvMatrixError(f"{call.where()}: {error}") from None
        if isinstance(found, Traced):
            at_point.setdefault(found.name, snapshots.get(node))
    if output_node is None:  # pragma: no cover - every fx graph ends in an output
        raise ConvMatrixError(f"`{parameter}`'s graph has no output")
    result = output_node.args[0]
    while isinstance(result, list | tuple):
        if len(result) != 1:
            raise ConvMatrixError(
                f"`{parameter}` returns {len(result)} values; a graph is read with exactly one "
                f"output")
        result = result[0]
    if not isinstance(result, torch.fx.Node) or result not in traced or not isinstance(
            traced[result], Traced):
        raise ConvMatrixError(
            f"`{parameter}`'s output ({result!r}) does not depend on its input or is not one "
            f"tensor")
    graph = Graph(shape, list(built.values()), traced[result].name, input=placeholder.name)
    return FxWalk(graph, snapshots[result])


def _differs(entry: _Trace | None, module: Any, gm: Any, shape: tuple[int, ...],
             dtype: Any) -> bool:
    """:func:`_trace_differs`, asked once per cached trace, shape and dtype."""
    if entry is None:
        return _trace_differs(module, gm, shape, dtype)
    key = (shape, dtype)
    if key not in entry.differs:
        entry.differs[key] = _trace_differs(module, gm, shape, dtype)
    return entry.differs[key]


def _check_inplace(call: FxCall, node: Any, placeholder: Any, values: dict[Any, Any],
                   traced: dict[Any, Any], order: dict[Any, int], torch: Any) -> None:
    """Refuse an in-place write the graph would not see (into the input, or read later)."""
    target = node.args[0] if node.args else None
    if target is placeholder and isinstance(target, torch.fx.Node):
        raise ConvMatrixError(
            f"{call.where()} writes in place into the network's input "
            f"{target.name!r}; in-place operations on the input are not read")
    if isinstance(target, torch.fx.Node) and _mutated_later(node, target, order):
        raise ConvMatrixError(
            f"{call.where()} writes in place into {target.name!r}, which is used "
            f"again later; the graph would see the changed value")
    alias = (_alias_used_later(node, target, values, traced, order, torch)
             if isinstance(target, torch.fx.Node) else None)
    if alias is not None:
        raise ConvMatrixError(
            f"{call.where()} writes in place into {node.args[0].name!r}, which shares "
            f"memory with {alias.name!r} (a view of it or its source), used "
            f"{'as the network input' if alias.op == 'placeholder' else 'again later'};"
            f" in-place writes through views are not read")


def _translate(call: FxCall, module_reader: ModuleReader | None, nonlinear: frozenset[str],
               linearized: frozenset[str], jacobian: JacobianTranslator | None) -> Produced:
    """The node's translation: affine translators first, the Jacobian translator at a point.

    A module the caller calls non-linear goes to the Jacobian translator first, then to the
    module reader (which reads classes that are affine in some settings, such as an
    ``InstanceNorm`` with running statistics, and answers None for the others); refusals say
    whether ``cm.linearize`` reads what ``from_torch`` refuses.
    """
    produced = None
    if call.op == "call_module":
        if call.kind in nonlinear and jacobian is not None:
            answer = jacobian(call)
            if answer is not None:
                return _jacobian_nodes(call, answer)
        if module_reader is not None and (call.kind not in nonlinear or len(call.traced) == 1):
            source = _single(call)  # a non-linear class may be affine as set (InstanceNorm)
            layer = module_reader(call.module, source.shape)
            produced = None if layer is None else (layer, (source.name,))
        if produced is None and call.kind in FX_MODULE_TRANSLATORS:
            produced = FX_MODULE_TRANSLATORS[call.kind](call)
    elif jacobian is not None and call.kind in _GRADIENT_STOPS:
        answer = jacobian(call)  # at a point: torch's autograd sees a constant
        if answer is not None:
            return _jacobian_nodes(call, answer)
    if call.op != "call_module":
        translator = FX_TRANSLATORS.get(call.kind)
        if translator is not None:
            produced = translator(call)
    if produced is not None:
        return produced
    product = call.kind in _PRODUCTS and len(call.traced) > 1
    if jacobian is not None:
        if call.op != "call_module" or call.kind not in nonlinear:
            answer = jacobian(call)
            if answer is not None:
                return _jacobian_nodes(call, answer)
        if product:
            raise _Refused(f"{_PRODUCT}, and cm.linearize does not read products of branches")
        raise _Refused(f"{call.kind} is neither affine nor a non-linearity cm.linearize reads "
                       f"(element-wise activations, max pooling, GroupNorm, LayerNorm, "
                       f"InstanceNorm)")
    if product:
        raise _Refused(f"{_PRODUCT}, and cm.linearize does not read products of branches "
                       f"either")
    if call.op == "call_module":
        if call.kind in linearized:
            raise _Refused(f"{call.kind} {_NON_AFFINE_HINT}")
        if call.kind in nonlinear:
            raise _Refused(f"{call.kind} {_NOT_LINEARIZED}")
        raise _Refused(f"{call.kind} is not a layer convmatrix can read")
    if call.kind in linearized:
        raise _Refused(f"{call.kind} {_NON_AFFINE_HINT}")
    if call.kind in _KNOWN_NONLINEAR:
        raise _Refused(f"{call.kind} {_NOT_LINEARIZED}")
    raise _Refused(f"{call.kind} is not an operation convmatrix reads as affine (read: "
                   f"{', '.join(sorted(k for k in FX_TRANSLATORS if k[0] != '_'))})")


_GRADIENT_STOPS = frozenset({"detach"})
"""Operations that are the identity on values but stop torch's gradients: ``from_torch``
reads them as the identity (the forward map); at a point the Jacobian translator is asked
first (``cm.linearize`` matches ``torch.func.jacrev``: a detached value is a constant)."""

_PRODUCTS = frozenset({"mul", "imul", "multiply", "mm", "matmul", "addmm", "bmm"})

_KNOWN_NONLINEAR = frozenset({
    "relu", "relu6", "leaky_relu", "prelu", "elu", "selu", "celu", "gelu", "silu", "mish",
    "sigmoid", "tanh", "hardtanh", "hardswish", "hardsigmoid", "softplus", "softsign",
    "softmax", "log_softmax", "max_pool1d", "max_pool2d", "max_pool3d", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "layer_norm", "group_norm", "instance_norm",
    "abs", "exp", "log", "sqrt", "pow", "clamp", "clip", "max", "min", "amax", "amin",
    "max_pool2d_with_indices", "threshold",
})


def _jacobian_nodes(call: FxCall, answer: Layer | Sequence[Layer]) -> Produced:
    inputs = call.traced
    if isinstance(answer, Layer):
        if len(inputs) != 1:
            raise _Refused(f"the Jacobian translator answered one layer for {len(inputs)} "
                           f"inputs")
        return answer, (inputs[0].name,)
    layers = list(answer)
    if len(layers) != len(inputs):
        raise _Refused(f"the Jacobian translator answered {len(layers)} layers for "
                       f"{len(inputs)} inputs")
    return ("sum-of", tuple(zip(layers, (t.name for t in inputs), strict=True)))


def _add_node(built: dict[str, Node], node: Node) -> None:
    built[node.name] = node


def _record(call: FxCall, produced: Produced, built: dict[str, Node]) -> Any:
    """Add the translated node(s) to ``built``; what the fx node's value maps to.

    A node whose value is a tuple (``chunk``, ``torch.max(x, dim)``'s values and indices)
    maps to a tuple with one :class:`Traced` per output read (None for one that is not, such
    as the indices), which ``getitem``/``getattr`` pick from.
    """
    if isinstance(produced, Traced):
        return produced
    if isinstance(produced, _Steps):
        names: list[str] = []
        for index, (op, inputs) in enumerate(produced.steps):
            name = call.name if index == len(produced.steps) - 1 else f"{call.name}.{index}"
            _add_node(built, Node(name, op, tuple(
                names[i] if isinstance(i, int) else i for i in inputs)))
            names.append(name)
        return Traced(call.name, call.output_shape())
    if isinstance(produced, tuple) and produced and produced[0] == "sum-of":
        names = []
        for index, (layer, source) in enumerate(produced[1]):
            name = f"{call.name}.d{index}"
            _add_node(built, Node(name, layer, (source,)))
            names.append(name)
        _add_node(built, Node(call.name, Sum((1.0,) * len(names)), tuple(names)))
        return Traced(call.name, call.output_shape())
    if isinstance(produced, tuple) and produced and isinstance(produced[0], tuple):
        parts = []
        for index, (op, inputs) in enumerate(produced):
            name = f"{call.name}.{index}"
            _add_node(built, Node(name, op, inputs))
            shape = op.output_shape if isinstance(op, Layer) else None
            parts.append(Traced(name, shape if shape is not None else ()))
        if not _is_tuple_value(call.output):
            return parts[0]
        return tuple(parts)
    op, inputs = produced
    _add_node(built, Node(call.name, op, tuple(inputs)))
    if _is_tuple_value(call.output):  # the first output read (torch.max(x, dim).values)
        first = _sample_shape(call.output[0], call)
        return (Traced(call.name, first), *([None] * (len(call.output) - 1)))
    return Traced(call.name, call.output_shape())


def _is_tuple_value(value: Any) -> bool:
    return isinstance(value, tuple | list)


def _pick(call: FxCall, container: tuple[Any, ...], index: Any) -> Traced:
    if not isinstance(index, int):
        raise _Refused(f"selects {index!r} from several outputs")
    if not -len(container) <= index < len(container) or container[index] is None:
        raise _Refused(f"takes output {index} of a node whose output {index} is not read (such "
                       f"as the indices of a max: integers, not a function convmatrix "
                       f"linearises)")
    found: Traced = container[index]
    return found


_plain_getitem = FX_TRANSLATORS["getitem"]


def _getitem_any(call: FxCall) -> Produced:
    source = call.args[0]
    if isinstance(source, tuple) and source and all(
            t is None or isinstance(t, Traced) for t in source):
        return _pick(call, source, call.args[1])
    return _plain_getitem(call)


_FIELDS = {"values": 0, "indices": 1}
"""The named outputs read by ``getattr`` (``torch.max(x, dim).values``)."""


def _getattr(call: FxCall) -> Produced:
    """``getattr(node, "values")`` of a node with several named outputs; ``x.mT``."""
    source, name = call.args[0], call.args[1] if len(call.args) > 1 else None
    if isinstance(source, tuple) and name in _FIELDS:
        return _pick(call, source, _FIELDS[name])
    if isinstance(source, Traced) and name == "mT":
        return _mt(call)
    if isinstance(source, Traced) and name == "T":  # every axis reversed: the batch moves
        return _permutation(call, source, list(range(len(source.shape) + 1))[::-1])
    raise _Refused(f"reads the attribute {name!r} of a value that depends on the input, which "
                   f"is not read")


FX_TRANSLATORS["getitem"] = _getitem_any
FX_TRANSLATORS["getattr"] = _getattr
_ = (math, operator)  # the arithmetic names FX_TRANSLATORS keys (operator.add is "add", ...)
