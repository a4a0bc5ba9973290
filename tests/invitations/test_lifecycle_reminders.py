"""Reminders on chosen days go to exactly the right invitations, never more than configured."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from arq.worker import Worker
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core.clock import STOCKHOLM
from halsosamtal.core.runtime import Resources
from halsosamtal.core.settings import Settings
from halsosamtal.invitations import lifecycle
from halsosamtal.invitations.lifecycle_jobs import CRON_JOBS, FUNCTIONS, send_reminders
from halsosamtal.units.models import CareUnit
from tests.messaging.factories import execute, fetch, make_invitation, make_year, resident

SM = async_sessionmaker[AsyncSession]
MakeUnit = Callable[..., Awaitable[CareUnit]]
D0 = dt.date(2027, 3, 1)


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


async def _reminded(sm: SM) -> dict[int, list[int]]:
    """Reminder numbers per invitation, in order."""
    out: dict[int, list[int]] = {}
    for invitation_id, sequence in await fetch(
        sm, "SELECT invitation_id, sequence FROM messages WHERE kind = 'reminder' ORDER BY id"
    ):
        out.setdefault(invitation_id, []).append(sequence)
    return out


async def test_reminders_go_on_the_configured_days_to_open_invitations_only(
    sessionmaker: SM, settings: Settings, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker, reminder_days=[28, 56])

    async def invite(sent_on: dt.date | None = D0, status: str = "planned", **kw: Any) -> int:
        person = await resident(sessionmaker, unit.id)
        invitation_id, _ = await make_invitation(
            sessionmaker, person, unit.id, sent_on=sent_on, status=status, **kw
        )
        return invitation_id

    a, b = await invite(), await invite()
    late = await invite(sent_on=day(1))  # sent a day later: every reminder a day later
    closed = [await invite(status=s) for s in ("booked", "declined", "withdrawn", "expired", "completed")]
    never_sent = await invite(sent_on=None, send_on=day(1000))  # still waiting to go out
    short_lived = await invite(valid_until=day(40))  # its second reminder would come after it ends

    async def run(n: int) -> int:
        return (await lifecycle.run_reminders(sessionmaker, settings, day(n))).created

    assert await run(27) == 0
    assert await run(28) == 3  # a, b and short_lived: 28 days after they were sent
    assert await _reminded(sessionmaker) == {a: [1], b: [1], short_lived: [1]}
    assert await run(28) == 0, "a second run on the same day creates nothing"
    assert await run(29) == 1  # late
    assert await run(55) == 0
    assert await run(56) == 2  # a and b; short_lived is no longer valid
    assert await run(57) == 1  # late
    assert await run(84) == 0, "never a third with two configured"
    assert await run(400) == 0
    assert await _reminded(sessionmaker) == {a: [1, 2], b: [1, 2], late: [1, 2], short_lived: [1]}
    for invitation_id in [*closed, never_sent]:
        assert invitation_id not in await _reminded(sessionmaker)

    rows = await fetch(
        sessionmaker,
        "SELECT m.status, m.channel, m.send_on, m.subject, i.reminders_sent, i.last_message_at "
        "FROM messages m JOIN invitations i ON i.id = m.invitation_id "
        "WHERE m.kind = 'reminder' AND m.invitation_id = :a ORDER BY m.id",
        a=a,
    )
    assert [(r.status, r.channel, r.send_on) for r in rows] == [
        ("queued", "letter", day(28)),
        ("queued", "letter", day(56)),
    ]
    assert rows[0].subject.startswith("Påminnelse")
    assert rows[1].subject.startswith("Ny påminnelse")
    assert rows[0].reminders_sent == 2
    assert rows[0].last_message_at.astimezone(STOCKHOLM).date() == day(56)
    # Reminders are not status changes: the history holds only the first row of each invitation.
    assert len(await fetch(sessionmaker, "SELECT id FROM invitation_events")) == 10


async def test_after_a_missed_run_reminders_keep_their_spacing(
    sessionmaker: SM, settings: Settings, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker, reminder_days=[28, 56])
    invitation_id, _ = await make_invitation(
        sessionmaker, await resident(sessionmaker, unit.id), unit.id, sent_on=D0
    )
    assert (await lifecycle.run_reminders(sessionmaker, settings, day(60))).created == 1
    assert (await lifecycle.run_reminders(sessionmaker, settings, day(61))).created == 0
    assert (await lifecycle.run_reminders(sessionmaker, settings, day(87))).created == 0
    assert (await lifecycle.run_reminders(sessionmaker, settings, day(88))).created == 1
    assert await _reminded(sessionmaker) == {invitation_id: [1, 2]}


async def test_a_year_without_reminders_or_past_its_end_sends_none(
    sessionmaker: SM, settings: Settings, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker, 2027, reminder_days=[])
    await make_year(sessionmaker, 2028, valid_until=dt.date(2028, 12, 31))
    await make_invitation(sessionmaker, await resident(sessionmaker, unit.id), unit.id, sent_on=D0)
    await make_invitation(
        sessionmaker,
        await resident(sessionmaker, unit.id),
        unit.id,
        year=2028,
        sent_on=dt.date(2028, 1, 1),
        valid_until=dt.date(2029, 6, 30),
    )
    await execute(
        sessionmaker, "UPDATE programme_years SET valid_until = DATE '2028-01-20' WHERE year = 2028"
    )
    assert (await lifecycle.run_reminders(sessionmaker, settings, day(100))).created == 0
    assert (await lifecycle.run_reminders(sessionmaker, settings, dt.date(2028, 1, 29))).created == 0


async def test_the_reminder_job_runs_for_the_given_day(
    sessionmaker: SM, settings: Settings, resources: Resources, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    await make_invitation(sessionmaker, await resident(sessionmaker, unit.id), unit.id, sent_on=D0)
    ctx = {"resources": resources}
    result = await send_reminders(ctx, day(28).isoformat())
    assert result["created"] == 1
    assert result["release"]["queued"] == 1
    assert (await send_reminders(ctx, day(28).isoformat()))["created"] == 0
    assert {f.name for f in FUNCTIONS} == {
        "release_messages",
        "release_confirmations",
        "send_reminders",
        "expire_invitations",
        "withdraw_invitations",
    }
    assert all(c.unique and c.timeout_s for c in CRON_JOBS)


async def test_a_burst_worker_runs_the_queued_reminder_job_end_to_end(
    sessionmaker: SM, settings: Settings, resources: Resources, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    await make_invitation(sessionmaker, await resident(sessionmaker, unit.id), unit.id, sent_on=D0)
    queue = f"{settings.queue_name}:reminders"
    job = await resources.redis.enqueue_job("send_reminders", day(28).isoformat(), _queue_name=queue)
    assert job is not None
    worker = Worker(
        functions=FUNCTIONS,
        redis_pool=resources.redis,
        queue_name=queue,
        burst=True,
        poll_delay=0.05,
        handle_signals=False,
        ctx={"resources": resources},
    )
    await worker.main()
    result = await job.result(timeout=5)
    assert (result["created"], result["release"]["queued"]) == (1, 1)
