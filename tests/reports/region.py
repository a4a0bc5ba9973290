"""A generated region run through invitations, reminders, bookings and results, inserted straight
into the tables (set-based), and kept here as plain rows so that tests can recompute every
report figure independently, in plain Python.

Deterministic for a seed. Listing moves, Swedish-midnight times and month boundaries are placed
on purpose where the rules are easy to get wrong.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from stdnum import luhn

from halsosamtal.booking.models import Appointment, Slot
from halsosamtal.invitations.models import Invitation
from halsosamtal.messaging.models import Message
from halsosamtal.programmes.models import ProgrammeYear
from halsosamtal.residents.models import ListingPeriod, Resident
from halsosamtal.results.models import Result, ResultEvent, ResultVersion
from halsosamtal.units.models import CareUnit

STOCKHOLM = ZoneInfo("Europe/Stockholm")
YEAR = 2025
AGES = (40, 50, 60)
TALK_RATE = Decimal("900.00")
START_GRANT = Decimal("800.00")
VALID_UNTIL = dt.date(YEAR + 1, 3, 31)
HABITS = ("tobacco", "alcohol", "physical_activity", "diet")
ACTIONS = ("none", "simple_advice", "advisory_talk", "qualified_advisory_talk")
REFERRALS = (
    "health_coordinator",
    "tobacco_cessation",
    "physical_activity_on_prescription",
    "physician",
    "other",
)
CATEGORIES = ("low_to_moderate", "high", "very_high")
MUNICIPALITIES = ("1380", "1381", "1382")


def local(day: dt.date, hour: int = 10, minute: int = 0) -> dt.datetime:
    """A Swedish wall-clock time as an aware datetime."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=STOCKHOLM)


def hsa(n: int) -> str:
    return f"SE2321000131-E{n:012d}"


@dataclass
class Region:
    year: int
    units: list[dict[str, Any]] = field(default_factory=list)
    residents: list[dict[str, Any]] = field(default_factory=list)
    listings: list[dict[str, Any]] = field(default_factory=list)
    invitations: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    slots: list[dict[str, Any]] = field(default_factory=list)
    appointments: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def unit(self, unit_id: int) -> dict[str, Any]:
        return next(u for u in self.units if u["id"] == unit_id)

    def next_id(self, rows: list[dict[str, Any]]) -> int:
        return max((r["id"] for r in rows), default=0) + 1


