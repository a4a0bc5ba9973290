"""Root of the ``halsosamtal`` command line: the one place that assembles it.

Command groups are loaded when they are used, not up front: ``halsosamtal --help`` and a
command's own ``--help`` answer without importing the whole service (SQLAlchemy, every
feature), and each command imports only its own feature. ``GROUPS`` names, for every group,
where its Typer app lives and the one-line help shown in the root's listing.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import IO, TYPE_CHECKING, Annotated, Any, cast

import typer
import typer.core

if TYPE_CHECKING:  # Typer vendors Click; its types, for annotations only
    from typer._click.core import Command, Context
    from typer._click.formatting import HelpFormatter

from halsosamtal.cli import dev
from halsosamtal.cli import worker as worker_cli

# name -> (module:attribute of its Typer app, or a loader function, one-line help)
GROUPS: dict[str, tuple[str, str]] = {
    "clients": ("halsosamtal.cli.clients:app", "API clients and their keys."),
    "import": ("halsosamtal.cli.app:import_group", "Load registers from CSV files."),
    "programme": (
        "halsosamtal.programmes.cli:app",
        "Programme years: target ages, rates, reminders, validity.",
    ),
    "batch": (
        "halsosamtal.invitations.cli:app",
        "Invitation batches: preview and run a year's paced invitations.",
    ),
    "invitations": (
        "halsosamtal.invitations.lifecycle_cli:app",
        "Invitations: expiry, withdrawal and listing moves.",
    ),
    "reminders": (
        "halsosamtal.invitations.lifecycle_cli:reminders_app",
        "Reminders to residents who have not answered.",
    ),
    "messages": ("halsosamtal.cli.app:messages_group", "Messages to residents: release, delivery, failures."),
    "slots": ("halsosamtal.booking.cli:app", "Bookable times that care units publish."),
    "report": ("halsosamtal.reports.cli:app", "Reports: participation, outcomes, reimbursement."),
    "audit": ("halsosamtal.logreview.cli:app", "The access log: follow-up, the hash chain, retention."),
}


def import_group() -> typer.Typer:
    """``halsosamtal import``: each register's command lives with its feature."""
    from halsosamtal.core.cli import import_app
    from halsosamtal.register import cli as _register_cli  # noqa: F401 - registers 'import residents'
    from halsosamtal.reports import cli as _reports_cli  # noqa: F401 - registers 'import cni'
    from halsosamtal.units import cli as _units_cli  # noqa: F401 - registers 'import care-units'

    return import_app


def messages_group() -> typer.Typer:
    """``halsosamtal messages``: delivery and failures are messaging's; release and retry are
    invitations' (they release messages)."""
    from halsosamtal.invitations import messages_cli as _release  # noqa: F401 - registers release, retry
    from halsosamtal.messaging.cli import app as messages_app

    return messages_app


def _load(target: str) -> typer.Typer:
    module, _, attribute = target.partition(":")
    loaded: Any = getattr(importlib.import_module(module), attribute)
    group: typer.Typer = loaded if isinstance(loaded, typer.Typer) else loaded()
    group._add_completion = False  # the root has no completion commands either
    return group


class LazyGroup(typer.core.TyperGroup):
    """A Typer group whose sub-groups are imported only when one of them is used."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *GROUPS]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in GROUPS:
            import halsosamtal.models  # noqa: F401 - every table registered before a command runs

            # Mounted under a parent as add_typer() does, so that a group of one command (slots)
            # stays a group instead of becoming that command.
            parent = typer.Typer(rich_markup_mode=None)  # plain help: rewrapped to the terminal, never cut
            parent.add_typer(_load(GROUPS[cmd_name][0]), name=cmd_name)
            group = typer.main.get_group(parent)
            return group.commands[cmd_name]
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        """The listing of ``--help``, from ``GROUPS``' help lines (nothing is imported)."""
        rows = []
        for name in self.list_commands(ctx):
            if name in GROUPS:
                rows.append((name, GROUPS[name][1]))
                continue
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


