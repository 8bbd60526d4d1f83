"""Stacks of layers described in TOML files (read with the standard library's ``tomllib``).

A stack file names the input shape and lists the layers in order; each layer's input shape is
the previous layer's output shape::

    title = "two k3/s2 transposed convolutions"   # optional
    input = [1, 4, 4]                             # one sample, channels first
    weights = "ones"      # default fill of every kernel: ones, arange, random, uniform, icnr
    seed = 0              # seed of the random fills

    [[layers]]
    kind = "ConvTranspose"          # Conv, ConvTranspose, or a layer kind of convmatrix
    kernel = [1, 1, 3, 3]           # the weight's shape, torch layout
    stride = 2
    padding = 1
    output_padding = 1

    [[layers]]
    kind = "Upsample"               # any other keys are the layer's keyword arguments
    scale_factor = 2
    mode = "nearest"

    [[layers]]
    kind = "Flatten"                # Flatten, Reshape (shape = [2, -1]), Slice (axis, start,
                                    # stop, step), Scale (scale, shift: numbers or nested lists),
                                    # GlobalAvgPool (keepdims, axes), AdaptiveAvgPool (output_size)

    [[layers]]
    kind = "Linear"                 # a dense layer: its weight (out_features × the input's
    out_features = 10               # size) filled like a kernel; bias = [...] optional

Kernel fills: ``ones`` (integers), ``arange`` (1, 2, 3, … in C order), ``random`` (standard
normal), ``uniform`` (uniform on [0, 1): positive, so imbalance ratios stay finite) and
``icnr`` (Aitken et al. 2017: a convolution feeding a pixel shuffle by ``r``, given as
``icnr = r``; one uniform kernel per output channel of the shuffle, copied to its ``r^N``
sub-pixel channels). A layer may override ``weights`` and ``seed``. A ``Linear`` layer's weight
``(out_features, ∏input)`` is filled the same way (``icnr`` aside).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.budget import format_bytes
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES
from convmatrix.geometry.spec import as_sample_shape
from convmatrix.layers.base import Layer
from convmatrix.layers.sequential import Sequential

__all__ = ["FILLS", "MAX_FILE_BYTES", "StackFile", "kernel_values", "load_stack", "parse_stack"]

MAX_FILE_BYTES = 1 << 20
"""The largest stack file :func:`load_stack` reads (1 MiB; a stack file is a few hundred bytes)."""

FILLS = ("ones", "arange", "random", "uniform", "icnr")
_FILE_KEYS = ("title", "input", "weights", "seed", "layers")  # a stack file's top-level keys
_WEIGHTED = ("Conv", "ConvTranspose")


@dataclass(frozen=True, eq=False)
class StackFile:
    """A stack read from a TOML description.

    Attributes
    ----------
    title : str
        The file's ``title`` (default: its file name, or ``"stack"``).
    stack : Sequential
        The layers.
    source : str
        Where it came from (a path, or ``"<string>"``).
    """

    title: str
    stack: Sequential
    source: str = "<string>"


def kernel_values(shape: tuple[int, ...], fill: str, seed: int = 0,
                  icnr: int | None = None) -> np.ndarray:
    """Kernel values of ``shape`` for a fill (see the module notes).

    Examples
    --------
    >>> kernel_values((4, 1, 1, 2), "icnr", icnr=2)[:, 0, 0]   # four copies of one kernel
    array([[0.63696169, 0.26978671],
           [0.63696169, 0.26978671],
           [0.63696169, 0.26978671],
           [0.63696169, 0.26978671]])
    """
    if fill == "ones":
        return np.ones(shape, dtype=np.int64)
    if fill == "arange":
        return np.arange(1, math.prod(shape) + 1, dtype=np.int64).reshape(shape)
    generator = np.random.default_rng(seed)
    if fill == "random":
        return generator.standard_normal(shape)
    if fill == "uniform":
        return generator.uniform(0.0, 1.0, shape)
    if fill != "icnr":
        raise ConvMatrixError(f"`weights` (={fill!r}) must be one of {', '.join(FILLS)}")
    spatial = len(shape) - 2
    if (icnr is None or isinstance(icnr, bool) or not isinstance(icnr, int) or icnr < 1):
        raise ConvMatrixError(f"`icnr` (={icnr!r}) must be the pixel-shuffle factor r, a "
                              f"positive int, for weights = 'icnr'")
    copies = icnr ** spatial
    if shape[0] % copies:
        raise ConvMatrixError(f"weights = 'icnr' needs the output channels ({shape[0]}) to be "
                              f"a multiple of r^{spatial} = {copies}")
    base = generator.uniform(0.0, 1.0, (shape[0] // copies, *shape[1:]))
    return np.repeat(base, copies, axis=0)


def _tuples(value: Any) -> Any:
    """TOML arrays → tuples (nested), as the layer constructors take them."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


