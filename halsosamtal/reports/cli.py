"""``halsosamtal report participation|outcomes|reimbursement|summary|close`` and
``halsosamtal import cni``."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import nullcontext
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.core.cli import DryRun, import_app, run_in_transaction
from halsosamtal.core.console import console, err_console, fail
from halsosamtal.core.imports import DelimiterOption, EncodingOption, RejectReport, given_format
from halsosamtal.core.settings import get_settings
from halsosamtal.reports import cni, export, html, outcomes, participation, reimbursement
from halsosamtal.reports.i18n import DEFAULT_LANG, Lang, parse_lang
from halsosamtal.reports.schemas import (
    CniImportSummary,
    OutcomeDimension,
    OutcomesReport,
    ParticipationDimension,
    ParticipationReport,
    ReimbursementStatement,
)
from halsosamtal.reports.scope import resolve_scope

app = typer.Typer(
    help="Reports: participation, health outcomes, the reimbursement statement; close a month.",
    no_args_is_help=True,
)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    html = "html"


class ReportLanguage(StrEnum):
    sv = "sv"
    en = "en"


Year = Annotated[int, typer.Option(help="Programme year (reimbursement: calendar year of the months).")]
Unit = Annotated[str | None, typer.Option(help="Only this care unit (HSA-id).")]
Month = Annotated[int | None, typer.Option(min=1, max=12, help="Only this month (reimbursement).")]
FormatOption = Annotated[OutputFormat, typer.Option("--format", help="table, csv, json or html.")]
Out = Annotated[Path | None, typer.Option(help="Write to this file (default: standard output).")]
ExcelOption = Annotated[
    bool,
    typer.Option(
        "--excel",
        help="With --format csv: for Swedish Excel (semicolons, decimal comma, CRLF, UTF-8 BOM).",
    ),
]
LangOption = Annotated[
    ReportLanguage | None,
    typer.Option("--lang", help="Language of the HTML report: sv (Swedish, the default) or en."),
]

# The HTML report always shows these breakdowns (its charts need them).
HTML_PARTICIPATION: tuple[ParticipationDimension, ...] = (
    "unit",
    "sex",
    "age",
    "municipality",
    "cni_quintile",
)
HTML_OUTCOMES: tuple[OutcomeDimension, ...] = ("sex", "age", "unit")


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    out.write_text(text, encoding="utf-8", newline="")  # a CSV for Excel keeps its CRLF anywhere
    err_console.print(f"wrote {out}")


def _json(report: BaseModel) -> str:
    return json.dumps(report.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n"


def _print_tables(tables: Sequence[Table], out: Path | None) -> None:
    """Each table as wide as it needs: a report's figures are never cut to fit a terminal."""
    with out.open("w", encoding="utf-8") if out is not None else nullcontext(sys.stdout) as target:
        for table in tables:
            width = Console(width=10_000).measure(table).maximum
            printer = Console(
                file=target,
                width=max(width, 80),
                color_system=None if out is not None else "auto",
                highlight=False,
            )
            printer.print(table)
    if out is not None:
        err_console.print(f"wrote {out}")


def _no_month(month: int | None) -> None:
    if month is not None:
        fail("--month is for the reimbursement statement; this report covers the programme year")


def _threshold() -> int:
    return get_settings().small_cell_threshold


def _excel(excel: bool, fmt: OutputFormat) -> bool:
    if excel and fmt is not OutputFormat.csv:
        fail("--excel is for --format csv")
    return excel


def _lang(lang: ReportLanguage | None, fmt: OutputFormat) -> Lang:
    """The HTML report's language; --lang says nothing to the other formats, so it is refused
    there rather than ignored."""
    if lang is not None and fmt is not OutputFormat.html:
        fail("--lang is for --format html (the table, CSV and JSON keep their English column names)")
    return DEFAULT_LANG if lang is None else parse_lang(lang.value)


