"""cm.linearize of fx-traceable torch models (residual blocks, concatenations, functions)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng as seeded

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


def _jacobian(model, x):
    with torch.no_grad():
        out = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        jac = torch.func.jacrev(model)(x).detach()
    return out[0].numpy(), jac.reshape(out[0].numel(), x[0].numel()).numpy()


def _point(shape, key, scale=1.0):
    return torch.tensor(seeded("linearize-graphs", key).standard_normal((1, *shape)) * scale,
                        dtype=torch.float64)


def _check(model, x, atol=1e-12):
    lin = cm.linearize(model, x)
    value, jac = _jacobian(model, x)
    np.testing.assert_allclose(lin.matrix().toarray(), jac, atol=atol, rtol=1e-10)
    np.testing.assert_allclose(lin(x[0].numpy()), value, atol=atol, rtol=1e-12)
    u = seeded("graph-u", lin.input_shape).standard_normal(lin.input_shape).ravel()
    v = seeded("graph-v", lin.output_shape).standard_normal(lin.output_shape).ravel()
    np.testing.assert_allclose(lin.operator().matvec(u), jac @ u, atol=1e-11)
    np.testing.assert_allclose(lin.operator().rmatvec(v), jac.T @ v, atol=1e-11)
    return lin


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, as torchvision writes it (inplace ReLU, ``+=``)."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride,
                                                      bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


def _randomise_bn(model):
    torch.manual_seed(11)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_()
            module.bias.data.normal_()
    return model.double().eval()


@pytest.mark.parametrize(("inplanes", "planes", "stride"), [(3, 3, 1), (3, 4, 2)])
def test_resnet_basic_block(inplanes, planes, stride):
    torch.manual_seed(0)
    model = _randomise_bn(BasicBlock(inplanes, planes, stride))
    lin = _check(model, _point((inplanes, 8, 8), (inplanes, planes, stride)))
    assert [s.op for s in lin.sites] == ["ReLU", "ReLU"]
    assert lin.piecewise_linear
    assert lin.residual() < 1e-12
    summary = cm.lipschitz_summary(lin, None)
    assert summary.local <= summary.local_product <= summary.upper_bound


class Functional(nn.Module):
    """Functional forms, tensor methods, constants, concatenation, reshapes, global pools."""

    def __init__(self, variant):
        super().__init__()
        self.variant = variant
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(8, 3)
        self.register_buffer("shift", torch.linspace(-1, 1, 4).reshape(1, 4, 1, 1))

    def forward(self, x):
        y = self.conv(x)
        v = self.variant
        if v == "relu":
            y = F.relu(y)
        elif v == "torch.relu":
            y = torch.relu(y) * 2.0 - self.shift
        elif v == "method":
            y = (y + 1.0).relu() / 3.0
        elif v == "leaky":
            y = F.leaky_relu(y, 0.2)
        elif v == "hardtanh":
            y = F.hardtanh(y, -0.5, 0.5)
        elif v == "gelu":
            y = F.gelu(y, approximate="tanh")
        elif v == "silu":
            y = F.silu(y) - y
        elif v == "sigmoid":
            y = torch.sigmoid(y) + torch.tanh(y)
        elif v == "clamp":
            y = y.clamp(0, 6) + torch.clamp(y, min=-0.5) - torch.clip(y, max=0.5) + y.abs()
        elif v == "group_norm":
            y = F.group_norm(y, 2)
        elif v == "layer_norm":
            y = F.layer_norm(y, (4, 6, 6))
        elif v == "instance_norm":
            y = F.instance_norm(y)
        elif v == "max_pool":
            y = F.max_pool2d(y, 3, 2, 1, ceil_mode=True)
        elif v == "adaptive_max_pool":
            y = F.adaptive_max_pool2d(y, 2)
        y = torch.cat([y, -y], dim=1)
        if v == "amax":
            z = torch.amax(y, dim=(2, 3))
        elif v == "max_dim":
            z = y.flatten(2).max(dim=2).values
        else:
            z = y.mean(dim=(2, 3))
        return self.fc(z.view(z.size(0), -1))


VARIANTS = ["relu", "torch.relu", "method", "leaky", "hardtanh", "gelu", "silu", "sigmoid", "clamp",
            "group_norm", "layer_norm", "instance_norm", "max_pool", "adaptive_max_pool",
            "amax", "max_dim"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_functional_forms(variant):
    torch.manual_seed(1)
    model = Functional(variant).double().eval()
    x = _point((2, 6, 6), variant, scale=2.0)
    lin = _check(model, x)
    if variant in ("amax", "max_dim"):
        assert lin.sites[-1].kind == "selection"


def test_ties_in_amax_share_and_max_dim_picks_first():
    torch.manual_seed(1)
    for variant in ("amax", "max_dim"):
        model = Functional(variant).double().eval()
        with torch.no_grad():
            model.conv.weight.zero_()
            model.conv.bias.zero_()  # every spatial value equal: all windows tied
        lin = _check(model, _point((2, 6, 6), "ties"))
        assert lin.sites[-1].kinks == 8


def test_clamp_and_abs_at_their_kinks_follow_torch():
    class Clamped(nn.Module):
        def forward(self, x):
            return x.clamp(0, 1) + 2 * torch.abs(x) - torch.clip(x, min=1.0)

    x = torch.tensor([[[-1.0, 0.0, 0.5, 1.0, 2.0]]], dtype=torch.float64)
    lin = _check(Clamped(), x)
    assert [(s.op, s.kinks) for s in lin.sites] == [(".clamp()", 2), ("torch.abs", 1),
                                                    ("torch.clip", 1)]
    assert lin.piecewise_linear and "clamp' = 1 at min and max" in str(lin.explain())
    bounded = _check(type("Bounded", (nn.Module,), {"forward": lambda self, x: x.clamp(
        torch.zeros(1, 1, 5, dtype=torch.float64))})(), x)  # a tensor bound: per entry
    assert [s.kinks for s in bounded.sites] == [1]
    with pytest.raises(cm.ConvMatrixError, match=r"node 'clamp' .*: depends on the input "
                                                 r"through 2 values"):
        cm.linearize(type("Moving", (nn.Module,), {"forward": lambda self, x: x.clamp(
            x.flip(-1))})(), x)
    with pytest.raises(cm.ConvMatrixError, match=r"clamp is not affine; cm\.linearize"):
        cm.from_torch(Clamped(), (1, 5))


def test_a_unet_like_concat_of_skips():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = nn.Conv2d(1, 2, 3, stride=2, padding=1)
            self.up = nn.ConvTranspose2d(2, 2, 2, stride=2)
            self.out = nn.Conv2d(3, 1, 1)

        def forward(self, x):
            h = F.relu(self.down(x))
            return self.out(torch.cat([x, F.relu(self.up(h))], 1))

    torch.manual_seed(2)
    _check(Tiny().double().eval(), _point((1, 8, 8), "unet"))


@pytest.mark.parametrize(("forward", "match"), [
    (lambda self, x: torch.matmul(self.conv(x), self.conv(x)),
     r"node 'matmul' \(position 3, call_function .*matmul\): multiplies two values that depend "
     r"on the input \(a product of branches\): not affine, and cm\.linearize reads element-wise "
     r"products of branches, not matrix products \(matmul\)"),
    (lambda self, x: F.softmax(self.conv(x), dim=1),
     r"node 'softmax' \(position 2, call_function torch\.nn\.functional\.softmax\): softmax "
     r"is neither affine nor a non-linearity cm\.linearize reads"),
    (lambda self, x: self.conv(x) if x.sum() > 0 else x, r"could not be traced by torch\.fx"),
    (lambda self, x: torch.div(x, self.conv(x), rounding_mode="floor"),
     r"node 'div' \(position 2, call_function .*div\): divides with rounding_mode='floor' \(a "
     r"step function\), which cm\.linearize does not read"),
])
def test_refusals_name_the_node(forward, match):
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return forward(self, x)

    with pytest.raises(cm.ConvMatrixError, match=match):
        cm.linearize(Bad().double(), _point((1, 3, 3), "bad"))


def test_two_inputs_refused():
    class Two(nn.Module):
        def forward(self, x, y):
            return x + y

    with pytest.raises(cm.ConvMatrixError, match=r"`model` has 2 inputs \(x, y\)"):
        cm.linearize(Two(), _point((1, 3, 3), "two"))


def test_traced_graph_module_and_training_mode():
    torch.manual_seed(0)
    model = _randomise_bn(BasicBlock(2, 2))
    traced = torch.fx.symbolic_trace(model)
    _check(traced, _point((2, 5, 5), "traced"))
    with pytest.raises(cm.ConvMatrixError, match=r"bn1 \(BatchNorm2d\) in training mode"):
        cm.linearize(model.train(), _point((2, 5, 5), "traced"))


def test_explain_lists_graph_steps():
    torch.manual_seed(0)
    lin = cm.linearize(_randomise_bn(BasicBlock(2, 2)), _point((2, 4, 4), "explain"))
    text = lin.explain().to_markdown()
    assert "add ← bn2, input: sum 1, 1" in text
    assert "| relu | ReLU | activation |" in text


class ShuffleSplit(nn.Module):
    """ShuffleNet-style: chunk/split into branches, a ReLU branch, concatenated back."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        left, right = x.chunk(2, dim=1)
        a, b = torch.split(right, [1, 1], dim=1)
        branch = F.relu(self.conv(torch.cat([b, a], 1)))
        top, bottom = torch.split(left, 3, dim=2)
        mixed = torch.cat([F.relu(top), -bottom], dim=2)
        return self.head(torch.cat([branch, mixed], dim=1))


