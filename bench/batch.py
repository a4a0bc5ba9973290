"""Benchmark: a year's invitation batch on a national-size register.

Builds a scratch database with N residents (default 2,500,000; about 120,000 turn 40, 50, 60
or 70 in the year and are listed at a participating unit) over 40 care units, then in one run:

1. one bare INSERT ... SELECT of the same rows (invitations, their planned messages and history
   rows) into the same tables: no pacing, one transaction (then emptied again),
2. the batch run (plan + paced inserts, one transaction per unit),
3. the invitation rows alone into a table with no index or constraint (the floor),
4. the batch run again, with nothing left to do.

The bare baseline that matters is one INSERT ... SELECT of the same rows (invitations, their
messages and history rows) into the same tables; a table with no index at all is printed too,
as the floor. Goal: run under 10 s and at least half the bare rate; re-run under 2 s.  Usage: python bench/batch.py [--residents N] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from halsosamtal.core import infra, migrations
from halsosamtal.core.database import create_engine, make_sessionmaker
from halsosamtal.core.settings import Settings
from halsosamtal.invitations import batch
from halsosamtal.programmes.schemas import ProgrammeRules
from halsosamtal.programmes.service import set_year

YEAR = 2027
AS_OF = dt.date(2026, 12, 1)
UNITS = 40
AGES = [40, 50, 60, 70]


async def build(url: str, residents: int) -> None:
    engine = create_engine(url, pool_size=2, max_overflow=0)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO care_units (hsa_id, name, municipality, operator, participating, weekly_capacity) "
                    "SELECT 'SE2321000115-E' || lpad(i::text, 12, '0'), 'Vårdcentralen ' || i, '1380', "
                    "'public', i % 20 <> 0, 40 + i % 30 FROM generate_series(1, :n) i"
                ),
                {"n": UNITS},
            )
            # Ages 0-84 evenly (about 1.2 % per year of age, as in Sweden's 40-70 year olds);
            # at most 81 people per birth date, so serials stay unique.
            await conn.execute(
                text(
                    "INSERT INTO residents (personnummer, birth_date, sex, care_unit_id, municipality) "
                    "SELECT to_char(b, 'YYYYMMDD') || lpad((i / 31046)::text, 3, '0') || '0', b, "
                    "CASE WHEN i % 2 = 0 THEN 'F' ELSE 'M' END, "
                    "CASE WHEN i % 50 = 0 THEN NULL ELSE 1 + (i::bigint * 7919) % :units END, '1380' "
                    "FROM generate_series(0, :n - 1) i, "
                    "LATERAL (SELECT DATE '1942-01-01' + (i % 31046)) AS d(b)"
                ),
                {"n": residents, "units": UNITS},
            )
            await conn.execute(text("ANALYZE residents"))
            await conn.execute(text("ANALYZE care_units"))
        async with make_sessionmaker(engine)() as s, s.begin():
            await set_year(
                s,
                YEAR,
                ProgrammeRules(target_ages=AGES, talk_rate=1000, valid_until=dt.date(YEAR + 1, 3, 31)),
                actor="bench",
            )
    finally:
        await engine.dispose()


SAME_ROWS = """
WITH ins AS (
    INSERT INTO invitations (year, age, resident_id, care_unit_id, planned_send_on, status, valid_until)
    SELECT :year, t.age, r.id, r.care_unit_id, {week}, 'planned', DATE '{valid}'
    {cohort}
    RETURNING id, resident_id, planned_send_on
),
messages AS (
    INSERT INTO messages (resident_id, invitation_id, kind, send_on)
    SELECT resident_id, id, 'invitation', planned_send_on FROM ins
),
events AS (
    INSERT INTO invitation_events (invitation_id, from_status, to_status, reason, actor)
    SELECT id, NULL, 'planned', 'bare', 'bench' FROM ins
)
SELECT count(*) FROM ins
"""


async def _timed(engine: AsyncEngine, sql: str, params: dict[str, object]) -> tuple[int, float]:
    t0 = time.perf_counter()
    async with engine.begin() as conn:
        result = await conn.execute(text(sql), params)
        rows = result.scalar() if result.returns_rows else result.rowcount
    return int(rows or 0), time.perf_counter() - t0


async def measure(url: str) -> None:
    engine = create_engine(url, pool_size=3, max_overflow=2)
    sm = make_sessionmaker(engine)
    try:
        async with sm() as s:
            params = batch._params(await batch.get_year(s, YEAR), AS_OF)
        cohort = batch.invitable(AGES)
        # 1. The same rows into the same tables in one bare statement: no pacing, one
        #    transaction, then emptied again for the real run.
        same, same_s = await _timed(
            engine,
            SAME_ROWS.format(week=batch.PREFERRED_WEEK, valid=f"{YEAR + 1}-03-31", cohort=cohort),
            params,
        )
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE invitations, messages, invitation_events, delivery_attempts"))

        # 2. The batch run.
        async with sm() as s, s.begin():
            first = await batch.new_batch(s, YEAR, actor="bench")
        t0 = time.perf_counter()
        result = await batch.run(sm, YEAR, AS_OF, batch_id=first, actor="bench")
        run_s = time.perf_counter() - t0

        # 3. The floor: the invitation rows alone into a table with no index or constraint.
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE TABLE bare_invitations (year smallint, age smallint, resident_id bigint, "
                    "care_unit_id bigint, planned_send_on date, status text, valid_until date)"
                )
            )
        bare, bare_s = await _timed(
            engine,
            "INSERT INTO bare_invitations SELECT :year, t.age, r.id, r.care_unit_id, "
            f"{batch.PREFERRED_WEEK}, 'planned', DATE '{YEAR + 1}-03-31' " + cohort,
            params,
        )

        # 4. The batch again, with nothing left to do.
        async with sm() as s, s.begin():
            second = await batch.new_batch(s, YEAR, actor="bench")
        t0 = time.perf_counter()
        again = await batch.run(sm, YEAR, AS_OF, batch_id=second, actor="bench")
        rerun_s = time.perf_counter() - t0
    finally:
        await engine.dispose()

    assert same == bare == result.created, (same, bare, result.created)
    run_rate, same_rate, bare_rate = result.created / run_s, same / same_s, bare / bare_s
    print(
        f"batch run:        {result.created:>9,} invitations in {run_s:6.2f} s = {run_rate:>9,.0f} /s "
        "(paced; with their messages and history rows)"
    )
    print(
        f"bare, same rows:  {same:>9,} invitations in {same_s:6.2f} s = {same_rate:>9,.0f} /s "
        "(one INSERT ... SELECT of the same rows into the same tables, no pacing)"
    )
    print(
        f"bare, no indexes: {bare:>9,} rows        in {bare_s:6.2f} s = {bare_rate:>9,.0f} /s "
        "(invitation rows only, into a table with no index or constraint)"
    )
    print(f"ratio to the same rows: {run_rate / same_rate:.2f} (goal >= 0.5); run goal < 10 s")
    print(f"ratio to no indexes:    {run_rate / bare_rate:.2f}")
    print(f"re-run:           {again.created} created in {rerun_s:.2f} s (goal < 2 s)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--residents", type=int, default=2_500_000)
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    args = parser.parse_args()
    found = infra.find(Settings(), quiet=True)
    url = infra.with_database(found.database_url, f"halsosamtal_bench_{uuid.uuid4().hex[:8]}")
    asyncio.run(infra.ensure_database(url))
    try:
        migrations.upgrade(url)
        t0 = time.perf_counter()
        asyncio.run(build(url, args.residents))
        print(f"register:      {args.residents:,} residents built in {time.perf_counter() - t0:.1f} s")
        asyncio.run(measure(url))
    finally:
        if not args.keep:
            asyncio.run(infra.drop_database(url))


if __name__ == "__main__":
    main()
