"""Living-habit findings: is each of the four habits healthy or unhealthy, from the talk's answers.

Rules follow Socialstyrelsen's "Nationella riktlinjer för prevention och behandling vid
ohälsosamma levnadsvanor" (2018; its digital edition at roi.socialstyrelsen.se states each
condition's definition with every recommendation), the riskbruk limits Socialstyrelsen
published on 2023-09-12 as the first part of the 2024 update, and the indicator questions
("Indikatorfrågor för levnadsvanor") the guidelines use to find the conditions.

=================  ==============================  ============================================
habit              input                           unhealthy when
=================  ==============================  ============================================
tobacco            smoking and snus frequency      smokes daily, or uses snus daily
alcohol            AUDIT-C points (0-12)           men >= 6, women >= 5 (see the note below)
alcohol            standard drinks, heavy episode  >= 10 standard drinks a week, or >= 4 at one
                                                   occasion once a month or more (2023 limits)
physical activity  minutes a week                  2 x exercise + everyday activity < 150
diet               kostindex points (0-12)         0-4 points
=================  ==============================  ============================================

Note on alcohol: the AUDIT-C limits (6 for men, 5 for women) are the cut-off Folkhälsomyndigheten
uses for "riskkonsumtion" in the national public health survey (Hälsa på lika villkor); they
were not found in Socialstyrelsen's own material. Socialstyrelsen's indicator questions for
alcohol are not AUDIT-C but two questions (standard drinks in a usual week; how often one
drinks heavily at one occasion), and its riskbruk limits since 2023-09-12 are the same for both
sexes (``alcohol_finding_from_consumption``). No sex-neutral AUDIT-C cut-off from Socialstyrelsen
was found, so ``alcohol_finding`` keeps the sex-specific AUDIT-C limits.

A finding says whether the guideline's condition is present; it is not advice. What to offer
(``ActionLevel``) and where to refer (``ReferralKind``) are the professional's choice, recorded
with the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

# Stored with every result, so a finding reads the same after the rules change.
HABITS_VERSION = "socialstyrelsen-2024/1"

Finding = Literal["healthy", "unhealthy"]
Habit = Literal["tobacco", "alcohol", "physical_activity", "diet"]
Sex = Literal["male", "female"]

# How often a tobacco or nicotine product is used, as the indicator questions ask it ("Röker
# du?" / "Snusar du?": dagligen, men inte dagligen, har slutat, har aldrig).
TobaccoUse = Literal["never", "former", "non_daily", "daily"]

# The guidelines' levels of support ("enkla råd", "rådgivande samtal", "kvalificerat rådgivande
# samtal"), plus "none".
ActionLevel = Literal["none", "simple_advice", "advisory_talk", "qualified_advisory_talk"]
ReferralKind = Literal[
    "health_coordinator", "tobacco_cessation", "physical_activity_on_prescription", "physician", "other"
]

FINDINGS: tuple[Finding, ...] = get_args(Finding)
HABITS: tuple[Habit, ...] = get_args(Habit)
TOBACCO_USES: tuple[TobaccoUse, ...] = get_args(TobaccoUse)
ACTION_LEVELS: tuple[ActionLevel, ...] = get_args(ActionLevel)
REFERRAL_KINDS: tuple[ReferralKind, ...] = get_args(ReferralKind)

# AUDIT-C score from which use counts as risky (Folkhälsomyndigheten, "Översikt av de begrepp
# som används för att beskriva alkoholkonsumtionen i befolkningen": "Gränsvärdet för
# riskkonsumtion är totalt fem poäng för kvinnor och sex poäng för män").
AUDIT_C_RISK_FROM: Mapping[Sex, int] = {"male": 6, "female": 5}
AUDIT_C_MAX = 12

# Socialstyrelsen, "Nya gränsvärden för riskbruk av alkohol till hälso- och sjukvården"
# (2023-09-12, part of the 2024 guideline update): 10 standard drinks (12 g alcohol each) or
# more a week, or 4 or more at one occasion once a month or more often, for men and women alike.
RISK_DRINKS_PER_WEEK_FROM = 10

# Socialstyrelsen's definition (roi.socialstyrelsen.se, recommendations 5.17 and 5.18, "Vuxna som
# är otillräckligt fysiskt aktiva"): under 150 minutes a week, where minutes of high intensity
# count double. The indicator questions ask for exercise that makes one breathless (high) and
# everyday activity such as walking or cycling (moderate); Folkhälsomyndigheten's survey adds
# them the same way ("fysisk träning*2 + vardagsmotion = aktivitetsminuter"). The questions give
# answer brackets; we receive minutes, so the rule is applied to the minutes directly.
SUFFICIENT_ACTIVITY_MINUTES = 150

# Socialstyrelsen's kostindex (roi.socialstyrelsen.se, recommendation 5.14, "Vuxna med
# ohälsosamma matvanor"): four frequency questions scored 0-3 each, 12 at most. "Socialstyrelsen
# har definierat betydande ohälsosamma matvanor som låga poäng på kostindexet (0-4 poäng av 12
# möjliga)."
DIET_INDEX_MAX = 12
DIET_ITEM_MAX = 3
UNHEALTHY_DIET_INDEX_UP_TO = 4


def tobacco_finding(smoking: TobaccoUse, snus: TobaccoUse) -> Finding:
    """Unhealthy when the person smokes daily or uses snus daily.

    Daily smoking is the guidelines' core tobacco condition. Daily snus use is a condition of
    its own there too (roi.socialstyrelsen.se, recommendation 5.26, "Vuxna med särskild risk som
    snusar dagligen"), and the 2024 update names the whole area "tobaks- och nikotinbruk".
    "Snus" here includes nicotine-only (white) snus, which Socialstyrelsen counts as snus
    ("Snus är en icke-rökbar produkt som kan innehålla tobak och nikotin eller enbart nikotin").
    Not verified: whether the 2024 update also counts occasional use or other nicotine products
    (e-cigarettes) as a condition; neither is flagged here, only daily smoking or daily snus.
    """
    for name, use in (("smoking", smoking), ("snus", snus)):
        if use not in TOBACCO_USES:
            raise ValueError(f"{name} must be one of {TOBACCO_USES}, not {use!r}")
    return "unhealthy" if "daily" in (smoking, snus) else "healthy"


def alcohol_finding(sex: Sex, audit_c: int) -> Finding:
    """Unhealthy (risky use) when AUDIT-C is 6 or more for a man, 5 or more for a woman.

    See the module docstring for where these limits come from and how they relate to
    Socialstyrelsen's sex-neutral limits of 2023.
    """
    if sex not in AUDIT_C_RISK_FROM:
        raise ValueError(f"sex must be one of {tuple(AUDIT_C_RISK_FROM)}, not {sex!r}")
    if not 0 <= audit_c <= AUDIT_C_MAX:
        raise ValueError(f"AUDIT-C is 0-{AUDIT_C_MAX} points, not {audit_c}")
    return "unhealthy" if audit_c >= AUDIT_C_RISK_FROM[sex] else "healthy"


def alcohol_finding_from_consumption(standard_drinks_per_week: float, heavy_monthly: bool) -> Finding:
    """Unhealthy (riskbruk) under Socialstyrelsen's 2023 limits, the same for men and women.

    ``standard_drinks_per_week``: drinks of 12 g alcohol in a usual week. ``heavy_monthly``: the
    person drinks 4 standard drinks or more at one occasion once a month or more often.
    """
    if standard_drinks_per_week < 0:
        raise ValueError(f"standard drinks a week cannot be negative: {standard_drinks_per_week}")
    risky = standard_drinks_per_week >= RISK_DRINKS_PER_WEEK_FROM or heavy_monthly
    return "unhealthy" if risky else "healthy"


def activity_minutes(exercise_minutes: int, everyday_minutes: int) -> int:
    """Weekly activity minutes: exercise (high intensity) counts double, everyday activity once."""
    if exercise_minutes < 0 or everyday_minutes < 0:
        raise ValueError(
            f"minutes cannot be negative: exercise {exercise_minutes}, everyday {everyday_minutes}"
        )
    return exercise_minutes * 2 + everyday_minutes


def physical_activity_finding(exercise_minutes: int, everyday_minutes: int) -> Finding:
    """Unhealthy (insufficient activity) below 150 activity minutes a week; exactly 150 is enough."""
    sufficient = activity_minutes(exercise_minutes, everyday_minutes) >= SUFFICIENT_ACTIVITY_MINUTES
    return "healthy" if sufficient else "unhealthy"


def diet_index(vegetables: int, fruit: int, fish: int, sweets: int) -> int:
    """Kostindex from its four item scores, each 0-3 as the indicator questions score them.

    ``vegetables``: vegetables and root vegetables; ``fruit``: fruit and berries; ``fish``: fish
    and shellfish; ``sweets``: pastries, chocolate/sweets, crisps and soft drinks/squash. The first
    three score more the more often they are eaten; ``sweets`` is scored the other way round
    (3 for once a week or less often, 0 for twice a day or more), so every item's 3 is the
    healthiest answer. The caller passes scores, not answers.
    """
    items = {"vegetables": vegetables, "fruit": fruit, "fish": fish, "sweets": sweets}
    for name, points in items.items():
        if not 0 <= points <= DIET_ITEM_MAX:
            raise ValueError(f"{name} scores 0-{DIET_ITEM_MAX} points, not {points}")
    return sum(items.values())


def diet_finding(index: int) -> Finding:
    """Unhealthy when the kostindex is 0-4 of 12 points ("betydande ohälsosamma matvanor")."""
    if not 0 <= index <= DIET_INDEX_MAX:
        raise ValueError(f"the kostindex is 0-{DIET_INDEX_MAX} points, not {index}")
    return "unhealthy" if index <= UNHEALTHY_DIET_INDEX_UP_TO else "healthy"
