"""``cm.linearize``: a framework model at a point as its exact Jacobian (a layer object).

A network of linear layers and non-linearities (ReLU & co., max pooling, normalisations by
the input's statistics) is, at a point ``x``, the tangent map ``h ↦ J h + (f(x) − J x)``:
this module reads a model at ``x`` into that map, layer by layer — the linear layers as
:func:`~convmatrix.from_torch` reads them, each non-linearity as the layer of its Jacobian
at its own input (:mod:`convmatrix.adapters.torch_jacobian`) — and returns a
:class:`~convmatrix.layers.linearization.Linearization`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convmatrix._arrays import to_numpy
from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.torch import TORCH_READERS, from_torch, walk_graph
from convmatrix.adapters.torch_jacobian import (
    TRAINING_SENSITIVE,
    FxJacobian,
    is_jacobian_op,
    run_float64,
    torch_jacobian,
)
from convmatrix.layers.base import Layer
from convmatrix.layers.graph import Cat, Graph, Sum
from convmatrix.layers.linearization import Factor, Linearization, Site, constant_after

__all__ = ["LipschitzSummary", "is_torch_module", "linearize", "lipschitz_summary",
           "torch_point", "training_module"]


def is_torch_module(model: Any) -> bool:
    """A ``torch.nn.Module`` (duck-typed: ``forward`` and ``named_modules``)."""
    return hasattr(model, "forward") and hasattr(model, "named_modules") \
        and hasattr(model, "named_parameters")


def _is_keras(model: Any) -> bool:
    return any(cls.__module__.split(".")[0] in ("keras", "tf_keras")
               for cls in type(model).__mro__)


def torch_point(x: Any) -> Any:
    """``x`` (one input with its batch axis of 1) as a float64 torch tensor, checked."""
    import torch

    if isinstance(x, torch.Tensor):
        array = x.detach().cpu()
    else:
        data = np.asarray(x)
        if data.dtype.kind not in "biuf":
            raise ConvMatrixError(f"`x` has dtype {data.dtype}; it must be real numbers")
        array = torch.from_numpy(np.array(data, dtype=np.float64))
    if array.is_complex() or array.dtype == torch.bool:
        raise ConvMatrixError(f"`x` has dtype {array.dtype}; it must be real numbers")
    if array.dim() < 2 or array.shape[0] != 1:
        raise ConvMatrixError(
            f"`x` has shape {tuple(array.shape)}; give one input exactly as the model takes it, "
            f"with its batch axis of 1 (e.g. x[None])")
    array = array.to(torch.float64)
    if not bool(torch.isfinite(array).all()):
        raise ConvMatrixError("`x` holds non-finite values (NaN or inf)")
    return array


def training_module(model: Any) -> str | None:
    """The path and class of the first module that computes differently in training mode."""
    for path, module in model.named_modules():
        name = type(module).__name__
        if not getattr(module, "training", False) or name not in TRAINING_SENSITIVE:
            continue
        if name.startswith(("Dropout", "AlphaDropout", "FeatureAlphaDropout")) \
                and not getattr(module, "p", 0):
            continue
        return f"{path or 'the model'} ({name})"
    return None


def linearize(model: Any, x: Any) -> Linearization:
    """The exact Jacobian of a network at a point, as a layer: matrix ``J``, offset ``f(x) − J x``.

    Parameters
    ----------
    model : torch.nn.Module, torch.export.ExportedProgram, Keras model or ONNX model
        An ``ExportedProgram`` is read through its graph, as a ``GraphModule`` is (``aten``
        operators: ``convolution``, ``relu``, ``max_pool2d_with_indices``,
        ``_native_batch_norm_legit_no_training``, ``native_group_norm``, ``addmm``, ...). An
        ONNX model is an ``onnx.ModelProto`` or a path to an ``.onnx`` file, read as
        :func:`~convmatrix.from_onnx` reads it, its non-linear operators (``Relu``,
        ``LeakyRelu``, ``PRelu``, ``Clip``, ``Elu``, ``Gelu``, ``Sigmoid``, ``Tanh``, ...,
        ``MaxPool``, ``Mul`` of two branches) at the point. A torch model is
        an ``nn.Sequential`` (nested ones too) of layers :func:`~convmatrix.from_torch` reads
        (``Conv*``, ``ConvTranspose*``, ``Linear``, ``Flatten``, ``BatchNorm*`` in eval,
        pooling, padding, ...) and non-linearities: element-wise activations (``ReLU``,
        ``LeakyReLU``, ``PReLU``, ``ReLU6``, ``Hardtanh``, ``ELU``, ``GELU``, ``SiLU``,
        ``Sigmoid``, ``Tanh``, ``Softplus``, ``Hardswish``, ``Mish``, ``torch.clamp``,
        ``torch.abs``, ``torch.exp``, ``torch.log1p``, ``torch.erf``, ``x ** p``, ...), max
        pooling (``MaxPool1d/2d/3d``, ``AdaptiveMaxPool1d/2d/3d``), ``GroupNorm``,
        ``LayerNorm``, ``InstanceNorm*`` and gated units (``nn.GLU``, ``F.glu``); any module
        whose forward ``torch.fx`` traces is read as a graph of these and of element-wise
        operations of several branches: products and quotients (``x * torch.sigmoid(x)``,
        ``a / b``), ``torch.where`` on a condition computed from the input, ``maximum``,
        ``minimum`` and comparisons (what ``run_decompositions()`` makes of SiLU, Mish,
        Hardswish, PReLU, Softplus, ...). The model must be in eval mode where
        that matters (BatchNorm, Dropout): a module in training mode is refused by name.
        Keras models are read by the Keras adapter.
    x : torch.Tensor or array_like
        One input exactly as the model takes it, with its batch axis of 1.

    Returns
    -------
    Linearization
        A layer on one sample (``x.shape[1:]``, channels first): ``matrix()`` is the exact
        Jacobian at ``x`` (float64; the model is evaluated in float64, its parameters
        converted, the model itself untouched), ``offset()`` is ``f(x) − J x``, ``.sites``
        the activation pattern, ``explain()`` says what holds where.

    Notes
    -----
    Kinks get torch's derivative (its autograd decides): ``ReLU'(0) = 0``, ``Hardtanh'`` is 0
    at its ends, ``clamp'`` is 1 at its bounds, ``abs'(0) = 0``, a max-pool window with a tied
    maximum routes to its first maximum (row-major in the window). For a piecewise-linear
    network ``J x + offset == f(x)`` to rounding, and the network equals the map on the whole
    region of inputs with the same pattern. A detached value (``x.detach()``) is a constant,
    as for ``torch.func.jacrev``: ``J`` is then torch's Jacobian, not the derivative of the
    forward map (a site of kind ``"constant"``; ``explain()`` says so). A product or quotient of
    branches is its exact tangent map ``d(a·b) = diag(b)·J_a + diag(a)·J_b`` (broadcasting
    included), one site of kind ``"product"`` per branch: not piecewise linear, and with no
    global Lipschitz constant, so :func:`lipschitz_summary`'s upper bound is infinite. Element-wise
    operations of branches take torch's partial derivatives (its autograd on the broadcast
    operands): ``maximum``/``minimum`` split a tie in halves, a comparison's derivative is 0
    (``where`` follows the condition's value at x).

    Examples
    --------
    >>> import torch
    >>> import convmatrix as cm
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3, padding=1), torch.nn.ReLU(),
    ...                           torch.nn.MaxPool1d(2)).double()
    >>> x = torch.randn(1, 1, 6, dtype=torch.float64)
    >>> lin = cm.linearize(net, x)
    >>> lin.matrix().shape, lin.input_shape, lin.output_shape
    ((6, 6), (1, 6), (2, 3))
    >>> jac = torch.func.jacrev(net)(x).reshape(6, 6).detach().numpy()
    >>> bool(abs(lin.matrix().toarray() - jac).max() < 1e-12)
    True
    >>> bool(abs(lin(x[0].numpy()) - net(x)[0].detach().numpy()).max() < 1e-12)
    True
    """
    if _is_keras(model):  # first: on the torch backend a Keras model is a torch module too
        from convmatrix.adapters import keras as keras_adapter

        reader = getattr(keras_adapter, "linearize_keras", None)
        if reader is None:  # pragma: no cover - until the Keras adapter has one
            raise ConvMatrixError("`model` is a Keras model: linearising Keras models is not "
                                  "available in this version")
        return reader(model, x)  # type: ignore[no-any-return]
    if is_torch_module(model):
        return _linearize_torch(model, x)
    if _is_exported(model):  # torch.export: its graph, read like a traced one
        return _linearize_graph(model, torch_point(x))
    if _is_onnx(model):
        from convmatrix.adapters.onnx.reader import linearize_onnx

        return linearize_onnx(model, x)
    raise ConvMatrixError(f"`model` (={type(model).__name__}) is neither a torch module nor a "
                          f"Keras model, nor an ONNX model (a ModelProto or a path to .onnx)")


def _is_exported(model: Any) -> bool:
    """A ``torch.export`` ``ExportedProgram`` (by class name: torch is not imported here)."""
    return any(cls.__name__ == "ExportedProgram" for cls in type(model).__mro__)


def _is_onnx(model: Any) -> bool:
    """An ``onnx.ModelProto`` (duck-typed), or a path to an ``.onnx`` file."""
    import os

    if isinstance(model, str | os.PathLike):
        return os.fspath(model).lower().endswith(".onnx")
    return type(model).__name__ == "ModelProto" and hasattr(model, "graph")


def _linearize_torch(model: Any, x: Any) -> Linearization:
    point = torch_point(x)
    training = training_module(model)
    if training is not None:
        raise ConvMatrixError(
            f"`model` has {training} in training mode: it computes with the batch's statistics "
            f"or random masks, not a fixed function of one sample; call model.eval() first")
    if not _is_chain(model):
        return _linearize_graph(model, point)
    walker = _Walker()
    out = walker.walk(model, point, "")
    if not walker.layers:
        raise ConvMatrixError("`model` is empty (an nn.Sequential without layers)")
    return _result(walker, point, out, "torch")


def _is_chain(module: Any) -> bool:
    """A torch ``nn`` module, or an ``nn.Sequential`` (nested too) of only those.

    The chain walker reads these (or refuses one by its path in the model); anything else — a
    module with its own ``forward``, a Sequential holding one, a ``GraphModule`` — is read as
    a graph through torch.fx.
    """
    cls = type(module)
    if cls.__name__ == "Sequential" and cls.__module__.startswith("torch.nn."):
        return all(_is_chain(child) for child in module.children())
    return cls.__module__.startswith("torch.nn.")


def _linearize_graph(model: Any, point: Any) -> Linearization:
    """A model through the torch.fx reader at the point, non-linear nodes by :class:`FxJacobian`.

    The network runs in float64 (its parameters converted for the run only); the factors and
    sites are read off the graph afterwards (the graph's input is the factor ``"input"``).
    """
    translator = FxJacobian()
    walk = walk_graph(model, tuple(point.shape[1:]), x=point, jacobian=translator,
                      dtype="float64", parameter="model")
    graph = walk.graph
    return Linearization(graph, to_numpy(point[0]), to_numpy(walk.value[0]),
                         list(translator.sites.values()), _graph_factors(graph, translator.sites),
                         "torch", output=_factor_name(graph, graph.output))


def _factor_name(graph: Graph, name: str) -> str:
    return "input" if name == graph.input_name else name


def _graph_factors(graph: Graph, sites: dict[str, Site]) -> list[Factor]:
    """The graph's nodes as factors (sums and concatenations as combinations)."""
    factors = []
    for node in graph.nodes:
        inputs = tuple(_factor_name(graph, name) for name in node.inputs)
        if isinstance(node.op, Sum):
            factors.append(Factor(node.name, None, inputs, None, "sum",
                                  tuple(float(c) for c in node.op.coefficients)))
        elif isinstance(node.op, Cat):
            factors.append(Factor(node.name, None, inputs, None, "cat"))
        else:
            factors.append(Factor(node.name, node.op, inputs, sites.get(node.name)))
    return factors


def _result(walker: _Walker, point: Any, out: Any, framework: str) -> Linearization:
    from convmatrix.layers.sequential import Sequential

    layers = walker.layers
    layer = layers[0] if len(layers) == 1 else Sequential(layers)
    return Linearization(layer, to_numpy(point[0]), to_numpy(out[0].detach()), walker.sites,
                         walker.factors, framework)


class _Walker:
    """Reads a chain of modules at a point into layers, sites and factors."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.sites: list[Site] = []
        self.factors: list[Factor] = []
        self.constant: np.ndarray | None = None  # locally constant entries of the current value

    def _add(self, name: str, layer: Layer, site: Site | None) -> None:
        previous = self.factors[-1].name if self.factors else "input"
        unique = name or f"layer{len(self.factors)}"
        if any(f.name == unique for f in self.factors):
            unique = f"{unique}#{len(self.factors)}"
        self.factors.append(Factor(unique, layer, (previous,), site))
        self.layers.append(layer)
        self.constant = constant_after(layer, self.constant)
        if site is not None:
            self.sites.append(site)

    def walk(self, module: Any, h: Any, path: str) -> Any:
        name = type(module).__name__
        where = f"`model.{path}`" if path else "`model`"
        if name == "Sequential":
            for child_name, child in module.named_children():
                h = self.walk(child, h, f"{path}.{child_name}" if path else child_name)
            return h
        shape = tuple(h.shape[1:])
        if is_jacobian_op(module):
            layer, site, out = torch_jacobian(module, h, name=path or name,
                                              constant=self.constant)
            self._add(path, layer, site)
            return _as64(out)
        reader = TORCH_READERS.get(name)
        if reader is None:
            raise ConvMatrixError(
                f"{where} ({name}) is neither a linear layer convmatrix reads nor a "
                f"non-linearity it linearises")
        try:
            layer = from_torch(module, shape)
        except ConvMatrixError as error:
            raise ConvMatrixError(f"{where} ({name}): {error}") from None
        self._add(path, layer, None)
        return run_float64(module, h)


def _as64(t: Any) -> Any:
    import torch

    return t.to(torch.float64)



@dataclass(frozen=True)
class LipschitzSummary:
    """A network's Lipschitz numbers at a point, side by side (:func:`lipschitz_summary`).

    Attributes
    ----------
    names : tuple of str
        Each step of the network: a linear layer or a non-linearity.
    ops : tuple of str
        What each step is (the layer's repr, or the non-linearity's op).
    constants : tuple of float
        Each step's global Lipschitz constant: a linear layer's exact norm ``‖C‖₂``, an
        activation's ``sup |f'|``, a max pool's √(windows per input).
    local_norms : tuple of float
        Each step's norm at the point: ``‖C‖₂`` again for a linear layer, the norm of the
        non-linearity's Jacobian there (``max |f'(z)|`` for an activation).
    upper_bound : float
        The product of :attr:`constants` along the network (sums add, concatenations add in
        quadrature): an upper bound on the network's Lipschitz constant.
    local_product : float
        The same product of :attr:`local_norms`: an upper bound on ``‖J(x)‖₂``.
    local : float
        ``‖J(x)‖₂``, the exact norm of the Jacobian at the point (:func:`linearize`): a lower
        bound on the network's Lipschitz constant.
    piecewise_linear : bool
        Every non-linearity is piecewise linear.

    Examples
    --------
    >>> import torch
    >>> import convmatrix as cm
    >>> _ = torch.manual_seed(1)
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU(),
    ...                           torch.nn.Linear(3, 1)).double()
    >>> summary = cm.lipschitz_summary(net, torch.randn(1, 3, dtype=torch.float64))
    >>> summary.ops[1], summary.constants[1]
    ('ReLU', 1.0)
    >>> summary.ratio >= 1
    True
    """

    names: tuple[str, ...]
    ops: tuple[str, ...]
    constants: tuple[float, ...]
    local_norms: tuple[float, ...]
    upper_bound: float
    local_product: float
    local: float
    piecewise_linear: bool

    @property
    def ratio(self) -> float:
        """How loose the product bound is at this point: ``upper_bound / local`` (≥ 1)."""
        return self.upper_bound / self.local if self.local > 0 else math.inf

    def _rows(self) -> list[tuple[str, str, str, str]]:
        rows = [(name, op, f"{c:.6g}", f"{n:.6g}") for name, op, c, n
                in zip(self.names, self.ops, self.constants, self.local_norms, strict=True)]
        rows.append(("product (upper bound)", "", f"{self.upper_bound:.6g}",
                     f"{self.local_product:.6g}"))
        rows.append(("‖J(x)‖₂ (lower bound)", "", "", f"{self.local:.6g}"))
        return rows

    def __str__(self) -> str:
        rows = [("step", "op", "Lipschitz", "at x"), *self._rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                 .rstrip() for row in rows]
        lines.append(f"the product bound is {self.ratio:.3g}× the norm of the Jacobian at x")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The table in Markdown, then the three numbers in one sentence."""
        lines = ["| step | op | Lipschitz constant | norm at x |", "|---|---|---|---|"]
        lines += [f"| {name} | {op} | {c} | {n} |" for name, op, c, n in self._rows()]
        lines += ["", f"The product of the steps' constants, **{self.upper_bound:.6g}**, bounds "
                      f"the network's Lipschitz constant from above; the exact norm of the "
                      f"Jacobian at x, **{self.local:.6g}**, bounds it from below (the product "
                      f"of the steps' norms at x, {self.local_product:.6g}, bounds that norm); "
                      f"the product bound is {self.ratio:.3g}× the local norm."]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _combine(factors: Sequence[Factor], values: dict[str, float], output: str) -> float:
    """The graph rule: a layer multiplies, a sum adds |coefficients|, a cat adds in quadrature."""
    result: dict[str, float] = {"input": 1.0}
    for factor in factors:
        ins = [result[name] for name in factor.inputs]
        if factor.combine == "sum":
            coefficients = factor.coefficients or (1.0,) * len(ins)
            # a term that is zero on either side adds nothing (0·inf would be a nan)
            result[factor.name] = sum(abs(c) * v for c, v in zip(coefficients, ins, strict=True)
                                      if c and v)
        elif factor.combine == "cat":
            result[factor.name] = math.sqrt(sum(v * v for v in ins))
        else:  # a step that receives nothing passes nothing on, even with an infinite constant
            constant = values[factor.name]  # (and a constant 0 passes nothing, even of inf)
            result[factor.name] = constant * ins[0] if ins[0] and constant else 0.0
    return result[output]


