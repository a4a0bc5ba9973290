from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from halsosamtal.core.http import Decimalish, LocalTime, Money, ServiceDay, StrictModel


class ProgrammeRules(StrictModel):
    """The rules of one programme year. Omitted optional fields take the defaults shown."""

    target_ages: list[int] = Field(
        min_length=1,
        max_length=10,
        description="Ages residents turn during the year",
        examples=[[40, 50, 60]],
    )
    talk_rate: Decimal = Field(ge=0, le=100_000, decimal_places=2, description="SEK per completed talk")
    start_grant: Decimal = Field(
        Decimal(0),
        ge=0,
        le=100_000,
        decimal_places=2,
        description="SEK per listed resident in the target ages, once for the year (0: none)",
    )
    reminder_days: list[int] = Field(
        default_factory=lambda: [28, 56],
        max_length=5,
        description="Days after the invitation for each reminder, ascending",
    )
    valid_until: ServiceDay = Field(
        description="Last day an invitation of this year can be used: after 1 January of the year "
        "and no later than 31 December of the following year"
    )
    expected_uptake: Decimal = Field(
        Decimal("0.5"), gt=0, le=1, decimal_places=3, description="Share of invited expected to book"
    )
    booking_lead_days: int = Field(7, ge=0, le=90, description="Minimum days between booking and the talk")
    appointment_reminder_days: int = Field(
        2, ge=0, le=30, description="Days before the talk to send an appointment reminder"
    )

    @field_validator("target_ages")
    @classmethod
    def _ages(cls, ages: list[int]) -> list[int]:
        if any(a < 18 or a > 110 for a in ages):
            raise ValueError("each target age must be from 18 to 110")
        if len(set(ages)) != len(ages):
            raise ValueError("target ages must not repeat")
        return sorted(ages)

    @field_validator("talk_rate", "start_grant")
    @classmethod
    def _money(cls, amount: Decimal) -> Decimal:
        return amount.quantize(Decimal("0.01"))

    @field_validator("expected_uptake")
    @classmethod
    def _share(cls, share: Decimal) -> Decimal:
        return share.quantize(Decimal("0.001"))

    @field_validator("reminder_days")
    @classmethod
    def _reminders(cls, days: list[int]) -> list[int]:
        if any(d < 1 or d > 365 for d in days):
            raise ValueError("each reminder day must be from 1 to 365")
        if days != sorted(set(days)):
            raise ValueError("reminder days must be ascending without repeats")
        return days


class ProgrammeRulesOut(BaseModel):
    """A year's rules as answered: money as numbers in SEK, shares as numbers."""

    target_ages: list[int]
    talk_rate: Money
    start_grant: Money = Decimal(0)
    currency: Literal["SEK"] = "SEK"
    reminder_days: list[int]
    valid_until: dt.date
    expected_uptake: Decimalish = Decimal("0.5")
    booking_lead_days: int = 7
    appointment_reminder_days: int = 2


class ProgrammeYearOut(ProgrammeRulesOut):
    year: int
    created_at: LocalTime
    updated_at: LocalTime


class ProgrammeRevisionOut(BaseModel):
    year: int
    changed_at: LocalTime
    changed_by: str
    rules: ProgrammeRulesOut
