"""Benchmark: the demo region's year in progress (``demo-data --simulate``) into a scratch database.

Prints the wall time, the time per phase (the register, the worker's morning jobs, each kind of
resident and centre action), the CPU time this process used and the CPU time the database
server's backends used for it (read from /proc when the server runs on this machine), so that
the cost can be told apart from a busy machine's waiting. Then the content digest (the same for
the same seed and day).

Usage: python bench/demo_year.py [--residents 50000] [--seed 2026] [--as-of 2026-12-07] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import resource
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event

import halsosamtal.models  # noqa: F401 - every table registered
from halsosamtal.core import infra, migrations
from halsosamtal.core.clock import local_today
from halsosamtal.core.database import create_engine, make_sessionmaker, session_scope
from halsosamtal.core.settings import Settings, get_settings
from halsosamtal.demo.digest import content_digests
from halsosamtal.demo.simulate import fast_commits, simulate

TICKS = os.sysconf("SC_CLK_TCK")


def _backend_cpu(pids: set[int]) -> float | None:
    """CPU seconds (user + system) of these server processes, or None when not readable here."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


async def run(url: str, residents: int, seed: int, as_of: dt.date, letters: Path) -> None:
    engine = create_engine(url, pool_size=3, max_overflow=2, application_name="halsosamtal-bench-demo")
    fast_commits(engine)
    pids: set[int] = set()

    def _remember(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        pids.add(int(cursor.fetchone()[0]))
        cursor.close()

    event.listen(engine.sync_engine, "connect", _remember)
    settings = get_settings().model_copy(update={"database_url": url, "letters_dir": letters})
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    try:
        summary = await simulate(
            make_sessionmaker(engine), settings, seed=seed, residents=residents, as_of=as_of
        )
        wall = time.perf_counter() - started
        backend = _backend_cpu(pids)  # before the pool closes its connections
        after = resource.getrusage(resource.RUSAGE_SELF)
        async with session_scope(make_sessionmaker(engine)) as session:
            digests = await content_digests(session)
    finally:
        await engine.dispose()
    client = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        f"simulated {summary.year} up to {summary.as_of}: {residents:,} residents, "
        f"{summary.invitations:,} invitations"
    )
    print(
        f"wall:          {wall:.1f} s (load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(f"CPU, client:   {client:.1f} s")
    print(
        f"CPU, server:   {backend:.1f} s" if backend is not None else "CPU, server:   (not on this machine)"
    )
    for phase, seconds in sorted(summary.phases.items(), key=lambda p: -p[1]):
        print(f"  {phase:24} {seconds:7.1f} s")
    for what, n in sorted(summary.counts.items()):
        print(f"  {what:24} {n:7,}")
    for table, digest in digests.items():
        print(f"  digest {table:24} {digest}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--residents", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None)
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    args = parser.parse_args()
    found = infra.find(Settings(), quiet=True)
    name = f"halsosamtal_bench_{uuid.uuid4().hex[:8]}"
    url = infra.with_database(found.database_url, name)
    letters = Path("/tmp") / f"{name}-letters"  # noqa: S108 - scratch print files of a benchmark
    asyncio.run(infra.ensure_database(url))
    try:
        migrations.upgrade(url)
        asyncio.run(run(url, args.residents, args.seed, args.as_of or local_today(), letters))
    finally:
        if not args.keep:
            asyncio.run(infra.drop_database(url))


if __name__ == "__main__":
    main()
