"""Whole torch networks read through torch.fx: every graph against the live module —
``torch.func.jacrev`` for the matrix, ``module(x)`` for the affine map — and the refusals naming
the node, its operation and its position."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.adapters.torch import read_graph
from tests.helpers import rng
from tests.helpers import seed as seed_of

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional


def _randomize(module, key):
    torch.manual_seed(seed_of("fx", key))
    for sub in module.modules():
        if isinstance(sub, nn.BatchNorm2d | nn.BatchNorm1d):
            sub.running_mean.normal_()
            sub.running_var.uniform_(0.5, 2.0)
            sub.weight.data.normal_()
            sub.bias.data.normal_()
    return module.double().eval()


def _check(module, shape, layer=None):
    """The reader's graph against the live module: matrix (jacrev), offset, forward, adjoint."""
    module = _randomize(module, type(module).__name__)
    layer = cm.from_torch(module, shape) if layer is None else layer

    def function(x):
        return module(x[None])[0]

    x0 = torch.zeros(shape, dtype=torch.float64)
    jac = torch.func.jacrev(function)(x0)
    out = function(x0).detach()
    jac = jac.detach().reshape(out.numel(), x0.numel()).numpy()
    np.testing.assert_allclose(layer.matrix().toarray(), jac, atol=1e-10)
    np.testing.assert_allclose(layer.offset(), out.reshape(-1).numpy(), atol=1e-10)
    x = rng("fx-x", shape).standard_normal((2, *shape))
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(layer(x), expected, atol=1e-10)
    y = rng("fx-y", shape).standard_normal((1, *layer.output_shape))
    np.testing.assert_allclose(layer.operator().rmatvec(y.ravel()), y.ravel() @ jac, atol=1e-10)
    return layer


class BasicBlock(nn.Module):
    """torchvision's BasicBlock with an exchangeable activation (identity: an affine block)."""

    def __init__(self, cin, cout, stride=1, act=None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = act if act is not None else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


def test_basic_block_with_identity_shortcut():
    layer = _check(BasicBlock(3, 3), (3, 6, 6))
    assert isinstance(layer, cm.Graph)
    assert [node.kind for node in layer.nodes].count("sum") == 1


def test_basic_block_with_downsample_shortcut():
    _check(BasicBlock(3, 4, stride=2), (3, 7, 6))


def test_basic_block_in_a_sequential_with_a_head():
    """A ResNet-like Sequential of custom blocks and a classifier head, read as one graph."""
    net = nn.Sequential(BasicBlock(2, 2), BasicBlock(2, 4, stride=2), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 3))
    _check(net, (2, 6, 6))


class UNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(2, 4, 3, 2, 1)
        self.up = nn.ConvTranspose2d(4, 2, 2, 2)
        self.head = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x):
        return self.head(torch.cat([x, self.up(self.down(x))], dim=1))


def test_unet_like_concat_skip():
    layer = _check(UNetLike(), (2, 8, 8))
    assert layer.checkerboard().period is not None


class DenseLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 2, 3, padding=1)
        self.b = nn.Conv2d(4, 2, 1)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x):
        x = torch.cat([x, self.a(x)], 1)
        x = torch.cat((x, self.b(x)), dim=1)
        return self.pool(x)


def test_densenet_like_concatenations():
    _check(DenseLike(), (2, 4, 4))


