"""convmatrix.testing: probing black boxes, naming their bugs, identifying their geometry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import convmatrix as cm
from convmatrix import reference
from convmatrix.testing import (
    ConvMismatch,
    assert_conv_equal,
    identify,
    probe,
    probe_matrix,
)
from convmatrix.testing.strategies import conv_layers
from tests.buggy import CORPUS, CORRECT, loop_conv
from tests.helpers import rng


def _reference_fn(layer):
    """The independent dense reference with the layer's own arguments (no matrix code)."""
    args = dict(layer._arguments)
    if isinstance(layer, cm.ConvTranspose):
        return lambda y: reference.conv_transpose(y, layer.weight, **args)
    return lambda x: reference.conv(x, layer.weight, **args)


# ------------------------------------------------------------------------------ the corpus


@pytest.mark.parametrize("bug", CORPUS, ids=lambda b: b.name)
def test_wrong_implementation_is_named(bug):
    if bug.uses_torch:
        pytest.importorskip("torch")
    layer = bug.layer()
    with pytest.raises(ConvMismatch) as info:
        assert_conv_equal(bug.fn(layer), layer, batched=bug.batched)
    err = info.value
    assert isinstance(err, AssertionError)
    assert err.differences == bug.differences, str(err)
    message = str(err)
    assert message.startswith(f"fn does not compute {layer!r}")
    for key in bug.differences:
        if key not in ("shape", "offset", "nonlinear"):
            assert f"({key})" in message or f"{key}=" in message, message
    if "nonlinear" in bug.differences:
        assert err.match is None
    else:
        # the match is a layer fn computes exactly: check it against fn independently
        assert err.match is not None, message
        fn = bug.fn(layer)
        x = rng(bug.name).standard_normal(layer.input_shape)
        out = np.asarray(fn(x[None]) if bug.batched else fn(x))
        out = out[0] if bug.batched else out
        np.testing.assert_allclose(err.match(x), out, rtol=1e-10, atol=1e-12)


def test_corpus_covers_twelve_bug_kinds():
    kinds = {key for bug in CORPUS for key in bug.differences if key != "shape"}
    assert len(kinds) >= 11
    assert len(CORPUS) >= 12


@pytest.mark.parametrize(("name", "make", "fn", "uses_torch", "batched"), CORRECT,
                         ids=[c[0] for c in CORRECT])
def test_correct_implementation_passes(name, make, fn, uses_torch, batched):
    if uses_torch:
        pytest.importorskip("torch")
    layer = make()
    assert_conv_equal(fn(layer), layer, batched=batched)


def test_message_of_the_issue_example():
    # the issue's example: "same" padding with the extra pixel on the wrong side
    w = rng("same").standard_normal((1, 1, 4, 4))
    layer = cm.Conv(w, (1, 6, 6), padding="same")
    with pytest.raises(ConvMismatch, match=r"fn computes padding=\(\(2, 1\), \(2, 1\)\); "
                                           r"the layer has \(\(1, 2\), \(1, 2\)\)") as info:
        assert_conv_equal(lambda x: loop_conv(x, w, padding=((2, 1), (2, 1))), layer)
    message = str(info.value)
    assert "outputs differ, at (0, 0, 0)" in message
    # weights are named by value, inputs by position: the layer's first output reads x[0, 0, 0]
    # through tap (1, 1) (torch pads 1 before); fn's through tap (2, 2)
    assert "layer: w[0, 0, 1, 1]·x[0, 0, 0]" in message
    assert "fn:    w[0, 0, 2, 2]·x[0, 0, 0]" in message
    assert "neither torch nor TF" in message


def test_shape_message_gives_formula_and_explaining_parameters():
    w = rng("shape").standard_normal((2, 3, 3, 3))
    layer = cm.Conv(w, (3, 7, 7), padding=1)
    with pytest.raises(ConvMismatch) as info:
        assert_conv_equal(lambda x: loop_conv(x, w, padding=((1, 1), (1, 1)), stride=(2, 2)),
                          layer)
    message = str(info.value)
    assert "shape: fn returns (2, 4, 4); the layer gives (2, 7, 7)" in message
    assert "⌊(7 + 1 + 1 − 1·(3 − 1) − 1) / 1⌋ + 1 = 7   (fn: 4)" in message
    assert "stride=(2, 2)" in message


def test_unexplained_difference_says_so_and_shows_the_diff():
    w = rng("none").standard_normal((1, 2, 3, 3))
    layer = cm.Conv(w, (2, 5, 5), padding=1)
    # a corrupted tap: no geometry explains it
    bad = w.copy()
    bad[0, 1, 2, 0] += 1.0
    with pytest.raises(ConvMismatch, match="no geometry within the searched") as info:
        assert_conv_equal(lambda x: reference.conv(x, bad, padding=1), layer)
    assert info.value.differences == {}
    assert info.value.match is None
    assert "outputs differ" in str(info.value)


