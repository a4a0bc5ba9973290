"""Benchmark the residents register import against a raw COPY of the same file.

    uv run python bench/import_residents.py            # 1,000,000 residents
    uv run python bench/import_residents.py --rows 50000

In a scratch database of its own (created, migrated and dropped again): writes a demo register
extract to a temporary file, inserts the 10 care units it lists residents at, then

1. COPYs the file into a bare table (text columns, no index, no check): the floor;
2. imports it with ``import_residents`` (the service the CLI and the API call), committed;
3. imports it again: nothing changes, so this is the steady state of a nightly extract;
4. COPYs the imported rows, already typed and valid, into empty tables created ``LIKE residents
   INCLUDING ALL`` and ``LIKE listing_periods INCLUDING ALL`` with the same foreign keys: the
   physical limit of the schema (its indexes, checks and foreign keys) on this machine, with no
   validation and no upsert. Nothing an import does can be faster than this.

and prints rows/s for each, the import's rate as a share of the raw COPY's and of the schema's
limit, the phases of the import, and the process's peak RSS before and after the imports (flat:
the file is streamed).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import resource
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
from halsosamtal.residents.demo import RESIDENT_COLUMNS, demo_care_units, write_demo_csv
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


_SCHEMA_RESIDENTS = "bench_schema_residents"
_SCHEMA_PERIODS = "bench_schema_listing_periods"


async def schema_copy(engine: AsyncEngine, directory: Path) -> tuple[float, float]:
    """COPY the imported rows (typed, valid, one open listing period each) into empty copies of
    ``residents`` and ``listing_periods`` with all their indexes, checks and foreign keys,
    committed; the seconds each COPY took (the export to CSV files before is not timed).

    The rows go in the order the import writes them (by personnummer), the best case for the
    unique index; the foreign keys are checked per row, as in the import.
    """
    residents_csv, periods_csv = directory / "schema_residents.csv", directory / "schema_periods.csv"
    async with engine.connect() as conn:
        raw = await raw_connection(conn)
        columns = [
            r["attname"]
            for r in await raw.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'residents'::regclass "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            )
        ]
        period_columns = ["id", "resident_id", "care_unit_id", "listed_from", "listed_to"]
        with residents_csv.open("wb") as f:
            await raw.copy_from_query(
                f'SELECT {", ".join(columns)} FROM residents ORDER BY personnummer COLLATE "C"',
                output=f,
                format="csv",
            )
        with periods_csv.open("wb") as f:
            await raw.copy_from_query(
                f"SELECT {', '.join(period_columns)} FROM listing_periods ORDER BY resident_id",
                output=f,
                format="csv",
            )
        await raw.execute(
            f"""
            CREATE TABLE {_SCHEMA_RESIDENTS} (LIKE residents INCLUDING ALL);
            ALTER TABLE {_SCHEMA_RESIDENTS} ADD FOREIGN KEY (care_unit_id)
              REFERENCES care_units (id) ON DELETE RESTRICT;
            CREATE TABLE {_SCHEMA_PERIODS} (LIKE listing_periods INCLUDING ALL);
            ALTER TABLE {_SCHEMA_PERIODS} ADD FOREIGN KEY (resident_id)
              REFERENCES {_SCHEMA_RESIDENTS} (id) ON DELETE CASCADE;
            ALTER TABLE {_SCHEMA_PERIODS} ADD FOREIGN KEY (care_unit_id)
              REFERENCES care_units (id) ON DELETE RESTRICT;
            CHECKPOINT;
            """
        )
        try:
            started = time.perf_counter()
            async with raw.transaction():
                with residents_csv.open("rb") as f:
                    await raw.copy_to_table(_SCHEMA_RESIDENTS, source=f, columns=columns, format="csv")
            residents_s = time.perf_counter() - started
            started = time.perf_counter()
            async with raw.transaction():
                with periods_csv.open("rb") as f:
                    await raw.copy_to_table(_SCHEMA_PERIODS, source=f, columns=period_columns, format="csv")
            periods_s = time.perf_counter() - started
        finally:
            await raw.execute(f"DROP TABLE {_SCHEMA_PERIODS}, {_SCHEMA_RESIDENTS}")
    residents_csv.unlink()
    periods_csv.unlink()
    return residents_s, periods_s


async def run(rows: int, bad_rows: float, keep: Path | None) -> None:
    settings = get_settings()
    name = f"halsosamtal_bench_{uuid.uuid4().hex[:8]}"
    found = infra.find(settings, database=name, quiet=True)
    url = infra.with_database(settings.database_url, name) if settings.database_url else (found.database_url)
    as_of = dt.date.today()
    await infra.ensure_database(url)
    engine = create_engine(url, pool_size=2, max_overflow=0, application_name="halsosamtal-bench")
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

            copy_s = await raw_copy(engine, path) if not demo.bad_rows else None
            first, first_s = await timed_import(sessionmaker, path, as_of)
            again, again_s = await timed_import(sessionmaker, path, as_of)
            rss_after = peak_rss_mib()
            schema_residents_s, schema_periods_s = await schema_copy(engine, Path(tmp))
            schema_s = schema_residents_s + schema_periods_s

    finally:
        await engine.dispose()
        await infra.drop_database(url)

    n = demo.rows

    def rate(seconds: float) -> str:
        return f"{seconds:7.2f}s {n / seconds:>10,.0f} rows/s"

    def ratio(seconds: float) -> str:
        to_copy = f" = {copy_s / seconds:.2f} x raw COPY," if copy_s else " ="
        return f"{to_copy} {schema_s / seconds:.2f} x schema COPY"

    if copy_s:
        print(f"raw COPY, bare table   {rate(copy_s)}")
    print(
        f"COPY into the schema   {rate(schema_s)}{f' = {copy_s / schema_s:.2f} x raw COPY' if copy_s else ''}"
        f"   (residents {schema_residents_s:.2f}s, listing periods {schema_periods_s:.2f}s)"
    )
    print(
        f"import (first)         {rate(first_s)}{ratio(first_s)}   "
        f"inserted {first.inserted:,}, rejected {first.rejected:,}"
    )
    print(
        f"re-import (unchanged)  {rate(again_s)}{ratio(again_s)}   "
        f"unchanged {again.unchanged:,}, updated {again.updated:,}, inserted {again.inserted:,}"
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
    parser.add_argument("--keep", type=Path, help="write the file here and keep it")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="  %(message)s")
    logging.getLogger("halsosamtal.residents.importer").setLevel(logging.INFO)  # the phases
    asyncio.run(run(args.rows, args.bad_rows, args.keep))


if __name__ == "__main__":
    main()
