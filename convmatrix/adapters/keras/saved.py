"""A ``.keras`` file as a live model, loaded the safe way: no Python code from the file runs.

A ``.keras`` file is a zip archive: ``config.json`` (the model's serialized layers),
``metadata.json`` and the weights. :func:`load_keras_file` reads the config first and refuses
a ``Lambda`` layer (or any serialized Python function) by its name *before* Keras sees the
file, so its code is never deserialized; it then loads the model with
``keras.saving.load_model(path, safe_mode=True, compile=False)``, which refuses such code too.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from convmatrix._errors import ConvMatrixError

__all__ = ["is_keras_path", "keras_file_code", "load_keras_file"]

#: serialized objects whose deserialization runs Python code from the file
_CODE = frozenset({"Lambda", "__lambda__"})


def is_keras_path(value: Any) -> bool:
    """A ``str`` or path-like naming a file (not a Keras object or a serialized dict)."""
    return isinstance(value, str | os.PathLike)


def _walk(value: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        yield path, value
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def keras_file_code(config: Any) -> list[str]:
    """The layers (and functions) in a serialized model config that carry Python code.

    Each as ``"Lambda 'name'"``; empty when the config holds none.
    """
    found = []
    for _, item in _walk(config, "config"):
        class_name = item.get("class_name")
        if class_name in _CODE:
            inner = item.get("config")
            name = inner.get("name") if isinstance(inner, dict) else None
            found.append(f"{class_name} {name!r}" if name else str(class_name))
    return found


def load_keras_file(path: str | os.PathLike[str]) -> Any:
    """Load a ``.keras`` file in safe mode; a ``Lambda`` layer is refused, never deserialized.

    Parameters
    ----------
    path : str or path-like
        A Keras 3 ``.keras`` file (``model.save("model.keras")``).

    Returns
    -------
    keras.Model

    Raises
    ------
    ConvMatrixError
        The file is missing, is not a ``.keras`` archive, holds a ``Lambda`` layer (named) or
        anything else Keras' safe mode refuses.
    """
    file = Path(path)
    if file.suffix != ".keras":
        raise ConvMatrixError(
            f"`path` (={str(path)!r}) must be a Keras 3 '.keras' file (model.save("
            f"'model.keras')); legacy .h5 / SavedModel files are not read")
    if not file.is_file():
        raise ConvMatrixError(f"`path` (={str(path)!r}) is not a file")
    try:
        with zipfile.ZipFile(file) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise ConvMatrixError(
            f"`path` (={str(path)!r}) is not a readable .keras archive with a config.json "
            f"({type(error).__name__}: {error})") from None
    code = keras_file_code(config)
    if code:
        raise ConvMatrixError(
            f"`path` (={str(path)!r}) holds {', '.join(code)}: a Lambda layer's Python code "
            f"would have to be deserialized and run, which convmatrix never does (Keras' "
            f"safe mode); build the model from Keras layers only")
    import keras

    try:
        with warnings.catch_warnings():
            # Keras' own weight loading on numpy 2 (not a concern of the caller's)
            warnings.filterwarnings("ignore", message="__array__ implementation",
                                    category=DeprecationWarning)
            return keras.saving.load_model(file, safe_mode=True, compile=False)
    except Exception as error:
        raise ConvMatrixError(
            f"`path` (={str(path)!r}) could not be loaded in Keras' safe mode "
            f"({type(error).__name__}: {error})") from None
