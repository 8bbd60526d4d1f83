"""The torch adapter: ``nn`` modules as layer objects and matrices, read by attributes only.

Everything about reading torch lives here: :func:`from_torch` and the module-class registry
:data:`TORCH_READERS` (module class name → reader), :func:`torch_matrix` and :func:`torch_bias`.
torch itself is never imported: a module is read through its attributes (parameters are
converted to numpy by :func:`convmatrix._arrays.to_numpy`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._arrays import to_numpy
from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.torch_fx import FxWalk, JacobianTranslator, walk_fx
from convmatrix.adapters.torch_jacobian import (
    LINEARIZED_FUNCTIONS,
    LINEARIZED_MODULES,
    running_norm,
)
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES, SparseFormat
from convmatrix.geometry import shapes
from convmatrix.geometry.spec import as_int, as_sample_shape, sequence_items
from convmatrix.layers.adaptive import AdaptiveAvgPool
from convmatrix.layers.base import Layer
from convmatrix.layers.conv import Conv, ConvTranspose
from convmatrix.layers.graph import Graph
from convmatrix.layers.identity import Identity
from convmatrix.layers.linear import Linear
from convmatrix.layers.pad import Pad
from convmatrix.layers.pool import AvgPool
from convmatrix.layers.reshape import Flatten, Reshape
from convmatrix.layers.sequential import Sequential
from convmatrix.layers.shuffle import PixelShuffle, PixelUnshuffle
from convmatrix.layers.upsample import Upsample

__all__ = ["TORCH_READERS", "from_torch", "read_graph", "read_module", "torch_bias", "torch_matrix",
           "walk_graph"]

TorchReader = Callable[[Any, tuple[int, ...], "Sequence[int] | None"], Layer]


def _output_padding_for(weight: np.ndarray, input_shape: tuple[int, ...], padding: Any,
                        output_size: Sequence[int], *, stride: tuple[int, ...],
                        dilation: tuple[int, ...], groups: int) -> tuple[int, ...]:
    """Output padding by torch's rule: output_size exceeds the minimum by less than the stride."""
    ndim = weight.ndim - 2
    items = sequence_items(output_size)
    if items is None or len(items) < ndim:
        raise ConvMatrixError(
            f"`output_size` (={output_size!r}) must end with the {ndim} spatial output sizes, "
            f"as in torch")
    size = tuple(as_int(v, "output_size") for v in items[-ndim:])
    result = []
    for axis in range(ndim):
        minimum = shapes.conv_transpose_output_length(
            input_shape[axis + 1], weight.shape[axis + 2], stride[axis],
            (padding[axis], padding[axis]), dilation[axis])
        if not minimum <= size[axis] < minimum + stride[axis]:
            raise ConvMatrixError(
                f"`output_size` (={tuple(output_size)}) must lie in [{minimum}, "
                f"{minimum + stride[axis] - 1}] along spatial axis {axis}, as in torch")
        result.append(size[axis] - minimum)
    return tuple(result)


def _read_conv(module: Any, input_shape: tuple[int, ...],
               output_size: Sequence[int] | None) -> Layer:
    """``nn.ConvNd`` / ``nn.ConvTransposeNd`` (any object with their attributes)."""
    weight = to_numpy(module.weight)
    if len(input_shape) == weight.ndim:
        raise ConvMatrixError(
            f"`input_shape` (={input_shape}) has a batch axis; give one sample (C, *spatial)")
    bias = None if getattr(module, "bias", None) is None else to_numpy(module.bias)
    common: dict[str, Any] = {"stride": tuple(module.stride),
                              "dilation": tuple(module.dilation), "groups": int(module.groups)}
    padding = module.padding if isinstance(module.padding, str) else tuple(module.padding)
    transposed = bool(getattr(module, "transposed", "Transpose" in type(module).__name__))
    if transposed:
        output_padding = tuple(getattr(module, "output_padding", (0,) * (weight.ndim - 2)))
        if output_size is not None:
            output_padding = _output_padding_for(weight, input_shape, padding, output_size,
                                                 **common)
        return ConvTranspose(weight, input_shape, padding=padding, output_padding=output_padding,
                             bias=bias, **common)
    if output_size is not None:
        raise ConvMatrixError("`output_size` applies only to ConvTranspose modules")
    return Conv(weight, input_shape, padding=padding, bias=bias,
                padding_mode=getattr(module, "padding_mode", "zeros"), **common)


