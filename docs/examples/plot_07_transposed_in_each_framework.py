"""
What "transposed convolution" means in each framework
=====================================================

A transposed convolution is meant to be ``Cᵀ``: the gradient of a convolution ``C`` with
respect to its input, so that ``⟨a, C x⟩ = ⟨Cᵀ a, x⟩``. PyTorch and Keras compute exactly
that. ``jax.lax.conv_transpose`` and flax's ``ConvTranspose`` do not by default: they
correlate the stride-dilated input with the kernel *as given* (``transpose_kernel=False``),
which is ``Cᵀ`` only up to a kernel flip. ONNX computes ``Cᵀ`` but has two "same" rules.

convmatrix reads each framework's operator into a layer object (:func:`cm.from_torch
<convmatrix.from_torch>`, :func:`cm.from_keras <convmatrix.from_keras>`, :mod:`cm.lax
<convmatrix.lax>`, :func:`cm.from_flax <convmatrix.from_flax>`, :func:`cm.from_onnx
<convmatrix.from_onnx>`) and ``convmatrix.testing.relation(a, b)`` says what ``a`` is in terms of
``b``: equal, ``bᵀ``, or either *up to* named changes. Each matrix here is checked against the
framework itself, run live: PyTorch, JAX, flax and ONNX's reference evaluator.

Every case uses one 3×3 kernel with the weights 1…9 (so each matrix shows which tap lands
where), stride 2, a 4×4 image down to 2×2 and back up.
"""

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from flax import linen
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import convmatrix as cm
from convmatrix.testing import relation

kernel = np.arange(1.0, 10.0).reshape(3, 3)
cases = []  # (framework, a = transposed operator, b = forward convolution, relation)


def live_matrix(fn, input_shape):
    """The matrix of a linear function run in its own framework, one unit vector per column."""
    n = int(np.prod(input_shape))
    columns = [np.asarray(fn(e.reshape(input_shape))).ravel() for e in np.eye(n)]
    return np.stack(columns, axis=1)


def same_matrix(layer, live):
    """The layer's matrix equals the framework's (the weights are small integers)."""
    return np.allclose(layer.matrix().toarray(), live, rtol=1e-6, atol=1e-6)


# %%
# PyTorch: ``ConvTranspose2d`` is the gradient of ``Conv2d``
# ----------------------------------------------------------
# ``padding=1`` is the *forward* convolution's padding (it crops the transposed output), and
# ``output_padding=1`` picks which input size to return to: a stride-2 convolution maps 3×3
# and 4×4 alike to 2×2.

w = torch.from_numpy(kernel).reshape(1, 1, 3, 3)
down = torch.nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False).double()
up = torch.nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1, bias=False)
up = up.double()
with torch.no_grad():
    down.weight.copy_(w)
    up.weight.copy_(w)
a, b = cm.from_torch(up, (1, 2, 2)), cm.from_torch(down, (1, 4, 4))
print(relation(a, b))
cases.append(("PyTorch ConvTranspose2d", a, b))

# %%
# Live: the module's own matrix, and torch's autograd — the gradient of ``conv2d`` with
# respect to its input, applied to ``y``, is ``conv_transpose2d(y)``.

with torch.no_grad():
    assert same_matrix(a, live_matrix(lambda e: up(torch.from_numpy(e)[None]), (1, 2, 2)))
    assert same_matrix(b, live_matrix(lambda e: down(torch.from_numpy(e)[None]), (1, 4, 4)))
x = torch.zeros(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
y = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 1, 2, 2)))
(gradient,) = torch.autograd.grad(F.conv2d(x, w, stride=2, padding=1), x, y)
assert torch.allclose(gradient, up(y))

# %%
# Without ``output_padding`` the output is 3×3, and ``relation`` names the change:

short = torch.nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, bias=False).double()
with torch.no_grad():
    short.weight.copy_(w)
print(relation(cm.from_torch(short, (1, 2, 2)), b))

# %%
# Keras: ``Conv2DTranspose`` is the gradient of ``Conv2D`` too
# ------------------------------------------------------------
# Keras layers are read from their configuration and kernel (Keras itself is not needed),
# channels last. TensorFlow's "same" at stride 2 on 4×4 pads 0 before and 1 after — not
# torch's 1 and 1 — and the transpose follows.

