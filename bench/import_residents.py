"""Benchmark the residents register import against a raw COPY of the same file.

    uv run python bench/import_residents.py            # 1,000,000 residents, 3 rounds
    uv run python bench/import_residents.py --rows 200000 --rounds 1

In a scratch database of its own (created, migrated and dropped again): writes a demo register
extract to a temporary file, inserts the 10 care units it lists residents at, then, in each round
(the residents emptied before each):

1. COPYs the file into a bare table (text columns, no index, no check): the floor;
2. imports it with ``import_residents`` (the service the CLI and the API call), committed: the
   first load;
3. imports it again: nothing changes, so this is the steady state of a nightly extract;

and once, after the rounds:

4. writes the imported rows again, already typed, valid and sorted, with ``INSERT ... SELECT``
   into empty tables created ``LIKE residents INCLUDING ALL`` and ``LIKE listing_periods
   INCLUDING ALL``: the physical limit of the schema
   (its indexes and checks) on this machine, with no validation and no upsert. Written as the
   import writes them (see ``_foreign_key_triggers_off`` in the importer), without the foreign
   keys' row-by-row triggers; and, for comparison, with the foreign keys, as any other writer.
   A first import cannot be faster than the raw COPY (it has to read the file into the
   database) plus this.

and prints rows/s for each (the range over the rounds: the machine may be shared), the
import's rate as a share of the raw COPY's, the phases of each import, and the process's peak
RSS before and after the imports (flat: the file is streamed).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from halsosamtal.core import infra, migrations
from halsosamtal.core.database import create_engine, make_sessionmaker, raw_connection
from halsosamtal.core.imports import ImportSummary
from halsosamtal.core.settings import get_settings
from halsosamtal.residents.columns import RESIDENT_COLUMNS
from halsosamtal.residents.demo import demo_care_units, write_demo_csv
from halsosamtal.residents.importer import import_residents

CHUNK = 1 << 20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


async def timed_import(
    sessionmaker: async_sessionmaker[AsyncSession], path: Path, as_of: dt.date
) -> tuple[ImportSummary, float]:
    started = time.perf_counter()
    async with sessionmaker() as session, session.begin():
        summary = await import_residents(session, chunks(path), as_of=as_of, source=path.name, actor="bench")
    return summary, time.perf_counter() - started  # the commit included


async def raw_copy(engine: AsyncEngine, path: Path) -> float:
    """COPY the file into a bare table of text columns, committed; the seconds it took."""
    async with engine.connect() as conn:
        raw = await raw_connection(conn)
        await raw.execute(
            "CREATE TABLE bench_raw_copy (" + ", ".join(f"{c} text" for c in RESIDENT_COLUMNS) + ")"
        )
        started = time.perf_counter()
        async with raw.transaction():
            with path.open("rb") as f:
                await raw.copy_to_table("bench_raw_copy", source=f, format="csv", header=True)
        elapsed = time.perf_counter() - started
        await raw.execute("DROP TABLE bench_raw_copy")
    return elapsed


async def empty_register(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE residents, listing_periods, register_imports CASCADE"))
    async with engine.connect() as conn:
        await conn.execute(text("COMMIT"))
        await conn.execute(text("CHECKPOINT"))  # each round starts from the same state


_SCHEMA_RESIDENTS = "bench_schema_residents"
_SCHEMA_PERIODS = "bench_schema_listing_periods"


async def schema_write(engine: AsyncEngine, *, foreign_keys: bool) -> tuple[float, float]:
    """Write the imported rows (typed, valid, one open listing period each) again, with one
    ``INSERT ... SELECT`` each, into empty copies of ``residents`` and ``listing_periods`` with
    all their indexes and checks (and their foreign keys, with ``foreign_keys``), committed; the
    seconds each took.

    The rows go in the order the import writes them (by personnummer), the best case for the
    unique index. Without ``foreign_keys`` nothing checks them row by row, as in the import.
    """
    async with engine.connect() as conn:
        raw = await raw_connection(conn)
        columns = [
            r["attname"]
            for r in await raw.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'residents'::regclass "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            )
        ]
        await raw.execute(
            f"""
            CREATE TABLE {_SCHEMA_RESIDENTS} (LIKE residents INCLUDING ALL);
            CREATE TABLE {_SCHEMA_PERIODS} (LIKE listing_periods INCLUDING ALL);
            """
        )
        if foreign_keys:
            await raw.execute(
                f"""
                ALTER TABLE {_SCHEMA_RESIDENTS} ADD FOREIGN KEY (care_unit_id)
                  REFERENCES care_units (id) ON DELETE RESTRICT;
                ALTER TABLE {_SCHEMA_PERIODS} ADD FOREIGN KEY (resident_id)
                  REFERENCES {_SCHEMA_RESIDENTS} (id) ON DELETE CASCADE;
                ALTER TABLE {_SCHEMA_PERIODS} ADD FOREIGN KEY (care_unit_id)
                  REFERENCES care_units (id) ON DELETE RESTRICT;
                """
            )
        # The rows to write, typed and in order, in temporary tables first (not timed), as the
        # import has them when it writes.
        await raw.execute(
            f"""
            CREATE TEMP TABLE bench_rows AS
              SELECT {", ".join(columns)} FROM residents ORDER BY personnummer COLLATE "C";
            CREATE TEMP TABLE bench_periods AS
              SELECT * FROM listing_periods ORDER BY resident_id, id;
            CHECKPOINT;
            """
        )
        try:
            started = time.perf_counter()
            await raw.execute(
                f"INSERT INTO {_SCHEMA_RESIDENTS} ({', '.join(columns)}) SELECT * FROM bench_rows"
            )
            residents_s = time.perf_counter() - started
            started = time.perf_counter()
            await raw.execute(f"INSERT INTO {_SCHEMA_PERIODS} SELECT * FROM bench_periods")
            periods_s = time.perf_counter() - started
        finally:
            await raw.execute(f"DROP TABLE {_SCHEMA_PERIODS}, {_SCHEMA_RESIDENTS}, bench_rows, bench_periods")
    return residents_s, periods_s


async def run(rows: int, bad_rows: float, rounds: int, keep: Path | None) -> None:
    settings = get_settings()
    name = f"halsosamtal_bench_{uuid.uuid4().hex[:8]}"
    found = infra.find(settings, database=name, quiet=True)
    url = infra.with_database(settings.database_url, name) if settings.database_url else (found.database_url)
    as_of = dt.date.today()
    await infra.ensure_database(url)
    engine = create_engine(url, pool_size=2, max_overflow=0, application_name="halsosamtal-bench")
    copies: list[float] = []
    firsts: list[float] = []
    agains: list[float] = []
    try:
        await asyncio.to_thread(migrations.upgrade, url)
        units = demo_care_units(10)
        with tempfile.TemporaryDirectory() as tmp:
            path = keep or Path(tmp) / "residents.csv"
            started = time.perf_counter()
            with path.open("w", newline="", encoding="utf-8") as out:
                demo = write_demo_csv(
                    out, residents=rows, seed=1, bad_rows=bad_rows, reference=as_of, care_units=units
                )
            size = path.stat().st_size
            print(
                f"generated {demo.rows:,} rows ({demo.bad_rows:,} bad), {size / 2**20:.0f} MiB "
                f"in {time.perf_counter() - started:.1f}s -> {path}"
            )

            sessionmaker = make_sessionmaker(engine)
            async with sessionmaker() as session, session.begin():
                for u in units:
                    await session.execute(
                        text(
                            "INSERT INTO care_units (hsa_id, name, municipality, operator, "
                            "participating, weekly_capacity) VALUES (:h, :n, :m, :o, :p, :c)"
                        ),
                        {
                            "h": u.hsa_id,
                            "n": u.name,
                            "m": u.municipality,
                            "o": u.operator,
                            "p": u.participating,
                            "c": u.weekly_capacity,
                        },
                    )
            rss_before = peak_rss_mib()

            for round_ in range(1, rounds + 1):
                print(f"round {round_}:")
                await empty_register(engine)
                if not demo.bad_rows:
                    copies.append(await raw_copy(engine, path))
                first, first_s = await timed_import(sessionmaker, path, as_of)
                again, again_s = await timed_import(sessionmaker, path, as_of)
                firsts.append(first_s)
                agains.append(again_s)
            rss_after = peak_rss_mib()
            schema_fast = await schema_write(engine, foreign_keys=False)
            schema_fk = await schema_write(engine, foreign_keys=True)

    finally:
        await engine.dispose()
        await infra.drop_database(url)

    n = demo.rows
    copy_s = statistics.median(copies) if copies else None

    def rate(seconds: list[float]) -> str:
        best, median, worst = min(seconds), statistics.median(seconds), max(seconds)
        spread = f" ({n / worst:,.0f}-{n / best:,.0f})" if len(seconds) > 1 else ""
        return f"{median:6.2f}s {n / median:>9,.0f} rows/s{spread:<20}"

    def to_copy(seconds: list[float]) -> str:
        return f" = {copy_s / statistics.median(seconds):.2f} x raw COPY" if copy_s else ""

    print(f"median of {rounds} round(s), rows/s range in brackets:")
    if copies:
        print(f"raw COPY, bare table      {rate(copies)}")
    for label, (residents_s, periods_s) in (
        ("write into the schema    ", schema_fast),
        ("  ... with foreign keys  ", schema_fk),
    ):
        print(
            f"{label} {rate([residents_s + periods_s])}{to_copy([residents_s + periods_s])}"
            f"   (residents {residents_s:.2f}s, listing periods {periods_s:.2f}s)"
        )
    if copy_s:
        floor = copy_s + sum(schema_fast)
        print(
            f"first-import floor        {rate([floor])}{to_copy([floor])}   "
            "(raw COPY + write into the schema, no foreign key triggers)"
        )
    print(
        f"import (first)            {rate(firsts)}{to_copy(firsts)}   inserted {first.inserted:,}, "
        f"rejected {first.rejected:,}"
    )
    print(
        f"re-import (unchanged)     {rate(agains)}{to_copy(agains)}   unchanged {again.unchanged:,}, "
        f"updated {again.updated:,}, inserted {again.inserted:,}"
    )
    print(
        f"peak RSS: {rss_before:.0f} MiB before the imports, {rss_after:.0f} MiB after "
        f"(file {size / 2**20:.0f} MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="residents in the file")
    parser.add_argument(
        "--bad-rows",
        type=float,
        default=0.0,
        help="share of bad rows (default 0); COPY cannot take a file with rows "
        "of the wrong length, so with bad rows there is no raw COPY to compare",
    )
    parser.add_argument("--rounds", type=int, default=3, help="times to run COPY, import, re-import")
    parser.add_argument("--keep", type=Path, help="write the file here and keep it")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="  %(message)s")
    logging.getLogger("halsosamtal.residents.importer").setLevel(logging.INFO)  # the phases
    asyncio.run(run(args.rows, args.bad_rows, args.rounds, args.keep))


if __name__ == "__main__":
    main()
