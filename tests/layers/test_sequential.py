"""cm.Sequential: stacks of layer objects against the dense reference applied layer by layer,
live torch nn.Sequential forwards and input gradients, and every association order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

import convmatrix as cm
from convmatrix import reference
from convmatrix.layers.sequential import Order
from tests.helpers import rng
from tests.helpers import seed as seed_of


def _stack(key: str) -> tuple[cm.Sequential, list]:
    """A conv → convT → conv stack and the dense-reference steps that compute it."""
    r = rng("stack", key)
    w1, b1 = r.standard_normal((4, 2, 3, 3)), r.standard_normal(4)
    w2, b2 = r.standard_normal((4, 3, 3, 2)), r.standard_normal(3)
    w3 = r.standard_normal((2, 3, 2, 2))
    layers = [cm.Conv(w1, (2, 7, 6), stride=2, padding=1, bias=b1),
              cm.ConvTranspose(w2, (4, 4, 3), stride=2, padding=(1, 0), output_padding=1,
                               bias=b2),
              cm.Conv(w3, (3, 8, 7), dilation=2, padding=1, padding_mode="reflect")]
    steps = [
        lambda x: reference.conv(x, w1, stride=2, padding=1) + b1[:, None, None],
        lambda x: reference.conv_transpose(x, w2, stride=2, padding=(1, 0),
                                           output_padding=1) + b2[:, None, None],
        lambda x: reference.conv(x, w3, dilation=2, padding=1, padding_mode="reflect"),
    ]
    return cm.Sequential(layers), steps


def test_stack_matches_the_reference_applied_layer_by_layer():
    stack, steps = _stack("forward")
    x = rng("x").standard_normal(stack.input_shape)
    expected = x
    for step in steps:
        expected = step(expected)
    assert stack.output_shape == expected.shape
    np.testing.assert_allclose(stack(x), expected, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(stack.matrix() @ x.ravel() + stack.offset(), expected.ravel(),
                               rtol=1e-11, atol=1e-11)
    # the offset alone: the stack applied to zeros
    zero = np.zeros(stack.input_shape)
    for step in steps:
        zero = step(zero)
    np.testing.assert_allclose(stack.offset(), zero.ravel(), rtol=1e-12, atol=1e-12)


def _orders(start: int, stop: int) -> list[Order]:
    """Every association order of the leaves start..stop-1 (brute force)."""
    if stop - start == 1:
        return [start]
    return [(a, b) for cut in range(start + 1, stop)
            for a in _orders(start, cut) for b in _orders(cut, stop)]


def test_every_association_order_gives_the_same_matrix():
    stack, _ = _stack("orders")
    stack = cm.Sequential([*stack.layers, cm.Conv(np.ones((1, 2, 2, 2)), (2, 8, 7))])
    left_to_right = stack.layers[0].matrix()
    for layer in stack.layers[1:]:
        left_to_right = layer.matrix() @ left_to_right
    orders = _orders(0, 4)
    assert len(orders) == 5  # Catalan(3)
    for order in orders:
        product = stack.plan(order).matrix()
        np.testing.assert_allclose(product.toarray(), left_to_right.toarray(), rtol=1e-12,
                                   atol=1e-12)
    np.testing.assert_allclose(stack.matrix().toarray(), left_to_right.toarray(), rtol=1e-12,
                               atol=1e-12)


def test_the_chosen_order_is_the_cheapest_estimated_among_all_orders():
    r = rng("dp")
    layers = [cm.ConvTranspose(r.standard_normal((6, 8, 4)), (6, 1)),
              cm.ConvTranspose(r.standard_normal((8, 4, 4)), (8, 4), stride=2, padding=1),
              cm.ConvTranspose(r.standard_normal((4, 2, 4)), (4, 8), stride=2, padding=1),
              cm.Conv(r.standard_normal((3, 2, 3)), (2, 16), padding=1),
              cm.Conv(r.standard_normal((1, 3, 1)), (3, 16))]
    stack = cm.Sequential(layers)
    chosen = stack.plan()
    costs = {order: stack.plan(order).flops + stack.plan(order).nnz
             for order in _orders(0, 5)}
    assert chosen.flops + chosen.nnz == pytest.approx(min(costs.values()))
    # the estimates are exact counts on the patterns: the chosen order is the cheapest in
    # multiply-adds plus entries written, counted independently on the dense matrices
    dense = [(layer.matrix().toarray() != 0).astype(np.int64) for layer in layers]

    def true_cost(order):
        if isinstance(order, int):
            return dense[order], 0
        earlier, cost_e = true_cost(order[0])
        later, cost_l = true_cost(order[1])
        flops = int((later != 0).sum(axis=0) @ (earlier != 0).sum(axis=1))
        product = later @ earlier
        return product, cost_e + cost_l + flops + int(np.count_nonzero(product))

    truth = {order: true_cost(order)[1] for order in _orders(0, 5)}
    assert true_cost(chosen.order)[1] == min(truth.values())
    assert chosen.flops + chosen.nnz == true_cost(chosen.order)[1]


def test_a_narrow_output_is_multiplied_first():
    r = rng("narrow-output")
    stack = cm.Sequential([cm.Conv(r.standard_normal((16, 4, 3)), (4, 64), padding=1),
                           cm.Conv(r.standard_normal((16, 16, 3)), (16, 64), padding=1),
                           cm.Conv(r.standard_normal((1, 16, 64)), (16, 64))])
    assert stack.plan().order == (0, (1, 2))
    x = r.standard_normal(stack.input_shape)
    np.testing.assert_allclose(stack.matrix() @ x.ravel(), stack(x).ravel(), rtol=1e-11)


def test_adjoint_is_the_reversed_stack_of_adjoints():
    stack, _ = _stack("adjoint")
    adjoint = stack.T
    assert isinstance(adjoint, cm.Sequential)
    assert adjoint.T is stack
    assert [repr(a) for a in adjoint] == [repr(layer.T) for layer in reversed(stack.layers)]
    # equal up to rounding: the adjoint chain may associate differently
    np.testing.assert_allclose(adjoint.matrix().toarray(), stack.matrix().T.toarray(),
                               rtol=1e-12, atol=1e-12)
    r = rng("adjoint-dot")
    x, y = r.standard_normal(stack.input_shape), r.standard_normal(stack.output_shape)
    linear = stack(x) - stack.offset().reshape(stack.output_shape)
    assert np.vdot(linear, y) == pytest.approx(np.vdot(x, adjoint(y)), rel=1e-10)
    assert not adjoint.offset().any()


def test_nested_stacks_are_flattened_into_one_chain():
    stack, _ = _stack("nested")
    nested = cm.Sequential([stack[:2], stack[2]])
    assert len(nested) == 2 and len(nested.chain()) == 3
    x = rng("nested-x").standard_normal(stack.input_shape)
    np.testing.assert_allclose(nested(x), stack(x), rtol=1e-12)
    assert (nested.matrix() != stack.matrix()).nnz == 0
    np.testing.assert_allclose(nested.offset(), stack.offset(), rtol=1e-12)


def test_integer_stacks_stay_exact():
    ones = np.ones((1, 1, 3, 3), dtype=int)
    stack = cm.Sequential([cm.ConvTranspose(ones, (1, 4, 4), stride=2),
                           cm.ConvTranspose(ones, (1, 9, 9), stride=2)])
    assert stack.dtype == np.dtype(int)
    counts = stack(np.ones((1, 4, 4), dtype=int))[0]
    # two k3/s2 transposed layers of ones: the overlap counts of issue 10
    assert counts.dtype.kind == "i"
    assert sorted(set(counts[4:-4, 4:-4].ravel().tolist())) == [1, 2, 3, 4, 6, 9]
    assert (stack.matrix() @ np.ones(16, dtype=int) == counts.ravel()).all()


def test_sequence_protocol_and_rendering():
    stack, _ = _stack("render")
    assert len(stack) == 3
    assert list(stack) == list(stack.layers)
    assert stack[1] is stack.layers[1]
    assert isinstance(stack[1:], cm.Sequential) and len(stack[1:]) == 2
    assert repr(stack) == "Sequential(3 layers, 2×7×6 → 2×8×7)"
    text = str(stack).splitlines()
    assert text[0] == repr(stack)
    assert len(text) == 5 and text[2].lstrip().startswith("0  Conv(2→4")
    markdown = stack._repr_markdown_()
    assert markdown.count("\n| ") == 4 and "| 1 | `ConvTranspose(4→3" in markdown
    assert "product order" in str(stack.plan())


@pytest.mark.parametrize(("call", "match"), [
    (lambda: cm.Sequential([]), "`layers` is empty"),
    (lambda: cm.Sequential(cm.Conv(np.ones((1, 1, 2)), (1, 3))), "must be a list"),
    (lambda: cm.Sequential([cm.Conv(np.ones((1, 1, 2)), (1, 3)), "relu"]),
     r"`layers\[1\]` \(=str\) is not a layer object"),
    (lambda: cm.Sequential([cm.Conv(np.ones((1, 1, 2)), (1, 5)),
                            cm.Conv(np.ones((2, 1, 2)), (1, 4)),
                            cm.Conv(np.ones((1, 1, 2)), (1, 3))]),
     r"layers\[1\] and layers\[2\]: Conv\(1→2, 1×4 → 2×3, kernel 2\) outputs 2×3 but "
     r"Conv\(1→1, 1×3 → 1×2, kernel 2\) takes 1×3"),
    (lambda: _two().plan(((0, 1), 1)), "`order`"),
    (lambda: _two().plan((1, 0)), "`order`"),
    (lambda: _two().plan(True), "`order`"),
    (lambda: _two().matrix(max_bytes=100), r"estimated .* GiB at its peak .* `max_bytes`"),
    (lambda: _two().matrix(max_bytes=-3), "`max_bytes`"),
])
def test_bad_input_is_refused_with_the_parameter_named(call, match):
    with pytest.raises(cm.ConvMatrixError, match=match):
        call()


def _two() -> cm.Sequential:
    return cm.Sequential([cm.Conv(np.ones((2, 1, 3)), (1, 40)),
                          cm.Conv(np.ones((2, 2, 3)), (2, 38))])


# --- live torch ---------------------------------------------------------------------------


def _torch_stack(torch, index: int):
    nn = torch.nn
    stacks = [
        (nn.Sequential(nn.ConvTranspose2d(5, 6, 4, 1, 0), nn.ConvTranspose2d(6, 3, 4, 2, 1),
                       nn.ConvTranspose2d(3, 2, 4, 2, 1, bias=False)), (5, 1, 1)),
        (nn.Sequential(nn.Conv1d(2, 4, 3, padding=1, padding_mode="circular"),
                       nn.Conv1d(4, 4, 3, stride=2, groups=2),
                       nn.ConvTranspose1d(4, 1, 5, stride=3, output_padding=2)), (2, 11)),
        (nn.Sequential(nn.Conv3d(1, 2, 2, padding=1),
                       nn.Sequential(nn.Conv3d(2, 2, (1, 2, 3), dilation=(1, 2, 1)))),
         (1, 3, 5, 4)),
    ]
    return stacks[index]


@pytest.mark.parametrize("index", range(3))
def test_from_torch_sequential_matches_the_live_forward_and_input_gradient(index):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed_of("torch-stack", index))
    module, shape = _torch_stack(torch, index)
    module = module.double()
    layer = cm.from_torch(module, shape)
    assert isinstance(layer, cm.Sequential)
    x = torch.randn(1, *shape, dtype=torch.float64, requires_grad=True)
    y = module(x)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    matrix = layer.matrix()
    np.testing.assert_allclose(matrix @ x.detach().numpy().ravel() + layer.offset(),
                               y.detach().numpy().ravel(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer(x.detach().numpy()[0]), y.detach().numpy()[0],
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.T(g.numpy()[0]), grad.numpy()[0], rtol=1e-10, atol=1e-10)


def test_from_torch_refuses_a_non_linear_child_naming_its_position():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 1, 3))
    with pytest.raises(cm.ConvMatrixError, match=r"`module\[1\]` \(ReLU\) is not linear"):
        cm.from_torch(module, (1, 8, 8))
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(3, 1, 3))
    with pytest.raises(cm.ConvMatrixError, match=r"`module\[1\]` \(Conv2d\): .*channels"):
        cm.from_torch(module, (1, 8, 8))


def test_orders_are_all_the_pairs_of_the_brute_force():
    # the brute force used above enumerates Catalan-many distinct orders
    assert [len(_orders(0, n)) for n in range(1, 6)] == [1, 1, 2, 5, 14]
    assert len({repr(o) for o in _orders(0, 5)}) == 14
    assert all(isinstance(o, tuple) for o in itertools.islice(_orders(0, 3), 2))


# --- random torch stacks of every linear module kind -----------------------------------------


def _random_module(torch, r: np.random.Generator, shape: tuple[int, ...]):
    """One random linear 2-D module valid for a (C, H, W) input."""
    nn = torch.nn
    c, h, w = shape
    options = ["conv", "convT", "bn", "pad"]
    if h >= 2 and w >= 2:
        options += ["pool"]
    if h * w <= 64:
        options += ["upsample"]
    if h % 2 == 0 and w % 2 == 0:
        options += ["unshuffle"]
    if c % 4 == 0:
        options += ["shuffle"]
    kind = options[r.integers(len(options))]
    out = int(r.integers(1, 5))
    if kind == "conv":
        k = int(r.integers(1, min(h, w, 3) + 1))
        return nn.Conv2d(c, out, k, stride=int(r.integers(1, 3)), padding=int(r.integers(0, 2)),
                         padding_mode=["zeros", "reflect", "circular"][r.integers(3)]
                         if k > 1 and min(h, w) > 1 else "zeros")
    if kind == "convT":
        return nn.ConvTranspose2d(c, out, int(r.integers(2, 5)), stride=int(r.integers(1, 3)),
                                  padding=int(r.integers(0, 2)))
    if kind == "bn":
        bn = nn.BatchNorm2d(c)
        with torch.no_grad():
            bn.running_mean.copy_(torch.randn(c))
            bn.running_var.copy_(torch.rand(c) + 0.5)
            bn.weight.copy_(torch.randn(c))
            bn.bias.copy_(torch.randn(c))
        return bn.eval()
    if kind == "pad":
        return [nn.ZeroPad2d((1, 0, 2, 1)), nn.ConstantPad2d(1, 0.5),
                nn.ReplicationPad2d((0, 2, 1, 0)),
                nn.ReflectionPad2d(1) if min(h, w) > 1 else nn.ZeroPad2d(1)][r.integers(4)]
    if kind == "pool":
        return nn.AvgPool2d(2, stride=int(r.integers(1, 3)), padding=int(r.integers(0, 2)),
                            ceil_mode=bool(r.integers(2)), count_include_pad=bool(r.integers(2)))
    if kind == "upsample":
        mode = ["nearest", "bilinear", "bicubic"][r.integers(3)]
        align = None if mode == "nearest" else bool(r.integers(2))
        return nn.Upsample(scale_factor=2, mode=mode, align_corners=align)
    if kind == "unshuffle":
        return nn.PixelUnshuffle(2)
    return nn.PixelShuffle(2)


@pytest.mark.parametrize("seed", range(8))
def test_random_torch_stacks_match_their_forward_and_input_gradient(seed):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed_of("random-stack", seed))
    r = rng("random-stack", seed)
    shape: tuple[int, ...] = (int(r.integers(1, 4)), int(r.integers(3, 7)), int(r.integers(3, 7)))
    modules, current = [], shape
    for _ in range(int(r.integers(3, 7))):
        module = _random_module(torch, r, current)
        with torch.no_grad():
            current = tuple(module(torch.zeros(1, *current)).shape[1:])
        modules.append(module)
    stack = torch.nn.Sequential(*modules).double()
    layer = cm.from_torch(stack, shape)
    x = torch.randn(1, *shape, dtype=torch.float64, requires_grad=True)
    y = stack(x)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    np.testing.assert_allclose(layer.matrix() @ x.detach().numpy().ravel() + layer.offset(),
                               y.detach().numpy().ravel(), rtol=1e-9, atol=1e-9,
                               err_msg=str(layer))
    np.testing.assert_allclose(layer(x.detach().numpy()[0]), y.detach().numpy()[0], rtol=1e-9,
                               atol=1e-9)
    np.testing.assert_allclose(layer.T(g.numpy()[0]), grad.numpy()[0], rtol=1e-9, atol=1e-9)


def test_large_factors_on_a_narrow_product_are_built_in_row_blocks():
    r = rng("blocks")
    layers = [cm.ConvTranspose(r.standard_normal((3, 16, 4, 4)), (3, 1, 1)),
              cm.ConvTranspose(r.standard_normal((16, 12, 4, 4)), (16, 4, 4), stride=2,
                               padding=1),
              cm.Conv(r.standard_normal((6, 12, 3, 3)), (12, 8, 8), padding=1,
                      padding_mode="reflect")]
    stack = cm.Sequential(layers)
    plan = stack.plan()
    assert plan.order == ((0, 1), 2)
    assert plan.blocks and all(parts > 1 for parts in plan.blocks.values())
    expected = layers[2].matrix() @ (layers[1].matrix() @ layers[0].matrix())
    np.testing.assert_allclose(plan.matrix().toarray(), expected.toarray(), rtol=1e-12,
                               atol=1e-12)
    x = r.standard_normal(stack.input_shape)
    np.testing.assert_allclose(plan.matrix() @ x.ravel(), stack(x).ravel(), rtol=1e-11)
    # the adjoint multiplies from the other side: the large factors go in column blocks
    adjoint = stack.T.plan()
    assert adjoint.order == (0, (1, 2))
    assert adjoint.column_blocks and not adjoint.blocks
    np.testing.assert_allclose(adjoint.matrix().toarray(), expected.T.toarray(), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("kind", ["conv", "transpose"])
def test_channel_blocks_of_a_factor_stack_to_its_matrix(kind):
    from convmatrix.layers.sequential import _column_blocks, _row_blocks

    weight = np.arange(60.0).reshape(5, 4, 3) - 30
    layer = (cm.Conv(weight, (4, 9), stride=2, padding=1, padding_mode="reflect")
             if kind == "conv" else
             cm.ConvTranspose(weight, (5, 6), stride=2, padding=1, output_padding=1))
    rows, columns = _row_blocks(layer, 3), _column_blocks(layer, 2)
    assert rows is not None and len(rows) == 3 and columns is not None and len(columns) == 2
    stacked = sp.vstack([piece.matrix() for piece in rows])
    side_by_side = sp.hstack([piece.matrix() for piece in columns])
    assert abs(stacked - layer.matrix()).max() == 0
    assert abs(side_by_side - layer.matrix()).max() == 0
    assert all(type(piece) is type(layer) for piece in (*rows, *columns))
