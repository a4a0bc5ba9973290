"""The worker process: arq's worker, started again whenever Redis or Postgres goes away.

arq's own ``Worker.run`` ends the process on the first lost connection (its poll loop raises),
and the worker then stays down until someone restarts it. Here the worker is run in a loop: a
lost connection to Redis or Postgres (also at start-up) cancels the running jobs, closes what
can be closed and starts a new worker after a backoff, saying so in the log. The jobs hold no
state the database does not: a cancelled batch is taken over by the reconciler once its lease
runs out, a cancelled delivery's claims by the next delivery pass once their lease runs out.
Anything else (an out-of-date schema, a bug) still ends the process, with a non-zero status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

from arq.worker import Worker, create_worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from halsosamtal.core.database import is_connection_error

log = logging.getLogger("halsosamtal.worker")

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 10.0)
"""Waits before each new try after a lost connection; the last one repeats. arq's own connect
also retries for about 5 s, so a worker is back within ~15 s of Redis."""


def redis_gone(exc: BaseException) -> bool:
    return isinstance(exc, RedisConnectionError | RedisTimeoutError)


def connection_lost(exc: BaseException) -> bool:
    """Redis or Postgres could not be reached, or the connection broke."""
    return redis_gone(exc) or is_connection_error(exc)


async def _close(worker: Worker, main: asyncio.Task[None]) -> None:
    """Stop a worker whose connections may be gone: cancel its jobs and its poll loop, then
    close what still closes (never waiting long on a Redis that is not there)."""
    for task in [*worker.tasks.values(), main]:
        task.cancel()
    await asyncio.gather(main, *worker.tasks.values(), return_exceptions=True)
    # arq keeps its pool private; None when the worker never connected.
    pool = worker._pool
    if pool is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.delete(worker.health_check_key), timeout=2)
    if worker.on_shutdown is not None and "resources" in worker.ctx:
        try:
            await asyncio.wait_for(worker.on_shutdown(worker.ctx), timeout=10)
        except Exception as exc:
            log.warning("closing the worker's connections: %s", type(exc).__name__)
    if pool is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.aclose(), timeout=2)
        worker._pool = None


async def supervise(settings_cls: Any, *, backoff: tuple[float, ...] = BACKOFF_S) -> int:
    """Run arq workers from ``settings_cls`` until SIGINT or SIGTERM; 0 when stopped so."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    tries = 0
    down_since: float | None = None
    try:
        while not stopping.is_set():
            connected = asyncio.Event()
            startup = settings_cls.on_startup

            async def on_startup(
                ctx: dict[str, Any],
                startup: Any = startup,
                connected: asyncio.Event = connected,
                away: float | None = down_since,
            ) -> None:
                await startup(ctx)
                connected.set()
                if away is not None:
                    log.warning("worker connected again after %.0f s away", time.monotonic() - away)

            worker = create_worker(settings_cls, handle_signals=False, on_startup=on_startup)
            main = asyncio.create_task(worker.main())
            worker.main_task = main
            stop = asyncio.create_task(stopping.wait())
            await asyncio.wait({main, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if stopping.is_set():
                log.info("worker stopping (signal)")
                await _close(worker, main)
                return 0
            error = main.exception()
            await _close(worker, main)
            if error is None:
                return 0
            if not connection_lost(error):
                raise error
            if connected.is_set() or down_since is None:
                tries = 0
                down_since = time.monotonic()
            wait = backoff[min(tries, len(backoff) - 1)]
            tries += 1
            log.warning(
                "%s unavailable (%s: %s); the worker reconnects in %.0f s (try %d, away %.0f s)",
                "Redis" if redis_gone(error) else "the database",
                type(error).__name__,
                str(error)[:200] or "no detail",
                wait,
                tries,
                time.monotonic() - down_since,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=wait)
        return 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main() -> None:
    """``halsosamtal worker``: configure logging, then supervise the worker."""
    from halsosamtal.core.logging import configure_logging
    from halsosamtal.core.settings import get_settings

    configure_logging(get_settings())
    from halsosamtal.core.errors import SchemaOutOfDate
    from services.worker.settings import WorkerSettings

    try:
        code = asyncio.run(supervise(WorkerSettings))
    except SchemaOutOfDate as exc:  # said in one line: the operator runs `halsosamtal migrate`
        log.error("%s", exc)
        code = 1
    raise SystemExit(code)