keras_kernel = kernel.reshape(3, 3, 1, 1)  # (kh, kw, in, out)
config = {"filters": 1, "kernel_size": [3, 3], "strides": [2, 2], "padding": "same",
          "use_bias": False}
keras_up = cm.from_keras({"class_name": "Conv2DTranspose", "config": config}, keras_kernel,
                         (2, 2, 1))
keras_down = cm.from_keras({"class_name": "Conv2D", "config": config}, keras_kernel, (4, 4, 1))
print(keras_up)
print(relation(keras_up, keras_down))
cases.append(("Keras Conv2DTranspose", keras_up, keras_down))

# %%
# Live, with JAX standing in for TensorFlow: ``jax.lax.conv_general_dilated`` with ``"SAME"``
# follows TensorFlow's padding rule, and its ``jax.vjp`` (the gradient) is what Keras'
# ``Conv2DTranspose`` computes.

dn = ("NHWC", "HWIO", "NHWC")
k_jax = jnp.asarray(keras_kernel, dtype=jnp.float32)


def jax_down(z):
    """TensorFlow's / Keras' stride-2 'same' convolution of one NHWC sample, in JAX."""
    return jax.lax.conv_general_dilated(z[None], k_jax, (2, 2), "SAME", dimension_numbers=dn)[0]


_, pullback = jax.vjp(jax_down, jnp.zeros((4, 4, 1), jnp.float32))
assert same_matrix(keras_down, live_matrix(lambda e: jax_down(jnp.asarray(e, jnp.float32)),
                                           (4, 4, 1)))
assert same_matrix(keras_up, live_matrix(lambda e: pullback(jnp.asarray(e, jnp.float32))[0],
                                         (2, 2, 1)))

# %%
# JAX: ``lax.conv_transpose`` uses the kernel as given
# ----------------------------------------------------
# ``cm.lax`` takes ``jax.lax``'s own arguments, with the input replaced by its shape. By
# default the result is ``Cᵀ`` with the kernel flipped; with ``transpose_kernel=True`` it is
# exactly the gradient (``jax.vjp``) of the forward convolution.

lax_down = cm.lax.conv_general_dilated((1, 4, 4, 1), keras_kernel, (2, 2), "SAME",
                                       dimension_numbers=dn)
for flag in (False, True):
    lax_up = cm.lax.conv_transpose((1, 2, 2, 1), keras_kernel, (2, 2), "SAME",
                                   dimension_numbers=dn, transpose_kernel=flag)
    found = relation(lax_up, lax_down)
    print(f"transpose_kernel={flag}: {found!r}")
    live = live_matrix(lambda e, flag=flag: jax.lax.conv_transpose(
        jnp.asarray(e, jnp.float32)[None], k_jax, (2, 2), "SAME", dimension_numbers=dn,
        transpose_kernel=flag)[0], (2, 2, 1))
    assert same_matrix(lax_up, live)
    cases.append((f"jax.lax.conv_transpose\ntranspose_kernel={flag}", lax_up, lax_down))
assert same_matrix(lax_up, live_matrix(lambda e: pullback(jnp.asarray(e, jnp.float32))[0],
                                       (2, 2, 1)))

# %%
# flax: ``nn.ConvTranspose`` inherits the default
# -----------------------------------------------
# flax's module is ``lax.conv_transpose`` with the module's arguments; its default
# ``transpose_kernel=False`` was kept by design (flax#2577, flax#2578). ``cm.from_flax`` reads
# the module and its parameters (here the ``Conv``'s own kernel).

flax_down = linen.Conv(1, (3, 3), strides=2, padding="SAME", use_bias=False)
flax_variables = {"params": {"kernel": k_jax}}
flax_b = cm.from_flax(flax_down, flax_variables, (4, 4, 1))
for flag in (False, True):
    module = linen.ConvTranspose(1, (3, 3), strides=(2, 2), padding="SAME", use_bias=False,
                                 transpose_kernel=flag)
    flax_a = cm.from_flax(module, flax_variables, (2, 2, 1))
    print(f"flax transpose_kernel={flag}: {relation(flax_a, flax_b)!r}")
    live = live_matrix(lambda e, module=module: module.apply(
        flax_variables, jnp.asarray(e, jnp.float32)[None])[0], (2, 2, 1))
    assert same_matrix(flax_a, live)
    cases.append((f"flax ConvTranspose\ntranspose_kernel={flag}", flax_a, flax_b))
