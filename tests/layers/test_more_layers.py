"""AvgPool, Upsample, Pad, PixelShuffle/Unshuffle, BatchNorm and Identity layers against live
torch: the forward (``layer(x)`` and ``M x + b``) and the input gradient (``layer.T(g)``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng
from tests.helpers import seed as seed_of

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _seed(*key: object) -> None:
    torch.manual_seed(seed_of(*key))


def _against_torch(layer: cm.Layer, forward: Callable[[Any], Any], *key: object) -> None:
    """layer(x), M x + b and layer.T(g) against torch's forward and autograd input gradient."""
    _seed("data", *key)
    x = torch.randn(1, *layer.input_shape, dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        y = forward(x)
    assert tuple(y.shape[1:]) == layer.output_shape
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    xn, yn = x.detach().numpy()[0], y.detach().numpy()[0]
    np.testing.assert_allclose(layer(xn), yn, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.matrix() @ xn.ravel() + layer.offset(), yn.ravel(),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.T(g.numpy()[0]), grad.numpy()[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.T.matrix().toarray(), layer.matrix().T.toarray())
    assert "\n" not in repr(layer)


# --- AvgPool ---------------------------------------------------------------------------------

POOL_CASES = [
    # (input_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    ((2, 7), 3, 2, 1, False, True, None),
    ((2, 7), 3, 2, 1, True, True, None),
    ((2, 7), 3, 2, 1, True, False, None),
    ((1, 5), 2, None, 0, True, True, None),  # ceil_mode adds a partial last window
    ((1, 6), 4, 3, 2, True, True, None),  # ceil_mode window would start in the right pad: dropped
    ((1, 4), 3, 3, 1, True, True, None),
    ((1, 4), 3, 3, 1, True, False, None),
    ((3, 5, 6), (3, 2), (2, 1), (1, 0), False, False, None),
    ((3, 5, 6), 3, 2, 1, True, True, None),
    ((3, 5, 6), 3, 2, 1, True, False, None),
    ((2, 7, 4), 2, 3, 1, True, True, 3),
    ((1, 9, 9), 4, 4, 2, True, False, -2),
    ((2, 5, 4, 6), (3, 2, 4), (2, 2, 3), (1, 1, 2), True, True, None),
    ((2, 5, 4, 6), 3, 2, 1, True, False, None),
    ((1, 4, 5, 4), 2, 1, 0, False, True, 5),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=repr)
def test_avg_pool_matches_torch(case):
    shape, kernel, stride, padding, ceil_mode, include, divisor = case
    layer = cm.AvgPool(shape, kernel, stride, padding, ceil_mode, include, divisor)
    ndim = len(shape) - 1
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[ndim]
    kwargs: dict[str, Any] = {"kernel_size": kernel, "stride": stride, "padding": padding,
                              "ceil_mode": ceil_mode, "count_include_pad": include}
    if divisor is not None:
        kwargs["divisor_override"] = divisor
    _against_torch(layer, lambda x: pool(x, **kwargs), case)


def test_avg_pool_ceil_mode_rule_against_torch_exhaustively():
    # every 1-D geometry up to n = 8: the output length and the divisors of the last window
    for n in range(1, 9):
        for k in range(1, n + 1):
            for s in range(1, 4):
                for p in range(k // 2 + 1):
                    for include in (True, False):
                        layer = cm.AvgPool((1, n), k, s, p, True, include)
                        x = torch.arange(1.0, n + 1, dtype=torch.float64).reshape(1, 1, n)
                        y = F.avg_pool1d(x, k, s, p, ceil_mode=True, count_include_pad=include)
                        np.testing.assert_allclose(layer(x.numpy()[0]), y.numpy()[0],
                                                   rtol=1e-12, err_msg=f"{n, k, s, p}")


# --- Upsample --------------------------------------------------------------------------------

UPSAMPLE_CASES = [
    ((2, 5), {"scale_factor": 2, "mode": "nearest"}),
    ((2, 5), {"scale_factor": 1.7, "mode": "nearest"}),
    ((1, 7, 7), {"scale_factor": 1.1, "mode": "nearest"}),  # 2-D kernel: copies
    ((1, 7, 7), {"scale_factor": 2.0001, "mode": "nearest"}),  # 2-D kernel: halves
    ((2, 3, 5), {"size": (7, 4), "mode": "nearest"}),
    ((2, 3, 4, 5), {"scale_factor": (2, 1.5, 0.6), "mode": "nearest"}),
    ((2, 7), {"scale_factor": 1.1, "mode": "nearest-exact"}),
    ((1, 5, 3), {"size": (9, 7), "mode": "nearest-exact"}),
    ((1, 3, 2, 3), {"scale_factor": 2.5, "mode": "nearest-exact"}),
    ((2, 5), {"scale_factor": 2.5, "mode": "linear", "align_corners": False}),
    ((2, 5), {"scale_factor": 2.5, "mode": "linear", "align_corners": True}),
    ((2, 5), {"size": 3, "mode": "linear", "align_corners": False}),
    ((2, 5), {"scale_factor": 1.1, "mode": "linear", "align_corners": False}),
    ((2, 1), {"size": 4, "mode": "linear", "align_corners": True}),
    ((1, 4, 3), {"scale_factor": (1.7, 3), "mode": "bilinear", "align_corners": False}),
    ((1, 4, 3), {"scale_factor": (1.7, 3), "mode": "bilinear", "align_corners": False,
                 "recompute_scale_factor": True}),
    ((1, 4, 3), {"size": (9, 1), "mode": "bilinear", "align_corners": True}),
    ((2, 5, 6), {"scale_factor": 0.7, "mode": "bilinear", "align_corners": False}),
    ((1, 4, 5), {"scale_factor": 2, "mode": "bicubic", "align_corners": False}),
    ((1, 4, 5), {"scale_factor": 2, "mode": "bicubic", "align_corners": True}),
    ((1, 3, 2), {"size": (8, 7), "mode": "bicubic", "align_corners": False}),
    ((1, 7, 6), {"scale_factor": 0.6, "mode": "bicubic", "align_corners": False}),
    ((1, 2, 3, 4), {"scale_factor": 1.5, "mode": "trilinear", "align_corners": False}),
    ((1, 2, 3, 4), {"size": (3, 5, 2), "mode": "trilinear", "align_corners": True}),
]


@pytest.mark.parametrize(("shape", "kwargs"), UPSAMPLE_CASES, ids=repr)
def test_upsample_matches_torch_interpolate(shape, kwargs):
    layer = cm.Upsample(shape, **kwargs)
    _against_torch(layer, lambda x: F.interpolate(x, **kwargs), shape, kwargs)


@pytest.mark.parametrize(("shape", "scale"), [((2, 7), 1.1), ((1, 7), 2.0001),
                                             ((1, 3, 2, 5), 1.1)])
def test_upsample_nearest_1d_3d_uses_the_scale_where_torch_backward_does_not(shape, scale):
    # torch 2.13's 1-D/3-D nearest forward maps output i to ⌊i/scale⌋ even when the size is
    # unchanged (or doubled), but its backward takes the copy/halve shortcut there: autograd's
    # input gradient is not the adjoint of the forward. The layer's adjoint is checked against
    # the transposed Jacobian of torch's own forward (probed with unit vectors) instead.
    layer = cm.Upsample(shape, scale_factor=scale, mode="nearest")
    size = int(np.prod(shape))
    eye = torch.eye(size, dtype=torch.float64).reshape(size, *shape)
    jacobian = F.interpolate(eye, scale_factor=scale, mode="nearest").reshape(size, -1).T
    x = rng("nearest-probe", shape).standard_normal(shape)
    np.testing.assert_array_equal(layer(x).ravel(), jacobian.numpy() @ x.ravel())
    g = rng("nearest-probe-g", shape).standard_normal(layer.output_shape)
    np.testing.assert_allclose(layer.T(g).ravel(), jacobian.numpy().T @ g.ravel(), rtol=1e-13)
    xt = torch.from_numpy(x[None]).requires_grad_()
    (grad,) = torch.autograd.grad(F.interpolate(xt, scale_factor=scale, mode="nearest"), xt,
                                  torch.from_numpy(g[None]))
    assert not np.allclose(grad.numpy()[0], layer.T(g))  # torch's backward differs


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "linear", "bicubic"])
def test_upsample_sweep_of_sizes_and_scales(mode):
    # many output sizes and scale factors per mode (1-D, or 2-D for bicubic)
    corners = (None,) if mode.startswith("nearest") else (False, True)
    for n in (1, 2, 3, 5):
        for scale in (0.5, 0.7, 1.0, 1.1, 1 / 3, 1.5, 2.0, 2.0001, 3.3):
            if int(n * scale) < 1:
                continue
            for align in corners:
                shape = (1, n) if mode != "bicubic" else (1, n, 4)
                kwargs = {"scale_factor": scale, "mode": mode, "align_corners": align}
                layer = cm.Upsample(shape, **kwargs)
                x = torch.from_numpy(rng(mode, n, scale).standard_normal((1, *shape)))
                expected = F.interpolate(x, **kwargs).numpy()[0]
                np.testing.assert_allclose(layer(x.numpy()[0]), expected, rtol=1e-12,
                                           atol=1e-12, err_msg=f"{n, scale, align}")


# --- Pad -------------------------------------------------------------------------------------

PAD_CASES = [
    ((2, 5), (2, 1), "constant", 0.0),
    ((2, 5), (2, -1), "constant", 1.5),
    ((2, 5), (-2, -1), "constant", 0.0),
    ((2, 4, 5), (1, 2, 0, 3), "constant", -0.5),
    ((2, 4, 5), (1, 1, 1, 1, 1, 0), "constant", 2.0),  # the channel axis too
    ((2, 5), (4, 3), "reflect", 0.0),
    ((2, 4, 5), (1, 2, 3, 0), "reflect", 0.0),
    ((1, 3, 4, 5), (1, 1, 2, 0, 2, 1), "reflect", 0.0),
    ((2, 3), (5, 2), "replicate", 0.0),
    ((2, 4, 5), (2, 0, 1, 3), "replicate", 0.0),
    ((1, 3, 2, 4), (1, 2, 1, 1, 0, 2), "replicate", 0.0),
    ((2, 5), (5, 2), "circular", 0.0),
    ((2, 4, 5), (1, 3, 4, 0), "circular", 0.0),
    ((1, 3, 2, 4), (2, 1, 1, 1, 3, 0), "circular", 0.0),
    ((2, 4, 5), (-1, 2, 1, -2), "circular", 0.0),
    ((2, 4, 5), (-1, 2, 1, -2), "replicate", 0.0),
    ((2, 4, 5), (-1, 2, 1, -2), "reflect", 0.0),
    ((1, 5), (-3, 4), "reflect", 0.0),  # reflect and replicate pad the whole axis, then crop
    ((1, 2), (-2, 1), "replicate", 0.0),
    ((1, 5), (3, -2), "circular", 0.0),  # circular crops, then wraps what is left
]


@pytest.mark.parametrize("case", PAD_CASES, ids=repr)
def test_pad_matches_torch_f_pad(case):
    shape, pad, mode, value = case
    layer = cm.Pad(shape, pad, mode=mode, value=value)
    kwargs: dict[str, Any] = {"mode": mode}
    if mode == "constant":
        kwargs["value"] = value
    _against_torch(layer, lambda x: F.pad(x, pad, **kwargs), case)


# --- PixelShuffle, BatchNorm, Identity -------------------------------------------------------


@pytest.mark.parametrize(("shape", "r"), [((4, 3, 5), 2), ((18, 2, 1), 3), ((3, 2, 2), 1)])
def test_pixel_shuffle_and_unshuffle_match_torch(shape, r):
    shuffle = cm.PixelShuffle(shape, r)
    _against_torch(shuffle, lambda x: F.pixel_shuffle(x, r), "shuffle", shape)
    unshuffle = cm.PixelUnshuffle(shuffle.output_shape, r)
    _against_torch(unshuffle, lambda x: F.pixel_unshuffle(x, r), "unshuffle", shape)
    assert isinstance(shuffle.T, cm.PixelUnshuffle) and shuffle.T.T is shuffle
    product = (unshuffle.matrix() @ shuffle.matrix()).toarray()
    np.testing.assert_array_equal(product, np.eye(product.shape[0]))


@pytest.mark.parametrize(("kind", "shape"), [
    ("BatchNorm1d", (3,)), ("BatchNorm1d", (3, 5)), ("BatchNorm2d", (4, 3, 2)),
    ("BatchNorm3d", (2, 2, 3, 2)),
])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_in_eval_mode_matches_torch(kind, shape, affine):
    _seed("bn", kind, shape, affine)
    module = getattr(torch.nn, kind)(shape[0], affine=affine, eps=1e-3).double()
    with torch.no_grad():
        module.running_mean.copy_(torch.randn(shape[0]))
        module.running_var.copy_(torch.rand(shape[0]) + 0.5)
        if affine:
            module.weight.copy_(torch.randn(shape[0]))
            module.bias.copy_(torch.randn(shape[0]))
    module.eval()
    layer = cm.from_torch(module, shape)
    assert isinstance(layer, cm.BatchNorm)
    _against_torch(layer, module, kind, shape, affine)
    module.train()
    with pytest.raises(cm.ConvMatrixError, match=r"training mode.*\.eval\(\)"):
        cm.from_torch(module, shape)


def test_identity_and_eval_dropout_are_identity_layers():
    nn = torch.nn
    for module in (nn.Identity(), nn.Dropout(0.3).eval(), nn.Dropout2d(0.5).eval()):
        layer = cm.from_torch(module, (2, 3, 3))
        _against_torch(layer, module, type(module).__name__)
    with pytest.raises(cm.ConvMatrixError, match=r"Dropout\) is in training mode"):
        cm.from_torch(nn.Dropout(0.3), (2, 3))


# --- from_torch on single modules --------------------------------------------------------------


def _modules() -> list[tuple[Any, tuple[int, ...]]]:
    nn = torch.nn
    return [
        (nn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 8)),
        (nn.AvgPool2d((2, 3), (1, 2), (1, 1), divisor_override=2), (2, 5, 6)),
        (nn.AvgPool3d(2, ceil_mode=True), (1, 3, 5, 4)),
        (nn.Upsample(scale_factor=2, mode="nearest"), (2, 3, 4)),
        (nn.Upsample(size=(5, 7), mode="bicubic", align_corners=True), (1, 3, 4)),
        (nn.Upsample(scale_factor=1.5, mode="trilinear"), (1, 2, 3, 2)),
        (nn.UpsamplingBilinear2d(scale_factor=2), (2, 3, 3)),
        (nn.UpsamplingNearest2d(size=5), (1, 2, 3)),
        (nn.PixelShuffle(2), (8, 2, 3)),
        (nn.PixelUnshuffle(2), (2, 4, 6)),
        (nn.ZeroPad2d((1, 0, 2, 1)), (2, 3, 3)),
        (nn.ConstantPad1d((2, -1), 0.25), (2, 4)),
        (nn.ReflectionPad2d(1), (1, 3, 4)),
        (nn.ReplicationPad3d((1, 0, 0, 2, 1, 1)), (1, 2, 3, 2)),
        (nn.CircularPad1d(2), (3, 4)),
    ]


