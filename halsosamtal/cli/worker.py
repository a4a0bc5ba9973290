"""``halsosamtal worker``: run the worker; ``halsosamtal worker health``: is one running?"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import typer

app = typer.Typer(
    help="Run the arq worker (batches, reminders, delivery); `worker health` checks that one runs.",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode=None,
)

REDIS_TIMEOUT_S = 3


@app.callback()
def worker(ctx: typer.Context) -> None:
    """Run the arq worker (batches, reminders, delivery); it reconnects when Redis or the
    database goes away. `worker health` checks that one runs."""
    if ctx.invoked_subcommand is not None:
        return
    from halsosamtal.core.cli import endpoints

    found = endpoints()
    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = found.database_url, found.redis_url
    # The worker is one process: its metrics live in memory, never in the API's files.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    os.execvp(  # noqa: S606 - replaces this process with the supervised worker, fixed program
        sys.executable,
        # arq's worker, started again whenever Redis or Postgres goes away (services/worker/supervisor.py);
        # its lines are shaped and masked like the service's own.
        [sys.executable, "-m", "services.worker"],
    )


async def check(redis_url: str, queue_name: str, max_age_s: int) -> tuple[bool, str]:
    """Whether a worker of ``queue_name`` beat within ``max_age_s`` and Redis answers, and why."""
    from redis.asyncio import Redis

    from halsosamtal.core.cli import safe_url
    from halsosamtal.core.runtime import last_heartbeat

    redis = Redis.from_url(redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
    try:
        try:
            await redis.ping()
            beat = await last_heartbeat(redis, queue_name)
        except Exception as exc:
            return False, f"Redis at {safe_url(redis_url)} does not answer: {type(exc).__name__}: {exc}"
    finally:
        await redis.aclose()
    if beat is None:
        return False, f"no worker heartbeat on queue {queue_name} (no worker runs, or it stopped)"
    age = time.time() - beat
    if age > max_age_s:
        return (
            False,
            f"the last worker heartbeat on queue {queue_name} is {age:.0f} s old (over {max_age_s} s)",
        )
    return True, f"worker up: last heartbeat {max(age, 0):.0f} s ago on queue {queue_name}"


@app.command()
def health() -> None:
    """Exit 0 when a worker's heartbeat is fresh and Redis answers, else 1 with the reason."""
    from halsosamtal.core import infra
    from halsosamtal.core.console import console, fail
    from halsosamtal.core.settings import get_settings

    settings = get_settings()
    url = settings.redis_url or infra.find(settings, quiet=True).redis_url
    ok, reason = asyncio.run(check(url, settings.queue_name, settings.worker_heartbeat_max_age_s))
    if not ok:
        fail(f"worker down: {reason}")
    console.print(reason, highlight=False)
