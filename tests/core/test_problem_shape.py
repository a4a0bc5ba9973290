"""Every 422 has one shape: ``errors`` with a location and a JSON pointer for each problem,
whether the schema refused the request or a business rule did."""

from __future__ import annotations

import httpx


async def test_a_bad_personnummer_is_a_422_with_errors_like_an_unknown_field(
    api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    rule = await api.post("/v1/residents/lookup", headers=operator, json={"personnummer": "19870504-0017"})
    schema = await api.post("/v1/residents/lookup", headers=operator, json={"personnummer": "x" * 12, "y": 1})
    for response in (rule, schema):
        assert response.status_code == 422, response.text
        body = response.json()
        assert {"type", "title", "status", "detail", "code", "errors", "request_id"} <= set(body)
        for error in body["errors"]:
            assert set(error) == {"location", "pointer", "message", "type"}
    (error,) = rule.json()["errors"]
    assert (error["location"], error["pointer"]) == ("body", "/personnummer")


async def test_a_query_parameter_refused_by_a_rule_points_at_the_query(
    api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    response = await api.get("/v1/invitations", headers=operator, params={"cursor": "not-a-cursor"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == "query"
    assert response.json()["errors"][0]["pointer"] == "/cursor"


async def test_an_unknown_query_parameter_is_refused_not_ignored(
    api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    """`?unit=` on /invitations (whose filter is `care_unit`) returned every unit's residents."""
    unit = "SE2321000131-E000000000001"
    response = await api.get("/v1/invitations", headers=operator, params={"unit": unit})
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert (error["location"], error["pointer"], error["type"]) == ("query", "/unit", "extra_forbidden")
    assert "care_unit" in error["message"]
    known = await api.get("/v1/invitations", headers=operator, params={"care_unit": unit})
    assert known.status_code == 200
