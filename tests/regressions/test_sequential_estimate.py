"""Issue 16 item 12: the Sequential size estimate comes from the factors' patterns.

It never under-estimates the stored entries of the product (checked against the true nnz of the
built product over random stacks) and is close to it (the issue's stack was estimated 52×
too many entries and 27× too large a peak).
"""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm


def _random_conv(rng: np.random.Generator, c_in: int, shape: tuple[int, ...],
                 transposed: bool) -> cm.ConvLayer:
    ndim = len(shape)
    c_out = int(rng.integers(1, 4))
    groups = 1 if c_in % 2 or c_out % 2 or rng.random() < 0.5 else 2
    kernel = tuple(int(k) for k in rng.integers(1, 4, ndim))
    stride = tuple(int(s) for s in rng.integers(1, 3, ndim))
    dilation = tuple(int(d) for d in rng.integers(1, 3, ndim))
    if transposed:
        weight = rng.standard_normal((c_in, c_out // groups, *kernel))
        return cm.ConvTranspose(weight, (c_in, *shape), stride=stride, dilation=dilation,
                                groups=groups)
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    mode = str(rng.choice(["zeros", "circular", "reflect", "replicate"]))
    padding = tuple(min(int(rng.integers(0, 3)), n - 1) for n in shape)
    if mode == "circular":
        padding = tuple(min(p, n) for p, n in zip(padding, shape, strict=True))
    if any(n + 2 * p < r for n, p, r in zip(shape, padding, reach, strict=True)):
        kernel, dilation, padding = (1,) * ndim, (1,) * ndim, (0,) * ndim
        mode = "zeros"
    weight = rng.standard_normal((c_out, c_in // groups, *kernel))
    return cm.Conv(weight, (c_in, *shape), stride=stride, dilation=dilation, padding=padding,
                   padding_mode=mode, groups=groups)


@pytest.mark.parametrize("seed", range(40))
def test_estimate_never_below_true_nnz(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ndim = int(rng.integers(1, 3))
    shape = tuple(int(n) for n in rng.integers(3, 8, ndim))
    channels = int(rng.integers(1, 4))
    layers: list[cm.ConvLayer] = []
    for _ in range(int(rng.integers(2, 5))):
        transposed = bool(rng.random() < 0.3) and math_prod(shape) < 200
        try:
            layer = _random_conv(rng, channels, shape, transposed)
        except cm.ConvMatrixError:
            continue
        layers.append(layer)
        channels, shape = layer.output_shape[0], layer.output_shape[1:]
    if len(layers) < 2:
        pytest.skip("no valid stack drawn")
    stack = cm.Sequential(layers)
    plan = stack.plan()
    true_nnz = stack.matrix().nnz
    # an independent count: dense product of the dense layer matrices
    dense = np.eye(layers[0].matrix_shape[1])
    for layer in layers:
        dense = layer.matrix().toarray() @ dense
    assert true_nnz <= np.count_nonzero(dense) + 0  # scipy stores no explicit zeros here
    assert plan.nnz >= np.count_nonzero(dense)
    assert plan.nnz >= true_nnz


def math_prod(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape))


def test_issue_stack_estimate_is_close() -> None:
    """The issue's geometry (two 16-channel 3×3 convs), scaled down to 16² to stay small."""
    rng = np.random.default_rng(0)
    stack = cm.Sequential([cm.Conv(rng.standard_normal((16, 16, 3, 3)), (16, 16, 16), padding=1),
                           cm.Conv(rng.standard_normal((16, 16, 3, 3)), (16, 16, 16), padding=1)])
    plan = stack.plan()
    matrix = stack.matrix()
    assert plan.nnz >= matrix.nnz
    assert plan.nnz <= 1.01 * matrix.nnz
    stored = matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    assert plan.peak_bytes < 4 * stored


def test_issue_stack_not_refused_by_default() -> None:
    """At 64² the old estimate (15 GiB) refused under the 4 GiB default; the product is ~0.5 GB."""
    rng = np.random.default_rng(0)
    stack = cm.Sequential([cm.Conv(rng.standard_normal((16, 16, 3, 3)), (16, 64, 64), padding=1),
                           cm.Conv(rng.standard_normal((16, 16, 3, 3)), (16, 64, 64), padding=1)])
    plan = stack.plan()
    # the exact structural count: each output pixel reaches a 5×5 window (clipped at borders)
    per_axis = sum(min(p + 2, 63) - max(p - 2, 0) + 1 for p in range(64))
    assert plan.nnz == 16 * 16 * per_axis**2
    assert plan.peak_bytes < 2**30
