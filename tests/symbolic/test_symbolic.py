"""Symbolic derivations against the numeric matrices, the reference, and brute-force counts."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sympy.printing.pycode import PythonCodePrinter

import convmatrix as cm
from convmatrix import reference
from convmatrix import symbolic as sym
from convmatrix.symbolic import arithmetic, laws
from convmatrix.symbolic.counts import axis_overlap_counts
from tests import oracle

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------------
# the seed, derived


def test_seed_outputs_substitute_to_the_framework_numbers():
    ones = {"weight": np.ones((1, 1, 2, 2), dtype=int)}
    y = sym.conv_outputs((1, 1, 2, 2), (1, 3, 3), x=np.ones((1, 3, 3), dtype=int), **ones)
    assert y.tolist() == [[[4, 4], [4, 4]]]
    yt = sym.conv_transpose_outputs((1, 1, 2, 2), (1, 2, 2), x=np.ones((1, 2, 2), dtype=int),
                                    **ones)
    assert yt.tolist() == [[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]


def test_seed_symbolic_sums_have_one_term_per_overlapping_tap():
    y = sym.conv_transpose_outputs((1, 1, 2, 2), (1, 2, 2))
    counts = [[len(sympy.Add.make_args(y[0, i, j])) for j in range(3)] for i in range(3)]
    assert counts == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    w, x = sym.weight_symbols((1, 1, 2, 2))[0, 0], sym.input_symbols((1, 2, 2))[0]
    # hand derivation: the centre collects every tap, each from the input pixel it covers
    assert y[0, 1, 1] == w[0, 0] * x[1, 1] + w[0, 1] * x[1, 0] + w[1, 0] * x[0, 1] + \
        w[1, 1] * x[0, 0]


# ------------------------------------------------------------------------------------------
# symbolic matrices and outputs vs numeric matrices (random geometries)


@st.composite
def small_layers(draw, direction="forward"):
    ndim = draw(st.integers(1, 2))
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    size = tuple(draw(st.integers(2, 4)) for _ in range(ndim))
    if direction == "adjoint":
        padding = tuple(draw(st.integers(0, 1)) for _ in range(ndim))
        output_padding = tuple(draw(st.integers(0, max(s, d) - 1))
                               for s, d in zip(stride, dilation, strict=True))
        geometry = dict(stride=stride, padding=padding, output_padding=output_padding,
                        dilation=dilation, groups=groups)
        wshape = (c_in, c_out // groups, *kernel)
        try:
            cm.conv_transpose_spec(wshape, (c_in, *size), **geometry)
        except cm.ConvMatrixError:
            assume(False)
        return wshape, (c_in, *size), geometry
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    padding = tuple(draw(st.integers(0, 1)) for _ in range(ndim))
    geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                    padding_mode=mode)
    wshape = (c_out, c_in // groups, *kernel)
    try:
        cm.conv_spec(wshape, (c_in, *size), **geometry)
    except cm.ConvMatrixError:
        assume(False)
    return wshape, (c_in, *size), geometry


def _substitute_matrix(matrix: sympy.ImmutableSparseMatrix, weight: np.ndarray) -> np.ndarray:
    values = dict(zip(sym.weight_symbols(weight.shape).ravel().tolist(),
                      weight.ravel().tolist(), strict=True))
    dense = np.zeros(matrix.shape, dtype=np.int64)
    for (r, c), expr in matrix.todok().items():
        dense[r, c] = int(expr.xreplace(values))
    return dense


@SETTINGS
@given(layer=small_layers(), seed=st.integers(0, 10**6))
def test_symbolic_conv_matrix_substitutes_to_numeric(layer, seed):
    wshape, ishape, geometry = layer
    weight = np.random.default_rng(seed).integers(-5, 6, wshape)
    M = sym.symbolic_conv_matrix(wshape, ishape, **geometry)
    numeric = cm.conv_matrix(weight, ishape, **geometry)
    assert np.array_equal(_substitute_matrix(M, weight), numeric.toarray())


@SETTINGS
@given(layer=small_layers(direction="adjoint"), seed=st.integers(0, 10**6))
def test_symbolic_conv_transpose_matrix_substitutes_to_numeric(layer, seed):
    wshape, ishape, geometry = layer
    weight = np.random.default_rng(seed).integers(-5, 6, wshape)
    M = sym.symbolic_conv_transpose_matrix(wshape, ishape, **geometry)
    assert np.array_equal(_substitute_matrix(M, weight),
                          cm.conv_transpose_matrix(weight, ishape, **geometry).toarray())


@SETTINGS
@given(layer=small_layers(), seed=st.integers(0, 10**6))
def test_symbolic_outputs_with_numbers_equal_reference(layer, seed):
    wshape, ishape, geometry = layer
    rng = np.random.default_rng(seed)
    weight, x = rng.integers(-4, 5, wshape), rng.integers(-4, 5, ishape)
    y = sym.conv_outputs(wshape, ishape, weight=weight, x=x, **geometry)
    expected = reference.conv(x, weight, **geometry)
    assert y.shape == expected.shape
    assert np.array_equal(np.array(y.tolist(), dtype=np.int64), expected)


@SETTINGS
@given(layer=small_layers(direction="adjoint"), seed=st.integers(0, 10**6))
def test_symbolic_transpose_outputs_substitute_to_reference(layer, seed):
    wshape, ishape, geometry = layer
    rng = np.random.default_rng(seed)
    weight, x = rng.integers(-4, 5, wshape), rng.integers(-4, 5, ishape)
    y = sym.conv_transpose_outputs(wshape, ishape, **geometry)  # symbols, then substitute
    values = dict(zip(sym.weight_symbols(wshape).ravel().tolist(), weight.ravel().tolist(),
                      strict=True))
    values.update(zip(sym.input_symbols(ishape).ravel().tolist(), x.ravel().tolist(),
                      strict=True))
    flat = np.array(y.tolist(), dtype=object).ravel()
    got = np.array([int(sympy.sympify(v).xreplace(values)) for v in flat]).reshape(y.shape)
    assert np.array_equal(got, reference.conv_transpose(x, weight, **geometry))


@pytest.mark.parametrize("case", [c for c in oracle.select("torch") if
                                  np.prod(c["output_shape"]) <= 400],
                         ids=lambda c: c["id"])
def test_symbolic_outputs_against_torch_oracle(case):
    a = oracle.arrays(case)
    if case["op"] == "conv":
        y = sym.conv_outputs(a["weight"].shape, case["input_shape"], weight=a["weight"],
                             x=a["x"], stride=case["stride"], dilation=case["dilation"],
                             padding=oracle.torch_padding(case), groups=case["groups"],
                             padding_mode=case["padding_mode"])
    else:
        y = sym.conv_transpose_outputs(a["weight"].shape, case["input_shape"],
                                       weight=a["weight"], x=a["x"], stride=case["stride"],
                                       padding=case["padding"], dilation=case["dilation"],
                                       output_padding=case["output_padding"],
                                       groups=case["groups"])
    np.testing.assert_allclose(np.array(y.tolist(), dtype=float), a["y"], rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("case", oracle.cases()[:2], ids=lambda c: c["id"])
def test_seed_against_the_keras_oracle(case):
    # the first two Keras records are the seed exactly; Keras kernels are (*k, C_in, C_out)
    # for Conv2D and (*k, C_out, C_in) for Conv2DTranspose: both move to torch's layout so
    a = oracle.arrays(case)
    kernel = np.moveaxis(a["kernel"], (-2, -1), (1, 0))
    x = np.moveaxis(a["x"], -1, 0)
    outputs = sym.conv_outputs if case["op"] == "Conv2D" else sym.conv_transpose_outputs
    y = outputs(kernel.shape, x.shape, weight=kernel, x=x)
    assert np.array_equal(np.array(y.tolist(), dtype=float), np.moveaxis(a["y"], -1, 0))


def test_custom_symbols_and_expressions_as_weights():
    a, b = sympy.symbols("a b")
    y = sym.conv_outputs((1, 1, 2), (1, 3), weight=[[[a, b]]])
    x = sym.input_symbols((1, 3))[0]
    assert y[0, 0] == a * x[0] + b * x[1]
    with pytest.raises(cm.ConvMatrixError, match=r"`weight` has shape \(2,\)"):
        sym.conv_outputs((1, 1, 2), (1, 3), weight=[a, b])


# ------------------------------------------------------------------------------------------
# overlap counts, closed form, checkerboard


@pytest.mark.parametrize(("k", "s", "p", "d", "op"), [
    (2, 1, 0, 1, 0), (3, 2, 0, 1, 1), (4, 2, 1, 1, 0), (3, 3, 1, 2, 2), (5, 2, 2, 1, 1)])
def test_overlap_counts_equal_transposed_conv_of_ones(k, s, p, d, op):
    # reference: transposed convolution of an all-ones input with an all-ones kernel
    shape = (1, 4, 3)
    counts = sym.overlap_counts((1, 1, k, k), shape, stride=s, padding=p, dilation=d,
                                output_padding=op)
    ones = reference.conv_transpose(np.ones(shape, dtype=int), np.ones((1, 1, k, k), dtype=int),
                                    stride=s, padding=p, dilation=d, output_padding=op)
    assert np.array_equal(counts, ones[0])
    # N-D is the outer product of the per-axis maps
    spec = cm.conv_transpose_spec((1, 1, k, k), shape, stride=s, padding=p, dilation=d,
                                  output_padding=op)
    per_axis = [axis_overlap_counts(spec, a) for a in range(2)]
    assert np.array_equal(counts, np.multiply.outer(*per_axis))


class _ExactPrinter(PythonCodePrinter):
    """Prints rationals as Fractions, so lambdified floors and ceilings stay exact."""

    def _print_Rational(self, expr):
        return f"Fraction({expr.p}, {expr.q})"

    def _print_Mod(self, expr):
        # SymPy prints -Mod(j, 2)/2 as `-Fraction(1, 2)*j % 2`, which Python reads as
        # ((-j/2) % 2): `%` binds like `*`, so a Mod inside a product needs its parentheses
        a, b = (self._print(v) for v in expr.args)
        return f"(({a}) % ({b}))"


def _lambdify_exact(args, expr):
    return sympy.lambdify(args, expr, modules=[{"Fraction": Fraction, "math": math}, "math"],
                          printer=_ExactPrinter)


def _brute_count(jj, nn, kk, ss, pp, dd):
    return sum(1 for i in range(nn) for tt in range(kk) if i * ss - pp + tt * dd == jj)


@pytest.mark.parametrize(("ss", "dd"), list(itertools.product(range(1, 4), range(1, 4))))
def test_closed_form_overlap_matches_brute_force(ss, dd):
    formula = sym.overlap_formula(stride=ss, dilation=dd)
    # evaluate the SymPy expression through lambdify (SymPy's own translation), fast enough
    # for the whole grid of n, k, p and output positions j; Fractions keep the divisions exact
    evaluate = _lambdify_exact((laws.j, laws.n, laws.k, laws.p), formula)
    for nn, kk, pp in itertools.product(range(1, 6), range(1, 6), range(3)):
        length = (nn - 1) * ss + dd * (kk - 1) + 1 - 2 * pp + (ss - 1)
        for jj in range(max(length, 1)):
            assert evaluate(jj, nn, kk, pp) == _brute_count(jj, nn, kk, ss, pp, dd), (
                jj, nn, kk, pp, formula)
    # and SymPy's own substitution on a few points
    for jj, nn, kk, pp in [(0, 2, 2, 0), (3, 4, 3, 1), (5, 3, 4, 2)]:
        values = {laws.j: jj, laws.n: nn, laws.k: kk, laws.p: pp}
        assert int(formula.subs(values)) == _brute_count(jj, nn, kk, ss, pp, dd)


def test_symbolic_stride_formula_and_sum_form():
    formula = _lambdify_exact((laws.j, laws.n, laws.k, laws.p, laws.s),
                              sym.overlap_formula())
    for nn, kk, ss, pp, jj in itertools.product(range(1, 4), range(1, 4), range(1, 4),
                                                range(2), range(8)):
        assert formula(jj, nn, kk, pp, ss) == _brute_count(jj, nn, kk, ss, pp, 1)
    summed = sym.overlap_sum_formula()
    for nn, kk, ss, pp, dd, jj in [(2, 2, 1, 0, 1, 1), (3, 3, 2, 1, 1, 2), (3, 2, 2, 0, 3, 3),
                                   (4, 3, 3, 1, 2, 4)]:
        values = {laws.j: jj, laws.n: nn, laws.k: kk, laws.p: pp, laws.s: ss,
                  laws.d: dd}
        assert int(summed.subs(values).doit()) == _brute_count(jj, nn, kk, ss, pp, dd)


@pytest.mark.parametrize(("k", "s", "even", "period", "distinct"), [
    (4, 2, True, 1, (2,)), (3, 2, False, 2, (1, 2)), (2, 1, True, 1, (2,)),
    (5, 3, False, 3, (1, 2)), (1, 2, False, 2, (0, 1)), (6, 3, True, 1, (2,))])
def test_checkerboard_verdicts(k, s, even, period, distinct):
    verdict = sym.checkerboard_law((1, 1, k, k), (1, 6, 6), stride=s)
    assert verdict.even is even
    axis = verdict.axes[0]
    assert axis.period == period and axis.distinct == distinct
    # interior values of the 2-D map are the products of the per-axis counts
    counts = sym.overlap_counts((1, 1, k, k), (1, 6, 6), stride=s)
    interior = counts[k:-k, k:-k]
    assert set(np.unique(interior).tolist()) == set(verdict.interior_values)
    assert ("Uneven" in verdict.describe()) is (not even)


def test_checkerboard_imbalance_in_2d_is_the_product():
    verdict = sym.checkerboard_law((1, 1, 3, 3), (1, 6, 6), stride=2)
    assert verdict.interior_values == (1, 2, 4) and verdict.ratio == 4.0
    assert math.isinf(sym.checkerboard_law((1, 1, 1, 1), (1, 4, 4), stride=2).ratio)


# ------------------------------------------------------------------------------------------
# shape arithmetic


@pytest.mark.parametrize(("nn", "kk", "ss", "pp", "dd"), [
    v for v in itertools.product(range(1, 9), range(1, 4), range(1, 4), range(3), range(1, 3))
    if v[0] + 2 * v[3] >= v[4] * (v[1] - 1) + 1])
def test_shape_formulas_match_numeric_shapes(nn, kk, ss, pp, dd):
    values = {arithmetic.n: nn, arithmetic.k: kk, arithmetic.s: ss, arithmetic.p: pp,
              arithmetic.d: dd}
    o = cm.conv_output_shape((1, 1, kk), (1, nn), stride=ss, padding=pp, dilation=dd)[1]
    assert sym.conv_output_size().subs(values) == o
    a = sym.round_trip_output_padding(nn, kk, ss, pp, dd)
    back = sym.conv_transpose_output_size().subs({**values, arithmetic.n: o, arithmetic.a: a})
    assert back == nn  # the transposed layer maps the output size back to the input size
    if a < max(ss, dd):
        assert cm.conv_transpose_output_shape((1, 1, kk), (1, o), stride=ss, padding=pp,
                                              dilation=dd, output_padding=a)[1] == nn
    for rel, formula, numeric in sym.check_relationships(nn, kk, ss, pp, dd):
        assert formula == numeric, rel.title
    if pp <= nn:
        for rel, formula, numeric in sym.check_relationships(nn, kk, ss, pp, dd, a if a < ss
                                                             else 0):
            assert formula == numeric, rel.title


def test_relationships_cover_the_paper_numbers():
    numbers = {rel.number for rel in sym.RELATIONSHIPS}
    assert numbers == set(range(1, 16)) - {7}  # 7 is pooling, which has no weights


# ------------------------------------------------------------------------------------------
# the explanation object


def test_explain_renders_text_latex_and_markdown():
    e = sym.explain((1, 1, 2, 2), (1, 2, 2), direction="adjoint",
                    weight=np.ones((1, 1, 2, 2), dtype=int), x=np.ones((1, 2, 2), dtype=int))
    text = str(e)
    assert "Cᵀ: 9×4, 16 stored entries" in text and "= 4" in text
    md = e.to_markdown()
    assert md.count("$$") % 2 == 0 and r"\begin{aligned}" in md
    assert r"\begin{align*}" in e._repr_latex_() and "Even overlap" in e._repr_latex_()
    assert r"\begin{align*}" in e.to_latex()
    numeric = {k: int(v) for k, v in e.numeric_outputs.items()}
    assert [numeric[(0, i, j)] for i in range(3) for j in range(3)] == [1, 2, 1, 2, 4, 2, 1, 2, 1]


def test_explain_large_layer_is_sampled():
    # its speed is measured by benchmarks/bench_symbolic.py, not asserted here
    e = sym.explain((64, 64, 3, 3), (64, 56, 56), padding=1)
    assert e.matrix is None and not e.all_outputs and 0 < len(e.outputs) <= 16
    md = e.to_markdown()
    assert len(md) < 60_000 and r"(576\text{ terms})" in md  # 64 channels × 9 taps
