"""Integer graphs are widened by the integer rule instead of wrapping around.

``cm.Graph`` of int8 convolutions formed its matrix in int8: a residual block of two int8
3×3 convolutions with weights 100 gave 65 where the product is 360,001. The reference is
torch's float64 convolutions applied to unit vectors (exact: every value is an integer far
below 2⁵³).
"""
import numpy as np
import pytest

import convmatrix as cm

torch = pytest.importorskip("torch")


def _torch_matrix(weights, shape, *, skip):
    """The block's matrix from torch, column by column (unit vectors as a batch)."""
    n = int(np.prod(shape))
    x = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    y = x
    for w in weights:
        y = torch.nn.functional.conv2d(y, torch.tensor(w, dtype=torch.float64), padding=1)
    if skip:
        y = y + x
    return y.reshape(n, -1).T.numpy()


def _block(weights, shape, *, skip):
    nodes, previous = [], "input"
    for i, w in enumerate(weights):
        nodes.append(cm.Node(f"conv{i}", cm.Conv(w, shape, padding=1), (previous,)))
        previous = f"conv{i}"
    if skip:
        nodes.append(cm.Node("sum", cm.Sum((1, 1)), (previous, "input")))
        previous = "sum"
    return cm.Graph(shape, nodes, previous)


@pytest.mark.parametrize("channels, size", [(4, 6), (8, 16)])  # sparse products; blocked form
@pytest.mark.parametrize("skip", [False, True])
def test_int8_graph_matrix_is_the_exact_product(channels, size, skip):
    rng = np.random.default_rng(channels * size + skip)
    shape = (channels, size, size)
    weights = [rng.integers(-128, 128, (channels, channels, 3, 3)).astype(np.int8)
               for _ in range(2)]
    weights[0][0, 0] = 127  # one large path for sure: 127·127·9·channels overflows int8/int16
    graph = _block(weights, shape, skip=skip)
    matrix = graph.matrix()
    expected = _torch_matrix(weights, shape, skip=skip)
    assert matrix.dtype.kind == "i" and matrix.dtype.itemsize >= 4
    assert np.abs(expected).max() > np.iinfo(np.int16).max
    np.testing.assert_array_equal(matrix.toarray(), expected)
    x = rng.integers(-3, 4, shape).astype(np.int8)
    np.testing.assert_array_equal(graph(x).ravel(), expected @ x.ravel())


def test_graph_too_wide_for_int64_is_refused():
    shape = (1, 4, 4)
    w = np.full((1, 1, 3, 3), 2**40, dtype=np.int64)
    graph = _block([w, w], shape, skip=True)
    with pytest.raises(cm.ConvMatrixError, match="int64"):
        graph.matrix()