def test_tolerances_are_honoured():
    w = rng("tol").standard_normal((1, 1, 3, 3))
    layer = cm.Conv(w, (1, 4, 4), padding=1)
    assert_conv_equal(lambda x: reference.conv(x, w * (1 + 1e-9), padding=1), layer)
    with pytest.raises(ConvMismatch):
        assert_conv_equal(lambda x: reference.conv(x, w * (1 + 1e-5), padding=1), layer)
    assert_conv_equal(lambda x: reference.conv(x, w * (1 + 1e-5), padding=1), layer, rtol=1e-4)


def test_assert_conv_equal_refuses_non_layers():
    with pytest.raises(cm.ConvMatrixError, match=r"`layer`.*Conv or ConvTranspose"):
        assert_conv_equal(lambda x: x, "conv")


# ------------------------------------------------------------------------------ probing


@settings(max_examples=40, deadline=None)
@given(layer=conv_layers(dims=(1, 2), max_side=6, max_channels=3))
def test_coloured_probe_equals_conv_matrix(layer):
    result = probe(_reference_fn(layer), layer.input_shape, layer=layer)
    expected = layer.matrix()
    assert result.matrix.shape == expected.shape
    np.testing.assert_allclose(result.matrix.toarray(), expected.toarray(), rtol=1e-12,
                               atol=1e-14)
    assert result.method == "coloured: the layer's pattern"
    # about C_in·∏k̂ probes (+5 for the linearity and the check); wrapping modes can need a
    # few more colours (a circular band on an odd cycle needs 3 for a 2-tap kernel)
    spec = layer.spec
    sizes = layer.input_shape[1:]
    extents = (spec.effective_kernel_size if isinstance(layer, cm.Conv) else
               [-(-k // s) for k, s in zip(spec.effective_kernel_size, spec.stride, strict=True)])
    per_axis = [k if spec.padding_mode == "zeros" else min(n, 2 * k)
                for k, n in zip(extents, sizes, strict=True)]
    assert result.samples <= 5 + layer.input_shape[0] * np.prod(per_axis)


@settings(max_examples=25, deadline=None)
@given(layer=conv_layers(dims=(1, 2), direction="forward", padding_modes=("zeros",),
                         max_side=7, max_channels=2))
def test_coloured_probe_is_never_wrong_when_fn_reads_outside(layer):
    # fn: a conv with a kernel two taps wider plus a global-mean term, probed on the layer's
    # pattern; the result must be fn's true matrix (built independently below), never a guess
    spec = layer.spec
    wide = rng("wide", layer.input_shape).standard_normal(
        (spec.out_channels, spec.in_channels, *(k + 2 for k in spec.kernel_size)))
    pad = tuple((b + 1, a + 1) for b, a in spec.padding)
    n = int(np.prod(layer.input_shape))

    def fn(x):
        return reference.conv(x, wide, padding=pad, stride=spec.stride) + x.mean() * 0.5

    wide_matrix = cm.conv_matrix(wide, layer.input_shape, padding=pad, stride=spec.stride)
    if wide_matrix.shape[0] != layer.matrix_shape[0]:
        return
    truth = wide_matrix.toarray() + 0.5 / n
    recovered = probe_matrix(fn, layer.input_shape, layer=layer).toarray()
    np.testing.assert_allclose(recovered, truth, rtol=1e-12, atol=1e-14)


def test_widening_levels_and_unit_fallback():
    w = rng("levels").standard_normal((2, 2, 3, 3))
    layer = cm.Conv(w, (2, 9, 9), padding=1)
    shifted = probe(lambda x: reference.conv(x, w, padding=((2, 0), (1, 1))), (2, 9, 9),
                    layer=layer)
    assert shifted.method.startswith("coloured: the layer's pattern widened by 1 pixel")
    w7 = rng("levels7").standard_normal((2, 2, 7, 7))
    wider = probe(lambda x: reference.conv(x, w7, padding=3), (2, 9, 9), layer=layer)
    assert "kernel extent" in wider.method
    np.testing.assert_array_equal(wider.matrix.toarray(),
                                  cm.conv_matrix(w7, (2, 9, 9), padding=3).toarray())
    big = cm.Conv(w, (2, 16, 16), padding=1)
    dense = probe(lambda x: reference.conv(x, w, padding=1) + x.sum(), (2, 16, 16), layer=big)
    assert dense.method == "unit vectors"
    np.testing.assert_allclose(dense.matrix.toarray(), big.matrix().toarray() + 1.0,
                               rtol=1e-12)


def test_probe_without_layer_uses_unit_vectors():
    w = rng("unit").standard_normal((2, 1, 3))
    M = probe_matrix(lambda x: np.stack([np.correlate(x[0], w[o, 0], "valid") for o in (0, 1)]),
                     (1, 7))
    np.testing.assert_array_equal(M.toarray(), cm.conv_matrix(w, (1, 7)).toarray())


def test_probe_reports_offset_and_probe_matrix_refuses_it():
    w = rng("offset").standard_normal((1, 1, 3))
    fn = lambda x: reference.conv(x, w) + 2.0  # noqa: E731
    result = probe(fn, (1, 6))
    np.testing.assert_array_equal(result.offset, np.full(4, 2.0))
    np.testing.assert_allclose(result.matrix.toarray(), cm.conv_matrix(w, (1, 6)).toarray(),
                               rtol=1e-12)
    with pytest.raises(cm.ConvMatrixError, match=r"affine, not linear: fn\(0\) is non-zero"):
        probe_matrix(fn, (1, 6))


@pytest.mark.parametrize("fn", [lambda x: np.maximum(x, 0), lambda x: x**2, np.abs])
def test_probe_refuses_nonlinear_functions(fn):
    with pytest.raises(cm.ConvMatrixError, match=r"`fn` is not linear: fn\(a \+ b\)"):
        probe_matrix(fn, (1, 5))


def test_probe_guards_memory_before_allocating():
    layer = cm.Conv(np.ones((4, 4, 3, 3)), (4, 32, 32), padding=1)
    with pytest.raises(cm.ConvMatrixError, match=r"over `max_bytes`"):
        probe_matrix(lambda x: reference.conv(x, layer.weight, padding=1), layer.input_shape,
                     layer=layer, max_bytes=10_000)
    with pytest.raises(cm.ConvMatrixError, match=r"unit-vector probing .* over `max_bytes`"):
        probe_matrix(lambda x: np.repeat(x, 3, axis=0), (1, 40), max_bytes=1000)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"input_shape": (0, 3)}, r"`input_shape` \(=\(0, 3\)\) must be a tuple of positive ints"),
    ({"input_shape": "abc"}, r"`input_shape`"),
    ({"max_bytes": -1}, r"`max_bytes` \(=-1\)"),
    ({"layer": "conv"}, r"`layer` \(='conv'\) must be a convmatrix layer"),
])
def test_probe_argument_errors(kwargs, match):
    args = {"input_shape": (1, 4), **kwargs}
    with pytest.raises(cm.ConvMatrixError, match=match):
        probe_matrix(lambda x: x, args.pop("input_shape"), **args)


