"""Deprecated package: the framework adapters live in :mod:`convmatrix.adapters` now."""

import warnings

warnings.warn(
    "convmatrix.frameworks is deprecated and will be removed in convmatrix 0.3; "
    "import convmatrix.adapters instead",
    DeprecationWarning,
    stacklevel=2,
)

from convmatrix.adapters import *  # noqa: E402, F403
from convmatrix.adapters import __all__  # noqa: E402, F401
