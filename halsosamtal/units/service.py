"""Care units: register import, listing, and changes of participation and capacity."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.access.schemas import Principal
from halsosamtal.core import clock
from halsosamtal.core.errors import Forbidden, InvalidInput, NotFound
from halsosamtal.core.imports import (
    BOOL_REASON,
    DEFAULT_REJECT_LIMIT,
    Delimiter,
    Encoding,
    ImportSummary,
    RegisterImport,
    Reject,
    header_columns,
    open_csv,
    parse_bool,
    read_records,
)
from halsosamtal.units.columns import CARE_UNIT_COLUMNS, CONTACT_COLUMNS
from halsosamtal.units.models import HSA_ID_PATTERN, CareUnit
from halsosamtal.units.schemas import CareUnitOut, CareUnitUpdate

COLUMNS = (*CARE_UNIT_COLUMNS, *CONTACT_COLUMNS)
HEADER_EXAMPLE = ",".join(CARE_UNIT_COLUMNS)
REQUIRED_FOR_NEW = ("name", "municipality", "operator")
"""What a new unit needs: a file without one of these columns can only change known units."""
BATCH_ROWS = 1000
"""Rows written per statement: memory stays flat whatever the file's size."""
ADVISORY_LOCK_KEY = 0x6361_7265_756E_6974  # b"careunit": one care units import at a time
_SEEN = "care_units_import_seen"

_HSA_ID = re.compile(HSA_ID_PATTERN)
_MUNICIPALITY = re.compile(r"^[0-9]{4}$")
_CAPACITY = re.compile(r"^[0-9]{1,5}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{3,30}$")
MAX_CAPACITY = 10_000
_SQL_TYPES = {"participating": "boolean", "weekly_capacity": "int"}  # the others are text

_REASONS = {
    "hsa_id": "not an HSA-id like SE2321000131-E000000000123",
    "name": "a name of 1 to 200 characters is required",
    "municipality": "a municipality code is 4 digits",
    "operator": "operator must be 'public' or 'private'",
    "participating": "participating " + BOOL_REASON,
    "weekly_capacity": f"weekly_capacity must be a whole number from 0 to {MAX_CAPACITY}",
    "visiting_address": "a visiting address is at most 200 characters",
    "phone": "a phone number is digits, with spaces, '-', '(', ')' and a leading '+' allowed",
}


def _parse_row(raw: dict[str, str]) -> dict[str, Any] | tuple[str, str]:
    """One row's values (only the columns the file has), or (column, reason) of the first bad
    one. Never quotes the value."""
    values: dict[str, Any] = {}
    for column, value in raw.items():
        value = value.strip()
        parsed: Any = value
        if column == "hsa_id":
            ok = bool(_HSA_ID.match(value))
        elif column == "name":
            ok = 1 <= len(value) <= 200
        elif column == "municipality":
            ok = bool(_MUNICIPALITY.match(value))
        elif column == "operator":
            parsed = value.lower()
            ok = parsed in ("public", "private")
        elif column == "participating":
            parsed = parse_bool(value)
            ok = parsed is not None
        elif column == "weekly_capacity":
            ok = not value or (bool(_CAPACITY.match(value)) and int(value) <= MAX_CAPACITY)
            parsed = int(value) if ok and value else 0
        elif column == "visiting_address":
            parsed = value or None
            ok = len(value) <= 200
        elif column == "phone":
            parsed = value or None
            ok = not value or bool(_PHONE.match(value))
        else:  # pragma: no cover - the header check knows every column
            raise AssertionError(column)
        if not ok:
            return column, _REASONS[column]
        values[column] = parsed
    return values


@dataclass
class _Batch:
    """Rows read since the last write, and the rejects among them (written in line order)."""

    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


async def import_care_units(
    session: AsyncSession,
    chunks: AsyncIterable[bytes],
    *,
    source: str,
    actor: str,
    as_of: date | None = None,
    delimiter: Delimiter | None = None,
    encoding: Encoding | None = None,
    reject_limit: int | None = DEFAULT_REJECT_LIMIT,
    on_reject: Callable[[Reject], None] | None = None,
) -> ImportSummary:
    """Upsert the file's units by HSA-id, streamed, a thousand rows a statement; a unit whose
    row changes nothing is not touched. Runs in the caller's transaction.

    Only ``hsa_id`` is required in the header. A column the file does not have is left as it
    is on every known unit; a new unit needs ``name``, ``municipality`` and ``operator`` (a row
    for an unknown unit without them is rejected) and gets the defaults of the others (not
    participating, capacity 0, no visiting address or phone). Each bad row is a reject with
    its line and column (never its values); of rows with the same HSA-id only the first is
    imported. The delimiter and encoding are detected unless given (see
    ``halsosamtal.core.imports.open_csv``). ``summary.rejects`` holds the first
    ``reject_limit`` (all when None); ``on_reject`` gets every one, in line order."""
    start = await open_csv(chunks, delimiter=delimiter, encoding=encoding)
    names = header_columns(start.header, COLUMNS, required=("hsa_id",), example=HEADER_EXAMPLE)
    present = [c for c in COLUMNS if c in names and c != "hsa_id"]
    missing_for_new = [c for c in REQUIRED_FOR_NEW if c not in names]
    summary = ImportSummary(
        columns=names,
        columns_left_unchanged=[c for c in COLUMNS if c not in names],
        format=start.format,
    )
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    await session.execute(
        text(f"CREATE TEMP TABLE {_SEEN} (hsa_id text PRIMARY KEY, line int NOT NULL) ON COMMIT DROP")
    )
    batch = _Batch()

    def reject(item: Reject) -> None:
        summary.rejected += 1
        if reject_limit is None or len(summary.rejects) < reject_limit:
            summary.rejects.append(item)
        if on_reject is not None:
            on_reject(item)

    async def flush() -> None:
        nonlocal batch
        done, batch = batch, _Batch()
        accepted = await _write(session, done, present, missing_for_new, summary)
        for item in sorted(done.rejects, key=lambda r: r.line):
            reject(item)
        summary.unchanged += accepted

    async for record in read_records(start.rest, start.format, len(names)):
        summary.rows += 1
        if record.fields is None:
            batch.rejects.append(Reject(line=record.line, reason=record.problem or "unreadable"))
        else:
            parsed = _parse_row(dict(zip(names, record.fields, strict=True)))
            if isinstance(parsed, tuple):
                batch.rejects.append(Reject(line=record.line, column=parsed[0], reason=parsed[1]))
            else:
                batch.rows.append((record.line, parsed))
        if len(batch.rows) >= BATCH_ROWS or len(batch.rejects) >= BATCH_ROWS:
            await flush()
    await flush()
    await session.execute(text(f"DROP TABLE {_SEEN}"))
    summary.unchanged -= summary.inserted + summary.updated
    summary.rejects_truncated = summary.rejected - len(summary.rejects)
    run = RegisterImport(
        kind="care_units",
        source=source,
        as_of=as_of or clock.local_today(),
        snapshot=False,
        actor=actor,
        finished_at=func.now(),
        rows_total=summary.rows,
        inserted=summary.inserted,
        updated=summary.updated,
        unchanged=summary.unchanged,
        rejected=summary.rejected,
        moved_out=0,
    )
    session.add(run)
    await session.flush()
    summary.import_id = run.id
    return summary


