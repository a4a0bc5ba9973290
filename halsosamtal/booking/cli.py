"""``halsosamtal slots``: publish a weekly template of bookable times for one unit or all."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.booking import slots
from halsosamtal.booking.schemas import PublishResult, WeeklyTemplate
from halsosamtal.core.cli import DryRun, run_in_transaction
from halsosamtal.core.console import console, fail, print_json
from halsosamtal.units.models import CareUnit
from halsosamtal.units.service import get_unit

app = typer.Typer(help="Bookable times that care units publish.", no_args_is_help=True)


@app.command("template")
def template(
    first_day: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="First day, inclusive.")],
    last_day: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="Last day, inclusive.")],
    unit: Annotated[
        str | None, typer.Option(help="HSA-id of the unit; leave out with --all-participating.")
    ] = None,
    all_participating: Annotated[
        bool, typer.Option("--all-participating", help="Every participating unit.")
    ] = False,
    weekdays: Annotated[str, typer.Option(help="Comma-separated: mon,tue,wed,thu,fri,sat,sun.")] = "tue,thu",
    day_starts: Annotated[str, typer.Option(help="Local time the first talk starts.")] = "08:00",
    day_ends: Annotated[str, typer.Option(help="Local time the last talk must end by.")] = "12:00",
    talk_minutes: Annotated[int, typer.Option(help="Length of one talk.")] = 45,
    gap_minutes: Annotated[int, typer.Option(help="Minutes between talks.")] = 0,
    resource: Annotated[str, typer.Option(help="Practitioner or room, in the unit's words.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    dry_run: DryRun = False,
) -> None:
    """Publish the times of a weekly template, skipping Swedish public holidays and Midsummer,
    Christmas and New Year's Eve. Running it again publishes nothing new."""
    if (unit is None) == (not all_participating):
        fail("give --unit HSA-ID or --all-participating (one of them)")
    try:
        rules = WeeklyTemplate.model_validate(
            {
                "first_day": first_day.date(),
                "last_day": last_day.date(),
                "weekdays": [d.strip() for d in weekdays.split(",") if d.strip()],
                "day_starts": day_starts,
                "day_ends": day_ends,
                "talk_minutes": talk_minutes,
                "gap_minutes": gap_minutes,
                "resource": resource,
            }
        )
    except ValidationError as exc:
        fail(
            "; ".join(
                f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
                if e["loc"]
                else str(e["msg"])
                for e in exc.errors()
            )
        )

    async def work(session: AsyncSession) -> list[tuple[str, PublishResult]]:
        if unit is not None:
            units = [await get_unit(session, unit)]
        else:
            units = list(
                await session.scalars(
                    select(CareUnit).where(CareUnit.participating.is_(True)).order_by(CareUnit.hsa_id)
                )
            )
        return [(u.hsa_id, await slots.publish_template(session, u.id, rules, actor="cli")) for u in units]

    published = run_in_transaction(work, dry_run=dry_run)
    if as_json:
        print_json({hsa: r.model_dump(mode="json") for hsa, r in published})
        return
    table = Table("unit", "created", "already published", "reopened", "first", "last")
    for hsa, r in published:
        table.add_row(
            hsa,
            str(r.created),
            str(r.already_published),
            str(r.reopened),
            r.first_starts_at.strftime("%Y-%m-%d %H:%M") if r.first_starts_at else "-",
            r.last_starts_at.strftime("%Y-%m-%d %H:%M") if r.last_starts_at else "-",
        )
    console.print(table)
    if published and published[0][1].skipped_days:
        days = ", ".join(f"{d.date.isoformat()} ({d.reason})" for d in published[0][1].skipped_days)
        console.print(f"skipped: {days}")
