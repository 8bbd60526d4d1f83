"""Overlap counts and checkerboard verdicts of layers and stacks, against independent counts:
live torch modules with all-ones weights applied to ones, and brute-force path enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.symbolic.composed import AxisStep, composed_law
from tests.helpers import rng


def _torch_chain(specs, input_shape, *, fill="ones", seed_key=()):
    """(convmatrix stack, torch nn.Sequential) of ConvTranspose/Conv layers, same weights.

    ``specs``: tuples ``(kind, c_out, kernel, stride, padding, dilation)`` in layer order.
    """
    torch = pytest.importorskip("torch")
    nn = torch.nn
    ndim = len(input_shape) - 1
    conv_t = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[ndim]
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[ndim]
    modules, layers, shape = [], [], tuple(input_shape)
    generator = rng("chain", specs, input_shape, fill, *seed_key)
    for kind, c_out, kernel, stride, padding, dilation in specs:
        cls = conv_t if kind == "T" else conv
        module = cls(shape[0], c_out, kernel, stride=stride, padding=padding,
                     dilation=dilation, bias=False).double()
        with torch.no_grad():
            values = (np.ones(tuple(module.weight.shape)) if fill == "ones"
                      else generator.uniform(0.1, 1.0, tuple(module.weight.shape)))
            module.weight.copy_(torch.from_numpy(values))
        layer = cm.from_torch(module, shape)
        modules.append(module)
        layers.append(layer)
        shape = layer.output_shape
    return cm.Sequential(layers), nn.Sequential(*modules)


def _torch_map(module, input_shape):
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        out = module(torch.ones((1, *input_shape), dtype=torch.float64))
    return out[0].numpy()


K3S2 = ("T", 1, 3, 2, 0, 1)
K4S2 = ("T", 1, 4, 2, 1, 1)
STACKS = [  # (layer specs, input shape)
    ([K3S2, K3S2], (1, 6, 6)),
    ([K4S2, K4S2], (1, 5, 5)),
    ([K3S2, K3S2, K3S2], (1, 4)),
    ([("T", 2, 3, 2, 1, 1), ("T", 3, 5, 3, 2, 1)], (2, 4, 3)),
    ([("T", 1, 2, 2, 0, 1), ("C", 1, 3, 1, 1, 1)], (1, 5, 5)),        # resize-convolution
    ([("T", 1, 3, 2, 0, 2), ("T", 1, 2, 3, 1, 1)], (1, 6)),          # dilation
    ([("C", 2, 3, 1, 0, 1), ("T", 1, 4, 2, 1, 1), ("T", 1, 3, 1, 1, 1)], (1, 7, 6)),
    ([K3S2, ("T", 1, 3, 2, 1, 1)], (1, 3, 3, 3)),                    # 3-D
]


@pytest.mark.parametrize(("specs", "input_shape"), STACKS)
def test_overlap_counts_of_stacks_equal_torch_with_all_ones_weights(specs, input_shape):
    stack, module = _torch_chain(specs, input_shape)
    expected = _torch_map(module, input_shape)
    counts = stack.overlap_counts()
    assert counts.dtype == np.int64 and counts.shape == expected.shape
    np.testing.assert_array_equal(counts, expected)


def _central(values):
    """The middle third of a map along every spatial axis (far from every border)."""
    return values[(slice(None), *[slice(size // 3, size - size // 3)
                                  for size in values.shape[1:]])]


@pytest.mark.parametrize(("specs", "input_shape"), STACKS)
def test_interior_values_and_law_match_the_centre_of_a_large_torch_map(specs, input_shape):
    # the verdict on the small input equals what the centre of a large input shows (far from
    # any border, computed by torch); the composed law predicts the same values
    large = (input_shape[0], *[16] * (len(input_shape) - 1))
    _, module = _torch_chain(specs, large)
    centre = _central(_torch_map(module, large))
    verdict = _torch_chain(specs, input_shape)[0].checkerboard()
    assert verdict.interior_values == tuple(int(v) for v in np.unique(centre))
    assert verdict.law_agrees is True
    assert verdict.predicted_values == verdict.interior_values
    # interior pixels of the small map: a border effect would lower them below the centre's
    small = _torch_map(_torch_chain(specs, input_shape)[1], input_shape)
    assert set(np.unique(small[verdict.interior])) <= set(np.unique(centre))


def test_two_k3_stride2_layers_grow_uneven_and_k4_stays_even():
    k3 = _torch_chain([K3S2, K3S2], (1, 6, 6))[0].checkerboard()
    assert k3.verdict == "checkerboard"
    assert k3.interior_values == (1, 2, 3, 4, 6, 9) and k3.ratio == 9.0
    assert k3.period == (4, 4)
    one = _torch_chain([K3S2], (1, 6, 6))[0].checkerboard()
    assert one.interior_values == (1, 2, 4) and one.period == (2, 2)
    k4 = _torch_chain([K4S2, K4S2], (1, 5, 5))[0].checkerboard()
    assert k4.even and k4.interior_values == (16,) and k4.ratio == 1.0


def _brute_force_1d(steps, n):
    """Count tap chains (one tap per step) from each input pixel to each output pixel (1-D)."""
    sizes = [n]
    for k, s, d, p, op in steps:
        sizes.append((sizes[-1] - 1) * s - 2 * p + d * (k - 1) + op + 1)
    counts = np.zeros(sizes[-1], dtype=np.int64)
    for i in range(n):
        for taps in itertools.product(*[range(k) for k, *_ in steps]):
            position, inside = i, True
            for (_k, s, d, p, _op), t, size in zip(steps, taps, sizes[1:], strict=True):
                position = position * s + t * d - p
                if not 0 <= position < size:  # cropped by this layer's padding
                    inside = False
                    break
            if inside:
                counts[position] += 1
    return counts


@pytest.mark.parametrize("steps", [
    [(3, 2, 1, 0, 0), (3, 2, 1, 0, 0)],
    [(3, 2, 1, 1, 1), (4, 2, 1, 1, 0), (3, 2, 1, 1, 1)],
    [(5, 3, 1, 2, 0), (2, 2, 2, 0, 1)],
    [(4, 2, 1, 1, 0), (4, 2, 1, 1, 0), (4, 2, 1, 1, 0)],
])
def test_counts_interior_and_law_against_brute_force_paths(steps):
    n = 5
    layers, size = [], n
    for k, s, d, p, op in steps:
        layer = cm.ConvTranspose(np.ones((1, 1, k), dtype=int), (1, size), stride=s, padding=p,
                                 dilation=d, output_padding=op)
        layers.append(layer)
        size = layer.output_shape[1]
    stack = cm.Sequential(layers)
    expected = _brute_force_1d(steps, n)
    np.testing.assert_array_equal(stack.overlap_counts()[0], expected)
    verdict = stack.checkerboard()
    law = verdict.laws[0]
    assert law is not None
    # the brute-force count on a much longer input: its middle follows the law at every pixel
    long = _brute_force_1d(steps, 24)
    middle = range(len(long) // 3, 2 * len(long) // 3)
    shift = law.offset  # pixel j of the long map has phase (j + P) mod S, as on the short one
    assert all(long[j] == law.residue_counts[(j + shift) % law.stride] for j in middle)
    # interior pixels of the short map carry the law's value too
    interior = np.flatnonzero(verdict.interior[0])
    assert interior.size and all(expected[j] == law.count(j) for j in interior)


def test_merged_padding_taps_count_once_per_tap():
    torch = pytest.importorskip("torch")
    module = torch.nn.Conv1d(2, 1, 3, padding=2, padding_mode="reflect", bias=False).double()
    with torch.no_grad():
        module.weight.fill_(0.25)  # the weights' values never matter for the counts
    layer = cm.from_torch(module, (2, 6))
    ones = torch.nn.Conv1d(2, 1, 3, padding=2, padding_mode="reflect", bias=False).double()
    with torch.no_grad():
        ones.weight.fill_(1.0)
    np.testing.assert_array_equal(layer.overlap_counts(), _torch_map(ones, (2, 6)))
    assert set(np.unique(layer.overlap_counts())) == {6}  # 3 taps × 2 channels, merged or not


@pytest.mark.parametrize("seed", [0, 1])
def test_actual_weights_are_the_response_to_a_constant_input(seed):
    specs = [("T", 2, 4, 2, 1, 1), ("T", 1, 3, 2, 1, 1)]
    stack, module = _torch_chain(specs, (1, 5, 4), fill="random", seed_key=(seed,))
    verdict = stack.checkerboard(weights="actual")
    np.testing.assert_allclose(verdict.counts, _torch_map(module, (1, 5, 4)), rtol=1e-12)
    assert verdict.laws == (None, None)  # laws describe all-ones weights only
    assert verdict.verdict == "checkerboard" and verdict.period == (4, 4)
    # k4/s2 then k3/s2 overlaps unevenly (a final k4/s2 layer would even it out instead)
    assert stack.checkerboard().interior_values == (8, 16, 32)
    even = _torch_chain(specs[::-1], (1, 5, 4))[0].checkerboard()
    assert even.even and even.law_agrees


def test_law_closed_form_for_one_layer_and_the_issue_numbers():
    for k, s in itertools.product(range(1, 7), range(1, 5)):
        law = composed_law([AxisStep(k, s)])
        assert law.residue_counts == tuple((k - 1 - r) // s + 1 for r in range(s))
    two = composed_law([AxisStep(3, 2), AxisStep(3, 2)])
    assert two.distinct == (1, 2, 3)
    assert sorted({a * b for a in two.distinct for b in two.distinct}) == [1, 2, 3, 4, 6, 9]
    assert composed_law([AxisStep(4, 2, padding=1)] * 3).even


def test_bad_arguments_name_the_parameter():
    layer = cm.ConvTranspose(np.ones((1, 1, 3)), (1, 4), stride=2)
    with pytest.raises(cm.ConvMatrixError, match=r"`weights` \(='random'\) must be one of"):
        layer.checkerboard(weights="random")
    with pytest.raises(cm.ConvMatrixError, match=r"`stride` \(=0\) must be a positive int"):
        AxisStep(3, 0)
    with pytest.raises(cm.ConvMatrixError, match="`steps` is empty"):
        composed_law([])


def test_small_layer_without_interior_says_so():
    verdict = cm.ConvTranspose(np.ones((1, 1, 5)), (1, 1), stride=2).checkerboard()
    assert verdict.verdict == "no interior" and verdict.even is None
    assert "No interior" in verdict.describe()
    assert "no interior" in repr(verdict)


def _live(modules, input_shape, fills):
    """(convmatrix stack read by cm.from_torch, the live torch nn.Sequential)."""
    torch = pytest.importorskip("torch")
    for module, fill in zip([m for m in modules if hasattr(m, "weight")], fills, strict=True):
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(np.asarray(fill, dtype=np.float64)))
    sequential = torch.nn.Sequential(*modules).double()
    return cm.from_torch(sequential, input_shape), sequential


def test_resize_convolution_is_even_as_torch_counts():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    def modules():
        return [nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(1, 1, 3, padding=1, bias=False),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(1, 1, 3, padding=1, bias=False)]

    ones = [np.ones((1, 1, 3, 3))] * 2
    stack, live = _live(modules(), (1, 6, 6), ones)
    np.testing.assert_array_equal(stack.overlap_counts(), _torch_map(live, (1, 6, 6)))
    verdict = stack.checkerboard()
    _, large = _live(modules(), (1, 16, 16), ones)
    centre = _central(_torch_map(large, (1, 16, 16)))
    assert verdict.even and verdict.interior_values == tuple(int(v) for v in np.unique(centre))
    assert verdict.law_agrees and all(law is not None for law in verdict.laws)


@pytest.mark.parametrize("init", ["icnr", "uniform"])
def test_sub_pixel_convolution_even_with_icnr_uneven_with_random_weights(init):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    from convmatrix.reports.stackfile import kernel_values

    def modules():
        return [nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.PixelShuffle(2),
                nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.PixelShuffle(2)]

    weights = [kernel_values((4, 1, 3, 3), init, seed=s, icnr=2) for s in (1, 2)]
    stack, live = _live(modules(), (1, 6, 6), weights)
    actual = stack.checkerboard(weights="actual")
    np.testing.assert_allclose(actual.counts, _torch_map(live, (1, 6, 6)), rtol=1e-12)
    # the path structure is even either way (every output pixel: 9 taps per conv)
    assert stack.checkerboard().even
    # independent verdict: the centre of a large torch map
    _, large = _live(modules(), (1, 16, 16), weights)
    centre = np.round(_central(_torch_map(large, (1, 16, 16))), 9)
    if init == "icnr":
        assert np.unique(centre).size == 1 and actual.even
    else:
        assert np.unique(centre).size > 1 and actual.verdict == "checkerboard"
        assert actual.period == (4, 4)


def test_keras_channels_last_stacks_count_like_torch():
    torch = pytest.importorskip("torch")
    from convmatrix.layers.channels_last import ChannelsLast

    def keras_t(filters, shape):
        config = {"filters": filters, "kernel_size": [3, 3], "strides": [2, 2],
                  "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
                  "output_padding": None}
        kernel = np.ones((3, 3, filters, shape[-1]))
        return cm.from_keras({"class_name": "Conv2DTranspose", "config": config}, kernel, shape)

    first = keras_t(2, (4, 4, 1))
    second = keras_t(1, first.output_shape)
    up = ChannelsLast(cm.Upsample((1, *second.output_shape[:2]), scale_factor=2), "UpSampling2D")
    stack = cm.Sequential([first, second, up])
    live = torch.nn.Sequential(torch.nn.ConvTranspose2d(1, 2, 3, stride=2, bias=False),
                               torch.nn.ConvTranspose2d(2, 1, 3, stride=2, bias=False),
                               torch.nn.Upsample(scale_factor=2)).double()
    for module in live[:2]:
        torch.nn.init.ones_(module.weight)
    expected = np.moveaxis(_torch_map(live, (1, 4, 4)), 0, -1)
    np.testing.assert_array_equal(stack.overlap_counts(), expected)
    verdict = stack.checkerboard()
    assert verdict.law_agrees is True and verdict.period == (8, 8)
    assert verdict.interior_values == tuple(2 * v for v in (1, 2, 3, 4, 6, 9))


def _repeats(counts: np.ndarray, interior: np.ndarray, axis: int, shift: int) -> bool:
    """Brute force: the interior values repeat under ``shift`` along ``axis`` (and overlap)."""
    n = counts.shape[axis]
    a = np.take(counts, range(n - shift), axis=axis)
    b = np.take(counts, range(shift, n), axis=axis)
    both = np.take(interior, range(n - shift), axis=axis) & np.take(interior, range(shift, n),
                                                                      axis=axis)
    return bool(both.any()) and bool(np.array_equal(a[both], b[both]))


def test_an_interior_shorter_than_a_period_is_described_without_question_marks():
    """Two transposed convolutions (stride 2 then 3) of a 1×2 input: the interior is one row
    high, so no vertical shift repeats it (period "—", not "?"); it shows 1, 2, 3 of the law's
    1, 2, 3, 4, 6, 9, which agrees with the law (a part of one period), not "DISAGREES"."""
    a = cm.ConvTranspose(np.ones((1, 1, 3, 3)), (1, 1, 2), stride=2)
    b = cm.ConvTranspose(np.ones((1, 1, 5, 5)), a.output_shape, stride=3)
    verdict = cm.Sequential([a, b]).checkerboard()
    counts, interior = verdict.counts[0], verdict.interior[0]
    rows = counts.shape[0]
    assert not any(_repeats(counts, interior, 0, q) for q in range(1, rows))
    assert verdict.period[0] is None
    columns = [q for q in range(1, counts.shape[1]) if _repeats(counts, interior, 1, q)]
    assert verdict.period[1] == columns[0] == 6
    assert verdict.period_text() == "—×6"
    assert set(verdict.interior_values) < {1, 2, 3, 4, 6, 9}
    assert verdict.law_agrees is True
    text = verdict.describe()
    assert "?" not in text and "DISAGREES" not in text and "—×6" in text
    assert "?" not in repr(verdict)

