"""cm.lax against live jax.lax (float64): randomised geometries, every padding form, layouts,
refusals with JAX's reasons, and conv_transpose(transpose_kernel=True) as the matrix transpose
of the forward convolution exactly where JAX's own vjp says so."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
jax.config.update("jax_enable_x64", True)

import convmatrix as cm  # noqa: E402
from convmatrix import ConvMatrixError  # noqa: E402

SPATIAL = "HWD"


def _dimension_numbers(rng, ndim, *, transpose=False):
    """None (NCHW…), strings with shuffled letters, or a jax ConvDimensionNumbers."""
    choice = rng.integers(4)
    letters = SPATIAL[:ndim]
    if choice == 0:
        if transpose:  # conv_transpose's default is channels last
            return None, ("N" + letters + "C", letters + "IO", "N" + letters + "C")
        return None, ("NC" + letters, "OI" + letters, "NC" + letters)
    if choice == 1:
        spec = ("N" + letters + "C", letters + "IO", "N" + letters + "C")
        return spec, spec
    specs = tuple("".join(rng.permutation(list(first + letters)))
                  for first in ("NC", "OI", "NC"))
    if choice == 2:
        return specs, specs
    return jax.lax.conv_dimension_numbers((1,) * (ndim + 2), (1,) * (ndim + 2), specs), specs


def _shape(letters_spec, sizes):
    """An array shape in the layout ``letters_spec`` from a dict letter → size."""
    return tuple(sizes[c] for c in letters_spec)


def _check(layer, x, y, specs=None):
    """matrix @ x + offset == y; the layer's shapes are x's and y's without the batch axis."""
    got = layer.matrix() @ x.reshape(-1) + layer.offset()
    n_in, n_out = (0, 0) if specs is None else (specs[0].index("N"), specs[2].index("N"))
    assert layer.input_shape == np.squeeze(x, axis=n_in).shape
    assert layer.output_shape == np.squeeze(y, axis=n_out).shape
    np.testing.assert_allclose(got, y.reshape(-1), rtol=1e-10, atol=1e-10)


