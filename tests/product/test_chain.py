"""A programme year from register to reimbursement, through the real processes only.

The tests run in order and build on each other, as an operator's year does: the registers are
loaded (CLI and API), the year is set, a batch invites the cohort (CLI and worker), messages go
out, centres publish times, residents book through the portal, centres record attendance and
post results, and the reports and the reimbursement statement come out and are closed. Every
command is the installed ``halsosamtal`` in a subprocess; every API call goes over TCP to the
``halsosamtal api`` process, with the ``halsosamtal worker`` process beside it.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import signal
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.product.conftest import Product, free_port
from tests.product.support import (
    CARE_UNIT_COLUMNS,
    RESIDENT_COLUMNS,
    personnummer,
    resident_row,
    result_document,
    words,
)
from tests.tokens import CLAIM, tampered

SWEDEN = ZoneInfo("Europe/Stockholm")
TODAY = dt.datetime.now(SWEDEN).date()
YEAR = TODAY.year
UNIT = "SE2321000131-EPRODUCT000001"  # the layer's own participating unit
OTHER_UNIT = "SE2321000131-EPRODUCT000002"  # not participating
BATCH_TIMEOUT_S = 90  # the worker picks queued batches up every 5 s


def _month_before(day: dt.date, months: int) -> tuple[int, int]:
    index = day.year * 12 + day.month - 1 - months
    return index // 12, index % 12 + 1


@dataclass
class Resident:
    pnr: str
    role: str
    invitation_id: int = 0


@dataclass
class World:
    """What the chain has made so far, for the steps after."""

    residents: dict[str, Resident] = field(default_factory=dict)
    demo_invitations: int = 0
    failed_message_id: int = 0
    slots: list[dict[str, Any]] = field(default_factory=list)
    explicit_slots: list[dict[str, Any]] = field(default_factory=list)
    soon_slot: dict[str, Any] = field(default_factory=dict)
    appointments: dict[str, int] = field(default_factory=dict)
    result_id: int = 0
    second_result_id: int = 0
    residents_csv: str = ""

    def pnr(self, role: str) -> str:
        return self.residents[role].pnr

    def invitation(self, role: str) -> int:
        return self.residents[role].invitation_id


@pytest.fixture(scope="module")
def world() -> World:
    residents = {
        # role: (age this year, birth day in January, sex, serial, has an address)
        "booker": (50, 10, "F", 1, True),
        "decliner": (60, 11, "M", 2, True),
        "no-show": (40, 12, "F", 3, True),
        "patient": (50, 13, "M", 4, True),
        "walk-in": (40, 14, "M", 5, True),
        "unreachable": (60, 15, "F", 6, False),
    }
    w = World()
    for role, (age, day, sex, serial, _) in residents.items():
        w.residents[role] = Resident(personnummer(dt.date(YEAR - age, 1, day), serial, sex=sex), role)
    rows = [
        resident_row(w.pnr(role), UNIT, address=has_address)
        for role, (_, _, _, _, has_address) in residents.items()
    ]
    w.residents_csv = RESIDENT_COLUMNS + "\n" + "\n".join(rows) + "\n"
    return w


def expect(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
    )
    return response.json() if "json" in response.headers.get("content-type", "") else response.text


def portal_body(w: World, role: str, **more: Any) -> dict[str, Any]:
    return {"personnummer": w.pnr(role), **more}


def as_resident(product: Product, w: World, role: str) -> dict[str, str]:
    """A portal's headers for a call on behalf of the logged-in resident: its key and the
    resident's token (here from ``halsosamtal dev token``: the product runs with the development
    identity provider)."""
    return {**product.key("product-portal", "portal"), **product.resident_token(w.pnr(role))}


def wait_for_batch(product: Product, batch_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + BATCH_TIMEOUT_S
    batch: dict[str, Any] = {}
    while time.monotonic() < deadline:
        batch = expect(product.api.get(f"/v1/batches/{batch_id}", headers=product.operator), 200)
        if batch["status"] in ("done", "failed"):
            return batch
        time.sleep(0.5)
    raise AssertionError(
        f"batch {batch_id} is still {batch.get('status')} after {BATCH_TIMEOUT_S} s: {batch}"
    )


def held_at() -> dt.datetime:
    """A moment of the talk: ten minutes ago, but inside the programme year."""
    first = dt.datetime(YEAR, 1, 1, 0, 1, tzinfo=SWEDEN)
    return max(dt.datetime.now(SWEDEN) - dt.timedelta(minutes=10), first)


# --- Registers ----------------------------------------------------------------------------------


def test_an_operator_loads_the_demo_register_from_the_cli(product: Product) -> None:
    units_csv, residents_csv = product.tmp / "care_units.csv", product.tmp / "residents.csv"
    product.cli(
        "demo-data", "--residents", "3000", "--seed", "7", "--out", str(residents_csv),
        "--care-units-out", str(units_csv),
    )  # fmt: skip
    assert len(residents_csv.read_text().splitlines()) == 3001

    units = product.cli("import", "care-units", str(units_csv))
    assert "rows 10: inserted 10" in words(units.stdout)
    residents = product.cli("import", "residents", str(residents_csv), "--as-of", TODAY.isoformat())
    assert re.search(r"rows 3000: inserted 3000, updated 0, unchanged 0, rejected 0", words(residents.stdout))
    # The command says where it works: our own database, found as on any machine.
    assert f"using database {product.database}" in words(residents.stderr)


def test_a_programme_year_is_set_shown_and_listed_from_the_cli(product: Product) -> None:
    product.cli(
        "programme", "set", "--year", str(YEAR), "--ages", "40,50,60", "--talk-rate", "1000",
        "--start-grant", "0", "--reminder-days", "28,56", "--valid-until", f"{YEAR + 1}-03-31",
        # Times may be booked from now on: a no-show can then be recorded minutes later.
        "--booking-lead-days", "0",
    )  # fmt: skip
    shown = json.loads(product.cli("programme", "show", "--year", str(YEAR), "--json").stdout)
    assert (shown["target_ages"], shown["valid_until"], shown["booking_lead_days"]) == (
        [40, 50, 60],
        f"{YEAR + 1}-03-31",
        0,
    )
    listed = json.loads(product.cli("programme", "list", "--json").stdout)
    assert [y["year"] for y in listed] == [YEAR]


def test_programme_years_over_the_api(product: Product) -> None:
    rules = {"target_ages": [40, 50, 60, 70], "talk_rate": "1100", "valid_until": f"{YEAR + 2}-03-31"}
    created = product.api.put(f"/v1/programme-years/{YEAR + 1}", json=rules, headers=product.operator)
    assert expect(created, 201)["target_ages"] == [40, 50, 60, 70]
    same = product.api.put(f"/v1/programme-years/{YEAR + 1}", json=rules, headers=product.operator)
    expect(same, 200)
    assert (
        expect(product.api.get(f"/v1/programme-years/{YEAR}", headers=product.operator), 200)["year"] == YEAR
    )
    years = expect(product.api.get("/v1/programme-years", headers=product.operator), 200)
    assert [y["year"] for y in years] == [YEAR, YEAR + 1]
    revisions = expect(
        product.api.get(f"/v1/programme-years/{YEAR + 1}/revisions", headers=product.operator), 200
    )
    assert len(revisions) == 1, "the same rules again are not a revision"


def test_the_care_need_index_loads_from_the_cli_and_the_api(product: Product) -> None:
    with (product.tmp / "residents.csv").open(encoding="utf-8") as f:
        areas = sorted({row["deso"] for row in csv.DictReader(f) if row["deso"]} | {"1380C1010"})
    table = "deso,cni\n" + "".join(f"{deso},{0.5 + i / 10:.2f}\n" for i, deso in enumerate(areas))
    path = product.tmp / "cni.csv"
    path.write_text(table, encoding="utf-8")
    loaded = product.cli("import", "cni", str(path))
    assert f"rows {len(areas)}: inserted {len(areas)}" in words(loaded.stdout)
    headers = {**product.operator, "Content-Type": "text/csv"}
    summary = expect(product.api.post("/v1/reports/cni", content=table.encode(), headers=headers), 200)
    assert (summary["unchanged"], summary["inserted"], summary["rejected"]) == (len(areas), 0, 0)


# --- Invitation batches -------------------------------------------------------------------------


def test_a_batch_started_over_the_api_is_run_by_the_worker_as_planned(product: Product, world: World) -> None:
    # The layer's own residents are not in the plan yet: they come with the next run.
    plan = json.loads(
        product.cli("batch", "plan", "--year", str(YEAR), "--as-of", TODAY.isoformat(), "--json").stdout
    )
    api_plan = expect(
        product.api.get(
            "/v1/batches/plan", params={"year": YEAR, "as_of": TODAY.isoformat()}, headers=product.operator
        ),
        200,
    )
    assert api_plan["total"] == plan["total"] > 6
    started = product.api.post(
        "/v1/batches", json={"year": YEAR, "as_of": TODAY.isoformat()}, headers=product.operator
    )
    batch = expect(started, 202)
    assert started.headers["Location"] == f"/v1/batches/{batch['id']}"
    done = wait_for_batch(product, batch["id"])
    assert (done["status"], done["created"], done["errors"]) == ("done", plan["total"], [])
    assert batch["id"] in [
        b["id"] for b in expect(product.api.get("/v1/batches", headers=product.operator), 200)
    ]
    world.demo_invitations = plan["total"]


def test_the_register_loads_over_the_api_and_again_changes_nothing(product: Product, world: World) -> None:
    units = (
        f"{CARE_UNIT_COLUMNS}\n{UNIT},Vårdcentralen Produkt,1380,public,true,20\n"
        f"{OTHER_UNIT},Vårdcentralen Utanför,1380,private,false,10\n"
    )
    headers = {**product.operator, "Content-Type": "text/csv"}
    summary = expect(product.api.post("/v1/care-units/import", content=units.encode(), headers=headers), 200)
    assert (summary["inserted"], summary["rejected"]) == (2, 0)

    params = {"as_of": TODAY.isoformat()}
    first = product.api.post(
        "/v1/residents/import", content=world.residents_csv.encode(), headers=headers, params=params
    )
    assert (expect(first, 200)["inserted"], first.json()["rejected"]) == (6, 0)
    again = product.api.post(
        "/v1/residents/import", content=world.residents_csv.encode(), headers=headers, params=params
    )
    assert (expect(again, 200)["unchanged"], again.json()["inserted"], again.json()["updated"]) == (6, 0, 0)


def test_the_cohort_is_counted_listed_and_looked_up(product: Product, world: World) -> None:
    counts = expect(product.api.get(f"/v1/cohort/{YEAR}/counts", headers=product.operator), 200)
    assert counts["total"] > 6
    members = expect(
        product.api.get(f"/v1/cohort/{YEAR}/members", params={"care_unit": UNIT}, headers=product.operator),
        200,
    )
    assert sorted(m["personnummer"] for m in members["items"]) == sorted(
        r.pnr for r in world.residents.values()
    )
    found = product.api.post(
        "/v1/residents/lookup", json={"personnummer": world.pnr("booker")}, headers=product.operator
    )
    assert expect(found, 200)["care_unit"] == UNIT
    assert found.json()["listings"][0]["care_unit"] == UNIT


def test_the_care_units_are_listed_read_and_changed(product: Product) -> None:
    units = expect(product.api.get("/v1/care-units", headers=product.operator), 200)
    assert len(units) == 12
    expect(product.api.get(f"/v1/care-units/{OTHER_UNIT}", headers=product.operator), 200)
    changed = product.api.patch(
        f"/v1/care-units/{UNIT}", json={"weekly_capacity": 25}, headers=product.operator
    )
    assert expect(changed, 200)["weekly_capacity"] == 25
    assert product.api.get(f"/v1/care-units/{UNIT}", headers=product.operator).json()["weekly_capacity"] == 25


# --- The layer's own residents are invited from the CLI ---------------------------------------


def test_the_cli_batch_writes_exactly_the_plan_and_again_nothing(product: Product, world: World) -> None:
    plan = json.loads(
        product.cli("batch", "plan", "--year", str(YEAR), "--as-of", TODAY.isoformat(), "--json").stdout
    )
    assert plan["total"] == 6, "only the layer's own residents are new"
    ran = product.cli("batch", "run", "--year", str(YEAR), "--as-of", TODAY.isoformat())
    assert re.search(r"batch \d+: 6 invitations created", words(ran.stdout))

    queued = product.cli("batch", "run", "--year", str(YEAR), "--as-of", TODAY.isoformat(), "--enqueue")
    batch_id = int(re.search(r"batch (\d+) queued", words(queued.stdout)).group(1))  # type: ignore[union-attr]
    done = wait_for_batch(product, batch_id)
    assert (done["status"], done["created"]) == ("done", 0)

    page = expect(
        product.api.get(
            "/v1/invitations",
            params={"year": YEAR, "care_unit": UNIT, "limit": 100},
            headers=product.operator,
        ),
        200,
    )
    by_pnr = {i["personnummer"]: i for i in page["items"]}
    for resident in world.residents.values():
        invitation = by_pnr[resident.pnr]
        assert (invitation["status"], invitation["planned_send_on"]) == ("planned", TODAY.isoformat())
        resident.invitation_id = invitation["id"]


# --- Messages -----------------------------------------------------------------------------------


def test_messages_are_released_and_delivered_to_the_print_file(product: Product, world: World) -> None:
    released = product.cli("messages", "release", "--as-of", TODAY.isoformat())
    assert f"release {TODAY.isoformat()}:" in words(released.stdout)
    page = expect(
        product.api.get(
            "/v1/invitations", params={"care_unit": UNIT, "status": "open"}, headers=product.operator
        ),
        200,
    )
    opened = {i["personnummer"] for i in page["items"]}
    assert {world.pnr(r) for r in ("booker", "decliner", "no-show", "patient", "walk-in")} <= opened

    # The same release over the API finds nothing left to do today.
    again = expect(product.api.post("/v1/messages/release", json={}, headers=product.operator), 200)
    assert (again["as_of"], again["queued"], again["opened"]) == (TODAY.isoformat(), 0, 0)

    delivered = product.cli("messages", "deliver")
    assert "delivery:" in words(delivered.stdout)
    # The worker delivers every minute too; either way the letters are in today's print file.
    print_file = product.letters_dir / f"letters-{TODAY.isoformat()}.csv"
    assert print_file.exists(), list(product.letters_dir.glob("*"))
    assert len(print_file.read_text(encoding="utf-8").splitlines()) > world.demo_invitations // 2


def test_a_message_no_channel_reaches_is_listed_and_retried(product: Product, world: World) -> None:
    failed = json.loads(product.cli("messages", "failed", "--json").stdout)
    ours = [m for m in failed if m["invitation_id"] == world.invitation("unreachable")]
    assert [m["last_error"] for m in ours] == ["no_address"], failed
    world.failed_message_id = ours[0]["id"]
    listed = expect(
        product.api.get("/v1/messages/failed", params={"kind": "invitation"}, headers=product.operator), 200
    )
    assert world.failed_message_id in [m["id"] for m in listed["items"]]

    # Retried before the register is corrected: it fails again, for the same reason.
    again = product.cli("messages", "retry", str(world.failed_message_id))
    assert f"message {world.failed_message_id}: failed (no_address)" in words(again.stdout)

    corrected = world.residents_csv.replace(
        resident_row(world.pnr("unreachable"), UNIT, address=False),
        resident_row(world.pnr("unreachable"), UNIT, address=True),
    )
    headers = {**product.operator, "Content-Type": "text/csv"}
    summary = product.api.post(
        "/v1/residents/import",
        content=corrected.encode(),
        headers=headers,
        params={"as_of": TODAY.isoformat()},
    )
    assert expect(summary, 200)["updated"] == 1
    retried = product.api.post(f"/v1/messages/{world.failed_message_id}/retry", headers=product.operator)
    assert expect(retried, 200)["status"] == "queued"


# --- Bookable times -----------------------------------------------------------------------------


def test_a_centre_publishes_times_from_the_cli_and_the_api(product: Product, world: World) -> None:
    # Bookable times lie in the invitation's programme year: from tomorrow, at most to New Year.
    first, last = TODAY + dt.timedelta(days=1), min(TODAY + dt.timedelta(days=21), dt.date(YEAR, 12, 31))
    published = product.cli(
        "slots", "template", "--unit", UNIT, "--first-day", first.isoformat(), "--last-day", last.isoformat(),
        "--weekdays", "mon,tue,wed,thu,fri", "--day-starts", "08:00", "--day-ends", "10:15",
        "--talk-minutes", "45", "--json",
    )  # fmt: skip
    by_cli = json.loads(published.stdout)[UNIT]
    assert by_cli["created"] > 0

    ehr = product.key("product-ehr", "ehr", UNIT)
    template = {
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "weekdays": ["mon", "tue", "wed", "thu", "fri"],
        "day_starts": "13:00",
        "day_ends": "14:30",
        "talk_minutes": 45,
        "resource": "sjuksköterska 2",
    }
    by_api = expect(
        product.api.post(f"/v1/care-units/{UNIT}/slots/template", json=template, headers=ehr), 200
    )
    assert by_api["created"] > 0
    again = expect(product.api.post(f"/v1/care-units/{UNIT}/slots/template", json=template, headers=ehr), 200)
    assert (again["created"], again["already_published"]) == (0, by_api["created"])

    evening = dt.datetime.combine(min(TODAY + dt.timedelta(days=3), last), dt.time(18, 0), tzinfo=SWEDEN)
    explicit = [
        {
            "starts_at": (evening + dt.timedelta(minutes=45 * i)).isoformat(),
            "ends_at": (evening + dt.timedelta(minutes=45 * i + 45)).isoformat(),
            "resource": "kväll",
        }
        for i in range(3)
    ]
    made = expect(
        product.api.post(f"/v1/care-units/{UNIT}/slots", json={"slots": explicit}, headers=ehr), 200
    )
    assert made["created"] == 3

    listed = expect(
        product.api.get(
            f"/v1/care-units/{UNIT}/slots",
            params={
                "first_day": TODAY.isoformat(),
                "last_day": last.isoformat(),
                "status": "free",
                "limit": 1000,
            },
            headers=ehr,
        ),
        200,
    )
    assert len(listed["items"]) == by_cli["created"] + by_api["created"] + 3
    world.explicit_slots = [s for s in listed["items"] if s["resource"] == "kväll"]
    world.slots = [s for s in listed["items"] if s["resource"] in ("", "sjuksköterska 2")]


def test_a_free_time_is_read_and_withdrawn(product: Product, world: World) -> None:
    ehr = product.key("product-ehr", "ehr", UNIT)
    slot = world.explicit_slots.pop()
    got = expect(product.api.get(f"/v1/care-units/{UNIT}/slots/{slot['id']}", headers=ehr), 200)
    assert got["status"] == "free"
    withdrawn = expect(product.api.delete(f"/v1/care-units/{UNIT}/slots/{slot['id']}", headers=ehr), 200)
    assert withdrawn["status"] == "withdrawn"
    assert (
        expect(product.api.get(f"/v1/care-units/{UNIT}/slots/{slot['id']}", headers=product.operator), 200)[
            "status"
        ]
        == "withdrawn"
    )


# --- The portal ---------------------------------------------------------------------------------


def test_a_resident_books_moves_cancels_and_books_again(product: Product, world: World) -> None:
    mine = expect(
        product.api.post(
            "/v1/portal/invitation",
            json=portal_body(world, "booker"),
            headers=as_resident(product, world, "booker"),
        ),
        200,
    )
    assert (mine["id"], mine["status"], mine["care_unit"]) == (
        world.invitation("booker"),
        "open",
        UNIT,
    )

    tomorrow = (TODAY + dt.timedelta(days=1)).isoformat()
    search = portal_body(world, "booker", invitation_id=mine["id"], first_day=tomorrow, limit=10)
    free = expect(
        product.api.post(
            "/v1/portal/slots/search", json=search, headers=as_resident(product, world, "booker")
        ),
        200,
    )["items"]
    assert len(free) >= 4
    booking = {"invitation_id": mine["id"], "slot_id": free[0]["id"]}
    booked = expect(
        product.api.post(
            "/v1/portal/bookings",
            json=portal_body(world, "booker", **booking),
            headers=as_resident(product, world, "booker"),
        ),
        201,
    )
    assert (booked["status"], booked["slot_id"]) == ("booked", free[0]["id"])

    moved = product.api.post(
        f"/v1/portal/bookings/{booked['id']}/move",
        json=portal_body(world, "booker", slot_id=free[1]["id"]),
        headers=as_resident(product, world, "booker"),
    )
    assert expect(moved, 200)["slot_id"] == free[1]["id"]
    cancelled = product.api.post(
        f"/v1/portal/bookings/{booked['id']}/cancel",
        json=portal_body(world, "booker"),
        headers=as_resident(product, world, "booker"),
    )
    assert expect(cancelled, 200)["status"] == "cancelled"

    # Booked again with an Idempotency-Key: the retry gets the first answer and changes nothing.
    key = {**as_resident(product, world, "booker"), "Idempotency-Key": str(uuid.uuid4())}
    again = portal_body(world, "booker", invitation_id=mine["id"], slot_id=free[2]["id"])
    first = product.api.post("/v1/portal/bookings", json=again, headers=key)
    assert expect(first, 201)["slot_id"] == free[2]["id"]
    replay = product.api.post("/v1/portal/bookings", json=again, headers=key)
    assert expect(replay, 201) == first.json()
    assert replay.headers.get("Idempotent-Replayed") == "true"
    reused = product.api.post("/v1/portal/bookings", json={**again, "slot_id": free[3]["id"]}, headers=key)
    assert expect(reused, 422)["code"] == "idempotency-key-reused"
    world.appointments["booker"] = first.json()["id"]


def test_a_resident_with_a_booked_time_declines(product: Product, world: World) -> None:
    slot = world.slots[5]
    booked = product.api.post(
        "/v1/portal/bookings",
        json=portal_body(world, "decliner", invitation_id=world.invitation("decliner"), slot_id=slot["id"]),
        headers=as_resident(product, world, "decliner"),
    )
    expect(booked, 201)
    declined = product.api.post(
        "/v1/portal/invitation/decline",
        json=portal_body(world, "decliner", invitation_id=world.invitation("decliner")),
        headers=as_resident(product, world, "decliner"),
    )
    assert (expect(declined, 200)["status"], declined.json()["appointment"]) == ("declined", None)
    ehr = product.key("product-ehr", "ehr", UNIT)
    assert (
        expect(product.api.get(f"/v1/care-units/{UNIT}/slots/{slot['id']}", headers=ehr), 200)["status"]
        == "free"
    )


def test_residents_book_the_times_their_talks_are_held_at(product: Product, world: World) -> None:
    ehr = product.key("product-ehr", "ehr", UNIT)
    # A time that begins in a few seconds (the year's lead time is 0), so that its no-show can be
    # recorded soon after: published and booked at once.
    soon = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=6)
    slot = {
        "starts_at": soon.isoformat(),
        "ends_at": (soon + dt.timedelta(minutes=30)).isoformat(),
        "resource": "strax",
    }
    published = product.api.post(f"/v1/care-units/{UNIT}/slots", json={"slots": [slot]}, headers=ehr)
    assert expect(published, 200)["created"] == 1
    listed = product.api.get(
        f"/v1/care-units/{UNIT}/slots",
        params={"first_day": TODAY.isoformat(), "last_day": (TODAY + dt.timedelta(days=1)).isoformat()},
        headers=ehr,
    )
    world.soon_slot = next(s for s in expect(listed, 200)["items"] if s["resource"] == "strax")
    for role, chosen in (("no-show", world.soon_slot), ("patient", world.slots[6])):
        booked = product.api.post(
            "/v1/portal/bookings",
            json=portal_body(world, role, invitation_id=world.invitation(role), slot_id=chosen["id"]),
            headers=as_resident(product, world, role),
        )
        world.appointments[role] = expect(booked, 201)["id"]


# --- The centre ---------------------------------------------------------------------------------


def test_the_centre_sees_who_is_coming_and_cancels_a_time(product: Product, world: World) -> None:
    ehr = product.key("product-ehr", "ehr", UNIT)
    coming = expect(
        product.api.get(
            f"/v1/care-units/{UNIT}/appointments",
            params={
                "first_day": TODAY.isoformat(),
                "last_day": (TODAY + dt.timedelta(days=30)).isoformat(),
                "status": "booked",
            },
            headers=ehr,
        ),
        200,
    )
    assert {a["id"] for a in coming["items"]} == {
        world.appointments[r] for r in ("booker", "no-show", "patient")
    }
    detail = expect(product.api.get(f"/v1/appointments/{world.appointments['booker']}", headers=ehr), 200)
    # (Shown as 12 digits here, YYYYMMDD-NNNC in the invitation list and the lookup.)
    assert (detail["personnummer"].replace("-", ""), [e["to_status"] for e in detail["events"]]) == (
        world.pnr("booker").replace("-", ""),
        ["booked"],
    )

    cancelled = product.api.post(
        f"/v1/appointments/{world.appointments['booker']}/cancel",
        json={"reason": "the nurse is ill"},
        headers=ehr,
    )
    assert expect(cancelled, 200)["status"] == "cancelled"
    mine = expect(
        product.api.post(
            "/v1/portal/invitation",
            json=portal_body(world, "booker"),
            headers=as_resident(product, world, "booker"),
        ),
        200,
    )
    assert (mine["status"], mine["appointment"]) == ("open", None)


def test_the_centre_records_attendance_and_a_no_show(product: Product, world: World) -> None:
    ehr = product.key("product-ehr", "ehr", UNIT)
    attended = product.api.post(
        f"/v1/appointments/{world.appointments['patient']}/attendance",
        json={"outcome": "attended"},
        headers=ehr,
    )
    assert expect(attended, 200)["status"] == "attended"

    starts = dt.datetime.fromisoformat(world.soon_slot["starts_at"])
    wait = (starts - dt.datetime.now(dt.UTC)).total_seconds()
    assert wait < 10, "the time was published to begin within seconds"
    if wait > 0:
        time.sleep(wait + 1)  # a no-show is recorded once the time has begun
    no_show = product.api.post(
        f"/v1/appointments/{world.appointments['no-show']}/attendance",
        json={"outcome": "no_show"},
        headers=ehr,
    )
    assert expect(no_show, 200)["status"] == "no_show"
    mine = expect(
        product.api.post(
            "/v1/portal/invitation",
            json=portal_body(world, "no-show"),
            headers=as_resident(product, world, "no-show"),
        ),
        200,
    )
    assert mine["status"] == "open", "a no-show re-opens the invitation"


# --- Results ------------------------------------------------------------------------------------


def test_a_result_is_posted_reposted_amended_and_read(product: Product, world: World) -> None:
    ehr = product.key("product-ehr", "ehr", UNIT)
    document = result_document("JRN-PRODUCT-1", held_at(), appointment_id=world.appointments["patient"])
    created = product.api.post("/v1/results", json=document, headers=ehr)
    result = expect(created, 201)
    assert (result["change"], result["version"], result["invitation_id"]) == (
        "created",
        1,
        world.invitation("patient"),
    )
    world.result_id = result["id"]

    same = product.api.post("/v1/results", json=document, headers=ehr)
    assert (expect(same, 200)["change"], same.json()["version"]) == ("unchanged", 1)
    amended = product.api.post(
        "/v1/results",
        json={**document, "measurements": {**document["measurements"], "systolic": 150}},
        headers=ehr,
    )
    assert (expect(amended, 200)["change"], amended.json()["version"]) == ("amended", 2)

    history = expect(product.api.get(f"/v1/results/{world.result_id}/history", headers=ehr), 200)
    assert [e["kind"] for e in history["events"]] == ["completed", "amended"]
    assert [v["measurements"]["systolic"] for v in history["versions"]] == [140, 150]
    by_external = product.api.get(
        f"/v1/care-units/{UNIT}/results", params={"external_id": "JRN-PRODUCT-1"}, headers=ehr
    )
    assert expect(by_external, 200)["id"] == world.result_id
    current = expect(product.api.get(f"/v1/results/{world.result_id}", headers=product.operator), 200)
    assert (current["status"], current["version"], current["measurements"]["systolic"]) == (
        "completed",
        2,
        150,
    )

    summary = product.api.post(
        "/v1/portal/results",
        json=portal_body(world, "patient", language="en"),
        headers=as_resident(product, world, "patient"),
    )
    assert expect(summary, 200)["care_unit_name"] == "Vårdcentralen Produkt"
    assert summary.json()["findings"]


def test_a_result_is_posted_for_a_talk_without_a_booked_time(product: Product, world: World) -> None:
    ehr = product.key("product-ehr", "ehr", UNIT)
    document = result_document("JRN-PRODUCT-2", held_at(), invitation_id=world.invitation("walk-in"))
    world.second_result_id = expect(product.api.post("/v1/results", json=document, headers=ehr), 201)["id"]


def test_a_retracted_result_is_kept_and_the_resident_no_longer_sees_it(
    product: Product, world: World
) -> None:
    ehr = product.key("product-ehr", "ehr", UNIT)
    retracted = product.api.post(
        f"/v1/results/{world.result_id}/retract",
        json={"reason": "entered for the wrong patient"},
        headers=ehr,
    )
    assert expect(retracted, 200)["status"] == "retracted"
    gone = product.api.post(
        "/v1/portal/results",
        json=portal_body(world, "patient"),
        headers=as_resident(product, world, "patient"),
    )
    assert expect(gone, 404)["code"] == "no-invitation"


# --- Reports ------------------------------------------------------------------------------------


def test_reports_come_as_json_and_csv_over_the_api(product: Product) -> None:
    op = product.operator
    participation = expect(
        product.api.get("/v1/reports/participation", params={"year": YEAR, "group_by": "unit"}, headers=op),
        200,
    )
    assert participation["year"] == YEAR
    as_csv = product.api.get(
        "/v1/reports/participation",
        params={"year": YEAR, "group_by": "cni_quintile"},
        headers={**op, "Accept": "text/csv"},
    )
    assert expect(as_csv, 200).splitlines()[0].startswith("breakdown,key,label,")
    assert as_csv.headers["content-type"].startswith("text/csv")

    outcomes = expect(
        product.api.get("/v1/reports/outcomes", params={"year": YEAR, "group_by": "age"}, headers=op), 200
    )
    assert outcomes["year"] == YEAR
    expect(product.api.get("/v1/reports/outcomes", params={"year": YEAR, "format": "csv"}, headers=op), 200)

    statement = expect(
        product.api.get("/v1/reports/reimbursement", params={"year": YEAR, "month": TODAY.month}, headers=op),
        200,
    )
    # A line per completed talk: the retracted one is gone (its month was still open).
    talks = [(ln["kind"], ln["external_id"]) for ln in statement["lines"] if ln["care_unit"] == UNIT]
    assert talks == [("talk", "JRN-PRODUCT-2")], statement["lines"]
    csv_statement = product.api.get(
        "/v1/reports/reimbursement", params={"year": YEAR, "format": "csv"}, headers=op
    )
    assert "JRN-PRODUCT-2" in expect(csv_statement, 200)

    # A centre's EHR client sees its own unit's figures, and not another's.
    ehr = product.key("product-ehr", "ehr", UNIT)
    own = product.api.get("/v1/reports/participation", params={"year": YEAR, "care_unit": UNIT}, headers=ehr)
    expect(own, 200)
    other = product.api.get(
        "/v1/reports/participation", params={"year": YEAR, "care_unit": OTHER_UNIT}, headers=ehr
    )
    expect(other, 403)


def test_reports_come_from_the_cli_in_every_format(product: Product) -> None:
    out = product.tmp / "reports"
    out.mkdir()
    year = str(YEAR)
    product.cli(
        "report",
        "participation",
        "--year",
        year,
        "--group-by",
        "unit",
        "--group-by",
        "sex",
        "--format",
        "json",
        "--out",
        str(out / "p.json"),
    )
    assert set(json.loads((out / "p.json").read_text())["groups"]) == {"unit", "sex"}
    product.cli("report", "outcomes", "--year", year, "--format", "csv", "--out", str(out / "o.csv"))
    assert (out / "o.csv").read_text().count("\n") > 1
    product.cli(
        "report", "reimbursement", "--year", year, "--month", str(TODAY.month),
        "--format", "table", "--lines", "--out", str(out / "r.txt"),
    )  # fmt: skip
    statement = (out / "r.txt").read_text()
    assert "JRN-PRODUCT-2" in statement
    assert f"Reimbursement {YEAR}-{TODAY.month:02d}" in statement
    product.cli("report", "summary", "--year", year, "--out", str(out / "x.html"))
    page = (out / "x.html").read_text()
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "Vårdcentralen Produkt" in page


def test_months_that_have_ended_are_closed_in_order(product: Product) -> None:
    two_back, one_back = _month_before(TODAY, 2), _month_before(TODAY, 1)
    closed = product.cli("report", "close", "--year", str(two_back[0]), "--month", str(two_back[1]))
    assert f"closed {two_back[0]}-{two_back[1]:02d}" in words(closed.stdout)

    body = {"year": one_back[0], "month": one_back[1]}
    key = {**product.operator, "Idempotency-Key": str(uuid.uuid4())}
    first = product.api.post("/v1/reports/reimbursement/close", json=body, headers=key)
    assert expect(first, 200)["month"] == f"{one_back[0]}-{one_back[1]:02d}"
    again = product.api.post("/v1/reports/reimbursement/close", json=body, headers=product.operator)
    assert expect(again, 409)["code"] == "month-closed"
    current = product.api.post(
        "/v1/reports/reimbursement/close", json={"year": YEAR, "month": TODAY.month}, headers=product.operator
    )
    assert expect(current, 409)["code"] == "month-not-ended"
    refused = product.cli("report", "close", "--year", str(YEAR), "--month", str(TODAY.month), check=False)
    assert refused.returncode == 1
    assert "has not ended" in words(refused.stderr)


# --- The daily jobs, by hand --------------------------------------------------------------------


def test_the_daily_jobs_run_from_the_cli_for_today(product: Product, world: World) -> None:
    day = TODAY.isoformat()
    reminders = json.loads(product.cli("reminders", "run", "--as-of", day, "--json").stdout)
    assert reminders["created"] == 0, "nobody was invited 28 days ago"
    expired = json.loads(product.cli("invitations", "expire", "--as-of", day, "--json").stdout)
    assert expired["closed"] == 0
    withdrawn = json.loads(product.cli("invitations", "withdraw", "--as-of", day, "--json").stdout)
    assert withdrawn["closed"] == 0
    history = expect(
        product.api.get(f"/v1/invitations/{world.invitation('booker')}/history", headers=product.operator),
        200,
    )
    assert [e["to_status"] for e in history["events"]][:2] == ["planned", "open"], history


def test_a_death_in_the_register_withdraws_the_invitation(product: Product, world: World) -> None:
    died = TODAY - dt.timedelta(days=1)
    row = resident_row(world.pnr("booker"), UNIT, deceased_on=died.isoformat())
    headers = {**product.operator, "Content-Type": "text/csv"}
    expect(
        product.api.post(
            "/v1/residents/import",
            content=f"{RESIDENT_COLUMNS}\n{row}\n".encode(),
            headers=headers,
            params={"as_of": TODAY.isoformat()},
        ),
        200,
    )
    history = expect(
        product.api.get(f"/v1/invitations/{world.invitation('booker')}/history", headers=product.operator),
        200,
    )
    assert (history["status"], history["events"][-1]["to_status"]) == ("withdrawn", "withdrawn")


# --- Clients ------------------------------------------------------------------------------------


def test_clients_are_listed_and_a_revoked_key_stops_working(product: Product) -> None:
    doomed = product.key("product-doomed", "operator")
    expect(product.api.get("/v1/care-units", headers=doomed), 200)
    listed = json.loads(product.cli("clients", "list", "--json").stdout)
    assert {"product-operator", "product-portal", "product-ehr", "product-doomed"} <= {
        c["name"] for c in listed
    }
    assert all("key" not in c for c in listed), "keys are never listed"
    product.cli("clients", "revoke", "product-doomed")
    assert expect(product.api.get("/v1/care-units", headers=doomed), 401)["code"]
    active = json.loads(product.cli("clients", "list", "--active", "--json").stdout)
    assert "product-doomed" not in {c["name"] for c in active}


def test_a_rotated_key_overlaps_the_one_before(product: Product) -> None:
    """``clients rotate``: a new key, shown once; the key before works until the overlap ends,
    and with no overlap it stops at once."""
    before = product.key("product-rotating", "operator")
    printed = product.cli("clients", "rotate", "product-rotating", "--overlap-hours", "1")
    text = words(printed.stdout)
    assert "shown once" in text
    assert "works until" in text
    new_key = printed.stdout.strip().splitlines()[-1].strip()
    assert new_key.startswith("hs_")
    assert new_key != before["Authorization"].removeprefix("Bearer ")
    newer = {"Authorization": f"Bearer {new_key}"}
    expect(product.api.get("/v1/care-units", headers=before), 200)
    expect(product.api.get("/v1/care-units", headers=newer), 200)
    again = json.loads(
        product.cli("clients", "rotate", "product-rotating", "--overlap-hours", "0", "--json").stdout
    )
    assert expect(product.api.get("/v1/care-units", headers=before), 401)["code"] == "unauthenticated"
    assert expect(product.api.get("/v1/care-units", headers=newer), 401)["code"] == "unauthenticated"
    latest = {"Authorization": f"Bearer {again['key']}"}
    answer = product.api.get("/v1/care-units", headers=latest)
    expect(answer, 200)
    assert int(answer.headers["RateLimit-Remaining"]) < int(answer.headers["RateLimit-Limit"])


def test_a_burst_of_bad_keys_from_one_address_is_throttled(product: Product) -> None:
    """Past the failed-authentication rate (20 a minute by default) an address gets 429 with
    Retry-After; a valid key from it still passes. The address is the one the proxy names
    (``X-Forwarded-For`` from a trusted proxy, here the loopback), so this test has its own."""
    prober = {"X-Forwarded-For": "203.0.113.77", "Authorization": "Bearer hs_guessing"}
    answers = [product.api.get("/v1/care-units", headers=prober).status_code for _ in range(25)]
    assert answers[:20] == [401] * 20
    assert answers[20:] == [429] * 5
    throttled = product.api.get("/v1/care-units", headers=prober)
    assert expect(throttled, 429)["code"] == "too-many-failed-authentications"
    assert int(throttled.headers["Retry-After"]) >= 1
    assert throttled.headers["RateLimit-Limit"] == "20"
    ok = product.api.get("/v1/care-units", headers={**product.operator, "X-Forwarded-For": "203.0.113.77"})
    expect(ok, 200)
    ready = expect(product.api.get("/readyz"), 200)
    assert ready["rate_limits"] == "enforced"


# --- The access log of personal data -------------------------------------------------------------

CLINICIAN = "SE2321000131-P000000000042"


def test_the_access_log_tells_who_read_a_residents_data(product: Product, world: World) -> None:
    ehr = {**product.key("product-ehr", "ehr", UNIT), "X-Acting-Person": CLINICIAN}
    expect(product.api.get(f"/v1/appointments/{world.appointments['patient']}", headers=ehr), 200)

    sealed = product.cli("audit", "seal")
    assert re.search(r"\d+ events sealed", words(sealed.stdout))
    verdict = json.loads(product.cli("audit", "verify", "--json").stdout)
    assert (verdict["ok"], verdict["checked"] > 0) == (True, True), verdict
    assert expect(product.api.get("/v1/audit/verify", headers=product.operator), 200)["ok"] is True

    listed = json.loads(product.cli("audit", "list", "--resident", world.pnr("patient"), "--json").stdout)
    by_clinician = [e for e in listed if e["acting_person"] == CLINICIAN]
    assert [(e["client"], e["operation"], e["action"]) for e in by_clinician] == [
        ("product-ehr", "get_appointment", "read")
    ], listed
    assert world.pnr("patient") not in json.dumps(listed), "the log names residents by their id only"
    product.cli("audit", "list", "--client", "product-ehr", "--csv", str(product.tmp / "access.csv"))
    assert CLINICIAN in (product.tmp / "access.csv").read_text(encoding="utf-8")

    search = {"personnummer": world.pnr("patient"), "acting_person": CLINICIAN}
    found = expect(product.api.post("/v1/audit/search", json=search, headers=product.operator), 200)
    assert [e["id"] for e in found["items"]] == [e["id"] for e in by_clinician]

    own = product.api.post(
        "/v1/portal/access-log",
        json=portal_body(world, "patient"),
        headers=as_resident(product, world, "patient"),
    )
    assert CLINICIAN in {a["acting_person"] for a in expect(own, 200)["accesses"]}

    # The resident's own calls are logged with the resident (by internal id) as the acting person.
    by_resident = [e for e in listed if e["client"] == "product-portal"]
    assert by_resident, listed
    assert all(e["acting_person"].startswith("resident:") for e in by_resident), listed

    # Nothing is older than the retention period (ten years): nothing to archive.
    assert "no sealed events to archive" in words(product.cli("audit", "archive").stdout)


def test_a_portal_acts_only_for_the_resident_its_token_names(product: Product, world: World) -> None:
    """The live API takes the resident from the token (``halsosamtal dev token``), refuses another
    resident's number in the body, and a token whose payload was changed after signing."""
    headers = as_resident(product, world, "patient")
    expect(product.api.post("/v1/portal/access-log", json={}, headers=headers), 200)
    other = product.api.post("/v1/portal/access-log", json=portal_body(world, "booker"), headers=headers)
    assert expect(other, 403)["code"] == "resident-token-other-resident"
    forged = tampered(headers["X-Resident-Token"], **{CLAIM: world.pnr("booker").replace("-", "")})
    refused = product.api.post(
        "/v1/portal/access-log", json={}, headers={**headers, "X-Resident-Token": forged}
    )
    assert expect(refused, 401)["code"] == "resident-token-tampered"
    missing = product.api.post(
        "/v1/portal/access-log", json={}, headers=product.key("product-portal", "portal")
    )
    assert expect(missing, 401)["code"] == "resident-token-missing"


