"""Element-wise operations of several branches at a point: products, quotients, switches.

At a point, an element-wise torch operation ``y = f(u₁, …, u_k)`` of values that depend on
the network's input — ``a * b``, ``a / b``, ``torch.where(x > 0, a, b)``,
``torch.maximum(a, b)``, ``x > 0`` — is the tangent map
``y ≈ y₀ + Σᵢ diag(∂f/∂uᵢ) Bᵢ (uᵢ − uᵢ₀)``, where ``Bᵢ`` broadcasts ``uᵢ`` onto ``y``'s shape.
For a product ``d(a·b) = diag(b)·J_a + diag(a)·J_b``, for a quotient
``d(a/b) = diag(1/b)·J_a − diag(a/b²)·J_b``. The partial derivatives are torch's own: its
autograd runs once on the operands broadcast to the output's shape, so every output entry gets
its own partials, in torch's rounding and with its backward's conventions (``maximum`` splits a
tie in halves; a comparison is not differentiated: its derivative is 0).

:func:`branch_jacobian` answers one layer per traced operand (the contract of
:data:`~convmatrix.adapters.torch_fx.JacobianTranslator`) and one
:class:`~convmatrix.layers.linearization.Site` each; :func:`elementwise_partials` is the
autograd step, also used for ``F.glu`` (a product of the input's two halves).

torch is imported only inside functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convmatrix._arrays import to_numpy
from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.torch_fx import FxCall, Traced
from convmatrix.adapters.torch_fx.broadcast import broadcast_layer
from convmatrix.layers.base import Layer
from convmatrix.layers.linearization import Site, SiteKind

__all__ = ["BRANCH_OPS", "BranchOp", "branch_jacobian", "broadcast_layer",
           "elementwise_partials", "is_branch_op"]


@dataclass(frozen=True)
class BranchOp:
    """What one element-wise operation of several operands is, for its sites.

    Attributes
    ----------
    kind : SiteKind
        ``"product"`` (products, quotients, powers: no global Lipschitz constant) or
        ``"activation"`` (a switch between branches, or a comparison: a step).
    piecewise_linear : bool
        The operation is piecewise linear in its operands (a switch, a maximum, a step).
    lipschitz : float
        Its global Lipschitz constant in each operand (ℓ2, before broadcasting).
    convention : str
        torch's derivative where the point decides (ties, the switching boundary).
    ties : bool
        The first two operands' equal entries are where the derivative jumps (counted as
        kinks).
    """

    kind: SiteKind
    piecewise_linear: bool
    lipschitz: float
    convention: str = ""
    ties: bool = False


_PRODUCT = BranchOp("product", False, math.inf)
_EXTREMUM = BranchOp("activation", True, 1.0, "tied entries split the derivative in halves "
                                              "(torch)", ties=True)
_STEP = BranchOp("activation", True, math.inf, "a comparison is a step: derivative 0 (torch); "
                                               "it flips where its operands tie", ties=True)

BRANCH_OPS: dict[str, BranchOp] = {
    "mul": _PRODUCT, "imul": _PRODUCT, "multiply": _PRODUCT, "div": _PRODUCT,
    "divide": _PRODUCT, "truediv": _PRODUCT, "itruediv": _PRODUCT, "true_divide": _PRODUCT,
    "pow": _PRODUCT, "maximum": _EXTREMUM, "minimum": _EXTREMUM,
    "where": BranchOp("activation", True, 1.0, "the condition at x picks each entry's branch "
                                               "(torch)"),
    **{name: _STEP for name in ("gt", "ge", "lt", "le", "eq", "ne", "greater", "greater_equal",
                                "less", "less_equal", "not_equal")},
}
"""Operation name (an ``FxCall``'s kind) → what it is. A comparison's value does not change
near the point (away from ties), so it reaches a ``where`` or a product as a constant mask; it
is a step, with no global Lipschitz constant."""


_BINARY_EXTREMA = {"max": _EXTREMUM, "min": _EXTREMUM}
"""``torch.max(a, b)`` / ``a.min(b)``: ``maximum`` / ``minimum`` when the second argument is a
tensor (with an int it is a reduction along a dim, read elsewhere)."""


def _branch_op(call: FxCall) -> BranchOp | None:
    """What the node is as an element-wise operation of several operands (None: not one)."""
    if call.kind in _BINARY_EXTREMA:
        import torch

        second = call.args[1] if len(call.args) > 1 else call.kwargs.get("other")
        return (_BINARY_EXTREMA[call.kind] if isinstance(second, Traced | torch.Tensor)
                else None)
    return BRANCH_OPS.get(call.kind)


def is_branch_op(call: FxCall) -> bool:
    """Whether :func:`branch_jacobian` reads the node (``x ** 2`` is an activation instead)."""
    if call.op == "call_module" or _branch_op(call) is None:
        return False
    traced = call.traced
    return not (call.kind == "pow" and len(traced) == 1 and call.arg(0, "input") is traced[0])


def elementwise_partials(fn: Callable[..., Any], operands: Sequence[Any], shape: Sequence[int]
                         ) -> tuple[Any, list[np.ndarray]]:
    """``fn(*operands)`` and, per operand, ``∂fᵢ/∂operandᵢ`` at every output entry ``i``.

    Each operand is broadcast to ``shape`` (the output's, batch axis included) and becomes a
    float64 leaf of torch's autograd, so for an element-wise ``fn`` one backward pass of ones
    gives every output entry's own partial derivatives, by torch's backward (its conventions at
    ties). An operand that is not floating point (a mask) has the partial 0.

    Parameters
    ----------
    fn : callable
        An element-wise torch function of the operands.
    operands : sequence of torch.Tensor
    shape : sequence of int
        The output's shape.

    Returns
    -------
    (torch.Tensor, list of ndarray)
        The output (float64 when it is floating point) and one array of ``shape`` per operand.

    Examples
    --------
    >>> import torch
    >>> a, b = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0]])
    >>> out, (da, db) = elementwise_partials(torch.mul, [a, b], (1, 2))
    >>> out, da, db
    (tensor([[3., 6.]], dtype=torch.float64), array([[3., 3.]]), array([[1., 2.]]))
    """
    import torch

    shape = tuple(shape)
    leaves = []
    for operand in operands:
        value = operand.detach().expand(shape)
        if value.is_floating_point():
            value = value.to(torch.float64).clone().requires_grad_(True)
        leaves.append(value)
    with torch.enable_grad():
        out = fn(*(leaf.clone() if leaf.requires_grad else leaf for leaf in leaves))
        if tuple(out.shape) != shape:
            raise ConvMatrixError(f"gives shape {tuple(out.shape)} from operands broadcast to "
                                  f"{shape}: not element-wise")
        wanted = [leaf for leaf in leaves if leaf.requires_grad]
        grads: Sequence[Any] = ()
        if wanted and out.requires_grad:
            grads = torch.autograd.grad(out, wanted, torch.ones_like(out), allow_unused=True)
    found = iter(grads)
    partials = []
    for leaf in leaves:
        grad = next(found, None) if leaf.requires_grad else None
        partials.append(np.zeros(shape) if grad is None else to_numpy(grad).astype(np.float64))
    return out.detach(), partials


def _substitute(value: Any, replace: Callable[[Traced], Any]) -> Any:
    """``value`` (an fx call's arguments) with each :class:`Traced` replaced, in order."""
    if isinstance(value, Traced):
        return replace(value)
    if isinstance(value, list | tuple):
        return type(value)(_substitute(item, replace) for item in value)
    if isinstance(value, dict):
        return {key: _substitute(item, replace) for key, item in value.items()}
    return value


def _invoke(call: FxCall) -> Callable[..., Any]:
    """The node's operation as a function of its traced operands (constants kept)."""

    def run(*tensors: Any) -> Any:
        supply = iter(tensors)
        args = _substitute(call.args, lambda _: next(supply))
        kwargs = _substitute(call.kwargs, lambda _: next(supply))
        if call.op == "call_method":
            return getattr(args[0], call.target)(*args[1:], **kwargs)
        return call.target(*args, **kwargs)

    return run


def _ties(call: FxCall, shape: tuple[int, ...]) -> int:
    """Entries where the first two operands are equal (broadcast to the output ``shape``)."""
    import torch

    first = call.arg(0, "input", call.kwargs.get("self"))
    second = call.arg(1, "other")
    values = [call.values[v.name] if isinstance(v, Traced) else v for v in (first, second)]
    if any(not isinstance(v, torch.Tensor | int | float) for v in values):
        return 0
    arrays = [np.broadcast_to(np.asarray(to_numpy(v) if isinstance(v, torch.Tensor) else v,
                                         dtype=np.float64), shape) for v in values]
    return int(np.count_nonzero(arrays[0] == arrays[1]))


def _copies_norm(partial: np.ndarray, shape: tuple[int, ...], out: tuple[int, ...]
                 ) -> tuple[float, float]:
    """``‖diag(partial)·B‖₂`` and ``‖B‖₂`` for the broadcast ``B`` of ``shape`` onto ``out``.

    Each output entry copies one input entry, so the columns of ``diag(partial)·B`` are
    disjoint: its norm is the largest root sum of squares over one input entry's copies.
    """
    padded = (1,) * (len(out) - len(shape)) + shape
    axes = tuple(i for i, (p, o) in enumerate(zip(padded, out, strict=True)) if p != o)
    squares = np.sum(partial * partial, axis=axes) if axes else partial * partial
    copies = math.prod(out[i] for i in axes)
    return float(np.sqrt(np.max(squares, initial=0.0))), math.sqrt(copies)


def branch_jacobian(call: FxCall, text: str) -> tuple[list[Layer], list[Site]]:
    """The tangent map of an element-wise operation of traced operands at the point.

    Parameters
    ----------
    call : FxCall
        The node, its values at the point (``call.values``, ``call.output``).
    text : str
        The operation as the sites name it (``"aten.mul.Tensor"``, ``"torch.where"``).

    Returns
    -------
    (list of Layer, list of Site)
        One layer per traced operand (``call.traced``, in order), from the operand to the
        node's output: ``diag(∂f/∂uᵢ)`` after the broadcast of ``uᵢ``; the first holds the
        offset ``y₀ − Σᵢ diag(∂f/∂uᵢ) Bᵢ uᵢ₀``, so the layers' sum is the tangent map. One
        :class:`~convmatrix.layers.linearization.Site` per layer (named ``"<node> ∂/∂<operand>"``
        when there are several).

    Raises
    ------
    ConvMatrixError
        A division with ``rounding_mode`` (a step function), or an output that is not one
        tensor of the operands' broadcast shape.

    Examples
    --------
    >>> import torch
    >>> import convmatrix as cm
    >>> class Swish(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x * torch.sigmoid(x)
    >>> lin = cm.linearize(Swish(), torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    >>> [(site.name, site.kind) for site in lin.sites]
    [('sigmoid', 'activation'), ('mul ∂/∂x', 'product'), ('mul ∂/∂sigmoid', 'product')]
    """
    import torch

    from convmatrix.layers.scale import Scale
    from convmatrix.layers.sequential import Sequential

    spec = _branch_op(call)
    if spec is None:
        raise ConvMatrixError(f"{call.kind} is not an element-wise operation of its operands")
    if call.kwargs.get("rounding_mode") is not None:
        raise ConvMatrixError(f"divides with rounding_mode={call.kwargs['rounding_mode']!r} (a "
                              f"step function), which cm.linearize does not read")
    if not isinstance(call.output, torch.Tensor):
        raise ConvMatrixError(f"{call.kind} gives {type(call.output).__name__}, not one tensor")
    traced = call.traced
    full = tuple(call.output.shape)
    out = full[1:]
    _, partials = elementwise_partials(_invoke(call), [call.values[t.name] for t in traced],
                                       full)
    value = np.asarray(to_numpy(call.output[0]), dtype=np.float64)
    shift = value.copy()
    for t, partial in zip(traced, partials, strict=True):
        operand = np.asarray(to_numpy(call.values[t.name]), dtype=np.float64)
        shift -= partial[0] * np.broadcast_to(operand, full)[0]
    ties = _ties(call, full) if spec.ties else 0
    layers: list[Layer] = []
    sites: list[Site] = []
    for index, (t, partial) in enumerate(zip(traced, partials, strict=True)):
        scale = Scale(out, partial[0], shift if index == 0 else 0.0)
        spread = broadcast_layer(t.shape, out)
        layers.append(scale if spread is None else Sequential([spread, scale]))
        local, copies = _copies_norm(partial[0], t.shape, out)
        nonzero = int(np.count_nonzero(partial))
        name = call.name if len(traced) == 1 else f"{call.name} ∂/∂{t.name}"
        if any(site.name == name for site in sites):  # x * x: the operand twice
            name += f" ({index})"
        sites.append(Site(name, text, spec.kind, out, nonzero, partial.size - nonzero,
                          ties if index == 0 else 0, spec.piecewise_linear,
                          spec.lipschitz * copies, local, spec.convention))
    return layers, sites
