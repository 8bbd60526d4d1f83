"""convmatrix: convolution layers as the explicit sparse matrices they are.

A layer object (``Conv``, ``ConvTranspose``, ``from_torch``, ``from_keras``) is an exact affine
map: ``layer.matrix()`` is ``C`` with ``C @ x.ravel() + layer.offset() == layer(x).ravel()``,
and ``layer.T`` is its adjoint (the transposed convolution). ``conv_matrix`` and
``conv_transpose_matrix`` are the functional forms. See the README for the tour.
"""

import importlib
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from convmatrix import cache, reference
from convmatrix._errors import ConvMatrixError
from convmatrix.adapters import (
    from_keras,
    from_torch,
    keras_matrix,
    keras_output_shape,
    torch_bias,
    torch_matrix,
)
from convmatrix.analysis.checkerboard import checkerboard
from convmatrix.analysis.inverse import transpose_vs_inverse
from convmatrix.analysis.paths import path_counts
from convmatrix.analysis.save import save_matrix
from convmatrix.analysis.spectra import (
    LipschitzBounds,
    lipschitz,
    operator_norm,
    operator_norm_bound,
    singular_values,
)
from convmatrix.builder.sparse import (
    DEFAULT_MAX_BYTES,
    conv_matrix,
    conv_transpose_matrix,
    estimate_nbytes,
    spec_matrix,
)
from convmatrix.geometry.spec import (
    ConvSpec,
    conv_output_shape,
    conv_spec,
    conv_transpose_output_shape,
    conv_transpose_spec,
)
from convmatrix.layers import (
    Add,
    Adjoint,
    AvgPool,
    BatchNorm,
    Cat,
    Concat,
    Conv,
    ConvTranspose,
    Graph,
    Identity,
    KerasConv,
    Layer,
    Node,
    Pad,
    PixelShuffle,
    PixelUnshuffle,
    Sequential,
    Sum,
    Upsample,
)
from convmatrix.layers.base import set_presenter
from convmatrix.verification import VerificationResult, dot_test, verify

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Add",
    "Adjoint",
    "AvgPool",
    "BatchNorm",
    "Cat",
    "Concat",
    "Conv",
    "ConvMatrixError",
    "ConvSpec",
    "ConvTranspose",
    "Graph",
    "Identity",
    "KerasConv",
    "Layer",
    "LipschitzBounds",
    "Node",
    "Pad",
    "PixelShuffle",
    "PixelUnshuffle",
    "Sequential",
    "Sum",
    "Upsample",
    "VerificationResult",
    "cache",
    "checkerboard",
    "conv_matrix",
    "conv_output_shape",
    "conv_spec",
    "conv_transpose_matrix",
    "conv_transpose_output_shape",
    "conv_transpose_spec",
    "dot_test",
    "estimate_nbytes",
    "from_keras",
    "from_torch",
    "keras_matrix",
    "keras_output_shape",
    "lipschitz",
    "operator_norm",
    "operator_norm_bound",
    "path_counts",
    "reference",
    "save_matrix",
    "singular_values",
    "spec_matrix",
    "symbolic",
    "torch_bias",
    "torch_matrix",
    "transpose_vs_inverse",
    "verify",
]

try:
    __version__: str = version("convmatrix")  # one source: the package metadata
except PackageNotFoundError:  # pragma: no cover - run from a source tree that is not installed
    __version__ = "0+unknown"

#: top-level names that moved, kept for one release: old name -> (module, new name)
_MOVED: dict[str, tuple[str, str]] = {
    "cache_nbytes": ("convmatrix.cache", "cache_nbytes"),
    "clear_cache": ("convmatrix.cache", "clear_cache"),
    "set_cache_budget": ("convmatrix.cache", "set_cache_budget"),
}


def _presenter() -> Any:
    """Layers' explanations and reports: :mod:`convmatrix.reports`, imported on first use."""
    return importlib.import_module("convmatrix.reports.presenter")


set_presenter(_presenter)


def __getattr__(name: str) -> Any:
    """Import ``convmatrix.symbolic`` (and SymPy) only when first used; forward moved names."""
    if name == "symbolic":
        return importlib.import_module("convmatrix.symbolic")
    if name in _MOVED:
        module, new = _MOVED[name]
        warnings.warn(f"convmatrix.{name} is deprecated and will be removed in convmatrix 0.3; "
                      f"use {module}.{new}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module), new)
    raise AttributeError(f"module 'convmatrix' has no attribute {name!r}")
