"""Size guards of the symbolic side: refusals before any work, estimates that match the work."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

import convmatrix as cm
from convmatrix import reference
from convmatrix import symbolic as sym
from convmatrix.symbolic.explain import MAX_SAMPLED, sample_positions


def _terms(outputs: sympy.NDimArray) -> int:
    """Products in every output sum, counted from the derived expressions themselves."""
    flat = np.array(outputs.tolist(), dtype=object).ravel()
    return sum(len(sympy.Add.make_args(v)) for v in flat if v != 0)


def _brute_terms(weight_shape, input_shape, **geometry) -> int:
    """w·x terms of a convolution counted from the dense reference: each (output, weight)
    pair whose weight touches a real input pixel is one term (unit weight, unit input, count
    per weight by probing one weight at a time)."""
    total = 0
    x = np.ones(input_shape)
    for flat in range(math.prod(weight_shape)):
        w = np.zeros(weight_shape)
        w.flat[flat] = 1.0
        total += int(np.count_nonzero(reference.conv(x, w, **geometry)))
    return total


# --------------------------------------------------------------------------------------------
# max_terms: conv_outputs / conv_matrix and their transposes


@pytest.mark.parametrize("call", [sym.conv_outputs, sym.symbolic_conv_matrix])
def test_a_large_layer_is_refused_before_any_work_naming_max_terms(call):
    # sym.conv_outputs of this layer ran 221 s; the 64-channel one never finished
    for wshape, ishape in [((16, 16, 3, 3), (16, 32, 32)), ((64, 64, 3, 3), (64, 56, 56))]:
        with pytest.raises(cm.ConvMatrixError, match=r"w·x terms, over `max_terms` "
                           r"\(=1,000,000\); pass a larger max_terms \(or max_terms=None\)"):
            call(wshape, ishape, padding=1)


@pytest.mark.parametrize("call", [sym.conv_transpose_outputs, sym.symbolic_conv_transpose_matrix])
def test_a_large_transposed_layer_is_refused(call):
    with pytest.raises(cm.ConvMatrixError, match=r"112,869,376 w·x terms, over `max_terms`"):
        call((64, 64, 3, 3), (64, 56, 56), padding=1)


@pytest.mark.parametrize("geometry", [dict(padding=1), dict(stride=2), dict(dilation=2),
                                      dict(padding=2, padding_mode="reflect"),
                                      dict(padding=1, padding_mode="circular", groups=2)])
def test_the_quoted_estimate_is_the_number_of_terms_derived(geometry):
    wshape = (2, 2 // geometry.get("groups", 1), 3, 3)
    ishape = (2, 5, 5)
    terms = _terms(sym.conv_outputs(wshape, ishape, max_terms=None, **geometry))
    assert terms == _brute_terms(wshape, ishape, **geometry)
    outputs = math.prod(cm.conv_output_shape(wshape, ishape, **{
        k: v for k, v in geometry.items() if k != "padding_mode"}))
    sym.conv_outputs(wshape, ishape, max_terms=max(terms, outputs), **geometry)  # at the limit
    with pytest.raises(cm.ConvMatrixError, match=rf"holding {terms:,} w·x terms"):
        sym.conv_outputs(wshape, ishape, max_terms=terms - 1, **geometry)
    with pytest.raises(cm.ConvMatrixError, match=rf"holding {terms:,} w·x terms"):
        sym.symbolic_conv_matrix(wshape, ishape, max_terms=terms - 1, **geometry)


def test_outputs_without_terms_still_count():
    # padding so large that most outputs read only zeros: their number is guarded too
    with pytest.raises(cm.ConvMatrixError, match=r"would derive 1,002,001 outputs"):
        sym.conv_outputs((1, 1, 1, 1), (1, 1, 1), padding=500)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1e6", np.int64(-3)])
def test_max_terms_must_be_a_non_negative_int_or_none(bad):
    with pytest.raises(cm.ConvMatrixError, match=r"`max_terms` \(=.*\) must be a non-negative "
                                                 r"int or None"):
        sym.conv_outputs((1, 1, 2), (1, 3), max_terms=bad)


def test_max_terms_none_lifts_the_limit():
    y = sym.conv_outputs((1, 1, 2), (1, 3), max_terms=None)
    assert y.shape == (1, 2)


# --------------------------------------------------------------------------------------------
# explain, checkerboard, overlap maps: huge geometries refused or handled at once


def test_explain_of_a_huge_stride_transposed_layer_is_refused_at_once():
    # `convmatrix report --transpose --stride 99999999` on a 1×3×3 input hung, memory growing
    with pytest.raises(cm.ConvMatrixError, match=r"one overlap count per stride residue, "
                       r"99,999,999 along spatial axis 0 .*over `max_terms`"):
        sym.explain((1, 1, 3, 3), (1, 3, 3), direction="adjoint", stride=99999999)
    with pytest.raises(cm.ConvMatrixError, match=r"1×200000001×200000001 would need about "
                       r".*, over `max_bytes`"):
        sym.explain((1, 1, 3, 3), (1, 3, 3), direction="adjoint", stride=99999999, max_terms=None)


@pytest.mark.parametrize("call", [sym.overlap_counts, sym.read_counts])
def test_overlap_maps_are_guarded_by_max_bytes(call):
    with pytest.raises(cm.ConvMatrixError, match=r"over `max_bytes`"):
        call((1, 1, 3, 3), (1, 3, 3), stride=99999999)
    with pytest.raises(cm.ConvMatrixError, match=r"`max_bytes` \(=-1\) must be"):
        call((1, 1, 2), (1, 3), max_bytes=-1)


def test_the_checkerboard_verdict_of_a_huge_stride_is_refused():
    with pytest.raises(cm.ConvMatrixError, match=r"checkerboard verdict would list one overlap "
                       r"count per stride residue"):
        sym.checkerboard_law((1, 1, 3, 3), (1, 3, 3), stride=99999999)


def test_a_large_stride_within_the_limits_gives_the_law_quickly():
    # k = 2 taps hit residues 0 and 1 of the stride: only a full turn maps the law onto itself
    # (the old period search compared s rotations of s values)
    s = 10**6
    verdict = sym.checkerboard_law((1, 1, 2), (1, 1), stride=s)
    assert verdict.period == (s,)
    assert verdict.interior_values == (0, 1)
    assert verdict.counts().tolist() == [1, 1]


def test_explain_samples_a_bounded_number_of_outputs_whatever_the_stride():
    # the old sampler listed a full stride period of middle positions per axis
    picks = sample_positions((1, 10**12, 10**12), (10**11, 10**11))
    assert len(picks) == MAX_SAMPLED and len(set(picks)) == MAX_SAMPLED
    assert (0, 0, 0) in picks and (0, 10**12 - 1, 10**12 - 1) in picks
    assert all(0 <= v < 10**12 for pick in picks for v in pick[1:])


def test_explain_sampled_terms_are_guarded():
    with pytest.raises(cm.ConvMatrixError, match=r"would derive 16 outputs holding up to "
                       r"401,408 w·x terms, over `max_terms` \(=100,000\)"):
        sym.explain((512, 512, 7, 7), (512, 14, 14), padding=3, max_terms=100_000)


def test_a_long_period_is_elided_in_the_law_and_the_verdict():
    # k = 3 taps land on residues 0, 1, 2 of the stride 1000: counts 1, 1, 1, then 997 zeros
    axis = sym.checkerboard_law((1, 1, 3), (1, 40), stride=1000).axes[0]
    law, sentence = axis.law(), axis.describe()
    assert law.endswith("1 for j ≡ 2, 0 for j ≡ 3, 0 for j ≡ 4, 0 for j ≡ 5, 0 for j ≡ 6, …, "
                        "0 for j ≡ 999 (mod 1000), for 2 ≤ j ≤ 39000")
    assert "cycle through 1, 1, 1, 0, 0, 0, 0, …, 0 (period 1000)" in sentence
    assert r"\dots,\ 0 \text{ for } j \equiv 999 \pmod{1000}" in axis.law(latex=True)
    assert len(str(sym.explain((1, 1, 3), (1, 40), direction="adjoint", stride=1000))) < 4000


@pytest.mark.parametrize("call, match", [
    (lambda: sym.weight_symbols((64, 64, 300, 300)), r"would make 368,640,000 symbols w_\{…\}"),
    (lambda: sym.input_symbols((3, 10**5, 10**5)), r"30,000,000,000 symbols x_\{…\}"),
    (lambda: sym.round_trip_sizes(2, 3, stride=10**9), r"up to 1,000,000,000 input sizes"),
])
def test_the_symbol_and_size_helpers_are_guarded_too(call, match):
    with pytest.raises(cm.ConvMatrixError, match=match + r".*over `max_terms` \(=1,000,000\)"):
        call()


def test_the_helpers_still_answer_below_the_limit():
    assert sym.weight_symbols((1, 1, 2), max_terms=2).shape == (1, 1, 2)
    # a transposed layer with input size 2 and stride 3 can produce 3 sizes (brute force)
    expected = {}
    for m in range(3, 30):
        if cm.conv_output_shape((1, 1, 3), (1, m), stride=3)[1] != 2:
            continue
        for a in range(3):
            if cm.conv_transpose_output_shape((1, 1, 3), (1, 2), stride=3,
                                              output_padding=a)[1] == m:
                expected[m] = a
    assert expected == {6: 0, 7: 1, 8: 2}
    assert sym.round_trip_sizes(2, 3, stride=3, max_terms=3) == expected
