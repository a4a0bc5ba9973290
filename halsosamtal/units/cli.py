"""``halsosamtal import care-units`` and ``halsosamtal units``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.core.cli import DryRun, import_app, run_in_transaction
from halsosamtal.core.console import console, err_console
from halsosamtal.core.imports import (
    DelimiterOption,
    EncodingOption,
    ImportSummary,
    RejectFile,
    columns_line,
    given_format,
)
from halsosamtal.units import service

CHUNK_BYTES = 1 << 20


def print_summary(summary: ImportSummary) -> None:
    console.print(summary.format.describe(), highlight=False)
    console.print(columns_line(summary.columns, summary.columns_left_unchanged), highlight=False)
    console.print(
        f"rows {summary.rows}: inserted {summary.inserted}, updated {summary.updated}, "
        f"unchanged {summary.unchanged}, rejected {summary.rejected}",
        highlight=False,
    )


@import_app.command("care-units")
def import_care_units(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV with a header: hsa_id (required), name, municipality, operator, "
            "participating, weekly_capacity, visiting_address, phone; any order. A column left "
            "out is left unchanged (a new unit needs name, municipality and operator).",
        ),
    ],
    rejects: Annotated[
        Path | None,
        typer.Option(help="Where to write the reject report (default: FILE.rejects.csv)"),
    ] = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = None,
    dry_run: DryRun = False,
) -> None:
    """Upsert care units by HSA-id. Bad rows go to the reject report; exit status 2 if any.

    Reads ',' or ';' CSV in UTF-8 (with or without BOM) or Windows-1252."""
    given_delimiter, given_encoding = given_format(delimiter, encoding)
    report = RejectFile(rejects or file.with_suffix(".rejects.csv"))

    async def chunks() -> AsyncIterator[bytes]:
        with file.open("rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                yield chunk

    async def work(session: AsyncSession) -> ImportSummary:
        return await service.import_care_units(
            session,
            chunks(),
            source=file.name,
            actor="cli",
            delimiter=given_delimiter,
            encoding=given_encoding,
            reject_limit=0,
            on_reject=report.add,
        )

    try:
        summary = run_in_transaction(work, dry_run=dry_run)
    except BaseException:
        report.discard()
        raise
    written = report.publish()
    print_summary(summary)
    if written:
        err_console.print(f"{summary.rejected} rejected row(s) listed in {report.target}", highlight=False)
        raise typer.Exit(2)
