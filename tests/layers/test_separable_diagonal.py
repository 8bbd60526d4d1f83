"""A per-channel scale (BatchNorm's linear part) is applied by broadcasting: its forward and
adjoint on a batch against live torch ``F.batch_norm`` in eval mode (offset removed) and the
vector-Jacobian product, for the channel axis first and elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.mark.parametrize(("shape", "axis"), [((3, 5, 4), 0), ((4, 3), 1), ((2, 3, 2, 3), 0)])
def test_batch_norm_apply_by_broadcasting_equals_torch(shape, axis):
    g = rng("bn broadcast", shape, axis)
    channels = shape[axis]
    mean, var = g.standard_normal(channels), g.uniform(0.5, 2.0, channels)
    weight, bias = g.standard_normal(channels), g.standard_normal(channels)
    layer = cm.BatchNorm(shape, mean, var, weight, bias, eps=1e-5, axis=axis)
    x = g.standard_normal((5, *shape))

    def function(t):
        moved = t.movedim(1 + axis, 1)
        out = F.batch_norm(moved, torch.from_numpy(mean), torch.from_numpy(var),
                           torch.from_numpy(weight), torch.from_numpy(bias), training=False,
                           eps=1e-5)
        return out.movedim(1, 1 + axis)

    xt = torch.from_numpy(x)
    expected = function(xt) - function(torch.zeros_like(xt))
    np.testing.assert_allclose(layer.apply_forward(x), expected.numpy(), rtol=1e-12,
                               atol=1e-12)
    y = g.standard_normal((5, *shape))
    _, vjp = torch.func.vjp(function, xt)
    np.testing.assert_allclose(layer.apply_adjoint(y), vjp(torch.from_numpy(y))[0].numpy(),
                               rtol=1e-12, atol=1e-12)
