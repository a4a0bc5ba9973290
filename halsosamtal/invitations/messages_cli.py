"""``halsosamtal messages release|retry``: the release of due messages and a failed message's
retry, added to the messaging service's ``messages`` command group."""

from __future__ import annotations

from typing import Annotated

import typer

from halsosamtal.audit.trail import log_cli_access, log_cli_run
from halsosamtal.core.cli import DryRun, day_of, run_chunked, run_in_transaction
from halsosamtal.core.console import console, print_json
from halsosamtal.core.settings import get_settings
from halsosamtal.invitations import release as outbox
from halsosamtal.messaging.cli import AsOf, Json, app


@app.command("release")
def release(as_of: AsOf = None, json_out: Json = False, dry_run: DryRun = False) -> None:
    """Queue the messages whose send date has come: choose each one's channel and render its
    text; invitation messages open their invitations. Safe to run again."""
    day = day_of(as_of, dry_run=dry_run)
    result = run_chunked(lambda sm: outbox.release_due(sm, get_settings(), day, actor="cli"), dry_run=dry_run)
    if not dry_run:
        log_cli_run("messages release", "update", {"as_of": day.isoformat(), **result.as_dict()})
    if json_out:
        print_json(result.as_dict())
        return
    console.print(
        f"release {day}: {result.queued} queued, {result.failed} failed (no channel), "
        f"{result.opened} invitations opened, {result.cancelled} cancelled"
    )
    for error in result.template_errors:
        console.print(f"[red]template error, messages left planned:[/red] {error}", highlight=False)
    if result.template_errors:
        raise typer.Exit(1)


@app.command("retry")
def retry(
    message_id: Annotated[int, typer.Argument(min=1, help="Id of a failed message.")],
    dry_run: DryRun = False,
) -> None:
    """Give a failed message one more try: queued again with its text, or released again when
    it never had a channel (e.g. no_address, after the register was corrected)."""
    out = run_in_transaction(
        lambda s: outbox.retry_message(s, get_settings(), message_id, actor="cli"), dry_run=dry_run
    )
    if not dry_run:
        log_cli_access("messages retry", "update", [out.resident_id])
    detail = f" ({out.last_error})" if out.status == "failed" and out.last_error else ""
    console.print(f"message {out.id}: {out.status}{detail}", highlight=False)
