"""ONNX models as layer objects: :func:`from_onnx` reads a graph of linear operators.

``onnx`` is an optional dependency (the ``onnx`` extra), imported only inside functions;
:mod:`~convmatrix.adapters.onnx.node` holds the decoded node every translator receives and
:mod:`~convmatrix.adapters.onnx.ops` the translator table (``TRANSLATORS``).
"""

from convmatrix.adapters.onnx.node import OnnxNode
from convmatrix.adapters.onnx.ops import TRANSLATORS, Translator
from convmatrix.adapters.onnx.reader import from_onnx, linearize_onnx

__all__ = ["TRANSLATORS", "OnnxNode", "Translator", "from_onnx", "linearize_onnx"]
