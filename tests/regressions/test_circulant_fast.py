"""Issue 16 item 7 (the rest): the circular FFT path of ``norm`` on 1×3000×3000 ran about a
minute: every frequency's ``K̂(f)`` was a direct DFT of the taps (``N·∏k`` complex
exponentials) followed by one LAPACK SVD call per frequency (nine million 1×1 SVDs), then the
whole spectrum was sorted to read its maximum. Now the transform goes axis by axis, a
column/row ``K̂(f)`` (one channel on a side) has its length as singular value, and the norm is
a maximum. Measured in ``benchmarks/bench_circulant.py``.

Oracles: the dense SVD of the built matrix (small layers), ``numpy.fft.fftn`` of the kernel on
the torus (single channel, large), and the chunked path against the unchunked one.
"""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.analysis.spectra import fft
from convmatrix.analysis.spectra.methods import choose_method


def _circular(seed: int) -> cm.Conv:
    rng = np.random.default_rng(seed)
    while True:  # draw until torch's rules (padding at most the input size) hold
        try:
            return _draw(rng)
        except cm.ConvMatrixError:
            continue


def _draw(rng: np.random.Generator) -> cm.Conv:
    ndim = int(rng.integers(1, 4))
    groups = int(rng.integers(1, 3))
    c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    size = tuple(int(n) for n in rng.integers(2, 7 if ndim < 3 else 4, ndim))
    kernel = tuple(int(k) for k in rng.integers(1, 4, ndim))
    dilation = tuple(int(d) for d in rng.integers(1, 3, ndim))
    # output size == input size: padding before + after = d(k − 1), split unevenly
    before = tuple(int(rng.integers(0, d * (k - 1) + 1)) for k, d in zip(kernel, dilation,
                                                                          strict=True))
    padding = tuple((b, d * (k - 1) - b) for b, k, d in zip(before, kernel, dilation,
                                                            strict=True))
    weight = rng.standard_normal((c_out, c_in // groups, *kernel))
    if rng.random() < 0.3:
        weight = weight + 1j * rng.standard_normal(weight.shape)
    return cm.Conv(weight, (c_in, *size), padding=padding, dilation=dilation, groups=groups,
                   padding_mode="circular")


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("budget", [None, 16 * 8 * 3])  # default / a few frequencies a chunk
def test_fft_spectrum_and_norm_equal_the_dense_svd(monkeypatch, seed, budget):
    if budget is not None:
        monkeypatch.setattr(fft, "_FREQUENCY_BYTES", budget)
    layer = _circular(seed)
    try:
        reach_ok = choose_method(layer) == "fft"
    except cm.ConvMatrixError:
        reach_ok = False
    if not reach_ok:
        pytest.skip("not block circulant")
    expected = np.linalg.svd(layer.matrix().toarray(), compute_uv=False)
    np.testing.assert_allclose(cm.singular_values(layer), expected, rtol=1e-9, atol=1e-9)
    assert cm.operator_norm(layer) == pytest.approx(expected[0], rel=1e-10, abs=1e-12)
    assert cm.operator_norm_bound(layer) >= expected[0] * (1 - 1e-12)


def test_large_single_channel_norm_equals_numpy_fft():
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((3, 5))
    n = (700, 900)
    layer = cm.Conv(kernel[None, None], (1, *n), padding=((1, 1), (2, 2)),
                    padding_mode="circular")
    torus = np.zeros(n)
    for (i, j), value in np.ndenumerate(kernel):
        torus[(i - 1) % n[0], (j - 2) % n[1]] += value
    expected = np.abs(np.fft.fft2(torus)).max()
    assert cm.operator_norm(layer) == pytest.approx(expected, rel=1e-12)
    values = cm.singular_values(layer, 5)
    np.testing.assert_allclose(values, np.sort(np.abs(np.fft.fft2(torus)).ravel())[::-1][:5],
                               rtol=1e-12)


def test_norm_work_grows_with_the_grid_not_grid_times_taps(monkeypatch):
    """Work counted, not timed: the complex exponentials evaluated and the LAPACK calls.

    Before: ``N·∏k`` exponentials (600²·9 = 3.2 million here, 81 million at 3000²) and an SVD
    of every 1×1 frequency matrix. Now: ``Σ M_a·k_a`` exponentials, no SVD for one channel.
    """
    real_exp, real_svd = np.exp, np.linalg.svd
    counted = {"exp": 0, "svd": 0}

    def exp(values, *args, **kwargs):
        counted["exp"] += np.size(values)
        return real_exp(values, *args, **kwargs)

    def svd(values, *args, **kwargs):
        counted["svd"] += 1
        return real_svd(values, *args, **kwargs)

    monkeypatch.setattr(np, "exp", exp)
    monkeypatch.setattr(np.linalg, "svd", svd)
    n = 600
    layer = cm.Conv(np.arange(1.0, 10.0).reshape(1, 1, 3, 3), (1, n, n), padding=1,
                    padding_mode="circular")
    norm = cm.operator_norm(layer)
    assert norm == pytest.approx(45.0)  # all taps positive: the symbol peaks at f = 0
    assert counted["exp"] <= 4 * (n * 3 + (n // 2 + 1) * 3), counted
    assert counted["svd"] == 0, counted