def test_chunk_split_and_cat_against_jacrev():
    """Issue 17: linearize refused chunk ("gives a tuple"); read through the one fx walker."""
    torch.manual_seed(3)
    lin = _check(ShuffleSplit().double().eval(), _point((4, 5, 5), "shuffle"))
    assert [s.op for s in lin.sites] == ["F.relu", "F.relu"]


def test_sequential_of_custom_blocks_is_read_as_a_graph():
    """A ResNet-like nn.Sequential holding user blocks: traced, not refused by the chain walker."""
    torch.manual_seed(4)
    net = nn.Sequential(BasicBlock(2, 2), BasicBlock(2, 3, stride=2), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(3, 2))
    lin = _check(_randomise_bn(net), _point((2, 6, 6), "sequential-blocks"))
    assert [s.op for s in lin.sites] == ["ReLU"] * 4


class Aliased(nn.Module):
    """One conv registered under two names, a root parameter, a PReLU (a parameter)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 2, 3, padding=1)
        self.b = self.a
        self.w = nn.Parameter(torch.randn(1, 2, 1, 1))
        self.act = nn.PReLU(2, init=0.2)

    def forward(self, x):
        return self.act(self.b(self.a(x))) * self.w + F.conv2d(x, self.a.weight, padding=1)


@pytest.mark.parametrize("make", [lambda: BasicBlock(2, 2), Aliased], ids=["block", "aliased"])
def test_float32_graph_runs_in_float64_and_stays_untouched(make):
    torch.manual_seed(5)
    model = make().eval()
    before = {name: (t.dtype, t.detach().clone()) for name, t in model.state_dict().items()}
    x = _point((2, 4, 4), "float32")
    lin = cm.linearize(model, x)
    _, jac = _jacobian(copy.deepcopy(model).double(), x)
    np.testing.assert_allclose(lin.matrix().toarray(), jac, atol=1e-12, rtol=1e-10)
    assert lin.dtype == np.float64
    for name, tensor in model.state_dict().items():
        assert tensor.dtype == before[name][0], name
        assert torch.equal(tensor, before[name][1]), name


def test_max_indices_are_refused_by_name():
    class Indices(nn.Module):
        def forward(self, x):
            return x.flatten(2).max(dim=2).indices.double()

    with pytest.raises(cm.ConvMatrixError,
                       match=r"node 'getattr_1' \(position \d+, call_function getattr\): takes "
                             r"output 1 of a node whose output 1 is not read"):
        cm.linearize(Indices(), _point((2, 3, 3), "indices"))
