"""Affine operations the torch.fx reader reads beyond layers (issue 17): view_as/reshape_as,
narrow, flip, sum/mean over channels and spatial axes, repeat/expand, stack, dtype casts,
permute/transpose/movedim (``cm.Permute``; a ShuffleNet channel shuffle), tile,
repeat_interleave, unbind, channel indexing, roll, fliplr, ``x @ W``; ``x.detach()``: the
identity for ``from_torch``, a constant for ``cm.linearize`` (as ``torch.func.jacrev``).

Each against the live module in float64: ``from_torch(m).matrix() @ x + offset == m(x)`` and the
matrix against ``torch.func.jacrev``; and ``cm.linearize`` of the op followed by a ReLU against
``jacrev`` at a point."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional


class Op(nn.Module):
    """A conv, then the operation under test, then (optionally) a ReLU."""

    def __init__(self, op, cin=2, relu=False):
        super().__init__()
        self.conv = nn.Conv2d(cin, 3, 3, padding=1)
        self.op = op
        self.relu = relu

    def forward(self, x):
        y = self.op(self.conv(x), x)
        return F.relu(y) if self.relu else y


OPS = {
    "view_as": lambda y, x: y[:, :2].flatten(2).view_as(y[:, 1:]),
    "reshape_as": lambda y, x: (y[:, :2] + x).reshape(1, 2, 25).reshape_as(x) * 2.0,
    "narrow": lambda y, x: torch.narrow(y, 1, 1, 2) - y.narrow(3, -3, 3).narrow(2, 0, 2)
    .repeat(1, 1, 3, 2)[:, 1:, :5, 1:],
    "flip": lambda y, x: torch.flip(y, (1, 3)) + y.flip(2) - torch.flip(y, [-1]),
    "sum_spatial": lambda y, x: y.sum(dim=(2, 3)) + y.sum(-1).sum(-1),
    "sum_channels": lambda y, x: y.sum(1, keepdim=True) - torch.sum(y, dim=1)[:, None],
    "sum_mixed": lambda y, x: torch.sum(y, (1, 3)),
    "mean_global": lambda y, x: y.mean((2, 3)).view(1, 3, 1).mean(-1) + y.mean((-1, -2)),
    "mean_axes": lambda y, x: torch.cat([y.mean(dim=2), y.mean(1, keepdim=True).mean(3)], 1),
    "repeat": lambda y, x: y.repeat(1, 2, 1, 3),
    "expand": lambda y, x: y.mean(1, keepdim=True).expand(-1, 3, -1, -1) + y
    + y[:, :, :1].expand_as(y),
    "stack": lambda y, x: torch.stack([y, 2 * y, -y], dim=2).flatten(1, 2)
    + torch.stack((y, y), -1).sum(-1).repeat(1, 3, 1, 1),
    "stack_last": lambda y, x: torch.stack([y[:, 0], x[:, 1]], dim=-1),
    "permute": lambda y, x: y.permute(0, 2, 3, 1).reshape(1, -1) + torch.permute(
        y, (0, 3, 2, 1)).flatten(1),
    "channel_shuffle": lambda y, x: torch.cat([y, x[:, :1]], 1).view(1, 2, 2, 5, 5)
    .transpose(1, 2).contiguous().view(1, 4, 5, 5),
    "transpose": lambda y, x: y.transpose(2, 3) - y.swapaxes(-1, -2) + 2 * y.mT
    + torch.transpose(y, 3, 2),
    "movedim": lambda y, x: torch.movedim(y, 1, -1) + y.moveaxis((1, 2), (3, 1)),
    "casts": lambda y, x: y.to(torch.float64).double().to(x) + y.contiguous()
    + x.type_as(y).sum(1, keepdim=True).expand_as(y),
    "tile": lambda y, x: torch.tile(y, (1, 2, 3)) + y.tile((1, 1, 2, 3))
    + x[:, :1].tile((3, 2, 3)),
    "repeat_interleave": lambda y, x: torch.repeat_interleave(y, 2, dim=1)
    + y.repeat_interleave(torch.tensor([2, 2, 2]), dim=1).flip(3)
    + x.repeat_interleave(3, dim=-3)[:, :6],
    "unbind": lambda y, x: torch.stack(y.unbind(2), dim=3)
    - torch.unbind(y, 1)[2][:, None].expand(-1, 3, -1, -1)
    + torch.unbind(x, dim=-1)[4][:, :1, :, None].expand(-1, 3, -1, 5),
    "channel_index": lambda y, x: y[:, 1] - 2 * y[:, -1] + x[:, 0],
    "roll": lambda y, x: torch.roll(y, 1, 2) + y.roll(shifts=(-1, 7), dims=(1, 3))
    - torch.roll(y, 0, -1),
    "fliplr": lambda y, x: torch.fliplr(y[:, 0]) + torch.flip(y, [1])[:, 2],
    "instance_norm_running": lambda y, x: F.instance_norm(
        y, torch.tensor([0.5, -1.0, 0.0], dtype=torch.float64),
        torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64), use_input_stats=False, eps=1e-3),
    "matmul": lambda y, x: y.flatten(1) @ torch.linspace(-1, 1, 150, dtype=torch.float64)
    .reshape(75, 2) + torch.mm(x.flatten(1), torch.ones(50, 2, dtype=torch.float64)),
}


def _randomized(module, key):
    torch.manual_seed(abs(hash(key)) % 2**31)
    return module.double().eval()


def _function(module):
    def function(v):
        return module(v[None])[0]
    return function


@pytest.mark.parametrize("name", list(OPS))
def test_from_torch_matches_the_live_module(name):
    module = _randomized(Op(OPS[name]), name)
    shape = (2, 5, 5)
    layer = cm.from_torch(module, shape)
    x = rng("fx-ops", name).standard_normal(shape)
    with torch.no_grad():
        want = module(torch.from_numpy(x)[None])[0].numpy()
    got = layer.matrix() @ x.ravel() + layer.offset()
    np.testing.assert_allclose(got, want.ravel(), rtol=1e-12, atol=1e-12)
    jac = torch.func.jacrev(_function(module))(torch.from_numpy(x)).detach()
    np.testing.assert_allclose(layer.matrix().toarray(), jac.reshape(want.size, x.size).numpy(),
                               atol=1e-12)
    y = rng("fx-ops-y", name).standard_normal(layer.output_shape)
    np.testing.assert_allclose(layer.operator().rmatvec(y.ravel()),
                               y.ravel() @ jac.reshape(want.size, x.size).numpy(), atol=1e-11)


@pytest.mark.parametrize("name", list(OPS))
def test_linearize_matches_jacrev(name):
    module = _randomized(Op(OPS[name], relu=True), name)
    x = torch.from_numpy(rng("fx-ops-point", name).standard_normal((1, 2, 5, 5)))
    lin = cm.linearize(module, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        jac = torch.func.jacrev(module)(x).detach()
    with torch.no_grad():
        want = module(x)[0].numpy()
    np.testing.assert_allclose(lin.matrix().toarray(), jac.reshape(want.size, -1).numpy(),
                               atol=1e-12)
    np.testing.assert_allclose(lin(x[0].numpy()), want, rtol=1e-12, atol=1e-12)
    assert [s.op for s in lin.sites] == ["F.relu"]


@pytest.mark.parametrize(("op", "message"), [
    (lambda y, x: y.sum(), r"node 'sum_1' \(position \d+, call_method \.sum\(\)\): sums over "
                           r"every axis, the batch axis too"),
    (lambda y, x: y.sum(0), r"sums along the batch axis"),
    (lambda y, x: y.to(torch.float16).double(), r"converts torch\.float64 to torch\.float16"),
    (lambda y, x: y.float().double(), r"converts torch\.float64 to torch\.float32"),
    (lambda y, x: y.repeat(2, 1, 1, 1), r"repeats \(2, 1, 1, 1\)"),
    (lambda y, x: torch.stack([y, y], 0), r"stacks along the batch axis"),
    (lambda y, x: y.flip(0), r"flips along the batch axis"),
    (lambda y, x: y.permute(1, 0, 2, 3), r"moves the batch axis \(\(1, 0, 2, 3\)\)"),
    (lambda y, x: y.transpose(0, 1), r"call_method \.transpose\(\)\): moves the batch axis"),
    (lambda y, x: y.flatten(1).T, r"call_function getattr\): moves the batch axis \(\(1, 0\)\)"),
    (lambda y, x: y.tile((2, 1, 1, 1)), r"tiles the batch axis"),
    (lambda y, x: y.tile((1, 1, 1, 1, 2)), r"adds axes before the batch axis"),
    (lambda y, x: y.repeat_interleave(2), r"repeats without dim"),
    (lambda y, x: y.repeat_interleave(torch.tensor([1, 2, 1]), dim=1),
     r"repeats entries by the counts \[1, 2, 1\]"),
    (lambda y, x: torch.roll(y, 1), r"rolls without dims"),
    (lambda y, x: y.unbind(0)[0], r"unbinds along the batch axis"),
    (lambda y, x: torch.flipud(y), r"flips along the batch axis"),
    (lambda y, x: y[:, 0] @ y[:, 1], r"call_function matmul\): multiplies two values "
                                     r"that depend on the input \(a product of branches\)"),
])
def test_refusals_name_the_node(op, message):
    with pytest.raises(cm.ConvMatrixError, match=message):
        cm.from_torch(_randomized(Op(op), "refused"), (2, 5, 5))


class Detached(nn.Module):
    """A ReLU branch, part of it detached, and the input detached."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return 2 * y + y.detach() * 3 + torch.detach(x) + (torch.relu(x) - x).detach()


