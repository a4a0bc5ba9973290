from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from halsosamtal.core.http import LocalTime, StrictModel
from halsosamtal.units.models import HSA_ID_PATTERN


class CareUnitOut(BaseModel):
    hsa_id: str = Field(examples=["SE2321000131-E000000000123"])
    name: str
    municipality: str = Field(description="4-digit municipality code", examples=["1380"])
    operator: Literal["public", "private"]
    participating: bool
    weekly_capacity: int = Field(description="Health talks the unit can hold per week")
    created_at: LocalTime
    updated_at: LocalTime


class CareUnitUpdate(StrictModel):
    """Change a unit's participation or capacity; fields left out stay as they are."""

    participating: bool | None = None
    weekly_capacity: int | None = Field(None, ge=0, le=10_000)


class CareUnitRow(BaseModel):
    """One valid row of the care unit register file."""

    hsa_id: str = Field(pattern=HSA_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    municipality: str = Field(pattern=r"^[0-9]{4}$")
    operator: Literal["public", "private"]
    participating: bool
    weekly_capacity: int = Field(ge=0, le=10_000)
