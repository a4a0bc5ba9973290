"""The reports as CSV: one row per group (participation, outcomes) or per line and total
(reimbursement). A suppressed figure is its mark ("<5" or ".."); shares are fractions to 4
decimals, amounts in SEK with 2 decimals, times in ISO 8601.

Plain CSV by default (comma, decimal point, LF, no BOM): what programs read. With ``excel``, the
CSV that Swedish Excel opens by double-click with every column in place: semicolons, a decimal
comma in every decimal number, CRLF line ends and a UTF-8 byte order mark (without it Excel
reads the file as Windows-1252 and å, ä, ö come out garbled), times as ``2027-03-04 10:15:00``
in Swedish time (Excel reads that as a date and time; not an offset)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from halsosamtal.core.clock import STOCKHOLM
from halsosamtal.reports.schemas import (
    FunnelCounts,
    FunnelRates,
    OutcomeGroup,
    OutcomesReport,
    ParticipationGroup,
    ParticipationReport,
    ReimbursementStatement,
)

COUNT_FIELDS = tuple(FunnelCounts.model_fields)
RATE_FIELDS = tuple(FunnelRates.model_fields)


BOM = "\ufeff"
_DECIMAL = re.compile(r"-?[0-9]+\.[0-9]+")


def _excel_cell(value: Any) -> Any:
    """A decimal number with a decimal comma; anything else as it is (ids, marks, names)."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return value.replace(".", ",")
    return value


def _csv(header: list[str], rows: Iterable[list[Any]], *, excel: bool = False) -> str:
    out = io.StringIO()
    if excel:
        out.write(BOM)
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows([_excel_cell(v) for v in row] for row in rows)
    else:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return out.getvalue()


def _time(value: datetime | None, *, excel: bool) -> str:
    if value is None:
        return ""
    if excel:
        return value.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M:%S")
    return value.isoformat()


def _groups(report: ParticipationReport | OutcomesReport) -> Iterator[tuple[str, Any]]:
    yield "total", report.total
    for dimension, groups in report.groups.items():
        for group in groups:
            yield dimension, group


def participation_csv(report: ParticipationReport, *, excel: bool = False) -> str:
    header = ["breakdown", "key", "label", *COUNT_FIELDS, *(f"rate_{r}" for r in RATE_FIELDS)]

    def row(dimension: str, g: ParticipationGroup) -> list[Any]:
        counts = [getattr(g.counts, f).shown for f in COUNT_FIELDS]
        rates = [getattr(g.rates, f).shown for f in RATE_FIELDS]
        return [dimension, g.key or "", g.label, *counts, *rates]

    return _csv(header, (row(d, g) for d, g in _groups(report)), excel=excel)


def outcome_columns(group: OutcomeGroup) -> list[tuple[str, str]]:
    """(column, shown value) of one group, in a fixed order."""
    cols = [("completed", group.completed.shown)]
    for habit, outcome in group.habits.items():
        cols += [(f"{habit}_unhealthy", outcome.unhealthy.count.shown)]
        cols += [(f"{habit}_unhealthy_share", outcome.unhealthy.share.shown)]
        for action, pair in outcome.actions.items():
            cols += [(f"{habit}_{action}", pair.count.shown), (f"{habit}_{action}_share", pair.share.shown)]
    cols += [("any_unhealthy", group.any_unhealthy.count.shown)]
    cols += [("any_unhealthy_share", group.any_unhealthy.share.shown)]
    for kind, pair in group.referrals.items():
        cols += [(f"referral_{kind}", pair.count.shown), (f"referral_{kind}_share", pair.share.shown)]
    for category, pair in group.score2.items():
        cols += [(f"score2_{category}", pair.count.shown), (f"score2_{category}_share", pair.share.shown)]
    cols += [("bmi_measured", group.bmi.measured.shown), ("bmi_mean", group.bmi.mean.shown)]
    return cols


def outcomes_csv(report: OutcomesReport, *, excel: bool = False) -> str:
    header = ["breakdown", "key", "label", *(c for c, _ in outcome_columns(report.total))]
    return _csv(
        header,
        ([d, g.key or "", g.label, *(v for _, v in outcome_columns(g))] for d, g in _groups(report)),
        excel=excel,
    )


STATEMENT_HEADER = [
    "id",
    "month",
    "care_unit",
    "care_unit_name",
    "kind",
    "external_id",
    "event_at",
    "reverses",
    "programme_year",
    "quantity",
    "unit_amount",
    "amount",
]


def reimbursement_csv(report: ReimbursementStatement, *, excel: bool = False) -> str:
    """The lines, then one ``total`` row per unit and month, per month and for the period (an
    empty month or unit is "all"); ``quantity`` of a total row is its number of lines."""
    rows: list[list[Any]] = [
        [
            ln.id,
            ln.month,
            ln.care_unit,
            ln.care_unit_name,
            ln.kind,
            ln.external_id or "",
            _time(ln.event_at, excel=excel),
            ln.reverses or "",
            ln.programme_year,
            ln.quantity,
            f"{ln.unit_amount:.2f}",
            f"{ln.amount:.2f}",
        ]
        for ln in report.lines
    ]
    rows += [
        [
            "total",
            t.month or "",
            t.care_unit or "",
            t.care_unit_name or "",
            "total",
            "",
            "",
            "",
            "",
            t.lines,
            "",
            f"{t.amount:.2f}",
        ]
        for t in report.totals
    ]
    return _csv(STATEMENT_HEADER, rows, excel=excel)
