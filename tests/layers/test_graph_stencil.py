"""Graph.matrix in blocked form (convmatrix.builder.stencil) against independent computations.

Random graphs of convolutions (strides, padding, dilation, groups, padding modes), transposed
convolutions, adjoints of padded convolutions, weighted sums and channel concatenations, in
one to three spatial dimensions: the matrix equals live torch ``jacrev`` of the same function
(float64, 1e-12 of the largest entry), and with integer weights it equals, bit for bit, the
dense integer product of the factors' matrices taken from the dense loop reference
(``convmatrix.reference``, independent of the builder). The memory guard refuses before
building.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import reference
from convmatrix._errors import ConvMatrixError
from convmatrix.layers import graph as graph_module
from tests.helpers import rng

torch = pytest.importorskip("torch")
F = torch.nn.functional

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_TORCH_MODE = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


@pytest.fixture(autouse=True)
def _always_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every eligible graph takes the blocked form, however small its product."""
    monkeypatch.setattr(graph_module, "STENCIL_FLOPS", 0.0)
    monkeypatch.setattr(graph_module, "DENSE_FILL", 2.0)  # small products are mostly full


class _Builder:
    """A random graph and, node by node, the same function in torch and the dense reference
    matrices of its factors (``reference`` applied to unit vectors)."""

    def __init__(self, generator: np.random.Generator, ndim: int, integer: bool) -> None:
        self.g = generator
        self.ndim = ndim
        self.integer = integer
        channels = int(generator.integers(1, 4))
        sizes = tuple(int(generator.integers(3, 8 if ndim < 3 else 5)) for _ in range(ndim))
        self.input_shape = (channels, *sizes)
        self.nodes: list[cm.Node] = []
        self.shapes: dict[str, tuple[int, ...]] = {"input": self.input_shape}
        self.torch: dict[str, Callable[[dict[str, Any]], Any]] = {"input": lambda v: v["input"]}
        self.dense: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
            "input": lambda v: np.eye(math.prod(self.input_shape), dtype=np.int64)}

    def weight(self, *shape: int) -> np.ndarray:
        if self.integer:
            return self.g.integers(-3, 4, shape).astype(np.int64)
        return self.g.standard_normal(shape)

    def add(self, name: str, op: Any, inputs: tuple[str, ...], torch_fn: Callable[..., Any],
            dense_fn: Callable[..., np.ndarray]) -> None:
        node = cm.Node(name, op, inputs)
        cm.Graph(self.input_shape, [*self.nodes, node], name)  # validates the shapes
        self.nodes.append(node)
        self.shapes[name] = (cm.Graph(self.input_shape, self.nodes, name).output_shape)
        self.torch[name] = torch_fn
        self.dense[name] = dense_fn

    def try_conv(self, name: str, source: str) -> bool:
        g, ndim = self.g, self.ndim
        c_in, *sizes = self.shapes[source]
        groups = int(g.choice([d for d in (1, 2, 3) if c_in % d == 0]))
        c_out = groups * int(g.integers(1, 3))
        kernel = tuple(int(g.integers(1, 4)) for _ in range(ndim))
        stride = tuple(int(g.integers(1, 3)) for _ in range(ndim))
        dilation = tuple(int(g.integers(1, 3)) for _ in range(ndim))
        padding = tuple(int(g.integers(0, k)) if k > 1 else 0 for k in kernel)
        kind = str(g.choice(["conv", "conv", "convT", "adjoint"]))
        mode = str(g.choice(["zeros", "zeros", "reflect", "replicate", "circular"]))
        if kind == "convT":
            mode = "zeros"
        weight_shape = (c_out, c_in // groups) if kind == "conv" else (c_in, c_out // groups)
        weight = self.weight(*weight_shape, *kernel)
        shape = (c_in, *sizes)
        try:
            if kind == "conv":
                op: cm.Layer = cm.Conv(weight, shape, stride=stride, padding=padding,
                                       dilation=dilation, groups=groups, padding_mode=mode)
            elif kind == "convT":
                op = cm.ConvTranspose(weight, shape, stride=stride, padding=padding,
                                      dilation=dilation, groups=groups)
            else:  # the adjoint of a convolution from c_out channels to this node's c_in
                forward_sizes = []
                for n, k, s, d, p in zip(sizes, kernel, stride, dilation, padding, strict=True):
                    # the largest forward input giving exactly n outputs
                    m = (n - 1) * s + d * (k - 1) + 1 - 2 * p
                    if m < 1:
                        return False
                    forward_sizes.append(m)
                forward = cm.Conv(weight, (c_out, *forward_sizes), stride=stride,
                                  padding=padding, dilation=dilation, groups=groups,
                                  padding_mode=mode)
                if forward.output_shape != shape:
                    return False
                op = forward.T
        except ConvMatrixError:
            return False
        if math.prod(op.output_shape) > 600 or min(op.output_shape[1:]) < 1:
            return False
        view = op.conv_view()
        assert view is not None
        spec = view.spec
        w_t = torch.from_numpy(np.asarray(weight, dtype=np.float64))
        pads = [p for pair in reversed(spec.padding) for p in pair]

        def forward_torch(x: Any) -> Any:
            if spec.padding_mode != "zeros":
                x = F.pad(x, pads, mode=_TORCH_MODE[spec.padding_mode])
                return _CONV[ndim](x, w_t, stride=spec.stride, dilation=spec.dilation,
                                   groups=spec.groups)
            return _CONV[ndim](x, w_t, stride=spec.stride, dilation=spec.dilation,
                               groups=spec.groups, padding=[p[0] for p in spec.padding])

        if kind == "conv":
            def torch_fn(v: dict[str, Any], src: str = source) -> Any:
                return forward_torch(v[src])
        elif kind == "convT":
            pad_t = [p[0] for p in spec.padding]
            out_pad = [o - ((i - 1) * s - 2 * p + d * (k - 1) + 1) for o, i, s, p, d, k in zip(
                spec.input_size, spec.output_size, spec.stride, pad_t, spec.dilation,
                spec.kernel_size, strict=True)]

            def torch_fn(v: dict[str, Any], src: str = source) -> Any:
                return _CONV_T[ndim](v[src], w_t, stride=spec.stride, padding=pad_t,
                                     output_padding=out_pad, dilation=spec.dilation,
                                     groups=spec.groups)
        else:
            zero = torch.zeros((1, spec.in_channels, *spec.input_size), dtype=torch.float64)

            def torch_fn(v: dict[str, Any], src: str = source) -> Any:
                return torch.func.vjp(forward_torch, zero)[1](v[src])[0]

        def dense_fn(v: dict[str, np.ndarray], src: str = source, layer: cm.Layer = op,
                     kind: str = kind) -> np.ndarray:
            return reference_matrix(layer, kind) @ v[src]

        self.add(name, op, (source,), torch_fn, dense_fn)
        return True

    def try_sum(self, name: str) -> bool:
        names = list(self.shapes)
        a = str(self.g.choice(names))
        same = [n for n in names if self.shapes[n] == self.shapes[a]]
        b = str(self.g.choice(same))
        coefficients = ((int(self.g.integers(-2, 3)), int(self.g.integers(-2, 3))) if self.integer
                        else (float(self.g.standard_normal()), 1.0))

        def torch_fn(v: dict[str, Any]) -> Any:
            return coefficients[0] * v[a] + coefficients[1] * v[b]

        def dense_fn(v: dict[str, np.ndarray]) -> np.ndarray:
            return coefficients[0] * v[a] + coefficients[1] * v[b]

        self.add(name, cm.Sum(coefficients), (a, b), torch_fn, dense_fn)
        return True

    def try_cat(self, name: str) -> bool:
        names = list(self.shapes)
        a = str(self.g.choice(names))
        same = [n for n in names if self.shapes[n][1:] == self.shapes[a][1:]]
        b = str(self.g.choice(same))
        if self.shapes[a][0] + self.shapes[b][0] > 8:
            return False

        def torch_fn(v: dict[str, Any]) -> Any:
            return torch.cat([v[a], v[b]], dim=1)

        def dense_fn(v: dict[str, np.ndarray]) -> np.ndarray:
            return np.vstack([v[a], v[b]])

        self.add(name, cm.Cat(0), (a, b), torch_fn, dense_fn)
        return True

    def build(self, size: int) -> cm.Graph:
        count = 0
        tries = 0
        while count < size and tries < 200:
            tries += 1
            name = f"n{count}"
            kind = self.g.choice(["conv", "conv", "conv", "sum", "cat"])
            source = str(self.g.choice(list(self.shapes)))
            ok = (self.try_conv(name, source) if kind == "conv" else
                  self.try_sum(name) if kind == "sum" else self.try_cat(name))
            count += ok
        # the output: a convolution of the last node (so every graph ends in a product)
        last = self.nodes[-1].name if self.nodes else "input"
        while not self.try_conv("out", last):
            pass
        return cm.Graph(self.input_shape, self.nodes, "out")


def reference_matrix(layer: cm.Layer, kind: str) -> np.ndarray:
    """The layer's dense matrix from the dense loop reference applied to unit vectors."""
    view = layer.conv_view()
    assert view is not None
    spec, weight = view.spec, view.weight
    n_in = math.prod(spec.input_size) * spec.in_channels

    def forward(x: np.ndarray) -> np.ndarray:
        return reference.conv(x, weight, stride=spec.stride, padding=spec.padding,
                              dilation=spec.dilation, groups=spec.groups,
                              padding_mode=spec.padding_mode)

    columns = []
    for i in range(n_in):
        x = np.zeros(n_in, dtype=weight.dtype)
        x[i] = 1
        columns.append(forward(x.reshape(spec.in_channels, *spec.input_size)).reshape(-1))
    matrix = np.stack(columns, axis=1)
    return matrix if view.direction == "forward" else matrix.T


def _random_graph(seed: int, ndim: int, integer: bool) -> _Builder:
    builder = _Builder(rng("stencil graph", seed, ndim, integer), ndim, integer)
    builder.build(int(builder.g.integers(1, 6)))
    return builder


@pytest.mark.parametrize(("seed", "ndim"), list(itertools.product(range(8), (1, 2, 3))))
def test_random_graphs_equal_torch_jacrev(seed: int, ndim: int) -> None:
    builder = _random_graph(seed, ndim, integer=False)
    graph = cm.Graph(builder.input_shape, builder.nodes, "out")
    assert graph.plan().stencil is not None
    assert "stencil" in str(graph.plan())

    def function(x: Any) -> Any:
        values: dict[str, Any] = {"input": x[None]}
        for node in graph.nodes:
            values[node.name] = builder.torch[node.name](values)
        return values["out"][0]

    x = torch.zeros(graph.input_shape, dtype=torch.float64)
    jac = torch.func.jacrev(function)(x).reshape(-1, x.numel()).numpy()
    matrix = graph.matrix()
    assert matrix.has_canonical_format
    assert not (matrix.data == 0).any()  # no stored zeros
    scale = max(float(np.abs(jac).max()), 1.0)
    np.testing.assert_allclose(matrix.toarray(), jac, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize(("seed", "ndim"), list(itertools.product(range(6), (1, 2, 3))))
def test_random_integer_graphs_equal_the_reference_product_bit_for_bit(seed: int,
                                                                      ndim: int) -> None:
    builder = _random_graph(100 + seed, ndim, integer=True)
    graph = cm.Graph(builder.input_shape, builder.nodes, "out")
    assert graph.plan().stencil is not None
    values: dict[str, np.ndarray] = {"input": builder.dense["input"]({})}
    for node in graph.nodes:
        values[node.name] = builder.dense[node.name](values)
    matrix = graph.matrix()
    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(matrix.toarray(), values["out"])
    assert not (matrix.data == 0).any()


def test_unet_like_graph_and_its_transpose() -> None:
    """Down and up blocks with concatenated skips, as benchmarks/bench_graph.py's U-Net."""
    g = rng("unet")

    def w(*shape: int) -> np.ndarray:
        return g.standard_normal(shape)

    nodes = [
        cm.Node("enc1", cm.Conv(w(4, 2, 3, 3), (2, 8, 8), padding=1), ("input",)),
        cm.Node("down1", cm.Conv(w(6, 4, 3, 3), (4, 8, 8), stride=2, padding=1), ("enc1",)),
        cm.Node("up1", cm.ConvTranspose(w(6, 4, 2, 2), (6, 4, 4), stride=2), ("down1",)),
        cm.Node("cat1", cm.Cat(0), ("up1", "enc1")),
        cm.Node("dec1", cm.Conv(w(2, 8, 3, 3), (8, 8, 8), padding=1), ("cat1",)),
        cm.Node("res", cm.Sum((1, -0.5)), ("dec1", "input")),
    ]
    graph = cm.Graph((2, 8, 8), nodes, "res")
    assert graph.plan().stencil is not None
    def t(array: np.ndarray) -> Any:
        return torch.from_numpy(np.array(array))

    ops = {node.name: node.op for node in nodes}

    def function(x: Any) -> Any:
        x = x[None]
        e1 = F.conv2d(x, t(ops["enc1"].weight), padding=1)
        d1 = F.conv2d(e1, t(ops["down1"].weight), stride=2, padding=1)
        u1 = F.conv_transpose2d(d1, t(ops["up1"].weight), stride=2)
        out = F.conv2d(torch.cat([u1, e1], dim=1), t(ops["dec1"].weight), padding=1)
        return (out - 0.5 * x)[0]

    x = torch.zeros((2, 8, 8), dtype=torch.float64)
    jac = torch.func.jacrev(function)(x).reshape(128, 128).numpy()
    np.testing.assert_allclose(graph.matrix().toarray(), jac, atol=1e-12 * np.abs(jac).max())
    np.testing.assert_allclose(graph.matrix("csc").toarray(), jac,
                               atol=1e-12 * np.abs(jac).max())
    np.testing.assert_allclose(graph.T.matrix().toarray(), jac.T,
                               atol=1e-12 * np.abs(jac).max())


def test_memory_guard_refuses_before_building() -> None:
    conv = cm.Conv(np.ones((4, 4, 3, 3)), (4, 16, 16), padding=1)
    graph = cm.Graph((4, 16, 16), [cm.Node("a", conv, ("input",)),
                                   cm.Node("b", conv, ("a",))], "b")
    plan = graph.plan()
    assert plan.stencil is not None
    with pytest.raises(ConvMatrixError, match=r"max_bytes.*GiB|estimated .* at its peak"):
        graph.matrix(max_bytes=int(plan.peak_bytes) - 1)
    assert graph.matrix(max_bytes=int(plan.peak_bytes)).nnz > 0


def test_ineligible_graphs_keep_the_sparse_products() -> None:
    """A concatenation along a spatial axis or a non-convolution layer: no blocked form."""
    conv = cm.Conv(np.ones((1, 1, 3)), (1, 6), padding=1)
    along_space = cm.Graph((1, 6), [cm.Node("a", conv, ("input",)),
                                    cm.Node("b", cm.Cat(1), ("a", "input"))], "b")
    assert along_space.plan().stencil is None
    with_linear = cm.Graph((1, 6), [cm.Node("a", conv, ("input",)),
                                    cm.Node("b", cm.Flatten((1, 6)), ("a",))], "b")
    assert with_linear.plan().stencil is None
    np.testing.assert_array_equal(with_linear.matrix().toarray(), conv.matrix().toarray())


@pytest.mark.parametrize("seed", range(6))
def test_the_peak_estimate_bounds_the_memory_traced(seed: int) -> None:
    """What ``plan().peak_bytes`` promises (and ``max_bytes`` is checked against) holds."""
    import tracemalloc

    builder = _random_graph(200 + seed, 2, integer=False)
    graph = cm.Graph(builder.input_shape, builder.nodes, "out")
    plan = graph.plan()
    assert plan.stencil is not None
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        graph.matrix(max_bytes=int(plan.peak_bytes))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= plan.peak_bytes + 64 * 1024  # + the plan's own small index arrays
