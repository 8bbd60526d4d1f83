"""Singular values and operator norms of layers: FFT, dense SVD or ARPACK; certified bounds.

- :mod:`.methods`: :func:`singular_values` and :func:`operator_norm`, choosing the method;
- :mod:`.fft`: the exact spectrum of block-circulant (circular, stride-1) convolutions;
- :mod:`.iterative`: ARPACK / Lanczos on the matrix-free operator;
- :mod:`.bounds`: the certified :func:`operator_norm_bound` and a stack's :func:`lipschitz`.
"""

from convmatrix.analysis.spectra.bounds import (
    ROUNDING_MARGIN,
    LipschitzBounds,
    lipschitz,
    operator_norm_bound,
)
from convmatrix.analysis.spectra.methods import (
    DENSE_MAX_ENTRIES,
    SpectrumMethod,
    TopSingularValues,
    Which,
    choose_method,
    operator_norm,
    singular_values,
    top_singular_values,
)

__all__ = [
    "DENSE_MAX_ENTRIES",
    "ROUNDING_MARGIN",
    "LipschitzBounds",
    "SpectrumMethod",
    "TopSingularValues",
    "Which",
    "choose_method",
    "lipschitz",
    "operator_norm",
    "operator_norm_bound",
    "singular_values",
    "top_singular_values",
]
