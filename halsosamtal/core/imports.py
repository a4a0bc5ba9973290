"""What every register import reports (counts, and each rejected row with its line and reason)
and records (one ``register_imports`` row per run, whichever register it was)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, DateTime, Integer, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from halsosamtal.core.database import Base


class Reject(BaseModel):
    """One rejected row. ``line`` is the physical line in the file where the row starts
    (the header is line 1); ``column`` is the column at fault, when one is."""

    line: int
    column: str | None = None
    reason: str


class ImportSummary(BaseModel):
    import_id: int | None = Field(None, description="The register_imports row of this run")
    rows: int = Field(0, description="Data rows read (header not counted)")
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    moved_out: int = Field(0, description="Residents missing from a snapshot, now marked moved out")
    rejects: list[Reject] = Field(default_factory=list)
    rejects_truncated: int = Field(
        0, description="Rejects left out of `rejects` (it holds the first ones by line)"
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What the import did not do, and why (e.g. no "
        "resident was marked moved out because some rows could not be identified)",
    )


@dataclass
class RejectReport:
    """Collects rejects; written as CSV (line, column, reason) next to the imported file."""

    rejects: list[Reject] = field(default_factory=list)

    def add(self, line: int, reason: str, column: str | None = None) -> None:
        self.rejects.append(Reject(line=line, column=column, reason=reason))

    def write(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "column", "reason"])
            for r in sorted(self.rejects, key=lambda r: r.line):
                writer.writerow([r.line, r.column or "", r.reason])


def parse_bool(value: str) -> bool | None:
    """'true'/'false' (also 1/0, yes/no, ja/nej, any case); None when it is none of them."""
    v = value.strip().lower()
    if v in {"true", "1", "yes", "ja", "t", "y"}:
        return True
    if v in {"false", "0", "no", "nej", "f", "n", ""}:
        return False
    return None


class UnreadableFile(ValueError):
    """A file that is not text in the expected encoding; the message says where."""


def read_text(path: Path) -> str:
    """A small register file (care units, CNI) as text: UTF-8, with or without a BOM. A file in
    another encoding is refused with its line and byte, never half-read."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UnreadableFile(
            f"{path.name}: line {line}: byte 0x{data[exc.start]:02x} is not UTF-8 text; "
            "save the file as UTF-8 (in Excel: 'CSV UTF-8')"
        ) from None


class RegisterImport(Base):
    """One run of a register import: what came in and what it did, for the operators' record."""

    __tablename__ = "register_imports"
    __table_args__ = (CheckConstraint("kind IN ('residents', 'care_units')", name="kind"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, comment="File name or 'api'")
    as_of: Mapped[date] = mapped_column(Date, comment="Date of the register extract")
    snapshot: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(Text, comment="API client name or 'cli'")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    moved_out: Mapped[int] = mapped_column(Integer, default=0)
