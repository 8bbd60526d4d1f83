"""from_torch reads issue 17's modules (nn.Linear, nn.Flatten, nn.Unflatten, nn.Identity,
nn.Dropout* in eval, nn.AdaptiveAvgPool1d/2d/3d) alone and inside nn.Sequential, exactly as
live torch computes them (torch.func.jacrev for the matrix, autograd for the adjoint)."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import seed as seed_of

torch = pytest.importorskip("torch")
nn = torch.nn


def check_module(module, shape, key):
    """The layer read from ``module`` against the live module on one sample (float64)."""
    torch.manual_seed(seed_of("torch-kinds", key))
    module = module.double().eval()
    layer = cm.from_torch(module, shape)

    def sample(x):
        return module(x[None])[0]

    x = torch.randn(*shape, dtype=torch.float64)
    y = sample(x)
    assert layer.input_shape == tuple(shape) and layer.output_shape == tuple(y.shape)
    jac = torch.func.jacrev(sample)(x).reshape(y.numel(), x.numel()).detach().numpy()
    np.testing.assert_allclose(layer.matrix().toarray(), jac, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer(x.numpy()), y.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.offset(), sample(torch.zeros_like(x)).detach().numpy()
                               .ravel(), rtol=1e-12, atol=1e-12)
    x.requires_grad_(True)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(sample(x), x, g)
    np.testing.assert_allclose(layer.T(g.numpy()), grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.operator().rmatvec(g.numpy().ravel()), grad.numpy().ravel(),
                               rtol=1e-12, atol=1e-12)
    return layer


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(7,), (1, 7), (1, 1, 7)])
def test_linear(bias, shape):
    layer = check_module(nn.Linear(7, 5, bias=bias), shape, ("linear", bias, shape))
    linear = layer.chain()[0]
    assert isinstance(linear, cm.Linear) and linear.dtype == np.float64


def test_linear_keeps_float32_and_refuses_rows():
    layer = cm.from_torch(nn.Linear(4, 3), (4,))
    assert layer.matrix().dtype == np.float32
    with pytest.raises(cm.ConvMatrixError, match=r"`input_shape` \(=\(2, 4\)\) has leading axes"):
        cm.from_torch(nn.Linear(4, 3), (2, 4))
    with pytest.raises(cm.ConvMatrixError, match=r"must end with in_features=4"):
        cm.from_torch(nn.Linear(4, 3), (2, 2))


@pytest.mark.parametrize("start, end", [(1, -1), (2, -1), (1, 2), (2, 3), (-2, -1), (3, 3),
                                        (-3, -2)])
def test_flatten_start_and_end_dims(start, end):
    layer = check_module(nn.Flatten(start, end), (2, 3, 4), ("flatten", start, end))
    if (start, end) == (1, -1):
        assert isinstance(layer, cm.Flatten)


def test_flatten_refusals_name_the_module():
    with pytest.raises(cm.ConvMatrixError, match=r"nn.Flatten with start_dim=0 acts on the batch"):
        cm.from_torch(nn.Flatten(0), (2, 3))
    with pytest.raises(cm.ConvMatrixError, match=r"`end_dim` \(=5\) of nn.Flatten is out of"):
        cm.from_torch(nn.Flatten(1, 5), (2, 3))
    with pytest.raises(cm.ConvMatrixError, match=r"start_dim comes after end_dim"):
        cm.from_torch(nn.Flatten(2, 1), (2, 3))


@pytest.mark.parametrize("dim, sizes, shape", [(1, (2, 3), (6, 2)), (2, (2, -1), (3, 4)),
                                               (-1, (1, 4, 1), (3, 4)), (1, (12,), (12,))])
def test_unflatten(dim, sizes, shape):
    check_module(nn.Unflatten(dim, sizes), shape, ("unflatten", dim, sizes))


def test_unflatten_refuses_sizes_that_do_not_hold_the_axis():
    with pytest.raises(cm.ConvMatrixError, match=r"`unflattened_size` \(=\(4, 2\)\) of "
                                                 r"nn.Unflatten does not hold axis 0 of size 6"):
        cm.from_torch(nn.Unflatten(1, (4, 2)), (6, 2))
    with pytest.raises(cm.ConvMatrixError, match=r"acts on the batch axis"):
        cm.from_torch(nn.Unflatten(0, (1, 6)), (6, 2))


@pytest.mark.parametrize("module", [nn.Identity(), nn.Dropout(0.3), nn.Dropout1d(0.2),
                                    nn.Dropout2d(0.5), nn.Dropout3d(0.5), nn.AlphaDropout(0.1),
                                    nn.FeatureAlphaDropout(0.1)])
def test_identity_and_dropout_in_eval(module):
    name = type(module).__name__
    shape = (2, 3, 3, 3) if "3d" in name else (2, 3) if "1d" in name else (2, 3, 3)
    assert isinstance(check_module(module, shape, ("id", type(module).__name__)), cm.Identity)


def test_dropout_in_training_is_refused_naming_it():
    module = nn.Sequential(nn.Linear(3, 3), nn.Dropout2d(0.5))
    with pytest.raises(cm.ConvMatrixError, match=r"`module\[1\]` \(Dropout2d\).*training mode"):
        cm.from_torch(module, (3,))


@pytest.mark.parametrize("name", ["ReLU", "GELU", "MaxPool2d", "Softmax", "LayerNorm"])
def test_non_linear_modules_are_refused_naming_them_and_pointing_to_linearize(name):
    module = {"MaxPool2d": lambda: nn.MaxPool2d(2), "Softmax": lambda: nn.Softmax(1),
              "LayerNorm": lambda: nn.LayerNorm(4)}.get(name, getattr(nn, name))()
    with pytest.raises(cm.ConvMatrixError, match=rf"`module` \(={name}\) is not linear; "
                                                 r"cm.linearize\(model, x\)"):
        cm.from_torch(module, (1, 4, 4))
    stack = nn.Sequential(nn.Flatten(), nn.Linear(16, 4), module)
    with pytest.raises(cm.ConvMatrixError, match=rf"`module\[2\]` \({name}\) is not linear; "
                                                 r"cm.linearize"):
        cm.from_torch(stack, (1, 4, 4))


@pytest.mark.parametrize("module, shape", [
    (nn.AdaptiveAvgPool1d(3), (2, 7)),
    (nn.AdaptiveAvgPool1d(9), (2, 4)),
    (nn.AdaptiveAvgPool2d(1), (3, 5, 4)),
    (nn.AdaptiveAvgPool2d((2, 3)), (2, 5, 7)),
    (nn.AdaptiveAvgPool2d((None, 2)), (2, 5, 7)),
    (nn.AdaptiveAvgPool2d((5, None)), (1, 3, 4)),
    (nn.AdaptiveAvgPool3d((1, 2, 3)), (2, 3, 4, 5)),
    (nn.AdaptiveAvgPool3d((None, 3, None)), (1, 2, 5, 3)),
])
def test_adaptive_avg_pool(module, shape):
    layer = check_module(module, shape, ("adaptive", repr(module), shape))
    assert isinstance(layer, cm.AdaptiveAvgPool)


def test_adaptive_avg_pool_needs_its_spatial_axes():
    with pytest.raises(cm.ConvMatrixError, match=r"`input_shape` \(=\(2, 5\)\) must be one "
                                                 r"sample \(C, \*spatial\) with 2 spatial axes "
                                                 r"for AdaptiveAvgPool2d"):
        cm.from_torch(nn.AdaptiveAvgPool2d(1), (2, 5))


def test_a_resnet_tail_reads_exactly():
    """Conv → AdaptiveAvgPool2d(1) → Flatten → Linear: torchvision's ResNet head."""
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d((1, 1)),
                           nn.Flatten(1), nn.Linear(8, 5))
    layer = check_module(module, (3, 7, 7), "resnet-tail")
    assert [type(f).__name__ for f in layer.chain()] == [
        "Conv", "AdaptiveAvgPool", "Flatten", "Linear"]


