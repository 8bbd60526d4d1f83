"""The independent dense reference against PyTorch oracle vectors, closed forms and its adjoint."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convmatrix._errors import ConvMatrixError
from convmatrix.reference import conv, conv_transpose, pad, pad_adjoint
from tests import oracle

TORCH_CONV = oracle.select("torch", "conv")
TORCH_CONV_TRANSPOSE = oracle.select("torch", "conv_transpose")


def _case_id(case: dict[str, Any]) -> str:
    return str(case["id"])


def _explicit_pairs(case: dict[str, Any], kernel: tuple[int, ...]) -> list[tuple[int, int]]:
    """A torch conv case's padding as (before, after) pairs, worked out independently."""
    padding, ndim = case["padding"], case["ndim"]
    dilation = case["dilation"] if isinstance(case["dilation"], list) else [case["dilation"]] * ndim
    if padding == "valid":
        return [(0, 0)] * ndim
    if padding == "same":
        totals = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        return [(t // 2, t - t // 2) for t in totals]
    if isinstance(padding, int):
        return [(padding, padding)] * ndim
    return [(p, p) if isinstance(p, int) else (p[0], p[1]) for p in padding]


# ------------------------------------------------------------------ PyTorch oracle vectors


def test_oracle_has_torch_cases():
    assert len(TORCH_CONV) >= 40
    assert len(TORCH_CONV_TRANSPOSE) >= 20
    assert {c["padding_mode"] for c in TORCH_CONV} == {"zeros", "reflect", "replicate",
                                                       "circular"}


@pytest.mark.parametrize("case", TORCH_CONV, ids=_case_id)
def test_conv_matches_torch(case):
    a = oracle.arrays(case)
    y = conv(a["x"], a["weight"], stride=case["stride"], padding=oracle.torch_padding(case),
             dilation=case["dilation"], groups=case["groups"], padding_mode=case["padding_mode"])
    assert y.shape == tuple(case["output_shape"]) == a["y"].shape
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, a["y"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", TORCH_CONV_TRANSPOSE, ids=_case_id)
def test_conv_transpose_matches_torch(case):
    a = oracle.arrays(case)
    y = conv_transpose(a["x"], a["weight"], stride=case["stride"], padding=case["padding"],
                       output_padding=case["output_padding"], dilation=case["dilation"],
                       groups=case["groups"])
    assert y.shape == tuple(case["output_shape"]) == a["y"].shape
    np.testing.assert_allclose(y, a["y"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", TORCH_CONV, ids=_case_id)
def test_conv_transpose_gives_torch_input_gradient(case):
    """torch autograd's ``Cᵀ g``: the transposed convolution (then the padding's adjoint)."""
    a = oracle.arrays(case)
    kernel = a["weight"].shape[2:]
    pairs = _explicit_pairs(case, kernel)
    n, m = a["x"].shape[1:], a["grad_out"].shape[1:]
    ndim = case["ndim"]
    stride = case["stride"] if isinstance(case["stride"], list) else [case["stride"]] * ndim
    dilation = case["dilation"] if isinstance(case["dilation"], list) else [case["dilation"]] * ndim
    # the scatter of m outputs covers (m − 1)·s + d·(k − 1) + 1 padded-input positions; the
    # forward stride may have skipped the rest of the padded input: output_padding restores it
    covered = [(mm - 1) * s + d * (k - 1) + 1
               for mm, s, d, k in zip(m, stride, dilation, kernel, strict=True)]
    padded = [nn + b + af for nn, (b, af) in zip(n, pairs, strict=True)]
    remainder = [p - c for p, c in zip(padded, covered, strict=True)]
    common = {"stride": stride, "dilation": dilation, "groups": case["groups"],
              "output_padding": remainder}
    if case["padding_mode"] == "zeros":
        grad = conv_transpose(a["grad_out"], a["weight"], padding=pairs, **common)
    else:
        grad = pad_adjoint(conv_transpose(a["grad_out"], a["weight"], padding=0, **common),
                           pairs, case["padding_mode"])
    np.testing.assert_allclose(grad, a["grad_in"], rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ closed forms


def test_seed_example_conv_is_exact_integers():
    y = conv(np.ones((1, 3, 3), dtype=int), np.ones((1, 1, 2, 2), dtype=int))
    assert y.dtype.kind == "i"
    assert y.tolist() == [[[4, 4], [4, 4]]]


def test_seed_example_conv_transpose_is_exact_integers():
    y = conv_transpose(np.ones((1, 2, 2), dtype=int), np.ones((1, 1, 2, 2), dtype=int))
    assert y.dtype.kind == "i"
    assert y.tolist() == [[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2])
def test_1d_conv_is_numpy_correlate(stride, dilation):
    rng = np.random.default_rng(10 * stride + dilation)
    x, w = rng.standard_normal(13), rng.standard_normal(3)
    dilated = np.zeros(dilation * (len(w) - 1) + 1)
    dilated[::dilation] = w
    expected = np.correlate(x, dilated, "valid")[::stride]
    got = conv(x[None], w[None, None], stride=stride, dilation=dilation)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2])
def test_1d_conv_transpose_is_numpy_convolve_of_upsampled_input(stride, dilation):
    rng = np.random.default_rng(10 * stride + dilation)
    y, w = rng.standard_normal(7), rng.standard_normal(3)
    upsampled = np.zeros(stride * (len(y) - 1) + 1)
    upsampled[::stride] = y
    dilated = np.zeros(dilation * (len(w) - 1) + 1)
    dilated[::dilation] = w
    expected = np.convolve(upsampled, dilated, "full")   # a true convolution: the kernel flips
    got = conv_transpose(y[None], w[None, None], stride=stride, dilation=dilation)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_1d_padding_zeros_and_same_agree_with_numpy():
    x, w = np.arange(1.0, 8.0), np.array([1.0, 2.0, -1.0, 3.0])
    np.testing.assert_allclose(conv(x[None], w[None, None], padding=3)[0],
                               np.correlate(x, w, "full"))
    # "same" with an even kernel (total 3): 1 before, 2 after, length kept
    same = conv(x[None], w[None, None], padding="same")[0]
    np.testing.assert_allclose(same, np.correlate(np.pad(x, (1, 2)), w, "valid"))
    assert same.shape == x.shape


@pytest.mark.parametrize(("mode", "padded"), [
    ("zeros", [0, 0, 1, 2, 3, 0]),
    ("reflect", [3, 2, 1, 2, 3, 2]),
    ("replicate", [1, 1, 1, 2, 3, 3]),
    ("circular", [2, 3, 1, 2, 3, 1]),
])
def test_padding_modes_by_hand(mode, padded):
    # a single-tap identity kernel returns the padded input itself
    x = np.array([[1, 2, 3]])
    assert conv(x, np.ones((1, 1, 1), dtype=int), padding=[(2, 1)], padding_mode=mode).tolist() \
        == [padded]
    assert pad(x, [(2, 1)], mode).tolist() == [padded]


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_pad_adjoint_is_the_adjoint_of_pad(mode):
    rng = np.random.default_rng(2)
    x = rng.integers(-5, 5, (2, 4, 5))
    padding = [(2, 1), (0, 3)]
    g = rng.integers(-5, 5, pad(x, padding, mode).shape)
    assert np.vdot(pad(x, padding, mode), g) == np.vdot(x, pad_adjoint(g, padding, mode))


def test_asymmetric_padding_pairs_crop_the_full_scatter():
    y, w = np.array([[1, 2, 3]]), np.array([[[1, 10]]])
    full = conv_transpose(y, w)[0].tolist()
    assert full == [1, 12, 23, 30]
    assert conv_transpose(y, w, padding=[(1, 0)])[0].tolist() == full[1:]
    assert conv_transpose(y, w, padding=[(0, 2)])[0].tolist() == full[:2]
    assert conv_transpose(y, w, padding=1)[0].tolist() == full[1:-1]


def test_output_padding_beyond_the_scatter_is_zeros():
    y, w = np.array([[1, 2]]), np.array([[[1, 1]]])
    assert conv_transpose(y, w)[0].tolist() == [1, 3, 2]
    assert conv_transpose(y, w, output_padding=2)[0].tolist() == [1, 3, 2, 0, 0]
    # with padding, output_padding first re-exposes the cropped tail, then adds zeros
    assert conv_transpose(y, w, padding=1, output_padding=1)[0].tolist() == [3, 2]
    assert conv_transpose(y, w, padding=1, output_padding=2)[0].tolist() == [3, 2, 0]


def test_groups_are_independent_convolutions():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((6, 5, 4)), rng.standard_normal((4, 3, 2, 3))
    blocks = [conv(x[3 * g:3 * g + 3], w[2 * g:2 * g + 2], padding=1) for g in range(2)]
    np.testing.assert_allclose(conv(x, w, padding=1, groups=2), np.concatenate(blocks))
    wt = rng.standard_normal((6, 2, 2, 3))
    blocks = [conv_transpose(x[3 * g:3 * g + 3], wt[3 * g:3 * g + 3], stride=2) for g in range(2)]
    np.testing.assert_allclose(conv_transpose(x, wt, stride=2, groups=2), np.concatenate(blocks))


def test_dtypes_follow_result_type():
    x, w = np.ones((1, 4), dtype=np.float32), np.ones((1, 1, 2), dtype=np.float32)
    assert conv(x, w).dtype == np.float32
    assert conv(x, w.astype(np.float64)).dtype == np.float64
    assert conv_transpose(x.astype(np.int16), w.astype(np.int64)).dtype == np.int64


def test_complex_inputs_are_linear():
    rng = np.random.default_rng(4)
    xr, xi = rng.standard_normal((2, 2, 6, 5))
    w = rng.standard_normal((3, 2, 2, 2)) + 1j * rng.standard_normal((3, 2, 2, 2))
    geometry: dict[str, Any] = {"stride": (2, 1), "padding": 1, "dilation": (1, 2)}
    got = conv(xr + 1j * xi, w, **geometry)
    assert got.dtype == np.complex128
    np.testing.assert_allclose(got, conv(xr, w, **geometry) + 1j * conv(xi, w, **geometry))


def test_three_spatial_axes_with_a_delta_kernel_shift():
    x = np.arange(3 * 4 * 5, dtype=float).reshape(1, 3, 4, 5)
    w = np.zeros((1, 1, 2, 2, 2))
    w[0, 0, 1, 0, 1] = 1.0  # reads x[j + (1, 0, 1)]
    np.testing.assert_array_equal(conv(x, w), x[:, 1:, :-1, 1:])


# ------------------------------------------------------------------ adjoint property


@st.composite
def _geometries(draw: st.DrawFn) -> dict[str, Any]:
    ndim = draw(st.integers(1, 2))
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 3)) for _ in range(ndim)]
    stride = [draw(st.integers(1, 3)) for _ in range(ndim)]
    dilation = [draw(st.integers(1, 2)) for _ in range(ndim)]
    pairs = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(ndim)]
    # an input at least as long as the dilated kernel once padded
    size = [max(1, d * (k - 1) + 1 - b - a) + draw(st.integers(0, 4))
            for k, d, (b, a) in zip(kernel, dilation, pairs, strict=True)]
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    if mode == "reflect":  # torch's limit, kept so the geometry stays torch-like
        size = [max(n, b + 1, a + 1) for n, (b, a) in zip(size, pairs, strict=True)]
    return {"ndim": ndim, "groups": groups, "c_in": c_in, "c_out": c_out, "kernel": kernel,
            "stride": stride, "dilation": dilation, "pairs": pairs, "size": size, "mode": mode,
            "seed": draw(st.integers(0, 2**16))}


