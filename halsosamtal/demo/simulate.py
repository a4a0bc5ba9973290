"""A demo region's year in progress, made by the real services at simulated instants.

From 1 January of the programme year to the day given, day by day, with the service's clock
set (:func:`halsosamtal.core.clock.frozen_at`) to the instant each thing happens:

* 1 January: the care units and the residents register (the deterministic demo generator in
  :mod:`halsosamtal.residents.demo`) are imported, a Care Need Index per DeSO area, the year's
  programme (ages 40, 50, 60), and each participating unit's bookable times (weekday mornings,
  from its weekly capacity);
* 2 January: the invitation batch for the year;
* every weekday at 06:00: the release of due messages, the reminder run and a delivery pass
  (the letters go to the day's print file, as the worker's jobs do);
* residents answer (book, decline, or do nothing) some days after their letter or a reminder,
  pick one of the free times the portal search offers, and some move or cancel; at the time the
  unit records a no-show (some book again) or the talk, and its EHR posts the result (measurements
  and living habits drawn from Swedish-like distributions, SCORE2 derived by the service); some
  results are amended later, and a few retracted;
* on the 8th of each month the operator closes the month before (the reimbursement statement).

Nothing is written behind the services' back: every row comes from a service call, so every
invariant they keep holds. Every choice comes from ``random.Random`` seeded with the seed and
the resident's personnummer, never the clock or a row id (ids depend on the batch's concurrent
writers), and events run in a fixed order, so the same seed and day give the same content.
Each simulated day's resident and centre actions run in one transaction (each action in its own
savepoint, so a refusal, e.g. a time taken, leaves the rest of the day standing).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import io
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from halsosamtal.access.schemas import Principal
from halsosamtal.audit.trail import Who
from halsosamtal.booking import service as booking
from halsosamtal.booking.schemas import MAX_TEMPLATE_DAYS, WeeklyTemplate
from halsosamtal.booking.slots import publish_template
from halsosamtal.core import clock
from halsosamtal.core.database import session_scope
from halsosamtal.core.errors import DomainError
from halsosamtal.core.settings import Settings
from halsosamtal.invitations import batch, lifecycle
from halsosamtal.messaging.outbox import deliver_due
from halsosamtal.programmes.schemas import ProgrammeRules
from halsosamtal.programmes.service import set_year
from halsosamtal.register.service import import_register
from halsosamtal.reports.cni import import_cni
from halsosamtal.reports.reimbursement import close_month
from halsosamtal.residents.demo import demo_care_units, write_care_units_csv, write_demo_csv
from halsosamtal.results import service as results
from halsosamtal.results.schemas import ResultIn
from halsosamtal.units.service import import_care_units

log = logging.getLogger("halsosamtal.demo")

AGES = (40, 50, 60)
TALK_RATE = Decimal("1000")
REMINDER_DAYS = (28, 56)
TALK_MINUTES = 45
OPERATOR = "demo-operator"
PORTAL = "demo-portal"
WORKER = "demo-worker"


class DemoNotEmpty(DomainError):
    code = "demo-not-empty"
    title = "The database is not empty"
    status = 409


@dataclass
class SimulationSummary:
    """What the simulation did, and how long it took."""

    year: int
    as_of: dt.date
    residents: int = 0
    care_units: int = 0
    invitations: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds spent per phase (register, batch, the worker's jobs, residents and centres)."""

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[phase] = self.phases.get(phase, 0.0) + time.perf_counter() - started


def simulated_year(as_of: dt.date) -> int:
    """The programme year a demo on ``as_of`` shows: this year from April, else the year before
    (whose invitations are valid until 31 March), so that there is always a season to show."""
    return as_of.year if as_of.month >= 4 else as_of.year - 1


