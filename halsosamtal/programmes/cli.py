"""``halsosamtal programme``: set, show and list programme years."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.core.cli import DryRun, run_in_transaction
from halsosamtal.core.console import console, fail, print_json
from halsosamtal.programmes import service
from halsosamtal.programmes.schemas import ProgrammeRules, ProgrammeYearOut

app = typer.Typer(help="Programme years: target ages, rates, reminders, validity.", no_args_is_help=True)


def _ints(value: str | None, option: str) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a comma-separated list of whole numbers", param_hint=option
        ) from None


@app.command("set")
def set_(
    year: Annotated[int, typer.Option(help="Calendar year, e.g. 2027.")],
    ages: Annotated[str | None, typer.Option(help="Target ages, e.g. 40,50,60.")] = None,
    talk_rate: Annotated[Decimal | None, typer.Option(help="SEK per completed talk.")] = None,
    start_grant: Annotated[
        Decimal | None, typer.Option(help="SEK per listed resident in the target ages.")
    ] = None,
    reminder_days: Annotated[str | None, typer.Option(help="Days after invitation, e.g. 28,56.")] = None,
    valid_until: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Last valid day.")
    ] = None,
    expected_uptake: Annotated[Decimal | None, typer.Option(help="Share expected to book (0-1].")] = None,
    booking_lead_days: Annotated[int | None, typer.Option(help="Minimum days ahead to book.")] = None,
    appointment_reminder_days: Annotated[int | None, typer.Option(help="Days before the talk.")] = None,
    dry_run: DryRun = False,
) -> None:
    """Create or change one year's rules. Options left out keep the year's current value
    (or the default, for a new year). Other years are never touched."""
    given: dict[str, Any] = {
        "target_ages": _ints(ages, "--ages"),
        "talk_rate": talk_rate,
        "start_grant": start_grant,
        "reminder_days": _ints(reminder_days, "--reminder-days"),
        "valid_until": valid_until.date() if valid_until else None,
        "expected_uptake": expected_uptake,
        "booking_lead_days": booking_lead_days,
        "appointment_reminder_days": appointment_reminder_days,
    }
    given = {k: v for k, v in given.items() if v is not None}

    async def work(session: AsyncSession) -> tuple[ProgrammeYearOut, bool]:
        current = await service.current_rules(session, year)
        merged = (current.model_dump() if current else {}) | given
        try:
            rules = ProgrammeRules.model_validate(merged)
        except ValidationError as exc:
            problems = "; ".join(
                f"--{str(e['loc'][0]).replace('_', '-').replace('target-ages', 'ages')}: {e['msg']}"
                for e in exc.errors()
            )
            fail(problems)
        return await service.set_year(session, year, rules, actor="cli")

    out, created = run_in_transaction(work, dry_run=dry_run)
    verb = (
        ("would be created" if created else "would be saved")
        if dry_run
        else ("created" if created else "saved")
    )
    console.print(f"programme {year} {verb}")
    _show(out)


def _show(p: ProgrammeYearOut) -> None:
    table = Table("rule", "value", show_header=False)
    table.add_row("target ages", ", ".join(map(str, p.target_ages)))
    table.add_row("talk rate", f"{p.talk_rate} SEK")
    table.add_row("start grant", f"{p.start_grant} SEK")
    table.add_row("reminder days", ", ".join(map(str, p.reminder_days)) or "none")
    table.add_row("valid until", p.valid_until.isoformat())
    table.add_row("expected uptake", str(p.expected_uptake))
    table.add_row("booking lead days", str(p.booking_lead_days))
    table.add_row("appointment reminder days", str(p.appointment_reminder_days))
    console.print(table)


@app.command("show")
def show(
    year: Annotated[int, typer.Option(help="Calendar year.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one year's rules."""
    out = run_in_transaction(lambda s: service.get_year_out(s, year))
    if json_out:
        print_json(out.model_dump(mode="json"))
    else:
        _show(out)


@app.command("list")
def list_(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List every programme year."""
    years = run_in_transaction(service.list_years)
    if json_out:
        print_json([y.model_dump(mode="json") for y in years])
        return
    table = Table("year", "ages", "talk rate", "start grant", "reminders", "valid until")
    for y in years:
        table.add_row(
            str(y.year),
            ",".join(map(str, y.target_ages)),
            str(y.talk_rate),
            str(y.start_grant),
            ",".join(map(str, y.reminder_days)),
            y.valid_until.isoformat(),
        )
    console.print(table)
