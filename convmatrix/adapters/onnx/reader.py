"""An ONNX graph as one layer object: :func:`from_onnx` and the ONNX side of ``cm.linearize``.

The reader walks the graph's nodes in order. A node whose inputs are all constants
(initializers, ``Constant``, the shape plumbing of real exports: ``Shape`` of a traced tensor,
``Gather``, ``Concat``, ``Unsqueeze``, ``Cast``, ``ConstantOfShape`` …) is folded by
``onnx.reference`` into a constant; a node that reads the network's input becomes a node of
a :class:`~convmatrix.Graph` — one traced input through :data:`~convmatrix.adapters.onnx.ops.
TRANSLATORS`, ``Add``/``Sub``/``Sum`` of branches as a :class:`~convmatrix.Sum`, ``Concat`` as a
:class:`~convmatrix.Cat`, ``Split`` as slices. A chain becomes a
:class:`~convmatrix.Sequential` (one layer: that layer).

At a point (:func:`linearize_onnx`) the same walk also computes every traced value, and a
non-linear node becomes the layer of its Jacobian there
(:mod:`convmatrix.adapters.onnx.jacobian`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.onnx.load import load_model
from convmatrix.adapters.onnx.node import OnnxNode, decode_attribute
from convmatrix.adapters.onnx.ops import TRANSLATORS
from convmatrix.builder.budget import DEFAULT_MAX_BYTES, format_bytes
from convmatrix.geometry.spec import as_sample_shape
from convmatrix.layers.base import Layer
from convmatrix.layers.graph import Cat, Graph, Node, Sum
from convmatrix.layers.identity import Identity
from convmatrix.layers.linearization import Factor, Linearization, Site, constant_after
from convmatrix.layers.reshape import Slice
from convmatrix.layers.sequential import Sequential

__all__ = ["NONLINEAR", "from_onnx", "linearize_onnx"]

NONLINEAR = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Clip", "Elu", "Selu", "Celu", "Gelu", "Sigmoid", "Tanh",
    "Softplus", "Softsign", "HardSigmoid", "HardSwish", "Mish", "ThresholdedRelu", "Swish",
    "MaxPool", "GlobalMaxPool", "LpPool", "Softmax", "LogSoftmax", "Exp", "Log", "Abs",
    "Sqrt", "Pow", "Max", "Min", "ReduceMax", "ReduceMin", "LayerNormalization",
    "InstanceNormalization", "GroupNormalization", "Erf", "Sin", "Cos", "Floor", "Ceil",
    "Round", "Sign", "Reciprocal", "Where", "ArgMax", "ArgMin", "TopK", "Shrink",
})
"""Operators that are not affine maps of the input: refused by :func:`from_onnx` (see
``cm.linearize``)."""

_FLOAT64 = np.dtype(np.float64)  # the operands' dtype at a point (cm.linearize of torch too)
_FOLD_LIMITED = {"ConstantOfShape", "Expand", "Tile", "Range"}
_FIRST_OPSET = 11


def _check_opset(model: Any) -> int:
    opset = None
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            opset = int(entry.version)
    if opset is None:
        raise ConvMatrixError("the model imports no opset of the default ONNX domain")
    if opset < _FIRST_OPSET:
        raise ConvMatrixError(f"the model uses opset {opset}; convmatrix reads opsets "
                              f"{_FIRST_OPSET} and newer (onnx.version_converter can convert)")
    return opset


def _dims(value_info: Any) -> list[int | None] | None:
    kind = value_info.type.WhichOneof("value")
    if kind != "tensor_type" or not value_info.type.tensor_type.HasField("shape"):
        return None
    dims: list[int | None] = []
    for dim in value_info.type.tensor_type.shape.dim:
        dims.append(int(dim.dim_value) if dim.HasField("dim_value") else None)
    return dims


def _sample_shape(value_info: Any, input_shape: Any) -> tuple[int, ...]:
    """One sample's shape: from ``input_shape`` or the graph (batch 1 or symbolic dropped)."""
    name = value_info.name
    dims = _dims(value_info)
    if dims is not None and dims and dims[0] is not None and dims[0] > 1:
        raise ConvMatrixError(
            f"the model's input {name!r} has a fixed batch of {dims[0]} "
            f"(shape {['?' if d is None else d for d in dims]}); convmatrix reads one sample: "
            f"export with batch 1 or a symbolic batch")
    if input_shape is not None:
        shape = as_sample_shape(input_shape)
        if dims is not None:
            if len(dims) != len(shape) + 1:
                raise ConvMatrixError(
                    f"`input_shape` (={tuple(shape)}) has {len(shape)} axes but the model's "
                    f"input {name!r} has {len(dims)} with the batch axis "
                    f"({['?' if d is None else d for d in dims]}); give one sample's shape")
            for axis, (want, got) in enumerate(zip(dims[1:], shape, strict=True)):
                if want is not None and want != got:
                    raise ConvMatrixError(
                        f"`input_shape` (={tuple(shape)}) differs from the model's input "
                        f"{name!r} on axis {axis + 1}: the model fixes it to {want}")
        return tuple(shape)
    if dims is None or not dims:
        raise ConvMatrixError(f"the model's input {name!r} has no shape in the graph: pass "
                              f"`input_shape` (one sample, without the batch axis)")
    if any(d is None or d < 1 for d in dims[1:]):
        raise ConvMatrixError(
            f"the model's input {name!r} has dynamic dimensions "
            f"{['?' if d is None else d for d in dims]}: pass `input_shape` (one sample, "
            f"without the batch axis)")
    return tuple(int(d) for d in dims[1:] if d is not None)


