"""Record TensorFlow's transposed convolutions as exact matrices into tests/data/oracle/.

Run with TensorFlow installed (not a project dependency; a separate venv):

    python3 -m venv /work/venv-tf && /work/venv-tf/bin/pip install tensorflow-cpu numpy
    /work/venv-tf/bin/python scripts/record_tf_transpose.py

Writes ``tests/data/oracle/tf_transpose.json`` (one record per case) and
``tests/data/oracle/tf_transpose.npz`` (arrays keyed ``"<id>__<name>"``, float64). Each case
is one small geometry of ``tf.nn.conv2d_transpose`` (SAME/VALID, strides, dilations, several
valid ``output_shape`` choices for one input) or of Keras ``Conv2DTranspose`` (padding,
strides, ``output_padding``), with (dilations above 1 are not recorded: TF's CPU kernel for
the transposed convolution refuses them):

- ``matrix``: the op's Jacobian on one NHWC sample, ``(∏out, ∏in)`` in C order, recorded by
  feeding the identity as a batch of unit vectors (weights are small integers, so every entry
  is exact in float32);
- ``forward_matrix``: the matching forward convolution with the same filter/kernel
  (``tf.nn.conv2d`` on an ``output_shape`` sample, Keras ``Conv2D`` on the transpose's output
  shape), recorded the same way — what "the transpose of the forward convolution" means;
- ``filter`` (``tf.nn``, HWOI) or ``kernel`` (Keras, ``(kh, kw, out, in)``);
- refusals: ``output_shape`` choices TF rejects are recorded with ``refused: true`` and the
  first line of TF's message.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import tensorflow as tf

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "oracle"

#: tf.nn.conv2d_transpose: (input H, W, C_in), kernel (kh, kw), C_out, strides, padding,
#: dilations, output spatial shapes to try
NN_CASES = [
    ((4, 4, 2), (3, 3), 3, (1, 1), "SAME", (1, 1), [(4, 4)]),
    ((3, 3, 2), (3, 3), 1, (2, 2), "SAME", (1, 1), [(6, 6), (5, 5), (4, 4)]),
    ((3, 3, 1), (3, 3), 2, (2, 2), "VALID", (1, 1), [(7, 7), (8, 8)]),
    ((3, 3, 1), (4, 4), 1, (2, 2), "SAME", (1, 1), [(6, 6), (5, 5)]),
    ((2, 2, 1), (2, 2), 1, (1, 1), "VALID", (1, 1), [(3, 3)]),
    ((2, 2, 1), (2, 2), 1, (3, 3), "SAME", (1, 1), [(6, 6), (5, 5), (4, 4)]),
    ((3, 2, 2), (2, 3), 1, (1, 2), "SAME", (1, 1), [(3, 4), (3, 3)]),
]

#: Keras Conv2DTranspose: (input H, W, C_in), filters, kernel, strides, padding,
#: output_padding, dilation
KERAS_CASES = [
    ((3, 3, 2), 1, (3, 3), (2, 2), "same", None, (1, 1)),
    ((3, 3, 2), 1, (3, 3), (2, 2), "valid", None, (1, 1)),
    ((3, 3, 1), 2, (3, 3), (2, 2), "same", (1, 1), (1, 1)),
    ((3, 3, 1), 2, (3, 3), (2, 2), "same", (0, 0), (1, 1)),
    ((3, 3, 1), 1, (4, 4), (2, 2), "same", None, (1, 1)),
    ((2, 3, 1), 1, (2, 3), (1, 2), "valid", (0, 1), (1, 1)),
]


#: the geometries of reports/transposed-convolution-in-each-framework.md (kernel 1…9):
#: tf.nn.conv2d_transpose on 2×2×1 to output_shape 4×4 and 3×3, and Keras Conv2DTranspose
REPORT_NN = ((2, 2, 1), (2, 2), "SAME", [(4, 4), (3, 3)])
REPORT_KERAS = ((2, 2, 1), 1, (3, 3), (2, 2), "same", None, (1, 1))


def _integers(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Small non-zero integers: each is exact in float32 and identifies its tap."""
    values = rng.integers(1, 10, size=shape) * rng.choice([-1, 1], size=shape)
    return values.astype(np.float32)


def _jacobian(fn, in_shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(in_shape))
    eye = np.eye(n, dtype=np.float32).reshape(n, *in_shape)
    out = np.asarray(fn(eye), dtype=np.float64)
    return out.reshape(n, -1).T  # (∏out, ∏in)


