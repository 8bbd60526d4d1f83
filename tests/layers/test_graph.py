"""cm.Graph, cm.Add, cm.Concat: residual sums and concatenations against live torch functions
(``torch.func.jacrev`` for the matrix, the function itself for the affine map), the adjoint
against the matrix's transpose, and the validation messages."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.layers.base import Layer
from tests.helpers import rng

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _jacobian(function, shape):
    x = torch.zeros(shape, dtype=torch.float64)
    jac = torch.func.jacrev(function)(x)
    out = function(x)
    return jac.reshape(out.numel(), x.numel()).numpy(), out.reshape(-1).numpy()


def _check_against(graph: cm.Graph, function) -> None:
    """Matrix, offset, forward on a sample and on a batch, adjoint, against the function."""
    jac, offset = _jacobian(function, graph.input_shape)
    np.testing.assert_allclose(graph.matrix().toarray(), jac, atol=1e-12)
    np.testing.assert_allclose(graph.offset(), offset, atol=1e-12)
    x = rng("x", repr(graph)).standard_normal((3, *graph.input_shape))
    expected = np.stack([function(torch.from_numpy(sample)).numpy() for sample in x])
    np.testing.assert_allclose(graph(x), expected, atol=1e-10)
    y = rng("y", repr(graph)).standard_normal((2, *graph.output_shape))
    np.testing.assert_allclose(
        graph.operator().rmatmat(y.reshape(2, -1).T).T, y.reshape(2, -1) @ jac, atol=1e-10)
    np.testing.assert_allclose(graph.T.matrix().toarray(), jac.T, atol=1e-12)


def _weights(key, *shape):
    return rng("w", key, shape).standard_normal(shape)


def test_residual_block_with_two_convs_and_biases():
    w1, w2 = _weights("r1", 4, 4, 3, 3), _weights("r2", 4, 4, 3, 3)
    b1, b2 = _weights("b1", 4), _weights("b2", 4)
    shape = (4, 6, 5)
    conv1 = cm.Conv(w1, shape, padding=1, bias=b1)
    conv2 = cm.Conv(w2, shape, padding=1, bias=b2)
    graph = cm.Graph(shape, [cm.Node("conv1", conv1, ("input",)),
                             cm.Node("conv2", conv2, ("conv1",)),
                             cm.Node("out", cm.Sum((1, 1)), ("conv2", "input"))], "out")

    def function(x):
        t = torch.from_numpy
        h = F.conv2d(x[None], t(w1), t(b1), padding=1)
        return (F.conv2d(h, t(w2), t(b2), padding=1) + x[None])[0]

    _check_against(graph, function)


def test_downsample_shortcut_and_subtraction_with_coefficients():
    w1, w2 = _weights("d1", 6, 3, 3, 3), _weights("d2", 6, 3, 1, 1)
    shape = (3, 7, 6)
    graph = cm.Graph(shape, [
        cm.Node("main", cm.Conv(w1, shape, stride=2, padding=1), ("input",)),
        cm.Node("short", cm.Conv(w2, shape, stride=2), ("input",)),
        cm.Node("out", cm.Sum((0.5, -2.0)), ("main", "short"))], "out")

    def function(x):
        t = torch.from_numpy
        return (0.5 * F.conv2d(x[None], t(w1), stride=2, padding=1)
                - 2.0 * F.conv2d(x[None], t(w2), stride=2))[0]

    _check_against(graph, function)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_along_every_axis(axis):
    w1, w2 = _weights("c1", 2, 3, 1, 1), _weights("c2", 2, 3, 3, 3)
    shape = (3, 5, 4)
    graph = cm.Concat([cm.Conv(w1, shape, bias=[1.0, -1.0]), cm.Conv(w2, shape, padding=1),
                       cm.Identity(shape)][: 3 if axis == 0 else 2], axis=axis)

    def function(x):
        t = torch.from_numpy
        parts = [F.conv2d(x[None], t(w1), torch.tensor([1.0, -1.0], dtype=torch.float64))[0],
                 F.conv2d(x[None], t(w2), padding=1)[0]]
        if axis == 0:
            parts.append(x)
        return torch.cat(parts, dim=axis)

    _check_against(graph, function)


def test_unet_like_skip_concat_then_conv():
    """Down (stride 2), up (transposed), concatenated with the skip, then a 3×3 conv."""
    wd, wu, wc = _weights("u1", 4, 2, 3, 3), _weights("u2", 4, 2, 2, 2), _weights("u3", 2, 4, 3, 3)
    shape = (2, 8, 8)
    graph = cm.Graph(shape, [
        cm.Node("down", cm.Conv(wd, shape, stride=2, padding=1), ("input",)),
        cm.Node("up", cm.ConvTranspose(wu, (4, 4, 4), stride=2), ("down",)),
        cm.Node("cat", cm.Cat(0), ("input", "up")),
        cm.Node("head", cm.Conv(wc, (4, 8, 8), padding=1, bias=[0.25, 0.5]), ("cat",))],
        "head")

    def function(x):
        t = torch.from_numpy
        up = F.conv_transpose2d(F.conv2d(x[None], t(wd), stride=2, padding=1), t(wu), stride=2)
        return F.conv2d(torch.cat([x[None], up], 1), t(wc),
                        torch.tensor([0.25, 0.5], dtype=torch.float64), padding=1)[0]

    _check_against(graph, function)
    counts = graph.overlap_counts()
    assert counts.shape == graph.output_shape
    assert graph.checkerboard().period is not None


def test_dense_products_are_formed_by_applying_the_layer():
    """A wide map from a small input: every node's matrix is full, formed densely."""
    w1, w2 = _weights("g1", 2, 8, 4, 4), _weights("g2", 8, 3, 4, 4)
    graph = cm.Graph((2, 2, 2), [
        cm.Node("up1", cm.ConvTranspose(w1, (2, 2, 2), stride=2, padding=1), ("input",)),
        cm.Node("up2", cm.ConvTranspose(w2, (8, 4, 4), stride=2, padding=1), ("up1",)),
        cm.Node("out", cm.Sum((1.0, 2.0)), ("up2", "up2"))], "out")
    assert sum(step.dense for step in graph.plan().steps) >= 2

    def function(x):
        t = torch.from_numpy
        h = F.conv_transpose2d(x[None], t(w1), stride=2, padding=1)
        return 3 * F.conv_transpose2d(h, t(w2), stride=2, padding=1)[0]

    _check_against(graph, function)


