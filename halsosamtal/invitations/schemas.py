from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field

from halsosamtal.core.http import Decimalish, LocalTime, ServiceDay, StrictModel


class BatchRequest(StrictModel):
    year: int = Field(ge=2000, le=2100, examples=[2027])
    as_of: ServiceDay | None = Field(
        None, description="Plan as on this day (default: today). Nothing is sent before it."
    )


class BatchOut(BaseModel):
    id: int
    year: int
    status: Literal["queued", "running", "done", "failed"] = Field(
        validation_alias=AliasChoices("status", "state")
    )
    requested_by: str
    total: int = Field(description="Invitations the run planned")
    done: int = Field(description="Of those, written so far")
    created: int = Field(description="Invitations this run created")
    errors: list[dict[str, Any]]
    requested_at: LocalTime
    started_at: LocalTime | None
    finished_at: LocalTime | None


class PlanLine(BaseModel):
    care_unit: str = Field(description="HSA-id")
    name: str
    month: int
    invitations: int = Field(description="New invitations this plan would send in the month")
    already_planned: int = Field(description="Invitations from earlier runs in the month")
    expected_bookings: Decimalish
    capacity: int = Field(description="The unit's weekly capacity summed over the month's weeks")
    over_capacity: bool


class PlanOut(BaseModel):
    year: int
    as_of: dt.date
    expected_uptake: Decimalish
    total: int
    lines: list[PlanLine]


class InvitationOut(BaseModel):
    id: int
    year: int
    age: int
    personnummer: str = Field(description="YYYYMMDD-NNNC")
    care_unit: str
    status: str
    planned_send_on: dt.date
    sent_at: LocalTime | None
    reminders_sent: int
    valid_until: dt.date
