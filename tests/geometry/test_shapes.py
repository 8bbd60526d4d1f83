"""Shape arithmetic (convmatrix.geometry.shapes) against brute-force enumeration of windows."""

from __future__ import annotations

import itertools

import pytest

from convmatrix.geometry import shapes


def _windows(padded: int, span: int, stride: int) -> int:
    """Count window starts 0, s, 2s, ... whose span fits in the padded input."""
    return sum(1 for start in range(0, padded, stride) if start + span <= padded)


GRID = list(itertools.product(range(1, 9), range(1, 4), range(1, 4), range(1, 3)))


@pytest.mark.parametrize(("n", "k", "s", "d"), GRID)
def test_conv_output_length_counts_windows(n, k, s, d):
    span = d * (k - 1) + 1
    assert shapes.effective_kernel(k, d) == span
    for before, after in itertools.product(range(3), range(3)):
        count = _windows(n + before + after, span, s)
        length = shapes.conv_output_length(n, k, s, (before, after), d)
        assert length == count or (count == 0 and length < 1)
        if count:
            last_end = (count - 1) * s + span
            assert shapes.conv_remainder(n, k, s, (before, after), d, count) == (
                n + before + after - last_end)


@pytest.mark.parametrize(("n", "k", "s", "d"), GRID)
def test_conv_transpose_output_length_inverts_the_forward_count(n, k, s, d):
    # a transposed conv of o inputs reaches every position some window of o outputs covers
    for before, after in itertools.product(range(2), range(2)):
        o = _windows(n + before + after, d * (k - 1) + 1, s)
        if not o:
            continue
        a = shapes.conv_remainder(n, k, s, (before, after), d, o)
        assert shapes.conv_transpose_output_length(o, k, s, (before, after), d, a) == n


@pytest.mark.parametrize(("n", "k", "s", "d"), GRID)
def test_same_padding_tf_is_the_smallest_total_giving_ceil_n_over_s(n, k, s, d):
    span = d * (k - 1) + 1
    want = -(-n // s)
    total = next(t for t in range(span + s + 1) if _windows(n + t, span, s) >= want)
    before, after = shapes.same_padding_tf(n, k, s, d)
    assert (before + after, after - before) in {(total, 0), (total, 1)}
    assert shapes.conv_output_length(n, k, s, (before, after), d) == want


@pytest.mark.parametrize(("k", "d"), list(itertools.product(range(1, 6), range(1, 4))))
def test_same_padding_torch_keeps_the_length_at_stride_one(k, d):
    before, after = shapes.same_padding_torch(k, d)
    assert after - before in (0, 1)
    assert shapes.conv_output_length(7, k, 1, (before, after), d) == 7
    assert shapes.causal_padding(k, d) == (before + after, 0)
