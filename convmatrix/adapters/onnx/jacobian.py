"""Non-linear ONNX operators at a point: the layer of their exact Jacobian there.

Element-wise activations become a :class:`~convmatrix.Scale` whose diagonal is the
derivative at the pre-activation (closed forms in numpy, float64) and whose shift makes the
layer the tangent map ``z ↦ f(z₀) + f'(z₀)(z − z₀)``; ``MaxPool`` and ``GlobalMaxPool``
become selections of the first maximum of each window in row-major order (the element
onnxruntime's ``Indices`` output names). Kinks take the derivative of the branch that holds
at strict inequality (``Relu'(0) = 0``, ``LeakyRelu'(0) = alpha``, ``Clip'`` is 0 at both
ends, as torch's autograd does for the modules exported to them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from convmatrix.adapters.onnx.node import OnnxNode
from convmatrix.adapters.onnx.ops_conv import pool_geometry
from convmatrix.adapters.onnx.ops_linear import sample_constant
from convmatrix.layers.base import Layer
from convmatrix.layers.linearization import Site
from convmatrix.layers.reshape import Reshape
from convmatrix.layers.scale import Scale
from convmatrix.layers.selection import GlobalMaxPoolAt, MaxSelection
from convmatrix.layers.sequential import Sequential

__all__ = ["JACOBIANS", "OnnxActivation", "WindowMaxAt", "onnx_jacobian"]

Pair = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class OnnxActivation:
    """An element-wise ONNX activation: ``(f(z), f'(z))``, kinks and Lipschitz constant."""

    function: Callable[[OnnxNode, np.ndarray, tuple[int, ...]], Pair]
    kinks: Callable[[OnnxNode], tuple[float, ...]]
    piecewise_linear: bool
    lipschitz: Callable[[OnnxNode], float] | None
    convention: str = ""


def _alpha(node: OnnxNode, default: float) -> float:
    return float(node.attribute("alpha", default))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def _relu(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    return np.maximum(z, 0.0), (z > 0).astype(np.float64)


def _leaky(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    a = _alpha(node, 0.01)
    return np.where(z > 0, z, a * z), np.where(z > 0, 1.0, a)


def _prelu(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    slope = node.constant_input(1)
    if slope is None:
        raise node.refuse("input 1 (slope) must be a constant")
    a = np.broadcast_to(sample_constant(node, slope, shape), z.shape)
    return np.where(z > 0, z, a * z), np.where(z > 0, 1.0, a)


def _clip_bounds(node: OnnxNode) -> tuple[float, float]:
    if node.opset < 11:  # pragma: no cover - opsets below 11 are refused
        return float(node.attribute("min", -np.inf)), float(node.attribute("max", np.inf))
    bounds = []
    for index, default in ((1, -np.inf), (2, np.inf)):
        if not node.has_input(index):
            bounds.append(default)
            continue
        value = node.constant_input(index)
        if value is None:
            raise node.refuse(f"input {index} ({'min' if index == 1 else 'max'}) must be a "
                              f"constant")
        bounds.append(float(np.asarray(value).reshape(())))
    return bounds[0], bounds[1]


def _clip(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    lo, hi = _clip_bounds(node)
    return np.minimum(np.maximum(z, lo), hi), ((z > lo) & (z < hi)).astype(np.float64)


def _elu(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    a = _alpha(node, 1.0)
    e = np.exp(np.minimum(z, 0.0))
    return np.where(z > 0, z, a * (e - 1)), np.where(z > 0, 1.0, a * e)


_SELU = (1.67326319217681884765625, 1.05070102214813232421875)


def _selu(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    a = _alpha(node, _SELU[0])
    g = float(node.attribute("gamma", _SELU[1]))
    e = np.exp(np.minimum(z, 0.0))
    return np.where(z > 0, g * z, g * a * (e - 1)), np.where(z > 0, g, g * a * e)


def _celu(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    a = _alpha(node, 1.0)
    e = np.exp(np.minimum(z, 0.0) / a)
    return np.maximum(z, 0) + np.minimum(0, a * (e - 1)), np.where(z > 0, 1.0, e)


def _gelu(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    from scipy.special import erf

    if node.attribute("approximate", "none") == "tanh":
        c = math.sqrt(2 / math.pi)
        inner = c * (z + 0.044715 * z**3)
        t = np.tanh(inner)
        return (0.5 * z * (1 + t),
                0.5 * (1 + t) + 0.5 * z * (1 - t * t) * c * (1 + 3 * 0.044715 * z * z))
    cdf = 0.5 * (1 + erf(z / math.sqrt(2)))
    return z * cdf, cdf + z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _sigmoid_pair(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    s = _sigmoid(z)
    return s, s * (1 - s)


def _tanh(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    t = np.tanh(z)
    return t, 1 - t * t


def _softplus(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    return np.logaddexp(0.0, z), _sigmoid(z)


def _softsign(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    return z / (1 + np.abs(z)), 1 / (1 + np.abs(z)) ** 2


def _hard_sigmoid(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    a, b = _alpha(node, 0.2), float(node.attribute("beta", 0.5))
    u = a * z + b
    return np.clip(u, 0, 1), np.where((u > 0) & (u < 1), a, 0.0)


def _hard_swish(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    gate = np.clip(z / 6 + 0.5, 0, 1)
    return z * gate, np.where(z < -3, 0.0, np.where(z <= 3, z / 3 + 0.5, 1.0))


def _mish(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    sp = np.logaddexp(0.0, z)
    t = np.tanh(sp)
    return z * t, t + z * (1 - t * t) * _sigmoid(z)


def _thresholded(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    a = _alpha(node, 1.0)
    return np.where(z > a, z, 0.0), (z > a).astype(np.float64)


def _swish(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    a = _alpha(node, 1.0)
    s = _sigmoid(a * z)
    return z * s, s + a * z * s * (1 - s)


def _erf(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    from scipy.special import erf

    return erf(z), 2 / math.sqrt(math.pi) * np.exp(-z * z)


def _exp(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    e = np.exp(z)
    return e, e


def _domain(node: OnnxNode, ok: np.ndarray, what: str) -> None:
    if not np.all(ok):
        raise node.refuse(f"is not differentiable at the point: {what}")


def _log(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    _domain(node, z > 0, "Log of a non-positive input")
    return np.log(z), 1 / z


def _sqrt(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    _domain(node, z > 0, "Sqrt of a non-positive input")
    r = np.sqrt(z)
    return r, 0.5 / r


def _reciprocal(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    _domain(node, z != 0, "Reciprocal of zero")
    return 1 / z, -1 / (z * z)


def _abs(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    return np.abs(z), np.sign(z)


def _sin(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    return np.sin(z), np.cos(z)


def _cos(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    return np.cos(z), -np.sin(z)


def _pow(node: OnnxNode, z: np.ndarray, shape: tuple[int, ...]) -> Pair:
    exponent = node.constant_input(1)
    if exponent is None:
        raise node.refuse("input 1 (the exponent) must be a constant")
    p = np.broadcast_to(sample_constant(node, exponent, shape), z.shape)
    if np.any((p != np.round(p)) & (z <= 0)) or np.any((p < 1) & (z == 0)):
        raise node.refuse("is not differentiable at the point (a non-integer or small power "
                          "of a non-positive input)")
    return z ** p, p * z ** (p - 1)


def _none(node: OnnxNode) -> tuple[float, ...]:
    return ()


def _one(node: OnnxNode) -> float:
    return 1.0


_ACTIVATIONS: dict[str, OnnxActivation] = {
    "Relu": OnnxActivation(_relu, lambda n: (0.0,), True, _one, "Relu'(0) = 0"),
    "LeakyRelu": OnnxActivation(_leaky, lambda n: (0.0,), True,
                                lambda n: max(1.0, abs(_alpha(n, 0.01))),
                                "LeakyRelu'(0) = alpha"),
    "PRelu": OnnxActivation(_prelu, lambda n: (0.0,), True, lambda n: max(
        1.0, float(np.abs(np.asarray(n.constant_input(1), dtype=float)).max(initial=0.0))),
        "PRelu'(0) = the slope"),
    "Clip": OnnxActivation(_clip, lambda n: _clip_bounds(n), True, _one,
                           "Clip' = 0 at min and max"),
    "Elu": OnnxActivation(_elu, lambda n: (0.0,), False, lambda n: max(1.0, _alpha(n, 1.0)),
                          "Elu'(0) = alpha"),
    "Selu": OnnxActivation(_selu, lambda n: (0.0,), False, None, "Selu'(0) = gamma·alpha"),
    "Celu": OnnxActivation(_celu, _none, False, _one),
    "Gelu": OnnxActivation(_gelu, _none, False, None),
    "Sigmoid": OnnxActivation(_sigmoid_pair, _none, False, lambda n: 0.25),
    "Tanh": OnnxActivation(_tanh, _none, False, _one),
    "Softplus": OnnxActivation(_softplus, _none, False, _one),
    "Softsign": OnnxActivation(_softsign, _none, False, _one),
    "HardSigmoid": OnnxActivation(
        _hard_sigmoid, lambda n: (-float(n.attribute("beta", 0.5)) / _alpha(n, 0.2),
                                  (1 - float(n.attribute("beta", 0.5))) / _alpha(n, 0.2)),
        True, lambda n: abs(_alpha(n, 0.2)), "HardSigmoid' = 0 at both ends"),
    "HardSwish": OnnxActivation(_hard_swish, lambda n: (-3.0, 3.0), False, lambda n: 1.5,
                                "HardSwish'(−3) = 0, HardSwish'(3) = 1.5 (torch)"),
    "Mish": OnnxActivation(_mish, _none, False, None),
    "ThresholdedRelu": OnnxActivation(_thresholded, lambda n: (_alpha(n, 1.0),), True,
                                      lambda n: 1.0 if _alpha(n, 1.0) == 0 else math.inf,
                                      "ThresholdedRelu'(alpha) = 0"),
    "Swish": OnnxActivation(_swish, _none, False, None),
    "Erf": OnnxActivation(_erf, _none, False, lambda n: 2 / math.sqrt(math.pi)),
    "Exp": OnnxActivation(_exp, _none, False, lambda n: math.inf),
    "Log": OnnxActivation(_log, _none, False, lambda n: math.inf),
    "Sqrt": OnnxActivation(_sqrt, _none, False, lambda n: math.inf),
    "Reciprocal": OnnxActivation(_reciprocal, _none, False, lambda n: math.inf),
    "Abs": OnnxActivation(_abs, lambda n: (0.0,), True, _one, "Abs'(0) = 0"),
    "Sin": OnnxActivation(_sin, _none, False, _one),
    "Cos": OnnxActivation(_cos, _none, False, _one),
    "Pow": OnnxActivation(_pow, _none, False, lambda n: math.inf),
}

_SUP: dict[str, float] = {}


def _grid_sup(node: OnnxNode, activation: OnnxActivation) -> float:
    """``sup |f'|`` on [−40, 40] (step 1e-4), rounded up; cached by op and attributes."""
    key = f"{node.op_type}:{sorted((k, repr(v)) for k, v in node.attributes.items())}"
    if key not in _SUP:
        z = np.linspace(-40.0, 40.0, 800_001)
        _SUP[key] = float(np.abs(activation.function(node, z, z.shape)[1]).max()) * (1 + 1e-6)
    return _SUP[key]


class WindowMaxAt(MaxSelection):
    """ONNX ``MaxPool`` at a point: windows ``o·s − pad_begin + j·d``, any pads.

    The output length per axis is onnxruntime's (``ceil_mode`` drops a last window that
    would start in the end padding, as torch does).
    """

    def __init__(self, x: np.ndarray, kernel: tuple[int, ...], strides: tuple[int, ...],
                 dilations: tuple[int, ...], pads: tuple[tuple[int, int], ...],
                 ceil_mode: bool) -> None:
        tables = []
        for axis, n in enumerate(x.shape[1:]):
            k, s, d = kernel[axis], strides[axis], dilations[axis]
            before, after = pads[axis]
            span = n + before + after - (d * (k - 1) + 1)
            out = (-(-span // s) if ceil_mode else span // s) + 1
            if ceil_mode and (out - 1) * s >= n + before:
                out -= 1
            tables.append(np.arange(out)[:, None] * s - before + np.arange(k)[None, :] * d)
        self._tables = tables
        super().__init__(x, tables, "first")

    def _window_pattern(self) -> np.ndarray:
        windows = self._window_indices(self._input_shape[1:], self._tables)
        return windows[windows < math.prod(self._input_shape[1:])]


def _selection_site(layer: MaxSelection, node: OnnxNode, constant: np.ndarray | None
                    ) -> Site:
    picked = int(np.unique(layer.winners).size)
    units = math.prod(layer.input_shape)
    counts = np.bincount(layer.winners.reshape(-1))
    return Site(node.name, node.op_type, "selection", layer.input_shape,
                int(layer.winners.size), units - picked, layer.live_kinks(constant), True,
                layer.lipschitz_bound(), math.sqrt(float(counts.max(initial=0))),
                "first maximum in the window (row-major) wins, as onnxruntime's Indices")


def _max_pool(node: OnnxNode, z: np.ndarray, constant: np.ndarray | None
              ) -> tuple[Layer, Site, np.ndarray]:
    if sum(1 for name in node.outputs if name) > 1:
        raise node.refuse("its Indices output is used: convmatrix follows the values only")
    if node.attribute("storage_order", 0):
        raise node.refuse("storage_order = 1 (column-major indices) is not read")
    kernel, strides, dilations, pads, ceil_mode = pool_geometry(node, z.shape)
    layer = WindowMaxAt(z, kernel, strides, dilations, pads, ceil_mode)
    value = layer(z)
    return layer, _selection_site(layer, node, constant), value


def _global_max_pool(node: OnnxNode, z: np.ndarray, constant: np.ndarray | None
                     ) -> tuple[Layer, Site, np.ndarray]:
    pool = GlobalMaxPoolAt(z)
    keep = (z.shape[0], *([1] * (z.ndim - 1)))
    layer = Sequential([pool, Reshape(pool.output_shape, keep)])
    return layer, _selection_site(pool, node, constant), layer(z)


JACOBIANS: frozenset[str] = frozenset({*_ACTIVATIONS, "MaxPool", "GlobalMaxPool"})
"""The ONNX operators :func:`onnx_jacobian` linearises."""


def onnx_jacobian(node: OnnxNode, z: np.ndarray, constant: np.ndarray | None = None
                  ) -> tuple[Layer, Site, np.ndarray]:
    """``(layer, site, f(z))``: the tangent map of one non-linear node at its input ``z``.

    ``z`` is one sample (no batch axis), float64; ``constant`` marks its locally constant
    entries (for the kink count) or is None.
    """
    if node.op_type == "MaxPool":
        return _max_pool(node, z, constant)
    if node.op_type == "GlobalMaxPool":
        return _global_max_pool(node, z, constant)
    activation = _ACTIVATIONS[node.op_type]
    value, derivative = activation.function(node, z, z.shape)
    derivative = np.broadcast_to(derivative, z.shape).astype(np.float64)
    layer = Scale(z.shape, derivative, value - derivative * z)
    kinks = activation.kinks(node)
    at_kink = np.isin(z, np.array(kinks, dtype=np.float64)) if kinks else \
        np.zeros(z.shape, bool)
    if constant is not None:
        at_kink &= ~constant.reshape(z.shape)
    lipschitz = activation.lipschitz(node) if activation.lipschitz is not None else \
        _grid_sup(node, activation)
    nonzero = int(np.count_nonzero(derivative))
    site = Site(node.name, node.op_type, "activation", tuple(z.shape), nonzero,
                derivative.size - nonzero, int(at_kink.sum()), activation.piecewise_linear,
                float(lipschitz), float(np.abs(derivative).max(initial=0.0)),
                activation.convention)
    return layer, site, value