def _random_conv(rng):
    ndim = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 1, 2, 3]))
    c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    kernel = [int(rng.integers(1, 4)) for _ in range(ndim)]
    size = [int(rng.integers(2, 7 if ndim < 3 else 5)) for _ in range(ndim)]
    strides = [int(rng.integers(1, 4)) for _ in range(ndim)]
    rhs_dil = None if rng.random() < 0.3 else [int(rng.integers(1, 3)) for _ in range(ndim)]
    lhs_dil = None if rng.random() < 0.4 else [int(rng.integers(1, 4)) for _ in range(ndim)]
    form = rng.integers(5)
    if form == 0 and lhs_dil is None:
        padding = str(rng.choice(["SAME", "VALID", "SAME_LOWER", "same", "valid"]))
    elif form == 1:
        padding = [(int(rng.integers(0, 3)),) * 2 for _ in range(ndim)]
    else:  # asymmetric, negative entries crop
        padding = [(int(rng.integers(-2, 4)), int(rng.integers(-2, 4))) for _ in range(ndim)]
    passed, specs = _dimension_numbers(rng, ndim)
    sizes = {"N": 1, "C": c_in, "O": c_out, "I": c_in // groups}
    lhs_sizes = dict(sizes, **dict(zip(SPATIAL, size, strict=False)))
    rhs_sizes = dict(sizes, **dict(zip(SPATIAL, kernel, strict=False)))
    lhs_shape = _shape(specs[0], lhs_sizes)
    rhs = rng.standard_normal(_shape(specs[1], rhs_sizes))
    kwargs = {"lhs_dilation": lhs_dil, "rhs_dilation": rhs_dil, "dimension_numbers": passed,
              "feature_group_count": groups}
    # window_strides/padding/dilations are in the rhs spec's spatial order: random above
    return lhs_shape, rhs, strides, padding, kwargs, specs


def _jax_or_none(fn, *args, **kwargs):
    try:
        out = np.asarray(fn(*args, **kwargs))
    except (ValueError, TypeError, RuntimeError):
        return None
    return out if out.size else None


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_conv_general_dilated_matches_jax_on_random_geometries(seed):
    rng = np.random.default_rng(seed)
    checked = 0
    while checked < 12:
        lhs_shape, rhs, strides, padding, kwargs, specs = _random_conv(rng)
        x = rng.standard_normal(lhs_shape)
        y = _jax_or_none(jax.lax.conv_general_dilated, jnp.asarray(x), jnp.asarray(rhs),
                         strides, padding, **kwargs)
        if y is None:
            continue
        layer = cm.lax.conv_general_dilated(lhs_shape, rhs, strides, padding, **kwargs)
        _check(layer, x, y, specs)
        checked += 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_conv_transpose_matches_jax_on_random_geometries(seed):
    rng = np.random.default_rng(100 + seed)
    checked = 0
    while checked < 12:
        ndim = int(rng.integers(1, 4))
        c_in, c_out = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        kernel = [int(rng.integers(1, 5)) for _ in range(ndim)]
        size = [int(rng.integers(1, 6 if ndim < 3 else 4)) for _ in range(ndim)]
        strides = [int(rng.integers(1, 4)) for _ in range(ndim)]
        rhs_dil = None if rng.random() < 0.4 else [int(rng.integers(1, 3)) for _ in range(ndim)]
        transpose_kernel = bool(rng.integers(2))
        consistent = bool(rng.integers(2))
        padding = (str(rng.choice(["SAME", "VALID"])) if rng.random() < 0.5 else
                   [(int(rng.integers(-1, 4)), int(rng.integers(-1, 4))) for _ in range(ndim)])
        passed, specs = _dimension_numbers(rng, ndim, transpose=True)
        o, i = (c_in, c_out) if transpose_kernel else (c_out, c_in)
        lhs_shape = _shape(specs[0], {"N": 1, "C": c_in, **dict(zip(SPATIAL, size,
                                                                        strict=False))})
        rhs = rng.standard_normal(_shape(specs[1], {"O": o, "I": i, **dict(
            zip(SPATIAL, kernel, strict=False))}))
        x = rng.standard_normal(lhs_shape)
        kwargs = {"rhs_dilation": rhs_dil, "dimension_numbers": passed,
                  "transpose_kernel": transpose_kernel, "use_consistent_padding": consistent}
        y = _jax_or_none(jax.lax.conv_transpose, jnp.asarray(x), jnp.asarray(rhs), strides,
                         padding, **kwargs)
        if y is None:
            continue
        layer = cm.lax.conv_transpose(lhs_shape, rhs, strides, padding, **kwargs)
        _check(layer, x, y, specs)
        checked += 1


def test_explicit_padding_in_conv_transpose_is_the_transposes_own_unless_consistent():
    # jax#32267: integer pairs were the transposed convolution's padding; the fix added
    # use_consistent_padding=True (pairs = the forward convolution's padding, as in torch)
    rng = np.random.default_rng(7)
    k = rng.standard_normal((3, 1, 1))
    x = rng.standard_normal((1, 4, 1))
    pads = [(0, 0)]
    own = cm.lax.conv_transpose(x.shape, k, (2,), pads)
    forward = cm.lax.conv_transpose(x.shape, k, (2,), pads, use_consistent_padding=True)
    for layer, consistent in ((own, False), (forward, True)):
        y = np.asarray(jax.lax.conv_transpose(x, k, (2,), pads,
                                              use_consistent_padding=consistent))
        _check(layer, x, y)
    assert own.output_shape == (5, 1)       # (4 − 1)·2 + 1 − 3 + 1: the dilated input, VALID
    assert forward.output_shape == (9, 1)   # (4 − 1)·2 + 3: torch's ConvTranspose1d size
    conv = cm.lax.conv_general_dilated((1, 9, 1), k, (2,), pads,
                                       dimension_numbers=("NHC", "HIO", "NHC"))
    flipped = cm.lax.conv_transpose(x.shape, k, (2,), pads, transpose_kernel=True,
                                    use_consistent_padding=True)
    assert abs(flipped.matrix() - conv.matrix().T).max() == 0


def test_valid_string_and_zero_pairs_differ_in_conv_transpose():
    # jax#17618: 'VALID' is the forward convolution's padding, [(0, 0)] the transpose's own
    k = np.ones((3, 1, 1))
    valid = cm.lax.conv_transpose((1, 4, 1), k, (2,), "VALID")
    zeros = cm.lax.conv_transpose((1, 4, 1), k, (2,), [(0, 0)])
    x = np.ones((1, 4, 1))
    for layer, padding in ((valid, "VALID"), (zeros, [(0, 0)])):
        _check(layer, x, np.asarray(jax.lax.conv_transpose(x, k, (2,), padding)))
    assert valid.output_shape == (9, 1) and zeros.output_shape == (5, 1)


def _forward_and_transpose(rng, ndim):
    c_in, c_out = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    kernel = [int(rng.integers(1, 5)) for _ in range(ndim)]
    size = [int(rng.integers(3, 8)) for _ in range(ndim)]
    strides = [int(rng.integers(1, 4)) for _ in range(ndim)]
    dil = [int(rng.integers(1, 3)) for _ in range(ndim)]
    padding = (str(rng.choice(["SAME", "VALID"])) if rng.random() < 0.5 else
               [(int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(ndim)])
    letters = SPATIAL[:ndim]
    dn = ("N" + letters + "C", letters + "IO", "N" + letters + "C")
    k = rng.standard_normal((*kernel, c_in, c_out))
    return (1, *size, c_in), k, strides, padding, dil, dn


@pytest.mark.slow
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_transpose_kernel_gives_the_adjoint_exactly_where_jax_vjp_agrees(ndim):
    rng = np.random.default_rng(ndim)
    agreed = disagreed = 0
    for _ in range(8):
        x_shape, k, strides, padding, dil, dn = _forward_and_transpose(rng, ndim)
        consistent = not isinstance(padding, str)
        x = rng.standard_normal(x_shape)

        def forward(x, k=k, s=strides, p=padding, d=dil, dn=dn):
            return jax.lax.conv_general_dilated(x, k, s, p, rhs_dilation=d, dimension_numbers=dn)

        y, vjp = jax.vjp(forward, jnp.asarray(x))
        if y.size == 0:
            continue
        y_shape = y.shape
        ct = rng.standard_normal(y_shape)
        (grad,) = vjp(jnp.asarray(ct))
        transposed = np.asarray(jax.lax.conv_transpose(
            ct, k, strides, padding, rhs_dilation=dil, dimension_numbers=dn,
            transpose_kernel=True, use_consistent_padding=consistent))
        jax_says = transposed.shape == grad.shape and np.allclose(transposed, grad)
        fwd = cm.lax.conv_general_dilated(x_shape, k, strides, padding, rhs_dilation=dil,
                                          dimension_numbers=dn)
        up = cm.lax.conv_transpose(y_shape, k, strides, padding, rhs_dilation=dil,
                                   dimension_numbers=dn, transpose_kernel=True,
                                   use_consistent_padding=consistent)
        _check(up, ct, transposed)
        ours = up.matrix().shape == fwd.matrix().T.shape and \
            abs(up.matrix() - fwd.matrix().T).max() < 1e-12
        assert ours == jax_says
        agreed += jax_says
        disagreed += not jax_says
    assert agreed >= 2 and disagreed >= 1


def test_layout_and_kinds():
    k = np.ones((2, 2, 3, 1))                                          # HWIO
    layer = cm.lax.conv_general_dilated((1, 4, 4, 3), k, (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert isinstance(layer, cm.KerasConv) and layer.input_shape == (4, 4, 3)
    assert layer.output_shape == (3, 3, 1)
    first = cm.lax.conv_general_dilated((1, 3, 4, 4), np.ones((1, 3, 2, 2)), (1, 1), "VALID")
    assert isinstance(first, cm.Conv)
    assert abs(first.matrix() - cm.Conv(np.ones((1, 3, 2, 2)), (3, 4, 4)).matrix()).max() == 0
    up = cm.lax.conv_general_dilated((1, 1, 3), np.ones((1, 1, 2)), (1,), [(1, 1)],
                                     lhs_dilation=(2,))
    assert isinstance(up, cm.ConvTranspose)
    assert cm.lax.conv_transpose is cm.adapters.lax.conv_transpose
    from convmatrix import lax

    assert lax.conv_transpose is cm.lax.conv_transpose


REFUSALS = [
    # (lhs_shape, rhs_shape, strides, padding, kwargs, part of the message)
    ((1, 1, 5), (1, 1, 3), (1,), "SAME", {"lhs_dilation": (2,)}, "String padding is not"),
    ((1, 4, 5), (2, 3, 3), (1,), "SAME", {"feature_group_count": 2}, "must equal the rhs"),
    ((1, 3, 5), (3, 1, 3), (1,), "SAME", {"feature_group_count": 2}, "does not divide 3"),
    ((1, 2, 5), (2, 2, 3), (1,), "SAME", {"batch_group_count": 2}, "batch_group_count"),
    ((1, 1, 5), (1, 1, 3), (1,), [(0, 0), (0, 0)], {}, "Wrong number of explicit pads"),
    ((1, 1, 5), (1, 1, 3), (1,), "FULL", {}, "Unrecognized padding type"),
    ((1, 1, 5), (1, 1, 3), (1,), [(-4, -3)], {}, "Negative padding"),
    ((1, 1, 5), (1, 1, 3), (1, 1), "SAME", {}, "window_strides"),
    ((1, 1, 5), (1, 1, 3), (1,), "SAME", {"dimension_numbers": ("NCH", "OIW", "NCH")},
     "same set of spatial"),
    ((1, 1, 5), (1, 1, 3), (1,), "SAME", {"dimension_numbers": ("NCHH", "OIH", "NCH")},
     "dimension_numbers"),
]


@pytest.mark.parametrize(("lhs_shape", "rhs_shape", "strides", "padding", "kwargs", "reason"),
                         REFUSALS)
def test_refuses_what_jax_refuses_with_its_reason(lhs_shape, rhs_shape, strides, padding,
                                                  kwargs, reason):
    with pytest.raises((ValueError, TypeError, RuntimeError)):
        np.asarray(jax.lax.conv_general_dilated(jnp.ones(lhs_shape), jnp.ones(rhs_shape),
                                                strides, padding, **kwargs))
    with pytest.raises(ConvMatrixError, match=reason):
        cm.lax.conv_general_dilated(lhs_shape, np.ones(rhs_shape), strides, padding, **kwargs)


def test_refuses_a_batch_and_an_empty_output_that_jax_accepts():
    assert np.asarray(jax.lax.conv_general_dilated(jnp.ones((2, 1, 5)), jnp.ones((1, 1, 3)),
                                                   (1,), "SAME")).shape == (2, 1, 5)
    with pytest.raises(ConvMatrixError, match="batch 2"):
        cm.lax.conv_general_dilated((2, 1, 5), np.ones((1, 1, 3)), (1,), "SAME")
    assert np.asarray(jax.lax.conv_general_dilated(jnp.ones((1, 1, 2)), jnp.ones((1, 1, 3)),
                                                   (1,), "VALID")).size == 0
    with pytest.raises(ConvMatrixError, match="empty"):
        cm.lax.conv_general_dilated((1, 1, 2), np.ones((1, 1, 3)), (1,), "VALID")


def test_conv_transpose_refusals_follow_jax():
    # a string other than 'SAME'/'VALID' reaches conv_general_dilated with lhs dilation
    with pytest.raises(ValueError, match="String padding"):
        jax.lax.conv_transpose(jnp.ones((1, 4, 1)), jnp.ones((3, 1, 1)), (2,), "SAME_LOWER")
    with pytest.raises(ConvMatrixError, match="String padding"):
        cm.lax.conv_transpose((1, 4, 1), np.ones((3, 1, 1)), (2,), "SAME_LOWER")
    # ... and is accepted at stride 1, as a plain convolution
    x = np.arange(4.0).reshape(1, 4, 1)
    k = np.arange(1.0, 4.0).reshape(3, 1, 1)
    y = np.asarray(jax.lax.conv_transpose(x, k, (1,), "same"))
    _check(cm.lax.conv_transpose(x.shape, k, (1,), "same"), x, y)
    with pytest.raises(ValueError, match="No 4"):
        jax.lax.conv_transpose(jnp.ones((1,) * 6), jnp.ones((1,) * 6), (1,) * 4, "SAME")
    with pytest.raises(ConvMatrixError, match="No 4"):
        cm.lax.conv_transpose((1,) * 6, np.ones((1,) * 6), (1,) * 4, "SAME")
    for name, value in itertools.product(["lhs_shape"], [(1, 4), "1x4x1"]):
        with pytest.raises(ConvMatrixError, match=name):
            cm.lax.conv_transpose(value, np.ones((3, 1, 1)), (2,), "SAME")


def test_public_path_is_one_module_of_the_same_functions():
    """``import convmatrix.lax``, ``from convmatrix.lax import …`` and ``cm.lax`` agree."""
    import convmatrix.adapters.lax as home
    import convmatrix.lax as public
    from convmatrix.lax import conv_transpose

    assert cm.lax is public
    assert public.conv_transpose is home.conv_transpose is conv_transpose
    assert public.conv_general_dilated is home.conv_general_dilated