# bases, stacks, graphs, the channels-last (Keras layout) kinds and the Jacobian kinds at a
# point (made from a sample, not from a shape): not layers of a stack file
_NOT_IN_FILES = ("Layer", "Adjoint", "Sequential", "KerasConv", "ConvLayer", "ChannelsLast",
                 "Repeat", "Graph", "Add", "Concat", "MaxPoolAt", "AdaptiveMaxPoolAt",
                 "GlobalMaxPoolAt", "GroupNormAt", "InstanceNormAt", "LayerNormAt",
                 "Linearization")


def _layer_kinds() -> dict[str, Any]:
    import convmatrix.layers

    kinds: dict[str, Any] = {}
    for name in convmatrix.layers.__all__:
        value = getattr(convmatrix.layers, name, None)
        if (isinstance(value, type) and issubclass(value, Layer) and name not in _NOT_IN_FILES):
            kinds[name] = value
    return kinds


def _build(position: int, entry: Any, shape: tuple[int, ...], fill: str, seed: int,
           max_bytes: int | None = DEFAULT_MAX_BYTES) -> Layer:
    where = f"layers[{position}]"
    if not isinstance(entry, Mapping):
        raise ConvMatrixError(f"`{where}` must be a table ([[layers]]), not {entry!r}")
    options = {key: _tuples(value) for key, value in entry.items()}
    kind = options.pop("kind", None)
    kinds = _layer_kinds()
    if kind not in kinds:
        raise ConvMatrixError(f"`{where}.kind` (={kind!r}) must be one of "
                              f"{', '.join(sorted(kinds))}")
    layer_fill = options.pop("weights", fill)
    layer_seed = options.pop("seed", seed + position)
    if isinstance(layer_seed, bool) or not isinstance(layer_seed, int) or layer_seed < 0:
        raise ConvMatrixError(f"`{where}.seed` (={layer_seed!r}) must be a non-negative int")
    icnr = options.pop("icnr", None)
    try:
        if kind in _WEIGHTED:
            kernel = options.pop("kernel", None)
            if (not isinstance(kernel, tuple) or not kernel
                    or not all(isinstance(v, int) and v > 0 for v in kernel)):
                raise ConvMatrixError(f"`kernel` (={kernel!r}) must be the weight's shape, a "
                                      f"list of positive ints")
            nbytes = math.prod(kernel) * 8
            if max_bytes is not None and nbytes > max_bytes:
                raise ConvMatrixError(
                    f"`kernel` (={list(kernel)!r}) holds {math.prod(kernel):,} values, "
                    f"{format_bytes(nbytes)}, over `max_bytes` (={format_bytes(max_bytes)})")
            weight = kernel_values(kernel, layer_fill, layer_seed, icnr)
            return kinds[kind](weight, shape, **options)
        if kind == "Linear":
            return _linear(kinds[kind], options, shape, layer_fill, layer_seed, icnr, max_bytes)
        for key in ("kernel", "icnr"):
            if key in entry:
                raise ConvMatrixError(f"`{key}` applies only to Conv and ConvTranspose layers")
        return kinds[kind](shape, **options)
    except (ConvMatrixError, TypeError) as error:
        raise ConvMatrixError(f"{where} ({kind}): {error}") from None


