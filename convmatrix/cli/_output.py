"""Writing the commands' results: report targets, reports with their figures, streamed matrices."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from convmatrix._errors import ConvMatrixError

__all__ = ["report_target", "save_streamed", "write_and_announce", "write_report"]


def report_target(out: Path, default_stem: str = "report") -> tuple[Path, str]:
    """``--out``: the directory to write into and the report's file stem.

    A path ending in ``.md`` is the report file (its directory must exist); any other path is
    a directory for ``report.md`` (``default_stem``; created when missing, if its parent
    exists).
    """
    if out.is_dir():
        return out, default_stem
    if out.suffix.lower() == ".md":
        directory, stem = out.parent, out.stem
    elif out.exists():
        raise ConvMatrixError(f"`--out` ({str(out)!r}) is an existing file; give a .md file or "
                              f"a directory")
    else:
        directory, stem = out, default_stem
    parent = directory if out.suffix.lower() == ".md" else directory.parent
    if not parent.is_dir():
        raise ConvMatrixError(f"`--out` ({str(out)!r}): the directory {str(parent)!r} does not "
                              f"exist; create it first")
    return directory, stem


def write_report(report: Any, directory: Path, stem: str) -> list[Path]:
    """Write a report's Markdown as ``stem.md`` and its figures (renamed after ``stem``).

    Returns
    -------
    list of Path
        The Markdown file first, then the figures.
    """
    directory.mkdir(exist_ok=True)
    markdown = report.markdown
    written = []
    for name, png in sorted(report.figures.items()):
        target = name if stem == report.name else name.replace(report.name, stem, 1)
        markdown = markdown.replace(f"]({name})", f"]({target})")
        (directory / target).write_bytes(png)
        written.append(directory / target)
    path = directory / f"{stem}.md"
    path.write_text(markdown, encoding="utf-8")
    return [path, *written]


def write_and_announce(report: Any, out: Path, default_stem: str) -> None:
    """Write a report to ``--out`` and print what was written."""
    directory, stem = report_target(out, default_stem)
    written = write_report(report, directory, stem)
    print(f"wrote {written[0]} ({len(written) - 1} figures): {report.title}")


def save_streamed(layer: Any, path: Path, max_bytes: int, name: str = "C") -> str:
    """Write the matrix of ``layer`` in row blocks of about ``max_bytes / 4`` each.

    See :func:`convmatrix.save_matrix`. Blocks are built one channel range at a time (at
    least one channel's rows), so a budget below one channel's rows is refused.
    """
    from convmatrix.analysis.save import save_matrix

    rows, cols = layer.matrix_shape
    view = layer.conv_view()
    if view is not None and view.layout != "channels_first":
        view = None  # a re-indexed convolution: its rows are no channel ranges
    nnz = view.spec.nnz_upper_bound() if view is not None else rows * cols
    per_row = max(1.0, nnz / max(rows, 1)) * (layer.dtype.itemsize + 8)
    rows_per_block = max(1, int(max_bytes / 4 / per_row))
    if view is not None:
        spec = view.spec
        forward = view.direction == "forward"
        pixels = math.prod(spec.output_size if forward else spec.input_size)
        if pixels * per_row > max_bytes:
            raise ConvMatrixError(
                f"the matrix {name} streams at least one channel's rows at a time, about "
                f"{pixels * per_row / 1024:.1f} KiB, over `--max-bytes` (={max_bytes}); "
                f"raise `--max-bytes`")
    written = save_matrix(layer, path, rows_per_block=rows_per_block)
    return (f"streamed {rows}×{cols} (over --max-bytes) in blocks of {rows_per_block:,} rows "
            f"to {written}")
