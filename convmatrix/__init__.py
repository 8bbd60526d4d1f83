"""convmatrix: convolution layers as the explicit sparse matrices they are.

A layer object (``Conv``, ``ConvTranspose``, ``from_torch``, ``from_keras``) is an exact affine
map: ``layer.matrix()`` is ``C`` with ``C @ x.ravel() + layer.offset() == layer(x).ravel()``,
and ``layer.T`` is its adjoint (the transposed convolution). ``conv_matrix`` and
``conv_transpose_matrix`` are the functional forms. See the README for the tour.

``import convmatrix`` is cheap: every public name is imported from its module on first use
(the table ``_LAZY`` below), so SymPy, the reports and the framework adapters load only when used.
"""

from __future__ import annotations

import importlib
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from convmatrix import _hooks

if TYPE_CHECKING:  # the same names, imported eagerly for type checkers and IDEs
    from convmatrix import cache, lax, reference, symbolic
    from convmatrix._errors import ConvMatrixError
    from convmatrix.adapters import (
        LipschitzSummary,
        from_flax,
        from_keras,
        from_onnx,
        from_torch,
        keras_matrix,
        keras_output_shape,
        linearize,
        lipschitz_summary,
        torch_bias,
        torch_matrix,
    )
    from convmatrix.analysis.checkerboard import checkerboard
    from convmatrix.analysis.inverse import transpose_vs_inverse
    from convmatrix.analysis.paths import path_counts
    from convmatrix.analysis.save import save_matrix
    from convmatrix.analysis.spectra import (
        LipschitzBounds,
        TopSingularValues,
        lipschitz,
        operator_norm,
        operator_norm_bound,
        singular_values,
        top_singular_values,
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
        AdaptiveAvgPool,
        AdaptiveMaxPoolAt,
        Add,
        Adjoint,
        AvgPool,
        BatchNorm,
        Cat,
        Concat,
        Conv,
        ConvTranspose,
        DepthToSpace,
        Flatten,
        GlobalAvgPool,
        GlobalMaxPoolAt,
        Graph,
        GroupNormAt,
        Identity,
        InstanceNormAt,
        KerasConv,
        Layer,
        LayerNormAt,
        Linear,
        Linearization,
        MaxPoolAt,
        Node,
        NumpyPad,
        Pad,
        Permute,
        PixelShuffle,
        PixelUnshuffle,
        Reshape,
        Resize,
        Scale,
        Sequential,
        Slice,
        SpaceToDepth,
        Sum,
        Upsample,
    )
    from convmatrix.verification import VerificationResult, dot_test, verify