_NONLINEAR = frozenset({
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU", "SiLU",
    "Mish", "Sigmoid", "Tanh", "Hardtanh", "Hardswish", "Hardsigmoid", "Softplus", "Softsign",
    "Softmax", "LogSoftmax", "Threshold", "Tanhshrink", "Softshrink", "Hardshrink",
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d", "LPPool1d", "LPPool2d", "FractionalMaxPool2d", "LayerNorm",
    "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LocalResponseNorm",
}) | LINEARIZED_MODULES


def _is_graph_module(module: Any) -> bool:
    """A ``torch.fx.GraphModule`` (its class keeps the traced module's name)."""
    return any(cls.__name__ == "GraphModule" for cls in type(module).__mro__)


def _refuse_graph(module: Any, where: str) -> None:
    if _is_graph_module(module):
        raise ConvMatrixError(
            f"{where} (={type(module).__name__}) is a torch.fx GraphModule (a traced graph), "
            f"which a layer reader does not read; cm.from_torch reads it as a graph")


def _read(reader: TorchReader, module: Any, shape: tuple[int, ...],
          output_size: Sequence[int] | None, where: str) -> Layer:
    """Run a reader; a module that is not what its class name promised is refused.

    Modules are recognised by class name (torch is never imported), so a user's class of the
    same name can lack the attributes the reader needs: that is a ConvMatrixError naming the
    module, not an AttributeError or TypeError from inside the reader.
    """
    _refuse_graph(module, where)
    try:
        return reader(module, shape, output_size)
    except (AttributeError, TypeError) as error:
        cls = type(module)
        raise ConvMatrixError(
            f"{where} (={cls.__name__}, class {cls.__module__}.{cls.__qualname__}) is not "
            f"read as torch's nn.{cls.__name__}: {error}") from None


def _read_sequential(module: Any, input_shape: tuple[int, ...],
                     output_size: Sequence[int] | None) -> Layer:
    """``nn.Sequential``: each child read in turn, shapes carried from one to the next."""
    if output_size is not None:
        raise ConvMatrixError("`output_size` applies only to ConvTranspose modules")
    layers: list[Layer] = []
    shape = input_shape
    for position, child in enumerate(module):
        name = type(child).__name__
        where = f"`module[{position}]`"
        _refuse_graph(child, where)
        reader = TORCH_READERS.get(name)
        if reader is None:
            raise ConvMatrixError(
                f"{where} ({name}) {_why_not(name)}; a stack can hold only "
                f"{', '.join(_supported())}")
        try:
            layers.append(_read(reader, child, shape, None, where))
        except ConvMatrixError as error:
            raise ConvMatrixError(f"{where} ({name}): {error}") from None
        shape = layers[-1].output_shape
    if not layers:
        raise ConvMatrixError("`module` (Sequential) is empty")
    return layers[0] if len(layers) == 1 else Sequential(layers)


def _why_not(name: str) -> str:
    """Why a module class without a reader is refused (non-linear ones: use linearize)."""
    if name in _NONLINEAR:
        return "is not linear; cm.linearize(model, x) gives its exact Jacobian at a point x"
    return "is not a linear layer convmatrix can read"


def _supported() -> list[str]:
    names = sorted({name[:-2] if name[-2:] in ("1d", "2d", "3d") else name
                    for name in TORCH_READERS if not name.startswith("Lazy")})
    return [f"nn.{name}Nd" if f"{name}2d" in TORCH_READERS else f"nn.{name}" for name in names]


def _only_forward(module: Any, output_size: Sequence[int] | None) -> None:
    if output_size is not None:
        raise ConvMatrixError(
            f"`output_size` applies only to ConvTranspose modules, not {type(module).__name__}")