def test_probe_names_inconsistent_outputs():
    with pytest.raises(cm.ConvMatrixError, match=r"returned .*dtype object"):
        probe_matrix(lambda x: np.array(["a"], dtype=object), (1, 3))
    with pytest.raises(cm.ConvMatrixError, match=r"with batched=True it must return \(batch"):
        probe_matrix(lambda x: x[0], (1, 3), batched=True)


def test_probe_accepts_torch_tensors_requiring_grad():
    torch = pytest.importorskip("torch")
    w = torch.tensor(rng("grad").standard_normal((2, 1, 3)), requires_grad=True)
    M = probe_matrix(lambda x: torch.nn.functional.conv1d(torch.from_numpy(x), w, padding=1),
                     (1, 6), batched=True, layer=cm.Conv(w.detach().numpy(), (1, 6), padding=1))
    assert (M != cm.conv_matrix(w.detach().numpy(), (1, 6), padding=1)).nnz == 0


# ------------------------------------------------------------------------------ identify


def test_identify_finds_the_geometry():
    w = rng("identify").standard_normal((2, 1, 3, 2))
    fn = lambda x: reference.conv(x, w, stride=(2, 1), padding=((1, 1), (0, 1)),  # noqa: E731
                                  padding_mode="replicate")
    found = identify(fn, (1, 6, 5), w, direction="forward")
    assert found, "nothing identified"
    x = rng("identify-x").standard_normal((1, 6, 5))
    for layer in found:
        np.testing.assert_allclose(layer(x), fn(x), rtol=1e-12)
    assert any(layer.spec.padding_mode == "replicate" and layer.stride == (2, 1)
               for layer in found)


