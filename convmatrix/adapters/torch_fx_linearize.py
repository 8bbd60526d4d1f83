"""Linearising a torch model traced by ``torch.fx``: residual sums, concatenations, functions.

The model is traced (or taken as the ``GraphModule`` it already is) and run node by node on
the point, in float64. Each node that depends on the input becomes a node of a
:class:`~convmatrix.Graph`: a linear module as :func:`~convmatrix.from_torch` reads it, a
non-linearity as its Jacobian at its own input (:func:`~convmatrix.adapters.torch_jacobian.
torch_jacobian`), ``+``/``−`` of two branches as a :class:`~convmatrix.Sum`, ``torch.cat`` as a
:class:`~convmatrix.Cat`, a constant factor or shift as a :class:`~convmatrix.Scale`, a
reshape as a :class:`~convmatrix.Reshape`. Nodes that do not depend on the input (shapes,
constants) are only computed.
"""

from __future__ import annotations

import math
import operator
import weakref
from typing import Any

import numpy as np

from convmatrix._arrays import to_numpy
from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.torch import TORCH_READERS, from_torch
from convmatrix.adapters.torch_jacobian import is_jacobian_op, run_float64, torch_jacobian
from convmatrix.layers.base import Layer
from convmatrix.layers.graph import Cat, Graph, Node, Sum
from convmatrix.layers.linearization import Factor, Linearization, Site, constant_after

__all__ = ["linearize_fx"]

_ADD = {operator.add, operator.iadd}
_SUB = {operator.sub, operator.isub}
_MUL = {operator.mul, operator.imul}
_DIV = {operator.truediv, operator.itruediv}
_RESHAPE_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "view_as",
                    "reshape_as"}
_IDENTITY_METHODS = {"contiguous", "clone", "detach", "float", "double", "to"}


def _text(node: Any) -> str:
    target = node.target
    if node.op == "call_method":
        return f".{target}()"
    if node.op == "call_module":
        return f"{target}"
    module = getattr(target, "__module__", "") or ""
    name = getattr(target, "__name__", repr(target))
    if module == "_operator":
        return f"operator.{name}"
    return ("F." if module.endswith("functional") else "torch.") + name