async def _write(
    session: AsyncSession,
    batch: _Batch,
    present: list[str],
    missing_for_new: list[str],
    summary: ImportSummary,
) -> int:
    """Write one batch's valid rows (new units inserted, known ones updated where they differ);
    the rows accepted. Rows that cannot be written become rejects of the batch."""
    if not batch.rows:
        return 0
    ids = list({values["hsa_id"] for _, values in batch.rows})
    known = set(
        (
            await session.scalars(select(CareUnit.hsa_id).where(CareUnit.hsa_id.in_(ids)).with_for_update())
        ).all()
    )
    # The first row of an HSA-id in the file is the one imported, in this batch or an earlier.
    first_here: dict[str, int] = {}
    candidates: list[tuple[int, dict[str, Any]]] = []
    for line, values in batch.rows:
        hsa_id = values["hsa_id"]
        if hsa_id in first_here:
            batch.rejects.append(
                Reject(line=line, column="hsa_id", reason=f"duplicate of line {first_here[hsa_id]}")
            )
            continue
        first_here[hsa_id] = line
        if hsa_id not in known and missing_for_new:
            batch.rejects.append(
                Reject(
                    line=line,
                    column=missing_for_new[0],
                    reason=f"a new care unit needs {', '.join(missing_for_new)}; the file has no "
                    f"{'such column' if len(missing_for_new) == 1 else 'such columns'}",
                )
            )
            continue
        candidates.append((line, values))
    if not candidates:
        return 0
    firsts = set(
        (
            await session.scalars(
                text(
                    f"INSERT INTO {_SEEN} SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:lines AS int[])) "
                    "ON CONFLICT DO NOTHING RETURNING hsa_id"
                ),
                {"ids": [v["hsa_id"] for _, v in candidates], "lines": [line for line, _ in candidates]},
            )
        ).all()
    )
    if len(firsts) < len(candidates):
        found = await session.execute(
            text(f"SELECT hsa_id, line FROM {_SEEN} WHERE hsa_id = ANY(CAST(:ids AS text[]))"),
            {"ids": [v["hsa_id"] for _, v in candidates if v["hsa_id"] not in firsts]},
        )
        earlier: dict[str, int] = {hsa_id: line for hsa_id, line in found.all()}
        for line, values in candidates:
            if values["hsa_id"] not in firsts:
                batch.rejects.append(
                    Reject(
                        line=line, column="hsa_id", reason=f"duplicate of line {earlier[values['hsa_id']]}"
                    )
                )
        candidates = [(line, v) for line, v in candidates if v["hsa_id"] in firsts]
    new = [v for _, v in candidates if v["hsa_id"] not in known]
    old = [v for _, v in candidates if v["hsa_id"] in known]
    if new:
        defaults = {"participating": False, "weekly_capacity": 0, "visiting_address": None, "phone": None}
        await session.execute(insert(CareUnit).values([defaults | v for v in new]))
        summary.inserted += len(new)
    if old and present:
        columns = ["hsa_id", *present]
        source = ", ".join(f"CAST(:{c} AS {_SQL_TYPES.get(c, 'text')}[])" for c in columns)
        changed = await session.execute(
            text(
                f"UPDATE care_units u SET {', '.join(f'{c} = v.{c}' for c in present)}, updated_at = now() "
                f"FROM unnest({source}) AS v({', '.join(columns)}) "
                f"WHERE u.hsa_id = v.hsa_id AND ({', '.join(f'u.{c}' for c in present)}) "
                f"IS DISTINCT FROM ({', '.join(f'v.{c}' for c in present)})"
            ),
            {c: [v[c] for v in old] for c in columns},
        )
        summary.updated += cast("CursorResult[Any]", changed).rowcount
    return len(candidates)


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
