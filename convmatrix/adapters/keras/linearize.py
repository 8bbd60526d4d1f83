"""A Keras model linearised at a point: its exact Jacobian as a layer, in Keras' layout.

:func:`linearize_keras` (what :func:`convmatrix.linearize` calls for a Keras model) walks the
model's graph like :func:`~convmatrix.from_keras` (:mod:`~convmatrix.adapters.keras.functional`)
and carries the point through it in float64: each affine node is read as ``from_keras`` reads
it, each non-linear node becomes the layer of its Jacobian at its own input —

* element-wise activations (``activation=`` arguments of ``Dense``/``Conv*``, the layers
  ``Activation``, ``ReLU``, ``LeakyReLU``, ``PReLU``, ``ELU``): a :class:`~convmatrix.Scale`
  whose diagonal is the derivative at the pre-activation, computed by torch's autograd through
  Keras' own function (Keras on the torch backend), so a kink gets Keras' convention
  (``relu'(0) = 0``);
* ``MaxPooling1D/2D/3D``: :class:`~convmatrix.MaxPoolAt` on the channels-first view, padded
  as Keras' torch backend pads ``"same"`` (symmetric: the pool's own padding, never a winner;
  asymmetric: the edge replicated), ties to the first maximum of the window (torch's kernel);
  ``GlobalMaxPooling*``: :class:`~convmatrix.GlobalMaxPoolAt` with a tie shared (Keras takes
  ``amax``);
* ``LayerNormalization`` (trailing axes) and ``GroupNormalization``: the dense-per-group
  :class:`~convmatrix.LayerNormAt` / :class:`~convmatrix.GroupNormAt`.

The result is a :class:`~convmatrix.layers.linearization.Linearization` whose layer is a
:class:`~convmatrix.Graph` (a :class:`~convmatrix.Sequential` for a chain).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from convmatrix._arrays import to_numpy
from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.keras.activations import (
    ACTIVATION_LAYERS,
    ELEMENTWISE,
    NOT_ELEMENTWISE,
    activation_name,
)
from convmatrix.adapters.keras.functional import (
    KerasStep,
    is_keras_model,
    keras_steps,
    translate_step,
)
from convmatrix.adapters.keras.layers import KERAS_READERS, read_keras_layer
from convmatrix.layers.base import Layer
from convmatrix.layers.channels_last import ChannelsLast
from convmatrix.layers.graph import Cat, Graph, Node, Sum
from convmatrix.layers.identity import Identity
from convmatrix.layers.linearization import Factor, Linearization, Site
from convmatrix.layers.pad import Pad
from convmatrix.layers.reshape import Reshape
from convmatrix.layers.scale import Scale
from convmatrix.layers.selection import GlobalMaxPoolAt, MaxPoolAt
from convmatrix.layers.sequential import Sequential
from convmatrix.layers.stat_norm import GroupNormAt, LayerNormAt

__all__ = ["keras_point", "linearize_keras"]

#: activations that are piecewise linear: the network equals its linearisation on a region
_PIECEWISE = frozenset({"relu", "relu6", "leaky_relu", "prelu", "hard_tanh", "hard_sigmoid",
                        "hard_shrink", "soft_shrink", "threshold", "linear"})

#: where the derivative of a piecewise-linear activation jumps (ReLU's layer options added)
_KINKS: dict[str, tuple[float, ...]] = {
    "relu": (0.0,), "leaky_relu": (0.0,), "prelu": (0.0,), "relu6": (0.0, 6.0),
    "hard_tanh": (-1.0, 1.0), "hard_sigmoid": (-3.0, 3.0), "hard_silu": (-3.0, 3.0),
    "hard_swish": (-3.0, 3.0), "elu": (0.0,), "selu": (0.0,), "celu": (0.0,)}

_CONVENTION = ("Keras' own function differentiated by torch's autograd (e.g. relu'(0) = 0, "
               "the slope below a kink for leaky_relu at 0)")

_POOL_CONVENTION = ("torch's max_pool kernel and backward: the first maximum of a window "
                    "(row-major) wins a tie")

_GLOBAL_CONVENTION = "torch's amax backward: a tied maximum shares the derivative evenly"

def keras_point(x: Any) -> np.ndarray:
    """``x`` (one input with its batch axis of 1, Keras' layout) as one float64 sample."""
    array = to_numpy(x)
    if array.dtype.kind not in "biuf":
        raise ConvMatrixError(f"`x` has dtype {array.dtype}; it must be real numbers")
    if array.ndim < 2 or array.shape[0] != 1:
        raise ConvMatrixError(
            f"`x` has shape {array.shape}; give one input exactly as the model takes it, "
            f"with its batch axis of 1 (e.g. x[None])")
    sample = np.array(array[0], dtype=np.float64)
    if not np.all(np.isfinite(sample)):
        raise ConvMatrixError("`x` holds non-finite values (NaN or inf)")
    return sample


@dataclass
class _Walk:
    """The graph being built: nodes, factors, sites and each node's value at the point."""

    nodes: list[Node]
    factors: list[Factor]
    sites: list[Site]
    values: dict[str, np.ndarray]
    taken: set[str]

    root: str = "input"
    #: per node, its locally constant entries (bool, the node's shape) or None (none known)
    constant: dict[str, np.ndarray | None] = field(default_factory=dict)

    def add(self, name: str, op: Layer | Sum | Cat, inputs: tuple[str, ...],
            site: Site | None = None, constant: np.ndarray | str | None = "propagate"
            ) -> np.ndarray:
        ins = [self.values[i] for i in inputs]
        # factors name the network's input "input" (their convention), the graph Keras' name
        sources = tuple("input" if i == self.root else i for i in inputs)
        if isinstance(op, Sum):
            value = sum((c * v for c, v in zip(op.coefficients, ins, strict=True)),
                        np.zeros_like(ins[0]))
            self.factors.append(Factor(name, None, sources, None, "sum",
                                                op.coefficients))
        elif isinstance(op, Cat):
            value = np.concatenate(ins, axis=op.axis)
            self.factors.append(Factor(name, None, sources, None, "cat"))
        else:
            value = np.asarray(op(ins[0], max_bytes=None), dtype=np.float64)
            self.factors.append(Factor(name, op, sources, site))
        if site is not None:
            self.sites.append(site)
        self.nodes.append(Node(name, op, inputs))
        self.values[name] = value
        self.taken.add(name)
        self.constant[name] = (self._propagate(op, inputs, value.shape)
                               if isinstance(constant, str) else constant)
        return value

    def _propagate(self, op: Layer | Sum | Cat, inputs: tuple[str, ...],
                   shape: tuple[int, ...]) -> np.ndarray | None:
        """Which entries of a node are locally constant (for the kink counts of the sites).

        A zero derivative makes an entry constant; element-wise maps, reshapes, sums (of
        constant entries) and concatenations carry what is known; other layers forget it.
        """
        masks = [self.constant.get(i) for i in inputs]
        if isinstance(op, Sum):
            if any(m is None for m in masks):
                return None
            return np.logical_and.reduce([m for m in masks if m is not None])
        if isinstance(op, Cat):
            if all(m is None for m in masks):
                return None
            return np.concatenate([np.zeros(self.values[i].shape, bool) if m is None else m
                                   for i, m in zip(inputs, masks, strict=True)], axis=op.axis)
        mask = masks[0]
        if isinstance(op, Scale):
            zero = np.broadcast_to(op.scale == 0, shape)
            return zero.copy() if mask is None else zero | mask
        if mask is not None and isinstance(op, Identity | Reshape):
            return mask.reshape(shape)
        return None

    def fresh(self, name: str) -> str:
        candidate, count = name, 0
        while candidate in self.taken:
            count += 1
            candidate = f"{name}_{count}"
        return candidate


def _require_torch_backend() -> None:
    import keras

    if keras.backend.backend() != "torch":
        raise ConvMatrixError(
            f"cm.linearize differentiates a Keras model with torch's autograd: run Keras on "
            f"the torch backend (KERAS_BACKEND=torch; this Keras runs "
            f"{keras.backend.backend()!r})")


def _elementwise(fn: Callable[[Any], Any], z: np.ndarray, where: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(f(z), f'(z))`` of an element-wise function at ``z`` (one sample), by autograd."""
    import torch

    tensor = torch.tensor(z[None], dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        out = fn(tensor)
        if tuple(out.shape) != tuple(tensor.shape):
            raise ConvMatrixError(
                f"{where}: the activation changes the shape {z.shape} → "
                f"{tuple(out.shape)[1:]}; it is not element-wise")
        (grad,) = torch.autograd.grad(out.sum(), tensor, allow_unused=True)
    derivative = np.zeros_like(z) if grad is None else grad[0].detach().double().numpy()
    return out[0].detach().double().numpy(), derivative


def _grid_lipschitz(fn: Callable[[Any], Any], name: str) -> float:
    """``sup |f'|`` of an element-wise function, measured on a fine grid (∞ if unbounded)."""
    if name == "exponential":
        return math.inf
    grid = np.linspace(-30.0, 30.0, 120001)
    _, derivative = _elementwise(fn, grid, name)
    return float(np.abs(derivative).max())


def _activation_site(name: str, op: str, kind: str, z: np.ndarray, derivative: np.ndarray,
                     lipschitz: float, kinks: tuple[float, ...],
                     constant: np.ndarray | None = None) -> Site:
    at_kink = np.isin(z, np.array(kinks, dtype=np.float64)) if kinks else np.zeros(z.shape, bool)
    if constant is not None:  # a kink of a locally constant input changes nothing near x
        at_kink &= ~constant.reshape(z.shape)
    on_kink = int(at_kink.sum())
    nonzero = int(np.count_nonzero(derivative))
    return Site(name, op, "activation", tuple(z.shape), nonzero,
                         derivative.size - nonzero, on_kink, kind in _PIECEWISE, lipschitz,
                         float(np.abs(derivative).max(initial=0.0)),
                         _CONVENTION if kinks else "")


def _activation_fn(value: Any, where: str) -> tuple[str, Callable[[Any], Any]]:
    """A layer's ``activation`` (a Keras function) and its name, checked element-wise."""
    name, shown = activation_name(value)
    if name in NOT_ELEMENTWISE or name not in ELEMENTWISE:
        raise ConvMatrixError(
            f"{where} applies activation={shown}, which is "
            + ("not element-wise (it mixes the values along an axis)" if name in NOT_ELEMENTWISE
               else "not an activation convmatrix knows to be element-wise")
            + ": it has no diagonal Jacobian convmatrix can linearise")
    if not callable(value):
        import keras

        value = keras.activations.get(value)
    assert name is not None
    return name, value


def _layer_activation(step: KerasStep, walk: _Walk, value: np.ndarray) -> np.ndarray:
    """An activation layer (``Activation``, ``ReLU``, ``LeakyReLU``, ``PReLU``, ``ELU``)."""
    operation = step.operation
    name = step.class_name
    where = f"`model`'s {step.where}"
    if name == "Activation":
        kind, fn = _activation_fn(operation.activation, where)
        lipschitz = _grid_lipschitz(fn, kind)
        kinks = _KINKS.get(kind, ())
    else:
        kind = ACTIVATION_LAYERS[name]
        if kind in NOT_ELEMENTWISE:
            raise ConvMatrixError(
                f"{where} is not element-wise (it mixes the values along an axis): it has no "
                f"diagonal Jacobian convmatrix can linearise")
        fn = operation.call  # call(), not __call__: no cast to the layer's compute dtype
        lipschitz, kinks = _layer_constants(operation, name)
    z = value
    out, derivative = _elementwise(fn, z, where)
    scale = Scale(z.shape, derivative, shift=out - derivative * z)
    site = _activation_site(step.name, name if name != "Activation" else kind, kind, z,
                            derivative, lipschitz, kinks, walk.constant.get(step.inputs[0]))
    return walk.add(step.name, scale, step.inputs, site)


def _layer_constants(layer: Any, name: str) -> tuple[float, tuple[float, ...]]:
    """Lipschitz constant and kinks of Keras' activation layers, from their parameters."""
    config = dict(layer.get_config())
    if name == "PReLU":
        slopes = np.abs(to_numpy(getattr(layer.alpha, "value", layer.alpha)))
        return max(1.0, float(slopes.max(initial=0.0))), (0.0,)
    if name == "LeakyReLU":
        given = config.get("negative_slope", config.get("alpha"))
        slope = 0.3 if given is None else float(given)
        return max(1.0, abs(slope)), (0.0,)
    if name == "ELU":  # continuously differentiable when alpha is 1
        alpha = float(config.get("alpha", 1.0))
        return max(1.0, abs(alpha)), (() if alpha == 1.0 else (0.0,))
    slope = float(config.get("negative_slope", 0.0) or 0.0)
    threshold = float(config.get("threshold", 0.0) or 0.0)
    top = config.get("max_value")
    kinks = (threshold,) if top is None else (threshold, float(top))
    return max(1.0, abs(slope)), kinks


def _with_activation(step: KerasStep, walk: _Walk, value: np.ndarray) -> np.ndarray:
    """``Dense``/``Conv*`` with ``activation=``: the affine part, then the activation's diagonal."""
    where = f"`model`'s {step.where}"
    kind, fn = _activation_fn(step.operation.activation, where)
    linear = read_keras_layer(step.operation, step.input_shapes[0], where=where,
                              linear_part=True)
    pre = walk.fresh(f"{step.name}.linear")
    z = walk.add(pre, linear, step.inputs)
    out, derivative = _elementwise(fn, z, where)
    scale = Scale(z.shape, derivative, shift=out - derivative * z)
    site = _activation_site(step.name, kind, kind, z, derivative, _grid_lipschitz(fn, kind),
                            _KINKS.get(kind, ()))
    return walk.add(step.name, scale, (pre,), site)


def _ints(value: Any, rank: int) -> tuple[int, ...]:
    items = tuple(value) if isinstance(value, list | tuple) else (value,) * rank
    return tuple(int(v) for v in items)


def _max_pooling(step: KerasStep, walk: _Walk, value: np.ndarray) -> np.ndarray:
    config = dict(step.operation.get_config())
    name = step.class_name
    rank = int(name[-2])
    last = (config.get("data_format") or "channels_last") == "channels_last"
    x = np.moveaxis(value, -1, 0) if last else value
    pool = _ints(config.get("pool_size", 2), rank)
    strides = _ints(config.get("strides") or pool, rank)
    padding = str(config.get("padding", "valid")).lower()
    pairs = [(0, 0)] * rank
    if padding == "same":  # Keras' torch backend: total k-1 at stride 1, the extra after
        for axis, (n, k, s) in enumerate(zip(x.shape[1:], pool, strides, strict=True)):
            total = k - 1 if s == 1 else max(0, (-(-n // s) - 1) * s + k - n)
            pairs[axis] = (total // 2, total - total // 2)
    mask = walk.constant.get(step.inputs[0])
    if mask is not None and last:
        mask = np.moveaxis(mask, -1, 0)
    if all(a == b for a, b in pairs):
        core: Layer = MaxPoolAt(x, pool, strides, tuple(a for a, _ in pairs))
        winners = core
    else:  # asymmetric: Keras pads by replicating the edge, then pools without padding
        pad = Pad(x.shape, tuple(v for pair in reversed(pairs) for v in pair),
                  mode="replicate")
        winners = MaxPoolAt(pad(x), pool, strides, 0)
        core = Sequential([pad, winners])
        if mask is not None:
            mask = np.pad(mask, [(0, 0), *pairs], mode="edge")
    layer = ChannelsLast(core, name) if last else core
    kinks, out = _live(winners, mask)
    site = _selection_site(step.name, name, winners, value.shape, _POOL_CONVENTION, kinks)
    return walk.add(step.name, layer, step.inputs, site,
                    None if out is None or not last else np.moveaxis(out, 0, -1))


def _live(pool: Any, mask: np.ndarray | None) -> tuple[int, np.ndarray | None]:
    """Tied windows not all among locally constant inputs, and the constant outputs."""
    live = getattr(pool, "live_kinks", None)
    outputs = getattr(pool, "constant_outputs", None)
    if live is None or outputs is None:
        return int(getattr(pool, "kinks", 0)), None
    return int(live(mask)), outputs(mask)


def _selection_site(name: str, op: str, pool: Any, shape: tuple[int, ...],
                    convention: str, tied: int) -> Site:
    picked = int(np.unique(pool.winners).size)
    units = math.prod(shape)
    windows = math.prod(pool.output_shape)
    return Site(name, op, "selection", tuple(shape), windows, units - picked, tied,
                         True, math.sqrt(_max_windows_per_input(pool)),
                         1.0 if windows else 0.0, convention)


def _max_windows_per_input(pool: Any) -> int:
    """The most windows one input can be read by (the pool's Lipschitz constant squared)."""
    pattern = getattr(pool, "_window_pattern", None)
    if pattern is None:
        return 1
    counts = np.bincount(np.asarray(pattern()).ravel())
    return max(int(counts.max(initial=1)), 1)


def _global_max_pooling(step: KerasStep, walk: _Walk, value: np.ndarray) -> np.ndarray:
    config = dict(step.operation.get_config())
    last = (config.get("data_format") or "channels_last") == "channels_last"
    x = np.moveaxis(value, -1, 0) if last else value
    pool = GlobalMaxPoolAt(x, ties="split")
    layer: Layer = ChannelsLast(pool, step.class_name) if last else pool
    mask = walk.constant.get(step.inputs[0])
    kinks, out = _live(pool, None if mask is None else np.moveaxis(mask, -1, 0) if last
                       else mask)
    if out is not None and last:
        out = np.moveaxis(out, 0, -1)
    if not config.get("keepdims", False):
        layer = Sequential([layer, Reshape(layer.output_shape, (x.shape[0],))])
        out = None if out is None else out.reshape(x.shape[0])
    site = _selection_site(step.name, step.class_name, pool, value.shape, _GLOBAL_CONVENTION,
                           kinks)
    return walk.add(step.name, layer, step.inputs, site, out)


def _norm_axes(axis: Any, ndim: int, where: str) -> tuple[int, ...]:
    items = tuple(axis) if isinstance(axis, list | tuple) else (axis,)
    full = ndim + 1
    axes = []
    for item in items:
        if isinstance(item, bool) or not hasattr(item, "__index__") \
                or not -full <= int(item) < full or int(item) % full == 0:
            raise ConvMatrixError(f"{where}: `axis` (={axis!r}) must name sample axes")
        axes.append(int(item) % full - 1)
    return tuple(sorted(set(axes)))


def _normalization(step: KerasStep, walk: _Walk, value: np.ndarray) -> np.ndarray:
    operation = step.operation
    config = dict(operation.get_config())
    where = f"`model`'s {step.where}"
    eps = float(config.get("epsilon", 1e-3))
    gamma = getattr(operation, "gamma", None)
    beta = getattr(operation, "beta", None)
    weight = None if gamma is None else to_numpy(getattr(gamma, "value", gamma))
    bias = None if beta is None else to_numpy(getattr(beta, "value", beta))
    if step.class_name == "LayerNormalization":
        if config.get("rms_scaling"):
            raise ConvMatrixError(f"{where} uses rms_scaling=True, which is not linearised")
        axes = _norm_axes(config.get("axis", -1), value.ndim, where)
        trailing = tuple(range(value.ndim - len(axes), value.ndim))
        if axes != trailing:
            raise ConvMatrixError(
                f"{where} normalises over sample axes {axes}; convmatrix linearises a "
                f"LayerNormalization over trailing axes (e.g. axis=-1)")
        shape = value.shape[value.ndim - len(axes):]
        layer: Layer = LayerNormAt(value, shape, weight=_fit(weight, shape),
                                   bias=_fit(bias, shape), eps=eps)
        op = "LayerNormalization"
    else:
        axis = _norm_axes(config.get("axis", -1), value.ndim, where)
        if axis != (value.ndim - 1,):
            raise ConvMatrixError(
                f"{where} has its channels on axis {axis}; convmatrix linearises a "
                f"GroupNormalization with channels last (axis=-1)")
        x = np.moveaxis(value, -1, 0)
        core = GroupNormAt(x, int(config["groups"]), weight=weight, bias=bias, eps=eps)
        layer = ChannelsLast(core, "GroupNormalization")
        op = "GroupNormalization"
    site = Site(step.name, op, "normalization", tuple(value.shape), value.size, 0, 0,
                         False, math.inf, 0.0)
    return walk.add(step.name, layer, step.inputs, site)


def _fit(values: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    return None if values is None else np.asarray(values).reshape(shape)


_JACOBIANS: dict[str, Callable[[KerasStep, _Walk, np.ndarray], np.ndarray]] = {
    **{f"{kind}{n}D": _max_pooling for kind in ("MaxPooling", "MaxPool") for n in (1, 2, 3)},
    **{f"{kind}{n}D": _global_max_pooling for kind in ("GlobalMaxPooling", "GlobalMaxPool")
       for n in (1, 2, 3)},
    "LayerNormalization": _normalization, "GroupNormalization": _normalization,
    **{name: _layer_activation for name in ACTIVATION_LAYERS},
    "Activation": _layer_activation,
}


def _linear_activation(step: KerasStep) -> bool:
    """``Activation("linear")``: read as the identity."""
    return step.class_name == "Activation" and activation_name(
        getattr(step.operation, "activation", None))[0] is None


def _has_activation(step: KerasStep) -> bool:
    if step.is_op or step.class_name not in KERAS_READERS or step.class_name == "Activation":
        return False
    return activation_name(getattr(step.operation, "activation", None))[0] is not None


def _linearize_graph(model: Any, sample: np.ndarray, walk: _Walk, prefix: str,
                     input_name: str | None) -> tuple[str, tuple[int, ...]]:
    """Walk ``model`` at ``sample`` into ``walk``; returns the output node and input shape."""
    root, shape, steps, output, _ = keras_steps(model, sample.shape)
    rename: dict[str, str] = {}
    if input_name is None:
        input_name = walk.root = root
        walk.values[root] = sample
        walk.taken.update((root, "input"))
    rename[root] = input_name
    for step in steps:
        inputs = tuple(rename[i] for i in step.inputs)
        name = walk.fresh(prefix + step.name)
        rename[step.name] = name
        filled = replace(step, name=name, inputs=inputs,
                         input_shapes=tuple(walk.values[i].shape for i in inputs))
        value = walk.values[inputs[0]] if inputs else sample
        if not filled.is_op and (is_keras_model(step.operation)
                                 or type(step.operation).__name__ == "Sequential"):
            inner_output, _ = _linearize_graph(step.operation, value, walk, f"{name}/",
                                               inputs[0])
            rename[step.name] = inner_output
            continue
        if not filled.is_op and filled.class_name in _JACOBIANS and not _linear_activation(
                filled):
            _check_inference(filled)
            _JACOBIANS[filled.class_name](filled, walk, value)
        elif _has_activation(filled):
            _check_inference(filled)
            _with_activation(filled, walk, value)
        else:
            walk.add(name, translate_step(filled, _no_model), inputs)
        symbolic = tuple(step.node.outputs[0].shape)[1:]
        got = walk.values[rename[step.name]].shape
        if len(symbolic) != len(got) or any(w is not None and w != g
                                            for w, g in zip(symbolic, got, strict=False)):
            raise ConvMatrixError(
                f"`model`'s {filled.where}: linearised with the output {got}, but Keras gives "
                f"it {symbolic}")
    return rename[output], shape


def _check_inference(step: KerasStep) -> None:
    training = dict(step.node.arguments.kwargs).get("training")
    if training:
        raise ConvMatrixError(
            f"`model`'s {step.where} is called with training={training!r}: no fixed map of "
            f"one sample")


def _no_model(model: Any, shape: tuple[int, ...]) -> Layer:  # pragma: no cover - walked above
    raise ConvMatrixError("a model inside the model is linearised node by node")


def linearize_keras(model: Any, x: Any) -> Linearization:
    """A Keras model's exact Jacobian at ``x`` (:func:`convmatrix.linearize` for Keras).

    Parameters
    ----------
    model : keras.Model
        Functional, ``Sequential`` or a subclassed model whose ``call`` traces, built from the
        layers :func:`~convmatrix.from_keras` reads and the non-linearities in the module
        docstring; Keras on the torch backend.
    x : array_like or torch.Tensor
        One input exactly as the model takes it, with its batch axis of 1, channels last.

    Returns
    -------
    Linearization
        On one sample (``x.shape[1:]``, Keras' layout): ``matrix()`` the Jacobian at ``x``,
        ``offset()`` ``f(x) − J x``; ``sites`` the activation pattern. The point is carried
        in float64 (the affine layers as convmatrix reads them, the non-linearities by
        Keras' own functions on float64 tensors), so ``J x + offset`` is convmatrix's
        float64 evaluation of the network, which Keras' own output matches to its dtype.
    """
    _require_torch_backend()
    sample = keras_point(x)
    walk = _Walk([], [], [], {}, set())
    output, shape = _linearize_graph(model, sample, walk, "", None)
    if not walk.nodes:
        raise ConvMatrixError("`model` has no layers between its input and its output")
    root = walk.root
    layer = _assemble(walk, root, shape, output)
    return Linearization(layer, sample, walk.values[output], walk.sites, walk.factors,
                                  "keras", output)


def _assemble(walk: _Walk, root: str, shape: tuple[int, ...], output: str) -> Layer:
    nodes = walk.nodes
    chain = output == nodes[-1].name and all(
        isinstance(n.op, Layer) and n.inputs == ((root,) if i == 0 else (nodes[i - 1].name,))
        for i, n in enumerate(nodes))
    if chain:
        layers = [n.op for n in nodes if isinstance(n.op, Layer)]
        return layers[0] if len(layers) == 1 else Sequential(layers)
    return Graph(shape, nodes, output, input=root)
