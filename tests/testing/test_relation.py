"""convmatrix.testing.relation: equal, transpose, or either up to a named change.

Every claim a Relation makes (``A = B′`` or ``A = B′ᵀ`` with ``b′ = .changed``) is checked
against an independent computation: ``a``'s matrix from live torch (``torch.func.jacrev``) or
from the dense reference loops (``convmatrix.reference``), ``b′``'s from the dense reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import reference
from convmatrix.layers.channels_last import KerasConv
from convmatrix.testing import ConvMismatch, Relation, assert_conv_equal, probe, relation
from convmatrix.testing.candidates import geometry_of


def _dense(fn, input_shape):
    """The dense matrix of a linear fn of one sample, column by column (unit vectors)."""
    n = math.prod(input_shape)
    columns = []
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1.0
        columns.append(np.asarray(fn(e.reshape(input_shape)), dtype=float).ravel())
    return np.stack(columns, axis=1)


def _reference_dense(layer):
    """A conv layer's matrix from the dense reference loops (no builder code)."""
    return _dense(geometry_of(layer).apply, tuple(layer.input_shape))


def _check_claim(r: Relation, a_dense: np.ndarray):
    """``A = B′`` (equal) or ``A = B′ᵀ`` (transpose), B′ from the reference loops."""
    assert r.changed is not None and r.match is not None
    changed = _reference_dense(r.changed)
    want = changed if r.verdict == "equal" else changed.T
    np.testing.assert_allclose(a_dense, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_reference_dense(r.match), a_dense, rtol=1e-12, atol=1e-12)


W = np.random.default_rng(7).standard_normal((3, 2, 3, 3))    # a conv 2→3, kernel 3×3
CONV = cm.Conv(W, (2, 6, 6), stride=2, padding=1)              # 2×6×6 → 3×3×3


def _transposed(weight, **kw):
    kw = {"stride": 2, "padding": 1, "output_padding": 1, **kw}
    return cm.ConvTranspose(np.ascontiguousarray(weight), (weight.shape[0], 3, 3), **kw)


# ------------------------------------------------------------------------------ constructed pairs


def test_exact_equal_and_transpose():
    assert relation(CONV, CONV).verdict == "equal"
    assert relation(CONV, CONV).exact
    r = relation(_transposed(W), CONV)
    assert (r.verdict, r.differences, r.exact) == ("transpose", {}, True)
    np.testing.assert_allclose(_reference_dense(_transposed(W)), _reference_dense(CONV).T)
    assert relation(CONV.T, CONV).verdict == "transpose"
    assert relation(CONV, _transposed(W)).verdict == "transpose"


CASES = [
    # (name, a, expected verdict, expected differences)
    ("kernel flipped", _transposed(W[..., ::-1, ::-1]), "transpose",
     {"kernel_flip": (False, True)}),
    ("channels swapped", _transposed(np.swapaxes(W, 0, 1)), "transpose",
     {"shape": (((3, 3, 3), (2, 6, 6)), ((2, 3, 3), (3, 6, 6))),
      "weight_channels_swapped": (False, True)}),
    ("flipped and swapped (flax transpose_kernel=False)",
     _transposed(np.swapaxes(W, 0, 1)[..., ::-1, ::-1]), "transpose",
     {"shape": (((3, 3, 3), (2, 6, 6)), ((2, 3, 3), (3, 6, 6))),
      "kernel_flip": (False, True), "weight_channels_swapped": (False, True)}),
    ("output_padding crop", _transposed(W, output_padding=0), "transpose",
     {"shape": (((3, 3, 3), (2, 6, 6)), ((3, 3, 3), (2, 5, 5))),
      "output_padding": ((1, 1), (0, 0))}),
    ("padding", _transposed(W, padding=((2, 0), (1, 1))), "transpose",
     {"padding": (((1, 1), (1, 1)), ((2, 0), (1, 1)))}),
    ("stride", cm.Conv(W, (2, 6, 6), stride=(1, 2), padding=1), "equal",
     {"shape": (((2, 6, 6), (3, 3, 3)), ((2, 6, 6), (3, 6, 3))), "stride": ((2, 2), (1, 2))}),
    ("dilation", cm.Conv(W, (2, 6, 6), stride=2, padding=1, dilation=(2, 1)), "equal",
     {"shape": (((2, 6, 6), (3, 3, 3)), ((2, 6, 6), (3, 2, 3))),
      "dilation": ((1, 1), (2, 1))}),
    ("kernel axes swapped", cm.Conv(np.swapaxes(W, 2, 3), (2, 6, 6), stride=2, padding=1),
     "equal", {"kernel_axes_swapped": (None, (0, 1))}),
    ("padding mode", cm.Conv(W, (2, 6, 6), stride=2, padding=1, padding_mode="reflect"),
     "equal", {"padding_mode": ("zeros", "reflect")}),
]


