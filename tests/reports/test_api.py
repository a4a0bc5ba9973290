"""The reports over HTTP: JSON and CSV, operators see everything, an EHR client its own units."""

from __future__ import annotations

import csv
import io

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.reports.participation import participation
from tests.conftest import KeyMaker
from tests.reports import expected
from tests.reports.region import YEAR, Region

SM = async_sessionmaker[AsyncSession]


def _rows(body: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body)))


async def test_an_operator_gets_the_funnel_as_json_and_as_csv(
    api: httpx.AsyncClient, operator: dict[str, str], sessionmaker: SM, region: Region
) -> None:
    got = await api.get(
        "/v1/reports/participation", params={"year": YEAR, "group_by": "sex"}, headers=operator
    )
    assert got.status_code == 200, got.text
    async with sessionmaker() as s:
        direct = await participation(s, YEAR, group_by=["sex"], threshold=5)
    assert got.json() == direct.model_dump(mode="json")
    assert got.json()["small_cell_threshold"] == 5

    for request in (
        {"params": {"year": YEAR, "group_by": "sex", "format": "csv"}},
        {"params": {"year": YEAR, "group_by": "sex"}, "headers": {"Accept": "text/csv"}},
    ):
        headers = {**operator, **request.get("headers", {})}
        response = await api.get("/v1/reports/participation", params=request["params"], headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert (
            response.headers["content-disposition"] == f'attachment; filename="participation-{YEAR}-sex.csv"'
        )
        rows = _rows(response.text)
        assert [(r["breakdown"], r["key"]) for r in rows] == [("total", ""), ("sex", "F"), ("sex", "M")]
        want = expected.funnel(region)
        shown = {"": direct.total.rates.participation.shown}
        shown.update({g.key or "": g.rates.participation.shown for g in direct.groups["sex"]})
        for row in rows:
            truth = want["total" if row["breakdown"] == "total" else "sex"][row["key"] or None]
            assert {n: int(row[n]) for n in expected.FUNNEL} == truth
            assert row["rate_participation"] == shown[row["key"]]


async def test_an_ehr_client_sees_its_own_units_only(
    api: httpx.AsyncClient, make_key: KeyMaker, region: Region
) -> None:
    mine, other = region.units[0], region.units[1]
    ehr = await make_key("ehr", units=[mine["hsa_id"]])

    got = await api.get("/v1/reports/participation", params={"year": YEAR}, headers=ehr)
    assert got.status_code == 200
    body = got.json()
    assert body["care_units"] == [mine["hsa_id"]]
    assert [g["key"] for g in body["groups"]["unit"]] == [mine["hsa_id"]]
    assert (
        body["total"]["counts"]["cohort"]["value"]
        == expected.funnel(region, {mine["id"]})["total"][None]["cohort"]
    )

    by_age = await api.get("/v1/reports/outcomes", params={"year": YEAR, "group_by": "unit"}, headers=ehr)
    assert [g["key"] for g in by_age.json()["groups"]["unit"]] == [mine["hsa_id"]]

    statement = await api.get("/v1/reports/reimbursement", params={"year": YEAR}, headers=ehr)
    assert statement.status_code == 200
    assert {ln["care_unit"] for ln in statement.json()["lines"]} == {mine["hsa_id"]}

    for path in ("participation", "outcomes", "reimbursement"):
        refused = await api.get(
            f"/v1/reports/{path}", params={"year": YEAR, "care_unit": other["hsa_id"]}, headers=ehr
        )
        assert refused.status_code == 403, path
        assert refused.json()["code"] == "forbidden"
    unknown = await api.get(
        "/v1/reports/participation",
        params={"year": YEAR, "care_unit": "SE2321000131-E999999999999"},
        headers=ehr,
    )
    assert unknown.status_code == 404


async def test_the_statement_downloads_as_csv_with_lines_and_totals(
    api: httpx.AsyncClient, operator: dict[str, str], region: Region
) -> None:
    response = await api.get(
        "/v1/reports/reimbursement", params={"year": YEAR, "format": "csv"}, headers=operator
    )
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f'attachment; filename="reimbursement-{YEAR}.csv"'
    rows = _rows(response.text)
    lines = [r for r in rows if r["kind"] != "total"]
    totals = [r for r in rows if r["kind"] == "total"]
    assert {r["kind"] for r in lines} >= {"start_grant", "talk"}
    grand = next(r for r in totals if r["month"] == "" and r["care_unit"] == "")
    assert f"{sum(float(r['amount']) for r in lines):.2f}" == grand["amount"]
    assert int(grand["quantity"]) == len(lines)


async def test_outcomes_by_age_over_http(
    api: httpx.AsyncClient, operator: dict[str, str], region: Region
) -> None:
    got = await api.get("/v1/reports/outcomes", params={"year": YEAR, "group_by": "age"}, headers=operator)
    assert got.status_code == 200
    assert [g["key"] for g in got.json()["groups"]["age"]] == ["40", "50", "60"]
    assert got.json()["total"]["completed"]["value"] == len(expected.outcome_rows(region))
    csv_rows = _rows(
        (await api.get("/v1/reports/outcomes", params={"year": YEAR, "format": "csv"}, headers=operator)).text
    )
    assert csv_rows[0]["breakdown"] == "total"
    assert "tobacco_unhealthy_share" in csv_rows[0]


async def test_closing_a_month_over_http(
    api: httpx.AsyncClient, operator: dict[str, str], make_key: KeyMaker, region: Region
) -> None:
    early = await api.post(
        "/v1/reports/reimbursement/close", json={"year": YEAR, "month": 2}, headers=operator
    )
    assert (early.status_code, early.json()["code"]) == (409, "earlier-month-open")
    closed = await api.post(
        "/v1/reports/reimbursement/close", json={"year": YEAR, "month": 1}, headers=operator
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["month"] == f"{YEAR}-01"
    assert len(closed.json()["digest"]) == 64
    twice = await api.post(
        "/v1/reports/reimbursement/close", json={"year": YEAR, "month": 1}, headers=operator
    )
    assert (twice.status_code, twice.json()["code"]) == (409, "month-closed")
    # A client retrying with its Idempotency-Key gets the first answer again.
    keyed = {**operator, "Idempotency-Key": "close-2025-02"}
    first = await api.post("/v1/reports/reimbursement/close", json={"year": YEAR, "month": 2}, headers=keyed)
    again = await api.post("/v1/reports/reimbursement/close", json={"year": YEAR, "month": 2}, headers=keyed)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    future = await api.post(
        "/v1/reports/reimbursement/close", json={"year": 2099, "month": 1}, headers=operator
    )
    assert (future.status_code, future.json()["code"]) == (409, "month-not-ended")
    bad = await api.post(
        "/v1/reports/reimbursement/close", json={"year": YEAR, "month": 13}, headers=operator
    )
    assert bad.status_code == 422
    ehr = await make_key("ehr", units=[region.units[0]["hsa_id"]])
    refused = await api.post("/v1/reports/reimbursement/close", json={"year": YEAR, "month": 3}, headers=ehr)
    assert refused.status_code == 403

    statement = await api.get(
        "/v1/reports/reimbursement", params={"year": YEAR, "month": 1}, headers=operator
    )
    month = statement.json()["months"][0]
    assert (month["closed_by"], month["unchanged_since_closed"]) == (closed.json()["closed_by"], True)


async def test_importing_the_cni_over_http(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    response = await api.post(
        "/v1/reports/cni",
        content="deso,cni\n1380C1010,1.2\n1380C1020,x\n",
        headers={**operator, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert (response.json()["inserted"], response.json()["rejected"]) == (1, 1)
    assert response.json()["rejects"] == [
        {"line": 3, "column": "cni", "reason": "cni must be a number, e.g. 1.25"}
    ]
    wrong = await api.post(
        "/v1/reports/cni", content="{}", headers={**operator, "Content-Type": "application/json"}
    )
    assert wrong.status_code == 422
