"""Overlap laws, round trips, the fast symbolic path and explanations, against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import convmatrix as cm
from convmatrix import reference
from convmatrix import symbolic as sym
from convmatrix.symbolic import arithmetic, laws
from convmatrix.symbolic.outputs import layer_outputs
from tests.reports.test_report import check_math
from tests.symbolic.test_symbolic import _lambdify_exact

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _brute_count(jj, nn, kk, ss, pp, dd):
    """Pairs (input pixel i, tap t) of a transposed layer landing on output pixel j."""
    return sum(1 for i in range(nn) for tt in range(kk) if i * ss - pp + tt * dd == jj)


# ------------------------------------------------------------------------------------------
# the interior law


@pytest.mark.parametrize(("ss", "dd"), list(itertools.product(range(1, 5), range(1, 4))))
def test_interior_formula_matches_brute_force_in_the_interior(ss, dd):
    formula = sym.interior_overlap_formula(stride=ss, dilation=dd)
    for kk, pp in itertools.product(range(1, 7), range(3)):
        nn = kk * dd + 3  # long enough to have an interior
        lo, hi = dd * (kk - 1) - pp, (nn - 1) * ss - pp  # no border cuts the sum in [lo, hi]
        for jj in range(max(lo, 0), hi + 1):
            got = formula.subs({laws.j: jj, laws.k: kk, laws.p: pp})
            assert got == _brute_count(jj, nn, kk, ss, pp, dd), (jj, kk, pp)


def test_interior_formula_with_symbolic_stride():
    formula = sym.interior_overlap_formula()
    for kk, ss, pp in itertools.product(range(1, 6), range(1, 5), range(3)):
        nn = kk + 3
        for jj in range(max(kk - 1 - pp, 0), (nn - 1) * ss - pp + 1):
            values = {laws.j: jj, laws.k: kk, laws.p: pp, laws.s: ss}
            assert formula.subs(values) == _brute_count(jj, nn, kk, ss, pp, 1)


@pytest.mark.parametrize(("kk", "ss"), list(itertools.product(range(1, 9), range(1, 5))))
def test_interior_values_are_ceil_and_floor_of_k_over_s(kk, ss):
    # Odena et al.: without dilation the interior counts are ⌈k/s⌉ and ⌊k/s⌋, period s
    axis = sym.checkerboard_law((1, 1, kk), (1, 8), stride=ss).axes[0]
    expected = {math.ceil(kk / ss), kk // ss}
    assert set(axis.distinct) == expected
    assert axis.even is (kk % ss == 0)
    assert axis.period == (1 if kk % ss == 0 else ss)


@st.composite
def transposed_layers(draw, max_ndim=3):
    ndim = draw(st.integers(1, max_ndim))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    size = tuple(draw(st.integers(1, 5)) for _ in range(ndim))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(ndim))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1))
                           for s, d in zip(stride, dilation, strict=True))
    geometry = dict(stride=stride, padding=padding, output_padding=output_padding,
                    dilation=dilation)
    try:
        cm.conv_transpose_spec((1, 1, *kernel), (1, *size), **geometry)
    except cm.ConvMatrixError:
        assume(False)
    return (1, 1, *kernel), (1, *size), geometry


@SETTINGS
@given(layer=transposed_layers())
def test_overlap_map_is_the_outer_product_and_the_transpose_of_ones(layer):
    wshape, ishape, geometry = layer
    counts = sym.overlap_counts(wshape, ishape, **geometry)
    verdict = sym.checkerboard_law(wshape, ishape, **geometry)
    assert np.array_equal(verdict.counts(), counts)
    # independent: the dense reference transposed convolution of ones with a ones kernel
    padding = geometry["padding"]
    ones = reference.conv_transpose(np.ones(ishape, dtype=int), np.ones(wshape, dtype=int),
                                    **{**geometry, "padding": padding})
    assert np.array_equal(counts, ones[0])


@pytest.mark.slow
@SETTINGS
@given(layer=transposed_layers(max_ndim=2))
def test_axis_closed_forms_match_the_counts(layer):
    wshape, ishape, geometry = layer
    for axis in sym.checkerboard_law(wshape, ishape, **geometry).axes:
        nn = ishape[1 + axis.axis]
        assert axis.size == nn
        formula = _lambdify_exact((laws.j,), axis.formula())
        for jj, counted in enumerate(axis.counts):
            assert counted == _brute_count(jj, nn, axis.kernel, axis.stride, axis.padding,
                                           axis.dilation)
            assert formula(jj) == counted, (jj, axis.formula())
        interior = axis.interior_formula()
        for jj in axis.interior:  # the interior law holds exactly there, by residue
            assert axis.counts[jj] == interior.subs(laws.j, jj)
            assert axis.counts[jj] == axis.interior_counts[(jj + axis.padding) % axis.stride]


@pytest.mark.parametrize(("k", "s", "d", "phases"), [
    (3, 2, 1, "2 for j ≡ 0, 1 for j ≡ 1 (mod 2)"),
    (4, 2, 1, "2 for 3 ≤ j ≤ 10"),  # even: one count, stated with its range (n = 6)
    (3, 2, 2, "3 for j ≡ 0, 0 for j ≡ 1 (mod 2)"),  # dilation 2, stride 2: holes
    (2, 4, 2, "1 for j ≡ 0, 0 for j ≡ 1 (mod 2)"),  # period 2 < stride 4
])
def test_law_text_states_the_phases(k, s, d, phases):
    # hand-derived: taps t·d mod s, counted per residue
    axis = sym.checkerboard_law((1, 1, k), (1, 6), stride=s, dilation=d).axes[0]
    assert phases in axis.law()
    latex = axis.law(latex=True)
    assert latex.count("{") == latex.count("}") and latex.count(r"\left") == latex.count(r"\right")


def test_law_on_a_layer_too_small_for_an_interior():
    axis = sym.checkerboard_law((1, 1, 3), (1, 1), stride=2).axes[0]
    assert not axis.interior and "too small" in axis.law()


def test_closed_form_argument_errors_name_the_parameter():
    with pytest.raises(cm.ConvMatrixError, match=r"`dilation` \(=2\) == 1"):
        sym.interior_overlap_formula(dilation=2)
    with pytest.raises(cm.ConvMatrixError, match=r"`stride` \(=0\)"):
        sym.overlap_formula(stride=0)
    with pytest.raises(cm.ConvMatrixError, match=r"`dilation` \(=0\)"):
        sym.overlap_formula(stride=2, dilation=0)


def test_forward_verdict_speaks_of_reads():
    verdict = sym.checkerboard_law((1, 1, 3, 3), (1, 8, 8), direction="forward", stride=2,
                                   padding=1)
    text = verdict.describe()
    assert verdict.direction == "forward" and "read 1, 2, 4 times" in text and "gradient" in text
    # the reads of a convolution are the overlap of its transpose
    assert np.array_equal(verdict.counts(), sym.read_counts((1, 1, 3, 3), (1, 8, 8), stride=2,
                                                            padding=1))


# ------------------------------------------------------------------------------------------
# round trips of the shape arithmetic


def test_round_trip_is_proved_symbolically():
    composed = sym.round_trip_size()
    assert sympy.expand(composed.rewrite(sympy.floor)) == arithmetic.n


@pytest.mark.parametrize(("o", "kk", "ss", "pp", "dd"), [
    v for v in itertools.product(range(1, 6), range(1, 4), range(1, 4), range(3), range(1, 3))])
def test_round_trip_sizes_are_every_input_with_that_output(o, kk, ss, pp, dd):
    sizes = sym.round_trip_sizes(o, kk, ss, pp, dd)
    brute = {}
    for nn in range(1, 40):
        try:
            if cm.conv_output_shape((1, 1, kk), (1, nn), stride=ss, padding=pp,
                                    dilation=dd)[1] == o:
                brute[nn] = None
        except cm.ConvMatrixError:
            continue
    assert set(sizes) == set(brute)
    assert len(sizes) <= ss
    for nn, a in sizes.items():
        assert 0 <= a < ss
        assert cm.conv_transpose_output_shape((1, 1, kk), (1, o), stride=ss, padding=pp,
                                              dilation=dd, output_padding=a)[1] == nn


def test_round_trip_errors_name_the_parameter():
    with pytest.raises(cm.ConvMatrixError, match=r"`stride` \(=0\)"):
        sym.round_trip_sizes(4, 3, stride=0)
    with pytest.raises(cm.ConvMatrixError, match="does not fit"):
        sym.round_trip_output_padding(2, 5)


# ------------------------------------------------------------------------------------------
# the fast path for generated symbols is the general construction, term for term


@st.composite
def any_layers(draw):
    direction = draw(st.sampled_from(["forward", "adjoint"]))
    ndim = draw(st.integers(1, 2))
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    size = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(ndim))
    if direction == "adjoint":
        geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        wshape = (c_in, c_out // groups, *kernel)
        build = cm.conv_transpose_spec
    else:
        mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
        geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                        padding_mode=mode)
        wshape = (c_out, c_in // groups, *kernel)
        build = cm.conv_spec
    try:
        spec = build(wshape, (c_in, *size), **geometry)
    except cm.ConvMatrixError:
        assume(False)
    return direction, spec, wshape, (c_in, *size), geometry


@SETTINGS
@given(layer=any_layers())
def test_generated_symbols_fast_path_equals_general_sympy(layer):
    direction, _, wshape, ishape, geometry = layer
    fast = layer_outputs(wshape, ishape, direction=direction, **geometry)
    general = layer_outputs(wshape, ishape, direction=direction,
                            weight=sym.weight_symbols(wshape), x=sym.input_symbols(ishape),
                            **geometry)
    for a, b in zip(fast, general, strict=True):
        assert a == b and a.args == b.args and type(a) is type(b)
        assert hash(a) == hash(b) and sympy.srepr(a) == sympy.srepr(b)


def test_output_with_no_terms_is_zero():
    # kernel 1, stride 2: the odd outputs of the transposed layer receive nothing
    y = sym.conv_transpose_outputs((1, 1, 1), (1, 3), stride=2)
    assert y[0, 1] == 0 and y[0, 1] is sympy.S.Zero


def test_positions_and_shapes_are_checked():
    with pytest.raises(cm.ConvMatrixError, match=r"`positions` entry \(=9\)"):
        layer_outputs((1, 1, 2), (1, 3), positions=[9])
    with pytest.raises(cm.ConvMatrixError, match=r"`x` has shape \(3,\)"):
        sym.conv_outputs((1, 1, 2), (1, 3), x=[1, 2, 3])


def test_symbolic_outputs_of_a_64x64_stride_2_transpose():
    y = sym.conv_transpose_outputs((1, 1, 3, 3), (1, 64, 64), stride=2)
    assert y.shape == (1, 129, 129)
    # one term per stored entry of Cᵀ: Σ over outputs of the term counts is the nnz
    terms = sum(len(sympy.Add.make_args(v)) for v in y.tolist()[0][64])  # one interior row
    assert terms == sum(sym.overlap_counts((1, 1, 3, 3), (1, 64, 64), stride=2)[64])


# ------------------------------------------------------------------------------------------
# explanations


def test_explanation_counts_merged_taps_once():
    e = sym.explain((2, 1, 3), (1, 4), padding=2, padding_mode="reflect")
    numeric = cm.conv_matrix(np.ones((2, 1, 3)), (1, 4), padding=2, padding_mode="reflect")
    assert e.nnz == numeric.nnz == 32
    assert f"{e.nnz} stored entries" in str(e)


def test_explanation_states_the_law_in_every_rendering():
    e = sym.explain((1, 1, 3, 3), (1, 4, 4), direction="adjoint", stride=2)
    text, md, latex = str(e), e.to_markdown(), e.to_latex()
    assert "c₀(j₀)·c₁(j₁)" in text and "counted: 1, 1, 2, 1, 2, 1, 2, 1, 1" in text
    assert r"c_{0}(j_{0}) \cdot c_{1}(j_{1})" in md and "Counted along spatial axis 1" in md
    assert r"\pmod{2}" in latex
    check_math(md)


def test_explanation_of_a_3d_layer_samples_corners_and_phases():
    e = sym.explain((1, 1, 3, 3, 3), (1, 5, 5, 5), direction="adjoint", stride=2)
    outputs = set(e.outputs)
    assert len(outputs) == 16 and not e.all_outputs
    size = e.output_shape[1]
    assert (0, 0, 0, 0) in outputs and (0, size - 1, size - 1, size - 1) in outputs
    mid = size // 2
    assert {(0, mid + a, mid + b, mid + c) for a, b, c in itertools.product((0, 1), repeat=3)} \
        <= outputs
    check_math(e.to_markdown())


def test_long_sums_are_shown_in_natural_index_order():
    e = sym.explain((1, 12, 1), (12, 3))  # 12 input channels: terms x_{0,0} … x_{11,0}
    line = next(v for v in str(e).splitlines() if v.startswith("  y[0, 0]"))
    positions = [line.index(f"x_{{{c},0}}") for c in range(8)]  # the first eight are shown
    assert positions == sorted(positions) and "x_{10,0}" not in line and "(12 terms)" in line


def test_explaining_a_large_transposed_layer_samples_it():
    e = sym.explain((64, 64, 3, 3), (64, 56, 56), direction="adjoint", stride=2, padding=1,
                    output_padding=1)
    text, md = str(e), e.to_markdown()
    assert e.matrix is None and e.output_shape == (64, 112, 112)
    assert "(112 values)" in text and len(md) < 60_000