@settings(max_examples=60, deadline=None)
@given(_geometries())
def test_conv_transpose_is_the_exact_adjoint_of_conv(geo):
    """``<conv(x), g> == <x, convᵀ(g)>`` in exact integers, with (before, after) padding."""
    rng = np.random.default_rng(geo["seed"])
    x = rng.integers(-4, 5, (geo["c_in"], *geo["size"]))
    w = rng.integers(-4, 5, (geo["c_out"], geo["c_in"] // geo["groups"], *geo["kernel"]))
    y = conv(x, w, stride=geo["stride"], padding=geo["pairs"], dilation=geo["dilation"],
             groups=geo["groups"], padding_mode=geo["mode"])
    g = rng.integers(-4, 5, y.shape)
    # the transposed layer maps C_out channels back to C_in: its (C_in', C_out'/g, *k) weight
    # layout is the convolution's (C_out, C_in/g, *k) array as it stands
    padded = [n + b + a for n, (b, a) in zip(geo["size"], geo["pairs"], strict=True)]
    covered = [(m - 1) * s + d * (k - 1) + 1 for m, s, d, k in
               zip(y.shape[1:], geo["stride"], geo["dilation"], geo["kernel"], strict=True)]
    common: dict[str, Any] = {
        "stride": geo["stride"], "dilation": geo["dilation"], "groups": geo["groups"],
        "output_padding": [p - c for p, c in zip(padded, covered, strict=True)]}
    if geo["mode"] == "zeros":
        back = conv_transpose(g, w, padding=geo["pairs"], **common)
    else:
        back = pad_adjoint(conv_transpose(g, w, **common), geo["pairs"], geo["mode"])
    assert back.shape == x.shape
    assert np.vdot(y, g) == np.vdot(x, back)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(("call", "match"), [
    (lambda: conv(np.ones((3, 4)), np.ones((1, 2, 2))), r"`weight`.*needs 2 input channels"),
    (lambda: conv(np.ones((4, 4)), np.ones((3, 2, 2)), groups=2), r"`groups` \(=2\).*C_out"),
    (lambda: conv(np.ones((3, 4)), np.ones((2, 1, 2)), groups=2), r"`groups` \(=2\).*C_in"),
    (lambda: conv(np.ones((1, 4)), np.ones((1, 1, 2)), groups=0), r"`groups` \(=0\)"),
    (lambda: conv(np.ones((1, 4)), np.ones((1, 1, 2)), stride=0), r"`stride` \(=0\).*positive"),
    (lambda: conv(np.ones((1, 4, 4)), np.ones((1, 1, 2, 2)), dilation=(1, -1)),
     r"`dilation` \(=\(1, -1\)\)"),
    (lambda: conv(np.ones((1, 4, 4)), np.ones((1, 1, 2, 2)), stride=(1, 1, 1)),
     r"`stride`.*2 ints"),
    (lambda: conv(np.ones((1, 4)), np.ones((1, 1, 2)), stride=1.5),  # type: ignore[arg-type]
     r"`stride` \(=1.5\)"),
    (lambda: conv(np.ones((1, 4)), np.ones((1, 1, 2)), padding=-1),
     r"`padding` \(=-1\).*non-negative"),
    (lambda: conv(np.ones((1, 4)), np.ones((1, 1, 2)), padding=[(1, -1)]), r"`padding`"),
    (lambda: conv(np.ones((1, 4)), np.ones((1, 1, 2)), padding="full"),
     r"`padding` \(='full'\)"),
    (lambda: conv(np.ones((1, 4)), np.ones((1, 1, 2)), padding="same", stride=2),
     r"`padding`='same' needs stride 1"),
    (lambda: conv(np.ones((1, 4)), np.ones((1, 1, 2)), padding_mode="mirror"),
     r"`padding_mode` \(='mirror'\)"),
    (lambda: conv(np.ones((1, 2)), np.ones((1, 1, 3))), r"empty output"),
    (lambda: conv(np.ones((1, 2)), np.ones((1, 1, 2)), dilation=2), r"empty output"),
    (lambda: conv(np.ones(4), np.ones((1, 1, 2))), r"`x` \(shape \(4,\)\)"),
    (lambda: conv(np.ones((1, 4)), np.ones((1, 2))), r"`weight` \(shape \(1, 2\)\)"),
    (lambda: conv_transpose(np.ones((2, 4)), np.ones((3, 1, 2))), r"`weight`.*`y` has 2"),
    (lambda: conv_transpose(np.ones((3, 4)), np.ones((3, 1, 2)), groups=2),
     r"`groups` \(=2\).*C_in \(=3\)"),
    (lambda: conv_transpose(np.ones((1, 4)), np.ones((1, 1, 2)), stride=0), r"`stride` \(=0\)"),
    (lambda: conv_transpose(np.ones((1, 4)), np.ones((1, 1, 2)), output_padding=-1),
     r"`output_padding` \(=-1\)"),
    (lambda: conv_transpose(np.ones((1, 4)), np.ones((1, 1, 2)), padding="same"),
     r"`padding` \(='same'\)"),
    (lambda: conv_transpose(np.ones((1, 2)), np.ones((1, 1, 2)), padding=2),
     r"empty output"),
])
def test_errors_name_the_parameter(call, match):
    with pytest.raises(ConvMatrixError, match=match):
        call()


def test_errors_are_value_errors():
    with pytest.raises(ValueError, match="stride"):
        conv(np.ones((1, 4)), np.ones((1, 1, 2)), stride=-1)


# ------------------------------------------------------------------ the adjoint of conv


def _dense_jacobian(shape: tuple[int, ...], weight: np.ndarray, **geometry: Any) -> np.ndarray:
    """Columns of ``conv`` applied to unit vectors: the convolution as a dense matrix."""
    size = int(np.prod(shape))
    columns = [conv(np.eye(size)[i].reshape(shape), weight, **geometry).ravel()
               for i in range(size)]
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize(("shape", "wshape", "geometry"), [
    ((2, 5), (4, 1, 3), {"stride": 2, "padding": ((2, 1),), "groups": 2}),
    ((1, 4, 3), (2, 1, 2, 2), {"padding": 1, "dilation": (2, 1)}),
    ((3, 4), (3, 3, 2), {"padding": "same"}),
])
def test_conv_adjoint_is_the_transposed_jacobian(mode, shape, wshape, geometry):
    from convmatrix.reference import conv_adjoint
    seed = sum(shape) * 31 + sum(wshape) + len(mode)
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal(wshape)
    jacobian = _dense_jacobian(shape, weight, padding_mode=mode, **geometry)
    out_shape = conv(np.zeros(shape), weight, padding_mode=mode, **geometry).shape
    y = rng.standard_normal(out_shape)
    adjoint = conv_adjoint(y, weight, shape, padding_mode=mode, **geometry)
    assert adjoint.shape == shape
    np.testing.assert_allclose(adjoint.ravel(), jacobian.T @ y.ravel(), rtol=1e-12, atol=1e-12)


def test_conv_adjoint_refuses_too_many_outputs():
    from convmatrix.reference import conv_adjoint
    with pytest.raises(ConvMatrixError, match=r"`y` \(shape \(1, 4\)\) has more outputs"):
        conv_adjoint(np.ones((1, 4)), np.ones((1, 1, 2)), (1, 4))
