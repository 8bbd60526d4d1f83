"""In-place writes the fx reader did not see: refused by node now, never read wrongly.

Found by review of issue 17's "Bad input" section: ``y.__setitem__(i, v)`` (``y[i] = v`` as fx
traces it; its value is None) was skipped as a constant, and ``nn.ReLU(inplace=True)``/``F.relu(y,
inplace=True)`` were not checked for writes, so a network that zeroes a channel of its input,
or reuses a value an in-place activation overwrote, was read as if the write did not happen —
``from_torch`` and ``cm.linearize`` returned maps whose values differed from the module's
forward by O(1). torch's own forward is the reference: a network still read must match it.
"""

import warnings

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional


class ZeroInputChannel(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        x.__setitem__((slice(None), 0), 0.0)  # x[:, 0] = 0 (fx traces only the method call)
        return self.conv(x)


class ZeroChannelReturned(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        y.__setitem__((slice(None), 0), 0.0)
        return y


class WriteThroughView(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        view = y[:, 1]
        view.__setitem__((slice(None), 0), 1.0)
        return 2 * y


class ReusedPreActivation(nn.Module):
    def __init__(self, functional):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.functional = functional

    def forward(self, x):
        y = self.conv(x)
        z = F.relu(y, True) if self.functional else self.relu(y)
        return z + y


class InplaceOnInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.LeakyReLU(0.1, inplace=True)
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(self.act(x))


@pytest.mark.parametrize(("make", "match"), [
    (ZeroInputChannel, r"node 'setitem' \(position 1, call_method \.__setitem__\(\)\) writes in "
                       r"place into the network's input 'x'"),
    (ZeroChannelReturned, r"node 'setitem' \(position \d, call_method \.__setitem__\(\)\) "
                          r"writes in place into 'conv', which is used again later"),
    (WriteThroughView, r"node 'setitem' .* writes in place into 'getitem', which shares memory "
                       r"with 'conv'"),
    (lambda: ReusedPreActivation(False), r"node 'relu' \(position \d, call_module relu \(ReLU\)\) "
                                         r"writes in place into 'conv', which is used again"),
    (lambda: ReusedPreActivation(True), r"node 'relu' \(position \d, call_function "
                                        r"torch\.nn\.functional\.relu\) writes in place into "
                                        r"'conv'"),
    (InplaceOnInput, r"node 'act' .* writes in place into the network's input 'x'"),
])
def test_unseen_inplace_writes_are_refused_by_node(make, match):
    module = make().double().eval()
    x = torch.from_numpy(rng("inplace-writes", match).standard_normal((1, 2, 4, 4)))
    with pytest.raises(cm.ConvMatrixError, match=match):
        cm.from_torch(module, (2, 4, 4))
    with pytest.raises(cm.ConvMatrixError, match=match):
        cm.linearize(module, x)


class Block(nn.Module):
    """torchvision's pattern: ``out = self.relu(out)`` in place, the pre-activation not reused."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.conv(x))
        return F.relu(out + x, inplace=True)


def test_inplace_activation_on_a_value_not_reused_is_still_read():
    module = Block().double().eval()
    x = torch.from_numpy(rng("inplace-ok", 0).standard_normal((1, 2, 4, 4)))
    lin = cm.linearize(module, x)
    with torch.no_grad():
        want = module(x.clone())[0].numpy()
    np.testing.assert_allclose(lin(x[0].numpy()), want, rtol=1e-12, atol=1e-12)
    jac = torch.func.jacrev(module)(x.clone()).detach().reshape(32, 32).numpy()
    np.testing.assert_allclose(lin.matrix().toarray(), jac, atol=1e-12)


@pytest.mark.parametrize("make", [ZeroInputChannel, ZeroChannelReturned])
def test_the_same_writes_in_an_exported_program_are_refused(make):
    module = make().double().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(module, (torch.zeros(1, 2, 4, 4, dtype=torch.float64),))
    with pytest.raises(cm.ConvMatrixError, match=r"node 'fill_' .*aten\.fill_\.Tensor\) writes in "
                                                 r"place into 'select', which shares memory"):
        cm.from_torch(program, (2, 4, 4))
