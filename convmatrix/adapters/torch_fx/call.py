"""What every torch.fx translator sees and answers: :class:`FxCall`, :class:`Traced`, ...

The shared vocabulary of :mod:`convmatrix.adapters.torch_fx`: one fx node as a translator sees
it (:class:`FxCall`), a value that depends on the input (:class:`Traced`), what a translator
answers (:data:`Produced`), the hooks a caller plugs in (:data:`ModuleReader`,
:data:`JacobianTranslator`), and the small readers of arguments every family of translators
uses (:func:`single_traced`, :func:`as_array`, :func:`broadcast_constant`, :func:`sample_axis`,
:func:`dims_arg`). A translator refuses with ``raise Refused(message)``; the walker adds where.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convmatrix._arrays import to_numpy
from convmatrix.layers.base import Layer
from convmatrix.layers.graph import Node

__all__ = ["FxCall", "JacobianTranslator", "ModuleReader", "Produced", "Refused", "Steps",
           "Traced", "Translator", "as_array", "branch_node", "broadcast_constant", "dims_arg",
           "replace_args", "sample_axis", "sample_shape", "single_traced"]


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
        return sample_shape(self.output)  # the reader names the node

    def where(self) -> str:
        """``node 'name' (position N, call_function add)`` for messages."""
        return f"node {self.name!r} (position {self.position}, {self.op} {_target_text(self)})"


Produced = Any
"""What a translator returns: a :class:`Traced` (the node is an alias: ``clone``, eval
dropout), a ``(op, input names)`` pair (``op`` a Layer, Sum or Cat), a tuple of those (an
operation with several outputs: ``chunk``, ``split``), a ``Steps`` (several nodes for one
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
their maps are summed, the offsets of all of them added; layer ``i`` is the graph node
:func:`branch_node` ``(call.name, i)``), or None to refuse the node.
"""


class Refused(Exception):
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


def sample_shape(value: Any, call: FxCall | None = None) -> tuple[int, ...]:
    """One sample's shape of a traced value: its shape without the batch axis of 1.

    A value that is only its batch axis (``x.mean((1, 2, 3))``: one number per sample) is one
    sample of shape ``(1,)``, which broadcasts as torch broadcasts it with one sample. A value
    without a batch axis of 1 is refused (naming ``call``'s node when given).
    """
    shape = tuple(int(s) for s in getattr(value, "shape", ()))
    if not shape or shape[0] != 1:
        where = "" if call is None else f"{call.where()}: "
        raise Refused(f"{where}its value has shape {shape}, which has no batch axis of 1 "
                      f"(an operation across the batch axis is not a map of one sample)")
    return shape[1:] or (1,)


def as_array(value: Any) -> np.ndarray:
    """A constant argument (a Python number, a tensor) as a numpy array (numbers in float64)."""
    if isinstance(value, int | float | bool):
        return np.asarray(value, dtype=np.float64)
    return np.asarray(to_numpy(value))


def single_traced(call: FxCall) -> Traced:
    """The node's one argument that depends on the input (refused when it has several)."""
    traced = call.traced
    if len(traced) != 1:
        raise Refused(f"takes {len(traced)} values that depend on the input; the affine "
                      f"reading of {call.kind} takes one")
    return traced[0]


def broadcast_constant(call: FxCall, value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A constant operand broadcast onto one sample of ``shape`` (never across the batch)."""
    array = as_array(value)
    try:
        full = np.broadcast_to(array, (1, *shape)) if array.ndim > len(shape) else (
            np.broadcast_to(array, shape)[None])
    except ValueError:
        raise Refused(f"its constant {what} of shape {array.shape} does not broadcast onto one "
                      f"sample {shape}") from None
    if array.ndim > len(shape) + 1:
        raise Refused(f"its constant {what} of shape {array.shape} broadcasts the batch axis")
    return np.array(full[0])


def sample_axis(call: FxCall, source: Traced, dim: Any, what: str) -> int:
    """A torch dim of a batched tensor as an axis of one sample (the batch axis refused)."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise Refused(f"{what} along {dim!r}; a dim is an int")
    ndim = len(source.shape) + 1
    axis = dim % ndim
    if axis == 0:
        raise Refused(f"{what} along the batch axis")
    return axis - 1


def dims_arg(call: FxCall, name: str) -> list[Any]:
    """A dims argument given as a list, an int, or (methods) several ints."""
    if call.op == "call_method" and len(call.args) > 2:
        return list(call.args[1:])
    dims = call.arg(1, name)
    return list(dims) if isinstance(dims, list | tuple) else [dims]


@dataclass(frozen=True)
class Steps:
    """Several graph nodes for one fx node, in order; the last one is the node's value.

    ``steps`` holds ``(op, inputs)`` pairs; an input is a node name, or an int: the value of
    an earlier step of this node.
    """

    steps: tuple[tuple[Any, tuple[str | int, ...]], ...]


def branch_node(name: str, index: int) -> str:
    """The graph node holding a Jacobian translator's layer for the node's input ``index``.

    When the translator answers one layer per traced input, the node ``name`` is their
    :class:`~convmatrix.layers.graph.Sum` and layer ``index`` is the node ``branch_node(name,
    index)`` (so a translator can name what it made, e.g. its sites).

    Examples
    --------
    >>> branch_node("mul", 1)
    'mul.d1'
    """
    return f"{name}.d{index}"


def replace_args(call: FxCall, args: tuple[Any, ...]) -> FxCall:
    """The call with other arguments (a module read as its functional form)."""
    from dataclasses import replace

    return replace(call, args=args, kwargs={})
