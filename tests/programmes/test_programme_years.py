from __future__ import annotations

import httpx

RULES = {
    "target_ages": [60, 40, 50],
    "talk_rate": "1000",
    "start_grant": "0",
    "reminder_days": [28, 56],
    "valid_until": "2028-03-31",
}


async def test_put_creates_then_replaces_and_keeps_every_revision(
    api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    created = await api.put("/v1/programme-years/2027", headers=operator, json=RULES)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/programme-years/2027"
    body = created.json()
    assert body["target_ages"] == [40, 50, 60]
    assert body["talk_rate"] == 1000.0
    assert (body["expected_uptake"], body["booking_lead_days"]) == (0.5, 7)

    same = await api.put("/v1/programme-years/2027", headers=operator, json=RULES)
    assert same.status_code == 200
    assert same.json()["updated_at"] == body["updated_at"]

    changed = await api.put("/v1/programme-years/2027", headers=operator, json={**RULES, "talk_rate": "900"})
    assert changed.json()["talk_rate"] == 900.0
    revisions = (await api.get("/v1/programme-years/2027/revisions", headers=operator)).json()
    assert [r["rules"]["talk_rate"] for r in revisions] == [1000.0, 900.0]
    assert all(r["changed_by"].startswith("operator-") for r in revisions)


async def test_changing_next_year_never_alters_this_year(
    api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    await api.put("/v1/programme-years/2027", headers=operator, json=RULES)
    before = (await api.get("/v1/programme-years/2027", headers=operator)).json()
    next_year = {**RULES, "target_ages": [40, 50, 60, 70], "talk_rate": "1100", "valid_until": "2029-03-31"}
    assert (await api.put("/v1/programme-years/2028", headers=operator, json=next_year)).status_code == 201
    await api.put("/v1/programme-years/2028", headers=operator, json={**next_year, "talk_rate": "1200"})
    assert (await api.get("/v1/programme-years/2027", headers=operator)).json() == before
    years = (await api.get("/v1/programme-years", headers=operator)).json()
    assert [(y["year"], y["talk_rate"]) for y in years] == [(2027, 1000.0), (2028, 1200.0)]


async def test_bad_rules_name_the_field(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    cases = {
        "/target_ages": {**RULES, "target_ages": [40, 40]},
        "/reminder_days": {**RULES, "reminder_days": [56, 28]},
        "/expected_uptake": {**RULES, "expected_uptake": "1.5"},
        "/talk_rate": {**RULES, "talk_rate": "-1"},
        "/colour": {**RULES, "colour": "blue"},
    }
    for pointer, body in cases.items():
        response = await api.put("/v1/programme-years/2027", headers=operator, json=body)
        assert response.status_code == 422, pointer
        assert response.json()["errors"][0]["pointer"] == pointer
    early = await api.put(
        "/v1/programme-years/2027", headers=operator, json={**RULES, "valid_until": "2026-12-31"}
    )
    assert early.status_code == 422
    assert early.json()["field"] == "valid_until"
    assert (await api.get("/v1/programme-years/2031", headers=operator)).status_code == 404
    assert (await api.put("/v1/programme-years/1999", headers=operator, json=RULES)).status_code == 422