def test_operator_never_builds_a_matrix(monkeypatch):
    w = _weights("op", 2, 2, 3, 3)
    graph = cm.Add(cm.Conv(w, (2, 5, 5), padding=1), cm.Identity((2, 5, 5)))
    expected = graph.matrix().toarray()

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"{self!r}.matrix() was called")

    monkeypatch.setattr(Layer, "matrix", refuse)
    op = graph.operator()
    x = rng("opx").standard_normal(50)
    np.testing.assert_allclose(op.matvec(x), expected @ x, atol=1e-12)
    np.testing.assert_allclose(op.rmatvec(x), expected.T @ x, atol=1e-12)


def test_nodes_off_the_output_path_are_kept_but_not_evaluated():
    shape = (1, 4)

    class Exploding(cm.Identity):
        def apply_forward(self, x):
            raise AssertionError("evaluated")

    graph = cm.Graph(shape, [cm.Node("dead", Exploding(shape), ("input",)),
                             cm.Node("out", cm.Sum((2,)), ("input",))], "out")
    assert not graph.contributes("dead") and graph.contributes("out")
    np.testing.assert_array_equal(graph.matrix().toarray(), 2 * np.eye(4))
    assert "no" in str(graph).splitlines()[2]


def test_the_input_as_output_is_the_identity():
    graph = cm.Graph((2, 3), [], "input")
    np.testing.assert_array_equal(graph.matrix().toarray(), np.eye(6))
    np.testing.assert_array_equal(graph(np.ones((2, 3))), np.ones((2, 3)))


def test_max_bytes_refuses_before_building():
    graph = cm.Add(cm.Conv(np.ones((8, 8, 3, 3)), (8, 32, 32), padding=1),
                   cm.Identity((8, 32, 32)))
    with pytest.raises(cm.ConvMatrixError, match=r"max_bytes.*|estimated"):
        graph.matrix(max_bytes=1000)


def _conv(shape, out=None):
    return cm.Conv(np.ones((out or shape[0], shape[0], 1)), shape)


@pytest.mark.parametrize(("nodes", "output", "message"), [
    ([cm.Node("a", _conv((1, 3)), ("x",))], "a", r"unknown input 'x'"),
    ([cm.Node("a", _conv((1, 3)), ("b",)), cm.Node("b", _conv((1, 3)), ("input",))], "b",
     r"'a'.*takes 'b'.*nodes\[1\].*topological order"),
    ([cm.Node("a", cm.Sum((1, 1)), ("input", "a"))], "a", r"itself \(a cycle\)"),
    ([cm.Node("a", _conv((1, 3)), ("input",)), cm.Node("a", _conv((1, 3)), ("a",))], "a",
     r"duplicate node name 'a'"),
    ([cm.Node("a", _conv((1, 3), 2), ("input",)), cm.Node("b", _conv((1, 3)), ("a",))], "b",
     r"shape mismatch: node 'b'.*takes 1×3 but its input 'a' gives 2×3"),
    ([cm.Node("a", _conv((1, 3), 2), ("input",)), cm.Node("s", cm.Sum((1, 1)), ("a", "input"))],
     "s", r"shape mismatch in the sum node 's'.*'a' gives 2×3 but 'input' gives 1×3"),
    ([cm.Node("s", cm.Sum((1, 1, 1)), ("input", "input"))], "s", r"3 coefficients for 2"),
    ([cm.Node("c", cm.Cat(1), ("input", "a")), ], "c", r"unknown input 'a'"),
    ([cm.Node("a", cm.Pad((1, 3), (1, 1)), ("input",)), cm.Node("c", cm.Cat(0), ("input", "a"))],
     "c", r"concatenation node 'c' .* along axis 0: 'input' gives 1×3 but 'a' gives 1×5"),
    ([cm.Node("c", cm.Cat(2), ("input", "input"))], "c", r"`axis` \(=2\) is out of range"),
    ([cm.Node("a", _conv((1, 3)), ("input", "input"))], "a", r"takes one input"),
    ([cm.Node("input", _conv((1, 3)), ("input",))], "input", r"the graph's input name"),
    ([cm.Node("a", _conv((1, 3)), ("input",))], "b", r"`output` \(='b'\) is not a node"),
])
def test_invalid_graphs_are_refused_by_name(nodes, output, message):
    with pytest.raises(cm.ConvMatrixError, match=message):
        cm.Graph((1, 3), nodes, output)


