"""The layer the command-line flags describe: validated from shapes first, values last."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.budget import check_budget
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES
from convmatrix.builder.weights import as_weight, make_weight
from convmatrix.geometry.shapes import shape_text
from convmatrix.geometry.spec import ConvSpec, conv_spec, conv_transpose_spec
from convmatrix.layers.channels_last import KerasConv
from convmatrix.layers.conv import Conv, ConvTranspose
from convmatrix.reports.layer import keras_conv
from convmatrix.typing import Direction

__all__ = ["SEED", "LayerPlan", "build_layer", "check_memory", "layer_from_args", "plan_layer"]

SEED = ((1, 3, 3), (1, 1, 2, 2))  # input and weight shape of the seed example


@dataclass(frozen=True)
class LayerPlan:
    """The layer the flags describe, validated from shapes alone (no weight allocated yet)."""

    spec: ConvSpec
    direction: Direction  # "adjoint": the layer's matrix is Cᵀ (a transposed convolution)
    weight_shape: tuple[int, ...]
    dtype: np.dtype[Any]
    keras: dict[str, Any] | None  # the serialized Keras layer, if any
    input_shape: tuple[int, ...]  # one sample in the layer's own layout
    output_shape: tuple[int, ...]

    @property
    def weight_nbytes(self) -> int:
        return math.prod(self.weight_shape) * self.dtype.itemsize

    @property
    def transposed(self) -> bool:
        """Whether the layer's matrix is ``Cᵀ`` (``direction == "adjoint"``)."""
        return self.direction == "adjoint"

    @property
    def layout(self) -> str:
        """How samples are flattened: channels first, or the Keras layer's data format."""
        if self.keras is None:
            return "channels first"
        return f"Keras layout, {self.keras['config']['data_format']}"


def _weight_header(path: Path) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype of a ``.npy`` file, memory-mapped (nothing is read into memory)."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except OSError as error:
        raise ConvMatrixError(f"`--weight-file` ({str(path)!r}): "
                              f"{error.strerror or error}") from None
    except (ValueError, EOFError) as error:
        raise ConvMatrixError(f"`--weight-file` ({str(path)!r}) must be an array saved with "
                              f"numpy.save (.npy): {error}") from None
    if not isinstance(mapped, np.ndarray):
        raise ConvMatrixError(f"`--weight-file` ({str(path)!r}) must hold one array (.npy), "
                              f"not an archive of several (.npz)")
    try:
        as_weight(np.empty(0, dtype=mapped.dtype))
    except TypeError as error:
        raise ConvMatrixError(f"`--weight-file` ({str(path)!r}): {error}") from None
    return tuple(int(v) for v in mapped.shape), np.dtype(mapped.dtype)


def _shapes(args: argparse.Namespace) -> tuple[tuple[int, ...], tuple[int, ...], np.dtype[Any]]:
    """Input shape, weight shape and weight dtype, from --input, --kernel and --weight-file."""
    if args.weight_file is not None and args.weight is not None:
        raise ConvMatrixError("give either `--weight` (generated values) or `--weight-file` "
                              "(values from a file), not both")
    dtype = np.dtype(np.float64 if args.weight == "random" else np.int64)
    kernel = args.kernel
    if args.weight_file is not None:
        file_shape, dtype = _weight_header(args.weight_file)
        if kernel is not None and tuple(kernel) != file_shape:
            raise ConvMatrixError(
                f"`--weight-file` ({str(args.weight_file)!r}) has shape "
                f"{shape_text(file_shape)}, but `--kernel` says {shape_text(kernel)}")
        kernel = file_shape
    if args.input is None and kernel is None and not args.keras:
        return SEED[0], SEED[1], dtype
    if args.input is None or kernel is None:
        raise ConvMatrixError("give both --input and --kernel (or --weight-file), or neither "
                              "for the seed example")
    return tuple(args.input), tuple(kernel), dtype


def _keras_config(args: argparse.Namespace, input_shape: tuple[int, ...],
                  kernel: tuple[int, ...]) -> dict[str, Any]:
    """The serialized Keras layer the flags describe (kernel and input in Keras layouts)."""
    rank = len(input_shape) - 1
    if len(kernel) != rank + 2:
        raise ConvMatrixError(f"`--kernel` {shape_text(kernel)} must have {rank + 2} axes for a "
                              f"{rank}-D {args.keras} (kernel size, then two channel axes)")

    def per_axis(value: Any) -> list[int]:
        return [value] * rank if isinstance(value, int) else list(value)

    ignored = [flag for flag, used in [
        ("--transpose", args.transpose),
        ("--padding-mode", args.padding_mode != "zeros"),
        ("--output-padding", args.output_padding is not None and "Transpose" not in args.keras),
        ("--groups", args.groups != 1 and args.keras.startswith(("Conv1DT", "Conv2DT", "Conv3DT",
                                                                 "Depthwise")))] if used]
    if ignored:
        raise ConvMatrixError(
            f"{', '.join(ignored)} cannot be used with --keras {args.keras} (the Keras class "
            f"fixes it: pick a *Transpose class for a transposed layer; Keras pads with zeros)")
    padding = args.padding if isinstance(args.padding, str) else None
    if args.padding not in (0, "valid", "same", "causal"):
        raise ConvMatrixError(f"`--padding` (={args.padding!r}) must be valid, same or causal "
                              f"for a Keras layer")
    config: dict[str, Any] = {
        "kernel_size": list(kernel[:rank]), "strides": per_axis(args.stride),
        "padding": padding or "valid", "dilation_rate": per_axis(args.dilation),
        "data_format": "channels_first" if args.channels_first else "channels_last"}
    if "Transpose" in args.keras:
        config["filters"] = kernel[rank]
        config["output_padding"] = (None if args.output_padding is None
                                    else per_axis(args.output_padding))
    elif "Depthwise" in args.keras:
        config["depth_multiplier"] = kernel[rank + 1]
    else:
        config["filters"], config["groups"] = kernel[rank + 1], args.groups
    return {"class_name": args.keras, "config": config}