def _read_avg_pool(module: Any, input_shape: tuple[int, ...],
                   output_size: Sequence[int] | None) -> Layer:
    """``nn.AvgPool1d/2d/3d``."""
    _only_forward(module, output_size)
    return AvgPool(input_shape, module.kernel_size, module.stride, module.padding,
                   ceil_mode=bool(module.ceil_mode),
                   count_include_pad=bool(module.count_include_pad),
                   divisor_override=getattr(module, "divisor_override", None))


def _read_upsample(module: Any, input_shape: tuple[int, ...],
                   output_size: Sequence[int] | None) -> Layer:
    """``nn.Upsample``, ``nn.UpsamplingNearest2d``, ``nn.UpsamplingBilinear2d``."""
    _only_forward(module, output_size)
    if getattr(module, "antialias", False):
        raise ConvMatrixError("`module` (Upsample) uses antialias, which is not supported")
    return Upsample(input_shape, size=module.size, scale_factor=module.scale_factor,
                    mode=module.mode, align_corners=module.align_corners,
                    recompute_scale_factor=getattr(module, "recompute_scale_factor", None))


def _read_pixel_shuffle(module: Any, input_shape: tuple[int, ...],
                        output_size: Sequence[int] | None) -> Layer:
    """``nn.PixelShuffle`` / ``nn.PixelUnshuffle``."""
    _only_forward(module, output_size)
    if hasattr(module, "upscale_factor"):
        return PixelShuffle(input_shape, module.upscale_factor)
    return PixelUnshuffle(input_shape, module.downscale_factor)


_PAD_MODES = {"Zero": "constant", "Constant": "constant", "Reflection": "reflect",
              "Replication": "replicate", "Circular": "circular"}


def _read_pad(module: Any, input_shape: tuple[int, ...],
              output_size: Sequence[int] | None) -> Layer:
    """``nn.ZeroPad/ConstantPad/ReflectionPad/ReplicationPad/CircularPad1d/2d/3d``."""
    _only_forward(module, output_size)
    mode = _PAD_MODES[type(module).__name__[:-len("PadNd")]]
    return Pad(input_shape, tuple(module.padding), mode=mode,
               value=float(getattr(module, "value", 0.0)) if mode == "constant" else 0.0)


def _read_batch_norm(module: Any, input_shape: tuple[int, ...],
                     output_size: Sequence[int] | None) -> Layer:
    """``nn.BatchNorm1d/2d/3d`` in eval mode (running statistics)."""
    _only_forward(module, output_size)
    name = type(module).__name__
    if getattr(module, "training", False):
        raise ConvMatrixError(
            f"`module` ({name}) is in training mode: it normalises by the batch's statistics, "
            f"which is not a linear map of one sample; call .eval() first")
    if getattr(module, "running_mean", None) is None:
        raise ConvMatrixError(
            f"`module` ({name}) has no running statistics (track_running_stats=False): it "
            f"always uses the batch's, which is not a linear map of one sample")
    return running_norm(module, input_shape)


def _read_instance_norm(module: Any, input_shape: tuple[int, ...],
                        output_size: Sequence[int] | None) -> Layer:
    """``nn.InstanceNorm1d/2d/3d`` with ``track_running_stats=True`` in eval mode.

    It then normalises by its running statistics, an affine map like BatchNorm's; otherwise
    by the input's own statistics, which is not affine (``cm.linearize`` reads that).
    """
    _only_forward(module, output_size)
    name = type(module).__name__
    if getattr(module, "running_mean", None) is None:
        raise ConvMatrixError(
            f"`module` ({name}) normalises by the input's own statistics "
            f"(track_running_stats=False), which is not affine; cm.linearize(model, x) gives "
            f"its exact Jacobian at a point x")
    if getattr(module, "training", False):
        raise ConvMatrixError(
            f"`module` ({name}) is in training mode: it normalises by the input's own "
            f"statistics, which is not affine; call .eval() to use its running statistics")
    return running_norm(module, input_shape)


