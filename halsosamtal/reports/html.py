"""The reports as one self-contained HTML file: inline CSS and inline SVG charts drawn here, no
script and no link to anything outside the file, so it opens offline in any browser."""

from __future__ import annotations

from pathlib import Path

import jinja2

from halsosamtal.reports import charts
from halsosamtal.reports.schemas import (
    CountShare,
    OutcomeGroup,
    OutcomesReport,
    ParticipationReport,
    ReimbursementStatement,
)

TEMPLATES = Path(__file__).parent / "templates"
BREAKDOWN_TITLES = {
    "unit": "care unit",
    "age": "age",
    "sex": "sex",
    "municipality": "municipality",
    "deso": "DeSO area",
    "cni_quintile": "Care Need Index quintile",
}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every label (unit names) is data
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _participation_charts(report: ParticipationReport) -> list[charts.Chart]:
    out = [charts.funnel_chart(report.total)]
    titles = {
        "unit": ("chart-unit", "Participation by care unit"),
        "sex": ("chart-sex", "Participation by sex"),
        "age": ("chart-age", "Participation by age"),
        "municipality": ("chart-area", "Participation by municipality"),
        "cni_quintile": ("chart-cni", "Participation by Care Need Index quintile"),
        "deso": ("chart-deso", "Participation by DeSO area"),
    }
    for dimension, (chart_id, title) in titles.items():
        groups = report.groups.get(dimension)
        if not groups or all(g.key is None for g in groups):  # e.g. no CNI table imported
            continue
        rows = [(g.label, g.rates.participation) for g in groups]
        out.append(charts.share_chart(chart_id, title, rows, "Completed talks of those invited"))
    return out


def _outcome_charts(report: OutcomesReport) -> list[charts.Chart]:
    total = report.total
    habits = [(name.replace("_", " ").capitalize(), h.unhealthy.share) for name, h in total.habits.items()]
    habits.append(("Any of them", total.any_unhealthy.share))
    score2 = [(name.replace("_", " ").capitalize(), pair.share) for name, pair in total.score2.items()]
    return [
        charts.share_chart("chart-habits", "Unhealthy living habits", habits, "Share of completed talks"),
        charts.share_chart("chart-score2", "SCORE2 risk category", score2, "Share of completed talks"),
    ]


def _reimbursement_chart(statement: ReimbursementStatement) -> charts.Chart:
    per_unit = [
        (t.care_unit_name or t.care_unit, t.amount)
        for t in statement.totals
        if t.month is None and t.care_unit is not None
    ]
    period = f"{statement.year}" + (f"-{statement.month:02d}" if statement.month else "")
    return charts.amount_chart(
        "chart-reimbursement", f"Reimbursement per care unit, {period}", per_unit, "SEK"
    )


def _pair(pair: CountShare) -> str:
    """A count and its share, as the table shows them: "73 (51.4 %)"."""
    if pair.count.suppressed or pair.count.value is None:
        return pair.count.shown
    if pair.share.suppressed:
        return f"{pair.count.shown} ({pair.share.shown})"
    if pair.share.value is None:
        return pair.count.shown
    return f"{pair.count.shown} ({float(pair.share.value) * 100:.1f} %)"


def _words(name: str) -> str:
    return name.replace("_", " ")


def outcome_rows(groups: list[OutcomeGroup]) -> list[tuple[str, list[str]]]:
    """The outcome figures as rows (one column per group): there are many figures, few groups."""
    first = groups[0]
    rows = [("Completed talks", [g.completed.shown for g in groups])]
    for habit in first.habits:
        rows.append(
            (f"{_words(habit).capitalize()}: unhealthy", [_pair(g.habits[habit].unhealthy) for g in groups])
        )
        for action in first.habits[habit].actions:
            rows.append(
                (
                    f"{_words(habit).capitalize()}: {_words(action)}",
                    [_pair(g.habits[habit].actions[action]) for g in groups],
                )
            )
    rows.append(("Any unhealthy habit", [_pair(g.any_unhealthy) for g in groups]))
    for kind in first.referrals:
        label = "Any referral" if kind == "any" else f"Referral: {_words(kind)}"
        rows.append((label, [_pair(g.referrals[kind]) for g in groups]))
    for category in first.score2:
        rows.append((f"SCORE2: {_words(category)}", [_pair(g.score2[category]) for g in groups]))
    rows.append(("BMI measured", [g.bmi.measured.shown for g in groups]))
    rows.append(("Mean BMI", [g.bmi.mean.shown for g in groups]))
    return rows


def render(
    *,
    title: str,
    participation: ParticipationReport | None = None,
    outcomes: OutcomesReport | None = None,
    reimbursement: ReimbursementStatement | None = None,
) -> str:
    """One HTML document with the sections of the reports given."""
    template = _environment().get_template("report.html.j2")
    return template.render(
        title=title,
        participation=participation,
        participation_charts=_participation_charts(participation) if participation else [],
        outcomes=outcomes,
        outcome_charts=_outcome_charts(outcomes) if outcomes else [],
        outcome_rows=outcome_rows,
        reimbursement=reimbursement,
        reimbursement_chart=_reimbursement_chart(reimbursement) if reimbursement else None,
        breakdown_titles=BREAKDOWN_TITLES,
    )
