"""The reports as one self-contained HTML file: inline CSS and inline SVG charts drawn here, no
script and no link to anything outside the file, so it opens offline in any browser.

Swedish by default, English with ``lang="en"``: one template whose every word comes from the
message catalogue of :mod:`halsosamtal.reports.i18n`. A municipality is shown by its name (SCB's
list), a sex, an age or a CNI quintile in words; unit names and DeSO codes are data. The print
stylesheet lays every table out within an A4 page (landscape): wide tables wrap, none is cut."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jinja2

from halsosamtal.core.clock import local_today
from halsosamtal.places.municipalities import SOURCE as MUNICIPALITY_SOURCE
from halsosamtal.places.municipalities import municipality_name
from halsosamtal.reports import charts
from halsosamtal.reports.i18n import DEFAULT_LANG, Lang, Locale
from halsosamtal.reports.schemas import (
    OutcomeGroup,
    OutcomesReport,
    ParticipationGroup,
    ParticipationReport,
    ReimbursementStatement,
)

TEMPLATES = Path(__file__).parent / "templates"

# The breakdowns that get a chart in the participation section, in this order.
PARTICIPATION_CHARTS = {
    "unit": "chart-unit",
    "sex": "chart-sex",
    "age": "chart-age",
    "municipality": "chart-area",
    "cni_quintile": "chart-cni",
    "deso": "chart-deso",
}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every label (unit names) is data
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def group_label(dimension: str, group: ParticipationGroup | OutcomeGroup, t: Locale) -> str:
    """A group's name in the report's language: sex, age and quintile in words, a municipality
    by its name, a unit by its name; a group without a key is "unknown"."""
    key = group.key
    if key is None:
        return t("unknown")
    if dimension == "sex" and key in ("F", "M"):
        return t(f"sex.{key}")
    if dimension == "age":
        return t("age.value", age=key)
    if dimension == "cni_quintile":
        return t("cni.quintile", quintile=key)
    if dimension == "municipality":
        return municipality_name(key) or key
    return group.label


def _participation_charts(report: ParticipationReport, t: Locale) -> list[charts.Chart]:
    out = [charts.funnel_chart(report.total, t)]
    for dimension, chart_id in PARTICIPATION_CHARTS.items():
        groups = report.groups.get(dimension)
        if not groups or all(g.key is None for g in groups):  # e.g. no CNI table imported
            continue
        rows = [(group_label(dimension, g, t), g.rates.participation) for g in groups]
        out.append(
            charts.share_chart(
                chart_id,
                t(f"chart.participation.{dimension}"),
                rows,
                t("chart.participation.note"),
                t,
            )
        )
    return out


def _outcome_charts(report: OutcomesReport, t: Locale) -> list[charts.Chart]:
    total = report.total
    habits = [(t(f"habit.{name}"), h.unhealthy.share) for name, h in total.habits.items()]
    habits.append((t("habits.any"), total.any_unhealthy.share))
    score2 = [(t(f"score2.{name}").capitalize(), pair.share) for name, pair in total.score2.items()]
    note = t("chart.outcomes.note")
    return [
        charts.share_chart("chart-habits", t("chart.habits"), habits, note, t),
        charts.share_chart("chart-score2", t("chart.score2"), score2, note, t),
    ]


def _reimbursement_chart(statement: ReimbursementStatement, t: Locale) -> charts.Chart:
    per_unit = [
        (total.care_unit_name or total.care_unit, total.amount)
        for total in statement.totals
        if total.month is None and total.care_unit is not None
    ]
    period = t.period(statement.year, statement.month)
    return charts.amount_chart(
        "chart-reimbursement",
        t("chart.reimbursement", period=period),
        per_unit,
        t("chart.reimbursement.note"),
        t,
    )


def outcome_rows(groups: list[OutcomeGroup], t: Locale | None = None) -> list[tuple[str, list[str]]]:
    """The outcome figures as rows (one column per group): there are many figures, few groups."""
    t = t or Locale(DEFAULT_LANG)
    first = groups[0]
    rows = [(t("outcomes.completed"), [t.count(g.completed) for g in groups])]
    for habit in first.habits:
        name = t(f"habit.{habit}")
        rows.append((t("habit.unhealthy", habit=name), [t.pair(g.habits[habit].unhealthy) for g in groups]))
        for action in first.habits[habit].actions:
            rows.append(
                (
                    t("habit.action", habit=name, action=t(f"action.{action}")),
                    [t.pair(g.habits[habit].actions[action]) for g in groups],
                )
            )
    rows.append((t("habits.any"), [t.pair(g.any_unhealthy) for g in groups]))
    for kind in first.referrals:
        label = t("referral.any") if kind == "any" else t("referral.kind", kind=t(f"referral.{kind}"))
        rows.append((label, [t.pair(g.referrals[kind]) for g in groups]))
    for category in first.score2:
        label = t("score2.category", category=t(f"score2.{category}"))
        rows.append((label, [t.pair(g.score2[category]) for g in groups]))
    rows.append((t("bmi.measured"), [t.count(g.bmi.measured) for g in groups]))
    rows.append((t("bmi.mean"), [t.mean(g.bmi.mean) for g in groups]))
    return rows


def default_title(
    t: Locale,
    participation: ParticipationReport | None,
    outcomes: OutcomesReport | None,
    reimbursement: ReimbursementStatement | None,
) -> str:
    """ "Hälsosamtal 2027" for more than one report, else the one report's own title."""
    given = [r for r in (participation, outcomes, reimbursement) if r is not None]
    if len(given) != 1:
        year = given[0].year if given else local_today().year
        return t("title.summary", year=year)
    if participation is not None:
        return t("title.participation", year=participation.year)
    if outcomes is not None:
        return t("title.outcomes", year=outcomes.year)
    assert reimbursement is not None
    return t("title.reimbursement", period=t.period(reimbursement.year, reimbursement.month))


def render(
    *,
    title: str | None = None,
    participation: ParticipationReport | None = None,
    outcomes: OutcomesReport | None = None,
    reimbursement: ReimbursementStatement | None = None,
    lang: Lang = DEFAULT_LANG,
    produced: dt.date | None = None,
) -> str:
    """One HTML document with the sections of the reports given, in ``lang``.

    ``title``: the document's heading (default: from the reports given, in ``lang``);
    ``produced``: the date the footer gives (default: today in Sweden)."""
    t = Locale(lang)
    template = _environment().get_template("report.html.j2")
    context: dict[str, Any] = {
        "t": t,
        "lang": lang,
        "title": title or default_title(t, participation, outcomes, reimbursement),
        "produced": t.long_date(produced or local_today()),
        "municipality_source": MUNICIPALITY_SOURCE,
        "participation": participation,
        "participation_charts": _participation_charts(participation, t) if participation else [],
        "outcomes": outcomes,
        "outcome_charts": _outcome_charts(outcomes, t) if outcomes else [],
        "outcome_rows": lambda groups: outcome_rows(groups, t),
        "reimbursement": reimbursement,
        "reimbursement_chart": _reimbursement_chart(reimbursement, t) if reimbursement else None,
        "label": lambda dimension, group: group_label(dimension, group, t),
        "count_fields": COUNT_FIELDS,
    }
    return template.render(context)


COUNT_FIELDS = (
    "cohort",
    "invited",
    "reminded",
    "booked",
    "attended",
    "completed",
    "declined",
    "no_show",
    "withdrawn",
    "expired",
)
