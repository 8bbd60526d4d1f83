"""ONNX ``Transpose``, ``DepthToSpace`` and ``SpaceToDepth`` translators (permutations)."""

from __future__ import annotations

from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.onnx.node import OnnxNode
from convmatrix.layers.base import Layer
from convmatrix.layers.permute import Permute
from convmatrix.layers.shuffle import DepthToSpace, SpaceToDepth

__all__ = ["depth_to_space", "space_to_depth", "transpose"]


def transpose(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``Transpose`` → :class:`~convmatrix.Permute`; ``perm`` must keep the batch axis first."""
    rank = len(input_shape) + 1
    perm = node.attribute("perm")
    axes = tuple(range(rank - 1, -1, -1)) if perm is None else tuple(perm)
    if len(axes) != rank or sorted(axes) != list(range(rank)):
        raise node.refuse(f"`perm` (={perm!r}) must be a permutation of range({rank})")
    if axes[0] != 0:
        raise node.refuse(f"`perm` (={axes!r}) moves the batch axis (axis 0); convmatrix reads "
                          f"one sample, so perm must start with 0")
    return Permute(input_shape, [a - 1 for a in axes[1:]])


def _blocks(node: OnnxNode, input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 3:
        raise node.refuse(f"the input must be (N, C, H, W); one sample has shape {input_shape}")
    blocksize = node.attribute("blocksize")
    if blocksize is None:
        raise node.refuse("the attribute `blocksize` is required")
    return int(blocksize)


def depth_to_space(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``DepthToSpace`` (``DCR``, the default, or ``CRD``) → :class:`~convmatrix.DepthToSpace`."""
    try:
        return DepthToSpace(input_shape, _blocks(node, input_shape),
                            node.attribute("mode", "DCR"))
    except ConvMatrixError as error:
        raise node.refuse(str(error)) from None


def space_to_depth(node: OnnxNode, input_shape: tuple[int, ...]) -> Layer:
    """``SpaceToDepth`` → :class:`~convmatrix.SpaceToDepth` (``DCR``, ONNX's only layout)."""
    try:
        return SpaceToDepth(input_shape, _blocks(node, input_shape), "DCR")
    except ConvMatrixError as error:
        raise node.refuse(str(error)) from None
