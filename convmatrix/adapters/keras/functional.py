"""Keras functional models (and subclassed ones that trace) as one :class:`~convmatrix.Graph`.

A Keras 3 functional model is a graph of *nodes* (one per call of a layer or op) joined by
symbolic tensors (``KerasTensor``, each with a ``_keras_history`` naming the node that made
it). :func:`keras_steps` walks it back from the model's output to its input and returns the
nodes in topological order, each with its graph name, its inputs and its input shapes (one
sample, Keras' own channels-last layout); :func:`build_graph` translates each
(:func:`translate_step`) into a layer object, a :class:`~convmatrix.Sum` (``Add``,
``Subtract``, ``Average``, ``+``, ``-``) or a :class:`~convmatrix.Cat` (``Concatenate``)
and returns the :class:`~convmatrix.Graph` (a :class:`~convmatrix.Sequential` when the model
is a chain). A subclassed model is traced
first: its ``call`` is run on a symbolic ``keras.Input``, which records the same nodes.

Keras is imported only inside the functions that need a live model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.keras.layers import read_keras_layer
from convmatrix.geometry.shapes import shape_text
from convmatrix.geometry.spec import as_sample_shape, sequence_items
from convmatrix.layers.base import Layer
from convmatrix.layers.graph import Cat, Graph, Node, Sum
from convmatrix.layers.reshape import Reshape
from convmatrix.layers.scale import Scale
from convmatrix.layers.sequential import Sequential

__all__ = ["KerasStep", "ModelReader", "build_graph", "is_keras_model", "keras_steps",
           "op_output_shape", "translate_step"]

Op = Layer | Sum | Cat

#: Keras ops (``keras.ops`` / operators on symbolic tensors) read as graph nodes
_OPS = frozenset({"Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Negative",
                  "Concatenate", "Reshape"})

_SUM_LAYERS = frozenset({"Add", "Subtract", "Average"})

_PRODUCT_LAYERS = {"Multiply": "the product", "Dot": "a dot product",
                   "Maximum": "the element-wise maximum", "Minimum": "the element-wise minimum"}


@dataclass(frozen=True)
class KerasStep:
    """One node of a Keras model's graph, in topological order.

    Attributes
    ----------
    name : str
        The node's name in the :class:`~convmatrix.Graph` (the layer's name; ``_1``, ... for
        a layer called more than once).
    operation : object
        The Keras layer (or op) the node calls.
    node : object
        The Keras ``Node`` (its ``arguments`` are the call's).
    inputs : tuple of str
        The graph names of the node's input tensors, in the call's order.
    input_shapes : tuple of tuple of int
        One sample of each input (no batch axis); empty until :func:`build_graph` has read
        the nodes before.
    position : int
        The node's place in the topological order (0 first).
    """

    name: str
    operation: Any
    node: Any
    inputs: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    position: int

    @property
    def class_name(self) -> str:
        """The Keras class (``"Conv2D"``; an op's class, ``"Add"``)."""
        return type(self.operation).__name__

    @property
    def is_op(self) -> bool:
        """A ``keras.ops`` operation (``x + y``, ``ops.concatenate``), not a layer."""
        return type(self.operation).__module__.startswith("keras.src.ops")

    @property
    def where(self) -> str:
        """How messages name the node: ``node 3 'add' (Add)``."""
        kind = f"{self.class_name} op" if self.is_op else self.class_name
        return f"node {self.position} {self.name!r} ({kind})"


def is_keras_model(obj: Any) -> bool:
    """A live Keras model that is not a ``Sequential``: functional, or subclassed (traced)."""
    if type(obj).__name__ == "Sequential" or not hasattr(obj, "_inbound_nodes"):
        return False
    return hasattr(obj, "_nodes_by_depth") or (hasattr(obj, "call") and hasattr(obj, "layers")
                                              and hasattr(obj, "get_build_config"))


def _history(tensor: Any, where: str) -> Any:
    history = getattr(tensor, "_keras_history", None)
    if history is None or getattr(history, "operation", None) is None:
        raise ConvMatrixError(
            f"{where}: a tensor ({getattr(tensor, 'name', tensor)!r}) was made by no Keras "
            f"layer or op, so the graph cannot be read")
    return history


def _ends(model: Any, input_shape: Sequence[int] | None) -> tuple[Any, Any]:
    """The model's one input tensor and one output tensor (a subclassed model is traced)."""
    if hasattr(model, "_nodes_by_depth"):
        for ends in ("inputs", "outputs"):
            tensors = list(getattr(model, ends))
            if len(tensors) != 1:
                names = ", ".join(repr(getattr(t, "name", t)) for t in tensors)
                raise ConvMatrixError(
                    f"`model` ({type(model).__name__} {getattr(model, 'name', '')!r}) has "
                    f"{len(tensors)} {ends} ({names}); convmatrix reads a model with one input "
                    f"and one output")
        return model.inputs[0], model.outputs[0]
    return _trace(model, input_shape)


def _trace(model: Any, input_shape: Sequence[int] | None) -> tuple[Any, Any]:
    """Run a subclassed model's ``call`` on a symbolic input: the nodes it records."""
    import keras

    if input_shape is None:
        build = getattr(model, "get_build_config", lambda: None)() or {}
        shape = build.get("input_shape")
        if shape is None or not isinstance(shape, list | tuple) or any(
                not isinstance(v, int | None) for v in shape):
            raise ConvMatrixError(
                f"give `input_shape`: the subclassed model {type(model).__name__} has not been "
                f"built on one input of known shape")
        input_shape = tuple(shape)[1:]
    items = sequence_items(input_shape)
    if items is not None and any(v is None for v in items):
        raise ConvMatrixError(f"`input_shape` (={items}) must be fully known")
    symbolic = keras.Input(shape=as_sample_shape(input_shape),
                           dtype=getattr(model, "input_dtype", None))
    try:
        output = model.call(symbolic)
    except Exception as error:
        raise ConvMatrixError(
            f"`model` ({type(model).__name__}) is a subclassed model whose call() could not be "
            f"traced on a symbolic input ({type(error).__name__}: {error}); convmatrix reads "
            f"a subclassed model only when its call() uses Keras layers and ops") from None
    outputs = keras.tree.flatten(output)
    if len(outputs) != 1:
        raise ConvMatrixError(
            f"`model` ({type(model).__name__}) returns {len(outputs)} outputs; convmatrix "
            f"reads a model with one input and one output")
    return symbolic, outputs[0]


def _sample_shape(model_input: Any, input_shape: Sequence[int] | None) -> tuple[int, ...]:
    known = tuple(model_input.shape)[1:]
    if input_shape is None:
        if any(v is None for v in known):
            raise ConvMatrixError(
                f"give `input_shape`: the model's input has shape {known} (None: not fixed)")
        return tuple(int(v) for v in known)
    given = as_sample_shape(input_shape)
    if len(given) != len(known):
        raise ConvMatrixError(
            f"`input_shape` (={given}) must be one sample of the model's input {known} (no "
            f"batch axis), positive ints")
    for want, have in zip(known, given, strict=True):
        if want is not None and want != have:
            raise ConvMatrixError(
                f"`input_shape` (={given}) does not fit the model's input {known}")
    return given


def _unique(name: str, taken: set[str]) -> str:
    candidate, count = name, 0
    while candidate in taken:
        count += 1
        candidate = f"{name}_{count}"
    taken.add(candidate)
    return candidate


def keras_steps(model: Any, input_shape: Sequence[int] | None = None
                ) -> tuple[str, tuple[int, ...], list[KerasStep], str, Any]:
    """Walk a Keras model's graph: ``(input name, input shape, steps, output name, input)``.

    ``steps`` are the nodes the output depends on, in topological order; the last one makes
    the output (the output name is the input's when the model is the identity). The last
    item is the model's (or the trace's) symbolic input tensor. Shapes are checked against
    the model's own symbolic shapes as the walk goes (see :func:`build_graph`).
    """
    model_input, model_output = _ends(model, input_shape)
    shape = _sample_shape(model_input, input_shape)
    input_op = _history(model_input, "the model's input").operation
    input_name = str(getattr(input_op, "name", "input")) or "input"
    taken = {input_name}
    # iterative depth-first post-order from the output's node
    order: list[Any] = []
    done: set[int] = set()

    def producer(tensor: Any) -> Any | None:
        if tensor is model_input:
            return None
        history = _history(tensor, "the model's graph")
        operation = history.operation
        if type(operation).__name__ == "InputLayer":
            raise ConvMatrixError(
                f"`model` has a second input ({getattr(operation, 'name', '?')!r}) that the "
                f"output depends on; convmatrix reads a model with one input and one output")
        return operation._inbound_nodes[history.node_index]

    start = producer(model_output)
    stack: list[tuple[Any, bool]] = [] if start is None else [(start, False)]
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if expanded:
            if key not in done:
                done.add(key)
                order.append(node)
            continue
        if key in done:
            continue
        stack.append((node, True))
        for tensor in reversed(list(node.input_tensors)):
            parent = producer(tensor)
            if parent is not None and id(parent) not in done:
                stack.append((parent, False))
    names: dict[int, str] = {id(model_input): input_name}
    steps: list[KerasStep] = []
    for node in order:
        operation = node.operation
        if _is_conversion(node):  # the model's own float input conversion: no node
            names[id(node.outputs[0])] = names[id(node.input_tensors[0])]
            continue
        base = str(getattr(operation, "name", type(operation).__name__))
        name = _unique(base, taken)
        inputs = tuple(names[id(t)] for t in node.input_tensors)
        step = KerasStep(name, operation, node, inputs, (), len(steps))
        if len(node.outputs) != 1:
            raise ConvMatrixError(
                f"{step.where} has {len(node.outputs)} outputs; convmatrix reads layers with "
                f"one output")
        steps.append(step)
        names[id(node.outputs[0])] = name
    output_name = names[id(model_output)]
    return input_name, shape, steps, output_name, model_input


def _is_conversion(node: Any) -> bool:
    """A ``convert_to_tensor``/``cast`` op from one float tensor to a float tensor."""
    operation = node.operation
    if type(operation).__name__ not in ("ConvertToTensor", "Cast") or not type(
            operation).__module__.startswith("keras.src.ops"):
        return False
    tensors = list(node.input_tensors)
    return len(tensors) == 1 and len(node.outputs) == 1 and all(
        str(getattr(t, "dtype", "")).startswith("float") for t in (*tensors, *node.outputs))


def _check_arguments(step: KerasStep) -> None:
    """Refuse a call that changes what the layer computes (``training=True``, a mask)."""
    kwargs = dict(step.node.arguments.kwargs)
    training = kwargs.pop("training", None)
    if training:
        raise ConvMatrixError(
            f"{step.where} is called with training={training!r} in the model: it then uses "
            f"batch statistics or random noise, which is no fixed map of one sample")
    for key, value in kwargs.items():
        if value is not None and not (step.is_op and key in ("axis",)):
            raise ConvMatrixError(
                f"{step.where} is called with {key}={type(value).__name__}; convmatrix "
                f"reads layers called on their input alone")


def _concat_axis(axis: Any, shape: tuple[int, ...], step: KerasStep) -> int:
    ndim = len(shape) + 1
    if isinstance(axis, bool) or not hasattr(axis, "__index__") or not -ndim <= int(axis) < ndim:
        raise ConvMatrixError(
            f"{step.where}: `axis` (={axis!r}) must be an axis of its {ndim}-axis inputs")
    full = int(axis) % ndim
    if full == 0:
        raise ConvMatrixError(
            f"{step.where} concatenates along the batch axis (axis={axis!r}): that is no map "
            f"of one sample")
    return full - 1


def _constant(value: Any, shape: tuple[int, ...], step: KerasStep) -> np.ndarray:
    """A constant operand of an op, as an array broadcastable to one sample."""
    from convmatrix._arrays import to_numpy

    array = to_numpy(getattr(value, "value", value)) if not isinstance(value, int | float) \
        else np.asarray(value, dtype=np.float64)
    if array.dtype.kind not in "biuf":
        raise ConvMatrixError(f"{step.where}: a constant of dtype {array.dtype} is not read")
    if array.ndim == len(shape) + 1:
        if array.shape[0] != 1:
            raise ConvMatrixError(
                f"{step.where}: a constant of shape {array.shape} varies along the batch axis")
        array = array[0]
    try:
        np.broadcast_to(array, shape)
    except ValueError:
        raise ConvMatrixError(
            f"{step.where}: a constant of shape {array.shape} does not broadcast to one "
            f"sample {shape}") from None
    return array


def _translate_op(step: KerasStep) -> Op:
    """``x + y``, ``x - y``, ``x * c``, ``ops.concatenate``, ``ops.reshape``, ... ."""
    name = step.class_name
    if name not in _OPS:
        raise ConvMatrixError(
            f"{step.where} is a Keras op convmatrix does not read as linear; it reads "
            f"{', '.join(sorted(_OPS))} (with constants where one operand is not a tensor)")
    args = list(step.node.arguments.args)
    shape = step.input_shapes[0]
    if name == "Concatenate":
        return Cat(_concat_axis(getattr(step.operation, "axis", 0), shape, step))
    if name == "Reshape":
        target = getattr(step.operation, "newshape", None)
        if isinstance(target, int):
            target = (target,)
        items = () if target is None else tuple(target)
        if not items or items[0] not in (-1, None):
            raise ConvMatrixError(
                f"{step.where}: reshapes that do not keep the batch axis first (-1 or None) "
                f"are not read")
        return Reshape(shape, tuple(-1 if v is None else int(v) for v in items[1:]))
    if name == "Negative":
        return Scale(shape, -1.0)
    tensors = [i for i, a in enumerate(args) if hasattr(a, "_keras_history")]
    if len(tensors) == 2 and name in ("Add", "Subtract"):
        return Sum((1.0, 1.0 if name == "Add" else -1.0))
    if len(tensors) != 1 or len(args) != 2:
        raise ConvMatrixError(
            f"{step.where} multiplies or divides two tensors (or takes {len(args)} operands): "
            f"not linear; convmatrix reads these ops with one tensor and one constant")
    constant = _constant(args[1 - tensors[0]], shape, step)
    first = tensors[0] == 0
    if name == "Add":
        return Scale(shape, 1.0, shift=constant)
    if name == "Subtract":
        return Scale(shape, 1.0, shift=-constant) if first else Scale(shape, -1.0,
                                                                       shift=constant)
    if name == "Multiply":
        return Scale(shape, constant)
    if not first:
        raise ConvMatrixError(f"{step.where} divides a constant by a tensor: not linear")
    return Scale(shape, 1.0 / constant)


ModelReader = Callable[[Any, tuple[int, ...]], Layer]


def translate_step(step: KerasStep, read_model: ModelReader) -> Op:
    """The graph operation of one affine Keras node (a layer object, Sum or Cat).

    ``read_model(model, input_shape)`` reads a model used as a layer inside the model.
    """
    _check_arguments(step)
    if step.is_op:
        return _translate_op(step)
    name = step.class_name
    config = dict(step.operation.get_config()) if hasattr(step.operation, "get_config") else {}
    if name in _SUM_LAYERS:
        count = len(step.inputs)
        if name == "Subtract":
            return Sum((1.0, -1.0))
        return Sum((1.0,) * count if name == "Add" else (1.0 / count,) * count)
    if name == "Concatenate":
        return Cat(_concat_axis(config.get("axis", -1), step.input_shapes[0], step))
    if name in _PRODUCT_LAYERS:
        raise ConvMatrixError(
            f"{step.where} is not a linear layer convmatrix can read ({_PRODUCT_LAYERS[name]} "
            f"of its inputs); the layers it reads with several inputs are Add, Subtract, "
            f"Average and Concatenate")
    if len(step.inputs) != 1:
        raise ConvMatrixError(
            f"{step.where} takes {len(step.inputs)} inputs; the layers convmatrix reads with "
            f"several inputs are Add, Subtract, Average and Concatenate")
    if is_keras_model(step.operation) or type(step.operation).__name__ == "Sequential":
        try:
            return read_model(step.operation, step.input_shapes[0])
        except ConvMatrixError as error:
            raise ConvMatrixError(f"{step.where} (a model inside the model): {error}") from None
    return read_keras_layer(step.operation, step.input_shapes[0], where=f"`model`'s {step.where}")


def op_output_shape(op: Op, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    """The output shape of a graph operation on inputs of ``shapes``."""
    if isinstance(op, Layer):
        return op.output_shape
    if isinstance(op, Sum):
        return shapes[0]
    axis = op.axis % len(shapes[0])
    return (*shapes[0][:axis], sum(s[axis] for s in shapes), *shapes[0][axis + 1:])


def build_graph(model: Any, input_shape: Sequence[int] | None,
                translate: Callable[[KerasStep], Op]) -> Layer:
    """Walk ``model`` and translate each node with ``translate``: a Graph (or a chain)."""
    input_name, shape, steps, output_name, _ = keras_steps(model, input_shape)
    shapes: dict[str, tuple[int, ...]] = {input_name: shape}
    nodes: list[Node] = []
    for step in steps:
        filled = replace(step, input_shapes=tuple(shapes[i] for i in step.inputs))
        op = translate(filled)
        out = op_output_shape(op, filled.input_shapes)
        symbolic = tuple(filled.node.outputs[0].shape)[1:]
        if len(symbolic) != len(out) or any(
                want is not None and want != have for want, have in zip(symbolic, out,
                                                                         strict=False)):
            raise ConvMatrixError(
                f"{filled.where}: read as {shape_text(filled.input_shapes[0])} → "
                f"{shape_text(out)}, but Keras gives it the output {symbolic}; the layer's "
                f"configuration is not read as Keras runs it")
        shapes[step.name] = out
        nodes.append(Node(step.name, op, step.inputs))
    if not nodes:
        raise ConvMatrixError("`model` has no layers between its input and its output")
    if math.prod(shapes[output_name]) == 0:
        raise ConvMatrixError("`model` produces an empty output")
    chain = all(isinstance(n.op, Layer) and n.inputs == ((input_name,) if i == 0 else
                                                         (nodes[i - 1].name,))
                for i, n in enumerate(nodes)) and output_name == nodes[-1].name
    if chain:
        layers = [n.op for n in nodes if isinstance(n.op, Layer)]
        return layers[0] if len(layers) == 1 else Sequential(layers)
    return Graph(shape, nodes, output_name, input=input_name)