def _rename(graph: Any, names: dict[str, str]) -> None:
    """Rename values in the graph's nodes and outputs (``names``: old → new, applied once)."""
    def fix(items: Any) -> None:
        for i, name in enumerate(items):
            if name in names:
                items[i] = names[name]

    for node in graph.node:
        fix(node.input)
        fix(node.output)
    for value in graph.output:
        if value.name in names:
            value.name = names[value.name]


class _Reader:
    """Walks one ONNX graph into graph nodes (and, at a point, values and sites)."""

    def __init__(self, model: Any, input_shape: Any, max_bytes: int | None,
                 point: np.ndarray | None = None) -> None:
        self.model = model
        self.max_bytes = max_bytes
        self.opset = _check_opset(model)
        graph = model.graph
        self.constants: dict[str, np.ndarray] = {}
        from onnx import numpy_helper

        for tensor in graph.initializer:
            self.constants[tensor.name] = numpy_helper.to_array(tensor)
        for tensor in graph.sparse_initializer:
            raise ConvMatrixError(f"sparse initializer {tensor.values.name!r} is not read")
        inputs = [v for v in graph.input if v.name not in self.constants]
        if len(inputs) != 1:
            names = ", ".join(repr(v.name) for v in inputs) or "none"
            raise ConvMatrixError(f"the model has {len(inputs)} inputs ({names}); convmatrix "
                                  f"reads models of exactly one input")
        outputs = list(graph.output)
        if len(outputs) != 1:
            names = ", ".join(repr(v.name) for v in outputs)
            raise ConvMatrixError(f"the model has {len(outputs)} outputs ({names}); convmatrix "
                                  f"reads models of exactly one output")
        original = inputs[0].name
        elem = inputs[0].type.tensor_type.elem_type if inputs[0].type.HasField(
            "tensor_type") else 0
        if elem not in (0, 1, 10, 11, 16):
            raise ConvMatrixError(f"the model's input {original!r} has element type {elem} "
                                  f"(not a floating type): not a linear map of real inputs")
        self.input = "input"  # the graph's (and the Lipschitz factors') name for the input
        _rename(graph, {"input": "input#onnx", original: "input"})
        self.output = outputs[0].name
        if point is not None:
            self.input_shape = tuple(point.shape[1:])
            try:
                _sample_shape(inputs[0], self.input_shape)
            except ConvMatrixError:
                dims = _dims(inputs[0]) or []
                raise ConvMatrixError(
                    f"`x` has shape {point.shape} but the model's input {self.input!r} is "
                    f"{['?' if d is None else d for d in dims]}: give one input exactly as the "
                    f"model takes it, with its batch axis of 1") from None
        else:
            self.input_shape = _sample_shape(inputs[0], input_shape)
        self.shapes: dict[str, tuple[int, ...]] = {self.input: self.input_shape}
        self.point = point
        self.values: dict[str, np.ndarray] = {}
        if point is not None:
            self.values[self.input] = np.asarray(point[0], dtype=np.float64)
        self.nodes: list[Node] = []
        self.factors: list[Factor] = []
        self.sites: list[Site] = []
        self.constant_mask: dict[str, np.ndarray | None] = {self.input: None}
        self.used: set[str] = {o.name for o in outputs}
        for node in graph.node:
            self.used.update(node.input)

    # ----------------------------------------------------------------- walking
    def run(self) -> tuple[Layer, str]:
        for index, proto in enumerate(self.model.graph.node):
            self.visit(index, proto)
        if self.output not in self.shapes:
            raise ConvMatrixError(f"the model's output {self.output!r} does not depend on its "
                                  f"input: nothing to read")
        return self.result(), self.output

    def where(self, proto: Any, index: int) -> str:
        return f"node {proto.name or f'{proto.op_type} #{index}'!r} ({proto.op_type}, opset " \
               f"{self.opset})"

    def visit(self, index: int, proto: Any) -> None:
        op = proto.op_type
        name = proto.name or f"{op} #{index}"
        if proto.domain not in ("", "ai.onnx"):
            raise ConvMatrixError(
                f"ONNX {self.where(proto, index)}: operator {op!r} of domain "
                f"{proto.domain!r} is not an operator convmatrix reads (only the default "
                f"ONNX domain)")
        traced = [i for i, v in enumerate(proto.input) if v and v in self.shapes]
        if not traced:
            self.fold(proto, index)
            return
        if op in ("Shape", "Size"):
            full = (1, *self.shapes[proto.input[0]])
            if op == "Size":
                self.constants[proto.output[0]] = np.array(math.prod(full), dtype=np.int64)
                return
            attributes = {a.name: decode_attribute(a) for a in proto.attribute}
            start, end = attributes.get("start", 0), attributes.get("end")
            self.constants[proto.output[0]] = np.array(full[start:end], dtype=np.int64)
            return
        attributes = {}
        for attribute in proto.attribute:
            attributes[attribute.name] = decode_attribute(attribute)
        constants = {v: self.constants[v] for v in proto.input if v in self.constants}
        node = OnnxNode(name, op, tuple(proto.input), tuple(proto.output), attributes,
                        self.opset, constants, None if self.point is None else _FLOAT64)
        for i, v in enumerate(proto.input):
            if v and v not in self.shapes and v not in self.constants:
                raise node.refuse(f"input {i} ({v!r}) is neither computed before the node nor "
                                  f"a constant (the graph is not in topological order?)")
        try:
            self.translate(node, traced)
        except ConvMatrixError as error:
            if str(error).startswith("ONNX node"):
                raise
            raise node.refuse(str(error)) from None

    def translate(self, node: OnnxNode, traced: list[int]) -> None:
        op = node.op_type
        ins = [node.inputs[i] for i in traced]
        two = len(traced) == 2
        if self.point is not None and (op in _jacobian_ops() or (op in ("Mul", "Div") and two)):
            self.jacobian(node, traced)
            return
        if op in ("Add", "Sub") and len(traced) == 2:
            a, b = node.inputs[0], node.inputs[1]
            if self.shapes[a] != self.shapes[b]:
                raise node.refuse(f"adds branches of different shapes {self.shapes[a]} and "
                                  f"{self.shapes[b]} (broadcasting between branches is not read)")
            self.add(node, Sum((1.0, 1.0 if op == "Add" else -1.0)), (a, b), self.shapes[a])
            return
        if op == "Sum":
            if len(traced) != len([v for v in node.inputs if v]):
                raise node.refuse("sums the input's branches with constants")
            shapes = {self.shapes[v] for v in ins}
            if len(shapes) != 1:
                raise node.refuse(f"sums branches of different shapes {sorted(shapes)}")
            if len(ins) == 1:
                self.add(node, Identity(self.shapes[ins[0]]), (ins[0],), self.shapes[ins[0]])
            else:
                self.add(node, Sum((1.0,) * len(ins)), tuple(ins), self.shapes[ins[0]])
            return
        if op == "Concat":
            if len(traced) != len([v for v in node.inputs if v]):
                raise node.refuse("concatenates the input's branches with constants")
            rank = len(self.shapes[ins[0]]) + 1
            axis = int(node.attribute("axis", 1))
            axis = axis + rank if axis < 0 else axis
            if axis == 0:
                raise node.refuse("concatenates along the batch axis")
            if len(ins) == 1:
                self.add(node, Identity(self.shapes[ins[0]]), (ins[0],), self.shapes[ins[0]])
                return
            shape = list(self.shapes[ins[0]])
            shape[axis - 1] = sum(self.shapes[v][axis - 1] for v in ins)
            self.add(node, Cat(axis - 1), tuple(ins), tuple(shape))
            return
        if op == "Split":
            self.split(node, traced)
            return
        if op in ("Mul", "Div") and len(traced) == 2:
            raise node.refuse(f"{'multiplies' if op == 'Mul' else 'divides'} two branches of "
                              f"the input: not an affine map (cm.linearize gives its Jacobian "
                              f"at a point)")
        if self.point is not None and op in NONLINEAR:
            raise node.refuse(f"{op} is not an operator cm.linearize linearises (element-wise "
                              f"activations, MaxPool, GlobalMaxPool, products of branches)")
        if op in NONLINEAR or op in _jacobian_ops():
            raise node.refuse(f"{op} is not linear: from_onnx reads affine graphs only; "
                              f"cm.linearize(model, x) gives the network's exact Jacobian at a "
                              f"point x")
        translator = TRANSLATORS.get(op)
        if translator is None:
            raise node.refuse(f"operator {op!r} is not one convmatrix reads (opset "
                              f"{self.opset})")
        if len(traced) != 1:
            raise node.refuse(f"reads the network's input through {len(traced)} inputs; "
                              f"{op} is read on one")
        if op == "Dropout" and len(node.outputs) > 1 and node.outputs[1] in self.used:
            raise node.refuse("its mask output is used: only inference Dropout is read")
        source = ins[0]
        layer = translator(node, self.shapes[source])
        self.add(node, layer, (source,), layer.output_shape)

    def split(self, node: OnnxNode, traced: list[int]) -> None:
        if traced != [0]:
            raise node.refuse("splits must be constants")
        source = node.inputs[0]
        shape = self.shapes[source]
        rank = len(shape) + 1
        axis = int(node.attribute("axis", 0))
        axis = axis + rank if axis < 0 else axis
        if axis == 0:
            raise node.refuse("splits the batch axis")
        n = shape[axis - 1]
        count = len(node.outputs)
        sizes = node.attribute("split")
        if sizes is None and node.has_input(1):
            value = node.constant_input(1)
            if value is None:
                raise node.refuse("input 1 (split) must be a constant")
            sizes = value.reshape(-1).tolist()
        if sizes is None:
            parts = int(node.attribute("num_outputs", count))
            size = -(-n // parts)
            sizes = [min(size, n - i * size) for i in range(parts)]
        sizes = [int(v) for v in sizes]
        if len(sizes) != count or sum(sizes) != n or min(sizes) < 0:
            raise node.refuse(f"split sizes {sizes} do not cut axis {axis} (size {n}) into "
                              f"{count} outputs")
        start = 0
        for output, size in zip(node.outputs, sizes, strict=True):
            layer = Slice(shape, axis - 1, start, start + size)
            start += size
            if output:
                self.add(node, layer, (source,), layer.output_shape, output=output)

    def add(self, node: OnnxNode, op: Layer | Sum | Cat, inputs: tuple[str, ...],
            shape: tuple[int, ...], *, output: str | None = None,
            site: Site | None = None) -> None:
        name = output if output is not None else node.outputs[0]
        self.nodes.append(Node(name, op, inputs))
        self.shapes[name] = tuple(shape)
        if isinstance(op, Sum):
            self.factors.append(Factor(name, None, inputs, None, "sum",
                                       tuple(float(c) for c in op.coefficients)))
        elif isinstance(op, Cat):
            self.factors.append(Factor(name, None, inputs, None, "cat"))
        else:
            self.factors.append(Factor(name, op, inputs, site))
        if site is not None:
            self.sites.append(site)
        if self.point is not None:
            values = [self.values[v] for v in inputs]
            if isinstance(op, Sum):
                total = np.zeros(shape)
                for c, v in zip(op.coefficients, values, strict=True):
                    total = total + c * v
                self.values[name] = total
                masks = [m for m in (self.constant_mask.get(v) for v in inputs) if m is not None]
                self.constant_mask[name] = None if len(masks) < len(inputs) else \
                    np.logical_and.reduce(masks)
            elif isinstance(op, Cat):
                self.values[name] = np.concatenate(values, axis=op.axis)
                parts = [self.constant_mask.get(v) for v in inputs]
                self.constant_mask[name] = None if all(m is None for m in parts) else \
                    np.concatenate([np.zeros(self.shapes[v], bool) if m is None else m
                                    for v, m in zip(inputs, parts, strict=True)], axis=op.axis)
            else:
                if site is None or name not in self.values:  # a site's caller may set f(z)
                    self.values[name] = np.asarray(op(values[0], max_bytes=self.max_bytes),
                                                   dtype=np.float64)
                self.constant_mask[name] = constant_after(op, self.constant_mask.get(inputs[0]))

    def jacobian(self, node: OnnxNode, traced: list[int]) -> None:
        from convmatrix.adapters.onnx.jacobian import onnx_jacobian

        if node.op_type in ("Mul", "Div") and len(traced) == 2:
            self.product(node)
            return
        if len(traced) != 1 or traced[0] != 0:
            raise node.refuse(f"reads the network's input through inputs {traced}; "
                              f"{node.op_type} is linearised on its first input only")
        source = node.inputs[0]
        layer, site, value = onnx_jacobian(node, self.values[source],
                                           self.constant_mask.get(source))
        self.values[node.outputs[0]] = value
        self.add(node, layer, (source,), layer.output_shape, site=site)

    def product(self, node: OnnxNode) -> None:
        """``a · b`` (``a / b``) of two branches at the point, as its tangent map."""
        from convmatrix.layers.scale import Scale

        a, b = node.inputs[0], node.inputs[1]
        shape = self.shapes[a]
        if self.shapes[b] != shape:
            raise node.refuse(f"multiplies branches of different shapes {shape} and "
                              f"{self.shapes[b]}")
        a0, b0 = self.values[a], self.values[b]
        out = node.outputs[0]
        if node.op_type == "Div":  # a / b ≈ a / b₀ − (a₀ / b₀²) · (b − b₀)
            if np.any(b0 == 0):
                raise node.refuse("divides by a branch that is zero at the point")
            if a == b:
                self.add(node, Scale(shape, 0.0, 1.0), (a,), shape)
                return
            da, db, shift = 1 / b0, -a0 / (b0 * b0), a0 / b0
        elif a == b:  # x · x
            self.add(node, Scale(shape, 2 * a0, -a0 * a0), (a,), shape,
                     site=_product_site(node, shape, 2 * a0, ""))
            return
        else:
            da, db, shift = b0, a0, -a0 * b0
        self.add(node, Scale(shape, da, shift), (a,), shape, output=f"{out}/d{a}",
                 site=_product_site(node, shape, da, f" ∂/∂{a}"))
        self.add(node, Scale(shape, db), (b,), shape, output=f"{out}/d{b}",
                 site=_product_site(node, shape, db, f" ∂/∂{b}"))
        self.add(node, Sum((1.0, 1.0)), (f"{out}/d{a}", f"{out}/d{b}"), shape, output=out)

    def fold(self, proto: Any, index: int) -> None:
        """A node of constants only: computed now by ``onnx.reference``."""
        from onnx.reference import ReferenceEvaluator

        op = proto.op_type
        if op == "Constant":
            attribute = proto.attribute[0]
            value = decode_attribute(attribute)
            if attribute.name in ("value_int", "value_float"):
                value = np.array(value, dtype=np.int64 if attribute.name == "value_int"
                                 else np.float32)
            elif attribute.name in ("value_ints", "value_floats"):
                value = np.array(value, dtype=np.int64 if attribute.name == "value_ints"
                                 else np.float32)
            elif not isinstance(value, np.ndarray):
                raise ConvMatrixError(f"ONNX {self.where(proto, index)}: a Constant "
                                      f"{attribute.name!r} is not read")
            self.constants[proto.output[0]] = value
            return
        inputs = {v: self.constants[v] for v in proto.input if v}
        missing = [v for v in proto.input if v and v not in self.constants]
        if missing:
            raise ConvMatrixError(f"ONNX {self.where(proto, index)}: input {missing[0]!r} is "
                                  f"not defined before the node")
        if op in _FOLD_LIMITED:
            self.check_fold_size(proto, index, inputs)
        try:
            from onnx import helper

            graph = helper.make_graph(
                [proto], "fold", [helper.make_empty_tensor_value_info(v) for v in inputs],
                [helper.make_empty_tensor_value_info(v) for v in proto.output if v])
            evaluator = ReferenceEvaluator(helper.make_model(
                graph, opset_imports=[helper.make_opsetid("", self.opset)]))
            results = evaluator.run(None, inputs)
        except ConvMatrixError:  # pragma: no cover
            raise
        except Exception as error:
            raise ConvMatrixError(
                f"ONNX {self.where(proto, index)}: computing it on constants failed "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
            ) from None
        for name, value in zip([v for v in proto.output if v], results, strict=False):
            if name:
                array = np.asarray(value)
                if self.max_bytes is not None and array.nbytes > self.max_bytes:
                    raise ConvMatrixError(f"ONNX {self.where(proto, index)}: its constant "
                                          f"needs {format_bytes(array.nbytes)}, over `max_bytes`")
                self.constants[name] = array

    def check_fold_size(self, proto: Any, index: int, inputs: dict[str, np.ndarray]) -> None:
        op = proto.op_type
        values = [np.asarray(inputs.get(v, 0)) for v in proto.input]
        try:
            if op == "ConstantOfShape":
                size = math.prod(int(v) for v in np.asarray(values[0]).reshape(-1))
            elif op == "Expand":
                size = math.prod(np.broadcast_shapes(
                    values[0].shape, tuple(int(v) for v in values[1].reshape(-1))))
            elif op == "Tile":
                size = int(values[0].size) * math.prod(int(v) for v in values[1].reshape(-1))
            else:  # Range
                start, limit, delta = (float(np.asarray(v)) for v in values[:3])
                size = max(0, math.ceil((limit - start) / delta)) if delta else 0
        except (TypeError, ValueError, AttributeError, IndexError):
            return  # the evaluator reports the malformed node
        nbytes = 8 * size
        if self.max_bytes is not None and nbytes > self.max_bytes:
            raise ConvMatrixError(f"ONNX {self.where(proto, index)}: its constant needs "
                                  f"{format_bytes(nbytes)}, over `max_bytes` "
                                  f"(={format_bytes(self.max_bytes)})")

    # ----------------------------------------------------------------- result
    def needed(self) -> list[Node]:
        wanted = {self.output}
        kept = []
        for node in reversed(self.nodes):
            if node.name in wanted:
                kept.append(node)
                wanted.update(node.inputs)
        return kept[::-1]

    def result(self) -> Layer:
        nodes = self.needed()
        if not nodes:
            return Identity(self.input_shape)
        previous = self.input
        chain = True
        for node in nodes:
            if not isinstance(node.op, Layer) or node.inputs != (previous,):
                chain = False
                break
            previous = node.name
        if chain:
            layers = [node.op for node in nodes if isinstance(node.op, Layer)]
            return layers[0] if len(layers) == 1 else Sequential(layers)
        return Graph(self.input_shape, nodes, self.output, input=self.input)


_JACOBIAN_OPS: frozenset[str] | None = None


def _jacobian_ops() -> frozenset[str]:
    global _JACOBIAN_OPS
    if _JACOBIAN_OPS is None:
        from convmatrix.adapters.onnx.jacobian import JACOBIANS

        _JACOBIAN_OPS = frozenset(JACOBIANS)
    return _JACOBIAN_OPS


def from_onnx(model: Any, input_shape: Sequence[int] | None = None, *,
              max_bytes: int | None = DEFAULT_MAX_BYTES) -> Layer:
    """An ONNX model of linear operators as one exact affine layer on one sample.

    Parameters
    ----------
    model : str, os.PathLike, bytes or onnx.ModelProto
        A path to an ``.onnx`` file (external data is read only from files inside its
        directory), its bytes, or a loaded ``ModelProto``. One graph input, one output.
    input_shape : sequence of int, optional
        One sample's shape without the batch axis, in the model's own layout (``(C, H, W)``
        for the usual NCHW exports). Default: read from the graph, whose batch dimension
        must be 1 or symbolic; dynamic dimensions other than the batch need ``input_shape``.
    max_bytes : int or None, optional
        Refuse a model file, external data or a folded constant larger than this.

    Returns
    -------
    Layer
        The model's map ``x ↦ M x + b`` on one sample flattened in C order: one layer kind
        (``cm.Conv``, ``cm.ConvTranspose``, ...), a :class:`~convmatrix.Sequential` for a
        chain, or a :class:`~convmatrix.Graph` for residual sums, concatenations and splits.

    Notes
    -----
    Read: ``Conv`` and ``ConvTranspose`` (every ``auto_pad``, ``pads``, ``strides``,
    ``dilations``, ``group``, 1-D to 3-D; ``output_padding`` and ``output_shape``),
    ``AveragePool`` (with ``dilations``), ``GlobalAveragePool``, ``BatchNormalization``
    (inference), ``Add``/``Sub``/``Mul``/``Div`` by constants, ``Add``/``Sub``/``Sum`` of
    branches, ``ReduceMean``/``ReduceSum``, ``Concat``, ``Split``, ``Slice``, ``Flatten``,
    ``Reshape``, ``Squeeze``, ``Unsqueeze``, ``Gemm``/``MatMul`` with constant weights,
    ``Identity``, ``Dropout``, ``Cast`` to floats, ``Neg``, and every node computed from
    constants only (the shape plumbing: ``Shape``, ``Gather``, ``Constant``, ...), folded by
    ``onnx.reference``. Where the ONNX text is ambiguous (``ConvTranspose`` with ``SAME_*`` or
    ``output_shape``) the map is ``onnx.reference``'s; a grouped ``ConvTranspose``, which the
    installed reference gets wrong, is onnxruntime's. Non-linear operators (``Relu``,
    ``MaxPool``, ...) are refused by
    name and node: ``cm.linearize(model, x)`` reads them at a point.

    The layers keep the model's precision, as ``cm.from_torch`` keeps a module's: a float32
    model's convolutions, dense layers and constant scales and shifts are float32 (their
    matrices too, and a product of them is formed in float32), a float64 model's float64.
    float16 and bfloat16 widen exactly to float32 (``from_torch`` widens bfloat16 the same
    way; it refuses float16, which scipy.sparse cannot store).
    ``BatchNormalization`` is float64, as ``cm.BatchNorm`` always is. Compare a float32
    model with float32 tolerances; for float64 agreement export or convert it in float64.
    ``cm.linearize`` reads every operand in float64, as it evaluates a torch model.

    Examples
    --------
    >>> import numpy as np
    >>> import onnx
    >>> from onnx import helper, numpy_helper
    >>> import convmatrix as cm
    >>> w = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    >>> graph = helper.make_graph(
    ...     [helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])],
    ...     "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 1, 5, 5])],
    ...     [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [w])
    >>> layer = cm.from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    >>> layer
    Conv(1→1, 1×5×5 → 1×3×3, kernel 3×3, stride 2, padding 1)
    >>> layer.matrix().shape, layer.dtype
    ((9, 25), dtype('float32'))
    """
    proto = load_model(model, max_bytes)
    layer, _ = _Reader(proto, input_shape, max_bytes).run()
    return layer


def linearize_onnx(model: Any, x: Any, *, max_bytes: int | None = DEFAULT_MAX_BYTES
                   ) -> Linearization:
    """``cm.linearize`` of an ONNX model at ``x`` (one input with its batch axis of 1).

    The linear operators are read as :func:`from_onnx` reads them; each non-linear one
    (activations, ``MaxPool``, ``Mul`` of two branches) becomes the layer of its exact
    Jacobian at its own input, computed in float64 along the way; every constant operand is
    read in float64 (a float32 model's layers are float64 here, unlike in ``from_onnx``).
    """
    proto = load_model(model, max_bytes)
    point = _point(x)
    reader = _Reader(proto, None, max_bytes, point)
    layer, output = reader.run()
    value = reader.values[output]
    return Linearization(layer, point[0], value, reader.sites, reader.factors, "onnx",
                         output=output)


def _point(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    array = np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise ConvMatrixError(f"`x` has dtype {array.dtype}; it must be real numbers")
    if array.ndim < 2 or array.shape[0] != 1:
        raise ConvMatrixError(f"`x` has shape {array.shape}; give one input exactly as the "
                              f"model takes it, with its batch axis of 1 (e.g. x[None])")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ConvMatrixError("`x` holds non-finite values (NaN or inf)")
    return array


def _product_site(node: OnnxNode, shape: tuple[int, ...], derivative: np.ndarray,
                  part: str) -> Site:
    """The site of one branch of a product (or quotient) of branches, at the point.

    A product is smooth but not piecewise linear (the tangent map holds at the point only) and
    has no global Lipschitz constant: ``lipschitz`` is infinite, so the product bound of
    :func:`~convmatrix.lipschitz_summary` is too, instead of the local ``|b₀|`` and ``|a₀|``
    passing for global constants.
    """
    derivative = np.broadcast_to(np.asarray(derivative, dtype=np.float64), shape)
    nonzero = int(np.count_nonzero(derivative))
    return Site(node.name + part, node.op_type, "product", tuple(shape), nonzero,
                derivative.size - nonzero, 0, False, math.inf,
                float(np.abs(derivative).max(initial=0.0)))
