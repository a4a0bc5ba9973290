from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from halsosamtal.core.http import LocalTime, StrictModel


class CareUnitOut(BaseModel):
    hsa_id: str = Field(examples=["SE2321000131-E000000000123"])
    name: str
    municipality: str = Field(description="4-digit municipality code", examples=["1380"])
    operator: Literal["public", "private"]
    participating: bool
    weekly_capacity: int = Field(description="Health talks the unit can hold per week")
    visiting_address: str | None = Field(
        None,
        description="Where residents come for the talk",
        examples=["Andersbergsvägen 1, 302 45 Halmstad"],
    )
    phone: str | None = Field(None, description="The number residents call", examples=["035-123 45 00"])
    created_at: LocalTime
    updated_at: LocalTime


class CareUnitUpdate(StrictModel):
    """Change a unit's participation or capacity; fields left out stay as they are."""

    participating: bool | None = None
    weekly_capacity: int | None = Field(None, ge=0, le=10_000)