def plan_layer(args: argparse.Namespace) -> LayerPlan:
    """Validate every flag and the geometry from shapes alone; allocate nothing."""
    if args.channels_first and not args.keras:
        raise ConvMatrixError("`--channels-first` applies only with --keras (convmatrix's own "
                              "layers are always channels first)")
    input_shape, kernel, dtype = _shapes(args)
    if args.keras:
        serialized = _keras_config(args, input_shape, kernel)
        # the Keras geometry needs a kernel: check its size against the budget first
        check_budget(f"the {shape_text(kernel)} kernel", math.prod(kernel) * dtype.itemsize,
                     getattr(args, "max_bytes", DEFAULT_MAX_BYTES), flag="--max-bytes")
        keras = keras_conv(serialized, np.zeros(kernel, dtype=dtype), input_shape)
        view = keras.conv_view()
        return LayerPlan(view.spec, view.direction, kernel, dtype, serialized, input_shape,
                         keras.output_shape)
    geometry: dict[str, Any] = {"stride": args.stride, "padding": args.padding,
                                "dilation": args.dilation, "groups": args.groups}
    if args.transpose:
        if args.padding_mode != "zeros":
            raise ConvMatrixError(
                f"`--padding-mode` (={args.padding_mode!r}) must be 'zeros' with --transpose "
                f"(torch's ConvTranspose allows only zero padding)")
        spec = conv_transpose_spec(kernel, input_shape, output_padding=args.output_padding or 0,
                                   **geometry)
    else:
        if args.output_padding is not None:
            raise ConvMatrixError("`--output-padding` applies only with --transpose")
        spec = conv_spec(kernel, input_shape, padding_mode=args.padding_mode, **geometry)
    output_shape = spec.input_shape if args.transpose else spec.output_shape
    direction: Direction = "adjoint" if args.transpose else "forward"
    return LayerPlan(spec, direction, kernel, dtype, None, input_shape, output_shape)


def _weight(args: argparse.Namespace, plan: LayerPlan) -> np.ndarray:
    if args.weight_file is None:
        return make_weight(plan.weight_shape, args.weight or "ones", args.seed)
    try:
        weight = np.load(args.weight_file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:  # pragma: no cover - the header was read
        raise ConvMatrixError(f"`--weight-file` ({str(args.weight_file)!r}): {error}") from None
    if weight.shape != plan.weight_shape or weight.dtype != plan.dtype:  # pragma: no cover
        raise ConvMatrixError(f"`--weight-file` ({str(args.weight_file)!r}) changed while read")
    return weight


def build_layer(args: argparse.Namespace, plan: LayerPlan) -> Conv | ConvTranspose | KerasConv:
    weight = _weight(args, plan)
    if plan.keras is not None:
        return keras_conv(plan.keras, weight, plan.input_shape)
    geometry: dict[str, Any] = {"stride": args.stride, "padding": args.padding,
                                "dilation": args.dilation, "groups": args.groups}
    if plan.direction == "adjoint":
        return ConvTranspose(weight, plan.input_shape, output_padding=args.output_padding or 0,
                             **geometry)
    return Conv(weight, plan.input_shape, padding_mode=args.padding_mode, **geometry)


def layer_from_args(args: argparse.Namespace) -> Conv | ConvTranspose | KerasConv:
    """The layer object the layer flags describe (the seed example without flags).

    The geometry is validated from the shapes before any weight is allocated or loaded.
    """
    return build_layer(args, plan_layer(args))


def check_memory(args: argparse.Namespace, plan: LayerPlan, what: str, nbytes: int) -> None:
    kind = (f"Keras {plan.keras['class_name']}" if plan.keras is not None
            else f"{'ConvTranspose' if plan.transposed else 'Conv'}{plan.spec.ndim}d")
    check_budget(f"{what} ({kind} {shape_text(plan.input_shape)} → "
                 f"{shape_text(plan.output_shape)})", plan.weight_nbytes + nbytes,
                 args.max_bytes, flag="--max-bytes")