def record() -> tuple[list[dict], dict[str, np.ndarray]]:
    rng = np.random.default_rng(20261203)
    records: list[dict] = []
    arrays: dict[str, np.ndarray] = {}
    k19 = np.arange(1.0, 10.0, dtype=np.float32).reshape(3, 3, 1, 1)
    in_shape, strides, padding, outputs = REPORT_NN
    nn_cases = [(f"{index:02d}", None, case) for index, case in enumerate(NN_CASES)]
    nn_cases.append(("report", k19, (in_shape, (3, 3), 1, strides, padding, (1, 1), outputs)))
    for label, fixed, (in_shape, k, c_out, strides, padding, dil, outputs) in nn_cases:
        filt = fixed if fixed is not None else _integers(rng, (*k, c_out, in_shape[-1]))
        for out_hw in outputs:
            case_id = f"tf-conv2d_transpose-{label}-{out_hw[0]}x{out_hw[1]}"
            out_shape = (*out_hw, c_out)
            record = {"id": case_id, "framework": "tf", "op": "conv2d_transpose", "ndim": 2,
                      "input_shape": list(in_shape), "output_shape": list(out_shape),
                      "filter_shape": list(filt.shape), "strides": list(strides),
                      "padding": padding, "dilations": list(dil), "dtype": "float32"}
            try:
                matrix = _jacobian(
                    lambda x, f=filt, o=out_shape, s=strides, p=padding, d=dil:
                    tf.nn.conv2d_transpose(x, f, (x.shape[0], *o), strides=s, padding=p,
                                           dilations=d), in_shape)
            except Exception as err:  # TF refuses this output_shape
                record.update(refused=True, message=str(err).strip().splitlines()[0][:300],
                              arrays=["filter"])
                arrays[f"{case_id}__filter"] = filt.astype(np.float64)
                records.append(record)
                continue
            forward = _jacobian(lambda z, f=filt, s=strides, p=padding, d=dil: tf.nn.conv2d(
                z, f, strides=s, padding=p, dilations=d), out_shape)
            record["arrays"] = ["filter", "matrix", "forward_matrix"]
            arrays[f"{case_id}__filter"] = filt.astype(np.float64)
            arrays[f"{case_id}__matrix"] = matrix
            arrays[f"{case_id}__forward_matrix"] = forward
            records.append(record)
    keras_cases = [(f"{index:02d}", case) for index, case in enumerate(KERAS_CASES)]
    keras_cases.append(("report", REPORT_KERAS))
    for label, (in_shape, filters, k, strides, padding, out_pad, dil) in keras_cases:
        case_id = f"tf-keras-Conv2DTranspose-{label}"
        layer = keras.layers.Conv2DTranspose(filters, k, strides=strides, padding=padding,
                                             output_padding=out_pad, dilation_rate=dil,
                                             use_bias=False)
        layer.build((1, *in_shape))
        kernel = (k19 if label == "report"
                  else _integers(rng, tuple(layer.kernel.shape)))  # (kh, kw, filters, C_in)
        layer.kernel.assign(kernel)
        matrix = _jacobian(lambda x, lay=layer: lay(x), in_shape)
        out_shape = tuple(int(v) for v in layer.compute_output_shape((1, *in_shape))[1:])
        conv = keras.layers.Conv2D(in_shape[-1], k, strides=strides, padding=padding,
                                   dilation_rate=dil, use_bias=False)
        conv.build((1, *out_shape))
        conv.kernel.assign(kernel)  # Conv2D kernel (kh, kw, in=filters, out=C_in): the same
        forward = _jacobian(lambda z, lay=conv: lay(z), out_shape)
        config = json.loads(json.dumps(keras.layers.serialize(layer), default=str))
        records.append({"id": case_id, "framework": "keras", "op": "Conv2DTranspose",
                        "ndim": 2, "input_shape": list(in_shape),
                        "output_shape": list(out_shape), "kernel_shape": list(kernel.shape),
                        "layer": config, "dtype": "float32",
                        "arrays": ["kernel", "matrix", "forward_matrix"]})
        arrays[f"{case_id}__kernel"] = kernel.astype(np.float64)
        arrays[f"{case_id}__matrix"] = matrix
        arrays[f"{case_id}__forward_matrix"] = forward
    return records, arrays


def main() -> int:
    records, arrays = record()
    meta = {"tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0]}
    for rec in records:
        rec["versions"] = meta
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "tf_transpose.json").write_text(json.dumps(records, indent=1) + "\n")
    np.savez_compressed(OUT / "tf_transpose.npz", **arrays)
    print(f"{len(records)} cases ({sum(r.get('refused', False) for r in records)} refused) "
          f"→ {OUT}/tf_transpose.json, tf_transpose.npz")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
