"""ONNX convolutions and pools: ``Conv``, ``ConvTranspose``, ``AveragePool``, ``GlobalAveragePool``.

Geometry follows ``onnx.reference`` of the installed ``onnx`` where the specification's text
is ambiguous: ``auto_pad`` ``SAME_UPPER`` puts the smaller half of the padding first,
``SAME_LOWER`` the larger. A ``ConvTranspose`` with ``output_shape`` and explicit ``pads``
keeps ``pads`` and cuts or extends the end of the output to ``output_shape``, as the
reference does (onnxruntime ignores such ``pads``); without ``pads`` or ``auto_pad``, a
shorter ``output_shape`` crops the specification's way, the larger half of the total padding
``s·(n − 1) + output_padding + k̂ − output_shape`` first (the reference raises there;
onnxruntime agrees with the specification), a longer one extends the end. With ``SAME_*``
that total padding is split as above (it may be negative when the kernel is smaller than the
stride: then the output starts before the first full-output position, as in the reference;
onnxruntime differs there).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.onnx.node import OnnxNode
from convmatrix.layers.adaptive import GlobalAvgPool
from convmatrix.layers.base import Layer
from convmatrix.layers.conv import Conv, ConvTranspose
from convmatrix.layers.pad import Pad
from convmatrix.layers.pool import AvgPool
from convmatrix.layers.scale import Scale
from convmatrix.layers.sequential import Sequential

__all__ = ["AUTO_PADS", "average_pool", "conv", "conv_transpose", "global_average_pool",
           "pool_geometry", "same_pads"]

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _ints(node: OnnxNode, name: str, ndim: int, default: int) -> tuple[int, ...]:
    value = node.attribute(name)
    if value is None or value == ():
        return (default,) * ndim
    items = tuple(int(v) for v in value)
    if len(items) != ndim:
        raise node.refuse(f"attribute `{name}` (={list(items)}) must have {ndim} values, one "
                          f"per spatial axis")
    return items


def _auto_pad(node: OnnxNode) -> str:
    auto_pad = node.attribute("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad not in AUTO_PADS:
        raise node.refuse(f"attribute `auto_pad` (={auto_pad!r}) must be one of "
                          f"{', '.join(AUTO_PADS)}")
    return str(auto_pad)


def _pads(node: OnnxNode, ndim: int) -> tuple[tuple[int, int], ...]:
    pads = node.attribute("pads")
    if pads is None or pads == ():
        return ((0, 0),) * ndim
    items = tuple(int(v) for v in pads)
    if len(items) != 2 * ndim:
        raise node.refuse(f"attribute `pads` (={list(items)}) must have {2 * ndim} values "
                          f"(all begins, then all ends)")
    return tuple((items[i], items[i + ndim]) for i in range(ndim))


def same_pads(auto_pad: str, n: int, k_eff: int, s: int) -> tuple[int, int]:
    """``SAME_UPPER``/``SAME_LOWER`` padding of one axis (output ``⌈n / s⌉``), as onnx.reference.

    Examples
    --------
    >>> from convmatrix.adapters.onnx.ops_conv import same_pads
    >>> same_pads("SAME_UPPER", 5, 2, 1), same_pads("SAME_LOWER", 5, 2, 1)
    ((0, 1), (1, 0))
    """
    target = -(-n // s)
    needed = max(0, (target - 1) * s + k_eff - n)
    head = (needed + 1) // 2 if auto_pad == "SAME_LOWER" else needed // 2
    return head, needed - head


def _weight(node: OnnxNode, index: int, what: str) -> np.ndarray:
    weight = node.constant_input(index)
    if weight is None:
        raise node.refuse(f"input {index} ({what}) must be a constant (an initializer or "
                          f"a folded constant); convmatrix reads linear maps of one input")
    return node.real(weight, f"input {index} ({what})")


def _bias(node: OnnxNode, index: int, channels: int) -> np.ndarray | None:
    if not node.has_input(index):
        return None
    bias = _weight(node, index, "bias").reshape(-1)
    if bias.shape != (channels,):
        raise node.refuse(f"input {index} (bias) has {bias.size} values; it needs one per "
                          f"output channel ({channels})")
    return bias


def _check_kernel(node: OnnxNode, weight: np.ndarray) -> None:
    kernel = node.attribute("kernel_shape")
    if kernel not in (None, ()) and tuple(int(v) for v in kernel) != weight.shape[2:]:
        raise node.refuse(f"attribute `kernel_shape` (={list(kernel)}) does not match the "
                          f"weight's kernel {list(weight.shape[2:])}")


def _spatial(node: OnnxNode, input_shape: tuple[int, ...], weight: np.ndarray) -> int:
    ndim = len(input_shape) - 1
    if ndim < 1 or weight.ndim != ndim + 2:
        raise node.refuse(f"the input {input_shape} (one sample) and the weight "
                          f"{weight.shape} must have the same 1 to 3 spatial axes")
    if ndim > 3:
        raise node.refuse(f"{ndim} spatial axes: convmatrix reads 1-D to 3-D convolutions")
    return ndim


def conv(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``Conv``: every ``auto_pad``, asymmetric ``pads``, ``strides``, ``dilations``, ``group``."""
    weight = _weight(node, 1, "weight")
    ndim = _spatial(node, input_shape, weight)
    _check_kernel(node, weight)
    strides = _ints(node, "strides", ndim, 1)
    dilations = _ints(node, "dilations", ndim, 1)
    auto_pad = _auto_pad(node)
    if auto_pad == "VALID":
        pads = ((0, 0),) * ndim
    elif auto_pad.startswith("SAME"):
        pads = tuple(same_pads(auto_pad, n, d * (k - 1) + 1, s) for n, k, s, d in
                     zip(input_shape[1:], weight.shape[2:], strides, dilations, strict=True))
    else:
        pads = _pads(node, ndim)
    if any(v < 0 for pair in pads for v in pair):
        raise node.refuse(f"`pads` (={pads}) must be non-negative")
    groups = int(node.attribute("group", 1))
    bias = _bias(node, 2, weight.shape[0])
    try:
        return Conv(weight, input_shape, stride=strides, padding=pads, dilation=dilations,
                    groups=groups, bias=bias)
    except ConvMatrixError as error:
        raise node.refuse(str(error)) from None


