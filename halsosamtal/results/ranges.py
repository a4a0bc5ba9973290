"""Plausibility ranges for the measurements an EHR posts, and BMI.

A value outside its range is rejected with the field named and the range given, rather than
stored: such values are almost always typing or unit errors (mmol/L against mg/dL, metres
against centimetres, a lost decimal point), and a SCORE2 or a finding computed from one would
look valid. The bounds are deliberately wide, beyond what is clinically usual, so that a true
extreme value is still accepted; they are not reference intervals and say nothing about health.

==================  ========  ======  ======  =================================================
field               unit      min     max     note
==================  ========  ======  ======  =================================================
systolic            mmHg      60      260     must also be above diastolic
diastolic           mmHg      30      160
height              cm        120     230     adults only: the programme invites 40-60 year olds
weight              kg        30      300
waist               cm        40      200
fasting_glucose     mmol/L    2.0     35.0    a value in mg/dL (about 70-126 when normal)
                                              falls above and is caught
hba1c               mmol/mol  15      200     IFCC units; 15-200 is about 3.5-20.5 % DCCT, so a
                                              DCCT percentage (about 4-15) falls below
total_cholesterol   mmol/L    1.0     20.0    only the very rare homozygous familial
                                              hypercholesterolaemia goes higher; a mg/dL value
                                              (about 150-300) falls above
hdl                 mmol/L    0.2     5.0
ldl                 mmol/L    0.2     15.0
triglycerides       mmol/L    0.1     30.0    rare chylomicronaemia can exceed 30 and would be
                                              rejected; accepted for a screened population
==================  ========  ======  ======  =================================================

These are engineering bounds, not taken from a published table: none was found that covers
these fields for this purpose. All bounds are inclusive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import NamedTuple

Number = Decimal | float | int


class PlausibleRange(NamedTuple):
    """One field's unit and inclusive plausible bounds."""

    unit: str
    minimum: Decimal
    maximum: Decimal


def _range(unit: str, minimum: str, maximum: str) -> PlausibleRange:
    return PlausibleRange(unit, Decimal(minimum), Decimal(maximum))


PLAUSIBLE_RANGES: Mapping[str, PlausibleRange] = MappingProxyType(
    {
        "systolic": _range("mmHg", "60", "260"),
        "diastolic": _range("mmHg", "30", "160"),
        "height": _range("cm", "120", "230"),
        "weight": _range("kg", "30", "300"),
        "waist": _range("cm", "40", "200"),
        "fasting_glucose": _range("mmol/L", "2.0", "35.0"),
        "hba1c": _range("mmol/mol", "15", "200"),
        "total_cholesterol": _range("mmol/L", "1.0", "20.0"),
        "hdl": _range("mmol/L", "0.2", "5.0"),
        "ldl": _range("mmol/L", "0.2", "15.0"),
        "triglycerides": _range("mmol/L", "0.1", "30.0"),
    }
)


@dataclass(frozen=True)
class RangeViolation:
    """A rejected value: the field it belongs to and a sentence saying what is wrong."""

    field: str
    message: str


def _is_finite(value: Number) -> bool:
    if isinstance(value, Decimal):
        return value.is_finite()
    return math.isfinite(value)


def check_range(field: str, value: Number) -> RangeViolation | None:
    """``None`` when ``value`` lies within ``field``'s plausible range, else the violation.

    Raises ``KeyError`` for a field with no range: a caller asking about an unknown field is a
    programming error, not bad input.
    """
    rng = PLAUSIBLE_RANGES[field]
    # NaN compares false with everything, so it must be caught before the range test.
    if not _is_finite(value):
        return RangeViolation(field, f"{field}: {value} is not a finite number")
    if not rng.minimum <= value <= rng.maximum:
        return RangeViolation(
            field,
            f"{field}: {value} {rng.unit} is outside the plausible range "
            f"{rng.minimum}-{rng.maximum} {rng.unit}",
        )
    return None


def check_blood_pressure(systolic: Number, diastolic: Number) -> RangeViolation | None:
    """``None`` when diastolic is below systolic, else the violation (reported on diastolic).

    Equal values are rejected too: a pulse pressure of zero is not a real reading, and the
    likeliest cause is the same number typed twice.
    """
    if diastolic >= systolic:
        return RangeViolation(
            "diastolic", f"diastolic: {diastolic} mmHg must be below systolic {systolic} mmHg"
        )
    return None


def validate(values: Mapping[str, Number | None]) -> list[RangeViolation]:
    """Every violation among ``values`` (field name to value; ``None`` means not measured).

    Checks each given value against its range, then diastolic against systolic when both are
    given and each is within its own range (otherwise the cross-field message would only repeat
    the first one). Returns all violations so the caller can report them at once.
    """
    violations: list[RangeViolation] = []
    for field, value in values.items():
        if value is not None and (violation := check_range(field, value)) is not None:
            violations.append(violation)
    systolic, diastolic = values.get("systolic"), values.get("diastolic")
    rejected = {v.field for v in violations}
    if (
        systolic is not None
        and diastolic is not None
        and not {"systolic", "diastolic"} & rejected
        and (violation := check_blood_pressure(systolic, diastolic)) is not None
    ):
        violations.append(violation)
    return violations


def _decimal(value: Number) -> Decimal:
    # A float goes through its shortest repr so 70.1 kg is 70.1, not its binary expansion.
    return value if isinstance(value, Decimal) else Decimal(str(value))


def bmi(height_cm: Number, weight_kg: Number) -> Decimal:
    """Body mass index, kg/m², rounded half-up to one decimal (e.g. 24.96 -> 25.0)."""
    height, weight = _decimal(height_cm), _decimal(weight_kg)
    if not (height.is_finite() and weight.is_finite()) or height <= 0 or weight <= 0:
        raise ValueError(f"height and weight must be positive numbers, not {height_cm} and {weight_kg}")
    metres = height / 100
    return (weight / (metres * metres)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
