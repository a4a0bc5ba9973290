"""What the reports answer: participation, health outcomes and the reimbursement statement."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from halsosamtal.core.http import LocalTime, Money, StrictModel
from halsosamtal.core.imports import CsvFormat, Reject

ParticipationDimension = Literal["unit", "age", "sex", "municipality", "deso", "cni_quintile"]
OutcomeDimension = Literal["unit", "age", "sex"]
LineKind = Literal["talk", "reversal", "start_grant"]


class Figure(BaseModel):
    """One figure of an aggregated report. A suppressed figure has no value: ``shown`` says how
    it is shown ("<5": a count from 1 to 4, or computed from one; "..": suppressed so that a
    small count cannot be recovered by subtraction)."""

    value: int | float | None = Field(description="The count, share (0 to 1, 4 decimals) or mean")
    suppressed: bool = False
    shown: str = Field(description="The figure as the CSV shows it")


# --- Participation ------------------------------------------------------------------------------


class FunnelCounts(BaseModel):
    cohort: Figure = Field(description="Eligible: the year's invitations, whatever their status")
    invited: Figure = Field(description="The invitation message was released (`sent_at` set)")
    reminded: Figure = Field(description="At least one reminder message was released")
    booked: Figure = Field(description="Ever had an appointment (also one later cancelled)")
    attended: Figure = Field(description="An appointment marked attended")
    completed: Figure = Field(description="The result is in and not retracted")
    declined: Figure
    no_show: Figure = Field(description="An appointment marked no-show (may also be completed later)")
    withdrawn: Figure
    expired: Figure


class FunnelRates(BaseModel):
    """Shares of the cohort, and ``participation``: completed of invited."""

    invited: Figure
    reminded: Figure
    booked: Figure
    attended: Figure
    completed: Figure
    declined: Figure
    no_show: Figure
    withdrawn: Figure
    expired: Figure
    participation: Figure = Field(description="Completed talks of those invited")


class ParticipationGroup(BaseModel):
    key: str | None = Field(description="HSA-id, age, F/M, municipality, DeSO or quintile; null: unknown")
    label: str
    counts: FunnelCounts
    rates: FunnelRates


class ParticipationReport(BaseModel):
    year: int = Field(description="Programme year")
    care_units: list[str] | None = Field(description="Only these units (HSA-ids); null: all")
    small_cell_threshold: int
    total: ParticipationGroup
    groups: dict[str, list[ParticipationGroup]] = Field(
        description="Per breakdown asked for (unit, age, sex, municipality, deso, cni_quintile)"
    )


# --- Outcomes -----------------------------------------------------------------------------------


class CountShare(BaseModel):
    count: Figure
    share: Figure = Field(description="Of the completed talks")


class HabitOutcome(BaseModel):
    unhealthy: CountShare
    actions: dict[str, CountShare] = Field(
        description="none, simple_advice, advisory_talk, qualified_advisory_talk"
    )


class BmiOutcome(BaseModel):
    measured: Figure = Field(description="Talks with a BMI")
    mean: Figure = Field(description="Mean BMI, 1 decimal")


class OutcomeGroup(BaseModel):
    key: str | None
    label: str
    completed: Figure
    habits: dict[str, HabitOutcome] = Field(description="tobacco, alcohol, physical_activity, diet")
    any_unhealthy: CountShare = Field(description="At least one unhealthy habit")
    referrals: dict[str, CountShare] = Field(
        description="Per kind, and `any`: talks with at least one referral"
    )
    score2: dict[str, CountShare] = Field(
        description="low_to_moderate, high, very_high, and not_applicable (no SCORE2)"
    )
    bmi: BmiOutcome


class OutcomesReport(BaseModel):
    year: int
    care_units: list[str] | None
    small_cell_threshold: int
    total: OutcomeGroup
    groups: dict[str, list[OutcomeGroup]]


# --- Reimbursement ------------------------------------------------------------------------------


class StatementLine(BaseModel):
    id: str = Field(description="Stable: talk-<event id>, reversal-<event id>, grant-<year>-<HSA-id>")
    month: str = Field(description="YYYY-MM")
    care_unit: str = Field(description="HSA-id")
    care_unit_name: str
    kind: LineKind
    external_id: str | None = Field(description="The EHR's own id of the talk's record")
    event_at: LocalTime | None = Field(
        description="When the result was completed or retracted (Swedish time)"
    )
    reverses: str | None = Field(description="For a reversal: the line it reverses")
    programme_year: int
    quantity: int
    unit_amount: Money
    amount: Money
    currency: Literal["SEK"] = "SEK"


class StatementTotal(BaseModel):
    month: str | None = Field(description="YYYY-MM; null: all months")
    care_unit: str | None = Field(description="HSA-id; null: all units")
    care_unit_name: str | None
    lines: int
    amount: Money
    currency: Literal["SEK"] = "SEK"


class MonthState(BaseModel):
    month: str
    closed_at: LocalTime | None = Field(description="Null while the month is open")
    closed_by: str | None
    unchanged_since_closed: bool | None = Field(
        description="A closed month recomputed in full: whether it is what was closed (null: not "
        "checked, e.g. for one unit only)"
    )


class ReimbursementStatement(BaseModel):
    year: int = Field(description="Calendar year of the months")
    month: int | None
    care_units: list[str] | None
    months: list[MonthState]
    lines: list[StatementLine]
    totals: list[StatementTotal] = Field(
        description="Per unit and month, per month, per unit, and the whole period (null month and unit)"
    )


class CloseMonth(StrictModel):
    year: int = Field(ge=2000, le=2100)
    month: int = Field(ge=1, le=12)


class ClosedMonth(BaseModel):
    month: str
    closed_at: LocalTime
    closed_by: str
    lines: int
    total: Money
    currency: Literal["SEK"] = "SEK"
    digest: str


# --- CNI ----------------------------------------------------------------------------------------


class CniImportSummary(BaseModel):
    rows: int = Field(0, description="Data rows read (header not counted)")
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = Field(0, description="Areas no longer in the table (the file is the whole table)")
    rejected: int = 0
    rejects: list[Reject] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    format: CsvFormat = Field(default_factory=CsvFormat, description="How the file was read")