def _read_identity(module: Any, input_shape: tuple[int, ...],
                   output_size: Sequence[int] | None) -> Layer:
    """``nn.Identity``; ``nn.Dropout*`` in eval mode."""
    _only_forward(module, output_size)
    name = type(module).__name__
    if "Dropout" in name and getattr(module, "training", False) and getattr(module, "p", 0):
        raise ConvMatrixError(
            f"`module` ({name}) is in training mode: it zeroes random entries, which is not a "
            f"fixed linear map; call .eval() first")
    return Identity(input_shape)


def _read_linear(module: Any, input_shape: tuple[int, ...],
                 output_size: Sequence[int] | None) -> Layer:
    """``nn.Linear``: along the last axis of the sample (leading axes of size 1 kept)."""
    _only_forward(module, output_size)
    weight = to_numpy(module.weight)
    bias = None if getattr(module, "bias", None) is None else to_numpy(module.bias)
    if weight.ndim != 2 or input_shape[-1:] != (weight.shape[1],):
        raise ConvMatrixError(
            f"`input_shape` (={input_shape}) must end with in_features={weight.shape[-1]}: "
            f"nn.Linear acts on the last axis")
    if any(size != 1 for size in input_shape[:-1]):
        raise ConvMatrixError(
            f"`input_shape` (={input_shape}) has leading axes: nn.Linear would act on each "
            f"row separately, which convmatrix does not read; flatten the sample first "
            f"(nn.Flatten) or give input_shape ({weight.shape[1]},)")
    layer = Linear(weight, bias, input_shape)
    if len(input_shape) == 1:
        return layer
    return Sequential([layer, Reshape(layer.output_shape, (*input_shape[:-1], weight.shape[0]))])


def _batch_dim(dim: Any, ndim: int, name: str, module: str) -> int:
    """A dim of the batched tensor (``ndim`` axes) as an axis of the sample; 0 is refused."""
    number = as_int(dim, name)
    if not -ndim <= number < ndim:
        raise ConvMatrixError(
            f"`{name}` (={dim!r}) of {module} is out of range for a batch of samples with "
            f"{ndim - 1} axes: torch allows [{-ndim}, {ndim - 1}]")
    number %= ndim
    if number == 0:
        raise ConvMatrixError(
            f"{module} with {name}={dim!r} acts on the batch axis; convmatrix reads one sample "
            f"at a time")
    return number - 1


def _read_flatten(module: Any, input_shape: tuple[int, ...],
                  output_size: Sequence[int] | None) -> Layer:
    """``nn.Flatten(start_dim, end_dim)`` on a batch: the sample's axes in between merged."""
    _only_forward(module, output_size)
    ndim = len(input_shape) + 1
    start = _batch_dim(module.start_dim, ndim, "start_dim", "nn.Flatten")
    end = _batch_dim(module.end_dim, ndim, "end_dim", "nn.Flatten")
    if start > end:
        raise ConvMatrixError(
            f"nn.Flatten(start_dim={module.start_dim}, end_dim={module.end_dim}): start_dim "
            f"comes after end_dim for a sample {input_shape} (torch refuses it too)")
    if start == 0 and end == len(input_shape) - 1:
        return Flatten(input_shape)
    merged = int(np.prod(input_shape[start:end + 1]))
    return Reshape(input_shape, (*input_shape[:start], merged, *input_shape[end + 1:]))


def _read_unflatten(module: Any, input_shape: tuple[int, ...],
                    output_size: Sequence[int] | None) -> Layer:
    """``nn.Unflatten(dim, unflattened_size)``: one axis of the sample split into several."""
    _only_forward(module, output_size)
    axis = _batch_dim(module.dim, len(input_shape) + 1, "dim", "nn.Unflatten")
    items = sequence_items(module.unflattened_size)
    if items is None or any(isinstance(v, str) or hasattr(v, "__iter__") for v in items):
        raise ConvMatrixError(
            f"`unflattened_size` (={module.unflattened_size!r}) of nn.Unflatten must be a "
            f"sequence of ints (named dimensions are not read)")
    sizes = tuple(as_int(v, "unflattened_size") for v in items)
    try:
        split = Reshape((input_shape[axis],), sizes)
    except ConvMatrixError:
        raise ConvMatrixError(
            f"`unflattened_size` (={sizes}) of nn.Unflatten does not hold axis {axis} of size "
            f"{input_shape[axis]} of the sample {input_shape}") from None
    return Reshape(input_shape, (*input_shape[:axis], *split.output_shape,
                                 *input_shape[axis + 1:]))


