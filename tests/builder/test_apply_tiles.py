"""The tiled im2col / col2im kernels (builder/apply.py) against live torch and the dense reference.

Every geometry runs with the default tiles and with tiles of a single output row (so tile
boundaries, halos and the padded rows of edge tiles are crossed), in both batch layouts (samples
contiguous, and interleaved like an operator's columns).
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import tracemalloc
import zlib

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import reference
from convmatrix.builder import apply

torch = pytest.importorskip("torch")
F = torch.nn.functional

MODES = ("zeros", "reflect", "replicate", "circular")

# (weight shape, input shape, stride, padding, dilation, groups)
GEOMETRIES = [
    ((4, 3, 3, 3), (3, 9, 8), 1, 1, 1, 1),
    ((6, 2, 3, 2), (4, 11, 7), (2, 1), (2, 1), (1, 2), 2),
    ((5, 1, 7, 7), (1, 16, 13), 2, 3, 1, 1),  # stem-like: few channels, big kernel, stride 2
    ((4, 1, 3, 3), (4, 10, 9), 1, 1, 1, 4),  # depthwise
    ((8, 1, 3, 3), (4, 10, 9), 2, 1, 1, 4),  # depthwise, channel multiplier 2, stride 2
    ((3, 2, 3), (2, 17), 2, 2, 2, 1),  # 1-D, dilated, strided
    ((4, 2, 3, 3, 3), (2, 7, 9, 8), 1, 2, 2, 1),  # 3-D dilated
    ((2, 3, 2, 3, 2), (3, 6, 7, 5), (2, 1, 3), (1, 2, 1), 1, 1),  # 3-D mixed strides
    ((3, 1, 1, 1), (1, 9, 9), 3, 1, 1, 1),  # stride above the kernel: gaps between tiles
    ((2, 5, 3, 3), (5, 12, 8), 1, 1, 1, 1),  # fewer outputs than inputs (adjoint buffers)
    ((1, 1, 7, 7), (1, 16, 13), 1, 3, 1, 1),  # one channel, 'same': channel-wise taps
    ((3, 1, 3, 3, 2), (3, 5, 8, 6), 1, (2, 1, 1), 2, 3),  # 3-D depthwise, dilated
    ((2, 1, 5), (2, 19), 1, 4, 1, 2),  # 1-D depthwise, padding above the kernel's reach
    ((12, 1, 3, 3), (6, 11, 9), 2, 1, 1, 6),  # strided, more groups than FLAT_GROUPS
    ((20, 2, 3, 3), (2, 10, 9), 2, 1, 1, 1),  # strided, C_out ≫ C_in: one product of all taps
]


def _geometry_id(geometry) -> str:
    weight, shape, stride, padding, dilation, groups = geometry
    kernel = "x".join(map(str, weight))
    return f"{len(shape) - 1}d-w{kernel}-s{stride}-p{padding}-d{dilation}-g{groups}"


def _torch_pad(padding, ndim: int) -> tuple[int, ...]:
    pads = (padding,) * ndim if isinstance(padding, int) else tuple(padding)
    return tuple(p for pair in reversed(pads) for p in (pair, pair))


def _torch_forward(x, weight, stride, padding, dilation, groups, mode):
    """torch ``convNd`` with the padding mode applied by ``F.pad`` first."""
    ndim = weight.ndim - 2
    conv = getattr(F, f"conv{ndim}d")
    if mode == "zeros":
        return conv(x, weight, stride=stride, padding=padding, dilation=dilation, groups=groups)
    padded = F.pad(x, _torch_pad(padding, ndim), mode=mode)
    return conv(padded, weight, stride=stride, dilation=dilation, groups=groups)


def _torch_pair(weight, x, y, stride, padding, dilation, groups, mode):
    """``C x`` and ``Cᵀ y`` from torch: the forward and autograd's vector-Jacobian product."""
    tw = torch.from_numpy(weight)
    tx = torch.from_numpy(x).requires_grad_(True)
    out = _torch_forward(tx, tw, stride, padding, dilation, groups, mode)
    (grad,) = torch.autograd.grad(out, tx, torch.from_numpy(y))
    return out.detach().numpy(), grad.numpy()


def _interleaved(batch: np.ndarray) -> np.ndarray:
    """The same batch with its samples interleaved in memory (an operator's columns)."""
    return np.moveaxis(np.ascontiguousarray(np.moveaxis(batch, 0, -1)), -1, 0)


