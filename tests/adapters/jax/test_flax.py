"""cm.from_flax against live flax (linen and nnx, float64): Conv with every padding form,
strides, both dilations, groups and bias; ConvTranspose with transpose_kernel False/True and
every padding form; Sequential; refusals naming the parameter and both shapes."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
nn = pytest.importorskip("flax.linen")
nnx = pytest.importorskip("flax.nnx")
jax.config.update("jax_enable_x64", True)

import convmatrix as cm  # noqa: E402
from convmatrix import ConvMatrixError  # noqa: E402

F64 = {"param_dtype": jnp.float64, "dtype": jnp.float64}
BIAS = {"bias_init": nn.initializers.normal(1.0)}


def _check(layer, y, x):
    got = layer.matrix() @ x.reshape(-1) + layer.offset()
    assert layer.input_shape == x.shape and layer.output_shape == y.shape
    np.testing.assert_allclose(got, np.asarray(y).reshape(-1), rtol=1e-10, atol=1e-10)


def _linen(module, input_shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(input_shape)
    y, variables = module.init_with_output(jax.random.key(seed), jnp.asarray(x[None]))
    return variables, x, np.asarray(y)[0]


def _random_padding(rng, rank, kernel, dilated_input):
    if dilated_input:
        forms = ["pairs", "int"]
    else:
        forms = ["SAME", "VALID", "CIRCULAR", "REFLECT", "pairs", "int", "same"]
        forms += ["CAUSAL"] * (rank == 1)
    form = str(rng.choice(forms))
    if form == "pairs":
        return [(int(rng.integers(-1, 3)), int(rng.integers(0, 3))) for _ in range(rank)]
    if form == "int":
        return int(rng.integers(0, 3))
    return form


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_linen_conv_matches_flax_on_random_geometries(seed):
    rng = np.random.default_rng(seed)
    checked = 0
    while checked < 7:
        rank = int(rng.integers(1, 4))
        groups = int(rng.choice([1, 2]))
        c_in, features = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        kernel = tuple(int(rng.integers(1, 4)) for _ in range(rank))
        size = tuple(int(rng.integers(3, 7 if rank < 3 else 5)) for _ in range(rank))
        input_dilation = 1 if rng.random() < 0.6 else int(rng.integers(2, 4))
        module = nn.Conv(features, kernel, strides=tuple(int(rng.integers(1, 3)) for _ in kernel),
                         padding=_random_padding(rng, rank, kernel, input_dilation > 1),
                         input_dilation=input_dilation,
                         kernel_dilation=int(rng.integers(1, 3)), feature_group_count=groups,
                         use_bias=bool(rng.integers(2)), **F64, **BIAS)
        try:
            variables, x, y = _linen(module, (*size, c_in), seed)
        except (ValueError, TypeError, RuntimeError):
            continue
        if y.size == 0:
            continue
        _check(cm.from_flax(module, variables, x.shape), y, x)
        checked += 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_linen_conv_transpose_matches_flax_on_random_geometries(seed):
    rng = np.random.default_rng(50 + seed)
    checked = 0
    while checked < 7:
        rank = int(rng.integers(1, 4))
        kernel = tuple(int(rng.integers(1, 5)) for _ in range(rank))
        size = tuple(int(rng.integers(2, 6 if rank < 3 else 4)) for _ in range(rank))
        padding = (str(rng.choice(["SAME", "VALID", "CIRCULAR"])) if rng.random() < 0.6 else
                   [(int(rng.integers(-1, 4)), int(rng.integers(-1, 4))) for _ in range(rank)])
        module = nn.ConvTranspose(int(rng.integers(1, 4)), kernel,
                                  strides=tuple(int(rng.integers(1, 4)) for _ in kernel),
                                  padding=padding,
                                  kernel_dilation=tuple(int(rng.integers(1, 3)) for _ in kernel),
                                  transpose_kernel=bool(rng.integers(2)),
                                  use_bias=bool(rng.integers(2)), **F64, **BIAS)
        try:
            variables, x, y = _linen(module, (*size, int(rng.integers(1, 3))), seed)
        except (ValueError, TypeError, RuntimeError):
            continue
        if y.size == 0:
            continue
        _check(cm.from_flax(module, variables, x.shape), y, x)
        checked += 1


def test_linen_sequential_and_padding_forms():
    model = nn.Sequential([
        nn.Conv(3, (3, 3), padding="CIRCULAR", **F64, **BIAS),
        nn.Conv(2, (2, 3), strides=2, padding=((1, 0), 1), **F64, **BIAS),
        nn.ConvTranspose(2, (3, 3), strides=(2, 1), padding="CIRCULAR", transpose_kernel=True,
                         **F64, **BIAS),
        nn.Conv(1, (3, 3), padding="REFLECT", kernel_dilation=(1, 2), use_bias=False, **F64),
    ])
    variables, x, y = _linen(model, (6, 5, 2))
    layer = cm.from_flax(model, variables, x.shape)
    assert isinstance(layer, cm.Sequential)
    _check(layer, y, x)
    _check(cm.from_flax(model, variables["params"], x.shape), y, x)  # the params alone


def test_causal_1d_and_its_refusal_in_2d():
    conv = nn.Conv(2, 3, padding="CAUSAL", kernel_dilation=2, **F64, **BIAS)
    variables, x, y = _linen(conv, (7, 1))
    _check(cm.from_flax(conv, variables, x.shape), y, x)
    conv2d = nn.Conv(1, (3, 3), padding="CAUSAL", **F64)
    with pytest.raises(ValueError, match="Causal padding"):
        _linen(conv2d, (5, 5, 1))
    with pytest.raises(ConvMatrixError, match="Causal padding"):
        cm.from_flax(conv2d, {"params": {"kernel": np.ones((3, 3, 1, 1)),
                                         "bias": np.zeros(1)}}, (5, 5, 1))


def test_nnx_conv_conv_transpose_and_sequential():
    rngs = nnx.Rngs(0)
    kw = {"param_dtype": jnp.float64, "bias_init": nnx.initializers.normal(1.0), "rngs": rngs}
    model = nnx.Sequential(
        nnx.Conv(2, 4, (3, 3), strides=(1, 2), padding="SAME", feature_group_count=2, **kw),
        nnx.ConvTranspose(4, 3, (3, 2), strides=2, padding="CIRCULAR", **kw),
        nnx.ConvTranspose(3, 1, (2, 2), strides=(1, 2), padding=((1, 0), (0, 2)),
                          transpose_kernel=True, kernel_dilation=(2, 1), **kw),
        nnx.Conv(1, 2, (3, 3), padding=((1, 1), (-1, 2)), input_dilation=(2, 1), **kw),
    )
    x = np.random.default_rng(1).standard_normal((5, 6, 2))
    y = np.asarray(model(jnp.asarray(x[None])))[0]
    _check(cm.from_flax(model, input_shape=x.shape), y, x)
    for child in model.layers:
        shape = x.shape
        layer = cm.from_flax(child, None, shape)
        x_next = np.asarray(child(jnp.asarray(x[None])))[0]
        _check(layer, x_next, x)
        x = x_next


def test_flax_conv_transpose_is_the_adjoint_of_conv_only_with_transpose_kernel():
    # flax#3137, jax#11252: ConvTranspose defaults to transpose_kernel=False, which is not the
    # adjoint of Conv with the same kernel; with True (and the same padding/strides) it is,
    # as JAX's vjp of the Conv confirms
    rng = np.random.default_rng(3)
    kernel = rng.standard_normal((3, 3, 2, 4))                  # Conv's HWIO: 2 → 4 channels
    conv = nn.Conv(4, (3, 3), strides=2, padding="SAME", use_bias=False, **F64)
    x = rng.standard_normal((8, 8, 2))
    fwd = cm.from_flax(conv, {"params": {"kernel": kernel}}, x.shape)
    y_ct = rng.standard_normal(fwd.output_shape)

    def apply_conv(x):
        return conv.apply({"params": {"kernel": kernel}}, x)

    _, vjp = jax.vjp(apply_conv, jnp.asarray(x[None]))
    grad = np.asarray(vjp(jnp.asarray(y_ct[None]))[0])[0]
    for transpose_kernel, adjoint in ((True, True), (False, False)):
        up = nn.ConvTranspose(2, (3, 3), strides=2, padding="SAME", use_bias=False,
                              transpose_kernel=transpose_kernel, **F64)
        k = kernel if transpose_kernel else rng.standard_normal((3, 3, 4, 2))
        params = {"params": {"kernel": k}}
        y = np.asarray(up.apply(params, jnp.asarray(y_ct[None])))[0]
        layer = cm.from_flax(up, params, y_ct.shape)
        _check(layer, y, y_ct)
        assert np.allclose(y, grad) == adjoint
        assert (abs(layer.matrix() - fwd.matrix().T).max() < 1e-12) == adjoint
    # the default kernel layout (*k, C_in, C_out) with the Conv's kernel flipped and swapped
    # is the adjoint too: transpose_kernel only moves the flip into the layer
    flipped = np.flip(kernel, (0, 1)).swapaxes(2, 3)
    plain = nn.ConvTranspose(2, (3, 3), strides=2, padding="SAME", use_bias=False, **F64)
    layer = cm.from_flax(plain, {"params": {"kernel": flipped}}, y_ct.shape)
    assert abs(layer.matrix() - fwd.matrix().T).max() < 1e-12


def test_circular_conv_transpose_with_transpose_kernel_is_the_circular_convs_adjoint():
    # flax's comment: with transpose_kernel=True the circular ConvTranspose "computes the
    # proper transpose convolution" of the circular Conv with the same kernel
    rng = np.random.default_rng(4)
    kernel = rng.standard_normal((4, 4, 1, 2))
    conv = nn.Conv(2, (4, 4), strides=2, padding="CIRCULAR", use_bias=False, **F64)
    up = nn.ConvTranspose(1, (4, 4), strides=2, padding="CIRCULAR", use_bias=False,
                          transpose_kernel=True, **F64)
    params = {"params": {"kernel": kernel}}
    fwd = cm.from_flax(conv, params, (6, 6, 1))
    back = cm.from_flax(up, params, fwd.output_shape)
    z = rng.standard_normal(fwd.output_shape)
    _check(back, np.asarray(up.apply(params, jnp.asarray(z[None])))[0], z)
    _, vjp = jax.vjp(lambda x: conv.apply(params, x), jnp.ones((1, 6, 6, 1)))
    grad = np.asarray(vjp(jnp.asarray(z[None]))[0])[0]
    assert np.allclose(back(z), grad)
    assert abs(back.matrix() - fwd.matrix().T).max() < 1e-12


def test_bad_variables_name_the_parameter_and_both_shapes():
    conv = nn.Conv(4, (3, 3), feature_group_count=2)
    with pytest.raises(ConvMatrixError, match=r"`kernel` of the Conv has shape \(3, 3, 6, 4\).*"
                                              r"needs \(3, 3, 3, 4\)"):
        cm.from_flax(conv, {"params": {"kernel": np.ones((3, 3, 6, 4)), "bias": np.ones(4)}},
                     (5, 5, 6))
    with pytest.raises(ConvMatrixError, match=r"`bias` of the Conv has shape \(3,\).*\(4,\)"):
        cm.from_flax(conv, {"params": {"kernel": np.ones((3, 3, 3, 4)), "bias": np.ones(3)}},
                     (5, 5, 6))
    up = nn.ConvTranspose(4, (3,), transpose_kernel=True, use_bias=False)
    with pytest.raises(ConvMatrixError, match=r"shape \(3, 2, 4\).*transpose_kernel=True.*"
                                              r"needs \(3, 4, 2\)"):
        cm.from_flax(up, {"params": {"kernel": np.ones((3, 2, 4))}}, (5, 2))
    with pytest.raises(ConvMatrixError, match="no 'kernel'"):
        cm.from_flax(up, {"params": {}}, (5, 2))
    with pytest.raises(ConvMatrixError, match="spatial axes"):
        cm.from_flax(up, {"params": {"kernel": np.ones((3, 4, 2))}}, (1, 5, 2))


def test_refusals_mask_classes_and_nnx_variables():
    masked = nn.Conv(1, (3,), mask=jnp.ones((3, 1, 1)))
    with pytest.raises(ConvMatrixError, match="`mask`"):
        cm.from_flax(masked, {"params": {"kernel": np.ones((3, 1, 1)), "bias": np.zeros(1)}},
                     (5, 1))
    with pytest.raises(ConvMatrixError, match="'ConvLocal' is not supported"):
        cm.from_flax(nn.ConvLocal(1, (3,)), {"params": {}}, (5, 1))
    model = nn.Sequential([nn.Conv(1, (3,)), nn.relu])
    variables = model.init(jax.random.key(0), jnp.ones((1, 5, 1)))
    with pytest.raises(ConvMatrixError, match=r"layers\[1\].*'relu' is not supported"):
        cm.from_flax(model, variables, (5, 1))
    conv = nnx.Conv(1, 1, (3,), rngs=nnx.Rngs(0))
    with pytest.raises(ConvMatrixError, match="`variables` must be None for an nnx Conv"):
        cm.from_flax(conv, {"params": {}}, (5, 1))
    with pytest.raises(ConvMatrixError, match="in_features=1"):
        cm.from_flax(conv, input_shape=(5, 2))
    with pytest.raises(ConvMatrixError, match="String padding"):
        cm.from_flax(nn.Conv(1, (3,), padding="SAME", input_dilation=2),
                     {"params": {"kernel": np.ones((3, 1, 1)), "bias": np.zeros(1)}}, (5, 1))
    with pytest.raises(ConvMatrixError, match="Invalid padding format"):
        cm.from_flax(nn.Conv(1, (3,), padding=[1, 2]),
                     {"params": {"kernel": np.ones((3, 1, 1)), "bias": np.zeros(1)}}, (5, 1))