@pytest.mark.parametrize(("name", "a", "verdict", "differences"), CASES,
                         ids=[c[0] for c in CASES])
def test_each_difference_kind(name, a, verdict, differences):
    r = relation(a, CONV)
    assert r.verdict == verdict
    assert r.differences == differences
    _check_claim(r, _reference_dense(a))


def test_groups_interleaved():
    w = np.random.default_rng(3).standard_normal((4, 1, 3))
    b = cm.Conv(w, (2, 7), groups=2)
    dense = np.zeros((4, 2, 3))  # output channel o reads input channel o % 2 (interleaved)
    for o in range(4):
        dense[o, o % 2] = w[o, 0]
    r = relation(cm.Conv(dense, (2, 7)), b)
    assert r.verdict == "equal"
    assert set(r.differences) == {"groups"}
    _check_claim(r, _reference_dense(cm.Conv(dense, (2, 7))))


def test_neither():
    other = cm.ConvTranspose(np.random.default_rng(0).standard_normal((3, 2, 3, 3)),
                             (3, 3, 3), stride=2, padding=1, output_padding=1)
    r = relation(other, CONV)
    assert (r.verdict, r.differences, r.changed, r.match) == ("neither", {}, None, None)
    assert "neither" in repr(r) and "neither b nor bᵀ" in str(r)


def test_two_changes_at_most():
    a = _transposed(W[..., ::-1, ::-1], padding=((2, 0), (1, 1)), dilation=(1, 2))
    assert relation(a, CONV).verdict == "neither"  # three changes: not searched


def test_a_channels_last_layer_is_compared_in_channels_first_order():
    b = KerasConv(CONV, "Conv2D")
    a = KerasConv(_transposed(W[..., ::-1, ::-1]), "Conv2DTranspose")
    r = relation(a, b)
    assert (r.verdict, r.differences) == ("transpose", {"kernel_flip": (False, True)})
    assert r.layouts == ("channels_last", "channels_last")
    mixed = relation(_transposed(W), b)
    assert (mixed.verdict, mixed.differences) == (
        "transpose", {"layout": ("channels_last", "channels_first")})


def test_probe_result_and_non_conv_layers():
    # a = a torch-free black box probed into its matrix; b a stack (no search, exact only)
    fn = lambda y: reference.conv_transpose(y, W, stride=2, padding=1, output_padding=1)  # noqa: E731
    probed = probe(fn, (3, 3, 3))
    assert relation(probed, CONV).verdict == "transpose"
    stack = cm.Sequential([CONV])
    assert relation(CONV, stack).verdict == "equal"
    assert relation(CONV.T, stack).verdict == "transpose"
    assert relation(_transposed(W[..., ::-1, ::-1]), stack).verdict == "neither"


def test_bad_input_is_named():
    with pytest.raises(cm.ConvMatrixError, match="`b`"):
        relation(CONV, np.eye(3))
    with pytest.raises(cm.ConvMatrixError, match="`a`"):
        relation("conv", CONV)


def test_repr_str_markdown():
    r = relation(_transposed(W[..., ::-1, ::-1]), CONV)
    assert repr(r) == "Relation('transpose', up to kernel_flip)"
    text = str(r)
    assert text.splitlines()[2] == "a = bᵀ up to kernel_flip"
    assert "a flips the kernel" in text and "b′ᵀ with b′ = Conv(" in text
    md = r._repr_markdown_()
    assert md.startswith("**a = bᵀ up to kernel_flip**") and "`Conv(" in md


