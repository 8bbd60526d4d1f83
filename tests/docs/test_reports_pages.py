"""Every built-in report (reports/*.md) has a page on the site that includes it, figures too."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPORTS = sorted(path.stem for path in (ROOT / "reports").glob("*.md") if path.stem != "README")
PAGES = ROOT / "docs" / "reports"


def test_the_reports_are_found() -> None:
    assert "seed" in REPORTS


def test_the_index_includes_the_reports_readme() -> None:
    assert "{include} ../../reports/README.md" in (PAGES / "index.md").read_text()


@pytest.mark.parametrize("report", REPORTS)
def test_every_report_has_a_page(report: str) -> None:
    page = PAGES / f"{report}.md"
    assert page.exists(), f"reports/{report}.md has no page docs/reports/{report}.md"
    text = page.read_text()
    assert f"{{include}} ../../reports/{report}.md" in text and ":relative-images:" in text


def test_every_page_is_a_report() -> None:
    pages = sorted(path.stem for path in PAGES.glob("*.md") if path.stem != "index")
    assert pages == REPORTS