assert same_matrix(flax_b, live_matrix(lambda e: flax_down.apply(
    flax_variables, jnp.asarray(e, jnp.float32)[None])[0], (4, 4, 1)))

# %%
# ONNX: ``SAME_UPPER`` and ``SAME_LOWER``
# ---------------------------------------
# ONNX's ``ConvTranspose`` is ``Cᵀ`` of its ``Conv`` with the same ``auto_pad``; the two
# "same" rules put the odd padding pixel after (``SAME_UPPER``, TensorFlow's choice) or
# before. ``cm.from_onnx`` reads a ``ModelProto`` (or a path); ONNX's reference evaluator is
# the live oracle.


def onnx_model(op, size, auto_pad):
    """A one-node ONNX model (opset 17) of a stride-2 Conv or ConvTranspose, batch N."""
    node = helper.make_node(op, ["x", "w"], ["y"], strides=[2, 2], auto_pad=auto_pad)
    graph = helper.make_graph(
        [node], op, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(kernel.reshape(1, 1, 3, 3).astype(np.float32), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


onnx_layers = {}
for auto_pad in ("SAME_UPPER", "SAME_LOWER"):
    for op, size in (("ConvTranspose", 2), ("Conv", 4)):
        model = onnx_model(op, size, auto_pad)
        layer = cm.from_onnx(model)
        evaluator = ReferenceEvaluator(model)
        live = live_matrix(lambda e, ev=evaluator: ev.run(
            None, {"x": e.astype(np.float32)[None]})[0], (1, size, size))
        assert same_matrix(layer, live)
        onnx_layers[op, auto_pad] = layer
    a, b = onnx_layers["ConvTranspose", auto_pad], onnx_layers["Conv", auto_pad]
    print(f"{auto_pad}: {a!r}: {relation(a, b)!r}")
    cases.append((f"ONNX ConvTranspose\n{auto_pad}", a, b))

# %%
# Mixing the rules is a padding shift — the kind of difference behind several converter
# issues (onnxruntime#11927, onnx#4299):

print(relation(onnx_layers["ConvTranspose", "SAME_LOWER"], onnx_layers["Conv", "SAME_UPPER"]))

# %%
# All the cases at once
# ---------------------
# Top of each pair: the transposed operator's matrix ``A`` (16 outputs × 4 inputs, shown
# transposed as 4×16); bottom: the forward convolution's ``C`` (4×16). ``A = Cᵀ`` means the
# two pictures are identical; with a kernel flip the numbers run backwards.

verdicts = []
fig, axes = plt.subplots(len(cases), 1, figsize=(9, 1.55 * len(cases)), layout="constrained")
for ax, (name, a, b) in zip(axes, cases, strict=True):
    found = relation(a, b)
    verdicts.append(found)
    shown = np.vstack([a.matrix().toarray().T, np.full((1, 16), np.nan), b.matrix().toarray()])
    ax.imshow(np.where(shown == 0, np.nan, shown), cmap="viridis", vmin=1, vmax=9,
              aspect="auto")
    for (i, j), value in np.ndenumerate(shown):
        if value == value and value:  # not a separator (NaN) nor a structural zero
            ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=7, color="white")
    ax.set_yticks([])
    ax.set_xticks([])
    text = "A = Cᵀ" if not found.differences and found.verdict == "transpose" else (
        "A = Cᵀ up to " + ", ".join(found.differences))
    ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    ax.set_title(text, fontsize=9, loc="left")
plt.show()

# %%
# The verdicts, checked: every operator is ``Cᵀ`` of its own forward convolution except
# JAX's and flax's defaults, which are ``Cᵀ`` up to a flipped kernel.

expected_flip = {"jax.lax.conv_transpose\ntranspose_kernel=False",
                 "flax ConvTranspose\ntranspose_kernel=False"}
for (name, _, _), found in zip(cases, verdicts, strict=True):
    assert found.verdict == "transpose"
    assert found.differences == ({"kernel_flip": (False, True)} if name in expected_flip
                                 else {}), name

# %%
# The built-in report :doc:`/reports/transposed-convolution-in-each-framework` covers 19 operators
# (``tf.nn.conv2d_transpose``, explicit padding pairs in JAX, ONNX ``output_shape``), each
# linked to the public issue it explains.
