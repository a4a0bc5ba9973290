"""SCORE2 (moderate-risk region) against the paper, an independent re-derivation and hand sums;
plus the plausibility ranges that guard its inputs."""

from __future__ import annotations

import dataclasses
import math
from decimal import ROUND_HALF_UP, Decimal
from typing import get_args

import pytest

from halsosamtal.results import ranges
from halsosamtal.results.score2 import (
    RECALIBRATION_SCALES,
    SCORE2_VERSION,
    Score2Result,
    Sex,
    risk_category,
    score2,
    ten_year_risk,
)

# --- An independent reference ----------------------------------------------------------------
# Coefficients typed in again from the paper's supplementary methods (not imported), so a typo
# in the module's table cannot hide by being shared with the test.
_PAPER: dict[str, dict[str, float]] = {
    "male": {
        "cage": 0.3742,
        "smoking": 0.6012,
        "csbp": 0.2777,
        "ctchol": 0.1458,
        "chdl": -0.2698,
        "cage*smoking": -0.0755,
        "cage*csbp": -0.0255,
        "cage*ctchol": -0.0281,
        "cage*chdl": 0.0426,
        "S0": 0.9605,
        "scale1": -0.1565,
        "scale2": 0.8009,
    },
    "female": {
        "cage": 0.4648,
        "smoking": 0.7744,
        "csbp": 0.3131,
        "ctchol": 0.1002,
        "chdl": -0.2606,
        "cage*smoking": -0.1088,
        "cage*csbp": -0.0277,
        "cage*ctchol": -0.0226,
        "cage*chdl": 0.0613,
        "S0": 0.9776,
        "scale1": -0.3143,
        "scale2": 0.7701,
    },
}


def reference_percent(sex: str, age: int, smoker: bool, sbp: float, tchol: float, hdl: float) -> float:
    """The moderate-region risk in percent, arranged differently from the module.

    Since 1 - uncalibrated = S0 ** exp(x), ln(-ln(1 - uncalibrated)) = x + ln(-ln S0): the
    uncalibrated risk never needs forming. Sums use fsum and the final step expm1.
    """
    p = _PAPER[sex]
    t = {
        "cage": (age - 60) / 5,
        "smoking": float(smoker),
        "csbp": (sbp - 120) / 20,
        "ctchol": tchol - 6,
        "chdl": (hdl - 1.3) / 0.5,
    }
    for term in ("smoking", "csbp", "ctchol", "chdl"):
        t[f"cage*{term}"] = t["cage"] * t[term]
    x = math.fsum(p[name] * value for name, value in t.items())
    calibrated_log_hazard = p["scale1"] + p["scale2"] * (x + math.log(-math.log(p["S0"])))
    return -math.expm1(-math.exp(calibrated_log_hazard)) * 100


def _half_up(percent: float) -> Decimal:
    return Decimal(percent).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _scored(result: Score2Result) -> tuple[float, Decimal]:
    assert result.risk is not None, result
    assert result.risk_percent is not None, result
    return result.risk, result.risk_percent


def _frange(start: float, stop: float, step: float) -> list[float]:
    n = round((stop - start) / step)
    return [round(start + i * step, 10) for i in range(n + 1)]


# --- The worked example ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sex", "expected_percent", "expected_rounded"),
    [("male", 8.1066, Decimal("8.11")), ("female", 5.2273, Decimal("5.23"))],
)
def test_worked_example_50_year_old_smoker(
    sex: Sex, expected_percent: float, expected_rounded: Decimal
) -> None:
    result = score2(sex, 50, 140, 6.3, 1.4, True, diabetes=False, cardiovascular_disease=False)
    risk, risk_percent = _scored(result)
    assert risk * 100 == pytest.approx(expected_percent, abs=0.0001)
    assert abs(risk_percent - Decimal(str(expected_percent))) <= Decimal("0.01")
    assert risk_percent == expected_rounded
    # 50-69 band: 5 to < 10 % is "high" for both.
    assert result.category == "high"
    assert result.version == SCORE2_VERSION == "score2-2021-moderate/1"
    assert result.applicable
    assert result.not_applicable is None
    assert result.explanation is None


# --- Hand-calculated spot values -------------------------------------------------------------


