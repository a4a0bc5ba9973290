"""``halsosamtal audit``: the region's follow-up of the access log from the command line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.audit import chain, service
from halsosamtal.audit.service import AccessEventOut
from halsosamtal.audit.trail import log_cli_access
from halsosamtal.core import clock
from halsosamtal.core.cli import DryRun, run_in_transaction
from halsosamtal.core.console import console, fail, print_json
from halsosamtal.core.settings import get_settings
from halsosamtal.residents.lookup import ids_by_personnummer

app = typer.Typer(help="The access log: follow-up, the hash chain, retention.", no_args_is_help=True)

Day = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"])]


def _moment(day: dt.datetime | None, *, end: bool = False) -> dt.datetime | None:
    if day is None:
        return None
    return clock.end_of_day(day.date()) if end else clock.start_of_day(day.date())


@app.command("list")
def list_events(
    resident: Annotated[
        str | None, typer.Option(help="Whose data: a personnummer (it is not shown in the output)")
    ] = None,
    client: Annotated[str | None, typer.Option(help="API client name, or 'cli'")] = None,
    actor: Annotated[str | None, typer.Option(help="Acting person, e.g. a clinician's HSA-id")] = None,
    since: Day = None,
    until: Day = None,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000, help="At most this many, newest first")] = 100,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write the events to this CSV file")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Access events, newest first, by resident, client, acting person and period (days in
    Sweden, --until inclusive). Looking up a resident's events is itself recorded."""

    async def work(session: AsyncSession) -> tuple[list[AccessEventOut], list[int]]:
        ids: list[int] = []
        resident_id = None
        if resident is not None:
            ids = await ids_by_personnummer(session, [resident])
            resident_id = ids[0] if ids else -1
        events: list[AccessEventOut] = []
        cursor = None
        while len(events) < limit:
            page = await service.search(
                session,
                resident_id=resident_id,
                client=client,
                actor=actor,
                since=_moment(since),
                until=_moment(until, end=True),
                limit=min(10_000, limit - len(events)),
                cursor=cursor,
            )
            events += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        return events, ids

    events, ids = run_in_transaction(work)
    log_cli_access("audit list", "read", ids)
    if csv_out is not None:
        csv_out.write_text(service.to_csv(events), encoding="utf-8")
        console.print(f"{len(events)} events written to {csv_out}", highlight=False)
        return
    if json_out:
        print_json([e.model_dump(mode="json") for e in events])
        return
    table = Table("at", "client", "role", "acting person", "resident", "operation", "action", "outcome")
    for e in events:
        table.add_row(
            clock.local(e.at).strftime("%Y-%m-%d %H:%M:%S"),
            e.client,
            e.role,
            e.acting_person or "",
            str(e.resident_id or ""),
            e.operation,
            e.action,
            e.outcome,
        )
    console.print(table)


@app.command("verify")
def verify(json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Check the hash chain from its start (or where the last archive ended) and name the first
    broken link. Exit status 1 when the chain is broken."""
    verdict = run_in_transaction(chain.verify)
    if json_out:
        print_json(verdict.model_dump())
    elif verdict.ok:
        console.print(
            f"the access log's chain is whole: {verdict.checked} events checked "
            f"(positions {verdict.first_seq}..{verdict.last_seq}), {verdict.unsealed} not sealed yet",
            highlight=False,
        )
    if not verdict.ok:
        fail(
            f"the chain is broken at position {verdict.broken_at_seq} (event {verdict.broken_event_id}): "
            f"{verdict.reason}; {verdict.checked} events before it are whole"
        )


@app.command("seal")
def seal(dry_run: DryRun = False) -> None:
    """Seal the committed events not sealed yet, now (the worker does it every 10 seconds)."""

    async def work(session: AsyncSession) -> int:
        return await chain.seal(session, limit=1_000_000)

    sealed = run_in_transaction(work, dry_run=dry_run)
    console.print(f"{sealed} events {'would be ' if dry_run else ''}sealed", highlight=False)


@app.command("archive")
def archive(
    before: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Events before this day (default: the retention period ago)"),
    ] = None,
    dry_run: DryRun = False,
) -> None:
    """Move sealed events older than the retention period (HALSOSAMTAL_AUDIT_RETENTION_DAYS) to
    an archive file (JSON lines with their chain), then remove them from the table; the chain
    goes on from the archive's last hash. Never a silent deletion."""
    settings = get_settings()
    if before is None:
        cutoff = clock.now() - dt.timedelta(days=settings.audit_retention_days)
    else:
        if before.date() > clock.local_today():
            fail(f"--before {before.date()} is after today", code=2)
        cutoff = clock.start_of_day(before.date())
    result = run_in_transaction(
        lambda s: service.archive(
            s, cutoff, settings.audit_archive_directory, actor="cli", write=not dry_run
        ),
        dry_run=dry_run,
    )
    if not result.events:
        console.print("no sealed events to archive", highlight=False)
        return
    verb = "would archive" if dry_run else "archived"
    console.print(
        f"{verb} {result.events} events (positions {result.first_seq}..{result.last_seq})"
        + (f" to {result.file} (sha256 {result.file_sha256})" if result.file else ""),
        highlight=False,
    )
