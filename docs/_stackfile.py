"""The per-kind key tables of the stack-file reference, generated from the reader and docstrings.

The stack-file reader (:mod:`convmatrix.reports.stackfile`) takes a few keys of a ``[[layers]]``
table itself (``kind``, ``weights``, ``seed``; ``kernel`` and ``icnr`` for the weighted kinds,
``out_features`` for ``Linear``) and passes every other key to the layer kind's constructor as a
keyword argument. :func:`kind_tables` lists, for every kind the reader knows (its own table,
``_layer_kinds``), those keys with the type and meaning the kind's docstring gives them, so the
reference cannot fall behind a constructor. ``docs/conf.py`` writes it to
``reference/generated/stack-kinds.md`` for ``reference/stackfile.md`` to include.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from numpydoc.docscrape import NumpyDocString

from convmatrix.reports import stackfile

__all__ = ["OUTPUT", "accepted_keys", "kind_tables", "write"]

OUTPUT = Path(__file__).parent / "reference" / "generated" / "stack-kinds.md"

#: the constructor arguments the reader supplies itself: the previous layer's output shape and,
#: for the kinds with ``kernel`` / ``out_features``, the filled weight
_SUPPLIED = ("self", "input_shape")

#: keys the reader takes itself for some kinds: key -> (type, meaning)
_READER_KEYS = {
    "kernel": ("array of int", "The weight's shape in torch's layout, filled by ``weights``: "
                               "``[C_out, C_in/groups, *k]`` for ``Conv``, "
                               "``[C_in, C_out/groups, *k]`` for ``ConvTranspose``."),
    "icnr": ("int", "With ``weights = \"icnr\"``: the factor ``r`` of the pixel shuffle this "
                    "convolution feeds."),
    "out_features": ("int", "The rows of the weight, ``(out_features, size of the input)``, "
                            "filled by ``weights``."),
}


def _reader_keys(kind: str) -> list[str]:
    if kind in stackfile._WEIGHTED:
        return ["kernel", "icnr"]
    return ["out_features"] if kind == "Linear" else []


def _filled(kind: str) -> bool:
    """Whether the reader makes the kind's ``weight`` (from ``kernel`` or ``out_features``)."""
    return bool(_reader_keys(kind))


def accepted_keys(kind: str) -> list[str]:
    """The keys of a ``[[layers]]`` table of ``kind`` besides ``kind``, ``weights`` and ``seed``.

    The reader's own keys first, then the constructor's keyword arguments.
    """
    parameters = inspect.signature(stackfile._layer_kinds()[kind].__init__).parameters
    supplied = (*_SUPPLIED, "weight") if _filled(kind) else _SUPPLIED
    return _reader_keys(kind) + [name for name in parameters if name not in supplied]


def _myst(text: str) -> str:
    """Docstring reStructuredText on one Markdown table line: roles in MyST's syntax."""
    text = re.sub(r":(\w+):`", r"{\1}`", " ".join(line.strip() for line in text.splitlines()))
    return text.replace("|", "\\|")


def kind_tables() -> str:
    """One Markdown section per layer kind of a stack file: its keys, types and meanings."""
    parts = []
    for kind, cls in sorted(stackfile._layer_kinds().items()):
        doc = NumpyDocString(inspect.getdoc(cls) or "")
        described = {name.strip(): (entry.type, "\n".join(entry.desc))
                     for entry in doc["Parameters"] for name in entry.name.split(",")}
        described.update(_READER_KEYS)
        summary = _myst(" ".join(doc["Summary"]))
        lines = [f"### `{kind}`", "", f"{{class}}`convmatrix.{kind}`: {summary}", ""]
        keys = accepted_keys(kind)
        if keys:
            lines += ["| key | type | meaning |", "| --- | --- | --- |"]
            for key in keys:
                kind_of, meaning = described[key]  # a KeyError: a parameter without a docstring
                lines.append(f"| `{key}` | {_myst(kind_of)} | {_myst(meaning)} |")
        else:
            lines.append("No keys besides `kind` (the shape comes from the previous layer).")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def write() -> None:
    """Write :func:`kind_tables` to :data:`OUTPUT` (unchanged files are left alone)."""
    text = kind_tables()
    if not OUTPUT.exists() or OUTPUT.read_text() != text:
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        OUTPUT.write_text(text)