def test_bad_node_parts_are_refused():
    with pytest.raises(cm.ConvMatrixError, match=r"must be a layer object, cm\.Sum or cm\.Cat"):
        cm.Node("a", np.eye(2), ("input",))
    with pytest.raises(cm.ConvMatrixError, match="non-empty str"):
        cm.Node("", cm.Sum((1,)), ("input",))
    with pytest.raises(cm.ConvMatrixError, match="real numbers"):
        cm.Sum(("a",))
    with pytest.raises(cm.ConvMatrixError, match="must be an int"):
        cm.Cat(1.5)
    with pytest.raises(cm.ConvMatrixError, match=r"outputs are summed.*1×3.*2×3"):
        cm.Add(_conv((1, 3)), _conv((1, 3), 2))
    with pytest.raises(cm.ConvMatrixError, match=r"share one input.*1×3.*2×3"):
        cm.Concat([_conv((1, 3)), _conv((2, 3))])


def test_lipschitz_of_a_graph_is_its_exact_norm_beside_the_path_bound():
    w = _weights("lip", 2, 2, 3, 3)
    conv = cm.Conv(w, (2, 5, 5), padding=1)
    graph = cm.Graph((2, 5, 5), [cm.Node("conv", conv, ("input",)),
                                 cm.Node("sum", cm.Sum((1, -2)), ("conv", "input")),
                                 cm.Node("cat", cm.Cat(0), ("sum", "conv"))], "cat")
    result = cm.lipschitz(graph)
    dense = graph.matrix().toarray()
    assert result.exact == pytest.approx(np.linalg.norm(dense, 2), rel=1e-6)
    norm = np.linalg.norm(conv.matrix().toarray(), 2)
    assert result.norms == pytest.approx((norm,), rel=1e-6)
    assert result.product_of_norms == pytest.approx(np.hypot(norm + 2, norm), rel=1e-6)
    assert result.exact <= result.product_of_norms * (1 + 1e-9)
    assert "graph" in str(result)


def test_explain_and_report_show_the_node_table_and_paths():
    block = cm.Add(cm.Conv(np.ones((1, 1, 3)), (1, 6), padding=1), cm.Identity((1, 6)))
    explanation = block.explain()
    assert explanation.paths == ("input → branch0 → add", "input → branch1 → add")
    assert explanation.nnz == 16
    text = block.report()
    assert "| 0 | `branch0` | layer |" in text and "2 path(s)" in text


def test_the_residual_block_report_matrix_is_the_live_torch_block():
    """The built-in report's block (cm kinds) against the same block in torch (jacrev)."""
    from convmatrix.reports.builtin import _basic_block

    block, _ = _basic_block()
    nodes = {node.name: node.op for node in block.nodes}

    def t(array):
        return torch.from_numpy(np.array(array))

    def function(x):
        h = x[None]
        for conv, norm in (("conv1", "bn1"), ("conv2", "bn2")):
            h = F.conv2d(h, t(nodes[conv].weight), padding=1)
            bn = nodes[norm]
            h = F.batch_norm(h, t(bn.running_mean), t(bn.running_var), t(bn.weight), t(bn.bias),
                             eps=bn.eps)
        return (h + x[None])[0]

    _check_against(block, function)


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "copy"])
def test_a_graph_whose_matrix_was_built_pickles_and_copies(how):
    """A convolution keeps weak references to its last CSR matrix's index arrays; a graph of
    one (and the layer, a node, the transpose) still pickles and copies once it has built its
    matrix, and the copy computes what torch does."""
    import copy
    import pickle

    weight = _weights("pickled", 1, 1, 3, 3)
    conv = cm.Conv(weight, (1, 6, 6), padding=1)
    graph = cm.Graph((1, 6, 6), [cm.Node("a", conv, ("input",)),
                                 cm.Node("b", cm.Sum((1.0, 2.0)), ("a", "input")),
                                 cm.Node("c", cm.Cat(0), ("b", "a"))], "c")
    graph.matrix()  # the conv's CSR matrix: its weak references are taken
    conv.T.matrix()
    clone = {"pickle": lambda o: pickle.loads(pickle.dumps(o)), "deepcopy": copy.deepcopy,
             "copy": copy.copy}[how]
    w = torch.from_numpy(weight)

    def function(x):
        a = F.conv2d(x[None], w, padding=1)[0]
        return torch.cat([a + 2 * x, a])

    _check_against(clone(graph), function)
    for layer in (conv, conv.T, graph.nodes[0]):
        assert repr(clone(layer)) == repr(layer)