@pytest.fixture(params=["default", "one-row", "col2im", "one-sample", "tile-padding",
                        "small-tiles", "no-taps", "shifted", "no-shift", "phases",
                        "flat-one-row", "flat-few-rows", "flat-product", "flat-blas-copies"])
def tiles(request, monkeypatch):
    """Default tiles; tiles of one output row and one group (nothing padded whole); the
    adjoint always by col2im (never as the flipped convolution it is for stride 1, nor
    through the padded input, and strided windows added in place, not split by phases);
    padded inputs one sample at a time, tiles of one group; the forward padding each tile's
    rows itself; tiles of a few rows within samples padded whole (scratch buffers of nested
    kernels must not overlap) and channel-wise taps added in runs of a few values; channel-wise
    layers by column matrices like any other; the last kernel axis by shifted sums wherever
    possible (in tiles of a few rows), and never; every strided adjoint by phases (one
    stride-1 convolution each, whatever the channels), and by flat col2im in tiles of one
    output row and of a few rows, with one product of every tap (never added inside BLAS),
    and with a BLAS that hands back a copy of the run it should have added to."""
    if request.param == "one-row":
        monkeypatch.setattr(apply, "TILE_BYTES", 1)
        monkeypatch.setattr(apply, "WORKSPACE_BYTES", 1)
        monkeypatch.setattr(apply, "GROUP_TILE_BYTES", 1)
    if request.param == "col2im":
        monkeypatch.setattr(apply, "_ADJOINT_AS_CONVOLUTION", False)
        monkeypatch.setattr(apply, "_PHASE_SPLIT", False)
        monkeypatch.setattr(apply, "_STRIDED_ADJOINT", "windows")
    if request.param == "one-sample":
        monkeypatch.setattr(apply, "_padded_chunk", lambda batch, per_sample: 1)
        monkeypatch.setattr(apply, "GROUP_TILE_BYTES", 1)
    if request.param == "tile-padding":
        monkeypatch.setattr(apply, "_PAD_FIRST", False)
    if request.param == "small-tiles":
        monkeypatch.setattr(apply, "TILE_BYTES", 2048)
        monkeypatch.setattr(apply, "TAP_CHUNK_BYTES", 40)
    if request.param == "no-taps":
        monkeypatch.setattr(apply, "_TAPS", False)
    if request.param == "shifted":
        monkeypatch.setattr(apply, "SHIFT_GAIN", 1e-9)
        monkeypatch.setattr(apply, "_TAPS", False)
        monkeypatch.setattr(apply, "TILE_BYTES", 4096)
    if request.param == "no-shift":
        monkeypatch.setattr(apply, "SHIFT_GAIN", math.inf)
    if request.param == "phases":
        monkeypatch.setattr(apply, "_STRIDED_ADJOINT", "phases")
    if request.param == "flat-one-row":  # one row per tile (the workspace holds more)
        monkeypatch.setattr(apply, "_STRIDED_ADJOINT", "flat")
        monkeypatch.setattr(apply, "TILE_BYTES", 1)
    if request.param == "flat-few-rows":
        monkeypatch.setattr(apply, "_STRIDED_ADJOINT", "flat")
        monkeypatch.setattr(apply, "TILE_BYTES", 4096)
    if request.param == "flat-product":
        monkeypatch.setattr(apply, "_STRIDED_ADJOINT", "flat")
        monkeypatch.setattr(apply, "_accumulating_gemm", lambda spec, dtype: None)
    if request.param == "flat-blas-copies":
        monkeypatch.setattr(apply, "_STRIDED_ADJOINT", "flat")
        monkeypatch.setattr(apply, "ACCUMULATE_RATIO", math.inf)
        chosen = apply._accumulating_gemm

        def copying(spec, dtype):
            gemm = chosen(spec, dtype)
            return None if gemm is None else (
                lambda *args, **options: gemm(*args, **{**options, "overwrite_c": 0}))

        monkeypatch.setattr(apply, "_accumulating_gemm", copying)
    return request.param


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_geometry_id)
def test_tiles_match_torch_and_reference(geometry, mode, tiles):
    weight_shape, input_shape, stride, padding, dilation, groups = geometry
    rng = np.random.default_rng(zlib.crc32(repr((geometry, mode)).encode()))
    weight = rng.standard_normal(weight_shape)
    spec = cm.conv_spec(weight_shape, input_shape, stride=stride, padding=padding,
                        dilation=dilation, groups=groups, padding_mode=mode)
    x = rng.standard_normal((3, *spec.input_shape))
    y = rng.standard_normal((3, *spec.output_shape))
    expected, expected_t = _torch_pair(weight, x, y, stride, padding, dilation, groups, mode)
    for batch_x, batch_y in ((x, y), (_interleaved(x), _interleaved(y))):
        forward = apply.conv_apply(spec, weight, batch_x)
        adjoint = apply.conv_apply_adjoint(spec, weight, batch_y)
        assert forward.shape == expected.shape and adjoint.shape == expected_t.shape
        assert np.linalg.norm(forward - expected) <= 1e-12 * np.linalg.norm(expected)
        assert np.linalg.norm(adjoint - expected_t) <= 1e-12 * np.linalg.norm(expected_t)
    arguments = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
                 "padding_mode": mode}
    dense = reference.conv(x[1], weight, **arguments)
    dense_t = reference.conv_adjoint(y[1], weight, spec.input_shape, **arguments)
    np.testing.assert_allclose(apply.conv_apply(spec, weight, x[1:2])[0], dense,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(apply.conv_apply_adjoint(spec, weight, y[1:2])[0], dense_t,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("geometry", GEOMETRIES[:6], ids=_geometry_id)
def test_integer_results_are_exact(geometry, mode, tiles):
    weight_shape, input_shape, stride, padding, dilation, groups = geometry
    rng = np.random.default_rng(3)
    weight = rng.integers(-9, 10, weight_shape)
    spec = cm.conv_spec(weight_shape, input_shape, stride=stride, padding=padding,
                        dilation=dilation, groups=groups, padding_mode=mode)
    x = rng.integers(-99, 100, (2, *spec.input_shape))
    y = rng.integers(-99, 100, (2, *spec.output_shape))
    arguments = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
                 "padding_mode": mode}
    # the dense reference on Python ints (object arrays): exact by construction
    for b in range(2):
        dense = reference.conv(x[b].astype(object), weight.astype(object), **arguments)
        dense_t = reference.conv_adjoint(y[b].astype(object), weight.astype(object),
                                         spec.input_shape, **arguments)
        forward = apply.conv_apply(spec, weight, x)[b]
        adjoint = apply.conv_apply_adjoint(spec, weight, y)[b]
        assert forward.dtype == np.int64 and adjoint.dtype == np.int64
        assert np.array_equal(forward.astype(object), dense)
        assert np.array_equal(adjoint.astype(object), dense_t)


def test_integer_operator_widens_and_stays_exact():
    weight = np.full((4, 4, 3, 3), 100, dtype=np.int8)
    layer = cm.Conv(weight, (4, 6, 6), padding=1, padding_mode="replicate")
    x = np.full((4 * 36, 3), 100, dtype=np.int8)
    result = layer.operator().matmat(x)
    assert result.dtype == np.int32  # 4·9·100·100 = 360,000 > int16
    dense = np.stack([reference.conv(x[:, j].reshape(4, 6, 6).astype(object),
                                     weight.astype(object), padding=1,
                                     padding_mode="replicate").ravel() for j in range(3)], 1)
    assert np.array_equal(result.astype(object), dense)


@pytest.mark.parametrize("geometry", [GEOMETRIES[0], GEOMETRIES[2], GEOMETRIES[3]],
                         ids=_geometry_id)
def test_float32_layers_stay_float32(geometry, tiles):
    weight_shape, input_shape, stride, padding, dilation, groups = geometry
    rng = np.random.default_rng(5)
    weight = rng.standard_normal(weight_shape).astype(np.float32)
    spec = cm.conv_spec(weight_shape, input_shape, stride=stride, padding=padding,
                        dilation=dilation, groups=groups)
    x = rng.standard_normal((2, *spec.input_shape)).astype(np.float32)
    y = rng.standard_normal((2, *spec.output_shape)).astype(np.float32)
    expected, expected_t = _torch_pair(weight.astype(np.float64), x.astype(np.float64),
                                       y.astype(np.float64), stride, padding, dilation, groups,
                                       "zeros")
    forward = apply.conv_apply(spec, weight, x)
    adjoint = apply.conv_apply_adjoint(spec, weight, y)
    assert forward.dtype == np.float32 and adjoint.dtype == np.float32
    assert np.linalg.norm(forward - expected) <= 1e-5 * np.linalg.norm(expected)
    assert np.linalg.norm(adjoint - expected_t) <= 1e-5 * np.linalg.norm(expected_t)


@pytest.mark.parametrize("mode", MODES)
def test_operator_matmat_matches_columns_and_torch(mode):
    rng = np.random.default_rng(8)
    weight = rng.standard_normal((6, 3, 3, 3))
    layer = cm.Conv(weight, (3, 12, 10), stride=(1, 2), padding=1, padding_mode=mode)
    op = layer.operator()
    X = rng.standard_normal((op.shape[1], 5))
    Y = rng.standard_normal((op.shape[0], 5))
    product, product_t = op.matmat(X), op.rmatmat(Y)
    columns = np.stack([op.matvec(X[:, j]) for j in range(5)], 1)
    columns_t = np.stack([op.rmatvec(Y[:, j]) for j in range(5)], 1)
    np.testing.assert_allclose(product, columns, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(product_t, columns_t, rtol=1e-12, atol=1e-12)
    batch_x = np.ascontiguousarray(X.T).reshape(5, 3, 12, 10)
    batch_y = np.ascontiguousarray(Y.T).reshape(5, *layer.output_shape)
    expected, expected_t = _torch_pair(weight, batch_x, batch_y, (1, 2), 1, 1, 1, mode)
    np.testing.assert_allclose(product, expected.reshape(5, -1).T, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(product_t, expected_t.reshape(5, -1).T, rtol=1e-11, atol=1e-12)
    # the result is the caller's own array, never a view of X
    assert not np.shares_memory(product, X) and not np.shares_memory(product_t, Y)


@pytest.mark.parametrize("shifted", [False, True])
@pytest.mark.parametrize("direction", ["forward", "adjoint"])
def test_workspace_stays_bounded(direction, shifted, monkeypatch):
    """A 256² 7×7 layer on 4 samples: im2col would be 103 MB; the tiles hold about 1 MiB.

    ``shifted``: a 16 → 4 channel 3×3 layer on 128² (im2col 75 MB), whose forward applies
    its last kernel axis by shifted sums (the single channel takes the channel-wise taps).
    """
    monkeypatch.setattr(apply, "TILE_BYTES", 2**20)
    monkeypatch.setattr(apply, "WORKSPACE_BYTES", 2**20)
    rng = np.random.default_rng(9)
    weight = rng.standard_normal((4, 16, 3, 3) if shifted else (1, 1, 7, 7))
    shape = (16, 128, 128) if shifted else (1, 256, 256)
    spec = cm.conv_spec(weight.shape, shape, padding=(weight.shape[-1] - 1) // 2,
                        padding_mode="reflect")
    assert apply._shift_gain(spec) >= apply.SHIFT_GAIN  # the taps come first for one channel
    forward = direction == "forward"
    batch = rng.standard_normal((4, *(spec.input_shape if forward else spec.output_shape)))
    run = apply.conv_apply if forward else apply.conv_apply_adjoint
    run(spec, weight, batch[:1])  # warm-up (cached geometry)
    tracemalloc.start()
    try:
        out = run(spec, weight, batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (4, *(spec.output_shape if forward else spec.input_shape))
    assert peak <= out.nbytes + 4 * 2**20
    if forward:  # far below the column matrix of every tap
        im2col = 4 * spec.in_channels * math.prod((*spec.kernel_size, *spec.output_size)) * 8
        assert out.nbytes + 4 * 2**20 < im2col / 10


def test_out_writes_into_strided_columns():
    """``out=``: the result lands in the columns of a larger array (any strides, any dtype)."""
    rng = np.random.default_rng(10)
    weight = rng.standard_normal((4, 2, 3, 3))
    spec = cm.conv_spec(weight.shape, (2, 7, 6), padding=1, padding_mode="reflect")
    x = rng.standard_normal((3, *spec.input_shape))
    y = rng.standard_normal((3, *spec.output_shape))
    expected, expected_t = _torch_pair(weight, x, y, 1, 1, 1, 1, "reflect")
    for dtype in (np.float64, np.float32):
        big = np.full((math.prod(spec.output_shape), 5), np.nan, dtype=dtype)
        target = np.reshape(big[:, 1:4].T, (3, *spec.output_shape), copy=False)
        assert apply.conv_apply(spec, weight, x, out=target) is target
        np.testing.assert_allclose(big[:, 1:4].T.reshape(expected.shape), expected,
                                   rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
        assert np.isnan(big[:, [0, 4]]).all()
        big_t = np.full((math.prod(spec.input_shape), 5), np.nan, dtype=dtype)
        target_t = np.reshape(big_t[:, 1:4].T, (3, *spec.input_shape), copy=False)
        apply.conv_apply_adjoint(spec, weight, y, out=target_t)
        np.testing.assert_allclose(big_t[:, 1:4].T.reshape(expected_t.shape), expected_t,
                                   rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    with pytest.raises(cm.ConvMatrixError, match="`out` has shape"):
        apply.conv_apply(spec, weight, x, out=np.empty((3, 4, 7, 5)))


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_complex_operator_is_the_hermitian_adjoint(padding_mode, groups):
    rng = np.random.default_rng(11)
    shape = (3, 2, 3, 3) if groups == 1 else (2, 1, 3, 3)  # groups 2: depthwise, taps
    weight = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    layer = cm.Conv(weight, (2, 6, 5), padding=1, padding_mode=padding_mode, groups=groups)
    op = layer.operator()
    dense = layer.matrix().toarray()
    X = rng.standard_normal((op.shape[1], 4)) + 1j * rng.standard_normal((op.shape[1], 4))
    Y = rng.standard_normal((op.shape[0], 4)) + 1j * rng.standard_normal((op.shape[0], 4))
    np.testing.assert_allclose(op.matmat(X), dense @ X, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.rmatmat(Y), dense.conj().T @ Y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.rmatvec(Y[:, 0]), dense.conj().T @ Y[:, 0], rtol=1e-12,
                               atol=1e-12)


def test_the_blas_limit_reaches_scipys_blas_loaded_after_it():
    """scipy's wheels bundle an OpenBLAS of their own, which the channel-wise and flat
    col2im kernels call (``axpy``, ``gemm``) and import on first use: a limit taken before
    it was loaded must still reach it (before, scipy's BLAS kept its threads: a 1-D
    adjoint's per-tap products ran on two threads, 30 ms against 1 ms beside another busy
    process). In a fresh interpreter, against threadpoolctl's own view of the libraries."""
    pytest.importorskip("threadpoolctl")
    code = textwrap.dedent("""
        import sys
        import threadpoolctl
        from convmatrix.builder import threads
        assert "scipy.linalg._fblas" not in sys.modules
        with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
            with threads.one_blas_thread():
                pass  # the controller, before scipy's BLAS is loaded
            from scipy.linalg import blas  # noqa: F401
        with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
            before = [i["num_threads"] for i in threadpoolctl.threadpool_info()
                      if i["user_api"] == "blas"]
            with threads.one_blas_thread():
                inside = [i["num_threads"] for i in threadpoolctl.threadpool_info()
                          if i["user_api"] == "blas"]
        print(len(before), max(before), max(inside))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    libraries, before, inside = map(int, result.stdout.split())
    if before < 2:
        pytest.skip("BLAS cannot run on two threads here")
    assert libraries >= 2  # numpy's and scipy's
    assert inside == 1


def test_channel_wise_taps_run_scipys_axpy_on_one_thread(monkeypatch):
    """The channel-wise taps call scipy's ``axpy`` (its own OpenBLAS, imported inside the
    kernel on first use, after any limit around the call was taken): the kernel limits
    BLAS itself, so every ``axpy`` runs on one thread — read from threadpoolctl inside the
    calls — and the limit is lifted after the call."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from scipy.linalg import blas

    seen: list[int] = []
    daxpy = blas.daxpy

    def recording(*args):
        seen.append(max(i["num_threads"] for i in threadpoolctl.threadpool_info()
                        if i["user_api"] == "blas"))
        return daxpy(*args)

    monkeypatch.setattr(blas, "daxpy", recording)
    rng = np.random.default_rng(24)
    weight = rng.standard_normal((4, 1, 3, 3))
    spec = cm.conv_spec(weight.shape, (4, 40, 40), padding=1, groups=4)
    x = rng.standard_normal((2, *spec.input_shape))
    out = np.empty((2, *spec.output_shape))
    from convmatrix.builder import forward

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        if max(i["num_threads"] for i in threadpoolctl.threadpool_info()
               if i["user_api"] == "blas") < 2:
            pytest.skip("BLAS cannot run on two threads here")
        forward._taps_into(spec, weight, x, out, False)  # the kernel alone, no limit around
        after = [i["num_threads"] for i in threadpoolctl.threadpool_info()
                 if i["user_api"] == "blas"]
    assert seen and set(seen) == {1}
    assert max(after) == 2  # lifted: never global
    expected = np.stack([reference.conv(x[j], weight, padding=1, groups=4) for j in range(2)])
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_small_products_run_on_one_blas_thread_only_inside_the_call():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    with apply._blas_threads(0):
        pass  # the kernels' controller: the BLAS libraries loaded with numpy
    from convmatrix.builder import threads

    libraries = threads._CONTROLLER[0][0].lib_controllers  # the package's one controller

    def blas_threads() -> list[int]:
        return [library.num_threads for library in libraries]

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        if not blas_threads() or max(blas_threads()) < 2:
            pytest.skip("BLAS cannot run on two threads here")
        with apply._blas_threads(apply.SMALL_PRODUCT - 1):
            assert blas_threads() == [1] * len(blas_threads())
        assert max(blas_threads()) == 2  # restored: the limit is never global
        with apply._blas_threads(apply.SMALL_PRODUCT):
            assert max(blas_threads()) == 2  # large products keep every thread
        rng = np.random.default_rng(12)
        weight = rng.standard_normal((4, 1, 3, 3))
        spec = cm.conv_spec(weight.shape, (4, 9, 9), padding=1, groups=4)
        x = rng.standard_normal((2, 4, 9, 9))
        expected, _ = _torch_pair(weight, x, np.zeros((2, *spec.output_shape)), 1, 1, 1, 4,
                                  "zeros")
        np.testing.assert_allclose(apply.conv_apply(spec, weight, x), expected, rtol=1e-12,
                                   atol=1e-12)
        assert max(blas_threads()) == 2


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128, np.complex64])
def test_channel_wise_layers_add_taps_and_others_do_not(dtype, monkeypatch):
    """Which layers take the channel-wise taps: one input and one output channel per group,
    stride 1, a BLAS dtype; a channel multiplier, a stride, a shared channel or integers do
    not — except the adjoint of a strided depthwise layer with more groups than
    :data:`apply.FLAT_GROUPS`, whose phases (:func:`apply._phases`) are channel-wise
    convolutions of stride 1: 4 for a 3×3 kernel of stride 2 (with fewer groups flat col2im
    is faster). Every case matches torch either way."""
    calls = []
    taps_into = apply._taps_into
    monkeypatch.setattr(apply, "_taps_into", lambda *a: calls.append(1) or taps_into(*a))
    rng = np.random.default_rng(13)
    # weight, stride, groups, calls (forward + adjoint)
    cases = [((3, 1, 3, 3), 1, 3, 2), ((1, 1, 3, 3), 1, 1, 2),
             ((6, 1, 3, 3), 1, 3, 0), ((6, 1, 3, 3), 2, 6, 4), ((3, 1, 3, 3), 2, 3, 0),
             ((3, 3, 3, 3), 1, 1, 0)]
    for weight_shape, stride, groups, taps in cases:
        weight = rng.standard_normal(weight_shape)
        spec = cm.conv_spec(weight_shape, (groups * weight_shape[1], 9, 8), stride=stride,
                            padding=1, groups=groups)
        x = rng.standard_normal((2, *spec.input_shape))
        y = rng.standard_normal((2, *spec.output_shape))
        expected, expected_t = _torch_pair(weight, x, y, stride, 1, 1, groups, "zeros")
        calls.clear()
        forward = apply.conv_apply(spec, weight.astype(dtype), x.astype(dtype))
        adjoint = apply.conv_apply_adjoint(spec, weight.astype(dtype), y.astype(dtype))
        assert len(calls) == taps
        tol = 1e-5 if dtype in (np.float32, np.complex64) else 1e-12
        assert np.linalg.norm(forward - expected) <= tol * np.linalg.norm(expected)
        assert np.linalg.norm(adjoint - expected_t) <= tol * np.linalg.norm(expected_t)
    calls.clear()
    weight = rng.integers(-9, 10, (3, 1, 3, 3))
    spec = cm.conv_spec(weight.shape, (3, 9, 8), padding=1, groups=3)
    apply.conv_apply(spec, weight, rng.integers(-9, 10, (2, 3, 9, 8)))
    assert not calls  # integers: exact through the column matrices


def test_shifted_sums_are_taken_above_the_gain_only(monkeypatch):
    """The last kernel axis by shifted sums exactly when the traffic model says
    :data:`apply.SHIFT_GAIN` or more (the adjoints of the dilated 3-D layer: 1.69, and of a
    5 → 2 channel layer: 0.63), and either way the result is torch's."""
    calls = []
    shifted_into = apply._shifted_into
    monkeypatch.setattr(apply, "_shifted_into",
                        lambda *a: calls.append(a[0]) or shifted_into(*a))
    rng = np.random.default_rng(14)
    for geometry, gain in ((GEOMETRIES[6], 1.69), (GEOMETRIES[9], 0.63)):
        weight_shape, input_shape, stride, padding, dilation, groups = geometry
        weight = rng.standard_normal(weight_shape)
        spec = cm.conv_spec(weight_shape, input_shape, stride=stride, padding=padding,
                            dilation=dilation, groups=groups)
        transposed = apply._transposed_spec(spec)
        assert round(apply._shift_gain(transposed), 2) == gain
        x = rng.standard_normal((2, *spec.input_shape))
        y = rng.standard_normal((2, *spec.output_shape))
        expected, expected_t = _torch_pair(weight, x, y, stride, padding, dilation, groups,
                                           "zeros")
        for threshold in (gain - 0.01, gain + 0.01):
            monkeypatch.setattr(apply, "SHIFT_GAIN", threshold)
            calls.clear()
            adjoint = apply.conv_apply_adjoint(spec, weight, y)
            assert bool(calls) == (threshold <= gain)  # (the padded-whole inner spec)
            assert np.linalg.norm(adjoint - expected_t) <= 1e-12 * np.linalg.norm(expected_t)
            forward = apply.conv_apply(spec, weight, x)
            assert np.linalg.norm(forward - expected) <= 1e-12 * np.linalg.norm(expected)


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
@pytest.mark.parametrize("path", ["phases", "flat", "windows"])
def test_strided_adjoint_workspace_stays_bounded(path, mode, monkeypatch):
    """A strided adjoint on a batch holds the input, the result and at most the workspace:
    the phases' chunk of samples and the convolutions run on it share one budget, and a call
    never holds two of its large buffers at once (an independent review measured 109 MiB on
    a 64 MiB workspace before)."""
    workspace = 4 * 2**20
    monkeypatch.setattr(apply, "TILE_BYTES", 2**20)
    monkeypatch.setattr(apply, "WORKSPACE_BYTES", workspace)
    monkeypatch.setattr(apply, "_KEEP_BYTES", 2**18)  # the large buffers are the call's own
    monkeypatch.setattr(apply, "_STRIDED_ADJOINT", path)
    rng = np.random.default_rng(21)
    weight = rng.standard_normal((24, 16, 3, 3))
    spec = cm.conv_spec(weight.shape, (16, 56, 56), stride=2, padding=1, padding_mode=mode)
    y = rng.standard_normal((12, *spec.output_shape))
    expected = reference.conv_adjoint(y[3], weight, spec.input_shape, stride=2, padding=1,
                                      padding_mode=mode)
    apply.conv_apply_adjoint(spec, weight, y[:1])  # warm-up (cached geometry)
    tracemalloc.start()
    try:
        out = apply.conv_apply_adjoint(spec, weight, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(out[3], expected, rtol=1e-12, atol=1e-12)
    assert peak <= out.nbytes + workspace + 2**20


def _adjoint_by_definition(weight, y, n, stride, padding):
    """1-D ``Cᵀ y`` summed over the taps that read a pixel (never a padding zero)."""
    _, c_in, k = weight.shape
    x = np.zeros((c_in, n), dtype=np.result_type(weight, y))
    for o in range(y.shape[1]):
        for t in range(k):
            i = o * stride + t - padding
            if 0 <= i < n:
                x[:, i] += weight[:, :, t].T @ y[:, o]
    return x


@pytest.mark.parametrize("path", ["phases", "flat", "windows"])
def test_non_finite_weights_give_the_matrix_product(path, monkeypatch):
    """An inf in the weight: the kernels would multiply padding (and col2im's margin) zeros by
    it, a nan where the matrix has no entry; the result is the exact matrix product — against
    the sum over the taps that read pixels, and the built matrix — in both directions."""
    monkeypatch.setattr(apply, "_STRIDED_ADJOINT", path)
    weight = np.array([[[1.0, 2.0, np.inf], [4.0, 5.0, 6.0]]])
    for stride, padding in ((2, 0), (2, 2), (1, 2)):
        spec = cm.conv_spec(weight.shape, (2, 7), stride=stride, padding=padding)
        y = np.ones((1, *spec.output_shape))
        x = np.ones((1, *spec.input_shape))
        with np.errstate(invalid="ignore"):
            adjoint = apply.conv_apply_adjoint(spec, weight, y)[0]
            forward = apply.conv_apply(spec, weight, x)[0]
        np.testing.assert_array_equal(
            adjoint, _adjoint_by_definition(weight, y[0], 7, stride, padding))
        matrix = cm.conv_matrix(weight, (2, 7), stride=stride, padding=padding)
        np.testing.assert_array_equal(forward.ravel(), matrix @ x.ravel())
        np.testing.assert_array_equal(adjoint.ravel(), matrix.T @ y.ravel())
        assert not np.isnan(forward).any() and not np.isnan(adjoint).any()


def test_flat_col2im_falls_back_when_one_row_is_above_the_workspace(monkeypatch):
    """Flat col2im needs one output row plus its halo in the workspace; below that the
    strided windows run (their smallest tile is smaller), and the result is torch's."""
    calls = []
    flat = apply._flat_col2im_into
    monkeypatch.setattr(apply, "_flat_col2im_into",
                        lambda *a: calls.append(flat(*a)) or calls[-1])
    rng = np.random.default_rng(22)
    weight = rng.standard_normal((6, 2, 3, 3))
    spec = cm.conv_spec(weight.shape, (2, 9, 40), stride=2, padding=1)
    x = rng.standard_normal((2, *spec.input_shape))
    y = rng.standard_normal((2, *spec.output_shape))
    _, expected_t = _torch_pair(weight, x, y, 2, 1, 1, 1, "zeros")
    for workspace, taken in ((2**20, True), (2048, False)):
        monkeypatch.setattr(apply, "WORKSPACE_BYTES", workspace)
        monkeypatch.setattr(apply, "TILE_BYTES", 1)
        calls.clear()
        adjoint = apply.conv_apply_adjoint(spec, weight, y)
        assert calls == [taken]
        assert np.linalg.norm(adjoint - expected_t) <= 1e-12 * np.linalg.norm(expected_t)


def test_flat_col2im_adds_taps_inside_blas_when_the_channels_allow(monkeypatch):
    """Flat col2im adds each tap's product onto its phase inside BLAS (``beta = 1``) for a
    float layer with ``C_out ≤ ACCUMULATE_RATIO · C_in`` (halved in float32) or few output
    channels; with many more output than input channels (the stem), integers or more groups
    than FLAT_GROUPS it does not. Every case matches torch either way."""
    calls = []
    accumulate = apply._accumulate_taps
    monkeypatch.setattr(apply, "_accumulate_taps",
                        lambda *a: calls.append(1) or accumulate(*a))
    rng = np.random.default_rng(23)
    # weight, groups, dtype, taken
    cases = [((16, 8, 3, 3), 1, np.float64, True), ((48, 24, 3, 3), 1, np.float64, True),
             ((48, 24, 3, 3), 1, np.float32, False), ((24, 24, 3, 3), 1, np.float32, True),
             ((64, 3, 7, 7), 1, np.float64, False), ((16, 3, 3, 3), 1, np.complex128, True),
             ((16, 4, 3, 3), 2, np.float64, True), ((12, 1, 3, 3), 6, np.float64, False)]
    for weight_shape, groups, dtype, taken in cases:
        weight = rng.standard_normal(weight_shape)
        spec = cm.conv_spec(weight_shape, (groups * weight_shape[1], 15, 14), stride=2,
                            padding=weight_shape[-1] // 2, groups=groups)
        x = rng.standard_normal((2, *spec.input_shape))
        y = rng.standard_normal((2, *spec.output_shape))
        _, expected_t = _torch_pair(weight, x, y, 2, weight_shape[-1] // 2, 1, groups, "zeros")
        calls.clear()
        adjoint = apply.conv_apply_adjoint(spec, weight.astype(dtype), y.astype(dtype))
        assert bool(calls) == taken, (weight_shape, groups, dtype)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        assert np.linalg.norm(adjoint - expected_t) <= tol * np.linalg.norm(expected_t)
    calls.clear()
    weight = rng.integers(-9, 10, (16, 8, 3, 3))
    spec = cm.conv_spec(weight.shape, (8, 15, 14), stride=2, padding=1)
    y = rng.integers(-9, 10, (2, *spec.output_shape))
    adjoint = apply.conv_apply_adjoint(spec, weight, y)
    assert not calls  # integers: exact through one product of every tap
    expected = reference.conv_adjoint(y[1], weight, spec.input_shape, stride=2, padding=1)
    np.testing.assert_array_equal(adjoint[1], expected)
