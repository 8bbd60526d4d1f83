"""Shape arithmetic of one spatial axis: effective kernel, output lengths, "same" padding splits.

Pure functions of Python ints, the one home of these formulas: the spec, the framework
adapters and the reports call them instead of re-deriving them. Notation per axis: input
length ``n``, kernel taps ``k``, stride ``s``, dilation ``d``, padding ``(before, after)``,
effective kernel ``k̂ = d·(k − 1) + 1``. Nothing here validates its arguments (that is
:mod:`convmatrix.geometry.spec`'s job); a result below 1 means "empty".

Examples
--------
>>> conv_output_length(224, 7, stride=2, padding=(3, 3))
112
>>> conv_transpose_output_length(112, 7, stride=2, padding=(3, 3), output_padding=1)
224
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "causal_padding",
    "conv_output_length",
    "conv_remainder",
    "conv_transpose_output_length",
    "effective_kernel",
    "keras_transpose_output_length",
    "same_padding_tf",
    "same_padding_torch",
    "shape_text",
    "used_length",
]


def effective_kernel(k: int, dilation: int = 1) -> int:
    """Span of a dilated kernel: ``k̂ = d·(k − 1) + 1``.

    Examples
    --------
    >>> effective_kernel(3, 2)
    5
    """
    return dilation * (k - 1) + 1


def conv_output_length(
    n: int, k: int, stride: int = 1, padding: tuple[int, int] = (0, 0), dilation: int = 1
) -> int:
    """Outputs of a convolution: ``⌊(n + before + after − k̂) / s⌋ + 1`` (below 1: empty).

    Examples
    --------
    >>> conv_output_length(5, 3), conv_output_length(5, 3, stride=2, padding=(1, 1))
    (3, 3)
    """
    return (n + padding[0] + padding[1] - effective_kernel(k, dilation)) // stride + 1


def used_length(outputs: int, k: int, stride: int = 1, dilation: int = 1) -> int:
    """Padded input positions the windows of ``outputs`` outputs span: ``(outputs − 1)·s + k̂``.

    Examples
    --------
    >>> used_length(3, 3, stride=2)   # windows at 0, 2, 4, each 3 wide
    7
    """
    return (outputs - 1) * stride + effective_kernel(k, dilation)


def conv_remainder(
    n: int, k: int, stride: int, padding: tuple[int, int], dilation: int, outputs: int
) -> int:
    """Padded input positions after the last window of ``outputs`` outputs.

    ``n + before + after − k̂ − (outputs − 1)·s``: the ``output_padding`` a transposed
    convolution needs to map ``outputs`` values back onto exactly ``n`` positions.

    Examples
    --------
    >>> conv_remainder(8, 3, 2, (1, 1), 1, 4)   # 8 -> 4 -> back to 8 needs output_padding 1
    1
    """
    return n + padding[0] + padding[1] - effective_kernel(k, dilation) - (outputs - 1) * stride


def conv_transpose_output_length(
    n: int,
    k: int,
    stride: int = 1,
    padding: tuple[int, int] = (0, 0),
    dilation: int = 1,
    output_padding: int = 0,
) -> int:
    """Outputs of a transposed convolution (torch's rule, (before, after) crops).

    ``(n − 1)·s − before − after + k̂ + output_padding``.

    Examples
    --------
    >>> conv_transpose_output_length(2, 2)   # the seed: 2x2 -> 3x3
    3
    """
    return ((n - 1) * stride - padding[0] - padding[1] + effective_kernel(k, dilation)
            + output_padding)


def same_padding_torch(k: int, dilation: int = 1) -> tuple[int, int]:
    """The ``padding="same"`` of torch (stride 1): ``d·(k − 1)`` in all, the odd one after.

    Examples
    --------
    >>> same_padding_torch(4), same_padding_torch(3, dilation=2)
    ((1, 2), (2, 2))
    """
    total = dilation * (k - 1)
    return total // 2, total - total // 2


def same_padding_tf(n: int, k: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """Keras/TensorFlow ``padding="same"``: ``⌈n/s⌉`` outputs, the odd extra pad after.

    The total is ``max((⌈n/s⌉ − 1)·s + k̂ − n, 0)``; it depends on ``n mod s``.

    Examples
    --------
    >>> same_padding_tf(5, 3, stride=2), same_padding_tf(6, 3, stride=2)
    ((1, 1), (0, 1))
    """
    outputs = -(-n // stride)
    total = max((outputs - 1) * stride + effective_kernel(k, dilation) - n, 0)
    return total // 2, total - total // 2


def causal_padding(k: int, dilation: int = 1) -> tuple[int, int]:
    """Keras ``Conv1D(padding="causal")``: ``k̂ − 1`` before, nothing after.

    Examples
    --------
    >>> causal_padding(3, dilation=2)
    (4, 0)
    """
    return effective_kernel(k, dilation) - 1, 0


def keras_transpose_output_length(
    n: int, k: int, stride: int, dilation: int, padding: str, output_padding: int | None
) -> int:
    """Keras' own output length of ``ConvNDTranspose`` along one axis.

    Without ``output_padding``: ``"valid"`` gives ``n·s + max(k̂ − s, 0)``, ``"same"`` gives
    ``n·s``. With it: ``(n − 1)·s + k̂ − 2·pad + output_padding``, ``pad = k̂ // 2`` for
    ``"same"`` and 0 for ``"valid"``.

    Examples
    --------
    >>> keras_transpose_output_length(2, 2, 1, 1, "valid", None)   # the seed: 2x2 -> 3x3
    3
    >>> keras_transpose_output_length(4, 3, 2, 1, "same", None)
    8
    """
    k_eff = effective_kernel(k, dilation)
    if output_padding is None:
        return n * stride + max(k_eff - stride, 0) if padding == "valid" else n * stride
    pad = k_eff // 2 if padding == "same" else 0
    return (n - 1) * stride + k_eff - 2 * pad + output_padding


def shape_text(shape: Iterable[int]) -> str:
    """A shape as text: ``(1, 3, 3)`` → ``"1×3×3"`` (messages, reprs and reports).

    Examples
    --------
    >>> shape_text((1, 3, 3))
    '1×3×3'
    """
    return "×".join(str(v) for v in shape)
