"""torch exports (torch.onnx.export, dynamo=False) read by from_onnx and linearised by
cm.linearize, against the live torch module, onnxruntime and torch.func.jacrev."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

import convmatrix as cm
from tests.adapters.onnx.helpers import affine, helper, model, onnx, reference, runtime

torch = pytest.importorskip("torch")
nn = torch.nn


def export(module, shape, opset=17, dynamic=False, dtype=None):
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.randn(1, *shape, dtype=dtype), buffer, dynamo=False,
                          opset_version=opset, input_names=["input"],
                          dynamic_axes={"input": {0: "N"}} if dynamic else None)
    return onnx.load_model_from_string(buffer.getvalue())


class BasicBlock(nn.Module):
    """torchvision's BasicBlock without its ReLUs (a linear residual block)."""

    def __init__(self, c=4):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return self.bn2(self.conv2(self.bn1(self.conv1(x)))) + x


class ReluBlock(BasicBlock):
    """torchvision's BasicBlock (stride 1, no downsample)."""

    def __init__(self, c=4):
        super().__init__(c)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class UNetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.pool = nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False)
        self.up = nn.ConvTranspose2d(4, 2, 2, stride=2)
        self.out = nn.Conv2d(4, 1, 1)

    def forward(self, x):
        return self.out(torch.cat([x, self.up(self.down(x))], 1))


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3),
                                      nn.AvgPool2d(2), nn.Conv2d(3, 4, 3, dilation=2,
                                                                   padding=2, groups=1))
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        y = self.features(x) * 0.5 - 1
        return torch.cat([self.fc(y.view(y.size(0), -1)), y.mean(dim=(2, 3))], 1)


WEIGHTED = (cm.Conv, cm.ConvTranspose, cm.Linear)


def _randomise(module):
    torch.manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    return module.eval()


@pytest.mark.parametrize(("factory", "shape", "kind"), [
    (SmallCNN, (2, 8, 8), cm.Graph), (BasicBlock, (4, 6, 6), cm.Graph),
    (UNetish, (2, 8, 8), cm.Graph)])
@pytest.mark.parametrize("opset", [11, 18])
def test_torch_exports_match_torch_onnxruntime_and_reference(factory, shape, kind, opset):
    torch.manual_seed(1)
    module = _randomise(factory())
    proto = export(module, shape, opset, dynamic=opset == 11)
    layer = cm.from_onnx(proto)
    assert isinstance(layer, kind)
    x = np.random.default_rng(opset).standard_normal((1, *shape))
    # float32 as exported: the layers keep it, as from_torch keeps the module's
    torch_layer = cm.from_torch(module, shape)
    for read in (layer, torch_layer):
        weighted = {n.op.dtype for n in read.nodes if isinstance(n.op, WEIGHTED)}
        assert weighted == {np.dtype(np.float32)}
    # the exporter folds BatchNorm into the convolution in float32: float32 agreement
    assert abs(layer.matrix() - torch_layer.matrix()).max() < 1e-5
    assert np.abs(affine(layer, x[0]) - runtime(proto, x).ravel()).max() < 1e-4
    # the float64 export (BatchNorm folded in float64) against torch and the reference
    module = module.double()
    double = export(module, shape, opset, dynamic=opset == 11, dtype=torch.float64)
    layer = cm.from_onnx(double)
    assert isinstance(layer, kind) and layer.matrix().dtype == np.float64
    got = affine(layer, x[0])
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy().ravel()
    assert np.abs(got - want).max() < 1e-10
    assert np.abs(got - reference(double, x).ravel()).max() < 1e-10
    assert abs(layer.matrix() - cm.from_torch(module, shape).matrix()).max() < 1e-10


ACTIVATIONS = {  # name → (module factory, opset): opset 20 exports Gelu as one op
    "ReLU": (nn.ReLU, 13), "LeakyReLU": (lambda: nn.LeakyReLU(0.125), 13),
    "PReLU": (lambda: nn.PReLU(3), 13), "ReLU6": (nn.ReLU6, 11), "ELU": (lambda: nn.ELU(0.5), 13),
    "GELU-erf": (nn.GELU, 13), "GELU": (nn.GELU, 20), "GELU-tanh": (lambda: nn.GELU("tanh"), 20),
    "GELU-tanh-13": (lambda: nn.GELU("tanh"), 13), "SiLU": (nn.SiLU, 13),
    "Sigmoid": (nn.Sigmoid, 18), "Tanh": (nn.Tanh, 13), "Softplus": (nn.Softplus, 13),
    "Hardsigmoid": (nn.Hardsigmoid, 13), "Hardswish": (nn.Hardswish, 14), "Mish": (nn.Mish, 18),
    "SELU": (nn.SELU, 13), "Softsign": (nn.Softsign, 13),
    "Hardtanh": (lambda: nn.Hardtanh(-0.5, 0.75), 13)}


