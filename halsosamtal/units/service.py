"""Care units: register import, listing, and changes of participation and capacity."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import date
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, literal_column, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.access.schemas import Principal
from halsosamtal.core import clock
from halsosamtal.core.errors import Forbidden, InvalidInput, NotFound
from halsosamtal.core.imports import ImportSummary, RegisterImport, RejectReport, parse_bool
from halsosamtal.units.columns import CARE_UNIT_COLUMNS
from halsosamtal.units.models import CareUnit
from halsosamtal.units.schemas import CareUnitOut, CareUnitRow, CareUnitUpdate

COLUMNS = CARE_UNIT_COLUMNS

_REASONS = {
    "hsa_id": "not an HSA-id like SE2321000131-E000000000123",
    "name": "a name of 1 to 200 characters is required",
    "municipality": "a municipality code is 4 digits",
    "operator": "operator must be 'public' or 'private'",
    "participating": "participating must be true or false",
    "weekly_capacity": "weekly_capacity must be a whole number from 0 to 10000",
}


def read_care_units(lines: Iterable[str]) -> tuple[list[CareUnitRow], RejectReport, int]:
    """Parse the care unit CSV: valid rows, the reject report, and the number of data rows.

    A file whose header is not exactly the expected columns (in any order) is refused whole.
    """
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise InvalidInput("the file is empty; expected a header row", field="file")
    header = [h.strip().lower() for h in header]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [h for h in header if h not in COLUMNS]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s): {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s): {', '.join(unknown)}")
        raise InvalidInput(f"bad header: {'; '.join(parts)}; expected {','.join(COLUMNS)}", field="header")
    index = {name: header.index(name) for name in COLUMNS}
    report = RejectReport()
    rows: list[CareUnitRow] = []
    first_line: dict[str, int] = {}
    count = 0
    for record in reader:
        line = reader.line_num - (sum(f.count("\n") for f in record))
        if not any(f.strip() for f in record):
            continue
        count += 1
        if len(record) != len(header):
            report.add(line, f"expected {len(header)} fields, found {len(record)}")
            continue
        raw = {name: record[i].strip() for name, i in index.items()}
        participating = parse_bool(raw["participating"])
        if participating is None:
            report.add(line, _REASONS["participating"], "participating")
            continue
        try:
            row = CareUnitRow(
                hsa_id=raw["hsa_id"],
                name=raw["name"],
                municipality=raw["municipality"],
                operator=raw["operator"].lower(),
                participating=participating,
                weekly_capacity=raw["weekly_capacity"] or "0",
            )
        except ValidationError as exc:
            column = str(exc.errors()[0]["loc"][0])
            report.add(line, _REASONS.get(column, exc.errors()[0]["msg"]), column)
            continue
        if row.hsa_id in first_line:
            report.add(line, f"duplicate of line {first_line[row.hsa_id]}", "hsa_id")
            continue
        first_line[row.hsa_id] = line
        rows.append(row)
    return rows, report, count


async def import_care_units(
    session: AsyncSession,
    lines: Iterable[str],
    *,
    source: str,
    actor: str,
    as_of: date | None = None,
) -> ImportSummary:
    """Upsert the file's units by HSA-id in one statement; unchanged rows are not touched."""
    rows, report, count = read_care_units(lines)
    inserted = updated = 0
    if rows:
        stmt = insert(CareUnit).values([r.model_dump() for r in rows])
        changed_cols = [c for c in COLUMNS if c != "hsa_id"]
        upsert: Any = stmt.on_conflict_do_update(
            index_elements=[CareUnit.hsa_id],
            set_={**{c: stmt.excluded[c] for c in changed_cols}, "updated_at": func.now()},
            where=tuple_(*[getattr(CareUnit, c) for c in changed_cols]).is_distinct_from(
                tuple_(*[stmt.excluded[c] for c in changed_cols])
            ),
        ).returning(literal_column("xmax = 0").label("inserted"))
        results = (await session.execute(upsert)).scalars().all()
        inserted = sum(1 for r in results if r)
        updated = len(results) - inserted
    summary = ImportSummary(
        rows=count,
        inserted=inserted,
        updated=updated,
        unchanged=len(rows) - inserted - updated,
        rejected=len(report.rejects),
        rejects=sorted(report.rejects, key=lambda r: r.line),
    )
    record = RegisterImport(
        kind="care_units",
        source=source,
        as_of=as_of or clock.local_today(),
        snapshot=False,
        actor=actor,
        finished_at=func.now(),
        rows_total=summary.rows,
        inserted=inserted,
        updated=updated,
        unchanged=summary.unchanged,
        rejected=summary.rejected,
        moved_out=0,
    )
    session.add(record)
    await session.flush()
    summary.import_id = record.id
    return summary


def _out(unit: CareUnit) -> CareUnitOut:
    return CareUnitOut.model_validate(unit, from_attributes=True)


async def list_units(
    session: AsyncSession,
    principal: Principal,
    *,
    participating: bool | None = None,
    municipality: str | None = None,
) -> list[CareUnitOut]:
    """All units for operators; an EHR client sees only its own."""
    query = select(CareUnit).order_by(CareUnit.hsa_id)
    if principal.role != "operator":
        query = query.where(CareUnit.id.in_(principal.care_unit_ids))
    if participating is not None:
        query = query.where(CareUnit.participating.is_(participating))
    if municipality is not None:
        query = query.where(CareUnit.municipality == municipality)
    return [_out(u) for u in (await session.scalars(query)).all()]


async def get_unit(session: AsyncSession, hsa_id: str, principal: Principal | None = None) -> CareUnit:
    """The unit with this HSA-id; 404 when unknown, 403 when the client may not act for it."""
    unit = await session.scalar(select(CareUnit).where(CareUnit.hsa_id == hsa_id))
    if unit is None:
        raise NotFound(f"no care unit with HSA-id {hsa_id}")
    if principal is not None and not principal.may_act_for(unit.id):
        raise Forbidden(f"the client {principal.name!r} does not act for {hsa_id}")
    return unit


async def get_unit_out(session: AsyncSession, hsa_id: str, principal: Principal) -> CareUnitOut:
    return _out(await get_unit(session, hsa_id, principal))


async def update_unit(session: AsyncSession, hsa_id: str, change: CareUnitUpdate) -> CareUnitOut:
    values = change.model_dump(exclude_unset=True, exclude_none=True)
    if not values:
        raise InvalidInput("give participating and/or weekly_capacity", field="body")
    unit = await session.scalar(
        update(CareUnit)
        .where(CareUnit.hsa_id == hsa_id)
        .values(**values, updated_at=func.now())
        .returning(CareUnit)
    )
    if unit is None:
        raise NotFound(f"no care unit with HSA-id {hsa_id}")
    return _out(unit)


async def ids_by_hsa(session: AsyncSession, hsa_ids: Iterable[str]) -> dict[str, int]:
    """The ids of the units with these HSA-ids (those that exist)."""
    wanted = list(dict.fromkeys(hsa_ids))
    if not wanted:
        return {}
    rows = await session.execute(select(CareUnit.hsa_id, CareUnit.id).where(CareUnit.hsa_id.in_(wanted)))
    return {hsa: uid for hsa, uid in rows}


async def hsa_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    """The HSA-ids of the units with these ids."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = await session.execute(select(CareUnit.id, CareUnit.hsa_id).where(CareUnit.id.in_(wanted)))
    return {uid: hsa for uid, hsa in rows}
