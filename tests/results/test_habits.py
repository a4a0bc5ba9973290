"""Living-habit findings at their thresholds. Only the AUDIT-C limits differ by sex, so only they
are tested per sex; the other rules take no sex, so one set of boundary cases covers both."""

from __future__ import annotations

import pytest

from halsosamtal.results import habits
from halsosamtal.results.habits import (
    ACTION_LEVELS,
    HABITS_VERSION,
    REFERRAL_KINDS,
    TOBACCO_USES,
    TobaccoUse,
    activity_minutes,
    alcohol_finding,
    alcohol_finding_from_consumption,
    diet_finding,
    diet_index,
    physical_activity_finding,
    tobacco_finding,
)


def test_version_and_vocabularies() -> None:
    assert HABITS_VERSION == "socialstyrelsen-2024/1"
    assert ACTION_LEVELS == ("none", "simple_advice", "advisory_talk", "qualified_advisory_talk")
    assert REFERRAL_KINDS == (
        "health_coordinator",
        "tobacco_cessation",
        "physical_activity_on_prescription",
        "physician",
        "other",
    )
    assert habits.FINDINGS == ("healthy", "unhealthy")
    assert habits.HABITS == ("tobacco", "alcohol", "physical_activity", "diet")


# --- Tobacco ---------------------------------------------------------------------------------


@pytest.mark.parametrize("smoking", TOBACCO_USES)
@pytest.mark.parametrize("snus", TOBACCO_USES)
def test_tobacco_is_unhealthy_only_with_daily_use(smoking: TobaccoUse, snus: TobaccoUse) -> None:
    expected = "unhealthy" if "daily" in (smoking, snus) else "healthy"
    assert tobacco_finding(smoking, snus) == expected


def test_daily_snus_alone_is_unhealthy() -> None:
    assert tobacco_finding("never", "daily") == "unhealthy"
    assert tobacco_finding("never", "non_daily") == "healthy"


def test_unknown_tobacco_answer_is_an_error() -> None:
    with pytest.raises(ValueError, match="snus"):
        tobacco_finding("never", "sometimes")  # type: ignore[arg-type]


# --- Alcohol ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sex", "points", "expected"),
    [
        ("male", 0, "healthy"),
        ("male", 5, "healthy"),
        ("male", 6, "unhealthy"),
        ("male", 12, "unhealthy"),
        ("female", 0, "healthy"),
        ("female", 4, "healthy"),
        ("female", 5, "unhealthy"),
        ("female", 12, "unhealthy"),
    ],
)
def test_audit_c_thresholds(sex: habits.Sex, points: int, expected: str) -> None:
    assert alcohol_finding(sex, points) == expected


@pytest.mark.parametrize("points", [-1, 13])
@pytest.mark.parametrize("sex", ["male", "female"])
def test_audit_c_out_of_range_is_an_error(sex: habits.Sex, points: int) -> None:
    with pytest.raises(ValueError, match="AUDIT-C"):
        alcohol_finding(sex, points)


def test_audit_c_unknown_sex_is_an_error() -> None:
    with pytest.raises(ValueError, match="sex"):
        alcohol_finding("unknown", 3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("drinks", "heavy_monthly", "expected"),
    [
        (0, False, "healthy"),
        (9, False, "healthy"),
        (9.9, False, "healthy"),
        (10, False, "unhealthy"),
        (0, True, "unhealthy"),
        (15, True, "unhealthy"),
    ],
)
def test_consumption_limits_are_the_same_for_both_sexes(
    drinks: float, heavy_monthly: bool, expected: str
) -> None:
    # Socialstyrelsen's 2023 limits take no sex: a man's and a woman's answers are judged alike.
    assert alcohol_finding_from_consumption(drinks, heavy_monthly) == expected


def test_negative_drinks_is_an_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        alcohol_finding_from_consumption(-1, False)


# --- Physical activity -----------------------------------------------------------------------


def test_activity_minutes_count_exercise_double() -> None:
    # Folkhälsomyndigheten's example: 45 min running + 45 min walking = 135 activity minutes.
    assert activity_minutes(45, 45) == 135


@pytest.mark.parametrize(
    ("exercise", "everyday", "expected"),
    [
        (0, 0, "unhealthy"),
        (0, 149, "unhealthy"),
        (0, 150, "healthy"),
        (74, 1, "unhealthy"),  # 149
        (74, 2, "healthy"),  # 150
        (75, 0, "healthy"),  # 150: 75 minutes of high intensity is enough on its own
        (50, 50, "healthy"),  # 150
        (50, 49, "unhealthy"),  # 149
    ],
)
def test_physical_activity_threshold(exercise: int, everyday: int, expected: str) -> None:
    assert physical_activity_finding(exercise, everyday) == expected


@pytest.mark.parametrize(("exercise", "everyday"), [(-1, 200), (200, -1)])
def test_negative_minutes_is_an_error(exercise: int, everyday: int) -> None:
    with pytest.raises(ValueError, match="negative"):
        physical_activity_finding(exercise, everyday)


# --- Diet ------------------------------------------------------------------------------------


def test_diet_index_sums_the_four_items() -> None:
    assert diet_index(vegetables=3, fruit=2, fish=1, sweets=0) == 6
    assert diet_index(0, 0, 0, 0) == 0
    assert diet_index(3, 3, 3, 3) == 12


@pytest.mark.parametrize("item", ["vegetables", "fruit", "fish", "sweets"])
@pytest.mark.parametrize("points", [-1, 4])
def test_diet_item_out_of_range_is_an_error(item: str, points: int) -> None:
    scores = {"vegetables": 1, "fruit": 1, "fish": 1, "sweets": 1, item: points}
    with pytest.raises(ValueError, match=item):
        diet_index(**scores)


@pytest.mark.parametrize(
    ("index", "expected"),
    [(0, "unhealthy"), (4, "unhealthy"), (5, "healthy"), (8, "healthy"), (12, "healthy")],
)
def test_diet_threshold(index: int, expected: str) -> None:
    assert diet_finding(index) == expected


@pytest.mark.parametrize("index", [-1, 13])
def test_diet_index_out_of_range_is_an_error(index: int) -> None:
    with pytest.raises(ValueError, match="kostindex"):
        diet_finding(index)
