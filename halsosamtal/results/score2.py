"""ESC SCORE2: 10-year risk of fatal and non-fatal cardiovascular disease, ages 40-69.

Source: SCORE2 working group and ESC Cardiovascular risk collaboration. "SCORE2 risk prediction
algorithms: new models to estimate 10-year risk of cardiovascular disease in Europe."
Eur Heart J 2021;42(25):2439-2454, doi:10.1093/eurheartj/ehab309; the model's formula,
coefficients, baseline survivals and the region recalibration scales are in its supplementary
methods. Sweden belongs to the paper's MODERATE-risk region, the only one this service uses.

The model, per sex:

    cage = (age - 60) / 5     csbp = (sbp - 120) / 20     ctchol = tchol - 6
    chdl = (hdl - 1.3) / 0.5  smoking = 0 or 1
    x = sum(beta * term)                    (five main effects, four age interactions)
    uncalibrated = 1 - S0 ** exp(x)
    risk = 1 - exp(-exp(scale1 + scale2 * ln(-ln(1 - uncalibrated))))

The paper's diabetes terms are left out: SCORE2 is not meant for people with diabetes (they get
SCORE2-Diabetes), so its diabetes indicator is always 0 here and those terms vanish.

Risk categories follow the ESC 2021 guidelines on cardiovascular disease prevention in clinical
practice (Visseren et al., Eur Heart J 2021;42(34):3227-3337), by age band:

    =========  ===============  ===============  ==========
    age        low to moderate  high             very high
    =========  ===============  ===============  ==========
    40-49      < 2.5 %          2.5 to < 7.5 %   >= 7.5 %
    50-69      < 5 %            5 to < 10 %      >= 10 %
    =========  ===============  ===============  ==========

Inputs are not clamped to the ranges the model was derived on: plausibility is checked by
``halsosamtal.results.ranges`` before this runs, and a value that passed there is used as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, get_args

# Stored with every result: a result computed under this rule reads the same after the rule
# (coefficients, region, thresholds, rounding) changes, because the reader can tell which rule
# produced it. Bump it whenever anything here changes an output.
SCORE2_VERSION = "score2-2021-moderate/1"

Sex = Literal["male", "female"]
Region = Literal["low", "moderate", "high", "very_high"]
Category = Literal["low_to_moderate", "high", "very_high"]
NotApplicableReason = Literal["age_out_of_range", "diabetes", "cardiovascular_disease", "missing_values"]
MissingValue = Literal["systolic", "total_cholesterol", "hdl", "smoker"]

SEXES: tuple[Sex, ...] = get_args(Sex)
REGIONS: tuple[Region, ...] = get_args(Region)
CATEGORIES: tuple[Category, ...] = get_args(Category)
NOT_APPLICABLE_REASONS: tuple[NotApplicableReason, ...] = get_args(NotApplicableReason)

# The region the service uses: Sweden is in the paper's moderate-risk group of countries.
SERVICE_REGION: Region = "moderate"

MIN_AGE = 40
MAX_AGE = 69


@dataclass(frozen=True)
class Coefficients:
    """One sex's SCORE2 log-hazard coefficients and 10-year baseline survival."""

    age: float
    smoking: float
    sbp: float
    tchol: float
    hdl: float
    age_smoking: float
    age_sbp: float
    age_tchol: float
    age_hdl: float
    baseline_survival: float


# Supplementary methods of the SCORE2 paper (coefficients per 5 years of age, 20 mmHg SBP,
# 1 mmol/L total cholesterol and 0.5 mmol/L HDL cholesterol around the centring values).
COEFFICIENTS: Mapping[Sex, Coefficients] = {
    "male": Coefficients(
        age=0.3742,
        smoking=0.6012,
        sbp=0.2777,
        tchol=0.1458,
        hdl=-0.2698,
        age_smoking=-0.0755,
        age_sbp=-0.0255,
        age_tchol=-0.0281,
        age_hdl=0.0426,
        baseline_survival=0.9605,
    ),
    "female": Coefficients(
        age=0.4648,
        smoking=0.7744,
        sbp=0.3131,
        tchol=0.1002,
        hdl=-0.2606,
        age_smoking=-0.1088,
        age_sbp=-0.0277,
        age_tchol=-0.0226,
        age_hdl=0.0613,
        baseline_survival=0.9776,
    ),
}