class _FxLinearizer:
    """Walks an fx graph on a point, building the Graph nodes, factors and sites."""

    def __init__(self, gm: Any, point: Any) -> None:
        self.gm = gm
        self.point = point
        self.modules = dict(gm.named_modules())
        self.values: dict[str, Any] = {}
        self.names: dict[str, str] = {}  # fx node → Graph node (input-dependent tensors only)
        self.nodes: list[Node] = []
        self.factors: list[Factor] = []
        self.sites: list[Site] = []
        self.input_shape: tuple[int, ...] = tuple(point.shape[1:])
        self.constant: dict[str, np.ndarray | None] = {"input": None}  # by Graph node

    def where(self, node: Any, position: int) -> str:
        return f"node {node.name!r} ({_text(node)}, position {position} in the graph)"

    def add(self, node: Any, op: Layer | Sum | Cat, inputs: tuple[str, ...],
            site: Site | None = None) -> None:
        self.nodes.append(Node(node.name, op, inputs))
        self.names[node.name] = node.name
        self.constant[node.name] = self.constant_of(op, inputs)
        if isinstance(op, Sum):
            self.factors.append(Factor(node.name, None, inputs, None, "sum",
                                       tuple(float(c) for c in op.coefficients)))
        elif isinstance(op, Cat):
            self.factors.append(Factor(node.name, None, inputs, None, "cat"))
        else:
            self.factors.append(Factor(node.name, op, inputs, site))
        if site is not None:
            self.sites.append(site)

    def constant_of(self, op: Layer | Sum | Cat, inputs: tuple[str, ...]
                    ) -> np.ndarray | None:
        masks = [self.constant.get(name) for name in inputs]
        if isinstance(op, Sum):
            if any(mask is None for mask in masks):
                return None
            return np.logical_and.reduce([m for m in masks if m is not None])
        if isinstance(op, Cat):
            if all(mask is None for mask in masks):
                return None
            shapes = [self.nodes_shape(name) for name in inputs]
            return np.concatenate([np.zeros(shape, bool) if mask is None else mask
                                   for mask, shape in zip(masks, shapes, strict=True)],
                                  axis=op.axis)
        return constant_after(op, masks[0])

    def nodes_shape(self, name: str) -> tuple[int, ...]:
        for node in self.nodes:
            if node.name == name and isinstance(node.op, Layer):
                return node.op.output_shape
        fx_name = next(key for key, value in self.names.items() if value == name)
        return tuple(self.values[fx_name].shape[1:])

    def run(self) -> Linearization:
        import torch

        output: Any = None
        placeholders = 0
        for position, node in enumerate(self.gm.graph.nodes):
            if node.op == "placeholder":
                placeholders += 1
                if placeholders > 1:
                    raise ConvMatrixError(
                        f"`model` takes more than one input ({self.where(node, position)}): "
                        f"linearize reads models of one input")
                self.values[node.name] = self.point
                self.names[node.name] = "input"
            elif node.op == "get_attr":
                value = self.gm
                for part in node.target.split("."):
                    value = getattr(value, part)
                if isinstance(value, torch.Tensor) and value.is_floating_point():
                    value = value.detach().to(torch.float64)
                self.values[node.name] = value
            elif node.op == "output":
                output = node.args[0]
            else:
                self.visit(node, position)
        if not hasattr(output, "name") or output.name not in self.names:
            raise ConvMatrixError(
                "`model` has more than one output, or an output that does not depend on its "
                "input: linearize reads models with one tensor output")
        value = self.values[output.name]
        name = self.names[output.name]
        graph = Graph(self.input_shape, self.nodes, name)
        return Linearization(graph, to_numpy(self.point[0]), to_numpy(value[0].detach()),
                             self.sites, self.factors, "torch", output=name)

    def visit(self, node: Any, position: int) -> None:
        import torch
        from torch.fx.node import map_arg

        args = map_arg(node.args, lambda n: self.values[n.name])
        kwargs = map_arg(node.kwargs, lambda n: self.values[n.name])
        deps = [n for n in node.all_input_nodes if n.name in self.names]
        if not deps:  # a constant, a shape, ...: only computed
            self.values[node.name] = self.execute(node, args, kwargs)
            return
        where = self.where(node, position)
        if node.op == "call_function" and node.target in (getattr, operator.getitem) \
                and len(deps) == 1 and isinstance(self.values[deps[0].name], tuple) \
                and node.args[1] in ("values", 0):  # max(x, dim).values, max(x, dim)[0]
            self.values[node.name] = self.execute(node, args, kwargs)
            self.names[node.name] = self.names[deps[0].name]
            return
        tensor_deps = [n for n in deps if isinstance(self.values[n.name], torch.Tensor)]
        if not tensor_deps:  # e.g. x.size(): depends on the input's shape only
            self.values[node.name] = self.execute(node, args, kwargs)
            return
        try:
            self.translate(node, args, kwargs, tensor_deps, where)
        except ConvMatrixError as error:
            if str(error).startswith("node "):
                raise
            raise ConvMatrixError(f"{where}: {error}") from None

    def execute(self, node: Any, args: Any, kwargs: Any) -> Any:
        if node.op == "call_module":
            return run_float64(self.modules[node.target], *args)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        target = node.target
        inplace = {operator.iadd: operator.add, operator.isub: operator.sub,
                   operator.imul: operator.mul, operator.itruediv: operator.truediv}
        return inplace.get(target, target)(*args, **kwargs)

    def first(self, deps: list[Any], node: Any, where: str) -> Any:
        if len(deps) != 1 or node.args[0] is not deps[0]:
            raise ConvMatrixError(
                f"{where} depends on the input through {len(deps)} tensors "
                f"({', '.join(d.name for d in deps)}); convmatrix reads it only on its first "
                f"argument")
        return deps[0]

    def translate(self, node: Any, args: Any, kwargs: Any, deps: list[Any], where: str) -> None:
        import torch

        target = node.target
        if node.op == "call_module":
            module = self.modules[target]
            source = self.first(deps, node, where)
            z = self.values[source.name]
            name = type(module).__name__
            if is_jacobian_op(module):
                layer, site, out = torch_jacobian(module, z, name=node.name,
                                                  constant=self.constant.get(
                                                      self.names[source.name]))
                self.add(node, layer, (self.names[source.name],), site)
                self.values[node.name] = out.to(torch.float64)
                return
            if name in TORCH_READERS:
                layer = from_torch(module, tuple(z.shape[1:]))
                self.add(node, layer, (self.names[source.name],))
                self.values[node.name] = run_float64(module, z)
                return
            raise ConvMatrixError(
                f"{where} is a {name}: neither a linear layer convmatrix reads nor a "
                f"non-linearity it linearises")
        value = self.execute(node, args, kwargs)
        if _shape_query(node):  # x.size(), x.shape, x.dim(): the shape, not the values
            self.values[node.name] = value
            return
        jacobian_target = target
        if _is_jacobian_function(node, jacobian_target):
            source = self.first(deps, node, where)
            layer, site, out = torch_jacobian(jacobian_target, self.values[source.name],
                                              tuple(args[1:]), dict(kwargs), name=node.name,
                                              constant=self.constant.get(
                                                  self.names[source.name]))
            self.add(node, layer, (self.names[source.name],), site)
            self.values[node.name] = value if isinstance(value, tuple) else out.to(torch.float64)
            return
        self.values[node.name] = value
        self.linear(node, args, kwargs, deps, value, where)

    def linear(self, node: Any, args: Any, kwargs: Any, deps: list[Any], value: Any,
               where: str) -> None:
        import torch

        from convmatrix.layers.identity import Identity
        from convmatrix.layers.reshape import Reshape
        from convmatrix.layers.scale import Scale

        target = node.target
        if not isinstance(value, torch.Tensor):
            raise ConvMatrixError(f"{where} gives a {type(value).__name__}, not a tensor: "
                                  f"linearize follows one tensor from input to output")
        if value.shape[0] != 1:
            raise ConvMatrixError(f"{where} changes the batch axis to {tuple(value.shape)}")
        names = [self.names[d.name] for d in deps]
        shape = tuple(value.shape[1:])
        method = target if node.op == "call_method" else None
        if target in _ADD or target is torch.add or method in ("add", "add_"):
            self.arithmetic(node, args, kwargs, deps, names, shape, 1.0, where)
            return
        if target in _SUB or target is torch.sub or method in ("sub", "sub_"):
            self.arithmetic(node, args, kwargs, deps, names, shape, -1.0, where)
            return
        if target in _MUL or target is torch.mul or method in ("mul", "mul_"):
            self.product(node, args, deps, names, shape, where, divide=False)
            return
        if target in _DIV or target is torch.div or method in ("div", "div_"):
            self.product(node, args, deps, names, shape, where, divide=True)
            return
        if target in (operator.neg, torch.neg) or method == "neg":
            self.add(node, Scale(shape, -1.0), (names[0],))
            return
        if target is torch.cat or target is torch.concat:
            tensors = node.args[0] if node.args else node.kwargs["tensors"]
            if any(getattr(t, "name", None) not in self.names for t in tensors):
                raise ConvMatrixError(f"{where} concatenates a constant with the input's "
                                      f"branches: only branches of the input are read")
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
            ndim = value.dim()
            dim = int(dim) % ndim
            if dim == 0:
                raise ConvMatrixError(f"{where} concatenates along the batch axis")
            self.add(node, Cat(dim - 1), tuple(self.names[t.name] for t in tensors))
            return
        if target is torch.flatten or method in _RESHAPE_METHODS:
            source = self.first(deps, node, where)
            self.add(node, Reshape(tuple(self.values[source.name].shape[1:]), shape),
                     (self.names[source.name],))
            return
        if method in _IDENTITY_METHODS or target in (torch.clone,) or (
                getattr(target, "__name__", "") == "dropout"
                and kwargs.get("training", args[2] if len(args) > 2 else True) is not True):
            source = self.first(deps, node, where)
            self.add(node, Identity(shape), (self.names[source.name],))
            return
        if method == "mean" or target is torch.mean:
            self.mean(node, args, kwargs, deps, shape, where)
            return
        raise ConvMatrixError(
            f"{where} is not an operation convmatrix reads (linear layers, +, −, constant "
            f"× and ÷, torch.cat, reshapes, element-wise activations, max pooling, "
            f"normalisations)")

    def arithmetic(self, node: Any, args: Any, kwargs: Any, deps: list[Any], names: list[str],
                   shape: tuple[int, ...], sign: float, where: str) -> None:
        from convmatrix.layers.scale import Scale

        alpha = float(kwargs.get("alpha", 1.0))
        if len(deps) == 2:
            first, second = node.args[0], node.args[1]
            if first is deps[1]:
                names = names[::-1]
            if getattr(first, "name", None) == getattr(second, "name", None):
                self.add(node, Scale(shape, 1.0 + sign * alpha), (names[0],))
                return
            self.add(node, Sum((1.0, sign * alpha)), (names[0], names[1]))
            return
        source = deps[0]
        left = node.args[0] is source
        other = args[1] if left else args[0]
        constant = _constant(other, shape, where)
        if left:
            self.add(node, Scale(shape, 1.0, sign * alpha * constant), (self.names[source.name],))
        else:  # constant ± alpha · x
            self.add(node, Scale(shape, sign * alpha, constant), (self.names[source.name],))

    def product(self, node: Any, args: Any, deps: list[Any], names: list[str],
                shape: tuple[int, ...], where: str, *, divide: bool) -> None:
        from convmatrix.layers.scale import Scale

        if len(deps) != 1:
            raise ConvMatrixError(f"{where} multiplies two branches of the input: not an "
                                  f"affine map (only constant factors are read)")
        source = deps[0]
        left = node.args[0] is source
        if divide and not left:
            raise ConvMatrixError(f"{where} divides by the input: not an affine map")
        constant = _constant(args[1] if left else args[0], shape, where)
        factor = 1.0 / constant if divide else constant
        self.add(node, Scale(shape, factor), (self.names[source.name],))

    def mean(self, node: Any, args: Any, kwargs: Any, deps: list[Any],
             shape: tuple[int, ...], where: str) -> None:
        from convmatrix.layers.pool import AvgPool
        from convmatrix.layers.reshape import Reshape
        from convmatrix.layers.sequential import Sequential

        source = self.first(deps, node, where)
        z = self.values[source.name]
        dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
        dim_list = [dims] if isinstance(dims, int) else list(dims or [])
        ndim = z.dim()
        if sorted(int(d) % ndim for d in dim_list) != list(range(2, ndim)) or ndim < 3:
            raise ConvMatrixError(f"{where} averages over dims {dims!r}: convmatrix reads a "
                                  f"mean over all spatial axes (a global average pool)")
        sample = tuple(z.shape[1:])
        pool = AvgPool(sample, sample[1:])
        layer: Layer = pool if pool.output_shape == shape else Sequential(
            [pool, Reshape(pool.output_shape, shape)])
        self.add(node, layer, (self.names[source.name],))


