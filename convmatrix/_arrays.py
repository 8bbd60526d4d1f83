"""Numpy arrays from what users hand in: arrays, nested lists, torch tensors (duck-typed)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["to_numpy"]


def to_numpy(value: Any) -> np.ndarray:
    """``value`` as a numpy array; a torch tensor is read without importing torch.

    A tensor is detached (so ``requires_grad`` does not matter), moved to the CPU, its lazy
    conjugate/negative bits resolved, and a ``bfloat16`` tensor widened to ``float32`` — exact,
    since every bfloat16 number is a float32 number (numpy has no bfloat16). The matrix of a
    bfloat16 layer is therefore float32 and holds its weights exactly.

    Examples
    --------
    >>> to_numpy([[1, 2]]).shape
    (1, 2)
    """
    if hasattr(value, "detach") and hasattr(value, "numpy") and hasattr(value, "dtype"):
        tensor = value.detach()
        for step in ("cpu", "resolve_conj", "resolve_neg"):
            if hasattr(tensor, step):
                tensor = getattr(tensor, step)()
        if str(tensor.dtype) == "torch.bfloat16":
            tensor = tensor.float()
        return np.asarray(tensor.numpy())
    return np.asarray(value)
