"""``halsosamtal import care-units`` and ``halsosamtal units``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.core.cli import DryRun, import_app, run_in_transaction
from halsosamtal.core.console import console, err_console, fail
from halsosamtal.core.imports import ImportSummary, RejectReport, UnreadableFile, read_text
from halsosamtal.units import service


def print_summary(summary: ImportSummary, rejects_path: Path | None) -> None:
    console.print(
        f"rows {summary.rows}: inserted {summary.inserted}, updated {summary.updated}, "
        f"unchanged {summary.unchanged}, rejected {summary.rejected}"
        + (f", moved out {summary.moved_out}" if summary.moved_out else "")
    )
    if summary.rejects and rejects_path is not None:
        RejectReport(list(summary.rejects)).write(rejects_path)
        err_console.print(f"{summary.rejected} rejected row(s) listed in {rejects_path}")


@import_app.command("care-units")
def import_care_units(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV: hsa_id,name,municipality,operator,participating,weekly_capacity",
        ),
    ],
    rejects: Annotated[
        Path | None,
        typer.Option(help="Where to write the reject report (default: FILE.rejects.csv)"),
    ] = None,
    dry_run: DryRun = False,
) -> None:
    """Upsert care units by HSA-id. Bad rows go to the reject report; exit status 2 if any."""

    try:
        text = read_text(file)
    except UnreadableFile as exc:
        fail(str(exc))

    async def work(session: AsyncSession) -> ImportSummary:
        return await service.import_care_units(
            session, io.StringIO(text, newline=""), source=file.name, actor="cli"
        )

    summary = run_in_transaction(work, dry_run=dry_run)
    print_summary(summary, rejects or file.with_suffix(".rejects.csv"))
    if summary.rejected:
        raise typer.Exit(2)