def test_hand_calculated_man_at_the_centring_values() -> None:
    # Age 60, SBP 120, TC 6, HDL 1.3, non-smoker: every centred term is 0, so x = 0.
    #   uncalibrated = 1 - 0.9605 ** exp(0) = 1 - 0.9605 = 0.0395
    #   ln(-ln(1 - 0.0395)) = ln(-ln 0.9605) = ln(0.0403012) = -3.2113716
    #   -0.1565 + 0.8009 * -3.2113716 = -0.1565 - 2.5719875 = -2.7284875
    #   risk = 1 - exp(-exp(-2.7284875)) = 1 - exp(-0.0653180) = 0.0632305 -> 6.32 %
    result = score2("male", 60, 120, 6, 1.3, False, diabetes=False, cardiovascular_disease=False)
    risk, risk_percent = _scored(result)
    assert risk == pytest.approx(0.0632305, abs=1e-7)
    assert risk_percent == Decimal("6.32")
    assert result.category == "high"  # 5 to < 10 % at 50-69


def test_hand_calculated_woman_at_the_centring_values() -> None:
    # Same person, female: x = 0.
    #   uncalibrated = 1 - 0.9776 = 0.0224
    #   ln(-ln 0.9776) = ln(0.0226547) = -3.7873884
    #   -0.3143 + 0.7701 * -3.7873884 = -0.3143 - 2.9166678 = -3.2309678
    #   risk = 1 - exp(-exp(-3.2309678)) = 1 - exp(-0.0395192) = 0.0387485 -> 3.87 %
    result = score2("female", 60, 120, 6, 1.3, False, diabetes=False, cardiovascular_disease=False)
    risk, risk_percent = _scored(result)
    assert risk == pytest.approx(0.0387485, abs=1e-7)
    assert risk_percent == Decimal("3.87")
    assert result.category == "low_to_moderate"  # < 5 % at 50-69


def test_hand_calculated_worked_example() -> None:
    # Man, 50, smoker, SBP 140, TC 6.3, HDL 1.4: cage = -2, csbp = 1, ctchol = 0.3, chdl = 0.2.
    #   x = 0.3742*-2 + 0.6012 + 0.2777*1 + 0.1458*0.3 - 0.2698*0.2
    #       - 0.0755*-2*1 - 0.0255*-2*1 - 0.0281*-2*0.3 + 0.0426*-2*0.2
    #     = -0.7484 + 0.6012 + 0.2777 + 0.04374 - 0.05396 + 0.151 + 0.051 + 0.01686 - 0.01704
    #     = 0.3221;  exp(x) = 1.3800228
    #   uncalibrated = 1 - 0.9605 ** 1.3800228 = 0.0540984
    #   ln(-ln(1 - 0.0540984)) = 0.3221 + ln(0.0403012) = 0.3221 - 3.2113716 = -2.8892716
    #   -0.1565 + 0.8009 * -2.8892716 = -2.4705177;  exp = 0.0845411
    #   risk = 1 - exp(-0.0845411) = 0.0810661 -> 8.11 %
    result = score2("male", 50, 140, 6.3, 1.4, True, diabetes=False, cardiovascular_disease=False)
    risk, _ = _scored(result)
    assert risk == pytest.approx(0.0810661, abs=1e-7)


# --- The independent reference over the whole input grid -------------------------------------


def test_agrees_with_independent_reference_over_the_input_grid() -> None:
    sexes: tuple[Sex, ...] = get_args(Sex)
    sbps = _frange(100, 200, 10)
    tchols = _frange(3, 9, 0.5)
    hdls = _frange(0.6, 2.6, 0.4)
    assert (len(sbps), len(tchols), len(hdls)) == (11, 13, 6)  # the grid really spans the range
    checked = 0
    worst = 0.0
    disagreements = []
    for sex in sexes:
        for age in range(40, 70):
            for smoker in (False, True):
                for sbp in sbps:
                    for tchol in tchols:
                        for hdl in hdls:
                            result = score2(
                                sex,
                                age,
                                sbp,
                                tchol,
                                hdl,
                                smoker,
                                diabetes=False,
                                cardiovascular_disease=False,
                            )
                            risk, risk_percent = _scored(result)
                            ref = reference_percent(sex, age, smoker, sbp, tchol, hdl)
                            worst = max(worst, abs(risk * 100 - ref))
                            if abs(risk_percent - _half_up(ref)) > Decimal("0.01"):
                                disagreements.append((sex, age, smoker, sbp, tchol, hdl, risk_percent, ref))
                            checked += 1
    assert checked == 2 * 30 * 2 * 11 * 13 * 6
    assert disagreements == []
    # The two arrangements differ only by floating-point noise, far below the 0.01 needed.
    assert worst < 1e-9