@app.command("participation")
def participation_command(
    year: Year,
    unit: Unit = None,
    month: Month = None,
    group_by: Annotated[
        list[str] | None,
        typer.Option(help="Breakdown: unit, age, sex, municipality, deso, cni_quintile (repeatable)."),
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    out: Out = None,
    lang: LangOption = None,
    excel: ExcelOption = False,
) -> None:
    """The participation funnel of a programme year, in total and by the breakdowns asked for
    (default: unit). Small cells are suppressed."""
    _no_month(month)
    language = _lang(lang, fmt)
    _excel(excel, fmt)
    dimensions = _dimensions(group_by or ["unit"], participation.DIMENSIONS, "--group-by")
    if fmt is OutputFormat.html:
        dimensions = list(dict.fromkeys([*HTML_PARTICIPATION, *dimensions]))

    async def work(session: AsyncSession) -> ParticipationReport:
        scope = await resolve_scope(session, None, unit)
        return await participation.participation(
            session, year, group_by=dimensions, scope=scope, threshold=_threshold()
        )

    report = run_in_transaction(work)
    if fmt is OutputFormat.json:
        _write(_json(report), out)
    elif fmt is OutputFormat.csv:
        _write(export.participation_csv(report, excel=excel), out)
    elif fmt is OutputFormat.html:
        _write(html.render(participation=report, lang=language), out)
    else:
        _print_tables(_participation_tables(report), out)


@app.command("outcomes")
def outcomes_command(
    year: Year,
    unit: Unit = None,
    month: Month = None,
    group_by: Annotated[
        list[str] | None, typer.Option(help="Breakdown: sex, age, unit (repeatable).")
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    out: Out = None,
    lang: LangOption = None,
    excel: ExcelOption = False,
) -> None:
    """Health outcomes among the year's completed talks, in total and by the breakdowns asked
    for (default: sex). Small cells are suppressed."""
    _no_month(month)
    language = _lang(lang, fmt)
    _excel(excel, fmt)
    dimensions = _dimensions(group_by or ["sex"], outcomes.DIMENSIONS, "--group-by")
    if fmt is OutputFormat.html:
        dimensions = list(dict.fromkeys([*HTML_OUTCOMES, *dimensions]))

    async def work(session: AsyncSession) -> OutcomesReport:
        scope = await resolve_scope(session, None, unit)
        return await outcomes.outcomes(
            session, year, group_by=dimensions, scope=scope, threshold=_threshold()
        )

    report = run_in_transaction(work)
    if fmt is OutputFormat.json:
        _write(_json(report), out)
    elif fmt is OutputFormat.csv:
        _write(export.outcomes_csv(report, excel=excel), out)
    elif fmt is OutputFormat.html:
        _write(html.render(outcomes=report, lang=language), out)
    else:
        _print_tables(_outcome_tables(report), out)


@app.command("reimbursement")
def reimbursement_command(
    year: Year,
    month: Month = None,
    unit: Unit = None,
    fmt: FormatOption = OutputFormat.table,
    out: Out = None,
    lines: Annotated[bool, typer.Option("--lines", help="table: list every line too.")] = False,
    lang: LangOption = None,
    excel: ExcelOption = False,
) -> None:
    """The reimbursement statement per care unit and month: talks, start grants and reversals,
    with totals. Not suppressed."""
    language = _lang(lang, fmt)
    _excel(excel, fmt)

    async def work(session: AsyncSession) -> ReimbursementStatement:
        scope = await resolve_scope(session, None, unit)
        return await reimbursement.statement(session, year, month, scope=scope)

    report = run_in_transaction(work)
    if fmt is OutputFormat.json:
        _write(_json(report), out)
    elif fmt is OutputFormat.csv:
        _write(export.reimbursement_csv(report, excel=excel), out)
    elif fmt is OutputFormat.html:
        _write(html.render(reimbursement=report, lang=language), out)
    else:
        _print_tables(_statement_tables(report, with_lines=lines), out)


@app.command("summary")
def summary_command(
    year: Year,
    unit: Unit = None,
    out: Out = None,
    lang: LangOption = None,
) -> None:
    """One HTML file with all three reports for the year: the funnel and participation by
    unit, sex, age and area; health outcomes; the reimbursement statement per unit. In Swedish,
    or English with --lang en."""

    async def work(
        session: AsyncSession,
    ) -> tuple[ParticipationReport, OutcomesReport, ReimbursementStatement]:
        scope = await resolve_scope(session, None, unit)
        threshold = _threshold()
        return (
            await participation.participation(
                session, year, group_by=HTML_PARTICIPATION, scope=scope, threshold=threshold
            ),
            await outcomes.outcomes(session, year, group_by=HTML_OUTCOMES, scope=scope, threshold=threshold),
            await reimbursement.statement(session, year, scope=scope),
        )

    taking_part, health, statement = run_in_transaction(work)
    page = html.render(
        participation=taking_part,
        outcomes=health,
        reimbursement=statement,
        lang=_lang(lang, OutputFormat.html),
    )
    _write(page, out)


@app.command("close")
def close_command(
    year: Annotated[int, typer.Option(help="Calendar year of the month.")],
    month: Annotated[int, typer.Option(min=1, max=12, help="The month to close.")],
    dry_run: DryRun = False,
) -> None:
    """Close (report) a month of the reimbursement statement once it has ended: from then on it
    never changes. Months close in order."""
    closed = run_in_transaction(
        lambda s: reimbursement.close_month(s, year, month, actor="cli"), dry_run=dry_run
    )
    console.print(
        f"closed {closed.month}: {closed.lines} lines, {closed.total:.2f} SEK (digest {closed.digest[:12]})",
        highlight=False,
    )


@import_app.command("cni")
def import_cni_command(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV: deso,cni (or deso;cni)")
    ],
    rejects: Annotated[
        Path | None, typer.Option(help="Where to write the reject report (default: FILE.rejects.csv)")
    ] = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = None,
    dry_run: DryRun = False,
) -> None:
    """Replace the Care Need Index table (per DeSO area). Bad rows go to the reject report and
    give exit status 2; then areas missing from the file are kept.

    Reads ',' or ';' CSV (a decimal comma with ';') in UTF-8 (with or without BOM) or
    Windows-1252."""
    given_delimiter, given_encoding = given_format(delimiter, encoding)

    async def chunks() -> AsyncIterator[bytes]:
        with file.open("rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk

    async def work(session: AsyncSession) -> CniImportSummary:
        return await cni.import_cni(session, chunks(), delimiter=given_delimiter, encoding=given_encoding)

    summary = run_in_transaction(work, dry_run=dry_run)
    console.print(summary.format.describe(), highlight=False)
    console.print(
        f"rows {summary.rows}: inserted {summary.inserted}, updated {summary.updated}, "
        f"unchanged {summary.unchanged}, removed {summary.removed}, rejected {summary.rejected}"
    )
    for warning in summary.warnings:
        err_console.print(f"warning: {warning}")
    if summary.rejects:
        path = rejects or file.with_suffix(".rejects.csv")
        RejectReport(list(summary.rejects)).write(path)
        err_console.print(f"{summary.rejected} rejected row(s) listed in {path}")
        raise typer.Exit(2)


# --- Tables -------------------------------------------------------------------------------------


def _dimensions(given: Sequence[str], allowed: Sequence[Any], option: str) -> list[Any]:
    unknown = [g for g in given if g not in allowed]
    if unknown:
        raise typer.BadParameter(f"{', '.join(unknown)}: choose from {', '.join(allowed)}", param_hint=option)
    return list(dict.fromkeys(given))


def _percent(shown: str, value: float | int | None, suppressed: bool) -> str:
    if suppressed or value is None:
        return shown
    return f"{float(value) * 100:.1f} %"


def _participation_tables(report: ParticipationReport) -> list[Table]:
    tables = []
    for dimension, groups in report.groups.items():
        table = Table(title=f"Participation {report.year} by {dimension}")
        for header in ("", *export.COUNT_FIELDS, "invited %", "participation %"):
            table.add_column(header.replace("_", " "), justify="left" if not header else "right")
        for g in [*groups, report.total]:
            table.add_row(
                "Total" if g is report.total else g.label,
                *(getattr(g.counts, f).shown for f in export.COUNT_FIELDS),
                _percent(g.rates.invited.shown, g.rates.invited.value, g.rates.invited.suppressed),
                _percent(
                    g.rates.participation.shown, g.rates.participation.value, g.rates.participation.suppressed
                ),
                end_section=g is groups[-1] if groups else False,
            )
        tables.append(table)
    return tables


def _outcome_tables(report: OutcomesReport) -> list[Table]:
    # Transposed: a row per figure, a column per group (there are many figures, few groups).
    tables = []
    for dimension, groups in report.groups.items():
        table = Table(title=f"Health outcomes {report.year} by {dimension}")
        table.add_column("")
        columns = [*groups, report.total]
        for g in columns:
            table.add_column("Total" if g is report.total else g.label, justify="right")
        values = [dict(export.outcome_columns(g)) for g in columns]
        for name, _ in export.outcome_columns(report.total):
            table.add_row(name.replace("_", " "), *(v[name] for v in values))
        tables.append(table)
    return tables


def _statement_tables(report: ReimbursementStatement, *, with_lines: bool) -> list[Table]:
    months = Table(title="Months")
    for header in ("month", "closed", "by", "unchanged since closed"):
        months.add_column(header)
    for m in report.months:
        months.add_row(
            m.month,
            m.closed_at.isoformat() if m.closed_at else "open",
            m.closed_by or "",
            "" if m.unchanged_since_closed is None else ("yes" if m.unchanged_since_closed else "NO"),
        )
    totals = Table(title=f"Reimbursement {report.year}" + (f"-{report.month:02d}" if report.month else ""))
    for header, justify in (("month", "left"), ("care unit", "left"), ("lines", "right"), ("SEK", "right")):
        totals.add_column(header, justify=justify)  # type: ignore[arg-type]
    for t in report.totals:
        totals.add_row(
            t.month or "all months",
            f"{t.care_unit_name} ({t.care_unit})" if t.care_unit else "all units",
            str(t.lines),
            f"{t.amount:.2f}",
        )
    tables = [months, totals]
    if with_lines:
        listing = Table(title="Lines")
        for header in ("id", "month", "unit", "kind", "EHR record", "reverses", "qty", "rate", "SEK"):
            listing.add_column(header)
        for ln in report.lines:
            listing.add_row(
                ln.id,
                ln.month,
                ln.care_unit,
                ln.kind,
                ln.external_id or "",
                ln.reverses or "",
                str(ln.quantity),
                f"{ln.unit_amount:.2f}",
                f"{ln.amount:.2f}",
            )
        tables.append(listing)
    return tables
