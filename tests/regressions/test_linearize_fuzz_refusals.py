"""cm.linearize of what an adversarial fuzz found refused although ``torch.func.jacrev`` reads it.

A per-sample scalar (``h.mean((1, 2, 3))``, a sum over every non-batch axis) was refused with
an internal message ("`shape` (=()) must have at least one axis"); a dtype cast of a comparison
after ``run_decompositions()`` (``aten._to_copy``) was refused; ``torch.clamp`` by constant
tensor bounds (per-channel buffers) was refused ("number bounds are read"); ``nn.RReLU`` in eval
mode after ``run_decompositions()`` (``rrelu_with_noise_functional``) was refused; a sum of
branches of different shapes (``h - h.mean((1, 2, 3), keepdim=True)``) was refused. Each is read
now, checked against ``torch.func.jacrev`` (float64) and the forward pass (the offset
``f(x) − J x``) as an fx-traced module, a ``torch.export`` program and its decomposition.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import assert_linearizes

torch = pytest.importorskip("torch")
nn = torch.nn

FORMS = ("module", "export", "decomposed")


class _Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)


class _ScaledByMean(_Conv):
    def forward(self, x):
        h = self.conv(x)
        return h * h.mean((1, 2, 3))


class _ScaledByKeptMean(_Conv):
    def forward(self, x):
        h = self.conv(x)
        return h * h.mean((1, 2, 3), keepdim=True) - h / (1 + h.sum((-3, -2, -1)) ** 2)


class _GatedByMean(_Conv):
    def forward(self, x):
        h = self.conv(x)
        return h * torch.sigmoid(2 * h.mean((1, 2, 3)) + 1)


class _Score(_Conv):
    def forward(self, x):
        return self.conv(x).mean((1, 2, 3))


class _FlatTimesSum(_Conv):
    def forward(self, x):
        h = self.conv(x).flatten(1)
        return h * h.sum(1)


class _CastStep(_Conv):
    def forward(self, x):
        h = self.conv(x)
        return h * (h > 0).to(h.dtype) + (h > 0).float() + (h < 0.5).double()


class _ClampByBuffers(_Conv):
    def __init__(self):
        super().__init__()
        self.register_buffer("low", torch.tensor([-0.1, 0.2]).reshape(1, 2, 1, 1))
        self.register_buffer("high", torch.tensor([0.3, 0.5]).reshape(1, 2, 1, 1))

    def forward(self, x):
        h = self.conv(x)
        return (torch.clamp(h, min=self.low) + 2 * torch.clamp(h, max=self.high)
                - torch.clamp(h, self.low, self.high) + h.clamp(max=self.high[0]))


class _RandomizedLeaky(_Conv):
    def __init__(self):
        super().__init__()
        self.act = nn.RReLU(0.1, 0.3)

    def forward(self, x):
        return self.act(self.conv(x))


class _Centred(_Conv):
    """Sums of branches of different shapes (broadcast, as torch does): affine."""

    def forward(self, x):
        h = self.conv(x)
        return (h - h.mean((1, 2, 3), keepdim=True) + h.sum(1, keepdim=True)
                - 0.5 * h.mean((1, 2, 3)) + h[:, :, :1].sum((2, 3)).unsqueeze(-1).unsqueeze(-1))


class _ScaledPlusSum(_Conv):
    def forward(self, x):
        h = self.conv(x)
        return h * h.mean((1, 2, 3), keepdim=True) + h.sum((1, 2, 3), keepdim=True)


MODELS = (_Centred, _ScaledPlusSum, _ScaledByMean, _ScaledByKeptMean, _GatedByMean, _Score,
          _FlatTimesSum, _CastStep, _ClampByBuffers, _RandomizedLeaky)


def _model(cls, seed=0):
    torch.manual_seed(seed)
    return cls().double().eval()


def _point(seed=1):
    return torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def _program(model, x, form):
    if form == "module":
        return model
    with warnings.catch_warnings():  # torch's own deprecation notes while exporting
        warnings.simplefilter("ignore")
        program = torch.export.export(model, (x,))
        return program if form == "export" else program.run_decompositions()


def _check(model, x, form):
    lin = cm.linearize(_program(model, x, form), x)
    assert_linearizes(lin, model, x)
    value = model(x).detach().numpy().ravel()
    np.testing.assert_allclose(np.asarray(lin(x[0].numpy())).ravel(), value, rtol=1e-12,
                               atol=1e-12)
    return lin


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("cls", MODELS, ids=lambda m: m.__name__.strip("_"))
def test_fuzz_refusals_are_read_as_jacrev(cls, form):
    _check(_model(cls), _point(), form)


def test_a_per_sample_scalar_is_one_value_per_sample():
    model = _model(_Score)
    lin = _check(model, _point(), "module")
    assert lin.output_shape == (1,)
    graph = cm.from_torch(model, (2, 4, 4))  # affine: from_torch reads it too
    x = _point(2)
    np.testing.assert_allclose(np.asarray(graph(x[0].numpy())).ravel(),
                               model(x).detach().numpy().ravel(), rtol=1e-12, atol=1e-12)


def test_sums_of_broadcast_branches_are_affine_for_from_torch():
    model = _model(_Centred)
    graph = cm.from_torch(model, (2, 4, 4))
    n = 2 * 4 * 4
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 2, 4, 4)
    with torch.no_grad():  # one sample at a time: h.mean((1, 2, 3)) broadcasts on batch 1 only
        zero = model(torch.zeros(1, 2, 4, 4, dtype=torch.float64))
        columns = torch.cat([model(e[None]) - zero for e in basis])
    np.testing.assert_allclose(graph.matrix().toarray(), columns.reshape(n, -1).numpy().T,
                               rtol=1e-12, atol=1e-12)
    x = _point(3)
    np.testing.assert_allclose(np.asarray(graph(x[0].numpy())).ravel(),
                               model(x).detach().numpy().ravel(), rtol=1e-12, atol=1e-12)


def test_a_mean_over_the_batch_axis_is_still_refused_by_node():
    class Everything(_Conv):
        def forward(self, x):
            h = self.conv(x)
            return h * h.mean()

    with pytest.raises(cm.ConvMatrixError, match=r"node 'mean' .*averages over every axis, "
                                                 r"the batch axis too"):
        cm.linearize(_model(Everything), _point())


class _ClampInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("low", torch.tensor([-0.1, 0.2]).reshape(1, 2, 1, 1))
        self.register_buffer("high", torch.tensor([0.3, 0.5]).reshape(1, 2, 1, 1))

    def forward(self, x):
        return (torch.clamp(x, min=self.low) + 2 * torch.clamp(x, max=self.high)
                - 3 * torch.clamp(x, self.low, self.high))


@pytest.mark.parametrize("form", FORMS)
def test_clamp_by_tensor_bounds_at_the_bounds_follows_torch(form):
    model = _ClampInput().double()
    x = _point()
    x[0, 0, :2] = model.low[0, 0]  # 8 entries of channel 0 on its min
    x[0, 1, :1] = model.high[0, 1]  # 4 entries of channel 1 on its max
    lin = _check(model, x, form)
    assert [site.kinks for site in lin.sites if "clamp" in site.op] == [8, 4, 12]
    assert lin.piecewise_linear


@pytest.mark.parametrize("form", FORMS)
def test_clamp_by_a_bound_that_depends_on_the_input_is_refused(form):
    class Moving(nn.Module):
        def forward(self, x):
            return torch.clamp(x, min=x.flip(-1))

    x = _point()
    with pytest.raises(cm.ConvMatrixError, match=r"node 'clamp' .*depends on the input "
                                                 r"through 2 values"):
        cm.linearize(_program(Moving(), x, form), x)


def test_a_narrowing_cast_after_decompositions_is_still_refused():
    class Narrow(_Conv):
        def forward(self, x):
            return self.conv(x).float().double()

    x = _point()
    with pytest.raises(cm.ConvMatrixError, match=r"node '_to_copy' .*converts torch.float64 "
                                                 r"to torch.float32"):
        cm.linearize(_program(_model(Narrow), x, "decomposed"), x)


@pytest.mark.parametrize("form", ("export", "decomposed"))
def test_rrelu_in_training_mode_is_still_refused_by_node(form):
    model = _model(_RandomizedLeaky).train()
    x = _point()
    with pytest.raises(cm.ConvMatrixError, match=r"node 'rrelu\w*' .*training mode"):
        cm.linearize(_program(model, x, form), x)
