"""``halsosamtal messages``: deliver and list failures (release and retry are added by
``halsosamtal.invitations.messages_cli``, which releases messages)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from halsosamtal.audit.trail import log_cli_access, log_cli_run
from halsosamtal.core.cli import (
    DryRun,
    run_chunked,
    run_in_transaction,
)
from halsosamtal.core.console import console, print_json
from halsosamtal.core.settings import get_settings
from halsosamtal.messaging import outbox
from halsosamtal.messaging.models import CHANNELS
from halsosamtal.messaging.templates import MESSAGE_KINDS

T = TypeVar("T")

app = typer.Typer(help="Messages to residents: release, delivery, failures.", no_args_is_help=True)

AsOf = Annotated[
    dt.datetime | None,
    typer.Option(formats=["%Y-%m-%d"], help="Run as on this day (default today, Swedish time)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("deliver")
def deliver(json_out: Json = False, dry_run: DryRun = False) -> None:
    """One delivery pass: send every due queued message (letters to the day's print file) and
    take over messages whose worker died mid-send."""
    if dry_run:
        due = run_in_transaction(outbox.due_for_delivery, dry_run=True)
        if json_out:
            print_json(due)
            return
        for channel, n in (due or {"any channel": 0}).items():
            console.print(f"would deliver {n} on {channel}", highlight=False)
        return
    report = run_chunked(lambda sm: outbox.deliver_due(sm, get_settings()))
    log_cli_run("messages deliver", "update", report.as_dict())
    if json_out:
        print_json(report.as_dict())
        return
    console.print(
        f"delivery: {report.claimed} claimed, {report.sent} sent, {report.retried} to retry, "
        f"{report.failed} failed"
    )
    for path in report.print_files:
        console.print(f"print file {path}", highlight=False, soft_wrap=True)


@app.command("failed")
def failed(
    kind: Annotated[str | None, typer.Option(help="Only this kind, e.g. invitation, reminder.")] = None,
    channel: Annotated[str | None, typer.Option(help="Only this channel, e.g. sms, letter.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    json_out: Json = False,
) -> None:
    """List failed messages, newest first."""
    if kind is not None and kind not in MESSAGE_KINDS:
        raise typer.BadParameter(f"one of {', '.join(MESSAGE_KINDS)}", param_hint="--kind")
    if channel is not None and channel not in CHANNELS:
        raise typer.BadParameter(f"one of {', '.join(CHANNELS)}", param_hint="--channel")
    page = run_in_transaction(lambda s: outbox.list_failed(s, kind=kind, channel=channel, limit=limit))
    log_cli_access("messages failed", "read", (m.resident_id for m in page.items))
    if json_out:
        print_json([m.model_dump(mode="json") for m in page.items])
        return
    table = Table("id", "kind", "#", "channel", "invitation", "attempts", "last error", "last try")
    for m in page.items:
        table.add_row(
            str(m.id),
            m.kind,
            str(m.sequence or ""),
            m.channel or "-",
            str(m.invitation_id or ""),
            str(m.attempts),
            m.last_error or "",
            m.last_attempt_at.isoformat(timespec="seconds") if m.last_attempt_at else "",
        )
    console.print(table)
    if page.next_cursor:
        console.print(f"(more than {limit}; use --limit)")
