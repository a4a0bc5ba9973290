"""Root of the ``halsosamtal`` command line."""

from __future__ import annotations

import os
import sys

import typer

from halsosamtal.access.cli import app as clients_app
from halsosamtal.booking.cli import app as slots_app
from halsosamtal.cli import dev
from halsosamtal.cli.common import console, create_database, database_url, endpoints
from halsosamtal.cli.groups import import_app
from halsosamtal.invitations.cli import app as batch_app
from halsosamtal.invitations.lifecycle_cli import app as invitations_app
from halsosamtal.invitations.lifecycle_cli import reminders_app
from halsosamtal.messaging.cli import app as messages_app
from halsosamtal.programmes.cli import app as programme_app
from halsosamtal.reports.cli import app as report_app
from halsosamtal.residents import cli as _residents_cli  # noqa: F401 - registers its commands
from halsosamtal.units import cli as _units_cli  # noqa: F401 - registers its commands

app = typer.Typer(
    name="halsosamtal",
    help="Operate the targeted health dialogue service: registers, programme years, clients.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold personal data
)
app.add_typer(clients_app, name="clients")
app.add_typer(import_app, name="import")
app.add_typer(programme_app, name="programme")
app.add_typer(batch_app, name="batch")
app.add_typer(invitations_app, name="invitations")
app.add_typer(reminders_app, name="reminders")
app.add_typer(messages_app, name="messages")
app.add_typer(slots_app, name="slots")
app.add_typer(report_app, name="report")
app.add_typer(dev.app, name="dev")
app.command("demo-data")(dev.demo_data)


@app.command()
def migrate(revision: str = typer.Argument("head", help="Alembic revision to upgrade to.")) -> None:
    """Bring the database schema up to date (creates the database when missing)."""
    from halsosamtal.core.migrations import upgrade

    url = database_url()
    create_database(url)
    upgrade(url, revision)
    console.print(f"database schema at {revision}")


def _pass_on_endpoints() -> None:
    """Find Postgres and Redis here, say which, and hand exactly those to the server process."""
    found = endpoints()
    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = found.database_url, found.redis_url


@app.command()
def api(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Server processes."),
) -> None:
    """Serve the JSON API with uvicorn (refuses to start on an out-of-date schema)."""
    _pass_on_endpoints()
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
        ],
    )


@app.command()
def worker() -> None:
    """Run the arq worker (batches, reminders, delivery)."""
    _pass_on_endpoints()
    os.execvp(  # noqa: S606 - replaces this process with arq, fixed program
        sys.executable,
        [sys.executable, "-m", "arq", "services.worker.settings.WorkerSettings"],
    )


def main() -> None:
    app()