class SplitCat(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch = nn.Conv2d(2, 2, 3, padding=1, groups=2)

    def forward(self, x):
        left, right = x.chunk(2, dim=1)
        a, b = torch.split(right, [1, 1], dim=1)
        picked = x[:, 1:3, ::2, 1::2].flatten(2).reshape(-1, 2, 3, 2)  # 2×3×2
        return torch.cat([self.branch(torch.cat([b, a], 1)), left,
                          F.pad(picked, (1, 2, 1, 1))], dim=1)


def test_chunk_split_and_cat_shufflenet_style():
    _check(SplitCat(), (4, 5, 5))


class Arithmetic(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.arange(3.0).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([1.0, 2.0, 4.0]).reshape(3, 1, 1))
        self.weight = nn.Parameter(torch.randn(2, 3, 3, 3))
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = (x - self.mean) / self.std
        y = F.conv2d(x, self.weight, padding=1) * 0.5 + 1.0
        z = -F.avg_pool2d(x[:, 1:3], 2) + torch.add(F.avg_pool2d(x[:, :2], 2), 3.0, alpha=2)
        z = F.interpolate(z, scale_factor=2, mode="nearest")
        w = F.pad(self.drop(y), (1, 1, 1, 1))[:, :, 1:-1, 1:-1]
        return torch.sub(w, z, alpha=0.5) + F.dropout(x[:, :2], 0.3, training=self.training)


def test_constants_functional_forms_and_slicing():
    _check(Arithmetic(), (3, 4, 4))


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        pooled = self.conv(x).mean(dim=(2, 3))
        same = F.adaptive_avg_pool2d(self.conv(x), 1).flatten(1)
        return self.fc(pooled + same).view(x.size(0), -1)


def test_classifier_head_mean_adaptive_pool_flatten_linear():
    _check(Head(), (2, 5, 5))


def test_user_traced_graph_module_and_torch_export():
    block = _randomize(BasicBlock(2, 2), "export")
    traced = torch.fx.symbolic_trace(block)
    _check(traced, (2, 4, 4))
    program = torch.export.export(block, (torch.zeros(1, 2, 4, 4, dtype=torch.float64),))
    layer = cm.from_torch(program, (2, 4, 4))
    _check(block, (2, 4, 4), layer=layer)


def test_a_point_hands_non_affine_nodes_to_the_jacobian_translator():
    """The hook: a toy translator for ReLU (the diagonal of derivatives) gives jacrev at x."""
    block = _randomize(BasicBlock(2, 2, act=nn.ReLU(inplace=True)), "relu")
    x = torch.from_numpy(rng("point").standard_normal((1, 2, 4, 4)))
    asked = []

    def jacobian(call):
        asked.append((call.name, call.kind))
        if call.kind != "ReLU":
            return None
        value = call.values[call.traced[0].name][0].numpy()
        from convmatrix.layers.scale import Scale

        derivative = (value > 0).astype(np.float64)
        return Scale(value.shape, derivative, shift=np.maximum(value, 0) - derivative * value)

    graph = read_graph(block, (2, 4, 4), x=x, jacobian=jacobian)
    assert [kind for _, kind in asked] == ["ReLU", "ReLU"]
    jac = torch.func.jacrev(lambda v: block(v[None])[0])(x[0])
    np.testing.assert_allclose(graph.matrix().toarray(), jac.detach().reshape(32, 32).numpy(),
                               atol=1e-10)
    with torch.no_grad():
        np.testing.assert_allclose(graph(x[0].numpy()), block(x)[0].numpy(), atol=1e-10)


# --- refusals ------------------------------------------------------------------------------


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x


class TwoIn(nn.Module):
    def forward(self, x, y):
        return x + y


class TwoOut(nn.Module):
    def forward(self, x):
        return x, 2 * x


class Product(nn.Module):
    def forward(self, x):
        return x * (x + 1)


class SoftmaxNet(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=1)


class InPlaceInput(nn.Module):
    def forward(self, x):
        x.add_(1)
        return x


class ReusedAfterInPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 1)

    def forward(self, x):
        y = self.conv(x)
        z = y * 2
        y.add_(x)
        return y + z


@pytest.mark.parametrize(("module", "message", "shape"), [
    (Branchy(), r"could not be traced by torch\.fx.*TraceError", (1, 3)),
    (TwoIn(), r"has 2 inputs \(x, y\)", (1, 3)),
    (TwoOut(), r"returns 2 values", (1, 3)),
    (Product(), r"node 'mul' \(position 2, call_function mul\): multiplies two values.*"
                r"cm\.linearize", (1, 3)),
    (SoftmaxNet(), r"node 'softmax' \(position 1, call_function .*softmax\): softmax is not "
                   r"affine, and cm\.linearize does not read it either", (1, 3)),
    (InPlaceInput(), r"node 'add_' \(position 1, call_method \.add_\(\)\) writes in place into "
                     r"the network's input 'x'", (1, 3)),
    (ReusedAfterInPlace(), r"writes in place into 'conv', which is used again later", (1, 3)),
    (nn.Sequential(BasicBlock(1, 1, act=nn.ReLU(inplace=True))).eval(),
     r"node '_0_relu' \(position 3, call_module 0\.relu \(ReLU\)\): ReLU is not affine; "
     r"cm\.linearize\(model, x\) reads it as its Jacobian at a point x", (1, 3, 3)),
])
def test_unsupported_nodes_are_refused_by_name(module, message, shape):
    with pytest.raises(cm.ConvMatrixError, match=message):
        cm.from_torch(module, shape)


def test_bad_points_are_refused():
    with pytest.raises(cm.ConvMatrixError, match=r"`x` has shape \(3,\)"):
        read_graph(nn.Identity(), (3,), x=np.zeros(3))
