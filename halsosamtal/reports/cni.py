"""Import the Care Need Index (CNI) per DeSO area: a CSV with the columns ``deso,cni``.

The file is the whole table: valid rows are upserted, and areas missing from it are removed,
except when some row was rejected (then nothing is removed, and a warning says why: a
half-read file must not empty the table). Bad rows are reported with their line and reason, as
the register imports do. Re-importing the same file changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.core.imports import (
    CsvFormat,
    Delimiter,
    Encoding,
    RejectReport,
    header_columns,
    open_csv,
    read_records,
)
from halsosamtal.reports.models import DesoCni
from halsosamtal.reports.schemas import CniImportSummary

COLUMNS = ("deso", "cni")
CNI_LIMIT = Decimal(1_000_000)
CNI_PLACES = Decimal("0.0001")
CHUNK = 5000  # rows per statement: two parameters each, well under Postgres' 32767


def _deso(value: str) -> bool:
    return (
        len(value) == 9
        and value[:4].isascii()
        and value[:4].isdigit()
        and value[4] in "ABC"
        and value[5:].isascii()
        and value[5:].isdigit()
    )


async def read_cni(
    chunks: AsyncIterable[bytes], *, delimiter: Delimiter | None = None, encoding: Encoding | None = None
) -> tuple[dict[str, Decimal], RejectReport, int, CsvFormat]:
    """Parse the file (streamed): {deso: cni} of the valid rows, the reject report, the data
    rows read and how the file was read. A header without both ``deso`` and ``cni`` (any order,
    any case) refuses the whole file. The CNI may have a decimal comma (``1,25``)."""
    start = await open_csv(chunks, delimiter=delimiter, encoding=encoding)
    header = header_columns(start.header, COLUMNS, required=COLUMNS, example="deso;cni")
    at = {name: header.index(name) for name in COLUMNS}
    report = RejectReport()
    rows: dict[str, Decimal] = {}
    first_line: dict[str, int] = {}
    count = 0
    async for rec in read_records(start.rest, start.format, len(header)):
        count += 1
        line, record = rec.line, rec.fields
        if record is None:
            report.add(line, rec.problem or "unreadable")
            continue
        deso = record[at["deso"]].strip().upper()
        raw = record[at["cni"]].strip().replace(",", ".")  # Swedish decimal comma
        if not _deso(deso):
            report.add(line, "not a DeSO code like 1380C1010", "deso")
            continue
        try:
            cni = Decimal(raw)
        except InvalidOperation:
            cni = Decimal("NaN")
        if not cni.is_finite() or abs(cni) >= CNI_LIMIT:
            report.add(line, "cni must be a number, e.g. 1.25", "cni")
            continue
        if deso in first_line:
            report.add(line, f"duplicate of line {first_line[deso]}", "deso")
            continue
        first_line[deso] = line
        rows[deso] = cni.quantize(CNI_PLACES)
    return rows, report, count, start.format


async def import_cni(
    session: AsyncSession,
    chunks: AsyncIterable[bytes],
    *,
    delimiter: Delimiter | None = None,
    encoding: Encoding | None = None,
) -> CniImportSummary:
    """Replace the CNI table with the file's rows (see the module docstring). The delimiter and
    encoding are detected unless given (see ``halsosamtal.core.imports.open_csv``)."""
    rows, report, count, fmt = await read_cni(chunks, delimiter=delimiter, encoding=encoding)
    inserted = updated = removed = 0
    items = list(rows.items())
    for start in range(0, len(items), CHUNK):
        stmt = insert(DesoCni).values([{"deso": d, "cni": c} for d, c in items[start : start + CHUNK]])
        upsert: Any = stmt.on_conflict_do_update(
            index_elements=[DesoCni.deso],
            set_={"cni": stmt.excluded.cni, "imported_at": func.now()},
            where=DesoCni.cni.is_distinct_from(stmt.excluded.cni),
        ).returning(literal_column("xmax = 0").label("inserted"))
        results = (await session.execute(upsert)).scalars().all()
        inserted += sum(1 for r in results if r)
        updated += len(results) - sum(1 for r in results if r)
    warnings: list[str] = []
    if report.rejects:
        kept = await session.scalar(
            select(func.count()).select_from(DesoCni).where(DesoCni.deso.not_in(list(rows)))
        )
        if kept:
            warnings.append(
                f"{kept} area(s) not in the file were kept, because some rows were rejected; "
                "import a corrected file to remove them"
            )
    else:
        removed = len(
            (
                await session.execute(
                    delete(DesoCni).where(DesoCni.deso.not_in(list(rows))).returning(DesoCni.deso)
                )
            )
            .scalars()
            .all()
        )
    return CniImportSummary(
        rows=count,
        inserted=inserted,
        updated=updated,
        unchanged=len(rows) - inserted - updated,
        removed=removed,
        rejected=len(report.rejects),
        rejects=sorted(report.rejects, key=lambda r: r.line),
        warnings=warnings,
        format=fmt,
    )