def _rng(seed: int, *key: object) -> random.Random:
    """A generator for one decision: from the seed and natural keys only, never ids or time."""
    digest = hashlib.sha256(":".join(map(str, (seed, *key))).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - made-up demo data, not secrets


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    when = clock.wall_clock(day, dt.time(hour, minute))
    return when if when is not None else clock.start_of_day(day) + dt.timedelta(hours=hour + 1)


# Whether the morning's jobs could find anything: a planned message due (the release, and its
# cancelling of orphans, act on no other), or an open invitation whose next reminder's day has
# come (the reminder run's own conditions, less its gap after a missed run: a superset).
_ANYTHING_DUE = text("""
SELECT EXISTS (SELECT 1 FROM messages WHERE status = 'planned' AND send_on <= CAST(:day AS date))
    OR EXISTS (
      SELECT 1 FROM invitations i JOIN programme_years py ON py.year = i.year
      WHERE i.status = 'open' AND i.sent_at IS NOT NULL
        AND i.valid_until >= CAST(:day AS date) AND py.valid_until >= CAST(:day AS date)
        AND i.reminders_sent < cardinality(py.reminder_days)
        AND (i.sent_at AT TIME ZONE 'Europe/Stockholm')::date + py.reminder_days[i.reminders_sent + 1]
            <= CAST(:day AS date))
""")


# --- Residents' and centres' behaviour ------------------------------------------------------------


@dataclass(order=True)
class _Event:
    at: dt.datetime
    key: str
    seq: int
    kind: str = field(compare=False)
    data: dict[str, Any] = field(compare=False, default_factory=dict)


def _d(value: float, places: int) -> Decimal:
    return Decimal(str(round(value, places)))


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _action(rng: random.Random, unhealthy: bool) -> str:
    if unhealthy:
        return rng.choices(("simple_advice", "advisory_talk", "qualified_advisory_talk"), (35, 45, 20))[0]
    return rng.choices(("none", "simple_advice"), (80, 20))[0]


def talk_result(
    rng: random.Random, *, sex: str, age: int, external_id: str, appointment_id: int, held_at: dt.datetime
) -> ResultIn:
    """A talk's result with measurements and habits drawn like a Swedish 40-60 population's
    (national public health survey and primary-care registers, roughly): about one in ten
    smokes daily, one in five snuses daily among men, a fifth drinks riskily, a third moves
    too little; blood pressure, cholesterol and glucose rise with age."""
    male = sex == "M"
    years = age - 40
    height = rng.gauss(179.5 if male else 166.0, 6.8 if male else 6.2)
    bmi = _clamp(rng.lognormvariate(math.log(26.3 if male else 25.6), 0.15), 17.0, 48.0)
    weight = bmi * (height / 100) ** 2
    waist = _clamp((0.52 if male else 0.49) * height + (bmi - 25) * 2.4 + rng.gauss(0, 4.5), 58, 160)
    systolic = _clamp(rng.gauss(121 + 0.55 * years + (5 if male else 0) + (bmi - 26) * 0.8, 14), 92, 210)
    diastolic = _clamp(0.5 * systolic + rng.gauss(17, 6), 50, systolic - 15)
    diabetes = rng.random() < 0.015 + 0.0012 * years + (0.02 if bmi > 32 else 0)
    cvd = rng.random() < 0.004 + 0.0009 * years + (0.004 if male else 0)
    total = _clamp(rng.gauss(5.05 + 0.015 * years, 0.9), 2.6, 10.5)
    hdl = _clamp(rng.gauss(1.28 if male else 1.62, 0.3) - (bmi - 26) * 0.015, 0.6, 3.2)
    glucose = _clamp(rng.gauss(7.9, 1.6) if diabetes else rng.gauss(5.3 + 0.008 * years, 0.5), 3.5, 20)
    hba1c = _clamp(rng.gauss(55, 10) if diabetes else rng.gauss(35 + 0.08 * years, 3.5), 25, 120)
    lab = rng.random()
    smoking = rng.choices(("never", "former", "non_daily", "daily"), (62, 24, 4, 10))[0]
    snus = rng.choices(("never", "former", "non_daily", "daily"), (60, 14, 5, 21) if male else (86, 5, 3, 6))[
        0
    ]
    audit_c = min(12, max(0, round(rng.gauss(4.2 if male else 3.1, 2.0))))
    exercise = rng.choices((0, 30, 60, 90, 120, 180, 240), (18, 14, 18, 14, 16, 12, 8))[0]
    everyday = rng.choices((0, 30, 60, 90, 150, 210, 300), (6, 10, 14, 16, 22, 18, 14))[0]
    diet = min(12, max(0, round(rng.gauss(6.2 if male else 7.0, 2.3))))
    tobacco_bad = "daily" in (smoking, snus)
    alcohol_bad = audit_c >= (6 if male else 5)
    activity_bad = 2 * exercise + everyday < 150
    diet_bad = diet <= 4
    referrals: list[str] = []
    if tobacco_bad and rng.random() < 0.35:
        referrals.append("tobacco_cessation")
    if activity_bad and rng.random() < 0.3:
        referrals.append("physical_activity_on_prescription")
    if (alcohol_bad or diet_bad) and rng.random() < 0.2:
        referrals.append("health_coordinator")
    if (systolic >= 160 or total >= 8 or diabetes or glucose >= 7) and rng.random() < 0.6:
        referrals.append("physician")
    return ResultIn.model_validate(
        {
            "appointment_id": appointment_id,
            "external_id": external_id,
            "held_at": held_at,
            "practitioner_hsa_id": f"SE2321000115-P{rng.randrange(10**11):011d}",
            "measurements": {
                "systolic": _d(systolic, 0),
                "diastolic": _d(diastolic, 0),
                "height": _d(height, 1),
                "weight": _d(weight, 1),
                "waist": _d(waist, 0),
                "fasting_glucose": _d(glucose, 1) if lab < 0.7 else None,
                "hba1c": _d(hba1c, 0) if lab >= 0.4 else None,
                "total_cholesterol": _d(total, 1),
                "hdl": _d(hdl, 2),
                "ldl": _d(max(0.5, total - hdl - 0.6), 1),
                "triglycerides": _d(_clamp(rng.lognormvariate(math.log(1.2), 0.4), 0.3, 8), 1),
                "known_diabetes": diabetes,
                "known_cvd": cvd,
            },
            "habits": {
                "tobacco": {"smoking": smoking, "snus": snus, "action": _action(rng, tobacco_bad)},
                "alcohol": {"audit_c": audit_c, "action": _action(rng, alcohol_bad)},
                "physical_activity": {
                    "exercise_minutes": exercise,
                    "everyday_minutes": everyday,
                    "action": _action(rng, activity_bad),
                },
                "diet": {"index": diet, "action": _action(rng, diet_bad)},
            },
            "referrals": referrals,
        }
    )


def _amended(body: ResultIn, rng: random.Random) -> ResultIn:
    """The same talk corrected: a weight typed wrong, or the lab's cholesterol come in."""
    data = body.model_dump(mode="python")
    m = data["measurements"]
    if rng.random() < 0.5:
        m["weight"] = (m["weight"] + Decimal("1.0")).quantize(Decimal("0.1"))
    else:
        m["total_cholesterol"] = (m["total_cholesterol"] + Decimal("0.3")).quantize(Decimal("0.1"))
    return ResultIn.model_validate(data)


class _Simulator:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        seed: int,
        year: int,
        as_of: dt.date,
        summary: SimulationSummary,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.seed = seed
        self.year = year
        self.as_of = as_of
        # Everything up to 07:00 on the day given: that morning's jobs have run.
        self.end = _at(as_of, 7)
        self.summary = summary
        self.progress = progress
        self.events: list[_Event] = []
        self.seq = 0
        self.units: dict[int, str] = {}
        self.principals: dict[int, Principal] = {}
        self.results_posted = 0
        self.unit_of: dict[int, int] = {}

    # -- scheduling

    def schedule(self, at: dt.datetime, key: str, kind: str, **data: Any) -> None:
        if at > self.end:
            return
        self.seq += 1
        heapq.heappush(self.events, _Event(at, key, self.seq, kind, data))

    def ehr(self, unit_id: int) -> Principal:
        principal = self.principals.get(unit_id)
        if principal is None:
            # The unit's EHR adapter: a principal bound to its unit, as the API makes one.
            principal = Principal(
                client_id=0,
                name=f"demo-ehr {self.units[unit_id]}",
                role="ehr",
                care_unit_ids=frozenset({unit_id}),
            )
            self.principals[unit_id] = principal
        return principal

    # -- the year

    async def run(self) -> None:
        first = dt.date(self.year, 1, 1)
        with clock.frozen_at(_at(first, 9)):
            async with session_scope(self.sessionmaker) as session:
                self.units = {
                    int(r.id): str(r.hsa_id)
                    for r in await session.execute(
                        text("SELECT id, hsa_id FROM care_units WHERE participating ORDER BY hsa_id")
                    )
                }
                await self.publish_times(session, first)
        with clock.frozen_at(_at(first + dt.timedelta(days=1), 5)):
            async with session_scope(self.sessionmaker) as session:
                batch_id = await batch.new_batch(
                    session, self.year, actor=OPERATOR, as_of=first + dt.timedelta(days=1), inline=True
                )
            done = await batch.run(
                self.sessionmaker, self.year, first + dt.timedelta(days=1), batch_id=batch_id, actor=OPERATOR
            )
            self.summary.invitations = done.created
        for month in range(1, 13):
            closes = dt.date(self.year, month, 1)
            closes = dt.date(closes.year + (closes.month == 12), closes.month % 12 + 1, 8)
            self.schedule(_at(closes, 9), f"close-{month:02d}", "close", month=month)
        day = first + dt.timedelta(days=1)
        while day <= self.as_of:
            if day.weekday() < 5:
                await self.daily_jobs(day)
            await self.run_day(day)
            if self.progress is not None and day.day == 1:
                self.progress(f"reached {day:%Y-%m-%d}")
            day += dt.timedelta(days=1)

    async def publish_times(self, session: AsyncSession, first: dt.date) -> None:
        """Each participating unit's times, enough for its weekly capacity, for the whole season."""
        last = min(self.end.date() + dt.timedelta(weeks=12), dt.date(self.year + 1, 3, 31))
        last = min(last, first + dt.timedelta(days=MAX_TEMPLATE_DAYS - 1))
        capacities = {
            int(r.id): int(r.weekly_capacity)
            for r in await session.execute(
                text("SELECT id, weekly_capacity FROM care_units WHERE participating")
            )
        }
        for unit_id in sorted(self.units):
            per_day = max(2, min(10, math.ceil(capacities[unit_id] / 5)))
            ends = dt.datetime.combine(first, dt.time(8)) + dt.timedelta(minutes=TALK_MINUTES * per_day)
            template = WeeklyTemplate(
                first_day=first,
                last_day=last,
                weekdays=["mon", "tue", "wed", "thu", "fri"],
                day_starts=dt.time(8),
                day_ends=ends.time(),
                talk_minutes=TALK_MINUTES,
            )
            published = await publish_template(
                session, unit_id, template, actor=f"demo-ehr {self.units[unit_id]}"
            )
            self.summary.count("slots published", published.created)

    async def daily_jobs(self, day: dt.date) -> None:
        """The worker's morning: release what is due, reminders, a delivery pass."""
        async with session_scope(self.sessionmaker) as session:
            if not await session.scalar(_ANYTHING_DUE, {"day": day}):
                return  # the jobs would find nothing to do: skipped, which changes nothing
        # The reminder run releases everything due that day, letters and reminders alike.
        with clock.frozen_at(_at(day, 6)), self.summary.timed("release and reminders"):
            reminders = await lifecycle.run_reminders(self.sessionmaker, self.settings, day, actor=WORKER)
        if reminders.release.queued:  # else a delivery pass would find nothing due
            with clock.frozen_at(_at(day, 6, 30)), self.summary.timed("delivery"):
                delivered = await deliver_due(self.sessionmaker, self.settings)
            self.summary.count("messages delivered", delivered.sent)
        self.summary.count("messages released", reminders.release.queued)
        self.summary.count("reminders", reminders.created)
        if not reminders.release.opened:
            return
        # Who got their letter today, and what each will do about it.
        start, end = clock.day_bounds(day)
        async with session_scope(self.sessionmaker) as session:
            opened = (
                await session.execute(
                    text(
                        "SELECT i.id, i.age, i.care_unit_id, r.personnummer FROM invitations i "
                        "JOIN residents r ON r.id = i.resident_id "
                        "WHERE i.year = :year AND i.sent_at >= :start AND i.sent_at < :end "
                        "ORDER BY r.personnummer"
                    ),
                    {"year": self.year, "start": start, "end": end},
                )
            ).all()
        for row in opened:
            self.unit_of[row.id] = row.care_unit_id
            self.plan_answer(day, row.id, row.personnummer, row.age, row.care_unit_id)

    def plan_answer(self, day: dt.date, invitation_id: int, pnr: str, age: int, unit_id: int) -> None:
        """About half take part (the programme's planning figure), a third of them only after
        a reminder; one in twenty declines."""
        rng = _rng(self.seed, "answer", pnr, self.year, age)
        roll = rng.random()
        if roll < 0.05:
            kind, delay = "decline", rng.randint(2, 25)
        elif roll < 0.38:
            kind, delay = "book", rng.randint(1, 24)
        elif roll < 0.48:
            kind, delay = "book", REMINDER_DAYS[0] + rng.randint(1, 14)
        elif roll < 0.54:
            kind, delay = "book", REMINDER_DAYS[1] + rng.randint(1, 16)
        else:
            return
        at = _at(day + dt.timedelta(days=delay), rng.randint(7, 21), rng.randrange(60))
        self.schedule(at, pnr, kind, invitation_id=invitation_id, pnr=pnr, age=age, unit_id=unit_id, tries=0)

    # -- one day's actions

    async def run_day(self, day: dt.date) -> None:
        day_end = clock.end_of_day(day)
        if not self.events or self.events[0].at >= day_end:
            return
        async with session_scope(self.sessionmaker) as session:
            while self.events and self.events[0].at < day_end:
                kind = self.events[0].kind
                with self.summary.timed(kind):
                    await self._one(session)

    async def _one(self, session: AsyncSession) -> None:
        event = heapq.heappop(self.events)
        with clock.frozen_at(event.at):
            try:
                async with session.begin_nested():
                    await self.act(session, event)
            except DomainError as exc:
                # A refusal the service gives a real client (a time taken meanwhile, an
                # invitation closed): the resident or centre simply does not get their way.
                name = f"{event.kind}: {exc.code}"
                self.summary.refused[name] = self.summary.refused.get(name, 0) + 1

    async def act(self, session: AsyncSession, event: _Event) -> None:
        handler: dict[str, Callable[[AsyncSession, _Event], Awaitable[None]]] = {
            "book": self.book,
            "decline": self.decline,
            "move": self.move,
            "cancel": self.cancel,
            "talk": self.talk,
            "post": self.post,
            "amend": self.amend,
            "retract": self.retract,
            "close": self.close,
        }
        await handler[event.kind](session, event)

    async def book(self, session: AsyncSession, event: _Event) -> None:
        data, pnr = event.data, event.data["pnr"]
        rng = _rng(self.seed, "book", pnr, event.at.isoformat())
        status = await session.scalar(
            text("SELECT status FROM invitations WHERE id = :id"), {"id": data["invitation_id"]}
        )
        if status not in ("planned", "open"):
            return
        today = clock.local_today()
        wanted = today + dt.timedelta(days=rng.choice((7, 9, 12, 16, 21, 28)))
        slot = await self._free_slot(session, pnr, data["invitation_id"], wanted, rng)
        if slot is None:
            self.summary.count("found no free time")
            return
        appointment = await booking.book(session, pnr, data["invitation_id"], slot, actor=PORTAL)
        self.summary.count("booked")
        self._after_booking(pnr, data, appointment.id, appointment.starts_at, appointment.ends_at, rng)

    async def _free_slot(
        self, session: AsyncSession, pnr: str, invitation_id: int, wanted: dt.date, rng: random.Random
    ) -> int | None:
        for first_day in (wanted, None):
            page = await booking.search_free(
                session, pnr, invitation_id, first_day=first_day, last_day=None, limit=6, cursor=None
            )
            if page.items:
                return rng.choice(page.items).id
        return None

    def _after_booking(
        self,
        pnr: str,
        data: dict[str, Any],
        appointment_id: int,
        starts_at: dt.datetime,
        ends_at: dt.datetime,
        rng: random.Random,
    ) -> None:
        now = clock.now()
        room = (starts_at - now).days - 2
        roll = rng.random()
        common = {**data, "appointment_id": appointment_id, "starts_at": starts_at, "ends_at": ends_at}
        if roll < 0.04 and room > 1:
            when = now + dt.timedelta(days=rng.randint(1, room), hours=rng.randint(0, 8))
            self.schedule(when, pnr, "cancel", **common)
        elif roll < 0.09 and room > 1:
            when = now + dt.timedelta(days=rng.randint(1, room), hours=rng.randint(0, 8))
            self.schedule(when, pnr, "move", **common)
        else:
            self.schedule(starts_at, pnr, "talk", **common)

    async def decline(self, session: AsyncSession, event: _Event) -> None:
        data = event.data
        status = await session.scalar(
            text("SELECT status FROM invitations WHERE id = :id"), {"id": data["invitation_id"]}
        )
        if status in ("planned", "open"):
            await lifecycle.decline(session, data["pnr"], data["invitation_id"], actor=PORTAL)
            self.summary.count("declined")

    async def move(self, session: AsyncSession, event: _Event) -> None:
        data, pnr = event.data, event.data["pnr"]
        rng = _rng(self.seed, "move", pnr, event.at.isoformat())
        later = clock.local(data["starts_at"]).date() + dt.timedelta(days=rng.randint(3, 21))
        slot = await self._free_slot(session, pnr, data["invitation_id"], later, rng)
        if slot is None:
            self.schedule(data["starts_at"], pnr, "talk", **data)
            return
        moved = await booking.move(session, pnr, data["appointment_id"], slot, actor=PORTAL)
        self.summary.count("moved")
        self.schedule(
            moved.starts_at, pnr, "talk", **{**data, "starts_at": moved.starts_at, "ends_at": moved.ends_at}
        )

    async def cancel(self, session: AsyncSession, event: _Event) -> None:
        data, pnr = event.data, event.data["pnr"]
        await booking.cancel_by_resident(session, pnr, data["appointment_id"], actor=PORTAL)
        self.summary.count("cancelled")
        rng = _rng(self.seed, "rebook", pnr, event.at.isoformat())
        if rng.random() < 0.5 and data["tries"] < 2:
            again = clock.local_today() + dt.timedelta(days=rng.randint(2, 10))
            self.schedule(_at(again, rng.randint(8, 20)), pnr, "book", **{**data, "tries": data["tries"] + 1})

    async def talk(self, session: AsyncSession, event: _Event) -> None:
        """The time has come: the resident does not come, or the talk is held and its result
        posted at once, or attendance is recorded now and the result a few days later."""
        data, pnr = event.data, event.data["pnr"]
        status = await session.scalar(
            text("SELECT status FROM appointments WHERE id = :id"), {"id": data["appointment_id"]}
        )
        if status != "booked":
            return
        rng = _rng(self.seed, "talk", pnr, data["starts_at"].isoformat())
        principal = await self._principal_of(session, data["invitation_id"])
        roll = rng.random()
        if roll < 0.07:
            await booking.record_attendance(session, data["appointment_id"], "no_show", principal)
            self.summary.count("no-shows")
            if rng.random() < 0.45 and data["tries"] < 2:
                again = clock.local_today() + dt.timedelta(days=rng.randint(3, 20))
                self.schedule(
                    _at(again, rng.randint(8, 20)), pnr, "book", **{**data, "tries": data["tries"] + 1}
                )
            return
        ends = data["ends_at"]
        if roll < 0.25:
            self.schedule(ends, pnr, "post", attend_first=True, **data)
            later = clock.local(ends).date() + dt.timedelta(days=rng.randint(1, 6))
            self.schedule(_at(later, rng.randint(8, 16)), pnr, "post", attend_first=False, **data)
        else:
            self.schedule(
                ends + dt.timedelta(minutes=rng.randint(5, 90)), pnr, "post", attend_first=False, **data
            )

    async def _principal_of(self, session: AsyncSession, invitation_id: int) -> Principal:
        # The invitation's unit, which a listing move could change (not in the demo's register).
        unit_id = self.unit_of.get(invitation_id)
        if unit_id is None:
            unit_id = int(
                await session.scalar(
                    text("SELECT care_unit_id FROM invitations WHERE id = :id"), {"id": invitation_id}
                )
            )
        return self.ehr(unit_id)

    async def post(self, session: AsyncSession, event: _Event) -> None:
        data, pnr = event.data, event.data["pnr"]
        principal = await self._principal_of(session, data["invitation_id"])
        if data.get("attend_first"):
            await booking.record_attendance(session, data["appointment_id"], "attended", principal)
            self.summary.count("attended, result to come")
            return
        sex = await session.scalar(text("SELECT sex FROM residents WHERE personnummer = :p"), {"p": pnr})
        rng = _rng(self.seed, "result", pnr, self.year, data["age"])
        external_id = f"EHR-{hashlib.sha256(f'{self.seed}:{pnr}:{self.year}'.encode()).hexdigest()[:12]}"
        body = talk_result(
            rng,
            sex=str(sex),
            age=data["age"],
            external_id=external_id,
            appointment_id=data["appointment_id"],
            held_at=data["starts_at"],
        )
        posted, _ = await results.post(session, body, principal)
        self.summary.count("results")
        self.results_posted += 1
        follow = {"result_id": posted.id, "pnr": pnr, "invitation_id": data["invitation_id"], "body": body}
        # The first result is always amended and the second always retracted (after its month is
        # closed: a reversal line), so the demo shows both; then a few of the others.
        roll = rng.random()
        if self.results_posted == 1 or roll < 0.03:
            self.schedule(
                clock.now() + dt.timedelta(days=rng.randint(3, 20), hours=2), pnr, "amend", **follow
            )
        elif self.results_posted == 2 or roll < 0.036:
            self.schedule(clock.now() + dt.timedelta(days=rng.randint(35, 45)), pnr, "retract", **follow)

    async def amend(self, session: AsyncSession, event: _Event) -> None:
        data = event.data
        principal = await self._principal_of(session, data["invitation_id"])
        rng = _rng(self.seed, "amend", data["pnr"])
        posted, _ = await results.post(session, _amended(data["body"], rng), principal)
        self.summary.count(f"results {posted.change}")

    async def retract(self, session: AsyncSession, event: _Event) -> None:
        data = event.data
        principal = await self._principal_of(session, data["invitation_id"])
        await results.retract(
            session, data["result_id"], principal, reason="recorded for the wrong patient (demo)"
        )
        self.summary.count("results retracted")

    async def close(self, session: AsyncSession, event: _Event) -> None:
        await close_month(session, self.year, event.data["month"], actor=OPERATOR)
        self.summary.count("months closed")


# --- The register ------------------------------------------------------------------------------------


def _cni_csv(desos: Iterable[str], seed: int) -> list[str]:
    """A Care Need Index per DeSO area: made up (SCB's real CNI is not open data), around 1 with
    a long tail of areas with high need, as the real index is shaped."""
    lines = ["deso,cni\n"]
    for deso in sorted(desos):
        cni = _clamp(_rng(seed, "cni", deso).lognormvariate(0, 0.45), 0.3, 4.5)
        lines.append(f"{deso},{cni:.2f}\n")
    return lines


async def load_register(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    seed: int,
    residents: int,
    care_units: int,
    year: int,
    audit: bool,
) -> tuple[int, int]:
    """The demo register as on 1 January: units, residents (through the register import), CNI
    and the programme year. Returns (care units, residents imported)."""
    first = dt.date(year, 1, 1)
    units = demo_care_units(care_units, seed=seed)
    units_csv, residents_csv = io.StringIO(), io.StringIO()
    write_care_units_csv(units_csv, units)
    write_demo_csv(
        residents_csv, residents=residents, seed=seed, bad_rows=0.0, reference=first, care_units=units
    )

    async def chunks(text: str) -> AsyncIterator[bytes]:
        data = text.encode("utf-8")
        for start in range(0, len(data), 1 << 20):
            yield data[start : start + (1 << 20)]

    with clock.frozen_at(_at(first, 8)):
        async with session_scope(sessionmaker) as session:
            await import_care_units(
                session,
                chunks(units_csv.getvalue()),
                source="demo",
                actor=OPERATOR,
                as_of=first,
            )
            summary = await import_register(
                session,
                chunks(residents_csv.getvalue()),
                as_of=first,
                snapshot=False,
                source="demo",
                actor=OPERATOR,
                reject_limit=0,
                who=Who(client_id=None, client_name=OPERATOR, role="operator"),
                audit=audit,
            )
            desos = (
                await session.scalars(text("SELECT DISTINCT deso FROM residents WHERE deso IS NOT NULL"))
            ).all()
            await import_cni(session, chunks("".join(_cni_csv(desos, seed))))
            await set_year(
                session,
                year,
                ProgrammeRules(
                    target_ages=list(AGES),
                    talk_rate=TALK_RATE,
                    start_grant=Decimal(0),
                    reminder_days=list(REMINDER_DAYS),
                    valid_until=dt.date(year + 1, 3, 31),
                ),
                actor=OPERATOR,
            )
    return len(units), summary.inserted + summary.updated + summary.unchanged


def fast_commits(engine: AsyncEngine) -> None:
    """Commits that do not wait for the disk (``synchronous_commit = off``) on this engine's
    connections: thousands of small transactions, each a simulated request, need not be durable
    one by one. A crash can lose the last moments' commits but never leaves a broken database
    (PostgreSQL's asynchronous commit); simulate again into a fresh database then."""

    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET synchronous_commit TO off")
        cursor.close()

    event.listen(engine.sync_engine, "connect", _on_connect)


async def simulate(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    seed: int,
    residents: int,
    care_units: int = 10,
    as_of: dt.date | None = None,
    progress: Callable[[str], None] | None = None,
) -> SimulationSummary:
    """Load the demo register into an empty database and live its programme year up to the
    morning of ``as_of`` (default today in Sweden). Same seed and day, same content."""
    day = as_of or clock.local_today()
    year = simulated_year(day)
    summary = SimulationSummary(year=year, as_of=day)
    started = time.perf_counter()
    async with session_scope(sessionmaker) as session:
        if await session.scalar(text("SELECT EXISTS (SELECT 1 FROM care_units)")):
            raise DemoNotEmpty("the database has care units already; simulate into an empty database")
    if progress is not None:
        progress("loading the register")
    summary.care_units, summary.residents = await load_register(
        sessionmaker,
        seed=seed,
        residents=residents,
        care_units=care_units,
        year=year,
        audit=settings.audit_log,
    )
    if progress is not None:
        progress(f"register loaded in {time.perf_counter() - started:.1f} s")
    simulator = _Simulator(
        sessionmaker, settings, seed=seed, year=year, as_of=day, summary=summary, progress=progress
    )
    await simulator.run()
    summary.seconds = time.perf_counter() - started
    return summary
