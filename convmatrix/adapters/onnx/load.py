"""Reading an ONNX model safely: a path or a ``ModelProto``, external data from its own folder.

A model file is a protobuf message: parsing it executes nothing. Tensors stored as *external
data* name a file by a relative ``location``; :func:`load_model` reads those bytes itself, and
only from regular files inside the model's own directory (symbolic links resolved): absolute
locations, ``..`` escapes and links leading out are refused (CVE-2024-27318, where
``onnx.load`` followed such paths). Every size is checked against ``max_bytes`` before it is
read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.budget import format_bytes

__all__ = ["all_tensors", "load_model"]


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:  # pragma: no cover - the tests run with onnx installed
        raise ConvMatrixError("reading ONNX models needs the `onnx` package: "
                              "pip install 'convmatrix[onnx]'") from None
    return onnx


def all_tensors(graph: Any) -> Iterator[Any]:
    """Every ``TensorProto`` of a graph: initializers and tensor attributes, subgraphs too."""
    onnx = _import_onnx()
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                yield attribute.t
            elif attribute.type == onnx.AttributeProto.TENSORS:
                yield from attribute.tensors
            elif attribute.type == onnx.AttributeProto.GRAPH:
                yield from all_tensors(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    yield from all_tensors(sub)


def _inside(base: Path, location: str, tensor: str) -> Path:
    """The external file ``location`` names, refused unless it is a file inside ``base``."""
    if not location or os.path.isabs(location) or Path(location).drive \
            or location.startswith(("/", "\\")):
        raise ConvMatrixError(
            f"tensor {tensor!r} stores its data at external location {location!r}: only "
            f"relative paths inside the model's directory are read (CVE-2024-27318)")
    target = (base / location).resolve()
    try:
        target.relative_to(base)
    except ValueError:
        raise ConvMatrixError(
            f"tensor {tensor!r} stores its data at external location {location!r}, which "
            f"leads outside the model's directory {str(base)!r}: refused (CVE-2024-27318)"
        ) from None
    if not target.is_file():
        raise ConvMatrixError(f"tensor {tensor!r}: external data file {location!r} is not a "
                              f"regular file in the model's directory")
    return target


def _read_external(model: Any, base: Path | None, max_bytes: int | None) -> None:
    onnx = _import_onnx()
    total = 0
    for tensor in all_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        if base is None:
            raise ConvMatrixError(
                f"tensor {tensor.name!r} has external data ({info.get('location', '?')!r}) "
                f"but the model was given as a ModelProto: pass the model's file path so "
                f"its directory is known")
        path = _inside(base, info.get("location", ""), tensor.name)
        try:
            offset = int(info.get("offset", 0))
            size = os.path.getsize(path)
            length = int(info["length"]) if "length" in info else size - offset
        except ValueError:
            raise ConvMatrixError(f"tensor {tensor.name!r}: external data offset/length "
                                  f"{info!r} are not integers") from None
        if offset < 0 or length < 0 or offset + length > size:
            raise ConvMatrixError(
                f"tensor {tensor.name!r}: external data offset {offset} + length {length} "
                f"lies outside {info.get('location')!r} ({size} bytes)")
        total += length
        if max_bytes is not None and total > max_bytes:
            raise ConvMatrixError(
                f"the model's external data needs {format_bytes(total)}, over `max_bytes` "
                f"(={format_bytes(max_bytes)})")
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
        tensor.raw_data = data
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


def load_model(model: Any, max_bytes: int | None) -> Any:
    """``model`` (a path, bytes, or an ``onnx.ModelProto``) as a ``ModelProto`` with its data.

    A ModelProto given directly is copied before external data is filled in (the caller's
    object is not changed).
    """
    onnx = _import_onnx()
    base: Path | None = None
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        if not path.is_file():
            raise ConvMatrixError(f"`model` (={str(model)!r}) is not a file")
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise ConvMatrixError(f"`model` file is {format_bytes(size)}, over `max_bytes` "
                                  f"(={format_bytes(max_bytes)})")
        try:
            proto = onnx.load_model(str(path), load_external_data=False)
        except Exception as error:  # protobuf's DecodeError and friends
            raise ConvMatrixError(f"`model` (={str(model)!r}) is not an ONNX model "
                                  f"({type(error).__name__})") from None
        base = path.resolve().parent
    elif isinstance(model, bytes | bytearray):
        try:
            proto = onnx.load_model_from_string(bytes(model))
        except Exception as error:
            raise ConvMatrixError(f"`model` bytes are not an ONNX model "
                                  f"({type(error).__name__})") from None
    elif isinstance(model, onnx.ModelProto):
        proto = onnx.ModelProto()
        proto.CopyFrom(model)
    else:
        raise ConvMatrixError(f"`model` (={type(model).__name__}) must be a path to an .onnx "
                              f"file, its bytes, or an onnx.ModelProto")
    _read_external(proto, base, max_bytes)
    return proto