class _Builder:
    def __init__(self, seed: int, residents: int) -> None:
        self.rng = random.Random(seed)
        self.count = residents
        self.region = Region(YEAR)
        self.serials: dict[dt.date, int] = {}

    def personnummer(self, birth: dt.date, sex: str) -> str:
        n = self.serials.get(birth, 0) + 1
        self.serials[birth] = n
        serial = n * 10 + (1 if sex == "M" else 2)
        body = f"{birth:%y%m%d}{serial:03d}"
        return f"{birth:%Y%m%d}{serial:03d}{luhn.calc_check_digit(body)}"

    def add(self, rows: list[dict[str, Any]], **values: Any) -> dict[str, Any]:
        values["id"] = len(rows) + 1
        rows.append(values)
        return values

    def build(self) -> Region:
        rng, r = self.rng, self.region
        # Six units: one small (small cells), one not taking part (listed residents, no invitations).
        for n, (muni, participating) in enumerate(
            [("1380", True), ("1380", True), ("1381", True), ("1382", True), ("1382", True), ("1381", False)],
            start=1,
        ):
            self.add(
                r.units,
                hsa_id=hsa(n),
                name=f"Vårdcentralen <{n}> & co",  # markup in a name: the HTML must escape it
                municipality=muni,
                operator="public" if n % 2 else "private",
                participating=participating,
                weekly_capacity=30,
            )
        weights = [30, 30, 20, 25, 2, 15]  # unit 5 is small
        desos = [f"{m}C10{k:02d}" for m in MUNICIPALITIES for k in range(1, 5)]
        for i in range(self.count):
            age = AGES[i % 3]
            birth = dt.date(YEAR - age, 1, 1) + dt.timedelta(days=rng.randrange(365))
            sex = rng.choice("FM")
            unit = rng.choices(r.units, weights)[0]
            municipality = (
                rng.choice([*MUNICIPALITIES, None]) if rng.random() < 0.05 else unit["municipality"]
            )
            deso = (
                None
                if municipality is None or rng.random() < 0.04
                else rng.choice([d for d in desos if d.startswith(municipality)])
            )
            resident = self.add(
                r.residents,
                personnummer=self.personnummer(birth, sex),
                birth_date=birth,
                sex=sex,
                care_unit_id=unit["id"],
                municipality=municipality,
                deso=deso,
                deceased_on=dt.date(YEAR - 1, 12, 20) if rng.random() < 0.01 else None,
            )
            self.listing_history(resident, unit)
        for resident in r.residents:
            unit = r.unit(resident["care_unit_id"])
            if unit["participating"] and resident["deceased_on"] is None:
                self.invite(resident, unit)
        return r

    def listing_history(self, resident: dict[str, Any], unit: dict[str, Any]) -> None:
        """Most were listed at their unit long ago; some moved to it during the year (from
        another unit); a few have no listing history at all (the invitation's unit is used)."""
        rng, r = self.rng, self.region
        roll = rng.random()
        if roll < 0.03:
            return
        if roll < 0.20:
            others = [u for u in r.units if u["id"] != unit["id"] and u["participating"]]
            before = rng.choice(others)
            moved = dt.date(YEAR, rng.randint(2, 10), 1)
            self.add(
                r.listings,
                resident_id=resident["id"],
                care_unit_id=before["id"],
                listed_from=dt.date(2015, 1, 1),
                listed_to=moved,
            )
            self.add(
                r.listings,
                resident_id=resident["id"],
                care_unit_id=unit["id"],
                listed_from=moved,
                listed_to=None,
            )
            resident["moved_on"] = moved
            return
        self.add(
            r.listings,
            resident_id=resident["id"],
            care_unit_id=unit["id"],
            listed_from=dt.date(2012, 3, 1),
            listed_to=None,
        )

    def invite(self, resident: dict[str, Any], unit: dict[str, Any]) -> None:
        rng, r = self.rng, self.region
        age = YEAR - resident["birth_date"].year
        scenario = rng.choices(
            [
                "planned",
                "open",
                "open_cancelled",
                "booked",
                "booked_unsent",
                "attended",
                "completed",
                "completed_after_no_show",
                "no_show",
                "declined",
                "declined_unsent",
                "withdrawn",
                "withdrawn_unsent",
                "expired",
                "retracted",
                "retracted_then_completed",
                "completed_walk_in",
            ],
            [6, 10, 3, 5, 1, 3, 30, 3, 3, 6, 1, 2, 1, 6, 3, 2, 3],
        )[0]
        unsent = scenario in ("planned", "booked_unsent", "declined_unsent", "withdrawn_unsent")
        send_on = dt.date(YEAR, 1, 10) + dt.timedelta(days=rng.randrange(280))
        moved = resident.get("moved_on")
        if moved is not None and rng.random() < 0.4:
            # Sent just after Swedish midnight on the day the listing changed: the UTC date is
            # the day before, the Swedish date is the new unit's.
            send_on = moved
            sent_at = local(send_on, 0, 30)
        else:
            sent_at = local(send_on, rng.randint(7, 17), rng.randrange(60))
        status = {
            "planned": "planned",
            "open": "open",
            "open_cancelled": "open",
            "booked": "booked",
            "booked_unsent": "booked",
            "attended": "attended",
            "completed": "completed",
            "completed_after_no_show": "completed",
            "no_show": "open",
            "declined": "declined",
            "declined_unsent": "declined",
            "withdrawn": "withdrawn",
            "withdrawn_unsent": "withdrawn",
            "expired": "expired",
            "retracted": "attended",
            "retracted_then_completed": "completed",
            "completed_walk_in": "completed",
        }[scenario]
        invitation = self.add(
            r.invitations,
            year=YEAR,
            age=age,
            resident_id=resident["id"],
            care_unit_id=unit["id"],  # follows the listing while planned or open: the current unit
            planned_send_on=send_on,
            status=status,
            sent_at=None if unsent else sent_at,
            reminders_sent=0,
            valid_until=VALID_UNTIL,
        )
        self.message(
            invitation,
            kind="invitation",
            sequence=0,
            send_on=send_on,
            status="planned" if unsent else "sent",
            queued_at=None if unsent else sent_at,
            sent_at=None if unsent else sent_at + dt.timedelta(minutes=5),
        )
        if not unsent:
            self.reminders(invitation, sent_at)
        self.appointments(invitation, scenario, sent_at)

    def reminders(self, invitation: dict[str, Any], sent_at: dt.datetime) -> None:
        """0-2 reminders in every state a reminder message can be in."""
        rng = self.rng
        for sequence in (1, 2):
            if rng.random() < 0.45:
                return
            when = sent_at + dt.timedelta(days=28 * sequence)
            state = rng.choices(
                [
                    "sent",
                    "queued",
                    "failed_at_release",
                    "cancelled_unreleased",
                    "cancelled_after_release",
                    "failed_after_release",
                    "planned",
                ],
                [10, 2, 1, 1, 1, 1, 1],
            )[0]
            released = state in ("sent", "queued", "cancelled_after_release", "failed_after_release")
            invitation["reminders_sent"] = sequence
            self.message(
                invitation,
                kind="reminder",
                sequence=sequence,
                send_on=when.date(),
                status={
                    "sent": "sent",
                    "queued": "queued",
                    "failed_at_release": "failed",
                    "cancelled_unreleased": "cancelled",
                    "cancelled_after_release": "cancelled",
                    "failed_after_release": "failed",
                    "planned": "planned",
                }[state],
                queued_at=when if released else None,
                sent_at=when + dt.timedelta(minutes=3) if state == "sent" else None,
            )

    def message(self, invitation: dict[str, Any], **values: Any) -> None:
        rendered = values["status"] not in ("planned", "cancelled") or values["queued_at"] is not None
        self.add(
            self.region.messages,
            resident_id=invitation["resident_id"],
            invitation_id=invitation["id"],
            channel="letter" if rendered else None,
            body="Välkommen" if rendered else None,
            **values,
        )

    def slot(self, unit_id: int, starts: dt.datetime) -> int:
        row = self.add(
            self.region.slots,
            care_unit_id=unit_id,
            starts_at=starts,
            ends_at=starts + dt.timedelta(minutes=45),
            resource=f"r{len(self.region.slots)}",
            published_by="test",
        )
        return int(row["id"])

    def appoint(self, invitation: dict[str, Any], status: str, starts: dt.datetime) -> int:
        row = self.add(
            self.region.appointments,
            invitation_id=invitation["id"],
            slot_id=self.slot(invitation["care_unit_id"], starts),
            status=status,
            booked_at=starts - dt.timedelta(days=10),
            booked_by="portal",
        )
        return int(row["id"])

    def appointments(self, invitation: dict[str, Any], scenario: str, sent_at: dt.datetime) -> None:
        rng = self.rng
        talk = sent_at + dt.timedelta(days=rng.randint(14, 120), hours=rng.randint(0, 3))
        if talk.date() > VALID_UNTIL:
            talk = local(VALID_UNTIL - dt.timedelta(days=3))
        if scenario == "open_cancelled":
            self.appoint(invitation, "cancelled", talk)
        elif scenario in ("booked", "booked_unsent"):
            if rng.random() < 0.3:
                self.appoint(invitation, "cancelled", talk - dt.timedelta(days=7))
            self.appoint(invitation, "booked", talk)
        elif scenario == "no_show":
            self.appoint(invitation, "no_show", talk)
        elif scenario in ("attended", "completed", "retracted", "retracted_then_completed"):
            appointment = self.appoint(invitation, "attended", talk)
            if scenario != "attended":
                self.result(invitation, scenario, appointment, talk)
        elif scenario == "completed_after_no_show":
            self.appoint(invitation, "no_show", talk - dt.timedelta(days=20))
            self.result(invitation, scenario, self.appoint(invitation, "attended", talk), talk)
        elif scenario == "completed_walk_in":
            # The resident called and the talk was held at once: a result without a booking.
            self.result(invitation, scenario, None, talk)
        elif scenario == "declined" and rng.random() < 0.3:
            self.appoint(invitation, "cancelled", talk)

    def result(
        self, invitation: dict[str, Any], scenario: str, appointment: int | None, held: dt.datetime
    ) -> None:
        rng, r = self.rng, self.region
        resident = r.residents[invitation["resident_id"] - 1]
        result = self.add(
            r.results,
            invitation_id=invitation["id"],
            care_unit_id=invitation["care_unit_id"],
            external_id=f"EHR-{invitation['id']}",
            status="completed",
            current_version=1,
        )
        amended = rng.random() < 0.25
        for version in (1, 2) if amended else (1,):
            self.version(result, version, appointment, held, resident)
        result["current_version"] = 2 if amended else 1
        # A few completions land just after Swedish midnight on the 1st: still the previous
        # month in UTC.
        if rng.random() < 0.1:
            first = dt.date(held.year + held.month // 12, held.month % 12 + 1, 1)
            at = local(first, 0, 20)
        else:
            at = held + dt.timedelta(hours=rng.randint(1, 30))
        self.event(result, "completed", 1, at)
        if amended:
            at += dt.timedelta(days=rng.randint(1, 20))
            self.event(result, "amended", 2, at)
        if scenario in ("retracted", "retracted_then_completed"):
            retracted_at = at + dt.timedelta(days=rng.randint(1, 40))
            self.event(result, "retracted", result["current_version"], retracted_at)
            result["status"] = "retracted"
            if scenario == "retracted_then_completed":
                self.version(result, result["current_version"] + 1, appointment, held, resident)
                result["current_version"] += 1
                self.event(
                    result, "completed", result["current_version"], retracted_at + dt.timedelta(days=5)
                )
                result["status"] = "completed"

    def version(
        self,
        result: dict[str, Any],
        version: int,
        appointment: int | None,
        held: dt.datetime,
        resident: dict[str, Any],
    ) -> None:
        rng = self.rng
        findings = {
            h: rng.choice(["healthy", "unhealthy", "unhealthy"] if h == "diet" else ["healthy", "unhealthy"])
            for h in HABITS
        }
        actions = {
            h: ("none" if findings[h] == "healthy" and rng.random() < 0.8 else rng.choice(ACTIONS))
            for h in HABITS
        }
        bmi = None if rng.random() < 0.05 else Decimal(rng.randint(180, 400)) / 10
        category = rng.choice([*CATEGORIES, None, "low_to_moderate", "low_to_moderate"])
        self.add(
            self.region.versions,
            result_id=result["id"],
            version=version,
            content_hash=f"{result['id']:032x}{version:032x}",
            content={"v": version},
            derived={"bmi": str(bmi) if bmi is not None else None},
            appointment_id=appointment,
            held_at=held,
            practitioner_hsa_id=hsa(900),
            sex=resident["sex"],
            age=YEAR - resident["birth_date"].year,
            known_diabetes=False,
            known_cvd=False,
            bmi=bmi,
            score2_percent=None if category is None else Decimal("3.10"),
            score2_category=category,
            score2_not_applicable="diabetes" if category is None else None,
            **{f"{h}_finding": findings[h] for h in HABITS},
            **{f"{h}_action": actions[h] for h in HABITS},
            referrals=sorted(rng.sample(REFERRALS, rng.choice([0, 0, 0, 1, 1, 2]))),
            score2_version="score2-2021-moderate/1",
            habits_version="socialstyrelsen-2024/1",
            recorded_by="ehr",
        )

    def event(self, result: dict[str, Any], kind: str, version: int, at: dt.datetime) -> None:
        self.add(self.region.events, result_id=result["id"], kind=kind, version=version, at=at, actor="ehr")


def generate(seed: int = 7, residents: int = 700) -> Region:
    return _Builder(seed, residents).build()


def _rows(rows: Iterable[dict[str, Any]], drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in drop} for row in rows]


