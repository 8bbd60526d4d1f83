"""Functional forms of the layer kinds in torch graphs: convolutions, pools, padding, norms.

``F.conv2d``, ``aten.convolution``, ``F.avg_pool2d``, ``F.adaptive_avg_pool2d``, ``F.pad``,
``F.interpolate``, ``F.batch_norm`` (eval), ``F.instance_norm`` with running statistics,
``F.pixel_shuffle``: the layer kind with the node's constant weights.
"""

from __future__ import annotations

from typing import Any

from convmatrix.adapters.torch_fx.call import (
    FxCall,
    Produced,
    Refused,
    Traced,
    Translator,
    as_array,
    replace_args,
    single_traced,
)
from convmatrix.layers.conv import Conv, ConvTranspose
from convmatrix.layers.norm import BatchNorm
from convmatrix.layers.pad import Pad
from convmatrix.layers.pool import AvgPool
from convmatrix.layers.shuffle import PixelShuffle, PixelUnshuffle
from convmatrix.layers.upsample import Upsample

__all__ = ["MODULE_TRANSLATORS", "TRANSLATORS"]


def _tuple(value: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * ndim
    items = tuple(int(v) for v in value)
    return items * ndim if len(items) == 1 else items


def _conv(call: FxCall) -> Produced:
    source = single_traced(call)
    if isinstance(call.arg(1, "weight"), Traced) or isinstance(call.arg(2, "bias"), Traced):
        raise Refused("its weight or bias depends on the input")
    weight = as_array(call.arg(1, "weight"))
    bias = call.arg(2, "bias")
    ndim = weight.ndim - 2
    padding = call.arg(4, "padding", 0)
    padding = padding if isinstance(padding, str) else _tuple(padding, ndim)
    layer = Conv(weight, source.shape, stride=_tuple(call.arg(3, "stride", 1), ndim),
                 padding=padding, dilation=_tuple(call.arg(5, "dilation", 1), ndim),
                 groups=int(call.arg(6, "groups", 1)),
                 bias=None if bias is None else as_array(bias))
    return layer, (source.name,)


def _conv_transpose(call: FxCall) -> Produced:
    source = single_traced(call)
    weight = as_array(call.arg(1, "weight"))
    bias = call.arg(2, "bias")
    ndim = weight.ndim - 2
    layer = ConvTranspose(weight, source.shape, stride=_tuple(call.arg(3, "stride", 1), ndim),
                          padding=_tuple(call.arg(4, "padding", 0), ndim),
                          output_padding=_tuple(call.arg(5, "output_padding", 0), ndim),
                          groups=int(call.arg(6, "groups", 1)),
                          dilation=_tuple(call.arg(7, "dilation", 1), ndim),
                          bias=None if bias is None else as_array(bias))
    return layer, (source.name,)


def _avg_pool(call: FxCall) -> Produced:
    source = single_traced(call)
    ndim = len(source.shape) - 1
    kernel = _tuple(call.arg(1, "kernel_size"), ndim)
    stride = call.arg(2, "stride")
    stride = kernel if stride is None or stride == [] else _tuple(stride, ndim)
    return AvgPool(source.shape, kernel, stride, _tuple(call.arg(3, "padding", 0), ndim),
                   ceil_mode=bool(call.arg(4, "ceil_mode", False)),
                   count_include_pad=bool(call.arg(5, "count_include_pad", True)),
                   divisor_override=call.arg(6, "divisor_override")), (source.name,)


def _adaptive_avg_pool(call: FxCall) -> Produced:
    source = single_traced(call)
    ndim = len(source.shape) - 1
    size = call.arg(1, "output_size")
    out = call.output_shape()[1:]
    spatial = source.shape[1:]
    if all(n % o == 0 for n, o in zip(spatial, out, strict=True)):
        kernel = tuple(n // o for n, o in zip(spatial, out, strict=True))
        return AvgPool(source.shape, kernel, kernel), (source.name,)
    from convmatrix.layers.adaptive import AdaptiveAvgPool

    del size, ndim  # the output's own sizes: None entries (keep the axis) are resolved
    return AdaptiveAvgPool(source.shape, out), (source.name,)


def _pad(call: FxCall) -> Produced:
    source = single_traced(call)
    mode = call.arg(2, "mode", "constant")
    value = call.arg(3, "value", 0.0)
    return Pad(source.shape, tuple(int(p) for p in call.arg(1, "pad")), mode=mode,
               value=float(value or 0.0)), (source.name,)


def _interpolate(call: FxCall) -> Produced:
    source = single_traced(call)
    if call.kwargs.get("antialias"):
        raise Refused("uses antialias, which is not read")
    return Upsample(source.shape, size=call.arg(1, "size"),
                    scale_factor=call.arg(2, "scale_factor"), mode=call.arg(3, "mode", "nearest"),
                    align_corners=call.arg(4, "align_corners"),
                    recompute_scale_factor=call.arg(5, "recompute_scale_factor")), (source.name,)


def _batch_norm(call: FxCall) -> Produced:
    """``F.batch_norm(x, mean, var, weight, bias, training, momentum, eps)`` in eval mode."""
    source = single_traced(call)
    if call.arg(5, "training", False):
        raise Refused("normalises by the batch's statistics (training=True); call .eval()")
    if hasattr(call.target, "_schema"):  # aten: (input, weight, bias, mean, var, training, ...)
        weight, bias = call.arg(1, "weight"), call.arg(2, "bias")
        mean, var = call.arg(3, "running_mean"), call.arg(4, "running_var")
    else:  # F.batch_norm: (input, running_mean, running_var, weight, bias, training, ...)
        weight, bias = call.arg(3, "weight"), call.arg(4, "bias")
        mean, var = call.arg(1, "running_mean"), call.arg(2, "running_var")
    if mean is None or var is None:
        raise Refused("has no running statistics: it normalises by the batch's")
    return BatchNorm(source.shape, as_array(mean), as_array(var),
                     weight=None if weight is None else as_array(weight),
                     bias=None if bias is None else as_array(bias),
                     eps=float(call.arg(7, "eps", 1e-5))), (source.name,)


def _aten_batch_norm(call: FxCall) -> Produced:
    """``aten._native_batch_norm_legit_no_training(x, w, b, mean, var, momentum, eps)``.

    Its value is a tuple (output, saved mean, saved invstd); only the output is read.
    """
    source = single_traced(call)
    weight, bias = call.arg(1, "weight"), call.arg(2, "bias")
    layer = BatchNorm(source.shape, as_array(call.arg(3, "running_mean")),
                      as_array(call.arg(4, "running_var")),
                      weight=None if weight is None else as_array(weight),
                      bias=None if bias is None else as_array(bias), eps=float(call.arg(6, "eps")))
    return ((layer, (source.name,)),)


def _pixel_shuffle(call: FxCall) -> Produced:
    source = single_traced(call)
    return PixelShuffle(source.shape, int(call.arg(1, "upscale_factor"))), (source.name,)


def _pixel_unshuffle(call: FxCall) -> Produced:
    source = single_traced(call)
    return PixelUnshuffle(source.shape, int(call.arg(1, "downscale_factor"))), (source.name,)


def _convolution(call: FxCall) -> Produced:
    """``aten.convolution`` (``torch.export``'s decomposed graphs): a conv or a transposed one.

    Its arguments: ``(input, weight, bias, stride, padding, dilation, transposed,
    output_padding, groups)``.
    """
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "transposed",
             "output_padding", "groups")
    x, weight, bias, stride, padding, dilation, transposed, output_padding, groups = (
        call.arg(i, name) for i, name in enumerate(names))
    if transposed:
        return _conv_transpose(replace_args(call, (x, weight, bias, stride, padding,
                                                   output_padding, groups, dilation)))
    return _conv(replace_args(call, (x, weight, bias, stride, padding, dilation, groups)))


def _instance_norm(call: FxCall) -> Produced:
    """``F.instance_norm``/``aten.instance_norm`` with running statistics: per-channel affine.

    By the input's own statistics (``use_input_stats=True``) it is not affine: not read here
    (``cm.linearize`` reads it).
    """
    source = single_traced(call)
    if hasattr(call.target, "_schema"):  # (input, weight, bias, mean, var, use_input_stats, ...)
        names = ("input", "weight", "bias", "running_mean", "running_var")
    else:  # F.instance_norm(input, running_mean, running_var, weight, bias, use_input_stats, ...)
        names = ("input", "running_mean", "running_var", "weight", "bias")
    values = {name: call.arg(i, name) for i, name in enumerate(names)}
    if call.arg(5, "use_input_stats", True):
        return None
    mean, var = values["running_mean"], values["running_var"]
    if mean is None or var is None:
        raise Refused("has use_input_stats=False but no running statistics")
    weight, bias = values["weight"], values["bias"]
    return BatchNorm(source.shape, as_array(mean), as_array(var),
                     weight=None if weight is None else as_array(weight),
                     bias=None if bias is None else as_array(bias),
                     eps=float(call.arg(7, "eps", 1e-5))), (source.name,)


def _module_adaptive_avg_pool(call: FxCall) -> Produced:
    return _adaptive_avg_pool(replace_args(call, (call.args[0], call.module.output_size)))


TRANSLATORS: dict[str, Translator] = {
    "conv1d": _conv, "conv2d": _conv, "conv3d": _conv, "conv_transpose1d": _conv_transpose,
    "conv_transpose2d": _conv_transpose, "conv_transpose3d": _conv_transpose,
    "avg_pool1d": _avg_pool, "avg_pool2d": _avg_pool, "avg_pool3d": _avg_pool,
    "adaptive_avg_pool1d": _adaptive_avg_pool, "adaptive_avg_pool2d": _adaptive_avg_pool,
    "adaptive_avg_pool3d": _adaptive_avg_pool, "pad": _pad, "interpolate": _interpolate,
    "upsample": _interpolate, "batch_norm": _batch_norm,
    "_native_batch_norm_legit_no_training": _aten_batch_norm, "pixel_shuffle": _pixel_shuffle,
    "pixel_unshuffle": _pixel_unshuffle, "convolution": _convolution,
    "instance_norm": _instance_norm,
}
"""This family's operation names → translators (merged into
:data:`~convmatrix.adapters.torch_fx.ops.FX_TRANSLATORS`)."""

MODULE_TRANSLATORS: dict[str, Translator] = {
    f"AdaptiveAvgPool{n}d": _module_adaptive_avg_pool for n in (1, 2, 3)}
"""This family's module class names → translators (merged into
:data:`~convmatrix.adapters.torch_fx.ops.FX_MODULE_TRANSLATORS`)."""