def test_regions_are_ordered_from_low_to_very_high() -> None:
    # The same person's risk rises with the region's baseline risk, for every region in the table.
    for sex in ("male", "female"):
        risks = [
            ten_year_risk(sex, 55, 140, 5.5, 1.2, True, region=region)
            for region in ("low", "moderate", "high", "very_high")
        ]
        assert risks == sorted(risks), (sex, risks)


def test_recalibration_table_matches_the_paper() -> None:
    assert RECALIBRATION_SCALES == {
        "low": {"male": (-0.5699, 0.7476), "female": (-0.7380, 0.7019)},
        "moderate": {"male": (-0.1565, 0.8009), "female": (-0.3143, 0.7701)},
        "high": {"male": (0.3207, 0.9360), "female": (0.5710, 0.9369)},
        "very_high": {"male": (0.5836, 0.8294), "female": (0.9412, 0.8329)},
    }


def test_decimal_inputs_give_the_same_result_as_floats() -> None:
    as_float = score2("female", 45, 135.0, 5.2, 1.6, False, diabetes=False, cardiovascular_disease=False)
    as_decimal = score2(
        "female",
        45,
        Decimal("135"),
        Decimal("5.2"),
        Decimal("1.6"),
        False,
        diabetes=False,
        cardiovascular_disease=False,
    )
    assert as_decimal == as_float


def test_values_outside_the_derivation_range_are_computed_not_clamped() -> None:
    # Plausibility is checked elsewhere; SCORE2 itself must not quietly move a value.
    extreme = score2("male", 65, 230, 12, 0.4, True, diabetes=False, cardiovascular_disease=False)
    at_edge = score2("male", 65, 200, 9, 0.6, True, diabetes=False, cardiovascular_disease=False)
    assert _scored(extreme)[0] > _scored(at_edge)[0]
    assert _scored(extreme)[0] * 100 == pytest.approx(reference_percent("male", 65, True, 230, 12, 0.4))


def test_unknown_sex_is_an_error() -> None:
    with pytest.raises(ValueError, match="sex"):
        score2("other", 50, 140, 5, 1.3, False, diabetes=False, cardiovascular_disease=False)  # type: ignore[arg-type]


# --- Categories ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "percent", "expected"),
    [
        (45, 0.0, "low_to_moderate"),
        (45, 2.4999, "low_to_moderate"),
        (45, 2.5, "high"),
        (45, 7.4999, "high"),
        (45, 7.5, "very_high"),
        (55, 4.9999, "low_to_moderate"),
        (55, 5.0, "high"),
        (55, 9.9999, "high"),
        (55, 10.0, "very_high"),
        (40, 2.5, "high"),
        (69, 10.0, "very_high"),
        # The band changes between 49 and 50.
        (49, 3.0, "high"),
        (50, 3.0, "low_to_moderate"),
        (49, 8.0, "very_high"),
        (50, 8.0, "high"),
        (49, 7.5, "very_high"),
        (50, 7.5, "high"),
    ],
)
def test_category_thresholds(age: int, percent: float, expected: str) -> None:
    assert risk_category(age, percent) == expected


@pytest.mark.parametrize("age", [39, 70])
def test_category_outside_the_age_range_is_an_error(age: int) -> None:
    with pytest.raises(ValueError, match="40-69"):
        risk_category(age, 5.0)


def test_category_comes_from_the_unrounded_risk() -> None:
    # Find, by bisection on SBP, a 55-year-old woman whose risk is just under 5 %: rounded it
    # reads 5.00, but the category must still be "low_to_moderate".
    def percent(sbp: float) -> float:
        return ten_year_risk("female", 55, sbp, 6.0, 1.3, True) * 100

    low, high = 100.0, 250.0
    assert percent(low) < 5 < percent(high)
    while True:
        mid = (low + high) / 2
        value = percent(mid)
        if 4.996 <= value < 5:
            break
        low, high = (mid, high) if value < 5 else (low, mid)
    result = score2("female", 55, mid, 6.0, 1.3, True, diabetes=False, cardiovascular_disease=False)
    _, risk_percent = _scored(result)
    assert risk_percent == Decimal("5.00")
    assert result.category == "low_to_moderate"


