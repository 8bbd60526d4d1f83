"""Issue 16 item 22 (adapter parts): ``F.pad``'s own rule for negative pads; ``>f4`` weights.

``ZeroPad1d((3, -2))`` on a length-1 axis was accepted although torch's ``F.pad`` rejects it
(it crops before it pads); weights in non-native byte order were refused with "use float32"
although they are float32. Live torch is the oracle for the pads; the byte-swapped values
for the weights.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import reference

_OTHER_ORDER = ">" if sys.byteorder == "little" else "<"


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_pad_accepts_and_refuses_what_torch_does(mode, n):
    torch = _torch()
    F = torch.nn.functional
    x = np.arange(1.0, n + 1).reshape(1, n)
    for before, after in itertools.product(range(-4, 5), repeat=2):
        try:
            expected = F.pad(torch.from_numpy(x[None]), (before, after), mode=mode)[0].numpy()
        except RuntimeError:
            expected = None
        try:
            got = cm.Pad((1, n), (before, after), mode=mode)(x)
        except cm.ConvMatrixError:
            got = None
        where = (mode, n, before, after)
        if expected is None:
            assert got is None, where  # torch rejects: so does convmatrix
        elif got is None:
            # refused only where torch's answer is empty, or (circular) wraps an axis
            # cropped to nothing, where torch returns uninitialised memory
            kept = n - max(0, -before) - max(0, -after)
            assert expected.size == 0 or (mode == "circular" and kept < 1), where
        else:
            np.testing.assert_array_equal(got, expected, err_msg=str(where))


def test_zero_pad_module_with_a_crop_larger_than_the_axis_is_refused():
    torch = _torch()
    module = torch.nn.ZeroPad1d((3, -2))
    with pytest.raises(RuntimeError):
        module(torch.ones(1, 1, 1))
    with pytest.raises(cm.ConvMatrixError, match=r"`pad` \(=\(3, -2\)\) crops 2 from axis 1"):
        cm.from_torch(module, (1, 1))


def test_constant_pad_2d_crops_each_axis_as_torch_does():
    torch = _torch()
    F = torch.nn.functional
    x = np.arange(1.0, 13).reshape(1, 3, 4)
    for pad in [(2, -1, -3, 3), (-4, 5, 0, 0), (1, 1, -2, 0), (0, 0, 4, -4), (-5, 6, 1, 0)]:
        try:
            expected = F.pad(torch.from_numpy(x[None]), pad, value=7.0)[0].numpy()
        except RuntimeError:
            with pytest.raises(cm.ConvMatrixError, match="crops"):
                cm.Pad(x.shape, pad, value=7.0)
            continue
        np.testing.assert_array_equal(cm.Pad(x.shape, pad, value=7.0)(x), expected)


def test_crop_larger_than_the_axis_is_refused_without_torch():
    with pytest.raises(cm.ConvMatrixError, match="crops 2 from axis 1 of size 1"):
        cm.Pad((1, 1), (3, -2))
    np.testing.assert_array_equal(cm.Pad((1, 1), (3, -1))(np.array([[5]])), [[0, 0, 0]])


@pytest.mark.parametrize("code", ["f4", "f8", "i4", "c8"])
def test_non_native_byte_order_weights_are_byte_swapped(code):
    rng = np.random.default_rng(7)
    native = (rng.standard_normal((2, 1, 3, 3)) * 4).astype(code)
    swapped = native.astype(native.dtype.newbyteorder(_OTHER_ORDER))
    assert not swapped.dtype.isnative and np.array_equal(swapped, native)
    C = cm.conv_matrix(swapped, (1, 5, 5))
    assert C.dtype == native.dtype  # the same type, native order
    x = rng.standard_normal((1, 5, 5))
    np.testing.assert_allclose(C @ x.ravel(), reference.conv(x, native.astype(complex)
                                                             if code == "c8" else
                                                             native.astype(float)).ravel(),
                               rtol=1e-5, atol=1e-5)
    layer = cm.Conv(swapped, (1, 5, 5))
    assert (layer.matrix() != cm.Conv(native, (1, 5, 5)).matrix()).nnz == 0


def test_non_native_keras_kernel_is_read():
    layer = {"class_name": "Conv2D", "config": {"filters": 2, "kernel_size": [3, 3]}}
    kernel = np.random.default_rng(8).standard_normal((3, 3, 1, 2)).astype("float32")
    swapped = kernel.astype(kernel.dtype.newbyteorder(_OTHER_ORDER))
    M = cm.keras_matrix(layer, swapped, (5, 5, 1))
    assert M.dtype == np.float32
    assert (M != cm.keras_matrix(layer, kernel, (5, 5, 1))).nnz == 0