def conv_transpose_geometry(node: OnnxNode, input_shape: tuple[int, ...],
                            kernel: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Per axis ``(start, length)``: output ``i`` is the full transposed output ``i + start``.

    The full output of one axis has ``s·(n − 1) + d·(k − 1) + 1`` positions; ONNX keeps
    ``length`` of them from ``start`` on (``start`` < 0 or a length past the end add zeros).
    Follows ``onnx.reference``'s ``ConvTranspose``.
    """
    ndim = len(input_shape) - 1
    strides = _ints(node, "strides", ndim, 1)
    dilations = _ints(node, "dilations", ndim, 1)
    output_padding = node.attribute("output_padding")
    if output_padding in (None, ()):
        out_pad = (0,) * ndim
    else:
        out_pad = tuple(int(v) for v in output_padding)
        if len(out_pad) != ndim:
            raise node.refuse(f"attribute `output_padding` (={list(out_pad)}) must have "
                              f"{ndim} values")
    output_shape = node.attribute("output_shape")
    if output_shape not in (None, ()):
        shape = tuple(int(v) for v in output_shape)
        if len(shape) == ndim + 2:
            shape = shape[2:]
        if len(shape) != ndim:
            raise node.refuse(f"attribute `output_shape` (={list(shape)}) must have {ndim} "
                              f"values (the spatial output size)")
        output_shape = shape
    else:
        output_shape = None
    auto_pad = _auto_pad(node)
    has_pads = node.attribute("pads") not in (None, ())
    result = []
    for axis in range(ndim):
        n, k, s, d, a = (input_shape[axis + 1], int(kernel[axis]), strides[axis],
                         dilations[axis], out_pad[axis])
        k_eff = d * (k - 1) + 1
        full = s * (n - 1) + a + k_eff
        if auto_pad.startswith("SAME") and not has_pads:
            length = output_shape[axis] if output_shape is not None else n * s
            total = full - length
            start = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        elif (auto_pad == "NOTSET" and not has_pads and output_shape is not None
              and output_shape[axis] < full):
            # the reference fails here (ValueError); the specification's formula (the larger
            # half first, as onnxruntime computes it) is the only definition
            length = output_shape[axis]
            total = full - length
            start = total - total // 2
        else:
            pads = _pads(node, ndim) if auto_pad != "VALID" else ((0, 0),) * ndim
            start = pads[axis][0]
            length = (output_shape[axis] if output_shape is not None
                      else full - pads[axis][0] - pads[axis][1])
        if length < 1:
            raise node.refuse(f"the output would be empty along spatial axis {axis} "
                              f"(length {length})")
        result.append((start, length))
    return tuple(result)


def conv_transpose(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``ConvTranspose``: ``output_padding``, ``output_shape``, every ``auto_pad``, ``group``."""
    weight = _weight(node, 1, "weight")
    ndim = _spatial(node, input_shape, weight)
    _check_kernel(node, weight)
    groups = int(node.attribute("group", 1))
    if groups < 1 or weight.shape[0] % groups or input_shape[0] != weight.shape[0]:
        raise node.refuse(f"the weight {weight.shape} (C_in, C_out / group, *k) does not fit "
                          f"the input {input_shape} with group={groups}")
    out_channels = weight.shape[1] * groups
    bias = _bias(node, 2, out_channels)
    strides = _ints(node, "strides", ndim, 1)
    dilations = _ints(node, "dilations", ndim, 1)
    geometry = conv_transpose_geometry(node, input_shape, weight.shape[2:])
    pairs, remainders = [], []
    direct = True
    for axis, (start, length) in enumerate(geometry):
        n, k, s, d = input_shape[axis + 1], weight.shape[axis + 2], strides[axis], dilations[axis]
        k_eff = d * (k - 1) + 1
        after = (n - 1) * s + k_eff - length - start  # the forward conv's end padding
        remainder = max(0, -after)
        if start < 0 or remainder >= max(s, d):
            direct = False
        pairs.append((start, max(after, 0)))
        remainders.append(remainder)
    try:
        if direct:
            return ConvTranspose(weight, input_shape, stride=strides, padding=tuple(pairs),
                                 output_padding=tuple(remainders), dilation=dilations,
                                 groups=groups, bias=bias)
        full = ConvTranspose(weight, input_shape, stride=strides, dilation=dilations,
                             groups=groups)
        pad: list[int] = []
        for axis in reversed(range(ndim)):
            start, length = geometry[axis]
            size = full.output_shape[axis + 1]
            pad += [-start, start + length - size]
        layers: list[Layer] = [full, Pad(full.output_shape, pad)]
        if bias is not None:
            shape = layers[-1].output_shape
            layers.append(Scale(shape, 1.0, bias.reshape(-1, *([1] * ndim))))
        return Sequential(layers)
    except ConvMatrixError as error:
        raise node.refuse(str(error)) from None


def pool_geometry(node: OnnxNode, input_shape: tuple[int, ...]
                  ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...],
                             tuple[tuple[int, int], ...], bool]:
    """``(kernel, strides, dilations, pads, ceil_mode)`` of an ONNX pool on one sample."""
    ndim = len(input_shape) - 1
    kernel = node.attribute("kernel_shape")
    if kernel in (None, ()):
        raise node.refuse("attribute `kernel_shape` is required")
    kernel = tuple(int(v) for v in kernel)
    if len(kernel) != ndim or not 1 <= ndim <= 3:
        raise node.refuse(f"attribute `kernel_shape` (={list(kernel)}) must have one value per "
                          f"spatial axis of the input {input_shape} (1 to 3)")
    strides = _ints(node, "strides", ndim, 1)
    dilations = _ints(node, "dilations", ndim, 1)
    ceil_mode = bool(node.attribute("ceil_mode", 0))
    auto_pad = _auto_pad(node)
    if auto_pad == "VALID":
        pads = ((0, 0),) * ndim
    elif auto_pad.startswith("SAME"):
        pads = tuple(same_pads(auto_pad, n, d * (k - 1) + 1, s) for n, k, s, d in
                     zip(input_shape[1:], kernel, strides, dilations, strict=True))
    else:
        pads = _pads(node, ndim)
    if any(v < 0 for pair in pads for v in pair):
        raise node.refuse(f"`pads` (={pads}) must be non-negative")
    return kernel, strides, dilations, pads, ceil_mode