def test_same_vocabulary_as_assert_conv_equal():
    # the same pair through assert_conv_equal names the same difference
    a = cm.Conv(W[..., ::-1, ::-1], (2, 6, 6), stride=2, padding=1)
    with pytest.raises(ConvMismatch) as info:
        assert_conv_equal(a, CONV)
    assert set(info.value.differences) == set(relation(a, CONV).differences) == {"kernel_flip"}


# ------------------------------------------------------------------------------ live torch


def _jacobian(fn, input_shape):
    torch = pytest.importorskip("torch")
    x = torch.zeros((1, *input_shape), dtype=torch.float64)
    jac = torch.func.jacrev(lambda v: fn(v)[0])(x)[:, :, :, 0]  # (out…, C, H, W)
    out = jac.shape[:len(jac.shape) - len(input_shape)]
    return jac.reshape(math.prod(out), math.prod(input_shape)).detach().numpy()


@pytest.fixture(scope="module")
def torch_pair():
    torch = pytest.importorskip("torch")
    conv = torch.nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(W))
    return torch, conv


def test_torch_conv_transpose2d_is_the_adjoint_of_conv2d(torch_pair):
    torch, conv = torch_pair
    up = torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1,
                                  bias=False).double()
    with torch.no_grad():
        up.weight.copy_(conv.weight)
    # torch itself: the Jacobian of conv_transpose2d is the transpose of conv2d's
    jt = _jacobian(up, (3, 3, 3))
    np.testing.assert_allclose(jt, _jacobian(conv, (2, 6, 6)).T, atol=1e-13)
    r = relation(cm.from_torch(up, (3, 3, 3)), cm.from_torch(conv, (2, 6, 6)))
    assert (r.verdict, r.differences) == ("transpose", {})


@pytest.mark.parametrize("case", ["flip", "swap", "padding", "crop", "torch padding"])
def test_torch_differences(torch_pair, case):
    torch, conv = torch_pair
    F = torch.nn.functional
    w = conv.weight.detach()
    b = cm.from_torch(conv, (2, 6, 6))
    if case == "flip":
        fn, shape = (lambda y: F.conv_transpose2d(y, w.flip(2, 3), stride=2, padding=1,
                                                  output_padding=1)), (3, 3, 3)
        want = {"kernel_flip": (False, True)}
    elif case == "swap":  # the conv's weight read in the transposed layer's own (in, out) order
        fn, shape = (lambda y: F.conv_transpose2d(y, w.transpose(0, 1), stride=2, padding=1,
                                                  output_padding=1)), (2, 3, 3)
        want = {"shape": (((3, 3, 3), (2, 6, 6)), ((2, 3, 3), (3, 6, 6))),
                "weight_channels_swapped": (False, True)}
    elif case == "padding":  # the full transposed output cropped (2, 0), not (1, 1) − op 1
        fn, shape = (lambda y: F.conv_transpose2d(y, w, stride=2)[..., 2:, 2:]), (3, 3, 3)
        want = {"shape": (((3, 3, 3), (2, 6, 6)), ((3, 3, 3), (2, 5, 5))),
                "padding": (((1, 1), (1, 1)), ((2, 1), (2, 1)))}
    elif case == "crop":  # output_padding 0: one row and column fewer
        fn, shape = (lambda y: F.conv_transpose2d(y, w, stride=2, padding=1)), (3, 3, 3)
        want = {"shape": (((3, 3, 3), (2, 6, 6)), ((3, 3, 3), (2, 5, 5))),
                "output_padding": ((1, 1), (0, 0))}
    else:  # ConvTranspose2d(padding=1) crops its output; it is not conv2d(padding=1)ᵀ
        fn, shape = (lambda y: F.conv_transpose2d(y, w, stride=2, padding=0)), (3, 3, 3)
        # (one change: crop (0, 1) and output_padding 1 is crop (0, 0), the same matrix)
        want = {"shape": (((3, 3, 3), (2, 6, 6)), ((3, 3, 3), (2, 7, 7))),
                "padding": (((1, 1), (1, 1)), ((0, 1), (0, 1)))}
    a_dense = _jacobian(fn, shape)
    a = probe(lambda y: fn(torch.from_numpy(y)[None])[0], shape)
    np.testing.assert_allclose(a.matrix.toarray(), a_dense, atol=1e-13)
    r = relation(a, b)
    assert r.verdict == "transpose"
    assert r.differences == want
    _check_claim(r, a_dense)