# --- Not applicable --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "mentions"), [(39, "at 39"), (30, "at 30"), (70, "SCORE2-OP"), (85, "SCORE2-OP")]
)
def test_age_out_of_range(age: int, mentions: str) -> None:
    result = score2("male", age, 140, 5, 1.3, False, diabetes=False, cardiovascular_disease=False)
    assert result.not_applicable == "age_out_of_range"
    assert result.explanation is not None
    assert mentions in result.explanation
    assert result.risk is None
    assert result.risk_percent is None
    assert result.category is None
    assert not result.applicable
    assert result.version == SCORE2_VERSION


@pytest.mark.parametrize("age", [40, 69])
def test_ages_40_and_69_are_in_range(age: int) -> None:
    result = score2("female", age, 140, 5, 1.3, False, diabetes=False, cardiovascular_disease=False)
    assert result.applicable
    assert result.category is not None


def test_diabetes() -> None:
    result = score2("female", 55, 140, 5, 1.3, False, diabetes=True, cardiovascular_disease=False)
    assert result.not_applicable == "diabetes"
    assert result.explanation is not None
    assert "SCORE2-Diabetes" in result.explanation
    assert result.risk is None


def test_cardiovascular_disease() -> None:
    result = score2("male", 55, 140, 5, 1.3, True, diabetes=False, cardiovascular_disease=True)
    assert result.not_applicable == "cardiovascular_disease"
    assert result.explanation is not None
    assert "very high risk" in result.explanation
    assert result.risk is None


@pytest.mark.parametrize(
    ("values", "missing", "labels"),
    [
        ((None, 5.0, 1.3, False), ("systolic",), "systolic blood pressure"),
        ((140.0, None, 1.3, False), ("total_cholesterol",), "total cholesterol"),
        ((140.0, 5.0, None, False), ("hdl",), "HDL cholesterol"),
        ((140.0, 5.0, 1.3, None), ("smoker",), "smoking status"),
        (
            (None, None, None, None),
            ("systolic", "total_cholesterol", "hdl", "smoker"),
            "systolic blood pressure, total cholesterol, HDL cholesterol, smoking status",
        ),
    ],
)
def test_missing_values_are_named(
    values: tuple[float | None, float | None, float | None, bool | None],
    missing: tuple[str, ...],
    labels: str,
) -> None:
    systolic, tchol, hdl, smoker = values
    result = score2("male", 50, systolic, tchol, hdl, smoker, diabetes=False, cardiovascular_disease=False)
    assert result.not_applicable == "missing_values"
    assert result.missing == missing
    assert result.explanation is not None
    assert result.explanation.endswith(f"Missing: {labels}.")


def test_a_non_smoker_is_not_missing() -> None:
    # False is an answer, not a missing value.
    result = score2("male", 50, 140, 5, 1.3, False, diabetes=False, cardiovascular_disease=False)
    assert result.applicable


@pytest.mark.parametrize(
    ("age", "systolic", "diabetes", "cvd", "expected"),
    [
        (75, None, True, True, "cardiovascular_disease"),
        (75, None, True, False, "diabetes"),
        (75, None, False, False, "age_out_of_range"),
        (30, None, False, False, "age_out_of_range"),
        (50, None, False, False, "missing_values"),
    ],
)
def test_reason_precedence(
    age: int, systolic: float | None, diabetes: bool, cvd: bool, expected: str
) -> None:
    result = score2("female", age, systolic, 5, 1.3, False, diabetes=diabetes, cardiovascular_disease=cvd)
    assert result.not_applicable == expected


# --- The result type -------------------------------------------------------------------------


