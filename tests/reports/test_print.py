"""The HTML report prints with no column cut off: wide tables wrap within the page.

Two checks, each of what the other cannot see:

1. Layout. Chromium's command line cannot switch a page to print media, so a copy of the
   report has its ``@media print`` rules made to apply on screen, and Chromium lays it out at
   the width of the printable area of an A4 page (landscape, as the report's ``@page`` asks,
   and portrait, should a reader choose it). A script then measures, for every table, that it
   ends within the page and that no cell's content is wider than the cell. The same page with
   the screen rules is the control: there the wide tables do run past the page.
2. The real print. Chromium prints the report to PDF (``--print-to-pdf``, the print path a
   reader's "Save as PDF" takes), and Poppler reads it back: the pages are A4 landscape, every
   word lies within the page, and each table's header row is in the text whole, every column's
   header in order.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from halsosamtal.cli.app import app
from tests.browser import HEADLESS_FLAGS, find_poppler
from tests.reports.conftest import run_cli
from tests.reports.region import YEAR, Region

# The printable width of an A4 page in CSS pixels (96 per inch) inside the report's @page
# margins (10 mm left and right): landscape 297 mm, portrait 210 mm.
MM = 96 / 25.4
LANDSCAPE = round((297 - 20) * MM)
PORTRAIT = round((210 - 20) * MM)

MEASURE = """
<script>
const page = document.documentElement.clientWidth;
const tables = [...document.querySelectorAll('table')].map(table => {
  const cells = [...table.querySelectorAll('th, td')];
  const cut = cells.filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent.trim());
  return {
    kind: table.className, columns: table.rows[0].cells.length,
    right: table.getBoundingClientRect().right, cut: cut.slice(0, 5), cutCount: cut.length,
  };
});
document.body.setAttribute('data-print', JSON.stringify({
  page, pageScroll: document.documentElement.scrollWidth, tables,
}));
</script>
"""


def _chromium(chromium: Path, profile: Path, *args: str) -> str:
    command = [
        str(chromium),
        *HEADLESS_FLAGS,
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _layout(chromium: Path, page: Path, profile: Path, width: int) -> dict[str, Any]:
    dom = _chromium(
        chromium,
        profile,
        f"--window-size={width},900",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    )
    found = re.search(r'data-print="([^"]*)"', dom)
    assert found, dom[:2000]
    measured: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return measured


def _as_printed(source: str) -> str:
    """The report with its print rules applied on screen, and the measuring script."""
    assert source.count("@media print {") == 1
    return source.replace("@media print {", "@media all {").replace("</body>", MEASURE + "</body>")


class _Headers(HTMLParser):
    """The header cells of each table, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "th":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "th" and self._cell is not None:
            self.tables[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _read_pdf(pdf: Path) -> tuple[str, str, str]:
    """Poppler's page information, the words with their boxes, and the text in drawing order."""

    def run(*command: str) -> str:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603

    pdftotext = str(find_poppler("pdftotext"))
    return (
        run(str(find_poppler("pdfinfo")), str(pdf)),
        run(pdftotext, "-bbox", str(pdf), "-"),
        run(pdftotext, "-raw", str(pdf), "-"),
    )


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


async def test_the_printed_summary_cuts_off_no_column(
    region: Region, cli_env: None, chromium: Path, tmp_path: Path
) -> None:
    report = tmp_path / "summary.html"
    code, out = await run_cli(app, "report", "summary", "--year", str(YEAR), "--out", str(report))
    assert code == 0, out
    source = report.read_text(encoding="utf-8")

    # 1. Layout under the print rules, at the page's width.
    printed = tmp_path / "printed.html"
    printed.write_text(_as_printed(source), encoding="utf-8")
    for width in (LANDSCAPE, PORTRAIT):
        measured = await asyncio.to_thread(_layout, chromium, printed, tmp_path / f"profile-{width}", width)
        assert abs(measured["page"] - width) <= 20, measured["page"]
        assert measured["pageScroll"] <= measured["page"], "the page scrolls sideways"
        kinds = {t["kind"] for t in measured["tables"]}
        assert {"funnel", "outcomes", "months", "totals", "lines"} <= kinds
        for table in measured["tables"]:
            assert table["right"] <= measured["page"] + 1, (width, table)
            assert table["cutCount"] == 0, (width, table)

    # The control: with the screen rules the widest tables run past a page's width.
    screen = tmp_path / "screen.html"
    screen.write_text(source.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    measured = await asyncio.to_thread(_layout, chromium, screen, tmp_path / "profile-screen", PORTRAIT)
    past = {t["kind"] for t in measured["tables"] if t["right"] > measured["page"] + 1}
    assert {"funnel", "lines"} <= past, measured["tables"]

    # 2. The real print, read back from the PDF.
    pdf = tmp_path / "summary.pdf"
    await asyncio.to_thread(
        _chromium,
        chromium,
        tmp_path / "profile-pdf",
        "--no-pdf-header-footer",
        f"--print-to-pdf={pdf}",
        report.as_uri(),
    )
    info, boxes, raw = await asyncio.to_thread(_read_pdf, pdf)
    size = re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info)
    assert size, info
    width_pt, height_pt = float(size.group(1)), float(size.group(2))
    assert (round(width_pt), round(height_pt)) == (842, 595), "A4 landscape"

    words = re.findall(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)"', boxes)
    assert len(words) > 1000
    outside = [(x0, x1) for x0, x1 in words if float(x0) < 0 or float(x1) > width_pt]
    assert not outside, outside[:10]

    # In the PDF's own order of drawing, a header cell that wraps comes line after line, so each
    # table's header row, spaces aside, is one run of the text when no column is missing.
    text = _squeezed(raw)
    parser = _Headers()
    parser.feed(source)
    assert len(parser.tables) >= 10
    for headers in parser.tables:
        row = _squeezed("".join(headers))
        assert row in text, headers