def _shape_query(node: Any) -> bool:
    if node.op == "call_method":
        return node.target in ("size", "dim", "numel", "ndimension")
    return node.op == "call_function" and node.target is getattr and \
        len(node.args) > 1 and node.args[1] in ("shape", "ndim", "dtype", "device")


def _is_jacobian_function(node: Any, target: Any) -> bool:
    if node.op not in ("call_function", "call_method"):
        return False
    return is_jacobian_op(target)


def _constant(value: Any, shape: tuple[int, ...], where: str) -> Any:
    """A Python number or a constant tensor, as an array broadcasting to one sample's shape."""
    import torch

    if isinstance(value, bool):
        raise ConvMatrixError(f"{where} combines the input with a bool")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, torch.Tensor):
        array = to_numpy(value.detach()).astype(np.float64)
        if array.ndim == len(shape) + 1:
            if array.shape[0] != 1:
                raise ConvMatrixError(f"{where} combines the input with a constant of batch "
                                      f"size {array.shape[0]}")
            array = array[0]
        try:
            np.broadcast_shapes(array.shape, shape)
        except ValueError:
            raise ConvMatrixError(f"{where}: the constant {array.shape} does not broadcast to "
                                  f"the sample {shape}") from None
        if math.prod(np.broadcast_shapes(array.shape, shape)) != math.prod(shape):
            raise ConvMatrixError(f"{where}: the constant {array.shape} widens the sample "
                                  f"{shape}")
        return array
    raise ConvMatrixError(f"{where} combines the input with a {type(value).__name__}")


