"""The result document an EHR posts, and what the service answers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PlainSerializer, model_validator

from halsosamtal.core.http import MAX_ID, LocalTime, ServiceTime, StrictModel
from halsosamtal.residents.lookup import ResidentNamed
from halsosamtal.results.habits import ActionLevel, Finding, ReferralKind, TobaccoUse
from halsosamtal.results.score2 import Category, NotApplicableReason


def _measured(unit: str, places: int) -> object:
    return Field(
        allow_inf_nan=False,
        decimal_places=places,
        description=f"{unit}, at most {places} decimal(s); see the plausible ranges in the API description",
    )


# Exact decimals inside (as posted, and for the arithmetic), JSON numbers outside: what an
# integrator posts as 140.5 reads back as 140.5, not "140.5".
AsNumber = PlainSerializer(float, return_type=float, when_used="json")
Number = Annotated[Decimal, AsNumber]

MmHg = Annotated[Decimal, _measured("mmHg", 1), AsNumber]
Cm = Annotated[Decimal, _measured("cm", 1), AsNumber]
Kg = Annotated[Decimal, _measured("kg", 1), AsNumber]
MmolL = Annotated[Decimal, _measured("mmol/L", 2), AsNumber]
MmolMol = Annotated[Decimal, _measured("mmol/mol", 1), AsNumber]

HsaIdText = Annotated[
    str, Field(pattern=r"^SE[0-9]{10}-[A-Za-z0-9]{1,31}$", examples=["SE2321000131-P000000000042"])
]
HealthCurveArea = Literal[
    "activity",
    "diet",
    "alcohol",
    "tobacco",
    "life_situation",
    "mental_health",
    "heredity",
    "bmi",
    "waist",
    "blood_pressure",
    "cholesterol",
    "blood_sugar",
]


class Measurements(StrictModel):
    """What was measured before or at the talk. Fasting glucose or HbA1c (at least one)."""

    systolic: MmHg = Field(examples=[132])
    diastolic: MmHg = Field(examples=[84])
    height: Cm = Field(examples=[178.5])
    weight: Kg = Field(examples=[82.4])
    waist: Cm = Field(examples=[94])
    fasting_glucose: MmolL | None = Field(None, examples=[5.4])
    hba1c: MmolMol | None = Field(None, examples=[36])
    total_cholesterol: MmolL = Field(examples=[5.6])
    hdl: MmolL = Field(examples=[1.4])
    ldl: MmolL | None = Field(None, examples=[3.4])
    triglycerides: MmolL | None = Field(None, examples=[1.2])
    known_diabetes: bool
    known_cvd: bool = Field(description="Known (established) cardiovascular disease")

    @model_validator(mode="after")
    def _glucose_or_hba1c(self) -> Measurements:
        if self.fasting_glucose is None and self.hba1c is None:
            raise ValueError("give fasting_glucose (mmol/L) or hba1c (mmol/mol), or both")
        return self


class Tobacco(StrictModel):
    smoking: TobaccoUse
    snus: TobaccoUse
    action: ActionLevel


class Alcohol(StrictModel):
    audit_c: int = Field(ge=0, le=12, description="AUDIT-C points, 0-12")
    action: ActionLevel


class PhysicalActivity(StrictModel):
    exercise_minutes: int = Field(ge=0, le=10_080, description="Minutes of exercise (high intensity) a week")
    everyday_minutes: int = Field(ge=0, le=10_080, description="Minutes of everyday activity a week")
    action: ActionLevel


class Diet(StrictModel):
    index: int = Field(ge=0, le=12, description="The diet index (kostindex) points, 0-12")
    action: ActionLevel


class Habits(StrictModel):
    """Living habits as Socialstyrelsen's indicator questions ask them, and the action taken."""

    tobacco: Tobacco
    alcohol: Alcohol
    physical_activity: PhysicalActivity
    diet: Diet


