"""Helpers shared by the residents tests: personnummer and register files."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping

from stdnum import luhn

from halsosamtal.residents.importer import COLUMNS


def make_personnummer(
    birth: str,
    serial: int,
    *,
    coordination: bool = False,
    sep: str = "",
    short: bool = False,
    check: int | None = None,
) -> str:
    """A number for ``birth`` (YYYYMMDD, not checked: any digits go), with the right check
    digit unless ``check`` is given."""
    core = f"{birth[2:6]}{int(birth[6:8]) + (60 if coordination else 0):02d}{serial:03d}"
    digit = int(luhn.calc_check_digit(core)) if check is None else check
    head = core[:6] if short else birth[:2] + core[:6]
    return f"{head}{sep}{core[6:]}{digit}"


def register_csv(rows: Iterable[Mapping[str, str]], columns: Iterable[str] = COLUMNS) -> str:
    """A register file: the header, then one line per row (missing fields empty)."""
    names = list(columns)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow([row.get(n, "") for n in names])
    return out.getvalue()