async def insert_region(sm: async_sessionmaker[AsyncSession], region: Region) -> None:
    """Insert the region's rows in one transaction, then move each id sequence past them."""
    async with sm() as s, s.begin():
        await s.execute(
            insert(ProgrammeYear),
            [
                {
                    "year": region.year,
                    "target_ages": list(AGES),
                    "talk_rate": TALK_RATE,
                    "start_grant": START_GRANT,
                    "reminder_days": [28, 56],
                    "valid_until": VALID_UNTIL,
                }
            ],
        )
        for model, rows in (
            (CareUnit, _rows(region.units)),
            (Resident, _rows(region.residents, ("moved_on",))),
            (ListingPeriod, _rows(region.listings)),
            (Invitation, _rows(region.invitations)),
            (Slot, _rows(region.slots)),
            (Appointment, _rows(region.appointments)),
            (Message, _rows(region.messages)),
            (Result, _rows(region.results)),
            (ResultVersion, _rows(region.versions)),
            (ResultEvent, _rows(region.events)),
        ):
            if rows:
                await s.execute(insert(model), rows)
        await bump_sequences(s)


SEQUENCED = (
    "care_units",
    "residents",
    "listing_periods",
    "invitations",
    "slots",
    "appointments",
    "messages",
    "results",
    "result_versions",
    "result_events",
)


async def bump_sequences(s: AsyncSession) -> None:
    for table in SEQUENCED:
        await s.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            )
        )
