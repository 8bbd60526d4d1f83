"""PNG figures for reports (matplotlib, an optional extra, imported only when a figure is made).

Functions return PNG bytes and write nothing; the command line decides where files go. They
draw on a bare ``matplotlib.figure.Figure`` with the Agg canvas, so no global pyplot state or
backend setting is touched.
"""

from __future__ import annotations

import io
import textwrap
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["figures_available", "overlap_maps_png", "overlap_png", "sparsity_png"]

MAX_MARKERS = 1_000_000  # stored entries drawn one by one; above, a grid of occupied cells
MAX_BARS = 2_000  # 1-D overlap counts drawn as bars; above, as a step line
_DENSITY_BINS = 1_000


def figures_available() -> bool:
    """Whether matplotlib can be imported (figures are skipped otherwise)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _integer_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def sparsity_png(matrix: sp.sparray, title: str, *, xlabel: str, ylabel: str) -> bytes:
    """Sparsity pattern of a matrix (stored entries as dots, values as colour when small).

    Parameters
    ----------
    matrix : sparse array
        The matrix (or one block of it).
    title, xlabel, ylabel : str
        Labels; say what rows and columns are.

    Returns
    -------
    bytes
        A PNG image.
    """
    title = textwrap.fill(title, 70)
    coo = sp.coo_array(matrix)
    rows, cols = coo.shape
    aspect = rows / max(cols, 1)
    width = 6.4
    fig = _figure(width, min(max(width * aspect, 2.6), 9.0))
    ax = fig.add_subplot()
    values = np.real(coo.data).astype(float)
    constant = coo.nnz > 0 and bool(np.all(values == values[0]))
    if coo.nnz <= 4000 and rows * cols <= 40_000 and not constant:
        dense = np.full(coo.shape, np.nan)
        dense[coo.row, coo.col] = values
        image = ax.imshow(dense, cmap="viridis", interpolation="nearest", aspect="auto")
        fig.colorbar(image, ax=ax, label="entry value (blank: structural zero)", shrink=0.8)
    elif coo.nnz <= 4000 and rows * cols <= 40_000:
        dense = np.where(np.isin(np.arange(rows * cols), coo.row * cols + coo.col), 1.0, np.nan)
        ax.imshow(dense.reshape(rows, cols), cmap="Blues", vmin=0, vmax=1.25,
                  interpolation="nearest", aspect="auto")
        title = f"{title}\nevery stored entry = {values[0]:g}"
    elif coo.nnz <= MAX_MARKERS:
        size = max(0.05, min(4.0, 3000.0 / max(rows, cols)))
        ax.plot(coo.col, coo.row, linestyle="none", marker="s", markersize=size,
                color="#1f4e79")
        ax.set_xlim(-0.5, cols - 0.5)
        ax.set_ylim(rows - 0.5, -0.5)
    else:  # too many entries to draw one by one: which cells of a grid hold any
        bins_r, bins_c = min(rows, _DENSITY_BINS), min(cols, _DENSITY_BINS)
        cell = (coo.row.astype(np.int64) * bins_r // rows) * bins_c + (
            coo.col.astype(np.int64) * bins_c // cols)
        occupied = np.bincount(cell, minlength=bins_r * bins_c).reshape(bins_r, bins_c) > 0
        ax.imshow(np.where(occupied, 1.0, np.nan), cmap="Blues", vmin=0, vmax=1.25,
                  interpolation="nearest", aspect="auto", extent=(-0.5, cols - 0.5,
                                                                  rows - 0.5, -0.5))
        title = f"{title}\n(shaded: grid cells holding a stored entry)"
    _integer_ticks(ax)
    ax.set_title(f"{title}\n{rows}×{cols}, {coo.nnz:,} stored entries", fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _png(fig)


def overlap_png(counts: np.ndarray, title: str, *, pixels: str = "output") -> bytes:
    """Heat map (2-D; the middle slice of 3-D) or bar chart (1-D) of overlap counts.

    ``pixels`` names what the grid indexes (``"output"`` for a transposed layer's overlap,
    ``"input"`` for a convolution's reads per input pixel).

    Returns
    -------
    bytes
        A PNG image with labelled axes and, for heat maps, a colour bar.
    """
    counts = np.asarray(counts)
    note = ""
    if counts.ndim >= 3:
        middle = counts.shape[0] // 2
        note = f" (slice {middle} of {counts.shape[0]} along the first axis)"
        counts = counts[middle]
        while counts.ndim > 2:
            counts = counts[counts.shape[0] // 2]
    if counts.ndim == 1:
        fig = _figure(6.4, 3.2)
        ax = fig.add_subplot()
        if counts.size <= MAX_BARS:
            ax.bar(np.arange(counts.size), counts, color="#1f4e79")
        else:  # one bar per pixel would take minutes to draw: the same values as steps
            ax.step(np.arange(counts.size), counts, where="mid", color="#1f4e79",
                    linewidth=0.8)
            ax.set_xlim(-0.5, counts.size - 0.5)
        ax.set_xlabel(f"{pixels} position")
        ax.set_ylabel("terms landing there" if pixels == "output" else "reads")
    else:
        h, w = counts.shape
        fig = _figure(6.4, min(max(6.4 * h / max(w, 1), 3.0), 8.0))
        ax = fig.add_subplot()
        image = ax.imshow(counts, cmap="magma", interpolation="nearest",
                          vmin=0, vmax=max(int(counts.max()), 1))
        from matplotlib.ticker import MaxNLocator

        label = "terms landing on the pixel" if pixels == "output" else "reads of the pixel"
        bar = fig.colorbar(image, ax=ax, label=label, shrink=0.85)
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
        if h * w <= 400:
            top = counts.max()
            for (i, j), value in np.ndenumerate(counts):
                ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                        color="black" if value > 0.6 * top else "white")
        ax.set_xlabel(f"{pixels} column")
        ax.set_ylabel(f"{pixels} row")
    _integer_ticks(ax)
    ax.set_title(textwrap.fill(title + note, 70), fontsize=10)
    return _png(fig)


def overlap_maps_png(maps: list[np.ndarray], titles: list[str], *, label: str = "paths") -> bytes:
    """Several overlap maps side by side (2-D; the middle slice of 3-D; 1-D as one row).

    A map of an output without spatial axes (0-D) is drawn as one cell.

    Parameters
    ----------
    maps : list of ndarray
        Spatial maps (one channel each).
    titles : list of str
        One title per map.
    label : str
        What the colour encodes.

    Returns
    -------
    bytes
        A PNG image, one panel per map, each with its own colour bar.
    """
    from matplotlib.ticker import MaxNLocator

    panels = []
    for counts in maps:
        counts = np.asarray(counts, dtype=float)
        while counts.ndim > 2:
            counts = counts[counts.shape[0] // 2]
        panels.append(np.atleast_2d(counts))  # 1-D as one row; a flat output as one cell
    columns = len(panels)
    fig = _figure(3.3 * columns, 3.7)
    for index, (counts, title) in enumerate(zip(panels, titles, strict=True)):
        ax = fig.add_subplot(1, columns, index + 1)
        image = ax.imshow(counts, cmap="magma", interpolation="nearest",
                          vmin=min(0.0, float(counts.min())), vmax=max(float(counts.max()), 1e-12))
        bar = fig.colorbar(image, ax=ax, shrink=0.75, label=label if index == columns - 1
                           else None)
        bar.locator = MaxNLocator(nbins=5)
        bar.update_ticks()
        _integer_ticks(ax)
        ax.set_title(textwrap.fill(title, 28), fontsize=9)
        ax.set_xlabel("output column")
        if index == 0:
            ax.set_ylabel("output row")
    return _png(fig)