def test_a_classifier_head_reads_exactly():
    """Conv → BN → AvgPool → Flatten → Dropout → Linear: every classifier's tail."""
    torch.manual_seed(seed_of("classifier"))
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(4))
        bn.running_var.copy_(torch.rand(4) + 0.5)
    module = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), bn, nn.AvgPool2d(2), nn.Flatten(),
                           nn.Dropout(0.5), nn.Linear(4 * 3 * 3, 10))
    layer = check_module(module, (2, 6, 6), "classifier")
    assert [type(f).__name__ for f in layer.chain()] == [
        "Conv", "BatchNorm", "AvgPool", "Flatten", "Identity", "Linear"]


def test_dcgan_generator_head_reads_exactly():
    """Linear → Unflatten (the ``view``) → ConvTranspose → BN → ConvTranspose (no ReLUs)."""
    torch.manual_seed(seed_of("dcgan"))
    bn = nn.BatchNorm2d(16)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(16))
        bn.running_var.copy_(torch.rand(16) + 0.5)
    module = nn.Sequential(nn.Linear(8, 32 * 4 * 4), nn.Unflatten(1, (32, 4, 4)),
                           nn.ConvTranspose2d(32, 16, 4, 2, 1, bias=False), bn,
                           nn.ConvTranspose2d(16, 3, 4, 2, 1))
    layer = check_module(module, (8,), "dcgan")
    assert layer.output_shape == (3, 16, 16)
    assert [type(f).__name__ for f in layer.chain()] == [
        "Linear", "Reshape", "ConvTranspose", "BatchNorm", "ConvTranspose"]