class ResultIn(StrictModel):
    """A health talk's result. Name the invitation, or the appointment it was held at."""

    invitation_id: int | None = Field(None, ge=1, le=MAX_ID)
    appointment_id: int | None = Field(None, ge=1, le=MAX_ID)
    external_id: str = Field(min_length=1, max_length=200, description="The EHR's own id of the record")
    held_at: ServiceTime = Field(
        description="When the talk took place", examples=["2027-03-02T08:00:00+01:00"]
    )
    practitioner_hsa_id: HsaIdText
    measurements: Measurements
    habits: Habits
    referrals: list[ReferralKind] = Field(default_factory=list, max_length=5)
    health_curve: (
        dict[
            HealthCurveArea,
            Annotated[Decimal, Field(ge=0, le=100, decimal_places=2, allow_inf_nan=False), AsNumber],
        ]
        | None
    ) = Field(None, description="Health-curve areas with the score the centre's method records (0-100)")

    @model_validator(mode="after")
    def _one_reference(self) -> ResultIn:
        if (self.invitation_id is None) == (self.appointment_id is None):
            raise ValueError("give invitation_id or appointment_id, not both and not neither")
        if len(set(self.referrals)) != len(self.referrals):
            raise ValueError("referrals lists one twice")
        return self


class RetractRequest(StrictModel):
    reason: str = Field(min_length=1, max_length=500, examples=["entered for the wrong patient"])


class Score2Out(BaseModel):
    applies: bool
    risk_percent: Number | None = Field(None, description="10-year risk of fatal and non-fatal CVD, percent")
    category: Category | None = Field(None, description="ESC 2021 category for the age band")
    not_applicable: NotApplicableReason | None = None
    explanation: str | None = Field(None, description="Why there is no number, when there is none")
    age_used: int


class HabitFinding(BaseModel):
    finding: Finding
    action: ActionLevel


class Derived(BaseModel):
    """Computed by the service under the named rule versions, stored with the version."""

    bmi: Number
    score2: Score2Out
    tobacco: HabitFinding
    alcohol: HabitFinding
    physical_activity: HabitFinding
    activity_minutes: int = Field(description="Exercise minutes twice, plus everyday minutes")
    diet: HabitFinding
    score2_version: str
    habits_version: str


class ResultOut(BaseModel):
    id: int
    invitation_id: int
    appointment_id: int | None
    care_unit: str
    external_id: str
    status: Literal["completed", "retracted"]
    version: int
    held_at: LocalTime
    practitioner_hsa_id: str
    measurements: Measurements
    habits: Habits
    referrals: list[ReferralKind]
    health_curve: dict[str, Number] | None
    derived: Derived
    recorded_at: LocalTime
    recorded_by: str


class PostedResult(ResultOut):
    change: Literal["created", "unchanged", "amended", "completed_again"] = Field(
        description="created: the first post; unchanged: the same content again (nothing stored); "
        "amended: new content for the same external_id (a new version, the earlier kept); "
        "completed_again: posted after a retraction"
    )


class ResultVersionOut(BaseModel):
    version: int
    recorded_at: LocalTime
    recorded_by: str
    held_at: LocalTime
    practitioner_hsa_id: str
    measurements: Measurements = Field(description="As posted")
    habits: Habits
    referrals: list[ReferralKind]
    health_curve: dict[str, Number] | None
    derived: Derived


class ResultEventOut(BaseModel):
    kind: Literal["completed", "amended", "retracted"]
    version: int
    at: LocalTime
    actor: str
    reason: str | None


class ResultHistory(BaseModel):
    result_id: int
    status: Literal["completed", "retracted"]
    versions: list[ResultVersionOut] = Field(description="Oldest first")
    events: list[ResultEventOut] = Field(description="Oldest first")


class PortalResultRequest(ResidentNamed):
    invitation_id: int | None = Field(None, ge=1, le=MAX_ID, description="Default: the latest completed talk")
    language: Literal["sv", "en"] = "sv"


class ResidentSummary(BaseModel):
    """The talk's result as the resident reads it, in plain words."""

    held_on: dt.date
    care_unit_name: str
    risk: str = Field(description="The 10-year risk in words, or why it was not estimated")
    risk_percent: Number | None
    bmi: Number
    findings: list[str] = Field(description="One sentence per living habit")
    advice: list[str] = Field(description="What was offered, per habit where something was")
    referrals: list[str]
