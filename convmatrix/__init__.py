"""convmatrix: convolution layers as the explicit sparse matrices they are.

A layer object (``Conv``, ``ConvTranspose``, ``from_torch``, ``from_keras``) is an exact affine
map: ``layer.matrix()`` is ``C`` with ``C @ x.ravel() + layer.offset() == layer(x).ravel()``,
and ``layer.T`` is its adjoint (the transposed convolution). ``conv_matrix`` and
``conv_transpose_matrix`` are the functional forms. See the README for the tour.
"""

import importlib
from typing import Any

from convmatrix import reference
from convmatrix._errors import ConvMatrixError
from convmatrix.adapters import (
    keras_matrix,
    keras_output_shape,
    torch_bias,
    torch_matrix,
)
from convmatrix.analysis.save import save_matrix
from convmatrix.analysis.spectra import (
    LipschitzBounds,
    lipschitz,
    operator_norm,
    operator_norm_bound,
    singular_values,
)
from convmatrix.build.sparse import (
    DEFAULT_MAX_BYTES,
    conv_matrix,
    conv_transpose_matrix,
    estimate_nbytes,
    spec_matrix,
)
from convmatrix.cache import cache_nbytes, clear_cache, set_cache_budget
from convmatrix.geometry.spec import (
    ConvSpec,
    conv_output_shape,
    conv_spec,
    conv_transpose_output_shape,
    conv_transpose_spec,
)
from convmatrix.layers import (
    Adjoint,
    AvgPool,
    BatchNorm,
    Conv,
    ConvTranspose,
    Identity,
    KerasConv,
    Layer,
    Pad,
    PixelShuffle,
    PixelUnshuffle,
    Sequential,
    Upsample,
    from_keras,
    from_torch,
)
from convmatrix.verification import VerificationResult, dot_test, verify

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Adjoint",
    "AvgPool",
    "BatchNorm",
    "Conv",
    "ConvMatrixError",
    "ConvSpec",
    "ConvTranspose",
    "Identity",
    "KerasConv",
    "Layer",
    "LipschitzBounds",
    "Pad",
    "PixelShuffle",
    "PixelUnshuffle",
    "Sequential",
    "Upsample",
    "VerificationResult",
    "cache_nbytes",
    "clear_cache",
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
    "reference",
    "save_matrix",
    "set_cache_budget",
    "singular_values",
    "spec_matrix",
    "symbolic",
    "torch_bias",
    "torch_matrix",
    "verify",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import ``convmatrix.symbolic`` (and SymPy) only when first used."""
    if name == "symbolic":
        return importlib.import_module("convmatrix.symbolic")
    raise AttributeError(f"module 'convmatrix' has no attribute {name!r}")