def lipschitz_summary(model: Any, x: Any, *, tol: float = 1e-6) -> LipschitzSummary:
    """A network's Lipschitz bounds at a point: the product bound above, ``‖J(x)‖₂`` below.

    Parameters
    ----------
    model : torch.nn.Module or Keras model, or a Linearization
        Anything :func:`linearize` reads (or its result).
    x : torch.Tensor or array_like
        The point, with its batch axis of 1 (ignored when ``model`` is a Linearization).
    tol : float, optional
        Relative accuracy of the norms (:func:`~convmatrix.operator_norm`).

    Returns
    -------
    LipschitzSummary
        Per step its constant and its norm at x; the product (upper bound), the product of
        the local norms, and the exact norm of the Jacobian at x (lower bound). For a linear
        stack without non-linearities see :func:`~convmatrix.lipschitz`.

    Examples
    --------
    >>> import torch
    >>> import convmatrix as cm
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.ReLU(),
    ...                           torch.nn.Conv1d(2, 1, 3)).double()
    >>> summary = cm.lipschitz_summary(net, torch.randn(1, 1, 8, dtype=torch.float64))
    >>> summary.local <= summary.local_product <= summary.upper_bound
    True
    """
    from convmatrix.analysis.spectra import operator_norm

    lin = model if isinstance(model, Linearization) else linearize(model, x)
    names, ops, constants, local = [], [], [], []
    factors = lin.output_factors()
    for factor in factors:
        if factor.layer is None:
            continue
        if factor.site is None:
            norm = float(operator_norm(factor.layer, tol=tol))
            names.append(factor.name)
            ops.append(repr(factor.layer))
            constants.append(norm)
            local.append(norm)
        else:
            names.append(factor.name)
            ops.append(factor.site.op)
            constants.append(factor.site.lipschitz)
            local.append(factor.site.local_norm)
    by_name_constant = dict(zip(names, constants, strict=True))
    by_name_local = dict(zip(names, local, strict=True))
    return LipschitzSummary(tuple(names), tuple(ops), tuple(constants), tuple(local),
                            _combine(factors, by_name_constant, lin.output),
                            _combine(factors, by_name_local, lin.output),
                            float(operator_norm(lin, tol=tol)), lin.piecewise_linear)
