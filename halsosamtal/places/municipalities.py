"""Sweden's 290 municipalities and 21 counties by code, from SCB's code list (see
``data/README.md``): residents and care units carry a municipality's code; reports and letters
show its name."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).with_name("data") / "municipalities.csv"
SOURCE = "SCB, Län och kommuner i kodnummerordning, 2025"


@dataclass(frozen=True, slots=True)
class Municipality:
    code: str
    """4 digits; the first two are the county's code."""
    name: str
    county_code: str
    county_name: str


@cache
def municipalities() -> Mapping[str, Municipality]:
    """Every municipality by its code, in code order."""
    with DATA.open(encoding="utf-8", newline="") as file:
        return {row["code"]: Municipality(**row) for row in csv.DictReader(file)}


@cache
def counties() -> Mapping[str, str]:
    """Every county's name by its 2-digit code, in code order."""
    return {m.county_code: m.county_name for m in municipalities().values()}


def municipality_name(code: str | None) -> str | None:
    """The name of the municipality with this code ("1380" -> "Halmstad"); None for an unknown
    code."""
    if code is None:
        return None
    found = municipalities().get(code)
    return found.name if found else None