def _read_adaptive_avg_pool(module: Any, input_shape: tuple[int, ...],
                            output_size: Sequence[int] | None) -> Layer:
    """``nn.AdaptiveAvgPool1d/2d/3d`` (``output_size`` entries may be None: keep the axis)."""
    _only_forward(module, output_size)
    name = type(module).__name__
    ndim = int(name[-2])
    if len(input_shape) != ndim + 1:
        raise ConvMatrixError(
            f"`input_shape` (={input_shape}) must be one sample (C, *spatial) with {ndim} "
            f"spatial axes for {name}")
    return AdaptiveAvgPool(input_shape, module.output_size)


TORCH_READERS: dict[str, TorchReader] = {
    f"{kind}{n}d": _read_conv for kind in ("Conv", "ConvTranspose", "LazyConv",
                                           "LazyConvTranspose") for n in (1, 2, 3)
}
"""torch module class name → reader (module, input_shape, output_size) → layer object."""
TORCH_READERS["Sequential"] = _read_sequential
TORCH_READERS.update({f"AvgPool{n}d": _read_avg_pool for n in (1, 2, 3)})
TORCH_READERS.update({f"BatchNorm{n}d": _read_batch_norm for n in (1, 2, 3)})
TORCH_READERS.update({f"InstanceNorm{n}d": _read_instance_norm for n in (1, 2, 3)})
TORCH_READERS.update({f"AdaptiveAvgPool{n}d": _read_adaptive_avg_pool for n in (1, 2, 3)})
TORCH_READERS.update({f"{kind}Pad{n}d": _read_pad for kind in _PAD_MODES for n in (1, 2, 3)})
TORCH_READERS.update({name: _read_upsample for name in ("Upsample", "UpsamplingNearest2d",
                                                        "UpsamplingBilinear2d")})
TORCH_READERS.update({"PixelShuffle": _read_pixel_shuffle,
                      "PixelUnshuffle": _read_pixel_shuffle})
TORCH_READERS.update({"Linear": _read_linear, "Flatten": _read_flatten,
                      "Unflatten": _read_unflatten})
TORCH_READERS.update({name: _read_identity for name in (
    "Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
    "FeatureAlphaDropout")})


def from_torch(module: Any, input_shape: Sequence[int], *,
               output_size: Sequence[int] | None = None) -> Layer:
    """The layer object of a torch module, read by its attributes (no torch import).

    Parameters
    ----------
    module : torch.nn.Module
        ``nn.Conv1d/2d/3d`` (every padding form and ``padding_mode``),
        ``nn.ConvTranspose1d/2d/3d``, ``nn.Linear`` (along the sample's last axis),
        ``nn.Flatten``/``nn.Unflatten`` (their dims count the batch axis, as in torch),
        ``nn.Identity``, ``nn.Dropout*`` in eval mode, ``nn.AdaptiveAvgPool1d/2d/3d``,
        ``nn.BatchNorm*`` and ``nn.InstanceNorm*`` (``track_running_stats=True``) in eval
        mode, the other modules in :data:`TORCH_READERS`, or an ``nn.Sequential`` of them
        (read into a :class:`~convmatrix.Sequential`; a non-linear child is refused, naming
        its position and pointing to ``cm.linearize``); any object with a conv's attributes
        (``weight``, ``stride``, ``padding``, ``dilation``, ``groups``, ...) is read as one.
        A network (a module with its own ``forward``, a ``GraphModule``, a ``torch.export``
        ``ExportedProgram``) is read through ``torch.fx`` into a :class:`~convmatrix.Graph`.
    input_shape : sequence of int
        One sample ``(C_in, *spatial)``, no batch axis.
    output_size : sequence of int, optional
        For transposed modules, the ``output_size`` torch's ``forward`` accepts (it picks the
        output padding).

    Returns
    -------
    Layer
        :class:`~convmatrix.Conv`, :class:`~convmatrix.ConvTranspose`,
        :class:`~convmatrix.Sequential`, ..., with the module's bias as
        :meth:`~convmatrix.layers.base.Layer.offset`: ``module(x[None])[0] == layer(x)``.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> module = SimpleNamespace(weight=np.ones((1, 1, 2, 2)), bias=np.array([0.5]),
    ...                          stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
    ...                          padding_mode="zeros", transposed=False)
    >>> layer = from_torch(module, (1, 3, 3))
    >>> layer
    Conv(1→1, 1×3×3 → 1×2×2, kernel 2×2)
    >>> layer(np.ones((1, 3, 3)))[0]
    array([[4.5, 4.5],
           [4.5, 4.5]])
    """
    shape = as_sample_shape(input_shape, layout="(C, *spatial)")
    if _is_graph_module(module) or _is_network(module):
        if output_size is not None:
            raise ConvMatrixError("`output_size` applies only to ConvTranspose modules")
        return read_graph(module, shape)
    reader = TORCH_READERS.get(type(module).__name__)
    if reader is None and hasattr(module, "weight") and hasattr(module, "stride"):
        reader = _read_conv
    if reader is None:
        name = type(module).__name__
        raise ConvMatrixError(
            f"`module` (={name}) {_why_not(name)}; supported: torch "
            f"{', '.join(_supported())}")
    return _read(reader, module, shape, output_size, "`module`")


