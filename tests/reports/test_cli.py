"""``halsosamtal report ...`` and ``halsosamtal import cni``."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.cli.app import app
from halsosamtal.reports.outcomes import outcomes
from halsosamtal.reports.participation import participation
from tests.reports import expected
from tests.reports.conftest import run_cli
from tests.reports.region import YEAR, Region

SM = async_sessionmaker[AsyncSession]


async def test_participation_in_every_format(
    sessionmaker: SM, region: Region, cli_env: None, tmp_path: Path
) -> None:
    code, out = await run_cli(
        app,
        "report",
        "participation",
        "--year",
        str(YEAR),
        "--format",
        "json",
        "--group-by",
        "unit",
        "--group-by",
        "sex",
    )
    assert code == 0, out
    async with sessionmaker() as s:
        direct = await participation(s, YEAR, group_by=["unit", "sex"], threshold=5)
    assert json.loads(out) == direct.model_dump(mode="json")

    code, out = await run_cli(app, "report", "participation", "--year", str(YEAR), "--format", "csv")
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["breakdown"] == "total"
    assert int(rows[0]["cohort"]) == len(region.invitations)

    code, out = await run_cli(app, "report", "participation", "--year", str(YEAR))
    assert code == 0, out
    assert "Participation 2025 by unit" in out
    assert "Total" in out

    target = tmp_path / "p.html"
    code, out = await run_cli(
        app, "report", "participation", "--year", str(YEAR), "--format", "html", "--out", str(target)
    )
    assert code == 0, out
    assert 'id="chart-funnel"' in target.read_text(encoding="utf-8")


async def test_one_unit_and_the_wrong_options(region: Region, cli_env: None) -> None:
    unit = region.units[2]
    code, out = await run_cli(
        app, "report", "participation", "--year", str(YEAR), "--unit", unit["hsa_id"], "--format", "json"
    )
    assert code == 0, out
    assert (
        json.loads(out)["total"]["counts"]["cohort"]["value"]
        == expected.funnel(region, {unit["id"]})["total"][None]["cohort"]
    )
    code, out = await run_cli(app, "report", "participation", "--year", str(YEAR), "--month", "3")
    assert code == 1
    assert "--month is for the reimbursement statement" in out
    code, out = await run_cli(app, "report", "outcomes", "--year", str(YEAR), "--group-by", "deso")
    assert code == 2
    assert "choose from unit, age, sex" in out
    code, out = await run_cli(
        app, "report", "participation", "--year", str(YEAR), "--unit", "SE2321000131-E999999999999"
    )
    assert code == 1
    assert "no care unit" in out


async def test_outcomes_and_the_statement(sessionmaker: SM, region: Region, cli_env: None) -> None:
    code, out = await run_cli(
        app, "report", "outcomes", "--year", str(YEAR), "--format", "json", "--group-by", "age"
    )
    assert code == 0, out
    async with sessionmaker() as s:
        direct = await outcomes(s, YEAR, group_by=["age"], threshold=5)
    assert json.loads(out) == direct.model_dump(mode="json")
    code, out = await run_cli(app, "report", "outcomes", "--year", str(YEAR))
    assert code == 0
    assert "tobacco unhealthy share" in out

    code, out = await run_cli(
        app, "report", "reimbursement", "--year", str(YEAR), "--month", "1", "--format", "csv"
    )
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out)))
    want = {ln["id"]: ln for ln in expected.statement_lines(region, []) if ln["month"] == dt.date(YEAR, 1, 1)}
    assert {r["id"]: r["amount"] for r in rows if r["kind"] != "total"} == {
        i: f"{ln['amount']:.2f}" for i, ln in want.items()
    }

    code, out = await run_cli(app, "report", "close", "--year", str(YEAR), "--month", "1")
    assert code == 0, out
    assert out.startswith(f"closed {YEAR}-01: {len(want)} lines")
    code, out = await run_cli(app, "report", "close", "--year", str(YEAR), "--month", "1")
    assert code == 1
    assert "was closed at" in out

    code, out = await run_cli(app, "report", "reimbursement", "--year", str(YEAR), "--month", "1", "--lines")
    assert code == 0, out
    assert "yes" in out
    assert "start_grant" in out


async def test_import_cni(sessionmaker: SM, cli_env: None, tmp_path: Path) -> None:
    good = tmp_path / "cni.csv"
    good.write_text("deso,cni\n1380C1010,1.1\n1380C1020,0.9\n", encoding="utf-8")
    code, out = await run_cli(app, "import", "cni", str(good))
    assert code == 0, out
    assert "rows 2: inserted 2" in out

    bad = tmp_path / "bad.csv"
    bad.write_text("deso,cni\n1380C1010,1.1\nnope,1\n", encoding="utf-8")
    code, out = await run_cli(app, "import", "cni", str(bad))
    assert code == 2, out
    assert (tmp_path / "bad.rejects.csv").read_text(
        encoding="utf-8"
    ) == "line,column,reason\n3,deso,not a DeSO code like 1380C1010\n"
