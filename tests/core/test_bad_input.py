"""Bad input is a 4xx that says what is wrong (issue 13, section 4), pinned case by case.

The walk over every operation is in ``test_bad_input_on_every_operation``; these are the cases
the reliability probe found, written as the behaviour a client sees.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import httpx
import pytest

from halsosamtal.core.errors import InvalidInput
from halsosamtal.core.http import ID_CURSOR, TIME_CURSOR, CursorCodec
from services.api.app import create_app
from tests.booking.support import SM, MakeUnit, centre, invited, publish
from tests.conftest import KeyMaker
from tests.messaging.factories import fetch, make_year

NUL = "before\x00after"
MAR2 = ("2027-03-02T08:00:00+01:00", "2027-03-02T08:45:00+01:00", "2027-03-02T09:30:00+01:00")


def _only_error(response: httpx.Response) -> tuple[str, str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    (error,) = response.json()["errors"]
    return error["location"], error["pointer"], error["type"]


# --- NUL ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "params", "body", "where"),
    [
        (
            "GET",
            "/v1/care-units/SE2321000131-E000000000001/results",
            {"external_id": NUL},
            None,
            ("query", "/external_id"),
        ),
        ("POST", "/v1/results", None, {"external_id": NUL}, ("body", "/external_id")),
        ("POST", "/v1/appointments/1/cancel", None, {"reason": NUL}, ("body", "/reason")),
        ("POST", "/v1/results/1/retract", None, {"reason": NUL}, ("body", "/reason")),
        (
            "POST",
            "/v1/care-units/SE2321000131-E000000000001/slots",
            None,
            {"slots": [{"starts_at": MAR2[0], "ends_at": MAR2[1], "resource": NUL}]},
            ("body", "/slots/0/resource"),
        ),
        ("GET", "/v1/care-units/SE2321000131-E%00", None, None, ("path", "/hsa_id")),
        ("POST", "/v1/residents/lookup", None, {"personnummer": NUL}, ("body", "/personnummer")),
    ],
)
async def test_a_nul_is_a_422_naming_its_field_where_it_was_a_500(
    api: httpx.AsyncClient,
    operator: dict[str, str],
    method: str,
    url: str,
    params: dict[str, str] | None,
    body: Any,
    where: tuple[str, str],
) -> None:
    response = await api.request(method, url, params=params, json=body, headers=operator)
    assert _only_error(response) == (*where, "string_unusable_text")
    assert "NUL" in response.json()["errors"][0]["message"]


async def test_half_a_surrogate_pair_is_not_text_either(
    api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    """JSON can spell a lone surrogate (\\ud800); Python keeps it, UTF-8 and Postgres cannot."""
    body = b'{"personnummer": "19870504\\ud800"}'
    response = await api.post(
        "/v1/residents/lookup", content=body, headers={**operator, "content-type": "application/json"}
    )
    assert _only_error(response) == ("body", "/personnummer", "string_unusable_text")
    pair = b'{"personnummer": "\\ud83d\\ude00"}'  # a whole pair is a character like any other
    response = await api.post(
        "/v1/residents/lookup", content=pair, headers={**operator, "content-type": "application/json"}
    )
    assert response.json()["errors"][0]["type"] != "string_unusable_text"


# --- Unparseable bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b'{"personnummer": ', b"not json", b"\xff\xfe{}", b"[" * 100_000, b'{"a": 1}}'],
    ids=["cut-short", "not-json", "not-utf8", "too-deep", "trailing"],
)
async def test_a_body_that_is_not_json_is_a_400_problem(
    api: httpx.AsyncClient, operator: dict[str, str], raw: bytes
) -> None:
    response = await api.post(
        "/v1/residents/lookup", content=raw, headers={**operator, "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "malformed-body"
    assert body["errors"] == [
        {"location": "body", "pointer": "", "message": body["detail"], "type": "json_invalid"}
    ]


async def test_json_that_breaks_the_schema_stays_a_422(
    api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    response = await api.post("/v1/residents/lookup", json={"personnummer": 12}, headers=operator)
    assert response.status_code == 422


# --- Cursors ------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


FORGED = {
    "string id": _b64(b'["x"]'),
    "float id": _b64(b"[1e20]"),
    "boolean id": _b64(b"[true]"),
    "huge id": _b64(b"[" + b"9" * 30 + b"]"),
    "zero id": _b64(b"[0]"),
    "two values": _b64(b"[1, 2]"),
    "no values": _b64(b"[]"),
    "object": _b64(b'{"id": 1}'),
    "not json": _b64(b"\x00\x01"),
    "not base64": "%%%",
    "not ascii": "åäö",
    "too long": "A" * 201,
}


@pytest.mark.parametrize("cursor", FORGED.values(), ids=FORGED.keys())
def test_the_id_codec_refuses_what_it_did_not_make(cursor: str) -> None:
    with pytest.raises(InvalidInput):
        ID_CURSOR.decode(cursor)


@pytest.mark.parametrize(
    "raw",
    [
        b'["2027-03-02T08:00:00", 1]',
        b'["9999-12-31T23:59:59-12:00", 1]',
        b'["x", 1]',
        b"[1, 1]",
        b'["2027-03-02T08:00:00+01:00"]',
    ],
)
def test_the_time_codec_refuses_naive_far_or_missing_times(raw: bytes) -> None:
    with pytest.raises(InvalidInput):
        TIME_CURSOR.decode(_b64(raw))


def test_what_a_codec_makes_it_reads_back() -> None:
    at = dt.datetime(2027, 3, 2, 8, tzinfo=dt.UTC)
    assert TIME_CURSOR.decode(TIME_CURSOR.encode((at, 42))) == (at, 42)
    assert ID_CURSOR.decode(ID_CURSOR.encode((2**63 - 1,))) == (2**63 - 1,)
    assert isinstance(ID_CURSOR, CursorCodec)
    # A cursor made before the codec (orjson of a list) reads the same.
    assert ID_CURSOR.decode(_b64(b"[17]")) == (17,)


@pytest.mark.parametrize("url", ["/v1/invitations", "/v1/messages/failed", "/v1/cohort/2027/members"])
@pytest.mark.parametrize("cursor", FORGED.values(), ids=FORGED.keys())
async def test_a_forged_cursor_on_a_list_is_a_422_on_cursor(
    api: httpx.AsyncClient, operator: dict[str, str], url: str, cursor: str
) -> None:
    """The cohort has no programme for 2027 here: the cursor is refused before that is found."""
    response = await api.get(url, params={"cursor": cursor}, headers=operator)
    location, pointer, _ = _only_error(response)
    assert (location, pointer) == ("query", "/cursor")


async def test_a_forged_cursor_in_a_slot_search_is_a_422_and_a_real_one_pages(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where = await centre(make_unit, make_key)
    portal = await make_key("portal")
    await publish(api, where, *MAR2)
    person = await invited(sessionmaker, where.unit)
    search = {"personnummer": person.pnr, "invitation_id": person.invitation_id, "limit": 2}
    first = await api.post("/v1/portal/slots/search", json=search, headers=portal)
    assert first.status_code == 200, first.text
    assert [s["starts_at"] for s in first.json()["items"]] == list(MAR2[:2])
    rest = await api.post(
        "/v1/portal/slots/search", json={**search, "cursor": first.json()["next_cursor"]}, headers=portal
    )
    assert [s["starts_at"] for s in rest.json()["items"]] == [MAR2[2]]
    for cursor in [
        *FORGED.values(),
        _b64(b'["2027-03-02T08:00:00", 1]'),
        _b64(b'["2027-03-02T08:00:00+01:00", true]'),
    ]:
        response = await api.post(
            "/v1/portal/slots/search", json={**search, "cursor": cursor}, headers=portal
        )
        assert _only_error(response)[:2] == ("body", "/cursor"), cursor


# --- Types --------------------------------------------------------------------------------------


async def test_invitation_id_true_is_not_invitation_1(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where = await centre(make_unit, make_key)
    portal = await make_key("portal")
    (slot,) = await publish(api, where, MAR2[0])
    person = await invited(sessionmaker, where.unit)
    assert person.invitation_id == 1  # so that true would have meant this very invitation
    for wrong in (True, "1", 1.0):
        response = await api.post(
            "/v1/portal/bookings",
            json={"personnummer": person.pnr, "invitation_id": wrong, "slot_id": slot},
            headers=portal,
        )
        location, pointer, kind = _only_error(response)
        assert (location, pointer, kind) == ("body", "/invitation_id", "json_type"), wrong
    assert await fetch(sessionmaker, "SELECT id FROM appointments") == []
    right = await api.post(
        "/v1/portal/bookings",
        json={"personnummer": person.pnr, "invitation_id": 1, "slot_id": slot},
        headers=portal,
    )
    assert right.status_code == 201, right.text


async def test_booleans_and_lists_of_integers_take_only_their_json_type(
    api: httpx.AsyncClient, operator: dict[str, str], make_unit: MakeUnit
) -> None:
    unit = await make_unit(participating=True)
    url = f"/v1/care-units/{unit.hsa_id}"
    for wrong in ("false", 0, "no"):
        response = await api.patch(url, json={"participating": wrong}, headers=operator)
        assert _only_error(response)[:2] == ("body", "/participating"), wrong
    assert (await api.get(url, headers=operator)).json()["participating"] is True
    rules = {"target_ages": [40, "50"], "talk_rate": "1000", "valid_until": "2028-03-31"}
    response = await api.put("/v1/programme-years/2027", json=rules, headers=operator)
    location, pointer, _ = _only_error(response)
    assert (location, pointer) == ("body", "/target_ages")
    assert "item 1" in response.json()["errors"][0]["message"]
    # Dates and amounts keep their string forms: JSON has no other.
    rules["target_ages"] = [40, 50]
    assert (await api.put("/v1/programme-years/2027", json=rules, headers=operator)).status_code == 201


# --- Programme years ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("valid_until", "status"),
    [("9999-12-31", 422), ("2029-01-01", 422), ("2101-01-01", 422), ("2028-12-31", 201), ("2027-01-02", 201)],
)
async def test_valid_until_is_bounded_to_what_the_year_can_use(
    api: httpx.AsyncClient, operator: dict[str, str], valid_until: str, status: int
) -> None:
    rules = {"target_ages": [40], "talk_rate": "1000", "valid_until": valid_until}
    response = await api.put("/v1/programme-years/2027", json=rules, headers=operator)
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["errors"][0]["pointer"] == "/valid_until"


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        ("/v1/cohort/2027/counts", {"as_of": "9999-12-31"}, "/as_of"),
        ("/v1/batches/plan", {"year": "2027", "as_of": "0001-01-01"}, "/as_of"),
        ("/v1/invitations", {"limit": "9" * 30}, "/limit"),
        ("/v1/invitations", {"year": "1e20"}, "/year"),
    ],
)
async def test_far_days_and_huge_numbers_in_a_query_are_a_422(
    api: httpx.AsyncClient, operator: dict[str, str], url: str, params: dict[str, str], field: str
) -> None:
    response = await api.get(url, params=params, headers=operator)
    assert _only_error(response)[:2] == ("query", field)


async def test_a_far_access_log_period_is_a_422(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    response = await api.post(
        "/v1/audit/search", json={"until": "9999-12-31T23:59:59-12:00"}, headers=operator
    )
    assert _only_error(response)[:2] == ("body", "/until")


# --- Personal data ------------------------------------------------------------------------------


async def test_an_error_does_not_echo_a_personnummer_put_in_a_url(
    api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    for url in ("/v1/programme-years/19121212-1212", "/v1/care-units/19121212-1212", "/v1/19121212-1212"):
        response = await api.get(url, headers=operator)
        assert response.status_code in (404, 422)
        assert "1212-1212" not in response.text
        assert "121212-1212" not in response.text
    named = await api.get("/v1/programme-years/19121212-1212", headers=operator)
    assert named.json()["instance"] == "/v1/programme-years/{year}"


# --- The document -------------------------------------------------------------------------------


def test_the_document_declares_every_problem_as_problem_json_with_its_schema() -> None:
    document = create_app().openapi()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            assert "422" in responses, f"{method} {path}"
            if path not in ("/healthz", "/readyz"):
                assert "503" in responses, f"{method} {path}"
                assert "Retry-After" in responses["503"]["headers"]
            if "application/json" in op.get("requestBody", {}).get("content", {}):
                assert "400" in responses, f"{method} {path}"
            for status, response in responses.items():
                if status.startswith(("4", "5")) and not (path == "/readyz" and status == "503"):
                    assert response["content"] == {
                        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }, f"{method} {path} {status}"