# (scale1, scale2) per risk region and sex, from the paper's supplementary methods. All four
# regions are kept so the table can be checked against the paper as a whole; only
# SERVICE_REGION is used by ``score2``.
RECALIBRATION_SCALES: Mapping[Region, Mapping[Sex, tuple[float, float]]] = {
    "low": {"male": (-0.5699, 0.7476), "female": (-0.7380, 0.7019)},
    "moderate": {"male": (-0.1565, 0.8009), "female": (-0.3143, 0.7701)},
    "high": {"male": (0.3207, 0.9360), "female": (0.5710, 0.9369)},
    "very_high": {"male": (0.5836, 0.8294), "female": (0.9412, 0.8329)},
}

# Lower bounds (percent) of the "high" and "very high" categories, per age band (ESC 2021).
_THRESHOLDS_UNDER_50 = (2.5, 7.5)
_THRESHOLDS_50_TO_69 = (5.0, 10.0)

_EXPLANATIONS: Mapping[NotApplicableReason, str] = {
    "cardiovascular_disease": (
        "The person has established cardiovascular disease and is therefore already at very high "
        "risk; SCORE2 is for people without it, so no score is needed."
    ),
    "diabetes": (
        "SCORE2 is not meant for people with diabetes; their risk is estimated with SCORE2-Diabetes, "
        "which this service does not compute."
    ),
    "missing_values": "SCORE2 needs systolic blood pressure, total and HDL cholesterol and smoking status.",
}

_MISSING_LABELS: Mapping[MissingValue, str] = {
    "systolic": "systolic blood pressure",
    "total_cholesterol": "total cholesterol",
    "hdl": "HDL cholesterol",
    "smoker": "smoking status",
}


@dataclass(frozen=True)
class Score2Result:
    """The outcome of ``score2``: either a risk with its category, or why there is none.

    When the score applies, ``risk`` (fraction, unrounded), ``risk_percent`` (rounded half-up to
    two decimals) and ``category`` are set. When it does not, ``not_applicable`` holds a
    machine-readable reason code, ``explanation`` says it in plain English and, for
    ``missing_values``, ``missing`` names the absent inputs. ``version`` is always set.
    """

    version: str
    risk: float | None = None
    risk_percent: Decimal | None = None
    category: Category | None = None
    not_applicable: NotApplicableReason | None = None
    explanation: str | None = None
    missing: tuple[MissingValue, ...] = field(default=())

    def __post_init__(self) -> None:
        # One or the other, never half of each: a stored result must be unambiguous.
        scored = (self.risk, self.risk_percent, self.category)
        if self.not_applicable is None:
            if any(v is None for v in scored) or self.explanation is not None or self.missing:
                raise ValueError("a scored result needs risk, risk_percent and category only")
        elif any(v is not None for v in scored) or not self.explanation:
            raise ValueError("a not-applicable result needs a reason and an explanation only")

    @property
    def applicable(self) -> bool:
        """Whether a risk was computed."""
        return self.not_applicable is None


def linear_predictor(
    sex: Sex, age: float, systolic: float, total_cholesterol: float, hdl: float, smoker: bool
) -> float:
    """SCORE2's log relative hazard ``x`` for one person (no region involved)."""
    c = COEFFICIENTS[sex]
    cage = (age - 60) / 5
    csbp = (systolic - 120) / 20
    ctchol = total_cholesterol - 6
    chdl = (hdl - 1.3) / 0.5
    smoking = 1.0 if smoker else 0.0
    return (
        c.age * cage
        + c.smoking * smoking
        + c.sbp * csbp
        + c.tchol * ctchol
        + c.hdl * chdl
        + c.age_smoking * cage * smoking
        + c.age_sbp * cage * csbp
        + c.age_tchol * cage * ctchol
        + c.age_hdl * cage * chdl
    )


