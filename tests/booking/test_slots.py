"""Centres publish, list and withdraw bookable times."""

from __future__ import annotations

import datetime as dt

import httpx

from halsosamtal.booking.schemas import WeeklyTemplate
from halsosamtal.booking.slots import expand_template
from tests.booking.support import SM, Centre, MakeUnit, centre, publish
from tests.conftest import KeyMaker

TEMPLATE = {
    "first_day": "2027-05-03",
    "last_day": "2027-05-09",
    "weekdays": ["tue", "thu"],
    "day_starts": "08:00",
    "day_ends": "12:00",
    "talk_minutes": 45,
}


async def test_a_weekly_template_gives_talk_length_times_and_skips_holidays(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker
) -> None:
    where = await centre(make_unit, make_key)
    response = await api.post(where.slots_url + "/template", json=TEMPLATE, headers=where.ehr)
    assert response.status_code == 200, response.text
    body = response.json()
    # Tuesday 4 May: 08:00, 08:45, 09:30, 10:15, 11:00 (11:45 would end after 12:00).
    # Thursday 6 May is Ascension Day (Kristi himmelsfärdsdag).
    assert body["created"] == 5
    assert body["skipped_days"] == [{"date": "2027-05-06", "reason": "Kristi himmelsfärdsdag"}]
    assert body["first_starts_at"] == "2027-05-04T08:00:00+02:00"
    assert body["last_starts_at"] == "2027-05-04T11:00:00+02:00"

    listed = await api.get(
        where.slots_url, params={"first_day": "2027-05-01", "last_day": "2027-05-31"}, headers=where.ehr
    )
    assert [s["starts_at"][11:16] for s in listed.json()["items"]] == [
        "08:00",
        "08:45",
        "09:30",
        "10:15",
        "11:00",
    ]
    assert {s["status"] for s in listed.json()["items"]} == {"free"}
    assert listed.json()["items"][0]["ends_at"] == "2027-05-04T08:45:00+02:00"

    again = await api.post(where.slots_url + "/template", json=TEMPLATE, headers=where.ehr)
    assert (again.json()["created"], again.json()["already_published"]) == (0, 5)


def test_template_times_keep_the_wall_clock_across_summer_time() -> None:
    # Summer time starts on Sunday 26 March 2028: the Friday before is +01:00, the Monday after +02:00.
    slots, skipped = expand_template(
        WeeklyTemplate.model_validate(
            {**TEMPLATE, "first_day": "2028-03-24", "last_day": "2028-03-27", "weekdays": ["fri", "mon"]}
        )
    )
    assert skipped == []
    starts = [s.starts_at.isoformat() for s in slots if (s.starts_at.hour, s.starts_at.minute) == (8, 0)]
    assert starts == ["2028-03-24T08:00:00+01:00", "2028-03-27T08:00:00+02:00"]


def test_midsummer_christmas_and_new_years_eve_are_skipped() -> None:
    slots, skipped = expand_template(
        WeeklyTemplate.model_validate(
            {**TEMPLATE, "first_day": "2027-06-21", "last_day": "2027-06-27", "weekdays": ["fri"]}
        )
    )
    assert (slots, [s.reason for s in skipped]) == ([], ["Midsommarafton"])


async def test_a_template_with_no_times_is_a_clear_error(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker
) -> None:
    where = await centre(make_unit, make_key)
    only_holiday = {**TEMPLATE, "first_day": "2027-05-06", "last_day": "2027-05-06", "weekdays": ["thu"]}
    response = await api.post(where.slots_url + "/template", json=only_holiday, headers=where.ehr)
    assert response.status_code == 422
    assert response.json()["code"] == "template-empty"
    bad = await api.post(
        where.slots_url + "/template", json={**TEMPLATE, "day_ends": "07:00"}, headers=where.ehr
    )
    assert bad.status_code == 422
    assert "day_ends must be after day_starts" in bad.json()["detail"]


