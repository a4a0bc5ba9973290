from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from halsosamtal.core.http import MAX_ID, LocalTime, ServiceDay, ServiceTime, StrictModel, TimeCursorField
from halsosamtal.residents.lookup import ResidentNamed

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SlotState = Literal["free", "booked", "withdrawn"]
AppointmentStatus = Literal["booked", "cancelled", "attended", "no_show"]

MAX_SLOTS_PER_REQUEST = 5000
MAX_TEMPLATE_DAYS = 400
Resource = Field(
    "",
    max_length=100,
    description="The practitioner or room the time is for, in the unit's own words; "
    "leave empty when the unit books one calendar. Times of one resource may not overlap.",
)


class SlotIn(StrictModel):
    starts_at: ServiceTime = Field(examples=["2027-03-02T08:00:00+01:00"])
    ends_at: ServiceTime = Field(examples=["2027-03-02T08:45:00+01:00"])
    resource: str = Resource

    @model_validator(mode="after")
    def _ends_after_start(self) -> SlotIn:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.ends_at - self.starts_at > dt.timedelta(hours=8):
            raise ValueError("a slot is at most 8 hours long")
        return self


class SlotsPublish(StrictModel):
    """Explicit times. Publishing a time that is already published changes nothing."""

    slots: list[SlotIn] = Field(min_length=1, max_length=MAX_SLOTS_PER_REQUEST)


class WeeklyTemplate(StrictModel):
    """Times on the given weekdays between ``day_starts`` and ``day_ends`` (Swedish local time),
    each ``talk_minutes`` long with ``gap_minutes`` between, for every day from ``first_day`` to
    ``last_day`` (inclusive) except Swedish public holidays and the de facto holidays Midsummer
    Eve, Christmas Eve and New Year's Eve."""

    first_day: ServiceDay = Field(examples=["2027-03-01"])
    last_day: ServiceDay = Field(examples=["2027-05-31"])
    weekdays: list[Weekday] = Field(min_length=1, max_length=7, examples=[["tue", "thu"]])
    day_starts: dt.time = Field(examples=["08:00"])
    day_ends: dt.time = Field(examples=["12:00"])
    talk_minutes: int = Field(ge=10, le=240, examples=[45])
    gap_minutes: int = Field(0, ge=0, le=240, description="Minutes between two talks")
    resource: str = Resource

    @model_validator(mode="after")
    def _consistent(self) -> WeeklyTemplate:
        if self.last_day < self.first_day:
            raise ValueError("last_day is before first_day")
        if (self.last_day - self.first_day).days >= MAX_TEMPLATE_DAYS:
            raise ValueError(f"a template covers at most {MAX_TEMPLATE_DAYS} days; send several")
        if len(set(self.weekdays)) != len(self.weekdays):
            raise ValueError("weekdays lists a day twice")
        if self.day_starts.tzinfo is not None or self.day_ends.tzinfo is not None:
            raise ValueError("day_starts and day_ends are Swedish local times, without an offset")
        if self.day_ends <= self.day_starts:
            raise ValueError("day_ends must be after day_starts")
        return self


class SkippedDay(BaseModel):
    date: dt.date
    reason: str = Field(examples=["Nationaldagen"])


class PublishResult(BaseModel):
    created: int = Field(description="New times")
    already_published: int = Field(description="Times that were published already (left as they were)")
    reopened: int = Field(description="Withdrawn times published again")
    skipped_days: list[SkippedDay] = Field(
        default_factory=list, description="Template days without times: holidays"
    )
    first_starts_at: LocalTime | None = None
    last_starts_at: LocalTime | None = None


class SlotOut(BaseModel):
    id: int
    care_unit: str
    starts_at: LocalTime = Field(description="Swedish local time with its offset")
    ends_at: LocalTime
    resource: str
    status: SlotState
    appointment_id: int | None = Field(None, description="The appointment holding the time, if any")


class FreeSlot(BaseModel):
    """A time the resident can book."""

    id: int
    starts_at: LocalTime = Field(description="Swedish local time with its offset")
    ends_at: LocalTime
    resource: str = Field(description="Who or what the time is with, as the booking will show it")
    care_unit_name: str
    care_unit: str
    care_unit_visiting_address: str | None = Field(
        description="Where the resident comes; null when not known"
    )
    care_unit_phone: str | None = Field(description="The unit's phone for residents; null when not known")


class AppointmentEventOut(BaseModel):
    from_status: AppointmentStatus | None = Field(description="Null for the booking itself")
    to_status: AppointmentStatus
    slot_id: int
    previous_slot_id: int | None = Field(description="For a move: the time before")
    at: LocalTime
    reason: str
    actor: str = Field(description="API client name, 'cli' or 'worker'")


class AppointmentOut(BaseModel):
    id: int
    invitation_id: int
    status: AppointmentStatus
    slot_id: int
    starts_at: LocalTime = Field(description="Swedish local time with its offset")
    ends_at: LocalTime
    resource: str
    care_unit_name: str
    care_unit: str
    care_unit_visiting_address: str | None = Field(
        description="Where the resident comes; null when not known"
    )
    care_unit_phone: str | None = Field(description="The unit's phone for residents; null when not known")
    booked_at: LocalTime


class CentreAppointmentOut(AppointmentOut):
    personnummer: str = Field(
        description="Who is coming, as YYYYMMDD-NNNC: only the unit's own clients and operators see it"
    )


class AppointmentDetail(CentreAppointmentOut):
    events: list[AppointmentEventOut] = Field(description="Oldest first")


# --- Requests -----------------------------------------------------------------------------------


class SlotSearch(ResidentNamed):
    invitation_id: int = Field(ge=1, le=MAX_ID, description="`id` of the resident's invitation")
    first_day: ServiceDay | None = Field(None, description="From this day (default: the first bookable)")
    last_day: ServiceDay | None = Field(None, description="Up to and including this day")
    limit: int = Field(50, ge=1, le=200)
    cursor: TimeCursorField = None


class BookRequest(ResidentNamed):
    invitation_id: int = Field(ge=1, le=MAX_ID, description="`id` of the resident's invitation")
    slot_id: int = Field(ge=1, le=MAX_ID)


class MoveRequest(ResidentNamed):
    invitation_id: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="`id` of the resident's invitation, as in search and book; optional here, "
        "and when sent it must be the appointment's (422 `appointment-of-other-invitation`)",
    )
    slot_id: int = Field(ge=1, le=MAX_ID, description="The new time")


class PortalCancelRequest(ResidentNamed):
    invitation_id: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="`id` of the resident's invitation; optional, and when sent it must be the "
        "appointment's (422 `appointment-of-other-invitation`)",
    )


class CentreCancelRequest(StrictModel):
    reason: str = Field(min_length=1, max_length=500, examples=["the nurse is ill"])


class AttendanceRequest(StrictModel):
    outcome: Literal["attended", "no_show"]