def test_detach_is_a_constant_for_linearize_as_for_jacrev():
    module = _randomized(Detached(), "detach")
    x = torch.from_numpy(rng("fx-detach", 0).standard_normal((1, 2, 5, 5)))
    lin = cm.linearize(module, x)
    jac = torch.func.jacrev(module)(x).detach().reshape(50, 50).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # jacfwd through detach: torch.jit
        forward = torch.func.jacfwd(module)(x).detach().reshape(50, 50).numpy()
    np.testing.assert_allclose(jac, forward, atol=1e-12)
    np.testing.assert_allclose(lin.matrix().toarray(), jac, atol=1e-12)
    with torch.no_grad():
        want = module(x)[0].numpy()
    np.testing.assert_allclose(lin(x[0].numpy()), want, rtol=1e-12, atol=1e-12)
    stops = [s for s in lin.sites if s.kind == "constant"]
    assert [s.op for s in stops] == [".detach()", "torch.detach", ".detach()"]
    assert not lin.piecewise_linear
    assert "J treats them as constants" in str(lin.explain())
    assert "50 units held constant" in str(lin.explain())


def test_detach_is_the_identity_for_from_torch():
    class Affine(nn.Module):
        def forward(self, x):
            return x.detach() * 3 - torch.detach(x).flip(2)

    module = Affine()
    x = rng("fx-detach-affine", 0).standard_normal((2, 5, 5))
    layer = cm.from_torch(module, (2, 5, 5))
    with torch.no_grad():
        want = module(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(layer(x), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.matrix() @ x.ravel(), want.ravel(), atol=1e-12)
