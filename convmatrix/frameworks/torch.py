"""torch ``nn.ConvNd`` / ``nn.ConvTransposeNd`` modules as matrices, read by attributes only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.sparse import DEFAULT_MAX_BYTES, spec_matrix
from convmatrix.spec import ConvSpec, conv_spec, conv_transpose_spec

__all__ = ["torch_bias", "torch_matrix"]


def _numpy(tensor: Any) -> np.ndarray:
    for step in ("detach", "cpu", "numpy"):
        if hasattr(tensor, step):
            tensor = getattr(tensor, step)()
    return np.asarray(tensor)


def _module_spec(module: Any, input_shape: Sequence[int],
                 output_size: Sequence[int] | None) -> tuple[ConvSpec, np.ndarray, bool]:
    """Read a torch conv module's attributes into (forward spec, weight, transposed)."""
    if not hasattr(module, "weight") or not hasattr(module, "stride"):
        raise ConvMatrixError(
            f"`module` (={type(module).__name__}) must be a torch nn.ConvNd or "
            f"nn.ConvTransposeNd (it needs weight, stride, padding, dilation, groups)")
    weight = _numpy(module.weight)
    ndim = weight.ndim - 2
    shape = tuple(int(v) for v in input_shape)
    if len(shape) == ndim + 2:
        raise ConvMatrixError(
            f"`input_shape` (={shape}) has a batch axis; give one sample (C, *spatial)")
    transposed = bool(getattr(module, "transposed", "Transpose" in type(module).__name__))
    common: dict[str, Any] = {"stride": tuple(module.stride), "dilation": tuple(module.dilation),
              "groups": int(module.groups)}
    padding = module.padding if isinstance(module.padding, str) else tuple(module.padding)
    if transposed:
        output_padding = tuple(getattr(module, "output_padding", (0,) * ndim))
        if output_size is not None:
            output_padding = _output_padding_for(weight, shape, padding, output_size, **common)
        spec = conv_transpose_spec(weight.shape, shape, padding=padding,
                                   output_padding=output_padding, **common)
    else:
        if output_size is not None:
            raise ConvMatrixError("`output_size` applies only to ConvTranspose modules")
        spec = conv_spec(weight.shape, shape, padding=padding,
                         padding_mode=getattr(module, "padding_mode", "zeros"), **common)
    return spec, weight, transposed


def _output_padding_for(weight: np.ndarray, input_shape: tuple[int, ...], padding: Any,
                        output_size: Sequence[int], *, stride: tuple[int, ...],
                        dilation: tuple[int, ...], groups: int) -> tuple[int, ...]:
    """Output padding by torch's rule: output_size exceeds the minimum by less than the stride."""
    ndim = weight.ndim - 2
    size = tuple(output_size)[-ndim:]
    result = []
    for axis in range(ndim):
        minimum = ((input_shape[axis + 1] - 1) * stride[axis] - 2 * padding[axis]
                   + dilation[axis] * (weight.shape[axis + 2] - 1) + 1)
        if not minimum <= size[axis] < minimum + stride[axis]:
            raise ConvMatrixError(
                f"`output_size` (={tuple(output_size)}) must lie in [{minimum}, "
                f"{minimum + stride[axis] - 1}] along spatial axis {axis}, as in torch")
        result.append(size[axis] - minimum)
    return tuple(result)


def torch_matrix(
    module: Any,
    input_shape: Sequence[int],
    *,
    output_size: Sequence[int] | None = None,
    format: str | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> sp.sparray:
    """Matrix of a torch convolution module: ``M @ x.ravel() == (module(x[None]) − bias).ravel()``.

    Works by reading attributes (``weight``, ``stride``, ``padding``, ``dilation``, ``groups``,
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
    spec, weight, transposed = _module_spec(module, input_shape, output_size)
    return spec_matrix(spec, weight, transpose=transposed, format=format,  # type: ignore[arg-type]
                       max_bytes=max_bytes)


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
    spec, _, transposed = _module_spec(module, input_shape, output_size)
    out_shape = spec.input_shape if transposed else spec.output_shape
    bias = _numpy(module.bias)
    return np.repeat(bias, int(np.prod(out_shape[1:])))