def _linear(kind: Any, options: dict[str, Any], shape: tuple[int, ...], fill: str, seed: int,
            icnr: int | None, max_bytes: int | None) -> Layer:
    """A ``Linear`` entry: ``out_features`` rows of ``fill`` over the flattened input."""
    out = options.pop("out_features", None)
    if isinstance(out, bool) or not isinstance(out, int) or out < 1:
        raise ConvMatrixError(f"`out_features` (={out!r}) must be a positive int (the rows of "
                              f"the weight)")
    for key, value in (("kernel", options.get("kernel")), ("icnr", icnr)):
        if value is not None:
            raise ConvMatrixError(f"`{key}` does not apply to Linear layers (give out_features)")
    size = out * math.prod(shape)
    if max_bytes is not None and size * 8 > max_bytes:
        raise ConvMatrixError(
            f"the weight ({out} × {math.prod(shape)}) holds {size:,} values, "
            f"{format_bytes(size * 8)}, over `max_bytes` (={format_bytes(max_bytes)})")
    weight = kernel_values((out, math.prod(shape)), fill, seed)
    return kind(weight, input_shape=shape, **options)  # type: ignore[no-any-return]


def parse_stack(text: str, *, source: str = "<string>",
                max_bytes: int | None = DEFAULT_MAX_BYTES) -> StackFile:
    """Build the stack that a TOML text describes.

    Parameters
    ----------
    text : str
        The TOML document (see the module notes).
    source : str
        Its name, for messages.
    max_bytes : int or None, optional
        Refuse a kernel whose values would take more than this (before allocating it).

    Returns
    -------
    StackFile

    Examples
    --------
    >>> spec = '''
    ... input = [1, 4]
    ... [[layers]]
    ... kind = "ConvTranspose"
    ... kernel = [1, 1, 3]
    ... stride = 2
    ... '''
    >>> parse_stack(spec).stack
    Sequential(1 layer, 1×4 → 1×9)
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConvMatrixError(f"{source} is not valid TOML: {error}") from None
    except RecursionError:
        raise ConvMatrixError(f"{source}: values are nested too deeply (arrays or tables "
                              f"inside each other hundreds of times)") from None
    unknown = sorted(set(data) - set(_FILE_KEYS))
    if unknown:
        raise ConvMatrixError(f"{source}: unknown key(s) {', '.join(unknown)}; a stack file has "
                              f"title, input, weights, seed and [[layers]]")
    shape = data.get("input")
    if not isinstance(shape, list) or len(shape) < 2:
        raise ConvMatrixError(f"{source}: `input` (={shape!r}) must be one sample's shape, "
                              f"channels first, e.g. [1, 4, 4]")
    try:
        current = as_sample_shape(shape, "input", layout="[C, *spatial]")
    except ConvMatrixError as error:
        raise ConvMatrixError(f"{source}: {error}") from None
    fill = data.get("weights", "ones")
    if fill not in FILLS:
        raise ConvMatrixError(f"{source}: `weights` (={fill!r}) must be one of "
                              f"{', '.join(FILLS)}")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConvMatrixError(f"{source}: `seed` (={seed!r}) must be a non-negative int")
    entries = data.get("layers")
    if not isinstance(entries, list) or not entries:
        raise ConvMatrixError(f"{source}: no [[layers]]; a stack needs at least one layer")
    layers: list[Layer] = []
    for position, entry in enumerate(entries):
        try:
            layer = _build(position, entry, current, fill, seed, max_bytes)
        except ConvMatrixError as error:
            raise ConvMatrixError(f"{source}: {error}") from None
        except RecursionError:
            raise ConvMatrixError(f"{source}: `layers[{position}]` has values nested too "
                                  f"deeply") from None
        layers.append(layer)
        current = layer.output_shape
    title = data.get("title") or (Path(source).stem if source != "<string>" else "stack")
    return StackFile(str(title), Sequential(layers), source)


def load_stack(path: str | Path, *, max_bytes: int | None = DEFAULT_MAX_BYTES) -> StackFile:
    """Read a stack file (TOML, UTF-8, at most :data:`MAX_FILE_BYTES`; see the module notes)."""
    file = Path(path)
    try:
        with open(file, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ConvMatrixError(f"cannot read the stack file {str(file)!r}: "
                              f"{error.strerror or error}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConvMatrixError(f"the stack file {str(file)!r} is larger than "
                              f"{format_bytes(MAX_FILE_BYTES)}; a stack file is a short TOML text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConvMatrixError(f"the stack file {str(file)!r} is not UTF-8 text (byte "
                              f"{error.start}: {error.reason}); TOML files are UTF-8") from None
    return parse_stack(text, source=str(file), max_bytes=max_bytes)
