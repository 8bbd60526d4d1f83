"""What "transposed convolution" means in each framework: builders and the built-in report.

The TensorFlow builders read ``tf.nn.conv2d`` / ``tf.nn.conv2d_transpose`` arguments into layer
kinds without importing TensorFlow: ``conv2d_transpose`` is TensorFlow's ``Conv2DBackpropInput``
— the adjoint of ``conv2d`` on an ``output_shape`` sample — so it is built as exactly that
(tests/regressions/test_tf_transpose_vectors.py checks both against recorded TensorFlow runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import same_padding_tf
from convmatrix.layers.base import Layer
from convmatrix.layers.channels_last import KerasConv
from convmatrix.layers.conv import Conv, ConvLayer, ConvTranspose
from convmatrix.reports.document import Report
from convmatrix.reports.stack import verification_section

__all__ = ["Case", "onnx_conv_transpose", "report_cases", "tf_conv2d", "tf_conv2d_transpose",
           "transposed_convolution_report"]


def _pairs(value: Any, name: str) -> tuple[int, int]:
    values = (value, value) if isinstance(value, int) else tuple(value)
    if len(values) == 4:  # TF's NHWC form (1, s, s, 1)
        values = values[1:3]
    if len(values) != 2 or any(not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise ConvMatrixError(f"`{name}` (={value!r}) must be an int or two positive ints "
                              f"(or TF's (1, s_h, s_w, 1))")
    return int(values[0]), int(values[1])


def tf_conv2d(filters: Any, input_shape: Sequence[int], strides: Any = 1,
              padding: str = "VALID") -> KerasConv:
    """``tf.nn.conv2d(x, filters, strides, padding)`` on one NHWC sample, as a layer object.

    Parameters
    ----------
    filters : array_like, shape ``(k_h, k_w, C_in, C_out)``
        TensorFlow's HWIO filter.
    input_shape : sequence of int
        One sample ``(H, W, C_in)`` without the batch axis.
    strides : int or sequence of int, optional
        ``s``, ``(s_h, s_w)`` or ``(1, s_h, s_w, 1)``.
    padding : {"VALID", "SAME"}, optional
        ``"SAME"``: ``⌈n/s⌉`` outputs, the odd extra pad after (TensorFlow's rule).

    Returns
    -------
    KerasConv
        Channels-last; its matrix acts on the sample flattened in C order.

    Examples
    --------
    >>> import numpy as np
    >>> tf_conv2d(np.ones((3, 3, 1, 2)), (5, 5, 1), strides=2, padding="SAME")
    tf.nn.conv2d(1→2, 5×5×1 → 3×3×2, kernel 3×3, stride 2, padding 1)
    """
    w = np.asarray(filters, dtype=float)
    shape = tuple(int(v) for v in input_shape)
    if w.ndim != 4 or len(shape) != 3 or w.shape[2] != shape[2]:
        raise ConvMatrixError(f"`filters` {w.shape} (HWIO) and `input_shape` {shape} (H, W, C) "
                              f"do not fit: C must be the filter's third axis")
    stride = _pairs(strides, "strides")
    if padding not in ("VALID", "SAME"):
        raise ConvMatrixError(f"`padding` (={padding!r}) must be 'VALID' or 'SAME'")
    pads = tuple(same_padding_tf(shape[a], w.shape[a], stride[a]) if padding == "SAME"
                 else (0, 0) for a in range(2))
    core = Conv(np.transpose(w, (3, 2, 0, 1)), (shape[2], shape[0], shape[1]), stride=stride,
                padding=pads)
    return KerasConv(core, "tf.nn.conv2d")


def tf_conv2d_transpose(filters: Any, input_shape: Sequence[int], output_shape: Sequence[int],
                        strides: Any = 1, padding: str = "VALID") -> KerasConv:
    """``tf.nn.conv2d_transpose(x, filters, output_shape, strides, padding)`` on one sample.

    TensorFlow defines it as the gradient of :func:`tf_conv2d` with the same filter on an
    ``output_shape`` sample, so its matrix is that convolution's ``Cᵀ``; an ``output_shape``
    that convolution does not map onto ``input_shape`` is refused, as TensorFlow refuses it.

    Parameters
    ----------
    filters : array_like, shape ``(k_h, k_w, C_out, C_in)``
        TensorFlow's HWOI filter for the transpose (the forward's HWIO).
    input_shape, output_shape : sequence of int
        One sample in and out, ``(H, W, C)`` without the batch axis.
    strides, padding : optional
        As for :func:`tf_conv2d` (of the forward convolution).

    Returns
    -------
    KerasConv

    Examples
    --------
    >>> import numpy as np
    >>> up = tf_conv2d_transpose(np.ones((3, 3, 1, 1)), (3, 3, 1), (5, 5, 1), 2, "SAME")
    >>> up
    tf.nn.conv2d_transpose(1→1, 3×3×1 → 5×5×1, kernel 3×3, stride 2, padding 1)
    >>> tf_conv2d_transpose(np.ones((3, 3, 1, 1)), (3, 3, 1), (4, 4, 1), 2, "SAME")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    convmatrix._errors.ConvMatrixError: `output_shape` (=(4, 4, 1)): ... maps it to (2, 2, 1), ...
    """
    forward = tf_conv2d(filters, output_shape, strides, padding)
    shape = tuple(int(v) for v in input_shape)
    if tuple(forward.output_shape) != shape:
        raise ConvMatrixError(
            f"`output_shape` (={tuple(output_shape)}): tf.nn.conv2d with strides "
            f"{_pairs(strides, 'strides')} and padding {padding!r} maps it to "
            f"{tuple(forward.output_shape)}, not to `input_shape` (={shape}); TensorFlow "
            f"refuses it too")
    core = forward.torch
    return KerasConv(ConvLayer.from_spec(core.spec, core.weight, direction="adjoint"),
                     "tf.nn.conv2d_transpose")


# ------------------------------------------------------------------------------ ONNX


def onnx_conv_transpose(weight: Any, input_shape: Sequence[int], *, strides: Sequence[int],
                        pads: Sequence[int] | None = None,
                        output_padding: Sequence[int] | None = None,
                        output_shape: Sequence[int] | None = None,
                        auto_pad: str = "NOTSET", opset: int = 17) -> Layer:
    """ONNX ``ConvTranspose`` of one sample ``(C, *spatial)`` as a layer object.

    Read by the ONNX reader's translator (``convmatrix.adapters.onnx.ops.TRANSLATORS``) from a
    plain :class:`~convmatrix.adapters.onnx.node.OnnxNode` — no ``onnx`` import, so the report
    needs none.

    Examples
    --------
    >>> import numpy as np
    >>> up = onnx_conv_transpose(np.ones((1, 1, 3, 3)), (1, 2, 2), strides=(2, 2),
    ...                          auto_pad="SAME_UPPER")
    >>> up.input_shape, up.output_shape
    ((1, 2, 2), (1, 4, 4))
    """
    from convmatrix.adapters.onnx.node import OnnxNode
    from convmatrix.adapters.onnx.ops import TRANSLATORS

    w = np.asarray(weight, dtype=float)
    attributes: dict[str, Any] = {"strides": tuple(strides), "auto_pad": auto_pad,
                                  "kernel_shape": tuple(w.shape[2:])}
    for name, value in (("pads", pads), ("output_padding", output_padding),
                        ("output_shape", output_shape)):
        if value is not None:
            attributes[name] = tuple(int(v) for v in value)
    node = OnnxNode("ConvTranspose", "ConvTranspose", ("x", "w"), ("y",), attributes, opset,
                    {"w": w})
    return TRANSLATORS["ConvTranspose"](node, tuple(int(v) for v in input_shape))


# ------------------------------------------------------------------------------ the report

_FLAX = "https://github.com/google/flax"
_JAX = "https://github.com/jax-ml/jax"
_ORT = "https://github.com/microsoft/onnxruntime"
_ONNX = "https://github.com/onnx/onnx"


@dataclass(frozen=True)
class Case:
    """One framework's transposed operator, its forward convolution, and the issues it explains.

    ``layer`` is the transposed operator (``a``), ``forward`` the same framework's forward
    convolution (``b``); the report states ``relation(layer, forward)``. ``call`` and
    ``forward_call`` are the framework calls the matrices stand for (tests rebuild them live).
    """

    key: str
    framework: str
    call: str
    layer: Layer
    forward_call: str
    forward: Layer
    issues: tuple[tuple[str, str], ...] = ()
    note: str = ""
    show: bool = True


def _k3() -> np.ndarray:
    return np.arange(1.0, 10.0).reshape(3, 3)


def report_cases() -> list[Case]:
    """Every case of the report, built by convmatrix's readers and kinds (no framework import).

    The weights are the integers 1…9 (a 3×3 kernel, one channel), so each matrix shows which
    tap lands where; one flax case has 2 → 3 channels to show the swapped channel axes.
    """
    from convmatrix.adapters.keras import from_keras
    from convmatrix.adapters.lax import conv_general_dilated, conv_transpose

    k = _k3()
    torch_w = k.reshape(1, 1, 3, 3)
    hwio = k.reshape(3, 3, 1, 1)
    dn = ("NHWC", "HWIO", "NHWC")
    cases: list[Case] = []
    conv_torch = Conv(torch_w, (1, 4, 4), stride=2, padding=1)
    cases += [
        Case("torch", "PyTorch",
             "nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1) on 2×2",
             ConvTranspose(torch_w, (1, 2, 2), stride=2, padding=1, output_padding=1),
             "nn.Conv2d(1, 1, 3, stride=2, padding=1) on 4×4", conv_torch),
        Case("torch-no-output-padding", "PyTorch",
             "nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1) on 2×2",
             ConvTranspose(torch_w, (1, 2, 2), stride=2, padding=1),
             "nn.Conv2d(1, 1, 3, stride=2, padding=1) on 4×4", conv_torch,
             note="Without `output_padding` the output is one row and column short of the "
                  "convolution's input: a stride-2 convolution maps 3×3 and 4×4 alike to "
                  "2×2, and `output_padding` picks which one the transpose returns to."),
        Case("torch-padding-crops", "PyTorch",
             "nn.ConvTranspose2d(1, 1, 3, stride=2) on 2×2 (no padding)",
             ConvTranspose(torch_w, (1, 2, 2), stride=2),
             "nn.Conv2d(1, 1, 3, stride=2, padding=1) on 4×4", conv_torch,
             (("Samsung/TICO#420", "https://github.com/Samsung/TICO/issues/420"),),
             "`ConvTranspose2d.padding` is the forward convolution's padding: it *crops* the "
             "transposed output. Converters that turn it into padding of the transposed "
             "convolution's input compute something else.", show=False),
    ]
    keras_kernel = k.reshape(3, 3, 1, 1)
    cases.append(Case(
        "keras", "Keras",
        "Conv2DTranspose(1, 3, strides=2, padding='same') on 2×2×1",
        from_keras({"class_name": "Conv2DTranspose",
                    "config": {"filters": 1, "kernel_size": [3, 3], "strides": [2, 2],
                               "padding": "same", "use_bias": False}},
                   keras_kernel, (2, 2, 1)),
        "Conv2D(1, 3, strides=2, padding='same') on 4×4×1",
        from_keras({"class_name": "Conv2D",
                    "config": {"filters": 1, "kernel_size": [3, 3], "strides": [2, 2],
                               "padding": "same", "use_bias": False}},
                   keras_kernel, (4, 4, 1))))
    for size in (4, 3):
        cases.append(Case(
            f"tf-{size}", "TensorFlow",
            f"tf.nn.conv2d_transpose(x, f, output_shape=(1, {size}, {size}, 1), strides=2, "
            f"padding='SAME') on 2×2×1",
            tf_conv2d_transpose(hwio, (2, 2, 1), (size, size, 1), 2, "SAME"),
            f"tf.nn.conv2d(z, f, strides=2, padding='SAME') on {size}×{size}×1",
            tf_conv2d(hwio, (size, size, 1), 2, "SAME"),
            (("jax#4592", f"{_JAX}/issues/4592"),) if size == 3 else (),
            "One input, two outputs: `output_shape` names the convolution whose gradient "
            "this is (3×3 and 4×4 both convolve to 2×2). JAX has no such argument; "
            "jax#4592 was answered with `jax.vjp`." if size == 3 else ""))
    conv_same = conv_general_dilated((1, 4, 4, 1), hwio, (2, 2), "SAME", dimension_numbers=dn)
    flax_issues = (("flax#2577", f"{_FLAX}/issues/2577"), ("flax#2578", f"{_FLAX}/pull/2578"),
                   ("flax#3137", f"{_FLAX}/issues/3137"), ("jax#11252", f"{_JAX}/issues/11252"))
    for flag in (False, True):
        cases.append(Case(
            f"flax-{str(flag).lower()}", "flax",
            f"nn.ConvTranspose(1, (3, 3), strides=2, padding='SAME', transpose_kernel={flag}) "
            f"on 2×2×1, the Conv's kernel",
            conv_transpose((1, 2, 2, 1), hwio, (2, 2), "SAME", dimension_numbers=dn,
                           transpose_kernel=flag),
            "nn.Conv(1, (3, 3), strides=2, padding='SAME') on 4×4×1", conv_same,
            flax_issues if not flag else (),
            "flax's `ConvTranspose` is `jax.lax.conv_transpose` with the module's arguments; "
            "its default reads the kernel as the transposed convolution's own "
            "(`transpose_kernel=False`, kept as the default by flax#2578)." if not flag else
            "With `transpose_kernel=True` flax (like torch and Keras) computes the gradient of "
            "its `Conv` with the same kernel (the flag flax#3137 asked the docs to mention)."))
    wide = np.arange(1.0, 37.0).reshape(3, 3, 2, 2)                  # Conv 2 → 2, HWIO
    cases.append(Case(
        "flax-channels", "flax",
        "nn.ConvTranspose(2, (3, 3), strides=2, padding='SAME') on 2×2×2, the Conv's kernel",
        conv_transpose((1, 2, 2, 2), wide, (2, 2), "SAME", dimension_numbers=dn),
        "nn.Conv(2, (3, 3), strides=2, padding='SAME') on 4×4×2",
        conv_general_dilated((1, 4, 4, 2), wide, (2, 2), "SAME", dimension_numbers=dn),
        (("jax#11252", f"{_JAX}/issues/11252"),),
        "With channels, the default also reads the kernel's in/out axes the other way round "
        "(kernel shape `(k, k, in, out)` of the transpose itself).", show=False))
    k1 = k.reshape(3, 3, 1, 1)
    cases.append(Case(
        "lax-stride1", "jax.lax",
        "lax.conv_transpose(x, k, (1, 1), 'SAME') on 3×3×1 (transpose_kernel=False)",
        conv_transpose((1, 3, 3, 1), k1, (1, 1), "SAME", dimension_numbers=dn),
        "lax.conv_general_dilated(z, k, (1, 1), 'SAME') on 3×3×1",
        conv_general_dilated((1, 3, 3, 1), k1, (1, 1), "SAME", dimension_numbers=dn),
        (("equinox#728", "https://github.com/patrick-kidger/equinox/issues/728"),),
        "equinox#728: equinox's Conv2d and ConvTranspose2d with the same weight (stride 1, "
        "'SAME') failed the dot test ⟨a, Cx⟩ = ⟨Cᵀa, x⟩. lax's transposed convolution with "
        "the kernel as given fails it the same way: at stride 1 it is C itself."))
    conv_pads = conv_general_dilated((1, 4, 4, 1), hwio, (2, 2), [(0, 1), (0, 1)],
                                     dimension_numbers=dn)
    for consistent in (False, True):
        cases.append(Case(
            f"lax-explicit-{str(consistent).lower()}", "jax.lax",
            f"lax.conv_transpose(x, k, (2, 2), [(0, 1), (0, 1)], transpose_kernel=True"
            f"{', use_consistent_padding=True' if consistent else ''}) on 2×2×1",
            conv_transpose((1, 2, 2, 1), hwio, (2, 2), [(0, 1), (0, 1)],
                           dimension_numbers=dn, transpose_kernel=True,
                           use_consistent_padding=consistent),
            "lax.conv_general_dilated(z, k, (2, 2), [(0, 1), (0, 1)]) on 4×4×1", conv_pads,
            (("jax#32267", f"{_JAX}/issues/32267"), ("jax#32268", f"{_JAX}/pull/32268")),
            "Explicit pairs used to be the padding of the transposed correlation itself, "
            "while 'SAME'/'VALID' are the forward convolution's (jax#32267); jax#32268 added "
            "`use_consistent_padding=True` (the default stays False)."
            if not consistent else "", show=consistent))
    conv_valid = conv_general_dilated((1, 5, 5, 1), hwio, (2, 2), "VALID", dimension_numbers=dn)
    for padding in ("VALID", [(0, 0), (0, 0)]):
        cases.append(Case(
            "lax-valid" if padding == "VALID" else "lax-zero-pairs", "jax.lax",
            f"lax.conv_transpose(x, k, (2, 2), {padding!r}, transpose_kernel=True) on 2×2×1",
            conv_transpose((1, 2, 2, 1), hwio, (2, 2), padding, dimension_numbers=dn,
                           transpose_kernel=True),
            "lax.conv_general_dilated(z, k, (2, 2), 'VALID') on 5×5×1", conv_valid,
            (("jax#17618", f"{_JAX}/issues/17618"),) if padding != "VALID" else (),
            "'VALID' and `[(0, 0), (0, 0)]` differ: the string is the forward convolution's "
            "padding, the pairs (by default) the transposed correlation's own."
            if padding != "VALID" else "", show=padding == "VALID"))
    upper = Conv(torch_w, (1, 4, 4), stride=2, padding=((0, 1), (0, 1)))  # Conv SAME_UPPER
    lower = Conv(torch_w, (1, 4, 4), stride=2, padding=((1, 0), (1, 0)))  # Conv SAME_LOWER
    onnx_cases: list[tuple[str, str, dict[str, Any], str, Layer, tuple[tuple[str, str], ...],
                           str]] = [
        ("onnx-pads", "pads=[1, 1, 1, 1], output_padding=[1, 1]",
         {"pads": (1, 1, 1, 1), "output_padding": (1, 1)},
         "Conv(strides=[2, 2], pads=[1, 1, 1, 1]) on 4×4", conv_torch, (), ""),
        ("onnx-same-upper", "auto_pad='SAME_UPPER'", {"auto_pad": "SAME_UPPER"},
         "Conv(strides=[2, 2], auto_pad='SAME_UPPER') on 4×4", upper,
         (("onnx#1609", f"{_ONNX}/issues/1609"), ("onnxruntime#9370", f"{_ORT}/issues/9370"),
          ("onnxruntime#4086", f"{_ORT}/issues/4086"),
          ("onnxruntime#4698", f"{_ORT}/issues/4698")),
         "The spec's text puts the odd padding at the end for SAME_UPPER while its formula "
         "put it at the start (onnx#1609); onnxruntime's ConvTranspose split it the other way "
         "round from shape inference (onnxruntime#9370), and earlier ignored `auto_pad` "
         "(onnxruntime#4086, #4698)."),
        ("onnx-same-lower", "auto_pad='SAME_LOWER'", {"auto_pad": "SAME_LOWER"},
         "Conv(strides=[2, 2], auto_pad='SAME_LOWER') on 4×4", lower, (), ""),
        ("onnx-same-upper-output-padding", "auto_pad='SAME_UPPER', output_padding=[1, 1]",
         {"auto_pad": "SAME_UPPER", "output_padding": (1, 1)},
         "Conv(strides=[2, 2], auto_pad='SAME_UPPER') on 4×4", upper,
         (("onnxruntime#11927", f"{_ORT}/issues/11927"), ("onnx#4299", f"{_ONNX}/issues/4299")),
         "`output_padding` together with `auto_pad` (asked in onnx#4299 and onnxruntime#11927): "
         "the output stays input·stride and the padding split moves."),
        ("onnx-output-shape", "auto_pad='SAME_UPPER', output_shape=[3, 3]",
         {"auto_pad": "SAME_UPPER", "output_shape": (3, 3)},
         "Conv(strides=[2, 2], pads=[1, 1, 1, 1]) on 3×3",
         Conv(torch_w, (1, 3, 3), stride=2, padding=1),
         (("onnxruntime#13311", f"{_ORT}/pull/13311"),),
         "`output_shape` fixes the output size and the padding is derived from it (the split "
         "onnxruntime's CPU provider changed in #13311)."),
    ]
    for key, attrs_text, attrs, forward_call, forward, issues, note in onnx_cases:
        cases.append(Case(
            key, "ONNX", f"ConvTranspose(strides=[2, 2], {attrs_text}) on 2×2",
            onnx_conv_transpose(torch_w, (1, 2, 2), strides=(2, 2), **attrs),
            forward_call, forward, issues, note))
    return cases


def _grid(matrix: Any) -> str:
    """A small matrix as integers, ``·`` for a structural zero."""
    dense = np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix)
    cells = [["·" if v == 0 else f"{v:g}" for v in row] for row in dense]
    width = max((len(c) for row in cells for c in row), default=1)
    return "\n".join(" ".join(c.rjust(width) for c in row) for row in cells)


def _links(issues: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"[{label}]({url})" for label, url in issues)


def _verdict_cell(result: Any) -> str:
    if result.verdict == "neither":
        return "neither C nor Cᵀ"
    target = "C" if result.verdict == "equal" else "Cᵀ"
    if result.exact:
        return f"**exactly {target}**"
    keys = [k for k in result.differences if k != "shape"]
    shape = " (another shape)" if "shape" in result.differences else ""
    return f"{target} up to {', '.join(f'`{k}`' for k in keys)}{shape}"


def transposed_convolution_report(figures: bool = True) -> Report:
    """``reports/transposed-convolution-in-each-framework.md`` (see :func:`report_cases`)."""
    from convmatrix.testing.relation import relation

    del figures  # text only: the matrices are printed
    cases = report_cases()
    results = [relation(case.layer, case.forward) for case in cases]
    out = ["# What \"transposed convolution\" means in each framework", "",
           "A transposed convolution is meant to be $C^T$: the gradient of a convolution $C$ "
           "with respect to its input, so that $\\langle a, Cx\\rangle = "
           "\\langle C^T a, x\\rangle$. Frameworks do not all compute that, and where "
           "they do they disagree on what their padding arguments mean. Below, for one small "
           "geometry per framework (a 3×3 kernel with the weights 1…9, one channel unless "
           "said), the matrix convmatrix reads for the transposed operator *a* and its "
           "relation to the same framework's forward convolution *b* with the same weights, "
           "computed by `convmatrix.testing.relation(a, b)` when this report is generated: "
           "*exactly* $C^T$, $C^T$ up to named changes (a flipped kernel, swapped channel "
           "axes, a padding shift, a crop), or $C$ itself. The matrices are built by "
           "convmatrix's readers and layer kinds (`from_keras`, `cm.lax`, `cm.Conv`, "
           "`cm.ConvTranspose`, the ONNX reader's translators, and the TensorFlow rules of "
           "`convmatrix.reports.transposed`) without importing any framework; the test "
           "suite checks each of them against the live framework (TensorFlow: recorded "
           "runs) and reproduces each linked issue "
           "(tests/regressions/test_framework_transposes.py). Rows are outputs, columns "
           "inputs, both flattened in the framework's own layout (channels last for Keras, "
           "TensorFlow and JAX); `·` is a structural zero.", "",
           "## Summary", "",
           "| framework | transposed operator *a* | forward convolution *b* | *a* is | issues |",
           "|---|---|---|---|---|"]
    for case, result in zip(cases, results, strict=True):
        out.append(f"| {case.framework} | `{case.call}` | `{case.forward_call}` | "
                   f"{_verdict_cell(result)} | {_links(case.issues) or '—'} |")
    out.append("")
    framework = None
    for case, result in zip(cases, results, strict=True):
        if case.framework != framework:
            framework = case.framework
            out += [f"## {framework}", ""]
        out += [f"### `{case.call}`", "",
                f"*b* = `{case.forward_call}`; *a* = `{case.layer!r}`.", "",
                f"**{result.summary()}**" + (f": {result.explanation}."
                                             if result.explanation else "."), ""]
        if result.changed is not None and result.differences:
            mark = "" if result.verdict == "equal" else "ᵀ"
            out += [f"*a* = *b′*{mark} exactly, with *b′* = `{result.changed!r}` "
                    f"(channels first).", ""]
        if case.note:
            out += [case.note + (f" ({_links(case.issues)})" if case.issues else ""), ""]
        elif case.issues:
            out += [f"Issues: {_links(case.issues)}.", ""]
        if case.show:
            rows, cols = case.layer.matrix_shape
            out += [f"The matrix of *a* ({rows}×{cols}):", "", "```text",
                    _grid(case.layer.matrix()), "```", ""]
            if not result.exact:
                forward = case.forward.matrix()
                out += [f"and $C^T$ of *b* ({forward.shape[1]}×{forward.shape[0]}), for "
                        f"comparison:", "", "```text", _grid(forward.T), "```", ""]
    exact = sum(1 for r in results if r.verdict == "transpose" and r.exact)
    plain = [c.key for c, r in zip(cases, results, strict=True) if r.verdict == "equal"]
    out += ["## What this shows", "",
            f"{exact} of the {len(cases)} operators above are exactly $C^T$ of their "
            f"framework's convolution with the same weights. The others are $C^T$ only up to "
            f"the changes named with them"
            + (f", and {len(plain)} is $C$ itself" if len(plain) == 1 else
               f", and {len(plain)} are $C$ itself" if plain else "")
            + ". `relation(a, b)` states each in one line; `.changed` is the exact *b′*.", ""]
    out += verification_section([layer for case in cases for layer in (case.layer,
                                                                        case.forward)])
    summary = (f"{exact} of {len(cases)} transposed operators (torch, Keras, TF, flax, "
               f"jax.lax, ONNX) are exactly Cᵀ of their own convolution; the rest differ by a "
               f"kernel flip, a padding shift or a crop — each linked to its public issue")
    return Report("transposed-convolution-in-each-framework",
                  "What \"transposed convolution\" means in each framework", summary,
                  "\n".join(out).rstrip("\n") + "\n", {})
