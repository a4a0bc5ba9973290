"""The HTML report is one self-contained file that a real browser (headless Chromium) renders
offline, with every chart drawn; Swedish by default, English with --lang en."""

from __future__ import annotations

import asyncio
import html
import json
import re
import subprocess
from pathlib import Path
from typing import Any

from halsosamtal.cli.app import app
from tests.browser import HEADLESS_FLAGS
from tests.reports.conftest import run_cli
from tests.reports.region import YEAR, Region

# Written into a copy of the report only (the report itself has no script): after layout, the
# size of each chart and of its bars, and the colour the stylesheet gave them.
MEASURE = """
<script>
const charts = [...document.querySelectorAll('svg.chart-svg')].map(svg => {
  const box = svg.getBoundingClientRect();
  const bars = [...svg.querySelectorAll('rect.bar')].map(b => b.getBoundingClientRect());
  const first = svg.querySelector('rect.bar.main');
  return {
    id: svg.closest('figure').id, width: box.width, height: box.height, bars: bars.length,
    drawn: bars.filter(b => b.width > 0 && b.height > 0).length,
    fill: first ? getComputedStyle(first).fill : null,
    labels: [...svg.querySelectorAll('text.label')].map(t => t.textContent),
    labelWidth: Math.max(0, ...[...svg.querySelectorAll('text.label')].map(t => t.getBBox().width)),
  };
});
document.body.setAttribute('data-measured', JSON.stringify(charts));
</script>
"""


def _render(chromium: Path, page: Path, profile: Path) -> str:
    command = [
        str(chromium),
        *HEADLESS_FLAGS,
        "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing can be fetched: the file must not need it
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


async def test_the_summary_opens_offline_in_chromium_with_every_chart_drawn(
    region: Region, cli_env: None, chromium: Path, tmp_path: Path
) -> None:
    report = tmp_path / "summary.html"
    code, out = await run_cli(app, "report", "summary", "--year", str(YEAR), "--out", str(report))
    assert code == 0, out
    source = report.read_text(encoding="utf-8")

    # Self-contained: no script, no stylesheet or image to load, no link to follow.
    for needle in ("<script", "<link", "src=", "href=", "url(", "@import", "http:", "https:"):
        assert needle not in source.lower(), needle
    # Unit names are data: escaped, never markup.
    assert "Vårdcentralen &lt;1&gt; &amp; co" in source
    assert "<1>" not in source

    page = tmp_path / "measured.html"
    page.write_text(source.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = await asyncio.to_thread(_render, chromium, page, tmp_path / "profile")
    found = re.search(r'data-measured="([^"]*)"', dom)
    assert found, dom[:2000]
    charts: dict[str, dict[str, Any]] = {c["id"]: c for c in json.loads(html.unescape(found.group(1)))}

    for chart_id in ("chart-funnel", "chart-unit", "chart-sex", "chart-area", "chart-reimbursement"):
        chart = charts[chart_id]
        assert (chart["width"] > 300, chart["height"] > 50) == (True, True), chart
        assert chart["bars"] >= 2, chart
        assert chart["drawn"] == chart["bars"], chart
        assert chart["fill"] == "rgb(47, 111, 159)", "the inline stylesheet applies"
        assert chart["labelWidth"] > 0, "the labels are laid out as text"
    # Swedish by default; municipalities by name (SCB's list), the unknown last.
    assert '<html lang="sv">' in source
    assert charts["chart-sex"]["labels"] == ["Kvinnor", "Män"]
    assert charts["chart-funnel"]["labels"][:2] == ["Målgrupp", "Inbjudna"]
    assert charts["chart-area"]["labels"] == ["Halmstad", "Laholm", "Falkenberg", "Okänt"]
    assert charts["chart-age"]["labels"] == ["40 år", "50 år", "60 år"]
    assert any("Vårdcentralen <1> & co" in label for label in charts["chart-unit"]["labels"])
    participating = [u for u in region.units if u["participating"]]
    assert charts["chart-reimbursement"]["bars"] == len(participating)


async def test_the_summary_in_english(region: Region, cli_env: None, chromium: Path, tmp_path: Path) -> None:
    report = tmp_path / "summary-en.html"
    code, out = await run_cli(
        app, "report", "summary", "--year", str(YEAR), "--lang", "en", "--out", str(report)
    )
    assert code == 0, out
    source = report.read_text(encoding="utf-8")
    assert '<html lang="en">' in source
    page = tmp_path / "measured-en.html"
    page.write_text(source.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = await asyncio.to_thread(_render, chromium, page, tmp_path / "profile-en")
    found = re.search(r'data-measured="([^"]*)"', dom)
    assert found, dom[:2000]
    charts: dict[str, dict[str, Any]] = {c["id"]: c for c in json.loads(html.unescape(found.group(1)))}
    assert charts["chart-sex"]["labels"] == ["Women", "Men"]
    assert charts["chart-funnel"]["labels"][:2] == ["Cohort", "Invited"]
    assert charts["chart-area"]["labels"] == ["Halmstad", "Laholm", "Falkenberg", "Unknown"]
    assert all(chart["drawn"] == chart["bars"] for chart in charts.values()), charts


async def test_each_report_alone_renders_too(
    region: Region, cli_env: None, chromium: Path, tmp_path: Path
) -> None:
    for name, charts in (
        ("outcomes", ("chart-habits", "chart-score2")),
        ("reimbursement", ("chart-reimbursement",)),
    ):
        report = tmp_path / f"{name}.html"
        code, out = await run_cli(
            app, "report", name, "--year", str(YEAR), "--format", "html", "--lang", "en", "--out", str(report)
        )
        assert code == 0, out
        page = tmp_path / f"{name}-measured.html"
        page.write_text(
            report.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8"
        )
        dom = await asyncio.to_thread(_render, chromium, page, tmp_path / f"profile-{name}")
        found = re.search(r'data-measured="([^"]*)"', dom)
        assert found
        measured = {c["id"]: c for c in json.loads(html.unescape(found.group(1)))}
        for chart_id in charts:
            assert measured[chart_id]["width"] > 300, measured[chart_id]
            assert measured[chart_id]["drawn"] >= 1, measured[chart_id]