@pytest.mark.parametrize("index", range(15))
def test_from_torch_reads_each_module_kind(index):
    module, shape = _modules()[index]
    layer = cm.from_torch(module, shape)
    _against_torch(layer, module.double(), "module", index)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "match"), [
    (lambda: cm.AvgPool((1, 5), 4, padding=3), "`padding` .* at most half the kernel"),
    (lambda: cm.AvgPool((1, 2), 5), "larger than the padded input"),
    (lambda: cm.AvgPool((1, 2, 5, 5), 3), "avg_pool3d refuses"),
    (lambda: cm.AvgPool((1, 5), 2, divisor_override=0), "`divisor_override` .*non-zero"),
    (lambda: cm.AvgPool((1, 5), 2, ceil_mode=1), "`ceil_mode`"),
    (lambda: cm.AvgPool((5,), 2), r"`input_shape` \(=\(5,\)\) must be \(C, \*spatial\)"),
    (lambda: cm.Upsample((1, 4), scale_factor=2, mode="bilinear"), "needs 2 spatial axes"),
    (lambda: cm.Upsample((1, 4), scale_factor=2, mode="area"), "`mode` .*'area'"),
    (lambda: cm.Upsample((1, 4), scale_factor=2, align_corners=True),
     "`align_corners` .* only to the interpolating"),
    (lambda: cm.Upsample((1, 4)), "exactly one of `size` and `scale_factor`"),
    (lambda: cm.Upsample((1, 4), scale_factor=0.1), "empty output"),
    (lambda: cm.Upsample((1, 4), scale_factor=-1), "must be positive"),
    (lambda: cm.Pad((1, 4), (1,)), "`pad` .* even number"),
    (lambda: cm.Pad((1, 4), (1, 1, 1, 1), mode="reflect"), "spatial only"),
    (lambda: cm.Pad((1, 4), (4, 0), mode="reflect"), "smaller than the axis"),
    (lambda: cm.Pad((1, 4), (5, 0), mode="circular"), "at most the axis size"),
    (lambda: cm.Pad((1, 4), (-2, -2)), "nothing left"),
    (lambda: cm.Pad((1, 4), (1, 1), mode="wrap"), "`mode` .*'circular'"),
    (lambda: cm.Pad((1, 4), (1, 1), mode="reflect", value=1), "`value`"),
    (lambda: cm.PixelShuffle((3, 2, 2), 2), "divisible by `upscale_factor`"),
    (lambda: cm.PixelUnshuffle((1, 3, 2), 2), "divisible by `downscale_factor`"),
    (lambda: cm.PixelShuffle((4, 2), 2), "2 spatial axes"),
    (lambda: cm.BatchNorm((2, 3), [0.0], [1.0]), r"`running_mean` has shape \(1,\)"),
    (lambda: cm.BatchNorm((2, 3), [0, 0], [-1, 1], eps=0.0), "must be positive"),
])
def test_bad_input_is_refused_with_the_parameter_named(call, match):
    with pytest.raises(cm.ConvMatrixError, match=match):
        call()


def test_batch_norm_without_running_stats_is_refused():
    module = torch.nn.BatchNorm2d(2, track_running_stats=False).eval()
    with pytest.raises(cm.ConvMatrixError, match="no running statistics"):
        cm.from_torch(module, (2, 3, 3))