def ten_year_risk(
    sex: Sex,
    age: float,
    systolic: float,
    total_cholesterol: float,
    hdl: float,
    smoker: bool,
    *,
    region: Region = SERVICE_REGION,
) -> float:
    """Region-calibrated 10-year CVD risk as a fraction (0-1), with no applicability checks.

    Written as the paper states it: the uncalibrated risk from the baseline survival first, then
    the region's recalibration on the complementary log-log scale.
    """
    if sex not in COEFFICIENTS:
        raise ValueError(f"sex must be one of {SEXES}, not {sex!r}")
    if region not in RECALIBRATION_SCALES:
        raise ValueError(f"region must be one of {REGIONS}, not {region!r}")
    x = linear_predictor(sex, age, systolic, total_cholesterol, hdl, smoker)
    uncalibrated = 1 - COEFFICIENTS[sex].baseline_survival ** math.exp(x)
    scale1, scale2 = RECALIBRATION_SCALES[region][sex]
    return 1 - math.exp(-math.exp(scale1 + scale2 * math.log(-math.log(1 - uncalibrated))))


def risk_category(age: int, risk_percent: float) -> Category:
    """ESC 2021 category for a SCORE2 risk (in percent, unrounded) at ``age`` (40-69).

    Each lower bound belongs to the higher category: exactly 2.5 % at 45 is "high".
    """
    if not MIN_AGE <= age <= MAX_AGE:
        raise ValueError(f"SCORE2 categories are defined for ages {MIN_AGE}-{MAX_AGE}, not {age}")
    high, very_high = _THRESHOLDS_UNDER_50 if age < 50 else _THRESHOLDS_50_TO_69
    if risk_percent >= very_high:
        return "very_high"
    if risk_percent >= high:
        return "high"
    return "low_to_moderate"


def round_percent(risk: float) -> Decimal:
    """A risk fraction as a percentage rounded half-up to two decimals.

    Rounds the float's exact binary value, so the result depends on nothing but ``risk``.
    """
    return (Decimal(risk) * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _not_applicable(
    reason: NotApplicableReason, explanation: str, missing: tuple[MissingValue, ...] = ()
) -> Score2Result:
    return Score2Result(
        version=SCORE2_VERSION, not_applicable=reason, explanation=explanation, missing=missing
    )


def score2(
    sex: Sex,
    age: int,
    systolic: float | Decimal | None,
    total_cholesterol: float | Decimal | None,
    hdl: float | Decimal | None,
    smoker: bool | None,
    *,
    diabetes: bool,
    cardiovascular_disease: bool,
) -> Score2Result:
    """SCORE2 for one person in the moderate-risk region (Sweden), or why it does not apply.

    ``systolic`` in mmHg, cholesterols in mmol/L, ``age`` in whole years. Reasons are checked in
    order of clinical weight, and the first that holds is reported: established cardiovascular
    disease (already very high risk), diabetes (SCORE2-Diabetes applies instead), age outside
    40-69 (under 40: no score; 70 and over: SCORE2-OP, not computed here), then missing values.
    """
    if sex not in COEFFICIENTS:
        raise ValueError(f"sex must be one of {SEXES}, not {sex!r}")
    if cardiovascular_disease:
        return _not_applicable("cardiovascular_disease", _EXPLANATIONS["cardiovascular_disease"])
    if diabetes:
        return _not_applicable("diabetes", _EXPLANATIONS["diabetes"])
    if age < MIN_AGE:
        return _not_applicable(
            "age_out_of_range",
            f"SCORE2 is for ages {MIN_AGE}-{MAX_AGE}; at {age} no 10-year risk score is used.",
        )
    if age > MAX_AGE:
        return _not_applicable(
            "age_out_of_range",
            f"SCORE2 is for ages {MIN_AGE}-{MAX_AGE}; at {age} the risk is estimated with SCORE2-OP "
            "(older persons), which this service does not compute.",
        )
    if systolic is None or total_cholesterol is None or hdl is None or smoker is None:
        given: dict[MissingValue, object] = {
            "systolic": systolic,
            "total_cholesterol": total_cholesterol,
            "hdl": hdl,
            "smoker": smoker,
        }
        missing = tuple(name for name, value in given.items() if value is None)
        labels = ", ".join(_MISSING_LABELS[name] for name in missing)
        return _not_applicable(
            "missing_values", f"{_EXPLANATIONS['missing_values']} Missing: {labels}.", missing
        )
    risk = ten_year_risk(
        sex, age, float(systolic), float(total_cholesterol), float(hdl), smoker, region=SERVICE_REGION
    )
    return Score2Result(
        version=SCORE2_VERSION,
        risk=risk,
        risk_percent=round_percent(risk),
        category=risk_category(age, risk * 100),
    )
