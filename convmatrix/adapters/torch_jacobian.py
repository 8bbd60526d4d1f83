"""Non-linear torch operations as layers at a point: their exact Jacobian, torch's conventions.

The translator :func:`torch_jacobian` turns one non-linear operation (a module such as
``nn.ReLU``/``nn.MaxPool2d``/``nn.GroupNorm``, or a function such as ``F.gelu``,
``torch.relu``, ``F.max_pool2d``, ``F.layer_norm``) applied to a known input into the layer
of its exact Jacobian there, with the offset ``f(z) − J z`` (the tangent map) and a
:class:`~convmatrix.layers.linearization.Site` saying what the point decided.

* Element-wise activations: a :class:`~convmatrix.Scale` whose diagonal is the derivative at
  the pre-activation, computed by torch's own autograd, so a kink gets torch's convention
  (``ReLU'(0) = 0``, ``Hardtanh'`` is 0 at both ends, ``LeakyReLU'(0)`` is the slope).
* Max pooling: :class:`~convmatrix.MaxPoolAt` and kin, ties to the first maximum in the
  window (torch's kernels and backward); ``amax`` reductions share a tie.
* GroupNorm, LayerNorm, InstanceNorm (by the input's statistics): the dense-per-group
  Jacobians of :mod:`convmatrix.layers.stat_norm`.
* Element-wise functions decompositions use (``exp``, ``log1p``, ``erf``, ``x ** p``, ...):
  activations without a torch module; gated units (``nn.GLU``, ``F.glu``): a product of the
  input's two halves.
* In a graph (:class:`FxJacobian`), element-wise operations of several branches (products,
  quotients, ``where``, ``maximum``, comparisons): :mod:`convmatrix.adapters.torch_branches`.

torch is imported only inside functions.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from convmatrix._arrays import to_numpy
from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.torch_branches import (
    BRANCH_OPS,
    branch_jacobian,
    elementwise_partials,
    is_branch_op,
)
from convmatrix.adapters.torch_fx import FxCall, branch_node
from convmatrix.layers.base import Layer
from convmatrix.layers.graph import Cat, Node, Sum
from convmatrix.layers.linearization import Site, constant_after
from convmatrix.layers.selection import AdaptiveMaxPoolAt, GlobalMaxPoolAt, MaxPoolAt, MaxSelection
from convmatrix.layers.stat_norm import GroupNormAt, InstanceNormAt, LayerNormAt, StatNormAt

__all__ = ["ACTIVATIONS", "LINEARIZED_FUNCTIONS", "LINEARIZED_MODULES", "TRAINING_SENSITIVE",
           "Activation", "FxJacobian", "activation_site", "is_jacobian_op", "run_float64",
           "running_norm", "torch_jacobian"]

Params = Any  # an object whose attributes are the operation's parameters


@dataclass(frozen=True)
class Activation:
    """What convmatrix knows about one element-wise activation.

    Attributes
    ----------
    kinks : callable
        ``params → tuple of float or ndarray``: the points where the derivative jumps (an
        array: one point per entry, broadcast onto the input).
    piecewise_linear : bool
    lipschitz : callable or None
        ``params → float``: the global Lipschitz constant; None: the supremum of ``|f'|``
        measured on a fine grid (smooth activations).
    convention : callable
        ``params → str``: torch's derivative at the kinks.
    """

    kinks: Callable[[Params], tuple[float | np.ndarray, ...]]
    piecewise_linear: bool
    lipschitz: Callable[[Params], float] | None
    convention: Callable[[Params], str]


def _none(_: Params) -> tuple[float, ...]:
    return ()


def _no_convention(_: Params) -> str:
    return ""


def _one(_: Params) -> float:
    return 1.0


def _unbounded(_: Params) -> float:
    return math.inf


def _attr(params: Params, name: str, default: Any) -> Any:
    value = getattr(params, name, default)
    return default if value is None else value


def _slope(params: Params) -> float:
    return float(_attr(params, "negative_slope", 0.01))


def _prelu_slopes(params: Params) -> np.ndarray:
    return to_numpy(params.weight).astype(np.float64).reshape(-1)


def _rrelu_slope(params: Params) -> float:
    return (float(_attr(params, "lower", 1 / 8)) + float(_attr(params, "upper", 1 / 3))) / 2


def _elu_alpha(params: Params) -> float:
    return float(_attr(params, "alpha", 1.0))


_SELU = (1.0507009873554804934193349852946, 1.6732632423543772848170429916717)


def _clamp_bounds(params: Params) -> tuple[float | np.ndarray, ...]:
    """``clamp``'s bounds given (``min``/``max`` by name or position) as the kinks.

    A number is one kink for every entry; a constant tensor (a buffer broadcast onto the
    input, such as per-channel bounds of shape ``(1, C, 1, 1)``) gives each entry its own.
    """
    positional = tuple(getattr(params, "_args", ()))
    kinks: list[float | np.ndarray] = []
    for index, name in enumerate(("min", "max")):
        bound = _attr(params, name, positional[index] if len(positional) > index else None)
        if bound is None:
            continue
        array = np.asarray(bound if isinstance(bound, int | float) else to_numpy(bound),
                           dtype=np.float64)
        kinks.append(float(array.reshape(-1)[0]) if array.size == 1 else array)
    return tuple(kinks)


def _on_kinks(kinks: tuple[float | np.ndarray, ...], z: np.ndarray) -> np.ndarray:
    """Which entries of one sample ``z`` sit on a kink (a tensor kink has a batch axis of 1)."""
    at_kink = np.zeros(z.shape, bool)
    for kink in kinks:
        array = np.asarray(kink, dtype=np.float64)
        if array.ndim > z.ndim:
            array = np.broadcast_to(array, (1, *z.shape))[0]
        at_kink |= z == np.broadcast_to(array, z.shape)
    return at_kink


ACTIVATIONS: dict[str, Activation] = {
    "ReLU": Activation(lambda p: (0.0,), True, _one, lambda p: "ReLU'(0) = 0 (torch)"),
    "LeakyReLU": Activation(
        lambda p: (0.0,) if _slope(p) != 1 else (), True,
        lambda p: max(1.0, abs(_slope(p))), lambda p: "LeakyReLU'(0) = negative_slope (torch)"),
    "PReLU": Activation(
        lambda p: (0.0,), True, lambda p: max(1.0, float(np.abs(_prelu_slopes(p)).max())),
        lambda p: "PReLU'(0) = the slope (torch)"),
    "RReLU": Activation(
        lambda p: (0.0,), True, lambda p: max(1.0, abs(_rrelu_slope(p))),
        lambda p: "RReLU in eval: slope (lower+upper)/2; RReLU'(0) = the slope (torch)"),
    "ReLU6": Activation(lambda p: (0.0, 6.0), True, _one,
                        lambda p: "ReLU6' = 0 at 0 and 6 (torch)"),
    "Hardtanh": Activation(
        lambda p: (float(_attr(p, "min_val", -1.0)), float(_attr(p, "max_val", 1.0))), True,
        _one, lambda p: "Hardtanh' = 0 at min_val and max_val (torch)"),
    "Threshold": Activation(
        lambda p: (float(p.threshold),), True,
        lambda p: 1.0 if float(p.value) == float(p.threshold) else math.inf,
        lambda p: "Threshold'(threshold) = 0 (torch)"),
    "Hardshrink": Activation(
        lambda p: (-float(_attr(p, "lambd", 0.5)), float(_attr(p, "lambd", 0.5))), True,
        lambda p: 1.0 if float(_attr(p, "lambd", 0.5)) == 0 else math.inf,
        lambda p: "Hardshrink' = 0 at ±lambd (torch)"),
    "Softshrink": Activation(
        lambda p: (-float(_attr(p, "lambd", 0.5)), float(_attr(p, "lambd", 0.5))), True, _one,
        lambda p: "Softshrink' = 0 at ±lambd (torch)"),
    "Hardsigmoid": Activation(lambda p: (-3.0, 3.0), True, lambda p: float(np.float32(1 / 6)),
                              lambda p: "Hardsigmoid' = 0 at ±3 (torch)"),
    "Hardswish": Activation(lambda p: (-3.0, 3.0), False, lambda p: 1.5,
                            lambda p: "Hardswish'(−3) = 0, Hardswish'(3) = 1 (torch)"),
    "ELU": Activation(
        lambda p: (0.0,) if _elu_alpha(p) != 1 else (), False,
        lambda p: max(1.0, abs(_elu_alpha(p))), lambda p: "ELU'(0) = alpha (torch)"),
    "CELU": Activation(_none, False, _one, _no_convention),
    "SELU": Activation(lambda p: (0.0,), False, lambda p: _SELU[0] * _SELU[1],
                       lambda p: "SELU'(0) = scale·alpha (torch)"),
    "GELU": Activation(_none, False, None, _no_convention),
    "SiLU": Activation(_none, False, None, _no_convention),
    "Mish": Activation(_none, False, None, _no_convention),
    "Sigmoid": Activation(_none, False, lambda p: 0.25, _no_convention),
    "LogSigmoid": Activation(_none, False, _one, _no_convention),
    "Tanh": Activation(_none, False, _one, _no_convention),
    "Tanhshrink": Activation(_none, False, _one, _no_convention),
    "Softsign": Activation(_none, False, _one, _no_convention),
    "Softplus": Activation(_none, False, _one, _no_convention),
    "Clamp": Activation(_clamp_bounds, True, _one,
                        lambda p: "clamp' = 1 at min and max (torch: the bounds pass)"),
    "Abs": Activation(lambda p: (0.0,), True, _one, lambda p: "abs'(0) = 0 (torch)"),
    **{kind: Activation(_none, False, _unbounded, _no_convention) for kind in (
        "Exp", "Expm1", "Log", "Log1p", "Reciprocal", "Sqrt", "Rsqrt", "Square", "Pow")},
    "Erf": Activation(_none, False, None, _no_convention),
    "Sin": Activation(_none, False, _one, _no_convention),
    "Cos": Activation(_none, False, _one, _no_convention),
    "Sign": Activation(lambda p: (0.0,), True, _unbounded,
                       lambda p: "sign' = 0, also at its jump at 0 (torch)"),
}
"""torch activation (module class name) → its kinks, Lipschitz constant and convention."""

_FUNCTIONS: dict[str, str] = {
    "relu": "ReLU", "relu_": "ReLU", "leaky_relu": "LeakyReLU", "leaky_relu_": "LeakyReLU",
    "prelu": "PReLU", "rrelu": "RReLU", "rrelu_with_noise_functional": "RReLU",
    "relu6": "ReLU6", "hardtanh": "Hardtanh",
    "hardtanh_": "Hardtanh", "threshold": "Threshold", "hardshrink": "Hardshrink",
    "softshrink": "Softshrink", "hardsigmoid": "Hardsigmoid", "hardswish": "Hardswish",
    "elu": "ELU", "elu_": "ELU", "celu": "CELU", "selu": "SELU", "gelu": "GELU",
    "silu": "SiLU", "mish": "Mish", "sigmoid": "Sigmoid", "logsigmoid": "LogSigmoid",
    "tanh": "Tanh", "tanhshrink": "Tanhshrink", "softsign": "Softsign",
    "softplus": "Softplus", "sigmoid_": "Sigmoid", "tanh_": "Tanh", "clamp": "Clamp",
    "clamp_": "Clamp", "clip": "Clamp", "clip_": "Clamp", "abs": "Abs", "abs_": "Abs",
    "absolute": "Abs", "exp": "Exp", "exp_": "Exp", "expm1": "Expm1", "log": "Log",
    "log_": "Log", "log1p": "Log1p", "reciprocal": "Reciprocal", "sqrt": "Sqrt",
    "rsqrt": "Rsqrt", "square": "Square", "pow": "Pow", "erf": "Erf", "sin": "Sin",
    "cos": "Cos", "sign": "Sign", "log_sigmoid": "LogSigmoid",
}
"""function or method name (``F.relu``, ``torch.relu``, ``x.relu()``) → activation."""

_MAX_POOLS = {f"MaxPool{n}d": n for n in (1, 2, 3)}
_ADAPTIVE_MAX_POOLS = {f"AdaptiveMaxPool{n}d": n for n in (1, 2, 3)}
_NORMS = {"GroupNorm", "LayerNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"}

_FUNCTION_ONLY = frozenset({"Clamp", "Abs", "Exp", "Expm1", "Log", "Log1p", "Reciprocal",
                            "Sqrt", "Rsqrt", "Square", "Pow", "Erf", "Sin", "Cos", "Sign"})
"""Activations torch has no module for (``torch.clamp``, ``torch.exp``): never a class name."""

_GATES = {"GLU"}
"""Gated units: the product of one half of the input with a function of the other."""

LINEARIZED_MODULES = frozenset({*(set(ACTIVATIONS) - _FUNCTION_ONLY), *_MAX_POOLS,
                                *_ADAPTIVE_MAX_POOLS, *_NORMS, *_GATES})
"""Module class names :func:`torch_jacobian` linearises (``from_torch`` refuses them as not
affine, pointing to ``cm.linearize``)."""

LINEARIZED_FUNCTIONS = frozenset({
    *(name.rstrip("_") for name in _FUNCTIONS),
    *(f"{kind}{n}d{tail}" for kind in ("max_pool", "adaptive_max_pool") for n in (1, 2, 3)
      for tail in ("", "_with_indices")),
    "group_norm", "layer_norm", "instance_norm", "amax", "max", "native_group_norm",
    "native_layer_norm", "_native_batch_norm_legit", "glu", *BRANCH_OPS})
"""Function and method names (in-place forms without their ``_``) :func:`torch_jacobian`
linearises."""

TRAINING_SENSITIVE = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm",
                      "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                      "FeatureAlphaDropout", "RReLU")
"""Module classes that compute something else in training mode (refused by linearize)."""


def is_jacobian_op(op: Any) -> bool:
    """True when :func:`torch_jacobian` knows ``op`` (a module, a function or a method name)."""
    return _name_of(op) is not None


def _name_of(op: Any) -> str | None:
    """The registry name of a module, function or method name (None: not a non-linearity)."""
    if isinstance(op, str):
        name = op
    elif hasattr(op, "forward") and hasattr(op, "named_modules"):
        cls = type(op).__name__
        return cls if cls in LINEARIZED_MODULES else None
    else:
        name = _aten_name(op) or str(getattr(op, "__name__", ""))
    if name in _ATEN_NORMS and (name != "_native_batch_norm_legit"
                                or getattr(op, "_overloadname", "") == "no_stats"):
        return _ATEN_NORMS[name]
    if name in _FUNCTIONS:
        return _FUNCTIONS[name]
    for n in (1, 2, 3):
        if name in (f"max_pool{n}d", f"max_pool{n}d_with_indices"):
            return f"MaxPool{n}d"
        if name in (f"adaptive_max_pool{n}d", f"adaptive_max_pool{n}d_with_indices"):
            return f"AdaptiveMaxPool{n}d"
    if name in ("group_norm", "layer_norm", "instance_norm", "amax", "max", "glu"):
        return {"group_norm": "GroupNorm", "layer_norm": "LayerNorm",
                "instance_norm": "InstanceNorm", "amax": "amax", "max": "max",
                "glu": "GLU"}[name]
    return None


_ATEN_NORMS = {"native_group_norm": "GroupNorm", "native_layer_norm": "LayerNorm",
               "_native_batch_norm_legit": "InstanceNorm"}
"""``aten`` normalisations of ``torch.export``'s decomposed graphs (their value is a tuple:
the output, then the statistics). ``_native_batch_norm_legit.no_stats`` (batch statistics
without running ones) is how ``instance_norm`` decomposes: on one sample, per channel."""


def _aten_name(op: Any) -> str | None:
    """An ``aten`` operator's base name (``aten.relu.default`` → ``"relu"``), else None."""
    schema = getattr(op, "_schema", None)
    return None if schema is None else str(schema.name).split("::")[-1]


