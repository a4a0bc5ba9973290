"""A result in plain words for the resident (Swedish first, English when asked)."""

from __future__ import annotations

from halsosamtal.core import clock
from halsosamtal.results.schemas import Derived, ResidentSummary, ResultOut

_CATEGORY = {
    "sv": {
        "low_to_moderate": "låg till måttlig",
        "high": "hög",
        "very_high": "mycket hög",
    },
    "en": {"low_to_moderate": "low to moderate", "high": "high", "very_high": "very high"},
}
_NOT_APPLICABLE = {
    "sv": {
        "age_out_of_range": "Risken för hjärt-kärlsjukdom beräknas med SCORE2 för personer 40-69 år, "
        "så den har inte beräknats för dig.",
        "diabetes": "Eftersom du har diabetes bedöms din risk för hjärt-kärlsjukdom på annat sätt "
        "än med SCORE2. Prata med din vårdcentral om den.",
        "cardiovascular_disease": "Eftersom du redan har en hjärt-kärlsjukdom följs din risk upp av "
        "din vårdcentral, inte med SCORE2.",
        "missing_values": "Risken för hjärt-kärlsjukdom kunde inte beräknas eftersom något mätvärde saknas.",
    },
    "en": {
        "age_out_of_range": "Your risk of heart and vascular disease is estimated with SCORE2 for ages "
        "40-69, so it was not estimated for you.",
        "diabetes": "As you have diabetes, your risk of heart and vascular disease is assessed in another "
        "way than SCORE2. Talk to your health centre about it.",
        "cardiovascular_disease": "As you already have a heart or vascular disease, your health centre "
        "follows your risk, not SCORE2.",
        "missing_values": "Your risk of heart and vascular disease could not be estimated as a "
        "measurement is missing.",
    },
}
_HABIT = {
    "sv": {
        "tobacco": ("Du röker eller snusar inte dagligen.", "Du röker eller snusar dagligen."),
        "alcohol": (
            "Dina alkoholvanor är inom riktlinjerna.",
            "Dina alkoholvanor innebär en risk för din hälsa.",
        ),
        "physical_activity": (
            "Du rör på dig tillräckligt (minst 150 aktivitetsminuter i veckan).",
            "Du rör på dig mindre än de 150 aktivitetsminuter i veckan som rekommenderas.",
        ),
        "diet": ("Dina matvanor är i huvudsak bra.", "Dina matvanor kan förbättras."),
    },
    "en": {
        "tobacco": ("You do not smoke or use snus daily.", "You smoke or use snus daily."),
        "alcohol": ("Your drinking is within the guidelines.", "Your drinking is a risk to your health."),
        "physical_activity": (
            "You are active enough (at least 150 activity minutes a week).",
            "You are less active than the 150 activity minutes a week that are recommended.",
        ),
        "diet": ("Your eating habits are mostly good.", "Your eating habits could be improved."),
    },
}
_HABIT_NAME = {
    "sv": {
        "tobacco": "tobak",
        "alcohol": "alkohol",
        "physical_activity": "fysisk aktivitet",
        "diet": "matvanor",
    },
    "en": {
        "tobacco": "tobacco",
        "alcohol": "alcohol",
        "physical_activity": "physical activity",
        "diet": "eating habits",
    },
}
_ACTION = {
    "sv": {
        "simple_advice": "Du fick enkla råd om {habit}.",
        "advisory_talk": "Du fick ett rådgivande samtal om {habit}.",
        "qualified_advisory_talk": "Du fick ett kvalificerat rådgivande samtal om {habit}.",
    },
    "en": {
        "simple_advice": "You were given brief advice on {habit}.",
        "advisory_talk": "You had an advisory talk on {habit}.",
        "qualified_advisory_talk": "You had a qualified advisory talk on {habit}.",
    },
}
_REFERRAL = {
    "sv": {
        "health_coordinator": "Du har fått en tid hos hälsosamordnaren.",
        "tobacco_cessation": "Du har remitterats till tobaksavvänjning.",
        "physical_activity_on_prescription": "Du har fått fysisk aktivitet på recept (FaR).",
        "physician": "Du har remitterats till en läkare.",
        "other": "Du har fått en remiss för vidare uppföljning.",
    },
    "en": {
        "health_coordinator": "You have an appointment with the health coordinator.",
        "tobacco_cessation": "You have been referred to tobacco cessation support.",
        "physical_activity_on_prescription": "You have been given physical activity on prescription (FaR).",
        "physician": "You have been referred to a physician.",
        "other": "You have been referred for further follow-up.",
    },
}
HABITS = ("tobacco", "alcohol", "physical_activity", "diet")


def _risk(derived: Derived, language: str) -> str:
    s2 = derived.score2
    if s2.not_applicable is not None or s2.risk_percent is None or s2.category is None:
        return _NOT_APPLICABLE[language][s2.not_applicable or "missing_values"]
    percent = f"{s2.risk_percent:.1f}"
    category = _CATEGORY[language][s2.category]
    if language == "en":
        return (
            f"Your estimated risk of a heart attack or stroke within 10 years is {percent} %, which is "
            f"{category} for your age."
        )
    return (
        f"Din beräknade risk att få en hjärtinfarkt eller stroke inom 10 år är {percent.replace('.', ',')} "
        f"procent, vilket är {category} för din ålder."
    )


def summary(result: ResultOut, unit_name: str, language: str) -> ResidentSummary:
    """The resident's summary: risk, BMI, a sentence per habit, advice given and referrals."""
    derived = result.derived
    findings, advice = [], []
    for habit in HABITS:
        found = getattr(derived, habit)
        healthy, unhealthy = _HABIT[language][habit]
        findings.append(healthy if found.finding == "healthy" else unhealthy)
        if found.action != "none":
            advice.append(_ACTION[language][found.action].format(habit=_HABIT_NAME[language][habit]))
    return ResidentSummary(
        held_on=clock.local(result.held_at).date(),
        care_unit_name=unit_name,
        risk=_risk(derived, language),
        risk_percent=derived.score2.risk_percent,
        bmi=derived.bmi,
        findings=findings,
        advice=advice,
        referrals=[_REFERRAL[language][r] for r in result.referrals],
    )
