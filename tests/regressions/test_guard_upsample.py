"""Issue 16 item 11: Upsample refuses a huge output before building tables; tables vectorised.

The per-axis tables are compared bit for bit with the previous scalar loop (copied here as the
reference) and the layer with live torch ``F.interpolate`` in every mode.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

import convmatrix as cm
from convmatrix.layers.upsample import interpolation_matrix


def _old_cubic_weights(t: float) -> tuple[float, float, float, float]:
    a = -0.75

    def near(x: float) -> float:
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: float) -> float:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return far(t + 1), near(t), near(1 - t), far(2 - t)


def _old_table(n: int, out: int, mode: str, align_corners: bool,
               scale: float | None) -> sp.csr_array:
    """The scalar loop of convmatrix 0.2.0, one output index at a time."""
    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    if mode in ("nearest", "nearest-2d", "nearest-exact"):
        ratio32 = (np.float32(1.0 / scale) if scale is not None and scale > 0
                   else np.float32(n) / np.float32(out))
        for i in range(out):
            if mode == "nearest-2d" and out == n:
                src = i
            elif mode == "nearest-2d" and out == 2 * n:
                src = i >> 1
            else:
                shift = np.float32(0.5) if mode == "nearest-exact" else np.float32(0.0)
                src = min(int(np.floor((np.float32(i) + shift) * ratio32)), n - 1)
            rows.append(i)
            cols.append(src)
        matrix = sp.coo_array((np.ones(out, dtype=np.int64), (rows, cols)),
                              shape=(out, n)).tocsr()
        matrix.sum_duplicates()
        return sp.csr_array(matrix)
    if align_corners:
        ratio = (n - 1) / (out - 1) if out > 1 else 0.0
    else:
        ratio = 1.0 / scale if scale is not None and scale > 0 else n / out
    cubic = mode == "cubic"
    for i in range(out):
        if align_corners:
            x = ratio * i
        else:
            x = ratio * (i + 0.5) - 0.5
            if not cubic and x < 0:
                x = 0.0
        base = min(math.floor(x), n - 1)
        t = float(np.clip(x - base, 0.0, 1.0))
        if cubic:
            for tap, weight in enumerate(_old_cubic_weights(t)):
                rows.append(i)
                cols.append(min(max(base - 1 + tap, 0), n - 1))
                values.append(weight)
        elif out == n and not align_corners:
            rows.append(i)
            cols.append(i)
            values.append(1.0)
        else:
            rows += [i, i]
            cols += [base, base + (1 if base < n - 1 else 0)]
            values += [1.0 - t, t]
    matrix = sp.coo_array((np.array(values), (np.array(rows), np.array(cols))),
                          shape=(out, n)).tocsr()
    matrix.sum_duplicates()
    matrix = sp.csr_array(matrix)
    matrix.eliminate_zeros()
    return matrix


CASES = [(n, out, scale) for n in (1, 2, 3, 5, 7) for out, scale in
         ((1, None), (n, None), (2 * n, 2.0), (3 * n + 1, None), (max(1, n // 2), 0.5),
          (math.floor(n * 1.7), 1.7), (math.floor(n * 2.5), 2.5), (13, None))
         if out >= 1]


@pytest.mark.parametrize(("mode", "align_corners"), [
    ("nearest", False), ("nearest-2d", False), ("nearest-exact", False), ("linear", False),
    ("linear", True), ("cubic", False), ("cubic", True)])
def test_tables_bit_identical_to_the_scalar_loop(mode: str, align_corners: bool) -> None:
    for n, out, scale in CASES:
        new = interpolation_matrix(n, out, mode, align_corners, scale)
        old = _old_table(n, out, mode, align_corners, scale)
        assert new.shape == old.shape and new.dtype == old.dtype, (n, out, scale)
        np.testing.assert_array_equal(new.indptr, old.indptr)
        np.testing.assert_array_equal(new.indices, old.indices)
        assert new.data.tobytes() == old.data.tobytes(), (mode, n, out, scale)


TORCH_CASES = [
    ((2, 5), "nearest"), ((2, 5), "nearest-exact"), ((2, 5), "linear"),
    ((2, 4, 3), "nearest"), ((2, 4, 3), "nearest-exact"), ((2, 4, 3), "bilinear"),
    ((2, 4, 3), "bicubic"), ((1, 3, 2, 4), "nearest"), ((1, 3, 2, 4), "nearest-exact"),
    ((1, 3, 2, 4), "trilinear"),
]


@pytest.mark.parametrize(("shape", "mode"), TORCH_CASES)
@pytest.mark.parametrize("scale", [2, 1.5, 0.6, 3.3])
@pytest.mark.parametrize("align_corners", [None, True])
def test_matches_live_torch_interpolate(shape: tuple[int, ...], mode: str, scale: float,
                                        align_corners: bool | None) -> None:
    torch = pytest.importorskip("torch")
    if align_corners and mode.startswith("nearest"):
        return
    layer = cm.Upsample(shape, scale_factor=scale, mode=mode, align_corners=align_corners)
    x = np.random.default_rng(0).standard_normal(shape)
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(x)[None], scale_factor=scale, mode=mode,
        align_corners=align_corners)[0].numpy()
    matrix = layer.matrix()
    assert matrix.shape[0] == expected.size
    np.testing.assert_allclose(matrix @ x.ravel(), expected.ravel(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_huge_scale_factor_is_refused_at_once(mode: str) -> None:
    with pytest.raises(cm.ConvMatrixError, match=r"max_bytes.*GiB|GiB.*max_bytes") as info:
        cm.Upsample((1, 4), scale_factor=1e9, mode=mode)
    assert "scale_factor" in str(info.value)


def test_huge_size_is_refused_at_once() -> None:
    with pytest.raises(cm.ConvMatrixError, match="max_bytes"):
        cm.Upsample((1, 4, 4), size=(10**9, 10**9), mode="bicubic")


def test_large_table_matrix_refused_by_estimate() -> None:
    layer = cm.Upsample((64, 4, 4), scale_factor=1000, mode="bilinear")  # 64×4000×4000
    with pytest.raises(cm.ConvMatrixError, match="max_bytes"):
        layer.matrix(max_bytes=10**6)
    assert layer._axes is None  # refused before the tables were built