# --- Local development commands -----------------------------------------------------------------


def test_dev_run_serves_this_database_and_stops_on_ctrl_c(product: Product) -> None:
    """``halsosamtal dev run`` (``make run``) on a database that has data: it loads nothing,
    serves the API with a worker, and stops both on Ctrl-C."""
    if product.embedded:
        pytest.skip(
            "dev run stops the embedded servers it finds when it stops, and this session runs on "
            "them; tests/cli/test_dev_run.py covers dev run on embedded servers"
        )
    port = free_port()
    server = product.start("dev-run", "dev", "run", "--port", str(port))
    try:
        deadline = time.monotonic() + 90
        status = 0
        while time.monotonic() < deadline and server.process.poll() is None and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3).status_code
            except httpx.TransportError:
                time.sleep(0.3)
        assert status == 200, server.tail()
        key = (product.data_dir / "demo-operator.key").read_text().strip()
        units = httpx.get(
            f"http://127.0.0.1:{port}/v1/care-units", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        assert units.status_code == 200
        assert len(units.json()) == 12
    finally:
        server.process.send_signal(signal.SIGINT)
        server.process.wait(timeout=60)
    assert server.process.returncode == 0, server.tail()
    log = server.tail(200)
    assert "halsosamtal is running" in log
    assert "stopped" in log
    assert "loading the demo region" not in log


def test_dev_stop_in_a_checkout_without_embedded_servers_stops_nothing(product: Product) -> None:
    # A data folder of its own: in this session's folder it would stop embedded servers in use.
    empty = product.tmp / "empty-data"
    stopped = product.cli("dev", "stop", env={**product.env, "HALSOSAMTAL_DATA_DIR": str(empty)})
    assert "embedded Postgres was not running; embedded Redis was not running" in words(stopped.stdout)


def test_the_api_is_alive(product: Product) -> None:
    assert expect(product.api.get("/healthz"), 200) == {"status": "ok"}