async def test_explicit_times_must_be_aware_and_must_not_overlap(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker
) -> None:
    where = await centre(make_unit, make_key)
    naive = await api.post(
        where.slots_url,
        json={"slots": [{"starts_at": "2027-03-02T08:00:00", "ends_at": "2027-03-02T08:45:00"}]},
        headers=where.ehr,
    )
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["pointer"] == "/slots/0/starts_at"

    await publish(api, where, "2027-03-02T08:00:00+01:00")
    overlapping = await api.post(
        where.slots_url,
        json={
            "slots": [
                {"starts_at": "2027-03-02T10:00:00+01:00", "ends_at": "2027-03-02T10:30:00+01:00"},
                {"starts_at": "2027-03-02T08:30:00+01:00", "ends_at": "2027-03-02T09:00:00+01:00"},
            ]
        },
        headers=where.ehr,
    )
    assert overlapping.status_code == 409
    assert overlapping.json()["code"] == "slot-overlaps"
    assert overlapping.json()["field"] == "slots/1"
    # Nothing of the refused request was published.
    listed = await api.get(
        where.slots_url, params={"first_day": "2027-03-02", "last_day": "2027-03-02"}, headers=where.ehr
    )
    assert len(listed.json()["items"]) == 1
    # Another resource (a second nurse) may have the same time.
    assert len(await publish(api, where, "2027-03-02T08:00:00+01:00", resource="Sköterska 2")) == 1


async def test_listing_pages_by_time(api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker) -> None:
    where = await centre(make_unit, make_key)
    await api.post(
        where.slots_url + "/template",
        json={**TEMPLATE, "first_day": "2027-03-01", "last_day": "2027-03-31", "weekdays": ["mon"]},
        headers=where.ehr,
    )
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"first_day": "2027-03-01", "last_day": "2027-03-31", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get(where.slots_url, params=params, headers=where.ehr)).json()
        seen += [s["starts_at"] for s in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    forged = await api.get(
        where.slots_url,
        params={"first_day": "2027-03-01", "last_day": "2027-03-31", "cursor": "WyJub3QgYSB0aW1lIiwgMV0"},
        headers=where.ehr,
    )
    assert (forged.status_code, forged.json()["errors"][0]["pointer"]) == (422, "/cursor")
    # Mondays 1, 8, 15 and 22 March; 29 March is Easter Monday.
    assert len(seen) == 4 * 5
    assert seen == sorted(seen, key=dt.datetime.fromisoformat)


async def test_an_ehr_client_acts_only_for_its_own_unit(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    mine, theirs = await centre(make_unit, make_key), await centre(make_unit, make_key)
    response = await api.post(theirs.slots_url + "/template", json=TEMPLATE, headers=mine.ehr)
    assert response.status_code == 403
    assert (
        await api.get(
            theirs.slots_url, params={"first_day": "2027-05-01", "last_day": "2027-05-31"}, headers=mine.ehr
        )
    ).status_code == 403


async def test_withdrawing_a_free_time_keeps_it_marked_withdrawn(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker
) -> None:
    where: Centre = await centre(make_unit, make_key)
    (slot_id,) = await publish(api, where, "2027-03-02T08:00:00+01:00")
    first = await api.delete(f"{where.slots_url}/{slot_id}", headers=where.ehr)
    assert first.status_code == 200
    assert first.json()["status"] == "withdrawn"
    assert (await api.delete(f"{where.slots_url}/{slot_id}", headers=where.ehr)).json()[
        "status"
    ] == "withdrawn"
    # Publishing the same time again opens it again.
    again = await api.post(
        where.slots_url,
        json={"slots": [{"starts_at": "2027-03-02T08:00:00+01:00", "ends_at": "2027-03-02T08:45:00+01:00"}]},
        headers=where.ehr,
    )
    assert again.json()["reopened"] == 1
    assert (await api.get(f"{where.slots_url}/{slot_id}", headers=where.ehr)).json()["status"] == "free"
    assert (await api.delete(f"{where.slots_url}/999999", headers=where.ehr)).status_code == 404
