"""The access log: every read and change of a resident's personal data is one event (who,
whose, what, why, outcome, request id); events are append-only and hash-chained; the chain's
first broken link is found; retention moves old events to a file and the chain goes on."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.audit import chain, service
from halsosamtal.units.models import CareUnit
from tests.conftest import KeyMaker
from tests.factories import make_resident
from tests.tokens import TestIdp

SM = async_sessionmaker[AsyncSession]
MakeUnit = Callable[..., Awaitable[CareUnit]]


async def events(sm: SM, **where: Any) -> list[Any]:
    clause = " AND ".join(f"{k} = :{k}" for k in where) or "true"
    async with sm() as s:
        return list(
            (await s.execute(text(f"SELECT * FROM access_events WHERE {clause} ORDER BY id"), where)).all()
        )


async def seal_all(sm: SM) -> int:
    async with sm() as s, s.begin():
        return await chain.seal(s)


async def test_a_lookup_is_one_event_naming_who_whose_what_why_and_the_request(
    api: httpx.AsyncClient, make_key: KeyMaker, sessionmaker: SM
) -> None:
    resident = await make_resident(sessionmaker, dt.date(1987, 5, 4))
    operator = await make_key("operator", name="region-admin")
    response = await api.post(
        "/v1/residents/lookup",
        headers={**operator, "X-Acting-Person": "anna.admin", "X-Request-ID": "req-lookup-1"},
        json={"personnummer": resident.personnummer},
    )
    assert response.status_code == 200, response.text
    (event,) = await events(sessionmaker)
    assert (event.client_name, event.role, event.acting_person) == ("region-admin", "operator", "anna.admin")
    assert (event.resident_id, event.operation, event.action) == (resident.id, "lookup_resident", "read")
    assert (event.purpose, event.outcome, event.request_id) == (
        "programme-administration",
        "ok",
        "req-lookup-1",
    )
    assert resident.personnummer not in json.dumps([str(v) for v in event])


async def test_a_purpose_named_by_the_caller_is_kept_and_a_malformed_one_refused(
    api: httpx.AsyncClient, operator: dict[str, str], sessionmaker: SM
) -> None:
    resident = await make_resident(sessionmaker, dt.date(1987, 5, 4))
    body = {"personnummer": resident.personnummer}
    ok = await api.post(
        "/v1/residents/lookup", headers={**operator, "X-Access-Purpose": "log-follow-up"}, json=body
    )
    assert ok.status_code == 200
    bad = await api.post(
        "/v1/residents/lookup", headers={**operator, "X-Access-Purpose": "Bad purpose!"}, json=body
    )
    assert bad.status_code == 422
    assert [e.purpose for e in await events(sessionmaker)] == ["log-follow-up"]


async def test_a_list_records_each_resident_shown_set_based(
    api: httpx.AsyncClient, operator: dict[str, str], sessionmaker: SM, make_unit: MakeUnit
) -> None:
    from tests.messaging.factories import make_invitation, make_year, resident

    unit = await make_unit()
    await make_year(sessionmaker)
    people = [await resident(sessionmaker, unit.id) for _ in range(3)]
    for person in people:
        await make_invitation(sessionmaker, person, unit.id)
    page = await api.get("/v1/invitations", headers=operator, params={"limit": 2})
    assert page.status_code == 200
    shown = await events(sessionmaker, operation="list_invitations")
    assert len(shown) == 2
    assert {e.resident_id for e in shown} <= {p.id for p in people}
    assert len({e.request_id for e in shown}) == 1


async def test_nothing_is_recorded_as_read_when_the_request_is_refused(
    api: httpx.AsyncClient, make_key: KeyMaker, sessionmaker: SM
) -> None:
    portal = await make_key("portal")
    response = await api.post("/v1/residents/lookup", headers=portal, json={"personnummer": "19870504-0016"})
    assert response.status_code == 403
    assert await events(sessionmaker) == []


async def test_the_resident_sees_who_accessed_their_data_and_reading_it_is_logged(
    api: httpx.AsyncClient, make_key: KeyMaker, sessionmaker: SM
) -> None:
    resident = await make_resident(sessionmaker, dt.date(1987, 5, 4))
    operator, portal = await make_key("operator", name="region"), await make_key("portal", name="1177")
    body = {"personnummer": resident.personnummer}
    await api.post("/v1/residents/lookup", headers={**operator, "X-Acting-Person": "bo.admin"}, json=body)
    first = await api.post("/v1/portal/access-log", headers=portal, json=body)
    assert first.status_code == 200, first.text
    assert [(a["accessed_by"], a["acting_person"], a["what"]) for a in first.json()["accesses"]] == [
        ("region", "bo.admin", "lookup_resident")
    ]
    second = await api.post("/v1/portal/access-log", headers=portal, json=body)
    assert second.json()["accesses"][0]["what"] == "portal_get_access_log"
    assert (await events(sessionmaker, operation="portal_get_access_log"))[0].acting_person == (
        f"resident:{resident.id}"
    )


async def test_the_portal_reads_the_log_of_its_tokens_resident_only(
    api: httpx.AsyncClient, make_key: KeyMaker, sessionmaker: SM, idp: TestIdp
) -> None:
    me = await make_resident(sessionmaker, dt.date(1987, 5, 4))
    other = await make_resident(sessionmaker, dt.date(1977, 5, 4))
    operator, portal = await make_key("operator", name="region"), await make_key("portal", name="1177")
    await api.post("/v1/residents/lookup", headers=operator, json={"personnummer": other.personnummer})
    as_me = {**portal, **idp.headers(me.personnummer), "X-Acting-Person": "someone.else"}
    mine = await api.post("/v1/portal/access-log", headers=as_me, json={})
    assert (mine.status_code, mine.json()["accesses"]) == (200, []), mine.text
    theirs = await api.post("/v1/portal/access-log", headers=as_me, json={"personnummer": other.personnummer})
    assert (theirs.status_code, theirs.json()["code"]) == (403, "resident-token-other-resident")
    logged = await events(sessionmaker, operation="portal_get_access_log")
    assert [(e.resident_id, e.acting_person) for e in logged] == [(me.id, f"resident:{me.id}")]


async def test_a_resident_named_by_personnummer_costs_one_statement_and_none_with_the_log_off(
    api: httpx.AsyncClient,
    app: Any,
    operator: dict[str, str],
    sessionmaker: SM,
) -> None:
    """The access log's cost (issue 12: at most 15 % of the booking or search rate): the resident
    is found inside the event's own INSERT ... SELECT, no round trip of its own; with the log off
    the route does no access-log work at all."""
    resident = await make_resident(sessionmaker, dt.date(1987, 5, 4))
    engine = app.state.resources.engine.sync_engine

    async def statements_of_a_lookup() -> list[str]:
        seen: list[str] = []

        def listen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            seen.append(statement)

        event.listen(engine, "before_cursor_execute", listen)
        try:
            response = await api.post(
                "/v1/residents/lookup", headers=operator, json={"personnummer": resident.personnummer[2:]}
            )
        finally:
            event.remove(engine, "before_cursor_execute", listen)
        assert response.status_code == 200, response.text
        return seen

    logged = await statements_of_a_lookup()
    (insert,) = [s for s in logged if "access_events" in s]
    assert "FROM residents" in insert
    assert [e.resident_id for e in await events(sessionmaker)] == [resident.id]

    settings = app.state.settings
    app.state.settings = settings.model_copy(update={"audit_log": False})
    try:
        unlogged = await statements_of_a_lookup()
    finally:
        app.state.settings = settings
    assert not [s for s in unlogged if "access_events" in s]
    assert len(unlogged) == len(logged) - 1
    assert len(await events(sessionmaker)) == 1


async def test_the_log_refuses_update_delete_and_truncate(sessionmaker: SM) -> None:
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO access_events (client_name, role, operation, action, purpose, outcome) "
                "VALUES ('x', 'cli', 'op', 'read', 'p', 'ok')"
            )
        )
    for statement in (
        "UPDATE access_events SET purpose = 'other'",
        "DELETE FROM access_events",
        "TRUNCATE access_events",
        "UPDATE access_events SET seq = 1, hash = '\\x00', purpose = 'other'",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with sessionmaker() as s, s.begin():
                await s.execute(text(statement))
    assert len(await events(sessionmaker)) == 1


async def _some_events(api: httpx.AsyncClient, operator: dict[str, str], sm: SM, n: int) -> None:
    resident = await make_resident(sm, dt.date(1987, 5, 4))
    for _ in range(n):
        response = await api.post(
            "/v1/residents/lookup", headers=operator, json={"personnummer": resident.personnummer}
        )
        assert response.status_code == 200


async def test_the_chain_is_sealed_and_verifies_and_the_first_broken_link_is_named(
    api: httpx.AsyncClient, operator: dict[str, str], sessionmaker: SM
) -> None:
    await _some_events(api, operator, sessionmaker, 5)
    assert await seal_all(sessionmaker) == 5
    assert await seal_all(sessionmaker) == 0
    async with sessionmaker() as s:
        verdict = await chain.verify(s)
    assert (verdict.ok, verdict.checked, verdict.unsealed) == (True, 5, 0)

    # A superuser edits an event past the trigger: the chain names it.
    third = (await events(sessionmaker))[2]
    async with sessionmaker() as s, s.begin():
        await s.execute(text("SET LOCAL session_replication_role = replica"))
        await s.execute(
            text("UPDATE access_events SET client_name = 'someone-else' WHERE id = :id"), {"id": third.id}
        )
    async with sessionmaker() as s:
        verdict = await chain.verify(s)
    assert (verdict.ok, verdict.broken_event_id, verdict.broken_at_seq) == (False, third.id, 3)
    assert "changed" in (verdict.reason or "")


async def test_a_removed_event_is_a_missing_position(
    api: httpx.AsyncClient, operator: dict[str, str], sessionmaker: SM
) -> None:
    await _some_events(api, operator, sessionmaker, 4)
    await seal_all(sessionmaker)
    second = (await events(sessionmaker))[1]
    async with sessionmaker() as s, s.begin():
        await s.execute(text("SET LOCAL session_replication_role = replica"))
        await s.execute(text("DELETE FROM access_events WHERE id = :id"), {"id": second.id})
    async with sessionmaker() as s:
        verdict = await chain.verify(s)
    assert (verdict.ok, verdict.broken_at_seq) == (False, 3)
    assert "position 2 is missing" in (verdict.reason or "")


async def test_an_event_of_a_transaction_still_open_is_sealed_when_it_commits_further_down(
    sessionmaker: SM,
) -> None:
    insert = text(
        "INSERT INTO access_events (client_name, role, operation, action, purpose, outcome) "
        "VALUES (:n, 'cli', 'op', 'read', 'p', 'ok')"
    )
    async with sessionmaker() as slow:
        await slow.begin()
        await slow.execute(insert, {"n": "slow"})
        async with sessionmaker() as fast, fast.begin():
            await fast.execute(insert, {"n": "fast"})
        assert await seal_all(sessionmaker) == 1  # the fast one; the slow one is not committed
        await slow.commit()
    assert await seal_all(sessionmaker) == 1
    sealed = [(e.client_name, e.seq) for e in sorted(await events(sessionmaker), key=lambda e: e.seq)]
    assert sealed == [("fast", 1), ("slow", 2)]
    async with sessionmaker() as s:
        assert (await chain.verify(s)).ok


async def test_retention_moves_old_events_to_a_file_and_the_chain_goes_on(
    api: httpx.AsyncClient, operator: dict[str, str], sessionmaker: SM, tmp_path: Path
) -> None:
    await _some_events(api, operator, sessionmaker, 3)
    await seal_all(sessionmaker)
    cutoff = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    async with sessionmaker() as s, s.begin():
        moved = await service.archive(s, cutoff, tmp_path, actor="test")
    assert (moved.events, moved.first_seq, moved.last_seq) == (3, 1, 3)
    lines = await asyncio.to_thread(lambda: Path(moved.file or "").read_text().splitlines())
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3]
    assert await events(sessionmaker) == []
    await _some_events(api, operator, sessionmaker, 2)
    assert await seal_all(sessionmaker) == 2
    async with sessionmaker() as s:
        verdict = await chain.verify(s)
    assert (verdict.ok, verdict.first_seq, verdict.last_seq) == (True, 4, 5)


async def test_the_operator_searches_the_log_by_resident_and_exports_csv(
    api: httpx.AsyncClient, make_key: KeyMaker, sessionmaker: SM
) -> None:
    one, two = (
        await make_resident(sessionmaker, dt.date(1987, 5, 4)),
        await make_resident(sessionmaker, dt.date(1977, 1, 2)),
    )
    ehr_like = await make_key("operator", name="reader")
    for person in (one, two, one):
        await api.post("/v1/residents/lookup", headers=ehr_like, json={"personnummer": person.personnummer})
    operator = await make_key("operator", name="log-checker")
    found = await api.post(
        "/v1/audit/search", headers=operator, json={"personnummer": one.personnummer, "client": "reader"}
    )
    assert found.status_code == 200, found.text
    assert [(e["resident_id"], e["client"]) for e in found.json()["items"]] == [
        (one.id, "reader"),
        (one.id, "reader"),
    ]
    as_csv = await api.post("/v1/audit/search", headers=operator, json={"client": "reader", "format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines()[0].startswith("id,at,client,role")
    assert len(as_csv.text.splitlines()) == 4
    # The search by resident is itself an access to that resident's data.
    assert [e.resident_id for e in await events(sessionmaker, operation="search_access_log")] == [one.id]
    portal = await make_key("portal")
    assert (await api.post("/v1/audit/search", headers=portal, json={})).status_code == 403
