from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

Sex = Literal["female", "male"]


class CohortCount(BaseModel):
    age: int = Field(description="The target age the residents turn during the year")
    care_unit: str | None = Field(description="HSA-id of the unit they are listed at; null: not listed")
    participating: bool | None = Field(description="Whether that unit takes part; null: not listed")
    sex: Sex
    residents: int


class CohortCounts(BaseModel):
    year: int
    as_of: dt.date = Field(description="Residents alive and living in the region on this day")
    total: int
    eligible: int = Field(description="Listed at a participating unit: these are invited")
    not_listed: int
    at_non_participating_unit: int
    counts: list[CohortCount]


class CohortMember(BaseModel):
    """A cohort member as listed: no address (look the resident up for that)."""

    personnummer: str = Field(description="YYYYMMDD-NNNC")
    birth_date: dt.date
    age: int
    sex: Sex
    care_unit: str | None
    municipality: str | None = Field(description="Null for a resident with protected identity")
    deso: str | None = Field(description="Null for a resident with protected identity")
    protected_identity: bool