def torch_matrix(
    module: Any,
    input_shape: Sequence[int],
    *,
    output_size: Sequence[int] | None = None,
    format: SparseFormat | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> sp.sparray:
    """Matrix of a torch convolution module: ``M @ x.ravel() == (module(x[None]) − bias).ravel()``.

    A thin wrapper: ``convmatrix.from_torch(module, input_shape).matrix(format)``. Works by
    reading attributes (``weight``, ``stride``, ``padding``, ``dilation``, ``groups``,
    ``padding_mode``, ``output_padding``), so importing convmatrix never imports torch.

    Parameters
    ----------
    module : torch.nn.Conv1d/2d/3d or torch.nn.ConvTranspose1d/2d/3d
        Every ``padding`` form and ``padding_mode`` of ``ConvNd``; ``output_padding`` of
        ``ConvTransposeNd``.
    input_shape : sequence of int
        One sample ``(C_in, *spatial)``, no batch axis.
    output_size : sequence of int, optional
        For ConvTranspose modules, the ``output_size`` torch's ``forward`` accepts (it picks
        the output padding).
    format : {"csr", "csc", "coo"}, optional
        Default ``"csr"`` for ``ConvNd`` and the free ``"csc"`` view for ``ConvTransposeNd``.
    max_bytes : int or None, optional
        Memory guard, as in :func:`convmatrix.conv_matrix`.

    Returns
    -------
    scipy.sparse array
        In the weight's dtype (float32 for a default module). The bias is not part of the
        linear map: add :func:`torch_bias` to ``M @ x``.
    """
    layer = from_torch(module, input_shape, output_size=output_size)
    if format is None:
        format = "csc" if isinstance(layer, ConvTranspose) else "csr"
    return layer.matrix(format, max_bytes=max_bytes)


def torch_bias(module: Any, input_shape: Sequence[int], *,
               output_size: Sequence[int] | None = None) -> np.ndarray | None:
    """The module's bias as the flat offset added after the matrix (None without a bias).

    Returns
    -------
    ndarray of shape ``(∏output_shape,)`` or None
        ``module(x[None]).ravel() == torch_matrix(module, ...) @ x.ravel() + torch_bias(...)``.
    """
    if getattr(module, "bias", None) is None:
        return None
    return from_torch(module, input_shape, output_size=output_size).offset()


def _is_network(module: Any) -> bool:
    """A torch module with its own ``forward`` that no reader knows (read through torch.fx).

    Also an ``nn.Sequential`` holding such a module, and a ``torch.export`` program.
    """
    if any(cls.__name__ == "ExportedProgram" for cls in type(module).__mro__):
        return True
    if _is_graph_module(module):
        return True
    if not any(cls.__module__.startswith("torch.nn") and cls.__name__ == "Module"
               for cls in type(module).__mro__):
        return False
    name = type(module).__name__
    if not type(module).__module__.startswith("torch."):
        return True  # a user's class, even one sharing a torch name: its forward is the truth
    if name == "Sequential":
        return any(_is_network(child) or (type(child).__name__ not in TORCH_READERS
                   and type(child).__name__ not in _NONLINEAR) for child in module)
    return name not in TORCH_READERS and name not in _NONLINEAR


def read_module(module: Any, input_shape: tuple[int, ...]) -> Layer | None:
    """The layer of one torch module by its class (:data:`TORCH_READERS`); None if not read.

    The module reader :func:`read_graph` hands to :func:`~convmatrix.adapters.torch_fx.read_fx`
    for the graph's leaf modules (``nn.Sequential`` is traced through, never read here).

    Examples
    --------
    >>> import torch
    >>> read_module(torch.nn.Identity(), (1, 3))
    Identity(1×3)
    >>> read_module(torch.nn.ReLU(), (1, 3)) is None
    True
    """
    name = type(module).__name__
    reader = TORCH_READERS.get(name)
    if reader is None or name == "Sequential":
        return None
    return _read(reader, module, tuple(input_shape), None, f"`{name}`")


def read_graph(module: Any, input_shape: Sequence[int], *, x: Any = None,
               jacobian: JacobianTranslator | None = None) -> Graph:
    """A torch network traced by ``torch.fx`` as one :class:`~convmatrix.Graph`.

    :func:`~convmatrix.adapters.torch_fx.read_fx` with this adapter's module readers: what
    :func:`from_torch` does for a module that is no single layer or chain, and the entry point
    of linearisation (``x`` and ``jacobian``; see
    :data:`~convmatrix.adapters.torch_fx.JacobianTranslator`).

    Parameters
    ----------
    module : torch.nn.Module, torch.fx.GraphModule or torch.export.ExportedProgram
    input_shape : sequence of int
        One sample, no batch axis.
    x : array_like, optional
        A point (one sample with its batch axis of 1).
    jacobian : JacobianTranslator, optional

    Returns
    -------
    Graph

    Examples
    --------
    >>> import torch
    >>> class Twice(torch.nn.Module):
    ...     def forward(self, x):
    ...         return torch.cat([x, 2 * x], dim=1)
    >>> read_graph(Twice(), (1, 2))(np.ones((1, 2)))
    array([[1., 1.],
           [2., 2.]])
    """
    return walk_graph(module, input_shape, x=x, jacobian=jacobian).graph


def walk_graph(module: Any, input_shape: Sequence[int], *, x: Any = None,
               jacobian: JacobianTranslator | None = None, dtype: str | None = None,
               parameter: str = "module") -> FxWalk:
    """:func:`read_graph`, also giving the network's value at ``x`` (what linearisation needs).

    Parameters
    ----------
    module, input_shape, x, jacobian
        As in :func:`read_graph`.
    dtype : str, optional
        Run the network in this torch dtype (``"float64"``), its parameters converted for the
        run only (the module untouched); default: the module's own.
    parameter : str, optional
        The caller's name for ``module``, for messages (``"model"`` for ``cm.linearize``).

    Returns
    -------
    FxWalk
        ``.graph`` (a :class:`~convmatrix.Graph`) and ``.value`` (the output at ``x``).

    Examples
    --------
    >>> import torch
    >>> class Twice(torch.nn.Module):
    ...     def forward(self, x):
    ...         return torch.cat([x, 2 * x], dim=1)
    >>> walk_graph(Twice(), (1, 2), x=torch.ones(1, 1, 2)).value
    tensor([[[1., 1.],
             [2., 2.]]])
    """
    return walk_fx(module, input_shape, x=x, jacobian=jacobian,
                   module_reader=read_module, nonlinear_modules=_NONLINEAR,
                   linearized=LINEARIZED_MODULES | LINEARIZED_FUNCTIONS, dtype=dtype,
                   parameter=parameter)