app = typer.Typer(
    name="halsosamtal",
    cls=LazyGroup,
    help="Operate the targeted health dialogue service: registers, programme years, clients.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,  # main() answers an unexpected failure in one line
)
app.add_typer(dev.app, name="dev")
app.add_typer(worker_cli.app, name="worker")
app.command("demo-data")(dev.demo_data)


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Alembic revision to upgrade to.")] = "head",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the migrations that would run; change nothing.")
    ] = False,
) -> None:
    """Bring the database schema up to date (creates the database when missing)."""
    from halsosamtal.core.cli import create_database, database_url, said_dry_run
    from halsosamtal.core.console import console
    from halsosamtal.core.migrations import pending, upgrade

    url = database_url()
    if dry_run:
        steps = pending(url, revision)
        for step in steps:
            console.print(f"would apply {step}", highlight=False)
        if not steps:
            console.print(f"the schema is at {revision} already", highlight=False)
        said_dry_run()
        return
    create_database(url)
    upgrade(url, revision)
    console.print(f"database schema at {revision}")


def _pass_on_endpoints() -> None:
    """Find Postgres and Redis here, say which, and hand exactly those to the server process."""
    from halsosamtal.core.cli import endpoints

    found = endpoints()
    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = found.database_url, found.redis_url


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes.")] = 1,
) -> None:
    """Serve the JSON API with uvicorn (refuses to start on an out-of-date schema)."""
    import json
    from pathlib import Path

    from halsosamtal.core.console import fail
    from halsosamtal.core.logging import dict_config
    from halsosamtal.core.metrics import MULTIPROC_ENV, fresh_multiprocess_dir
    from halsosamtal.core.settings import get_settings
    from halsosamtal.portal.identity import unconfigured

    if (why := unconfigured(get_settings())) is not None:
        fail(why)
    _pass_on_endpoints()
    # Every server process writes its metrics to files here and /metrics adds them up; the
    # same with one process, so a scrape sees the same series however many there are.
    metrics_dir = os.environ[MULTIPROC_ENV] = fresh_multiprocess_dir(os.environ.get(MULTIPROC_ENV))
    # uvicorn's own lines (the supervisor's too, with --workers) shaped and masked like ours.
    log_config = Path(metrics_dir) / "logging.json"
    log_config.write_text(json.dumps(dict_config(get_settings())), encoding="utf-8")
    os.execvp(  # noqa: S606 - replaces this process with uvicorn, fixed program
        sys.executable,
        [
            sys.executable,
            "-m",
            "uvicorn",
            "services.api.main:app",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--proxy-headers",
            "--log-config",
            str(log_config),
        ],
    )


def _log_as_json() -> None:
    """``HALSOSAMTAL_LOG_FORMAT=json``: the command's log records and what it says on stderr
    (which servers, errors, notices) are JSON lines; its output on stdout stays as it is."""
    import logging

    from halsosamtal.core.console import err_console
    from halsosamtal.core.logging import LogLines, configure_logging
    from halsosamtal.core.settings import get_settings

    configure_logging(get_settings())
    err_console.file = cast("IO[str]", LogLines(logging.getLogger("halsosamtal.cli")))


def main() -> None:
    """The ``halsosamtal`` entry point. What a user can cause is answered in one line; an
    unexpected failure too (its traceback, masked, only with HALSOSAMTAL_LOG_LEVEL=DEBUG)."""
    try:
        if os.environ.get("HALSOSAMTAL_LOG_FORMAT", "").strip().lower() == "json":
            _log_as_json()
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    except Exception as exc:
        from halsosamtal.core.console import fail
        from halsosamtal.core.logging import redact

        if os.environ.get("HALSOSAMTAL_LOG_LEVEL", "").upper() == "DEBUG":
            import traceback

            sys.stderr.write(redact("".join(traceback.format_exception(exc))))
        try:
            fail(
                f"{type(exc).__name__}: {redact(str(exc)) or 'no detail'} (unexpected; run again with "
                "HALSOSAMTAL_LOG_LEVEL=DEBUG to see where)"
            )
        except typer.Exit as stop:
            raise SystemExit(stop.exit_code) from None
