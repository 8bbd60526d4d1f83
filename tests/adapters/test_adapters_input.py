"""Bad input to the framework adapters and builders: one-line errors, never silent truncation.

Also the Keras cases a fuzzer or a newcomer found: numpy ints accepted, channels-last matrices
whose memory follows the matrix (not the input), DepthwiseConv with strides and dilation.
"""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import reference
from tests.helpers import rng


def _layer(class_name: str = "Conv2D", **config: object) -> dict[str, object]:
    return {"class_name": class_name,
            "config": {"filters": 1, "kernel_size": [3, 3], **config}}


KERAS_BAD = [
    (_layer(), (3, 3, 1, 1), (3.9, 3, 1), r"`input_shape` \(=3.9\) must be an integer"),
    (_layer(), (3, 3, 1, 1), 5, r"`input_shape` \(=5\) must be a tuple"),
    (_layer(groups=0), (3, 3, 1, 1), (5, 5, 1), r"`groups` \(=0\) must be positive"),
    (_layer(filters=0), (3, 3, 1, 1), (5, 5, 1), r"`filters` \(=0\) must be positive"),
    (_layer(filters=2.5), (3, 3, 1, 1), (5, 5, 1), r"`filters` \(=2.5\) must be an integer"),
    (_layer("DepthwiseConv2D", depth_multiplier=0), (3, 3, 1, 1), (5, 5, 1),
     r"`depth_multiplier` \(=0\) must be positive"),
    (_layer(strides=10**30), (3, 3, 1, 1), (5, 5, 1),
     r"`strides` \(=1000000000000000000000000000000\) must be at most 2\*\*63 − 1"),
    (_layer("SeparableConv2D"), (3, 3, 1, 1), (5, 5, 1),
     r"`class_name` \(='SeparableConv2D'\) is not a single convolution .*from_keras"),
    (_layer("SeparableConv1D", kernel_size=[3]), (3, 1, 1), (5, 1),
     r"`class_name` \(='SeparableConv1D'\) is not a single convolution"),
]


@pytest.mark.parametrize(("layer", "kernel", "shape", "message"), KERAS_BAD,
                         ids=[m[:30] for *_, m in KERAS_BAD])
def test_keras_bad_input_is_a_named_error(layer, kernel, shape, message):
    with pytest.raises(cm.ConvMatrixError, match=message):
        cm.keras_matrix(layer, np.ones(kernel), shape)


def test_keras_output_shape_refuses_what_keras_matrix_refuses():
    with pytest.raises(cm.ConvMatrixError, match=r"`input_shape` \(=3.9\) must be an integer"):
        cm.keras_output_shape(_layer(), (3.9, 3, 1))
    with pytest.raises(cm.ConvMatrixError, match=r"`input_shape` \(=5\) must be a tuple"):
        cm.keras_output_shape(_layer(), 5)
    with pytest.raises(cm.ConvMatrixError, match=r"`kernel_size` .* must be at most 2\*\*63"):
        cm.keras_output_shape(_layer(kernel_size=[10**20, 1]), (5, 5, 1))
    # a kernel no array could hold still has an output shape (nothing is allocated)
    assert cm.keras_output_shape(_layer(kernel_size=[10**18, 1], padding="same"),
                                 (5, 5, 1)) == (5, 5, 1)


def test_keras_accepts_numpy_ints_everywhere():
    layer = {"class_name": "Conv2DTranspose",
             "config": {"filters": np.int64(2), "kernel_size": np.array([3, 3]),
                        "strides": np.int32(2), "output_padding": np.int64(1),
                        "dilation_rate": (np.int64(1), 1)}}
    kernel = rng("numpy ints").standard_normal((3, 3, 2, 1))
    x = rng("numpy ints", "x").standard_normal((4, 4, 1))
    M = cm.keras_matrix(layer, kernel, np.array([4, 4, 1]))
    # Keras' rule: (n − 1)·s + k − 2·pad + output_padding = 3·2 + 3 + 1 = 10 per axis
    assert cm.keras_output_shape(layer, (4, 4, 1)) == (10, 10, 2)
    weight = np.transpose(kernel, (3, 2, 0, 1))  # (C_in, filters, *k), torch layout
    expected = reference.conv_transpose(np.moveaxis(x, -1, 0), weight, stride=2,
                                        output_padding=1)
    np.testing.assert_allclose(M @ x.ravel(), np.moveaxis(expected, 0, -1).ravel(),
                               rtol=1e-12)