_TRACES: weakref.WeakKeyDictionary[Any, tuple[tuple[tuple[str, int], ...], Any]] = (
    weakref.WeakKeyDictionary())
"""model → (its modules' identities when traced, its GraphModule): a model is traced once."""


def _traced(model: Any) -> Any:
    """The model's ``torch.fx`` trace, reused while its submodules are the same objects."""
    import torch.fx

    key = tuple((name, id(module)) for name, module in model.named_modules())
    try:
        cached = _TRACES.get(model)
    except TypeError:  # pragma: no cover - an unhashable module
        cached = None
    if cached is not None and cached[0] == key:
        return cached[1]
    gm = torch.fx.symbolic_trace(model)
    try:
        _TRACES[model] = (key, gm)
    except TypeError:  # pragma: no cover
        pass
    return gm


def linearize_fx(model: Any, point: Any) -> Linearization:
    """:func:`~convmatrix.linearize` of a module traced by ``torch.fx`` (or a GraphModule).

    The trace is kept for the next call on the same model (while its submodules are the same
    objects), so linearising at many points traces once.
    """
    if any(cls.__name__ == "GraphModule" for cls in type(model).__mro__):
        gm = model
    else:
        try:
            gm = _traced(model)
        except Exception as error:  # torch.fx raises many kinds (TraceError, TypeError, ...)
            raise ConvMatrixError(
                f"`model` ({type(model).__name__}) cannot be traced by torch.fx ("
                f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                f"linearize reads nn.Sequential models and fx-traceable ones") from None
    return _FxLinearizer(gm, point).run()