def test_result_is_frozen() -> None:
    result = score2("male", 50, 140, 5, 1.3, False, diabetes=False, cardiovascular_disease=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.risk = 0.5  # type: ignore[misc]


def test_result_cannot_be_half_scored() -> None:
    with pytest.raises(ValueError, match="scored"):
        Score2Result(version=SCORE2_VERSION, risk=0.05)
    with pytest.raises(ValueError, match="not-applicable"):
        Score2Result(version=SCORE2_VERSION, risk=0.05, not_applicable="diabetes", explanation="x")
    with pytest.raises(ValueError, match="not-applicable"):
        Score2Result(version=SCORE2_VERSION, not_applicable="diabetes")


# --- Plausibility ranges (halsosamtal.results.ranges), which guard SCORE2's inputs -----------


@pytest.mark.parametrize("field", sorted(ranges.PLAUSIBLE_RANGES))
def test_range_bounds_are_inclusive(field: str) -> None:
    rng = ranges.PLAUSIBLE_RANGES[field]
    assert ranges.check_range(field, rng.minimum) is None
    assert ranges.check_range(field, rng.maximum) is None
    below = ranges.check_range(field, rng.minimum - Decimal("0.01"))
    above = ranges.check_range(field, float(rng.maximum) + 0.01)
    for violation in (below, above):
        assert violation is not None
        assert violation.field == field
        assert violation.message.startswith(f"{field}: ")
        assert f"{rng.minimum}-{rng.maximum} {rng.unit}" in violation.message


def test_the_brief_s_ranges() -> None:
    expected = {
        "systolic": ("mmHg", "60", "260"),
        "diastolic": ("mmHg", "30", "160"),
        "height": ("cm", "120", "230"),
        "weight": ("kg", "30", "300"),
        "waist": ("cm", "40", "200"),
        "fasting_glucose": ("mmol/L", "2.0", "35.0"),
        "hba1c": ("mmol/mol", "15", "200"),
        "total_cholesterol": ("mmol/L", "1.0", "20.0"),
        "hdl": ("mmol/L", "0.2", "5.0"),
        "ldl": ("mmol/L", "0.2", "15.0"),
        "triglycerides": ("mmol/L", "0.1", "30.0"),
    }
    assert {
        field: (r.unit, str(r.minimum), str(r.maximum)) for field, r in ranges.PLAUSIBLE_RANGES.items()
    } == expected


def test_range_message_names_value_and_range() -> None:
    violation = ranges.check_range("systolic", 300)
    assert violation == ranges.RangeViolation(
        "systolic", "systolic: 300 mmHg is outside the plausible range 60-260 mmHg"
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), Decimal("NaN")])
def test_non_finite_values_are_rejected(value: float | Decimal) -> None:
    violation = ranges.check_range("hdl", value)
    assert violation is not None
    assert "not a finite number" in violation.message


def test_unknown_field_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        ranges.check_range("shoe_size", 42)


@pytest.mark.parametrize(
    ("systolic", "diastolic", "ok"), [(120, 80, True), (120, 119, True), (120, 120, False), (90, 110, False)]
)
def test_diastolic_must_be_below_systolic(systolic: int, diastolic: int, ok: bool) -> None:
    violation = ranges.check_blood_pressure(systolic, diastolic)
    assert (violation is None) is ok
    if violation is not None:
        assert violation.field == "diastolic"
        assert f"below systolic {systolic} mmHg" in violation.message


def test_validate_collects_every_violation_and_skips_missing_values() -> None:
    violations = ranges.validate(
        {"systolic": 120, "diastolic": 130, "hdl": 9.0, "ldl": None, "weight": Decimal("80.5")}
    )
    assert [v.field for v in violations] == ["hdl", "diastolic"]


def test_validate_skips_the_cross_check_when_a_pressure_is_out_of_range() -> None:
    violations = ranges.validate({"systolic": 40, "diastolic": 50})
    assert [v.field for v in violations] == ["systolic"]


@pytest.mark.parametrize(
    ("height", "weight", "expected"),
    [
        (180, 81, Decimal("25.0")),  # 81 / 1.8**2 = 25 exactly
        (200, 89.8, Decimal("22.5")),  # 22.45 exactly: half-up gives 22.5 (half-even would give 22.4)
        (Decimal("200"), Decimal("90.1"), Decimal("22.5")),  # 22.525
        (175, 70, Decimal("22.9")),  # 22.857...
        (165.5, 102.3, Decimal("37.3")),  # 37.349...
    ],
)
def test_bmi(height: float | Decimal, weight: float | Decimal, expected: Decimal) -> None:
    assert ranges.bmi(height, weight) == expected


@pytest.mark.parametrize(("height", "weight"), [(0, 70), (180, 0), (-170, 70), (float("nan"), 70)])
def test_bmi_needs_positive_numbers(height: float, weight: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        ranges.bmi(height, weight)