def test_max_bytes_must_be_a_non_negative_int():
    for bad in (-1, 1.5, "1GB", True):
        with pytest.raises(cm.ConvMatrixError, match=re.escape(
                f"`max_bytes` (={bad!r}) must be a non-negative int or None")):
            cm.conv_matrix(np.ones((1, 1, 3)), (1, 5), max_bytes=bad)
    with pytest.raises(cm.ConvMatrixError, match=r"`max_bytes` \(=-1\) must be a non-negative"):
        cm.keras_matrix(_layer(), np.ones((3, 3, 1, 1)), (5, 5, 1), max_bytes=-1)
    assert cm.conv_matrix(np.ones((1, 1, 3)), (1, 5), max_bytes=np.int64(10**6)).shape == (3, 5)


def test_channels_last_matrix_memory_follows_the_matrix_not_the_input():
    # 256 stored entries read from a (2**22, 2) input: the layout must not cost 2**23 indices
    n = 2**22
    layer = {"class_name": "Conv1D",
             "config": {"filters": 2, "kernel_size": [1], "strides": [n // 64]}}
    kernel = np.arange(1.0, 5.0).reshape(1, 2, 2)
    cm.keras_matrix(layer, kernel, (64, 2))  # imports and caches outside the measurement
    tracemalloc.start()
    try:
        M = cm.keras_matrix(layer, kernel, (n, 2))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert M.nnz == 256
    assert peak < 2**20, f"peak {peak / 2**20:.1f} MiB for a 256-entry matrix"
    # and the entries are right: output o, filter f reads position o·stride, both channels
    rows, cols = M.nonzero()
    o, f = rows // 2, rows % 2
    assert np.array_equal(cols // 2, o * (n // 64))
    assert np.array_equal(M[rows, cols], kernel[0, cols % 2, f])


@pytest.mark.parametrize(("rank", "padding", "strides", "dilation", "multiplier"), [
    (1, "valid", (2,), (2,), 1),
    (1, "same", (3,), (2,), 2),
    (2, "same", (2, 3), (2, 2), 1),
    (2, "valid", (2, 2), (3, 1), 2),
    (2, "same", (3, 2), (2, 3), 3),
])
def test_depthwise_with_strides_and_dilation(rank, padding, strides, dilation, multiplier):
    # Keras 3.15+ runs it (JAX/torch backends); TF's kernels do not, so no TF oracle exists:
    # check against the dense reference with groups, padding worked out here by brute force
    gen = rng(rank, padding, strides, dilation, multiplier)
    spatial, kernel_size, channels = (9, 8)[:rank], (3, 2)[:rank], 2
    kernel = gen.standard_normal((*kernel_size, channels, multiplier))
    x = gen.standard_normal((*spatial, channels))
    layer = {"class_name": f"DepthwiseConv{rank}D",
             "config": {"kernel_size": list(kernel_size), "strides": list(strides),
                        "dilation_rate": list(dilation), "padding": padding,
                        "depth_multiplier": multiplier}}
    M = cm.keras_matrix(layer, kernel, x.shape)
    pairs = []
    for n, k, s, d in zip(spatial, kernel_size, strides, dilation, strict=True):
        span, want = d * (k - 1) + 1, -(-n // s)
        total = 0
        if padding == "same":  # smallest total pad giving ⌈n/s⌉ windows, odd one after
            while (n + total - span) // s + 1 < want:
                total += 1
        pairs.append((total // 2, total - total // 2))
    weight = np.stack([kernel[..., c, m] for c in range(channels) for m in range(multiplier)])
    expected = reference.conv(np.moveaxis(x, -1, 0), weight[:, None], stride=strides,
                              padding=tuple(pairs), dilation=dilation, groups=channels)
    if padding == "same":
        assert expected.shape[1:] == tuple(-(-n // s) for n, s in zip(spatial, strides,
                                                                      strict=True))
    assert cm.keras_output_shape(layer, x.shape) == np.moveaxis(expected, 0, -1).shape
    np.testing.assert_allclose(M @ x.ravel(), np.moveaxis(expected, 0, -1).ravel(),
                               rtol=1e-12, atol=1e-12)


def test_depthwise_strides_and_dilation_against_torch():
    torch = pytest.importorskip("torch")
    gen = rng("depthwise torch")
    kernel = gen.standard_normal((3, 3, 2, 2))
    x = gen.standard_normal((11, 10, 2))
    layer = {"class_name": "DepthwiseConv2D",
             "config": {"kernel_size": [3, 3], "strides": [2, 3], "dilation_rate": [2, 2],
                        "padding": "same", "depth_multiplier": 2}}
    M = cm.keras_matrix(layer, kernel, x.shape)
    # TF "same" for n = 11, 10 (strides 2, 3; dilated kernel 5): totals 4 and 4 -> (2, 2)
    xt = torch.nn.functional.pad(torch.tensor(np.moveaxis(x, -1, 0))[None], (2, 2, 2, 2))
    wt = torch.tensor(np.moveaxis(kernel.reshape(3, 3, 4), -1, 0)[:, None])
    out = torch.nn.functional.conv2d(xt, wt, stride=(2, 3), dilation=2, groups=2)[0].numpy()
    np.testing.assert_allclose(M @ x.ravel(), np.moveaxis(out, 0, -1).ravel(), rtol=1e-12)


def test_conv_still_refuses_strides_with_dilation_as_keras_does():
    with pytest.raises(cm.ConvMatrixError, match=r"Keras rejects `strides` > 1 together with "
                                                 r"`dilation_rate` > 1 for Conv2D"):
        cm.keras_matrix(_layer(strides=2, dilation_rate=2), np.ones((3, 3, 1, 1)), (9, 9, 1))


# ------------------------------------------------------------------ torch tensors


def test_torch_tensors_with_requires_grad_are_read_detached():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.Conv1d(2, 3, 3, padding=1)
    assert module.weight.requires_grad
    x = rng("requires_grad").standard_normal((2, 7))
    C = cm.conv_matrix(module.weight, x.shape, padding=1)
    with torch.no_grad():
        expected = module(torch.tensor(x, dtype=torch.float32)[None])[0].numpy()
    layer = cm.Conv(module.weight, x.shape, padding=1, bias=module.bias)
    np.testing.assert_allclose(layer(x.astype(np.float32)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(C @ x.ravel().astype(np.float32),
                               (expected - module.bias.detach().numpy()[:, None]).ravel(),
                               rtol=1e-5, atol=1e-6)
    assert cm.verify(module.weight, x.shape, padding=1).passed


def test_bfloat16_modules_become_exact_float32_matrices():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    module = torch.nn.Conv2d(1, 2, 2).to(torch.bfloat16)
    C = cm.torch_matrix(module, (1, 3, 3))
    assert C.dtype == np.float32
    # every bfloat16 weight is held exactly: compare with the weights widened by torch
    widened = module.weight.detach().float().numpy()
    dense = C.toarray().reshape(2, 2, 2, 1, 3, 3)
    np.testing.assert_array_equal(dense[:, 0, 0, 0, :2, :2], widened[:, 0])
    assert cm.torch_bias(module, (1, 3, 3)).dtype == np.float32


def test_torch_output_size_must_hold_ints():
    torch = pytest.importorskip("torch")
    module = torch.nn.ConvTranspose1d(1, 1, 3, stride=2)
    with pytest.raises(cm.ConvMatrixError, match=r"`output_size` \(=11.5\) must be an integer"):
        cm.torch_matrix(module, (1, 5), output_size=(11.5,))
    with pytest.raises(cm.ConvMatrixError, match=r"`output_size` \(=12\) must end with the 1 "):
        cm.torch_matrix(module, (1, 5), output_size=12)
    assert cm.torch_matrix(module, (1, 5), output_size=[1, 1, 12]).shape == (12, 5)
