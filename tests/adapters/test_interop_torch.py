"""torch_matrix against live torch modules: Jacobians in 1-3 dimensions, random transposed layers.

Complements tests/test_frameworks.py (2-D Jacobians, forward-conv grid). Skips without torch.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng as seeded_rng

torch = pytest.importorskip("torch")
jacrev = pytest.importorskip("torch.func").jacrev

MODES = ["zeros", "reflect", "replicate", "circular"]


def _jacobian(module, shape):
    """The exact Jacobian of ``module`` at one sample of ``shape``, as a dense matrix."""
    x = torch.zeros(*shape, dtype=torch.float64)
    jac = jacrev(lambda v: module(v.reshape(1, *shape)).reshape(-1))(x.reshape(-1))
    return jac.detach().numpy()


@pytest.mark.parametrize(("ndim", "mode", "padding"),
                         list(itertools.product([1, 3], MODES, [1, "same"])), ids=str)
def test_jacobian_of_conv_modules_in_1d_and_3d(ndim, mode, padding):
    """``jacrev`` of a live Conv1d/Conv3d equals ``C``: ``Cᵀ`` is its gradient, made concrete."""
    kernel = (4, 3, 2)[:ndim] if ndim == 3 else (4,)  # even kernels: torch's odd "same" split
    cls = getattr(torch.nn, f"Conv{ndim}d")
    module = cls(2, 4, kernel, padding=padding, dilation=(2, 1, 1)[:ndim] if ndim == 3 else 2,
                 groups=2, padding_mode=mode, bias=False, dtype=torch.float64)
    shape = (2, *(7, 4, 3)[:ndim]) if ndim == 3 else (2, 9)
    C = cm.torch_matrix(module, shape)
    np.testing.assert_allclose(C.toarray(), _jacobian(module, shape), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(("ndim", "stride", "padding", "output_padding", "dilation"), [
    (1, 3, 1, 2, 1),
    (1, 1, 0, 1, 2),            # output_padding >= stride, allowed because it is < dilation
    (3, (2, 1, 2), (1, 0, 0), (1, 0, 1), 1),
    (3, 1, 1, (0, 1, 2), 3),    # the same, along several axes at once
])
def test_jacobian_of_conv_transpose_modules_in_1d_and_3d(ndim, stride, padding,
                                                         output_padding, dilation):
    cls = getattr(torch.nn, f"ConvTranspose{ndim}d")
    module = cls(2, 2, 2, stride=stride, padding=padding, output_padding=output_padding,
                 dilation=dilation, groups=2, bias=False, dtype=torch.float64)
    shape = (2, *(3,) * ndim)
    CT = cm.torch_matrix(module, shape)
    np.testing.assert_allclose(CT.toarray(), _jacobian(module, shape), rtol=1e-13, atol=1e-13)


def _random_transpose(ndim, groups, draw):
    rng = seeded_rng("transpose", ndim, groups, draw)
    kernel = [int(v) for v in rng.integers(1, 4, ndim)]
    stride = [int(v) for v in rng.integers(1, 4, ndim)]
    dilation = [int(v) for v in rng.integers(1, 3, ndim)]
    padding = [int(rng.integers(0, d * (k - 1) + 1)) for k, d in zip(kernel, dilation,
                                                                       strict=True)]
    output_padding = [int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation,
                                                                      strict=True)]
    size = [int(v) for v in rng.integers(1, 5, ndim)]
    c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    return rng, c_in, c_out, kernel, stride, padding, output_padding, dilation, size


@pytest.mark.parametrize(("ndim", "groups", "draw"),
                         list(itertools.product([1, 2, 3], [1, 2], range(4))), ids=str)
def test_random_conv_transpose_modules_with_bias(ndim, groups, draw):
    rng, c_in, c_out, kernel, stride, padding, output_padding, dilation, size = (
        _random_transpose(ndim, groups, draw))
    cls = getattr(torch.nn, f"ConvTranspose{ndim}d")
    module = cls(c_in, c_out, kernel, stride=stride, padding=padding,
                 output_padding=output_padding, dilation=dilation, groups=groups,
                 dtype=torch.float64)
    y = torch.from_numpy(rng.standard_normal((c_in, *size)))
    try:
        expected = module(y[None]).detach().numpy()[0]
    except RuntimeError:  # torch finds the output empty: so must convmatrix
        with pytest.raises(cm.ConvMatrixError, match="empty"):
            cm.torch_matrix(module, tuple(y.shape))
        return
    CT = cm.torch_matrix(module, tuple(y.shape))
    bias = cm.torch_bias(module, tuple(y.shape))
    assert CT.shape == (expected.size, y.numel()) and bias.shape == (expected.size,)
    np.testing.assert_allclose(CT @ y.numpy().ravel() + bias, expected.ravel(), rtol=1e-11,
                               atol=1e-11)


def test_output_size_accepts_torch_forms():
    """``output_size`` as torch's forward takes it: spatial only, or with batch and channels."""
    module = torch.nn.ConvTranspose2d(2, 3, 3, stride=(2, 3), padding=1, bias=False,
                                      dtype=torch.float64)
    y = torch.randn(1, 2, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for size in ([8, 7], [1, 3, 8, 7], torch.Size([8, 7])):
        expected = module(y, output_size=size).detach().numpy()
        CT = cm.torch_matrix(module, (2, 4, 3), output_size=size)
        np.testing.assert_allclose(CT @ y.numpy().ravel(), expected.ravel(), rtol=1e-12,
                                   atol=1e-12)  # the module's weights are random: some y ≈ 0
    with pytest.raises(cm.ConvMatrixError, match="only to ConvTranspose"):
        cm.torch_matrix(torch.nn.Conv2d(2, 3, 3), (2, 5, 5), output_size=(3, 3))


def test_float32_module_keeps_its_dtype():
    torch.manual_seed(1)
    module = torch.nn.Conv2d(3, 2, 3, stride=2, padding="valid", padding_mode="circular")
    x = torch.randn(3, 8, 7)
    C = cm.torch_matrix(module, tuple(x.shape))
    assert C.dtype == np.float32
    y = module(x[None]).detach().numpy().ravel()
    np.testing.assert_allclose(C @ x.numpy().ravel() + cm.torch_bias(module, x.shape), y,
                               rtol=1e-5, atol=1e-5)


def test_same_padding_agrees_with_keras_at_stride_one():
    """torch's and Keras' 'same' coincide at stride 1 (odd extra pixel after, in both)."""
    torch.manual_seed(2)
    module = torch.nn.Conv2d(3, 4, (4, 3), padding="same", dilation=(1, 2), bias=False,
                             dtype=torch.float64)
    kernel = module.weight.detach().numpy().transpose(2, 3, 1, 0)  # (*k, C_in, C_out)
    layer = {"class_name": "Conv2D",
             "config": {"filters": 4, "kernel_size": [4, 3], "padding": "same",
                        "dilation_rate": [1, 2], "data_format": "channels_first"}}
    T = cm.torch_matrix(module, (3, 6, 5))
    K = cm.keras_matrix(layer, kernel, (3, 6, 5))
    assert abs(T - K).max() == 0
