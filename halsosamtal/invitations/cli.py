"""``halsosamtal batch plan|run``: a programme year's invitation batch."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from halsosamtal.audit.trail import log_cli_run
from halsosamtal.core import clock
from halsosamtal.core.cli import (
    DryRun,
    not_after_today,
    run_in_transaction,
    said_dry_run,
    with_sessionmaker,
)
from halsosamtal.core.console import console, fail, print_json, progress
from halsosamtal.core.errors import DomainError
from halsosamtal.invitations import batch, service

app = typer.Typer(
    help="Invitation batches: preview and run a year's paced invitations.", no_args_is_help=True
)

Year = Annotated[int, typer.Option(help="Programme year.")]
AsOf = Annotated[
    dt.datetime | None,
    typer.Option(
        formats=["%Y-%m-%d"], help="Plan as on this day (default today); nothing is sent before it."
    ),
]


@app.command("plan")
def plan_(
    year: Year,
    as_of: AsOf = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print, per unit and month, the invitations a run would send, their expected bookings and
    the unit's capacity. Writes nothing."""
    day = as_of.date() if as_of else clock.local_today()
    out = run_in_transaction(lambda s: service.plan_out(s, year, day))
    if json_out:
        print_json(out.model_dump(mode="json"))
        return
    table = Table("unit", "name", "month", "invitations", "earlier runs", "expected bookings", "capacity", "")
    for ln in out.lines:
        table.add_row(
            ln.care_unit,
            ln.name,
            f"{year}-{ln.month:02d}",
            str(ln.invitations),
            str(ln.already_planned),
            str(ln.expected_bookings),
            str(ln.capacity),
            "[red]over capacity[/red]" if ln.over_capacity else "",
        )
    console.print(table)
    console.print(f"{out.total} new invitations for {year} (expected uptake {out.expected_uptake})")


@app.command("run")
def run(
    year: Year,
    as_of: AsOf = None,
    enqueue: Annotated[bool, typer.Option("--enqueue", help="Hand the run to the worker instead.")] = False,
    dry_run: DryRun = False,
) -> None:
    """Write the plan: create the missing invitations and their planned messages. Safe to run
    again and to run twice at once; an interrupted run is completed by the next. With
    --dry-run, print the plan the run would write (as `batch plan` does) and write nothing."""
    day = not_after_today(as_of.date(), dry_run=dry_run) if as_of else None
    if dry_run:
        plan_(year, as_of, json_out=False)
        said_dry_run()
        return
    if enqueue:
        batch_id = run_in_transaction(lambda s: batch.new_batch(s, year, actor="cli", as_of=day))
        console.print(
            f"batch {batch_id} queued; the worker starts it within seconds "
            f"(follow it with GET /v1/batches/{batch_id})"
        )
        return

    async def go() -> batch.BatchResult:
        async with with_sessionmaker() as sessionmaker:
            async with sessionmaker() as s, s.begin():
                batch_id = await batch.new_batch(s, year, actor="cli", as_of=day, inline=True)
            try:
                with progress() as bar:
                    task = bar.add_task("inviting", total=None)
                    return await batch.run(
                        sessionmaker,
                        year,
                        day or clock.local_today(),
                        batch_id=batch_id,
                        actor="cli",
                        progress=lambda done, total: bar.update(task, completed=done, total=total),
                    )
            except BaseException as exc:
                # batch.run ends its row as failed itself; this covers what fails before it.
                await batch.mark_failed(sessionmaker, batch_id, exc)
                raise

    try:
        result = asyncio.run(go())
    except DomainError as exc:
        fail(exc.detail)
    log_cli_run(
        "batch run",
        "create",
        {"year": year, "batch_id": result.batch_id, "planned": result.planned, "created": result.created},
    )
    console.print(f"batch {result.batch_id}: {result.created} invitations created ({result.planned} planned)")
