"""CSV for Swedish Excel (``--excel``, ``excel=true``): semicolons, a decimal comma, CRLF and a
UTF-8 byte order mark, the same cells otherwise; plain CSV stays the default."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx

from halsosamtal.cli.app import app
from tests.reports.conftest import run_cli
from tests.reports.region import YEAR, Region

BOM = "\ufeff".encode()


def _excel_rows(raw: bytes) -> list[list[str]]:
    """Read as Excel does with a Swedish locale: the BOM says UTF-8, cells end at semicolons."""
    assert raw.startswith(BOM), raw[:20]
    text = raw[len(BOM) :].decode("utf-8")
    assert "\r\n" in text
    assert "\n" not in text.replace("\r\n", ""), "every line ends in CRLF"
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))


def _plain_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _same_but_decimal_comma(excel: list[list[str]], plain: list[list[str]]) -> int:
    """Each Excel cell is the plain cell, with a decimal comma in a decimal number; returns how
    many cells had one."""
    assert len(excel) == len(plain)
    commas = 0
    for excel_row, plain_row in zip(excel, plain, strict=True):
        assert len(excel_row) == len(plain_row)
        for e, p in zip(excel_row, plain_row, strict=True):
            if e != p:
                assert e == p.replace(".", ","), (e, p)
                assert "." not in e
                commas += 1
    return commas


async def test_the_participation_csv_for_excel(region: Region, cli_env: None, tmp_path: Path) -> None:
    args = ("report", "participation", "--year", str(YEAR), "--group-by", "municipality", "--format", "csv")
    code, plain = await run_cli(app, *args)
    assert code == 0, plain
    assert not plain.startswith("\ufeff")
    assert ";" not in plain.splitlines()[0]
    target = tmp_path / "participation.csv"
    code, out = await run_cli(app, *args, "--excel", "--out", str(target))
    assert code == 0, out
    excel = _excel_rows(target.read_bytes())
    assert _same_but_decimal_comma(excel, _plain_rows(plain)) > 10  # the rates
    header = excel[0]
    total = dict(zip(header, excel[1], strict=True))
    assert total["breakdown"] == "total"
    assert "," in total["rate_invited"]
    assert any(row[2] == "Halmstad" for row in excel[1:]), "names, å ä ö intact"


async def test_the_statement_and_outcomes_for_excel(region: Region, cli_env: None, tmp_path: Path) -> None:
    code, plain = await run_cli(app, "report", "reimbursement", "--year", str(YEAR), "--format", "csv")
    assert code == 0, plain
    target = tmp_path / "statement.csv"
    code, out = await run_cli(
        app,
        "report",
        "reimbursement",
        "--year",
        str(YEAR),
        "--format",
        "csv",
        "--excel",
        "--out",
        str(target),
    )
    assert code == 0, out
    excel = _excel_rows(target.read_bytes())
    plain_rows = _plain_rows(plain)
    header = excel[0]
    assert header == plain_rows[0]
    at = header.index("event_at")
    amount = header.index("amount")
    for e, p in zip(excel[1:], plain_rows[1:], strict=True):
        assert e[amount] == p[amount].replace(".", ",")
        if p[at]:
            # 2025-03-04T09:15:00+01:00 -> 2025-03-04 09:15:00: Swedish time, as Excel reads it
            assert e[at] == p[at][:19].replace("T", " "), (e[at], p[at])
    code, out = await run_cli(app, "report", "outcomes", "--year", str(YEAR), "--format", "csv", "--excel")
    assert code == 0, out
    assert out.startswith("\ufeffbreakdown;key;label;completed;")


async def test_excel_is_for_csv(region: Region, cli_env: None) -> None:
    code, out = await run_cli(app, "report", "participation", "--year", str(YEAR), "--excel")
    assert code == 1
    assert "--excel is for --format csv" in out


async def test_the_api_answers_excel_true_with_the_csv_for_excel(
    api: httpx.AsyncClient, operator: dict[str, str], region: Region
) -> None:
    for path, params in (
        ("/v1/reports/participation", {"year": YEAR, "group_by": "sex"}),
        ("/v1/reports/outcomes", {"year": YEAR}),
        ("/v1/reports/reimbursement", {"year": YEAR}),
    ):
        plain = await api.get(path, params={**params, "format": "csv"}, headers=operator)
        assert plain.status_code == 200, plain.text
        assert not plain.content.startswith(BOM)
        for extra in ({"excel": "true"}, {"excel": "true", "format": "csv"}):
            got = await api.get(path, params={**params, **extra}, headers=operator)
            assert got.status_code == 200, got.text
            assert got.headers["content-type"].startswith("text/csv")
            assert got.headers["content-disposition"] == plain.headers["content-disposition"]
            rows = _excel_rows(got.content)
            if path.endswith("reimbursement"):
                assert len(rows) == len(_plain_rows(plain.text))
            else:
                assert _same_but_decimal_comma(rows, _plain_rows(plain.text)) > 0
        refused = await api.get(path, params={**params, "excel": "true", "format": "json"}, headers=operator)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