def average_pool(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``AveragePool``: ``count_include_pad``, ``ceil_mode``, ``pads``, ``auto_pad``, dilations."""
    kernel, strides, dilations, pads, ceil_mode = pool_geometry(node, input_shape)
    count_include_pad = bool(node.attribute("count_include_pad", 0))
    simple = all(d == 1 for d in dilations) and all(
        max(pair) <= k // 2 for pair, k in zip(pads, kernel, strict=True))
    try:
        if simple:
            return AvgPool(input_shape, kernel, strides, pads, ceil_mode=ceil_mode,
                           count_include_pad=count_include_pad)
        if ceil_mode:
            raise node.refuse("`ceil_mode` with `dilations` or pads over half the kernel is "
                              "not read")
        return _dilated_average(input_shape, kernel, strides, dilations, pads,
                                count_include_pad)
    except ConvMatrixError as error:
        raise node.refuse(str(error)) from None


def _dilated_average(input_shape: tuple[int, ...], kernel: tuple[int, ...],
                     strides: tuple[int, ...], dilations: tuple[int, ...],
                     pads: tuple[tuple[int, int], ...], count_include_pad: bool) -> Layer:
    """A dilated (or widely padded) average: a depthwise sum, then one divisor per output.

    The divisor is the kernel size (``count_include_pad``) or the number of taps that read
    the input, a product over the axes (onnxruntime's ``AveragePool`` from opset 19).
    """
    channels, ndim = input_shape[0], len(input_shape) - 1
    weight = np.ones((channels, 1, *kernel))
    total = Conv(weight, input_shape, stride=strides, padding=pads, dilation=dilations,
                 groups=channels)
    if count_include_pad:
        return Sequential([total, Scale(total.output_shape, 1.0 / float(np.prod(kernel)))])
    counts = np.ones(total.output_shape[1:])
    for axis in range(ndim):
        n, out = input_shape[axis + 1], total.output_shape[axis + 1]
        taps = (np.arange(out)[:, None] * strides[axis] - pads[axis][0]
                + np.arange(kernel[axis])[None, :] * dilations[axis])
        valid = ((taps >= 0) & (taps < n)).sum(axis=1).astype(np.float64)
        shape = [1] * ndim
        shape[axis] = out
        counts = counts * valid.reshape(shape)
    if np.any(counts == 0):
        raise ConvMatrixError("a pooling window reads only padding (its average is 0/0)")
    return Sequential([total, Scale(total.output_shape, (1.0 / counts)[None])])


def global_average_pool(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``GlobalAveragePool``: the mean over the spatial axes, kept as size 1."""
    if len(input_shape) < 2:
        raise node.refuse(f"the input {input_shape} has no spatial axes")
    return GlobalAvgPool(input_shape, keepdims=True)

