"""The report document: Markdown plus the figures it links to (PNG bytes by file name)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Report"]


@dataclass(frozen=True)
class Report:
    """A generated report: Markdown plus the figures it links to (PNG bytes by file name)."""

    name: str
    title: str
    summary: str
    markdown: str
    figures: dict[str, bytes] = field(default_factory=dict, repr=False)
