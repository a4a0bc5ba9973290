"""``halsosamtal import residents``: a register file, and what it sets off in invitations."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.audit.trail import cli_who
from halsosamtal.core import clock
from halsosamtal.core.cli import DryRun, import_app, not_after_today, run_in_transaction
from halsosamtal.core.console import console, err_console, progress
from halsosamtal.core.imports import (
    DelimiterOption,
    EncodingOption,
    ImportSummary,
    RejectFile,
    columns_line,
    given_format,
)
from halsosamtal.core.settings import get_settings
from halsosamtal.register.service import import_register

CHUNK_BYTES = 1 << 20


@import_app.command("residents")
def import_residents_command(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV with a header: personnummer (required), care_unit, municipality, deso, "
            "protected_identity, address_line, postal_code, city, phone, digital_mailbox, "
            "language, deceased_on, emigrated_on; any order. A column left out is left unchanged.",
        ),
    ],
    snapshot: Annotated[
        bool,
        typer.Option(
            "--snapshot",
            help="The file is the whole register: residents missing from it are marked moved "
            "out (kept, not deleted).",
        ),
    ] = False,
    as_of: Annotated[
        dt.datetime | None,
        typer.Option(
            "--as-of",
            formats=["%Y-%m-%d"],
            help="Date of the register extract, YYYY-MM-DD (default: today). Listing periods "
            "change on this date; extracts must be imported in date order.",
        ),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            dir_okay=False,
            help="Where to write the reject report (default: FILE.rejects.csv); written only "
            "when a row was rejected.",
        ),
    ] = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = None,
    dry_run: DryRun = False,
) -> None:
    """Import residents from the population and listing register.

    Valid rows are upserted and the listing history kept; a column the file does not have is
    left as it is. Reads ',' or ';' CSV in UTF-8 (with or without BOM) or Windows-1252.
    Each bad row goes to the reject report with its line and reason.
    Exit status: 0 all rows imported, 2 some rows rejected, 1 nothing imported (see the error).
    """
    extract_date = not_after_today(as_of.date(), dry_run=dry_run) if as_of else clock.local_today()
    given_delimiter, given_encoding = given_format(delimiter, encoding)
    report = RejectFile(rejects or file.with_suffix(".rejects.csv"))
    size = file.stat().st_size

    with progress() as bar:
        task = bar.add_task(f"reading {file.name}", total=size)

        async def chunks() -> AsyncIterator[bytes]:
            with file.open("rb") as f:
                while chunk := f.read(CHUNK_BYTES):
                    yield chunk
                    bar.advance(task, len(chunk))
            bar.update(task, description="merging into the register")

        async def work(session: AsyncSession) -> ImportSummary:
            # In the same transaction: invitations of residents who died or moved are withdrawn,
            # and open ones follow a listing to another participating unit.
            return await import_register(
                session,
                chunks(),
                as_of=extract_date,
                snapshot=snapshot,
                source=file.name,
                actor="cli",
                reject_limit=0,
                on_reject=report.add,
                who=cli_who(),
                audit=get_settings().audit_log,
                delimiter=given_delimiter,
                encoding=given_encoding,
            )

        try:
            summary = run_in_transaction(work, dry_run=dry_run)
        except BaseException:
            report.discard()
            raise

    written = report.publish()
    _print_summary(summary, snapshot)
    for warning in summary.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if written:
        err_console.print(f"{summary.rejected} rejected row(s) listed in {report.target}", highlight=False)
        raise typer.Exit(2)


def _print_summary(summary: ImportSummary, snapshot: bool) -> None:
    console.print(summary.format.describe(), highlight=False)
    console.print(columns_line(summary.columns, summary.columns_left_unchanged), highlight=False)
    console.print(
        f"import {summary.import_id}: rows {summary.rows}: inserted {summary.inserted}, "
        f"updated {summary.updated}, unchanged {summary.unchanged}, "
        f"rejected {summary.rejected}" + (f", moved out {summary.moved_out}" if snapshot else ""),
        highlight=False,
    )