def _bind_schema(op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SimpleNamespace:
    """An ``aten`` call's arguments by their schema names (defaults applied), the input first.

    ``native_group_norm``'s ``group`` is also ``num_groups`` (``F.group_norm``'s name).
    """
    arguments: dict[str, Any] = {}
    for index, argument in enumerate(op._schema.arguments[1:]):
        if index < len(args):
            arguments[argument.name] = args[index]
        elif argument.name in kwargs:
            arguments[argument.name] = kwargs[argument.name]
        elif argument.has_default_value():
            arguments[argument.name] = argument.default_value
    if "group" in arguments:
        arguments["num_groups"] = arguments["group"]
    return SimpleNamespace(**arguments)


_SUP: dict[str, float] = {}


def _grid_sup(fn: Callable[[Any], Any], key: str) -> float:
    """``sup |f'|`` of a smooth activation, measured on [−40, 40] (step 1e-4), rounded up.

    Cached by ``key`` (the activation with its parameters).
    """
    if key not in _SUP:
        import torch

        z = torch.linspace(-40.0, 40.0, 800_001, dtype=torch.float64, requires_grad=True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(fn(z).sum(), z)
        _SUP[key] = float(grad.abs().max()) * (1 + 1e-6)
    return _SUP[key]


def _derivative(fn: Callable[[Any], Any], z: Any, kind: str = "") -> tuple[Any, Any]:
    """``(f(z), f'(z))`` of an element-wise ``fn`` by torch's autograd (its conventions).

    ReLU takes a shortcut with the same result: torch's backward passes the gradient where
    the input is positive (``threshold_backward``), so ``f'(z) = [z > 0]``, ``ReLU'(0) = 0``.
    """
    import torch

    if kind == "ReLU":
        with torch.no_grad():
            return torch.relu(z), (z > 0).to(z.dtype)
    leaf = z.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = fn(leaf.clone())
        (grad,) = torch.autograd.grad(out, leaf, torch.ones_like(out))
    return out.detach(), grad.detach()


def activation_site(kind: str, params: Params, z: np.ndarray, derivative: np.ndarray,
                    name: str, op: str, smooth_fn: Callable[[Any], Any] | None = None,
                    key: str = "", constant: np.ndarray | None = None) -> Site:
    """The :class:`Site` of an element-wise activation at pre-activations ``z`` (one sample).

    ``kind`` is a key of :data:`ACTIVATIONS`; ``smooth_fn`` the torch function whose
    ``sup |f'|`` is measured when the registry has no closed form (cached under ``key``: the
    activation and its parameters); ``constant`` marks inputs that are locally constant (a
    kink there changes nothing), or None.
    """
    spec = ACTIVATIONS[kind]
    at_kink = _on_kinks(spec.kinks(params), z)
    if constant is not None:
        at_kink &= ~constant.reshape(z.shape)
    on_kink = int(at_kink.sum())
    nonzero = int(np.count_nonzero(derivative))
    if spec.lipschitz is not None:
        lipschitz = float(spec.lipschitz(params))
    elif smooth_fn is not None:
        lipschitz = _grid_sup(smooth_fn, key or kind)
    else:  # pragma: no cover - every smooth activation passes its function
        lipschitz = math.inf
    return Site(name, op, "activation", tuple(z.shape), nonzero, derivative.size - nonzero,
                on_kink, spec.piecewise_linear, lipschitz,
                float(np.abs(derivative).max(initial=0.0)), spec.convention(params))


def _bind(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SimpleNamespace:
    """A functional call's arguments by name (defaults applied), the input first.

    Builtins without a signature (``torch.relu``, tensor methods) keep their positional
    arguments as ``_args``.
    """
    if hasattr(fn, "_schema"):  # an aten operator (torch.export): its schema names them
        return _bind_schema(fn, args, kwargs)
    name = getattr(fn, "__name__", "")
    if name.startswith(("max_pool", "adaptive_max_pool")) and not name.endswith("indices"):
        import torch.nn.functional as F

        fn = getattr(F, f"{name}_with_indices", fn)  # the dispatcher has no signature
    try:
        bound = inspect.signature(fn).bind(None, *args, **kwargs)
    except (TypeError, ValueError):
        return SimpleNamespace(_args=args, **kwargs)
    bound.apply_defaults()
    arguments = dict(list(bound.arguments.items())[1:])
    parameters = inspect.signature(fn).parameters
    for key in list(arguments):
        if parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(arguments.pop(key))
        elif parameters[key].kind is inspect.Parameter.VAR_POSITIONAL:
            arguments["_args"] = arguments.pop(key)
    return SimpleNamespace(**arguments)


def torch_jacobian(op: Any, z: Any, args: tuple[Any, ...] = (),
                   kwargs: dict[str, Any] | None = None, *, name: str = "",
                   constant: np.ndarray | None = None) -> tuple[Layer, Site, Any]:
    """The Jacobian layer of one non-linear torch operation at its input ``z``.

    Parameters
    ----------
    op : torch.nn.Module, callable or str
        A module (``nn.ReLU()``, ``nn.MaxPool2d(2)``, ``nn.GroupNorm(2, 4)``, ...), a function
        (``F.relu``, ``torch.tanh``, ``F.max_pool2d``, ``F.layer_norm``, ``torch.amax``) or a
        tensor method's name (``"relu"``, ``"amax"``).
    z : torch.Tensor
        The operation's input, a batch of one sample (float64 for exact comparisons).
    args, kwargs : optional
        The call's other arguments (functions and methods only), as in the call.
    name : str, optional
        Where it is in the model, for the :class:`Site` and errors.
    constant : ndarray of bool, optional
        Which entries of the input are locally constant (they do not change near the point):
        a kink or a tie among those only is not counted (see
        :func:`~convmatrix.layers.linearization.constant_after`).

    Returns
    -------
    (Layer, Site, torch.Tensor)
        The tangent map on one sample, what the point decided, and the operation's output.
    """
    import torch

    kwargs = dict(kwargs or {})
    kind = _name_of(op)
    where = name or "the operation"
    if kind is None:
        raise ConvMatrixError(f"{where} ({_op_text(op)}) is not a non-linearity convmatrix "
                              f"can linearise")
    if z.shape[0] != 1:
        raise ConvMatrixError(f"{where}: the input has batch size {z.shape[0]}; linearize "
                              f"works on one sample (batch axis of 1)")
    is_module = hasattr(op, "forward") and hasattr(op, "named_modules")
    if is_module:
        def call(t: Any) -> Any:
            return op(t)
        params: Params = op
    elif isinstance(op, str):
        def call(t: Any) -> Any:
            return getattr(t, op)(*args, **kwargs)
        params = _bind(getattr(torch.Tensor, op, None), args, kwargs)
    else:
        def call(t: Any) -> Any:
            return op(t, *args, **kwargs)
        params = _bind(op, args, kwargs)
    sample = np.asarray(to_numpy(z[0]), dtype=np.float64)
    if kind in ACTIVATIONS:
        return _activation(kind, call, params, z, sample, where, _op_text(op), constant)
    if kind in _MAX_POOLS or kind in _ADAPTIVE_MAX_POOLS:
        out = call(z)
        if isinstance(out, tuple | list) and is_module:
            raise ConvMatrixError(f"{where} ({_op_text(op)}) returns the indices too "
                                  f"(return_indices=True): a second output convmatrix "
                                  f"does not follow")
        if isinstance(out, tuple | list):  # F.max_pool2d_with_indices, aten: (values, indices)
            out = out[0]
        pool = _max_pool(kind, params, sample)
        return pool, _selection_site(pool, where, _op_text(op), constant), out.detach()
    if kind in ("amax", "max"):
        return _reduction_max(kind, call, params, z, sample, where, _op_text(op), constant)
    if kind in _GATES:
        return _glu(call, params, z, sample, where, _op_text(op))
    out = call(z)
    if isinstance(out, tuple | list):  # aten.native_group_norm & co.: (output, statistics)
        out = out[0]
    if is_module and getattr(op, "track_running_stats", False) and not op.training \
            and kind.startswith("InstanceNorm"):
        return running_norm(op, sample.shape), _affine_site(sample, op, where), \
            out.detach()
    layer = _norm(kind, op if is_module else None, params, sample, where)
    return layer, _norm_site(layer, where, _op_text(op)), out.detach()


def _op_text(op: Any) -> str:
    if isinstance(op, str):
        return f".{op}()"
    if hasattr(op, "forward") and hasattr(op, "named_modules"):
        return type(op).__name__
    if hasattr(op, "_schema"):
        return str(op)  # aten.relu.default
    import torch.nn.functional as F

    name = getattr(op, "__name__", repr(op))
    return ("F." if getattr(F, name, None) is op else "torch.") + name


def _activation(kind: str, call: Callable[[Any], Any], params: Params, z: Any,
                sample: np.ndarray, where: str, text: str, constant: np.ndarray | None
                ) -> tuple[Layer, Site, Any]:
    import torch

    from convmatrix.layers.scale import Scale

    if kind == "RReLU" and getattr(params, "training", False):
        raise ConvMatrixError(f"{where} (RReLU) is in training mode: its slopes are random; "
                              f"call .eval() first")
    if kind == "RReLU" and hasattr(params, "noise"):  # aten: (output, noise)
        call = _first_output(call)
    out, grad = _derivative(call, z.to(torch.float64), kind)
    derivative = np.asarray(to_numpy(grad[0]), dtype=np.float64)
    if out.shape != z.shape:
        raise ConvMatrixError(f"{where} ({text}) changes the shape {tuple(z.shape)} → "
                              f"{tuple(out.shape)}: not element-wise")
    value = np.asarray(to_numpy(out[0]), dtype=np.float64)
    layer = Scale(sample.shape, derivative, value - derivative * sample)
    key = repr(params) if hasattr(params, "named_modules") else f"{text}:{params!r}"
    site = activation_site(kind, params, sample, derivative, where, text, call, key, constant)
    return layer, site, out


def _first_output(call: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``call`` keeping only the first of the outputs (``rrelu_with_noise_functional``)."""

    def first(t: Any) -> Any:
        return call(t)[0]

    return first


def _glu(call: Callable[[Any], Any], params: Params, z: Any, sample: np.ndarray, where: str,
         text: str) -> tuple[Layer, Site, Any]:
    """``glu(x, dim) = a · σ(b)`` (``a``, ``b`` the halves of ``x`` along ``dim``) at ``x``.

    ``J = [diag(σ(b)) | diag(a σ'(b))]`` on the two halves (torch's backward gives the partial
    derivatives); a product has no global Lipschitz constant.
    """
    import torch

    from convmatrix.layers.graph import Add
    from convmatrix.layers.reshape import Slice
    from convmatrix.layers.scale import Scale
    from convmatrix.layers.sequential import Sequential

    axis = int(_attr(params, "dim", -1)) % z.dim()
    if axis == 0:
        raise ConvMatrixError(f"{where} ({text}) halves the batch axis")
    half = z.shape[axis] // 2
    a, b = z.narrow(axis, 0, half), z.narrow(axis, half, half)
    out, (da, db) = elementwise_partials(lambda p, q: call(torch.cat([p, q], axis)), [a, b],
                                         a.shape)
    a0, b0 = (np.asarray(to_numpy(t[0]), dtype=np.float64) for t in (a, b))
    shift = np.asarray(to_numpy(out[0]), dtype=np.float64) - da[0] * a0 - db[0] * b0
    shape = a0.shape
    layer = Add(Sequential([Slice(sample.shape, axis - 1, 0, half), Scale(shape, da[0], shift)]),
                Sequential([Slice(sample.shape, axis - 1, half, None), Scale(shape, db[0])]))
    on = int(np.count_nonzero(da) + np.count_nonzero(db))
    local = float(np.sqrt(np.max(da * da + db * db, initial=0.0)))  # rows on disjoint columns
    return layer, Site(where, text, "product", sample.shape, on, sample.size - on, 0, False,
                       math.inf, local), out


def _selection_site(layer: MaxSelection, where: str, text: str,
                    constant: np.ndarray | None = None) -> Site:
    picked = int(np.unique(layer.winners).size)
    units = math.prod(layer.input_shape)
    return Site(where, text, "selection", layer.input_shape, int(layer.winners.size),
                units - picked, layer.live_kinks(constant), True, layer.lipschitz_bound(),
                _selection_norm(layer),
                "first maximum in the window wins (torch)" if layer.ties == "first"
                else "tied maxima share the derivative (torch's amax)")


def _selection_norm(layer: MaxSelection) -> float:
    """‖S‖₂ of a selection: √(most outputs picking one input) (rows are disjoint unit rows)."""
    if layer.ties == "first":
        counts = np.bincount(layer.winners.reshape(-1))
        return math.sqrt(float(counts.max(initial=0)))
    from convmatrix.analysis.spectra import operator_norm

    return float(operator_norm(layer))


def _max_pool(kind: str, params: Params, sample: np.ndarray) -> MaxSelection:
    if kind in _MAX_POOLS:
        if _attr(params, "return_indices", False):
            raise ConvMatrixError("max pooling with return_indices=True has a second output "
                                  "(the indices) convmatrix does not follow")
        stride = _attr(params, "stride", None)
        return MaxPoolAt(sample, params.kernel_size, None if stride in ((), []) else stride,
                         _attr(params, "padding", 0), _attr(params, "dilation", 1),
                         bool(_attr(params, "ceil_mode", False)))
    if _attr(params, "return_indices", False):
        raise ConvMatrixError("adaptive max pooling with return_indices=True has a second "
                              "output (the indices) convmatrix does not follow")
    return AdaptiveMaxPoolAt(sample, params.output_size)


def _reduction_max(kind: str, call: Callable[[Any], Any], params: Params, z: Any,
                   sample: np.ndarray, where: str, text: str, constant: np.ndarray | None
                   ) -> tuple[Layer, Site, Any]:
    """``amax``/``max`` over every spatial axis (a global max pool)."""
    out = call(z)
    positional = getattr(params, "_args", ())
    dims = _attr(params, "dim", positional[0] if positional else None)
    if isinstance(out, tuple | list):  # torch.max(x, dim) and x.max(dim): (values, indices)
        out = out[0]
        ties = "first"
    else:
        ties = "split"
    dim_list = [dims] if isinstance(dims, int) else list(dims or [])
    ndim = z.dim()
    spatial = sorted(d % ndim for d in dim_list)
    if spatial != list(range(2, ndim)):
        raise ConvMatrixError(
            f"{where} ({text}) reduces dims {dims!r}: convmatrix linearises a maximum over all "
            f"spatial axes (dims 2..{ndim - 1}), a global max pool")
    layer = GlobalMaxPoolAt(sample, ties=ties)  # type: ignore[arg-type]
    if out.dim() != ndim:
        from convmatrix.layers.sequential import Sequential

        flat = _flatten_to(layer.output_shape, tuple(out.shape[1:]))
        return (Sequential([layer, flat]), _selection_site(layer, where, text, constant),
                out.detach())
    return layer, _selection_site(layer, where, text, constant), out.detach()


def _flatten_to(shape: tuple[int, ...], target: tuple[int, ...]) -> Layer:
    from convmatrix.layers.reshape import Reshape

    return Reshape(shape, target)


def _norm(kind: str, module: Any, params: Params, sample: np.ndarray, where: str) -> StatNormAt:
    def array(value: Any) -> np.ndarray | None:
        return None if value is None else to_numpy(value).astype(np.float64)

    eps = float(_attr(params, "eps", 1e-5))
    if kind == "GroupNorm":
        groups = _attr(params, "num_groups", None)
        return GroupNormAt(sample, groups, array(getattr(params, "weight", None)),
                           array(getattr(params, "bias", None)), eps)
    if kind == "LayerNorm":
        return LayerNormAt(sample, tuple(params.normalized_shape),
                           array(getattr(params, "weight", None)),
                           array(getattr(params, "bias", None)), eps)
    if module is None and not _attr(params, "use_input_stats", True):
        raise ConvMatrixError(f"{where} (F.instance_norm with use_input_stats=False) is "
                              f"affine: not a normalisation by the input's statistics")
    return InstanceNormAt(sample, array(getattr(params, "weight", None)),
                          array(getattr(params, "bias", None)), eps)


def _norm_site(layer: StatNormAt, where: str, text: str) -> Site:
    from convmatrix.analysis.spectra import operator_norm

    return Site(where, text, "normalization", layer.input_shape, math.prod(layer.input_shape), 0,
                0, False, layer.lipschitz_bound(), float(operator_norm(layer)), "")


def running_norm(module: Any, shape: tuple[int, ...]) -> Layer:
    """A normalisation by running statistics (BatchNorm, InstanceNorm in eval): per channel.

    ``(x − running_mean) / √(running_var + eps) · weight + bias`` on one sample of ``shape``
    (channels first), as a :class:`~convmatrix.BatchNorm`.
    """
    from convmatrix.layers.norm import BatchNorm

    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    return BatchNorm(shape, to_numpy(module.running_mean), to_numpy(module.running_var),
                     weight=None if weight is None else to_numpy(weight),
                     bias=None if bias is None else to_numpy(bias), eps=float(module.eps))


def _affine_site(sample: np.ndarray, module: Any, where: str) -> Site:
    from convmatrix.analysis.spectra import operator_norm

    layer = running_norm(module, sample.shape)
    norm = float(operator_norm(layer))
    return Site(where, type(module).__name__, "normalization", sample.shape, sample.size, 0, 0,
                True, norm, norm, "running statistics (eval mode): affine")


def run_float64(module: Any, *inputs: Any) -> Any:
    """``module(*inputs)`` with its parameters and buffers in float64 (the module untouched)."""
    import torch

    with torch.no_grad():
        tensors = [*module.parameters(), *module.buffers()]
        if all(t.dtype == torch.float64 or not t.is_floating_point() for t in tensors):
            return module(*inputs)  # already float64: no reparametrisation needed
        return torch.func.functional_call(module, _float64_tree(module), inputs)


def _float64_tree(module: Any) -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {}
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        state[name] = tensor.detach().to(torch.float64) if tensor.is_floating_point() \
            else tensor.detach()
    return state


class FxJacobian:
    """The Jacobian translator :func:`convmatrix.linearize` hands to the torch.fx reader.

    Called by :func:`~convmatrix.adapters.torch_fx.read_fx` (with a point) for every node no
    affine translator reads: a non-linearity :func:`torch_jacobian` knows becomes the layer of
    its Jacobian at the node's input; its :class:`Site` is kept in :attr:`sites` (by node name,
    in the order the nodes were read). Which inputs are locally constant (for the kink counts)
    is read from the graph nodes built so far (``call.built``).

    Examples
    --------
    >>> import torch
    >>> from convmatrix.adapters.torch import read_graph
    >>> class Net(torch.nn.Module):
    ...     def forward(self, x):
    ...         return torch.relu(x) - x
    >>> translator = FxJacobian()
    >>> graph = read_graph(Net(), (3,), x=torch.tensor([[-1.0, 0.0, 2.0]]),
    ...                    jacobian=translator)
    >>> graph.matrix().toarray()
    array([[-1.,  0.,  0.],
           [ 0., -1.,  0.],
           [ 0.,  0.,  0.]])
    >>> translator.sites["relu"].pattern_text()
    '1 on, 2 off, 1 on a kink'
    """

    def __init__(self) -> None:
        self.sites: dict[str, Site] = {}
        self._masks: dict[str, np.ndarray | None] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}

    def __call__(self, call: FxCall) -> Layer | list[Layer] | None:
        """The node's Jacobian layer at the point, or None when it is no known non-linearity."""
        if call.op == "call_module":
            op: Any = call.module
        else:
            op = call.target
        if call.kind == "detach" and call.op != "call_module":
            return self._detached(call, op)
        if is_branch_op(call):
            layers, sites = branch_jacobian(call, _op_text(op))
            if len(layers) == 1:
                self.sites[call.name] = sites[0]
                return layers[0]
            self.sites.update((branch_node(call.name, i), site) for i, site in enumerate(sites))
            return layers
        if not is_jacobian_op(op):
            return None
        traced = call.traced
        first = call.args[0] if call.args else call.kwargs.get("input")
        if len(traced) != 1 or first is not traced[0]:
            raise ConvMatrixError(
                f"depends on the input through {len(traced)} values "
                f"({', '.join(t.name for t in traced)}); cm.linearize reads "
                f"{call.kind} of its first argument only")
        source = traced[0]
        args = () if call.op == "call_module" else tuple(call.args[1:])
        kwargs = {} if call.op == "call_module" else {
            k: v for k, v in call.kwargs.items() if k != "input"}
        z = call.values[source.name]
        if z.dim() == 1 and _name_of(op) in ACTIVATIONS:
            z = z.reshape(1, 1)  # one number per sample: a sample of shape (1,), as traced
        layer, site, _ = torch_jacobian(op, z, args, kwargs, name=call.name,
                                        constant=self._mask(call, source))
        self.sites[call.name] = site
        return layer

    def _detached(self, call: FxCall, op: Any) -> Layer:
        """``x.detach()``: torch's autograd sees a constant (``torch.func.jacrev`` gives 0).

        The Jacobian layer is zero with the value at the point as its offset, so the
        linearisation is the Jacobian torch computes, not the forward map's derivative.
        """
        from convmatrix.layers.scale import Scale

        value = np.asarray(to_numpy(call.output[0]), dtype=np.float64)
        self.sites[call.name] = Site(
            call.name, _op_text(op), "constant", value.shape, 0, value.size, 0, False, 0.0, 0.0,
            "torch's autograd: a detached value is a constant (its derivative is 0)")
        return Scale(value.shape, 0.0, value)

    def _mask(self, call: FxCall, source: Any) -> np.ndarray | None:
        """Which entries of ``source`` are locally constant, from the nodes built so far."""
        for name, node in call.built.items():
            if name not in self._shapes:
                self._shapes[name] = self._shape(node, call)
                self._masks[name] = self._node_mask(node, call)
        return self._masks.get(source.name)

    def _input(self, name: str, call: FxCall) -> tuple[np.ndarray | None, tuple[int, ...]]:
        if name in self._shapes:
            return self._masks[name], self._shapes[name]
        return None, tuple(call.values[name].shape[1:])  # the graph's input: not constant

    def _shape(self, node: Node, call: FxCall) -> tuple[int, ...]:
        if isinstance(node.op, Layer):
            return node.op.output_shape
        shapes = [self._input(name, call)[1] for name in node.inputs]
        if isinstance(node.op, Sum):
            return shapes[0]
        axis = node.op.axis % len(shapes[0])
        return (*shapes[0][:axis], sum(s[axis] for s in shapes), *shapes[0][axis + 1:])

    def _node_mask(self, node: Node, call: FxCall) -> np.ndarray | None:
        found = [self._input(name, call) for name in node.inputs]
        masks = [mask for mask, _ in found]
        if isinstance(node.op, Sum):
            if any(mask is None for mask in masks):
                return None
            return np.logical_and.reduce([m for m in masks if m is not None])
        if isinstance(node.op, Cat):
            if all(mask is None for mask in masks):
                return None
            return np.concatenate([np.zeros(shape, bool) if mask is None else mask
                                   for mask, shape in found], axis=node.op.axis)
        return constant_after(node.op, masks[0])
