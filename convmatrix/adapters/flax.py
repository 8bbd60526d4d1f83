"""The flax adapter: ``flax.linen`` and ``flax.nnx`` convolutions as layer objects.

:func:`from_flax` reads ``Conv``, ``ConvTranspose`` and ``Sequential`` of both APIs through
their attributes (nothing imports flax or JAX) and builds the layer with
:mod:`convmatrix.adapters.lax`, exactly as the modules call ``jax.lax``: channels-last samples
``(*spatial, C)``, the kernel in flax's layout ``(*k, C_in // groups, C_out)`` (a
``ConvTranspose`` with ``transpose_kernel=True``: ``(*k, C_out, C_in)``). The registry
:data:`FLAX_READERS` maps a class name to its reader.

What flax does around ``jax.lax`` (read from ``flax/linen/linear.py`` and
``flax/nnx/nn/linear.py``): ``Conv`` pads ``'CIRCULAR'`` (numpy ``wrap``) and ``'REFLECT'``
itself by ``((k̂ − 1) // 2, k̂ // 2)`` and ``'CAUSAL'`` (1-D) by ``k̂ − 1`` zeros before, then
convolves ``'VALID'``; ``ConvTranspose`` calls ``jax.lax.conv_transpose`` — which does *not*
flip the kernel unless ``transpose_kernel=True`` — and for ``'CIRCULAR'`` folds the ``'VALID'``
result periodically onto ``input size × stride`` outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from convmatrix._arrays import to_numpy
from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.lax import STRING_PADDING_REASON, general_dilated_layer, transpose_layer
from convmatrix.geometry.spec import as_sample_shape
from convmatrix.layers.base import Layer
from convmatrix.layers.channels_last import KerasConv
from convmatrix.layers.conv import Conv
from convmatrix.layers.sequential import Sequential

__all__ = ["FLAX_READERS", "FlaxConv", "conv_layer", "conv_transpose_layer", "from_flax",
           "read_flax_module"]

Kind = Literal["Conv", "ConvTranspose"]
FlaxReader = Callable[[Any, Any, tuple[int, ...]], Layer]


@dataclass(frozen=True)
class FlaxConv:
    """A flax convolution's configuration, read from a linen or an nnx module.

    Attributes
    ----------
    title : str
        The class name (``"Conv"``, ``"ConvTranspose"``).
    kernel, bias : ndarray or None
        In flax's layout; ``bias`` None without one.
    kernel_size, strides, input_dilation, kernel_dilation : tuple of int
        Per spatial axis (flax's broadcasting of ints and None applied).
    padding : str or list of (int, int)
        After flax's ``canonicalize_padding``.
    feature_group_count : int
    transpose_kernel : bool
    features : int
        Output channels.
    """

    title: str
    kernel: np.ndarray
    bias: np.ndarray | None
    kernel_size: tuple[int, ...]
    strides: tuple[int, ...]
    padding: Any
    input_dilation: tuple[int, ...]
    kernel_dilation: tuple[int, ...]
    feature_group_count: int
    transpose_kernel: bool
    features: int


def _kernel_size(value: Any) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def _broadcast(value: Any, count: int, name: str) -> tuple[int, ...]:
    """Flax's ``maybe_broadcast``: None → 1, an int for every axis, else one per axis."""
    if value is None:
        value = 1
    if isinstance(value, int):
        return (int(value),) * count
    items = tuple(int(v) for v in value)
    if len(items) != count:
        raise ConvMatrixError(
            f"`{name}` (={value!r}) must have one entry per spatial axis ({count})")
    return items


def _canonical_padding(padding: Any, rank: int) -> Any:
    """Flax's ``canonicalize_padding``: a string, or ``rank`` (low, high) pairs."""
    if isinstance(padding, str):
        return padding
    if isinstance(padding, int):
        return [(padding, padding)] * rank
    if isinstance(padding, Sequence) and len(padding) == rank:
        pairs = []
        for p in padding:
            if isinstance(p, int):
                pairs.append((p, p))
            elif isinstance(p, tuple) and len(p) == 2:
                pairs.append((int(p[0]), int(p[1])))
            else:
                break
        if len(pairs) == rank:
            return pairs
    raise ConvMatrixError(
        f"`padding` (={padding!r}) must be a str, an int, or a sequence of {rank} ints or "
        f"(low, high) pairs; flax: Invalid padding format")


def _params(variables: Any, title: str) -> Mapping[str, Any]:
    """A linen module's parameters: ``variables['params']`` or the params mapping itself."""
    if not isinstance(variables, Mapping):
        raise ConvMatrixError(
            f"`variables` (={type(variables).__name__}) must be the mapping module.init returns "
            f"({{'params': {{...}}}}) or its 'params' for the linen {title}")
    inner = variables.get("params", variables)
    if not isinstance(inner, Mapping):
        raise ConvMatrixError(f"`variables['params']` of the linen {title} must be a mapping")
    return inner


def _check_shape(name: str, value: np.ndarray, expected: tuple[int, ...], title: str,
                 why: str) -> None:
    if value.shape != expected:
        raise ConvMatrixError(
            f"`{name}` of the {title} has shape {value.shape}; the module's configuration "
            f"({why}) needs {expected}")


def _linen_config(module: Any, variables: Any, input_shape: tuple[int, ...],
                  kind: Kind) -> FlaxConv:
    title = type(module).__name__
    params = _params(variables, title)
    if "kernel" not in params:
        raise ConvMatrixError(
            f"`variables` has no 'kernel' for the linen {title} (keys: {sorted(params)})")
    kernel = to_numpy(params["kernel"])
    use_bias = bool(module.use_bias)
    if use_bias and "bias" not in params:
        raise ConvMatrixError(
            f"`variables` has no 'bias' for the linen {title} with use_bias=True "
            f"(keys: {sorted(params)})")
    bias = to_numpy(params["bias"]) if use_bias else None
    transposed = kind == "ConvTranspose"
    return _config(title, module, kernel, bias, int(module.features), input_shape, kind,
                   input_dilation=None if transposed else module.input_dilation,
                   groups=1 if transposed else module.feature_group_count)


def _nnx_value(param: Any) -> Any:
    return param[...] if hasattr(param, "__getitem__") else getattr(param, "value", param)


def _nnx_config(module: Any, variables: Any, input_shape: tuple[int, ...],
                kind: Kind) -> FlaxConv:
    title = type(module).__name__
    if variables is not None:
        raise ConvMatrixError(
            f"`variables` must be None for an nnx {title}: it carries its parameters (give "
            f"`input_shape` by keyword)")
    kernel = to_numpy(_nnx_value(module.kernel))
    bias = None if getattr(module, "bias", None) is None else to_numpy(_nnx_value(module.bias))
    if int(module.in_features) != input_shape[-1]:
        raise ConvMatrixError(
            f"`input_shape` (={input_shape}) has {input_shape[-1]} channels (last axis); the "
            f"nnx {title} has in_features={module.in_features}")
    transposed = kind == "ConvTranspose"
    return _config(title, module, kernel, bias, int(module.out_features), input_shape, kind,
                   input_dilation=None if transposed else module.input_dilation,
                   groups=1 if transposed else module.feature_group_count)


def _config(title: str, module: Any, kernel: np.ndarray, bias: np.ndarray | None,
            features: int, input_shape: tuple[int, ...], kind: Kind, *,
            input_dilation: Any, groups: Any) -> FlaxConv:
    transposed = kind == "ConvTranspose"
    if getattr(module, "mask", None) is not None:
        raise ConvMatrixError(
            f"`mask` of the {title} is set: a masked convolution is refused (multiply the "
            f"mask into the kernel and build the layer from the product)")
    kernel_size = _kernel_size(module.kernel_size)
    rank = len(kernel_size)
    if len(input_shape) != rank + 1:
        raise ConvMatrixError(
            f"`input_shape` (={input_shape}) must be one channels-last sample (*spatial, C) "
            f"with {rank} spatial axes for the {title} (no batch axis)")
    g = int(groups)
    c_in = input_shape[-1]
    if g < 1 or c_in % g:
        raise ConvMatrixError(
            f"`feature_group_count` (={g}) of the {title} must divide the input channels "
            f"{c_in} (`input_shape`={input_shape})")
    if transposed and bool(module.transpose_kernel):
        expected = (*kernel_size, features, c_in)
        why = f"kernel_size {kernel_size}, features {features}, transpose_kernel=True, " \
              f"{c_in} input channels"
    else:
        expected = (*kernel_size, c_in // g, features)
        why = f"kernel_size {kernel_size}, features {features}, {c_in} input channels" + \
              (f", feature_group_count {g}" if g > 1 else "")
    _check_shape("kernel", kernel, expected, title, why)
    if bias is not None:
        _check_shape("bias", bias, (features,), title, f"features {features}")
    return FlaxConv(
        title=title, kernel=kernel, bias=bias, kernel_size=kernel_size,
        strides=_broadcast(module.strides, rank, "strides"),
        padding=_canonical_padding(module.padding, rank),
        input_dilation=_broadcast(input_dilation, rank, "input_dilation"),
        kernel_dilation=_broadcast(module.kernel_dilation, rank, "kernel_dilation"),
        feature_group_count=g,
        transpose_kernel=bool(getattr(module, "transpose_kernel", False)),
        features=features)


def _dimension_numbers(rank: int) -> tuple[tuple[int, ...], ...]:
    """Flax's ``_conv_dimension_numbers``: NHWC, HWIO, NHWC."""
    lhs = (0, rank + 1, *range(1, rank + 1))
    return lhs, (rank + 1, rank, *range(rank)), lhs


def conv_layer(config: FlaxConv, input_shape: tuple[int, ...]) -> Layer:
    """A flax ``Conv`` (linen or nnx) of one channels-last sample, as the module computes it.

    Examples
    --------
    >>> import numpy as np
    >>> config = FlaxConv("Conv", np.ones((3, 1, 1)), None, (3,), (1,), "CIRCULAR", (1,), (1,),
    ...                   1, False, 1)
    >>> conv_layer(config, (4, 1))(np.arange(4.0).reshape(4, 1)).ravel()
    array([4., 3., 6., 5.])
    """
    rank = len(config.kernel_size)
    padding = config.padding
    mode = "zeros"
    eff = [d * (k - 1) + 1 for k, d in zip(config.kernel_size, config.kernel_dilation,
                                            strict=True)]
    if padding in ("CIRCULAR", "REFLECT", "CAUSAL"):
        if padding == "CAUSAL":
            if rank != 1:
                raise ConvMatrixError(
                    f"`padding` (='CAUSAL') of the {config.title} needs one spatial axis "
                    f"(kernel_size {config.kernel_size}); flax: Causal padding is only "
                    f"implemented for 1D convolutions.")
            pads = [(eff[0] - 1, 0)]
        else:
            pads = [((k - 1) // 2, k // 2) for k in eff]
            mode = "circular" if padding == "CIRCULAR" else "reflect"
        if any(a != 1 for a in config.input_dilation):
            raise ConvMatrixError(
                f"`padding` (={padding!r}) of the {config.title} reaches jax.lax as 'VALID' "
                f"with input_dilation={config.input_dilation}; JAX: "
                f"{STRING_PADDING_REASON}")
        padding = pads
    return general_dilated_layer(
        (1, *input_shape), config.kernel, config.strides, padding, config.input_dilation,
        config.kernel_dilation, _dimension_numbers(rank), config.feature_group_count, 1,
        title=config.title, padding_mode=mode, bias=config.bias)


def _periodic_fold(size: tuple[int, ...], period: tuple[int, ...], before: tuple[int, ...],
                   channels: int, bias: np.ndarray | None, dtype: np.dtype[Any]) -> Conv:
    """``out[i] = Σ_j [(j + before) mod period == i] y[j]`` per axis, channels first.

    flax's circular ``ConvTranspose`` pads ``y`` by ``before`` and sums its chunks of length
    ``period``; that is a depthwise correlation with ``M`` unit taps ``period`` apart.
    """
    taps, pads = [], []
    for n, p, a in zip(size, period, before, strict=True):
        lo = a % p
        m = -(-(n + lo) // p)
        taps.append(m)
        pads.append((lo, m * p - lo - n))
    weight = np.ones((channels, 1, *taps), dtype=dtype)
    return Conv(weight, (channels, *size), padding=pads, dilation=period, groups=channels,
                bias=bias)


def conv_transpose_layer(config: FlaxConv, input_shape: tuple[int, ...]) -> Layer:
    """A flax ``ConvTranspose`` (linen or nnx) of one channels-last sample.

    Examples
    --------
    >>> import numpy as np
    >>> config = FlaxConv("ConvTranspose", np.ones((2, 1, 1)), None, (2,), (2,), "VALID",
    ...                   (1,), (1,), 1, False, 1)
    >>> conv_transpose_layer(config, (2, 1))(np.array([[1.0], [2.0]])).ravel()
    array([1., 1., 2., 2.])
    """
    circular = config.padding == "CIRCULAR"
    padding = "VALID" if circular else config.padding
    layer = transpose_layer((1, *input_shape), config.kernel, config.strides, padding,
                            config.kernel_dilation, None, config.transpose_kernel, False,
                            title=config.title, bias=None if circular else config.bias)
    if not circular:
        return layer
    period = tuple(n * s for n, s in zip(input_shape[:-1], config.strides, strict=True))
    size = layer.output_shape[:-1]
    before = []
    for n, p in zip(size, period, strict=True):
        diff = -(n - p) % (2 * p)
        before.append(diff // 2 if config.transpose_kernel else (diff + 1) // 2)
    fold = _periodic_fold(tuple(size), period, tuple(before), config.features, config.bias,
                          np.result_type(config.kernel.dtype, np.float32))
    return Sequential([layer, KerasConv(fold, f"{config.title} circular fold")])


def _read_conv(module: Any, variables: Any, input_shape: tuple[int, ...]) -> Layer:
    config = (_nnx_config if _is_nnx(module) else _linen_config)(module, variables, input_shape,
                                                                 "Conv")
    return conv_layer(config, input_shape)


def _read_conv_transpose(module: Any, variables: Any, input_shape: tuple[int, ...]) -> Layer:
    config = (_nnx_config if _is_nnx(module) else _linen_config)(module, variables, input_shape,
                                                                 "ConvTranspose")
    return conv_transpose_layer(config, input_shape)


def _read_sequential(module: Any, variables: Any, input_shape: tuple[int, ...]) -> Layer:
    layers = list(module.layers)
    if not layers:
        raise ConvMatrixError("the flax Sequential has no layers")
    nnx = _is_nnx(module)
    params = None if nnx else _params(variables, "Sequential")
    built: list[Layer] = []
    shape = input_shape
    for i, child in enumerate(layers):
        child_vars = None
        if not nnx:
            assert params is not None
            child_vars = {"params": params.get(f"layers_{i}", {})}
        try:
            layer = read_flax_module(child, child_vars, shape)
        except ConvMatrixError as error:
            raise ConvMatrixError(f"layers[{i}] of the flax Sequential: {error}") from None
        built.append(layer)
        shape = layer.output_shape
    return built[0] if len(built) == 1 else Sequential(built)


#: flax class name → reader(module, variables, input_shape) (linen and nnx share the names)
FLAX_READERS: dict[str, FlaxReader] = {
    "Conv": _read_conv,
    "ConvTranspose": _read_conv_transpose,
    "Sequential": _read_sequential,
}


def _flax_class(module: Any) -> type | None:
    for cls in type(module).__mro__:
        if cls.__module__.startswith("flax.") and cls.__name__ in FLAX_READERS:
            return cls
    return None


def _is_nnx(module: Any) -> bool:
    cls = _flax_class(module)
    return cls is not None and cls.__module__.startswith("flax.nnx")


def read_flax_module(module: Any, variables: Any, input_shape: tuple[int, ...]) -> Layer:
    """One flax module (a key of :data:`FLAX_READERS`, or a subclass) as a layer object."""
    cls = _flax_class(module)
    if cls is None:
        name = getattr(module, "__name__", type(module).__name__)
        raise ConvMatrixError(
            f"flax module {name!r} is not supported: from_flax reads "
            f"{', '.join(f'{api}.{n}' for api in ('linen', 'nnx') for n in FLAX_READERS)} "
            f"(non-linear functions such as nn.relu have no matrix; see cm.linearize for "
            f"torch and Keras)")
    return FLAX_READERS[cls.__name__](module, variables, input_shape)


def from_flax(module: Any, variables: Any = None, input_shape: Sequence[int] | None = None
              ) -> Layer:
    """A flax convolution module (linen or nnx) as a layer object.

    ``layer.matrix() @ x.ravel() + layer.offset()`` equals ``module.apply(variables,
    x[None])[0].ravel()`` (linen) or ``module(x[None])[0].ravel()`` (nnx) for one
    channels-last sample ``x`` of shape ``input_shape``.

    Parameters
    ----------
    module : flax.linen.Conv, ConvTranspose or Sequential of them; or the flax.nnx ones
        Read through its attributes (flax is not imported). ``mask`` is refused; linen's
        ``ConvLocal`` and every other class are refused by name.
    variables : mapping, optional
        linen: what ``module.init`` returns (``{'params': ...}``) or its ``'params'``. nnx:
        None (the module carries its parameters).
    input_shape : sequence of int
        One channels-last sample ``(*spatial, C)``, no batch axis.

    Returns
    -------
    Layer
        A channels-last :class:`~convmatrix.KerasConv` titled with the class name when one
        convolution is exact, else a :class:`~convmatrix.Sequential` (``'CIRCULAR'``
        transposed convolutions: the transposed convolution, then the periodic fold).

    Raises
    ------
    ConvMatrixError
        For parameters that do not match the configuration (naming the parameter and both
        shapes), a mask, an unsupported class, or what flax and JAX refuse.

    Examples
    --------
    A stand-in with linen ``Conv``'s attributes (a real module reads the same):

    >>> import numpy as np
    >>> import convmatrix as cm
    >>> class Conv:                 # flax.linen.Conv(features=1, kernel_size=(3,), ...)
    ...     features, kernel_size, strides, padding = 1, (3,), 1, "CAUSAL"
    ...     input_dilation = kernel_dilation = 1
    ...     feature_group_count, use_bias, mask = 1, True, None
    >>> Conv.__module__ = "flax.linen.linear"
    >>> params = {"params": {"kernel": np.ones((3, 1, 1)), "bias": np.array([0.5])}}
    >>> layer = cm.from_flax(Conv(), params, (5, 1))
    >>> layer
    Conv(1→1, 5×1 → 5×1, kernel 3, padding ((2, 0),))
    >>> layer(np.arange(5.0).reshape(5, 1)).ravel()        # y[t] = x[t-2] + x[t-1] + x[t] + ½
    array([0.5, 1.5, 3.5, 6.5, 9.5])
    >>> cm.from_flax(Conv(), {"params": {"kernel": np.ones((3, 2, 1)), "bias": [0.0]}},
    ...              (5, 1))
    Traceback (most recent call last):
    ...
    convmatrix._errors.ConvMatrixError: `kernel` of the Conv has shape (3, 2, 1); the
    module's configuration (kernel_size (3,), features 1, 1 input channels) needs (3, 1, 1)
    """
    if input_shape is None:
        raise ConvMatrixError("`input_shape` is required: one channels-last sample (*spatial, C)")
    # from_flax has always read integral floats (4.0) as sizes; 4.5 is refused
    shape = as_sample_shape(input_shape, layout="(*spatial, C)", integral_floats=True)
    return read_flax_module(module, variables, shape)