EXACT = {"ReLU", "LeakyReLU", "PReLU", "ReLU6", "Hardtanh", "Sigmoid", "Tanh", "Softplus",
         "SiLU", "Mish", "Softsign"}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_linearize_matches_jacrev_of_the_torch_source(name):
    factory, opset = ACTIVATIONS[name]
    act = factory()
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), act,
                        nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(3, 2, 3, padding=1)).eval()
    proto = export(net, (2, 5, 5), opset)
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    lin = cm.linearize(proto, x)
    net = net.double()
    jac = torch.func.jacrev(net)(x).reshape(lin.matrix().shape).detach().numpy()
    # exports that spell an activation with float32 constants (√2 in Gelu's erf form, SELU's
    # alpha and gamma, 1/6 in Hardswish, ...) compute a slightly different function than torch
    tol = 1e-12 if name in EXACT else 1e-8
    assert np.abs(lin.matrix().toarray() - jac).max() < tol * max(1, np.abs(jac).max())
    value = lin(x[0].numpy())
    assert np.abs(value - net(x)[0].detach().numpy()).max() < tol * 10
    assert np.abs(value.ravel() - runtime(proto, x.numpy()).ravel()).max() < 1e-4
    assert lin.framework == "onnx" and any(site.op == "MaxPool" for site in lin.sites)


def test_linearize_residual_relu_block_and_piecewise_identity():
    block = _randomise(ReluBlock())
    proto = export(block, (4, 6, 6))
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    lin = cm.linearize(proto, x)
    jac = torch.func.jacrev(block.double())(x).reshape(144, 144).detach().numpy()
    assert np.abs(lin.matrix().toarray() - jac).max() < 1e-6  # BatchNorm folded in float32
    assert lin.piecewise_linear and lin.residual() < 1e-12
    torch_lin = cm.linearize(block, x)
    assert abs(lin.matrix() - torch_lin.matrix()).max() < 1e-6
    assert [site.op for site in lin.sites] == ["Relu", "Relu"]


def test_linearize_matches_finite_differences_for_a_helper_model():
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1]),
             helper.make_node("Tanh", ["c"], ["t"]),
             helper.make_node("Mul", ["t", "c"], ["m"]),
             helper.make_node("Div", ["m", "d"], ["q"]),
             helper.make_node("Add", ["q", "c"], ["a"]),
             helper.make_node("Sigmoid", ["a"], ["s"]),
             helper.make_node("Div", ["c", "s"], ["y"])]
    proto = model(nodes, [1, 1, 6], {"w": rng.standard_normal((2, 1, 3)).astype(np.float32),
                                     "d": np.array(1.5, np.float32)})
    x = rng.standard_normal((1, 1, 6))
    lin = cm.linearize(proto, x)
    eps = 1e-6
    fd = np.stack([(reference(proto, x + eps * e.reshape(x.shape)) -
                    reference(proto, x - eps * e.reshape(x.shape))).ravel() / (2 * eps)
                   for e in np.eye(6)], axis=1)
    assert np.abs(lin.matrix().toarray() - fd).max() < 1e-7
    assert np.abs(lin(x[0]).ravel() - reference(proto, x).ravel()).max() < 1e-12


def test_max_pool_ties_go_to_the_first_maximum_as_onnxruntime_indices():
    import onnxruntime as ort

    nodes = [helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2],
                              strides=[1, 2], pads=[1, 0, 0, 1])]
    graph_model = model(nodes, [1, 1, 4, 5], {})
    graph_model.graph.output.append(helper.make_tensor_value_info("i", onnx.TensorProto.INT64,
                                                                  None))
    x = np.array([[[[1, 1, 0, 2, 2], [1, 1, 3, 3, 2], [0, 5, 5, 5, 5], [4, 4, 1, 1, 0]]]],
                 np.float64)
    session = ort.InferenceSession(graph_model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    values, indices = session.run(None, {"x": x.astype(np.float32)})
    single = model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2],
                                     strides=[1, 2], pads=[1, 0, 0, 1])], [1, 1, 4, 5], {})
    lin = cm.linearize(single, x)
    winners = lin.matrix().tocsr().indices
    assert np.array_equal(winners, indices.ravel())
    assert np.array_equal(lin(x[0]).ravel(), values.ravel())
    assert lin.kinks > 0


def test_linearize_path_and_refusals(tmp_path):
    net = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU()).eval()
    proto = export(net, (1, 6))
    path = tmp_path / "net.onnx"
    onnx.save_model(proto, str(path))
    x = torch.randn(1, 1, 6, dtype=torch.float64)
    assert cm.linearize(str(path), x).output_shape == (2, 4)
    with pytest.raises(cm.ConvMatrixError, match="batch axis of 1"):
        cm.linearize(proto, x[0])
    soft = model([helper.make_node("Softmax", ["x"], ["y"], name="sm")], [1, 4], {})
    with pytest.raises(cm.ConvMatrixError, match=r"'sm'.*not an operator cm.linearize"):
        cm.linearize(soft, np.ones((1, 4)))


def test_lipschitz_summary_and_explain_of_an_onnx_model():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(2 * 4 * 4, 3)).eval()
    proto = export(net, (1, 8, 8))
    x = np.random.default_rng(0).standard_normal((1, 1, 8, 8))
    summary = cm.lipschitz_summary(proto, x)
    expected = cm.lipschitz_summary(net.double(), torch.from_numpy(x))
    assert summary.local == pytest.approx(expected.local, rel=1e-5)
    assert summary.ops[1:3] == ("Relu", "MaxPool")
    text = str(cm.linearize(proto, x).explain())
    assert "onnx model" in text and "first maximum" in text