def test_identify_transposed_with_bias_and_empty_for_nonlinear():
    torch = pytest.importorskip("torch")
    w = rng("identify-t").standard_normal((2, 3, 3))
    fn = lambda y: torch.nn.functional.conv_transpose1d(  # noqa: E731
        torch.from_numpy(y)[None], torch.from_numpy(w), torch.tensor([1.0, 2.0, 3.0]),
        stride=2, padding=1)[0]
    found = identify(fn, (2, 4), w)
    assert found and all(isinstance(layer, cm.ConvTranspose) for layer in found)
    assert found[0].stride == (2,) and found[0].padding == ((1, 1),)
    np.testing.assert_array_equal(found[0].bias, [1.0, 2.0, 3.0])
    assert identify(lambda y: np.tanh(fn(y).numpy()), (2, 4), w) == []


# ------------------------------------------------------------------------------ strategies


@settings(max_examples=30, deadline=None)
@given(layer=conv_layers(dims=(1, 2, 3), max_side=5, padding_modes=("symmetric", "reflect")))
def test_strategy_layers_are_valid_and_verify(layer):
    assert layer.ndim in (1, 2, 3)
    if isinstance(layer, cm.Conv):
        assert layer.padding_mode in ("symmetric", "reflect")
    x = rng("strategy", layer.input_shape).standard_normal(layer.input_shape)
    np.testing.assert_allclose(layer(x), _reference_fn(layer)(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"dims": 0}, r"`dims` \(=0\)"),
    ({"max_side": 0}, r"`max_side` \(=0\)"),
    ({"max_padding": -1}, r"`max_padding` \(=-1\)"),
    ({"padding_modes": ("mirror",)}, r"`padding_modes`"),
])
def test_strategy_argument_errors(kwargs, match):
    with pytest.raises(cm.ConvMatrixError, match=match):
        conv_layers(**kwargs)


def test_float32_code_is_not_called_nonlinear():
    torch = pytest.importorskip("torch")
    w = rng("f32").standard_normal((2, 3, 3, 3))
    layer = cm.Conv(w, (3, 6, 6), padding=1)
    w32 = torch.from_numpy(w).float()

    def fn(x):
        return torch.nn.functional.conv2d(torch.from_numpy(x).float(), w32, padding=1)

    M = probe_matrix(fn, layer.input_shape, layer=layer, batched=True)
    np.testing.assert_allclose(M.toarray(), layer.matrix().toarray(), rtol=1e-6)
    assert_conv_equal(fn, layer, batched=True, rtol=1e-6, atol=1e-6)
    flipped = lambda x: fn(x[:, :, ::-1, ::-1].copy()).flip(2, 3)  # noqa: E731
    with pytest.raises(ConvMismatch) as info:
        assert_conv_equal(flipped, layer, batched=True, rtol=1e-6, atol=1e-6)
    assert info.value.differences == {"kernel_flip": (False, True)}


def test_flat_output_is_a_shape_difference_compared_after_reshape():
    w = rng("flat").standard_normal((2, 1, 3))
    layer = cm.Conv(w, (1, 6), padding=1)
    with pytest.raises(ConvMismatch, match=r"compared below reshaped to \(2, 6\)") as info:
        assert_conv_equal(lambda x: reference.conv(x, w, padding=1).ravel(), layer)
    assert info.value.differences == {"shape": ((2, 6), (12,))}
    with pytest.raises(ConvMismatch, match=r"no geometry within") as info:
        assert_conv_equal(lambda x: reference.conv(x, w, padding=1).ravel()[:5], layer)
    assert info.value.differences == {"shape": ((2, 6), (5,))}


def test_offset_differences_against_the_layers_bias():
    w = rng("bias").standard_normal((2, 1, 3))
    biased = cm.Conv(w, (1, 6), padding=1, bias=[1.0, -2.0])
    # fn forgets the bias: the match is the layer without one
    with pytest.raises(ConvMismatch, match="only the offset differs") as info:
        assert_conv_equal(lambda x: reference.conv(x, w, padding=1), biased)
    assert info.value.differences == {"offset": ((1.0, -2.0), (0.0, 0.0))}
    assert info.value.match is not None and info.value.match.bias is None
    # the right bias with another geometry: only the geometry differs
    with pytest.raises(ConvMismatch) as info:
        assert_conv_equal(lambda x: reference.conv(x, w, padding=2)
                          + np.array([1.0, -2.0])[:, None], biased)
    assert info.value.differences == {"shape": ((2, 6), (2, 8)),
                                      "padding": (((1, 1),), ((2, 2),))}
    np.testing.assert_array_equal(info.value.match.bias, [1.0, -2.0])
    # an offset varying within a channel is no bias: named, but no match
    with pytest.raises(ConvMismatch) as info:
        assert_conv_equal(lambda x: reference.conv(x, w, padding=1) + np.arange(6.0), biased)
    assert info.value.differences == {"offset": ((1.0, -2.0), "varies within output channels")}
    assert info.value.match is None
