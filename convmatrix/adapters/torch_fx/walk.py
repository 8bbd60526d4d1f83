"""The torch.fx walker: :func:`read_fx` and :func:`walk_fx`, a traced graph as one Graph.

Every node that depends on the input is translated
(:func:`~convmatrix.adapters.torch_fx.translate.translate`) and recorded as one or more nodes of
a :class:`~convmatrix.Graph`; the rest are constants the translators read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convmatrix._arrays import to_numpy
from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.torch_fx.call import (
    FxCall,
    JacobianTranslator,
    ModuleReader,
    Produced,
    Refused,
    Steps,
    Traced,
    branch_node,
    sample_shape,
)
from convmatrix.adapters.torch_fx.run import (
    check_inplace,
    holds_tensor,
    inplace_flag,
    node_kind,
    run_graph,
)
from convmatrix.adapters.torch_fx.trace import (
    graph_module,
    in_dtype,
    module_dtype,
    trace_differs_once,
)
from convmatrix.adapters.torch_fx.translate import translate
from convmatrix.geometry.spec import as_sample_shape
from convmatrix.layers.base import Layer
from convmatrix.layers.graph import Graph, Node, Sum

__all__ = ["FxWalk", "read_fx", "walk_fx"]


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

    shape = as_sample_shape(input_shape, layout="(C, *spatial)")
    gm, entry = graph_module(module, parameter)
    own = module_dtype(gm)
    run_dtype = own if dtype is None else getattr(torch, dtype)
    walk = in_dtype(gm, run_dtype, lambda: _walk(
        module, gm, shape, x, jacobian, module_reader, nonlinear_modules, linearized,
        run_dtype, parameter))
    if gm is not module and isinstance(module, torch.nn.Module) and trace_differs_once(
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
        values, snapshots = run_graph(gm, sample)
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
        kind, inplace = node_kind(node, module_)
        inplace = inplace or inplace_flag(node, module_)
        if not inplace and not holds_tensor(values.get(node), torch):
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
            check_inplace(call, node, placeholder, values, traced, order, torch)
            if not holds_tensor(values.get(node), torch):
                continue  # setitem into a value nobody reads again: no value of its own
        try:
            produced = translate(call, module_reader, nonlinear_modules, linearized,
                                 jacobian if point else None)
            traced[node] = found = _record(call, produced, built)
        except Refused as refusal:
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
    if isinstance(produced, Steps):
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
            name = branch_node(call.name, index)
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
        first = sample_shape(call.output[0], call)
        return (Traced(call.name, first), *([None] * (len(call.output) - 1)))
    return Traced(call.name, call.output_shape())


def _is_tuple_value(value: Any) -> bool:
    return isinstance(value, tuple | list)
