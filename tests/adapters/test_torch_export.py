"""torch.export programs (issue 17): ``cm.linearize`` and ``cm.from_torch`` read an
``ExportedProgram`` like a traced graph, in both of its forms — the default export
(``aten.conv2d``, ``aten.batch_norm``, ``aten.max_pool2d``, ``aten.group_norm``, ...) and the
core-aten decomposition ``run_decompositions()`` gives (``aten.convolution``,
``_native_batch_norm_legit_no_training``, ``max_pool2d_with_indices``, ``native_group_norm``,
``addmm``, ``index_select``, ...).

Checked against the live module: ``torch.func.jacrev`` for the Jacobian at a point, the forward
pass for the value and for ``from_torch``'s affine map."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional


class Residual(nn.Module):
    """A BasicBlock-like residual with an in-place ``+=`` and a global average pool."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1, bias=False)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv1(x)))
        y = self.conv2(y)
        y += x
        return torch.relu(y).mean(dim=(2, 3))


NETS = {
    "cnn": (lambda: nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(4, 4, 3, stride=2), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(4, 3)), (2, 9, 9)),
    "residual": (Residual, (3, 6, 6)),
    "group_norm": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3), nn.GroupNorm(2, 4), nn.GELU()),
                   (2, 5, 5)),
    "layer_norm": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3), nn.LayerNorm([4, 3, 3]),
                                         nn.Tanh()), (2, 5, 5)),
    "instance_norm": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3),
                                            nn.InstanceNorm2d(4, affine=True)), (2, 5, 5)),
    "instance_norm_running": (lambda: nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.InstanceNorm2d(4, affine=True, track_running_stats=True),
        nn.LeakyReLU(0.2)), (2, 5, 5)),
    "adaptive_max_pool": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3), nn.AdaptiveMaxPool2d(2),
                                                nn.ELU()), (2, 7, 7)),
    "conv_transpose": (lambda: nn.Sequential(
        nn.ConvTranspose2d(2, 3, 3, stride=2, output_padding=1), nn.Hardtanh(), nn.ReLU6()),
        (2, 4, 4)),
}


def _net(name):
    make, shape = NETS[name]
    torch.manual_seed(abs(hash(name)) % 2**31)
    net = make().double().eval()
    with torch.no_grad():
        for module in net.modules():
            if getattr(module, "running_mean", None) is not None:
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return net, shape


def _programs(net, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(net, (x,))
        return {"export": program, "decomposed": program.run_decompositions()}


@pytest.mark.parametrize("form", ["export", "decomposed"])
@pytest.mark.parametrize("name", list(NETS))
def test_linearize_an_exported_program_matches_jacrev(name, form):
    net, shape = _net(name)
    x = torch.from_numpy(rng("export-point", name).standard_normal((1, *shape)))
    program = _programs(net, x)[form]
    lin = cm.linearize(program, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        jac = torch.func.jacrev(net)(x).detach()
    with torch.no_grad():
        want = net(x)[0].numpy()
    np.testing.assert_allclose(lin.matrix().toarray(), jac.reshape(want.size, -1).numpy(),
                               atol=1e-12)
    np.testing.assert_allclose(lin(x[0].numpy()), want, rtol=1e-12, atol=1e-12)
    def pattern(sites):  # a running-statistics InstanceNorm is a site only as a module
        return [(s.kind, s.shape, s.on, s.off, s.kinks) for s in sites
                if not (s.kind == "normalization" and s.piecewise_linear)]

    assert pattern(lin.sites) == pattern(cm.linearize(net, x).sites)


@pytest.mark.parametrize("form", ["export", "decomposed"])
def test_from_torch_of_an_exported_affine_network(form):
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.AvgPool2d(2),
                        nn.ConvTranspose2d(4, 2, 3, stride=2),
                        nn.InstanceNorm2d(2, track_running_stats=True), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(2, 3)).double().eval()
    with torch.no_grad():
        for module in (net[1], net[4]):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    x = rng("export-affine", form).standard_normal((2, 8, 8))
    program = _programs(net, torch.zeros(1, 2, 8, 8, dtype=torch.float64))[form]
    layer = cm.from_torch(program, (2, 8, 8))
    with torch.no_grad():
        want = net(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(layer(x), want, rtol=1e-12, atol=1e-12)
    jac = torch.func.jacrev(lambda v: net(v[None])[0])(torch.from_numpy(x)).detach()
    np.testing.assert_allclose(layer.matrix().toarray(), jac.reshape(3, -1).numpy(), atol=1e-12)


def test_exported_non_linear_network_is_refused_by_from_torch():
    net = nn.Sequential(nn.Conv2d(2, 2, 3), nn.GroupNorm(1, 2)).eval()
    program = _programs(net, torch.zeros(1, 2, 5, 5))
    with pytest.raises(cm.ConvMatrixError, match=r"node 'group_norm' .*aten\.group_norm\.default"
                                                 r"\): group_norm is not affine; cm\.linearize"):
        cm.from_torch(program["export"], (2, 5, 5))
    with pytest.raises(cm.ConvMatrixError, match=r"native_group_norm is not affine"):
        cm.from_torch(program["decomposed"], (2, 5, 5))


def test_detach_in_an_exported_program_matches_jacrev_of_the_program():
    """The default export keeps ``aten.detach`` (a constant, as for jacrev); the decomposition
    turns it into ``aten.alias``, through which the program's own jacrev differentiates."""

    class Detaching(nn.Module):
        def forward(self, x):
            return torch.relu(x) * 2 + x.detach() * 3

    x = torch.from_numpy(rng("export-detach", 0).standard_normal((1, 2, 3)))
    for form, program in _programs(Detaching(), x).items():
        lin = cm.linearize(program, x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            jac = torch.func.jacrev(program.module())(x).detach().reshape(6, 6).numpy()
        np.testing.assert_allclose(lin.matrix().toarray(), jac, atol=1e-12)
        assert [s.kind for s in lin.sites] == (
            ["activation", "constant"] if form == "export" else ["activation"])


def test_a_program_exported_for_another_shape_is_refused_with_the_way_out():
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU()).double().eval()
    program = _programs(net, torch.zeros(2, 2, 5, 5, dtype=torch.float64))["export"]
    x = torch.zeros(1, 2, 5, 5, dtype=torch.float64)
    match = (r"`model` \(ExportedProgram\) fails on a sample of shape \(1, 2, 5, 5\): "
             r"AssertionError: Guard failed: .*export it with one sample \(batch axis of 1\)")
    with pytest.raises(cm.ConvMatrixError, match=match):
        cm.linearize(program, x)
    with pytest.raises(cm.ConvMatrixError, match=match.replace("model", "module")):
        cm.from_torch(program, (2, 5, 5))
