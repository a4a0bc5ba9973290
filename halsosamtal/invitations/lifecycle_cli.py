"""``halsosamtal reminders run`` and ``halsosamtal invitations expire|withdraw``.

Each runs the daily job for a chosen day (``--as-of``), so its effect can be checked without
waiting for the day; running one twice for the same day changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from halsosamtal.audit.trail import log_cli_run
from halsosamtal.core.cli import DryRun, day_of, run_chunked
from halsosamtal.core.console import console, print_json
from halsosamtal.core.settings import get_settings
from halsosamtal.invitations import lifecycle

reminders_app = typer.Typer(help="Reminders to residents who have not answered.", no_args_is_help=True)
app = typer.Typer(help="Invitations: expiry, withdrawal and listing moves.", no_args_is_help=True)

AsOf = Annotated[
    dt.datetime | None,
    typer.Option(formats=["%Y-%m-%d"], help="Run as on this day (default today, Swedish time)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@reminders_app.command("run")
def run_reminders(as_of: AsOf = None, json_out: Json = False, dry_run: DryRun = False) -> None:
    """Create the reminders due on the day and release them (with anything else due that day).

    Reminder k goes reminder_days[k] days after the invitation was sent, to open invitations
    only (not booked, declined, withdrawn, expired or completed), never more than configured."""
    day = day_of(as_of, dry_run=dry_run)
    result = run_chunked(
        lambda sm: lifecycle.run_reminders(sm, get_settings(), day, actor="cli"), dry_run=dry_run
    )
    if not dry_run:
        log_cli_run("reminders run", "update", {"as_of": day.isoformat(), **result.as_dict()})
    if json_out:
        print_json(result.as_dict())
        return
    release = result.release
    console.print(
        f"reminders {day}: {result.created} created; release: {release.queued} queued, "
        f"{release.failed} failed (no channel)"
    )
    for error in release.template_errors:
        console.print(f"[red]template error, messages left planned:[/red] {error}", highlight=False)


@app.command("expire")
def expire(as_of: AsOf = None, json_out: Json = False, dry_run: DryRun = False) -> None:
    """Expire planned and open invitations whose last valid day is before the day."""
    day = day_of(as_of, dry_run=dry_run)
    changes = run_chunked(lambda sm: lifecycle.expire_all(sm, day, actor="cli"), dry_run=dry_run)
    if not dry_run:
        log_cli_run("invitations expire", "update", {"as_of": day.isoformat(), **changes.as_dict()})
    if json_out:
        print_json(changes.as_dict())
        return
    console.print(f"expiry {day}: {changes.closed} expired, {changes.cancelled} messages cancelled")


@app.command("withdraw")
def withdraw(as_of: AsOf = None, json_out: Json = False, dry_run: DryRun = False) -> None:
    """Withdraw invitations of residents who died, emigrated or moved out by the day, and of
    residents no longer listed at a participating unit; move invitations to a resident's new
    participating unit. Planned and queued messages of withdrawn invitations are cancelled."""
    day = day_of(as_of, dry_run=dry_run)
    changes = run_chunked(lambda sm: lifecycle.withdraw_all(sm, day, actor="cli"), dry_run=dry_run)
    if not dry_run:
        log_cli_run("invitations withdraw", "update", {"as_of": day.isoformat(), **changes.as_dict()})
    if json_out:
        print_json(changes.as_dict())
        return
    console.print(
        f"withdrawal {day}: {changes.closed} withdrawn, {changes.moved} moved with their listing, "
        f"{changes.cancelled} messages cancelled"
    )