#: public name -> the module it is imported from on first use (a name equal to the module's last
#: component, like ``cache``, is that submodule itself). To add a public name: one line here, one
#: in ``__all__`` and one import in the ``TYPE_CHECKING`` block above.
_LAZY: dict[str, str] = {
    # submodules
    "cache": "convmatrix.cache",
    "reference": "convmatrix.reference",
    "symbolic": "convmatrix.symbolic",
    "lax": "convmatrix.lax",
    # errors
    "ConvMatrixError": "convmatrix._errors",
    # framework adapters
    "from_flax": "convmatrix.adapters",
    "from_keras": "convmatrix.adapters",
    "from_onnx": "convmatrix.adapters",
    "from_torch": "convmatrix.adapters",
    "keras_matrix": "convmatrix.adapters",
    "keras_output_shape": "convmatrix.adapters",
    "torch_bias": "convmatrix.adapters",
    "torch_matrix": "convmatrix.adapters",
    "lipschitz_summary": "convmatrix.adapters",
    "linearize": "convmatrix.adapters",
    "LipschitzSummary": "convmatrix.adapters",
    # analyses
    "checkerboard": "convmatrix.analysis.checkerboard",
    "transpose_vs_inverse": "convmatrix.analysis.inverse",
    "path_counts": "convmatrix.analysis.paths",
    "save_matrix": "convmatrix.analysis.save",
    "LipschitzBounds": "convmatrix.analysis.spectra",
    "lipschitz": "convmatrix.analysis.spectra",
    "operator_norm": "convmatrix.analysis.spectra",
    "operator_norm_bound": "convmatrix.analysis.spectra",
    "singular_values": "convmatrix.analysis.spectra",
    "top_singular_values": "convmatrix.analysis.spectra",
    "TopSingularValues": "convmatrix.analysis.spectra",
    # the sparse builder
    "DEFAULT_MAX_BYTES": "convmatrix.builder.sparse",
    "conv_matrix": "convmatrix.builder.sparse",
    "conv_transpose_matrix": "convmatrix.builder.sparse",
    "estimate_nbytes": "convmatrix.builder.sparse",
    "spec_matrix": "convmatrix.builder.sparse",
    # geometry
    "ConvSpec": "convmatrix.geometry.spec",
    "conv_output_shape": "convmatrix.geometry.spec",
    "conv_spec": "convmatrix.geometry.spec",
    "conv_transpose_output_shape": "convmatrix.geometry.spec",
    "conv_transpose_spec": "convmatrix.geometry.spec",
    # layer kinds
    "Adjoint": "convmatrix.layers",
    "AvgPool": "convmatrix.layers",
    "BatchNorm": "convmatrix.layers",
    "Conv": "convmatrix.layers",
    "ConvTranspose": "convmatrix.layers",
    "Identity": "convmatrix.layers",
    "KerasConv": "convmatrix.layers",
    "Layer": "convmatrix.layers",
    "Pad": "convmatrix.layers",
    "NumpyPad": "convmatrix.layers",
    "Permute": "convmatrix.layers",
    "PixelShuffle": "convmatrix.layers",
    "PixelUnshuffle": "convmatrix.layers",
    "Sequential": "convmatrix.layers",
    "Upsample": "convmatrix.layers",
    "Linearization": "convmatrix.layers",
    "MaxPoolAt": "convmatrix.layers",
    "LayerNormAt": "convmatrix.layers",
    "InstanceNormAt": "convmatrix.layers",
    "GroupNormAt": "convmatrix.layers",
    "GlobalMaxPoolAt": "convmatrix.layers",
    "AdaptiveMaxPoolAt": "convmatrix.layers",
    "Flatten": "convmatrix.layers",
    "Linear": "convmatrix.layers",
    "Reshape": "convmatrix.layers",
    "Resize": "convmatrix.layers",
    "Scale": "convmatrix.layers",
    "Slice": "convmatrix.layers",
    "DepthToSpace": "convmatrix.layers",
    "SpaceToDepth": "convmatrix.layers",
    "AdaptiveAvgPool": "convmatrix.layers",
    "GlobalAvgPool": "convmatrix.layers",
    # graphs of layers
    "Add": "convmatrix.layers",
    "Cat": "convmatrix.layers",
    "Concat": "convmatrix.layers",
    "Graph": "convmatrix.layers",
    "Node": "convmatrix.layers",
    "Sum": "convmatrix.layers",
    # verification
    "VerificationResult": "convmatrix.verification",
    "dot_test": "convmatrix.verification",
    "verify": "convmatrix.verification",
}

__all__ = [
    "DEFAULT_MAX_BYTES",
    "AdaptiveAvgPool",
    "AdaptiveMaxPoolAt",
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
    "DepthToSpace",
    "Flatten",
    "GlobalAvgPool",
    "GlobalMaxPoolAt",
    "Graph",
    "GroupNormAt",
    "Identity",
    "InstanceNormAt",
    "KerasConv",
    "Layer",
    "LayerNormAt",
    "Linear",
    "Linearization",
    "LipschitzBounds",
    "LipschitzSummary",
    "MaxPoolAt",
    "Node",
    "NumpyPad",
    "Pad",
    "Permute",
    "PixelShuffle",
    "PixelUnshuffle",
    "Reshape",
    "Resize",
    "Scale",
    "Sequential",
    "Slice",
    "SpaceToDepth",
    "Sum",
    "TopSingularValues",
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
    "from_flax",
    "from_keras",
    "from_onnx",
    "from_torch",
    "keras_matrix",
    "keras_output_shape",
    "lax",
    "linearize",
    "lipschitz",
    "lipschitz_summary",
    "operator_norm",
    "operator_norm_bound",
    "path_counts",
    "reference",
    "save_matrix",
    "singular_values",
    "spec_matrix",
    "symbolic",
    "top_singular_values",
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


# what convmatrix.layers.base.set_presenter(_presenter) does, without importing the layers
_hooks.presenter_factories[:] = [_presenter]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (``_LAZY``); forward moved names."""
    module = _LAZY.get(name)
    if module is not None:
        imported = importlib.import_module(module)
        value = imported if module == f"{__name__}.{name}" else getattr(imported, name)
        globals()[name] = value  # later look-ups skip this function
        return value
    if name in _MOVED:
        module, new = _MOVED[name]
        warnings.warn(f"convmatrix.{name} is deprecated and will be removed in convmatrix 0.3; "
                      f"use {module}.{new}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module), new)
    raise AttributeError(f"module 'convmatrix' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's own attributes and every public name, loaded or not."""
    return sorted(set(globals()) | set(__all__))
