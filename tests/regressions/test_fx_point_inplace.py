"""read_graph at a point: an in-place activation must be differentiated at its input.

Found by review (issue 17): the fx reader's point mode recorded references to node values, so
``nn.ELU(inplace=True)`` overwrote the value handed to the Jacobian translator with the
activation's own output. The check is against torch's own ``torch.func.jacrev``.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from convmatrix.adapters.torch import read_graph  # noqa: E402
from convmatrix.layers.scale import Scale  # noqa: E402


class ConvThen(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 1, bias=False)
        self.act = act
        self.head = nn.Conv1d(1, 1, 1, bias=False)

    def forward(self, x):
        return self.head(self.act(self.conv(x)))


def _elementwise_jacobian(call):
    """A translator that differentiates the activation by torch autograd at its input."""
    if call.kind not in ("ELU", "Hardtanh", "LeakyReLU"):
        return None
    z = call.values[call.traced[0].name][0].detach().clone().requires_grad_(True)
    module = call.module
    was = getattr(module, "inplace", False)
    module.inplace = False
    try:
        out = module(z[None])[0]
        (grad,) = torch.autograd.grad(out.sum(), z)
    finally:
        module.inplace = was
    d = grad.numpy()
    return Scale(tuple(z.shape), d, shift=out.detach().numpy() - d * z.detach().numpy())


@pytest.mark.parametrize("act", [nn.ELU(inplace=True), nn.Hardtanh(-0.5, 0.5, inplace=True),
                                 nn.LeakyReLU(0.2, inplace=True)],
                         ids=["elu", "hardtanh", "leaky"])
def test_inplace_activation_is_differentiated_at_its_input(act):
    net = ConvThen(act).double()
    with torch.no_grad():
        net.conv.weight.fill_(1.0)
        net.head.weight.fill_(1.0)
    x = torch.tensor([[[-2.0, -0.5, 1.0, 0.3]]], dtype=torch.float64)
    graph = read_graph(net, (1, 4), x=x, jacobian=_elementwise_jacobian)
    jac = torch.func.jacrev(lambda v: net(v[None])[0])(x[0]).reshape(4, 4).detach().numpy()
    np.testing.assert_allclose(graph.matrix().toarray(), jac, atol=1e-12)
    with torch.no_grad():
        np.testing.assert_allclose(graph(x[0].numpy()), net(x)[0].numpy(), atol=1e-12)
