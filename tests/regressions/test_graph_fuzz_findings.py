"""Findings of ``scripts/fuzz_graphs.py`` (issue 17): hostile torch networks against live torch.

Each network must be read exactly (matrix against ``torch.func.jacrev``, offset against
``m(0)``) or refused with a one-line ``ConvMatrixError`` naming the node or the module.
"""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm

torch = pytest.importorskip("torch")
F = torch.nn.functional


class _Fn(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _truth(module, shape):
    n = int(np.prod(shape))

    def f(v):
        return module(v.reshape(1, *shape).clone()).reshape(-1)

    zero = torch.zeros(n, dtype=torch.float64)
    with torch.no_grad():
        offset = f(zero).numpy()
    try:
        jac = torch.func.jacrev(f)(zero).numpy()
    except RuntimeError:  # in-place writes through views: columns by unit vectors (affine)
        with torch.no_grad():
            eye = torch.eye(n, dtype=torch.float64)
            jac = np.stack([f(eye[j]).numpy() - offset for j in range(n)], axis=1)
    return jac, offset


def _exact_or_refused(module, shape, *, given=None):
    """None when read exactly; the one-line refusal otherwise (a wrong matrix fails)."""
    try:
        layer = cm.from_torch(module if given is None else given, shape)
    except cm.ConvMatrixError as error:
        assert "\n" not in str(error)
        return str(error)
    jac, offset = _truth(module, shape)
    np.testing.assert_allclose(layer.matrix().toarray(), jac, atol=1e-12)
    np.testing.assert_allclose(np.ravel(layer.offset()), offset, atol=1e-12)
    return None


class _InplaceInput(torch.nn.Module):
    def forward(self, x):
        inputs = [x]
        x += x  # the input doubled in place: inputs[0] is the same tensor
        return inputs[0] * 3


class _InplaceReused(torch.nn.Module):
    def forward(self, x):
        a = x * 2
        saved = a
        a -= x  # `saved` is `a`: x in the module, 2x in fx's out-of-place trace
        return saved + x


class _ViewWrite(torch.nn.Module):
    def forward(self, x):
        a = x * 2
        b = a[:, :1]
        b.mul_(3)  # writes through a view into a
        return a


class _ChunkWriteInput(torch.nn.Module):
    def forward(self, x):
        part = x.chunk(1, -1)[0]  # the whole input, as a view
        part.add_(x)
        return x.mean(dim=-1)


@pytest.mark.parametrize("module", [_InplaceInput(), _InplaceReused()], ids=["input", "reused"])
def test_inplace_update_fx_records_out_of_place_is_refused(module):
    # seed 1 #171 / #210 (and ~1 in 60 networks): torch.fx traces `a += b` as `a + b`, so the
    # graph read the old `a` where the module reads the changed one: a silently wrong matrix
    shape = (2, 5)
    message = _exact_or_refused(module, shape)
    assert message is not None and "in-place" in message and "`module`" in message


@pytest.mark.parametrize("how", ["module", "fx", "export"])
def test_inplace_write_through_a_view_is_refused(how):
    # seed 0 #19 (export), seed 1 #136 and #278: `b = a[:, :1]; b.mul_(3); return a` —
    # the write changes `a` through the view; the graph returned the unchanged `a`
    module, shape = _ViewWrite(), (2, 3)
    given = {"module": module, "fx": torch.fx.symbolic_trace(module),
             "export": torch.export.export(module, (torch.randn(1, *shape,
                                                               dtype=torch.float64),))}[how]
    message = _exact_or_refused(module, shape, given=given)
    assert message is not None and "node 'mul_'" in message and "shares memory" in message


def test_inplace_write_into_the_input_through_a_chunk_is_refused():
    message = _exact_or_refused(_ChunkWriteInput(), (2, 3))
    assert message is not None and "node 'add_'" in message and "network input" in message


@pytest.mark.parametrize("size", [3, (2, 3), (None, 3), (2, None)])
def test_functional_adaptive_avg_pool_with_unequal_bins_is_read(size):
    # F.adaptive_avg_pool2d with bins of unequal sizes was refused (the translator imported
    # AdaptiveAvgPool from a module that does not hold it); None entries keep the axis
    module = _Fn(lambda x: F.adaptive_avg_pool2d(x, size))
    assert _exact_or_refused(module, (2, 5, 7)) is None


def test_out_of_place_residual_still_read():
    # the two checks above refuse nothing torchvision writes: `out += identity` at the end
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 2, 3, padding=1).double()

        def forward(self, x):
            identity = x
            out = self.conv(x)
            out += identity
            return out

    assert _exact_or_refused(Block().eval(), (2, 4, 4)) is None


def test_non_finite_constant_is_no_crash():
    # `x + nan`: the trace check compared with a NaN tolerance (RuntimeError from allclose)
    module = _Fn(lambda x: x + float("nan"))
    layer = cm.from_torch(module, (2, 3))
    assert np.isnan(layer.offset()).all()
    np.testing.assert_array_equal(layer.matrix().toarray(), np.eye(6))


def test_refusal_names_the_node_once():
    # an output without its batch axis: the message said "node 'flatten' (...): node 'flatten'
    # (...): its value has shape ..."
    with pytest.raises(cm.ConvMatrixError) as info:
        cm.from_torch(_Fn(lambda x: x.flatten(0)[None]), (2, 3))
    assert str(info.value).count("node 'flatten'") == 1 and "batch axis" in str(info.value)
