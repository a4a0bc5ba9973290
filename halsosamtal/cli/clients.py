"""``halsosamtal clients``: create, list and revoke API clients.

Composed here, above the features it joins: access keeps clients and their keys, units knows
the care units an ``ehr`` client is bound to (by HSA-id on the command line, by id in access).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.access import service
from halsosamtal.access.schemas import ClientCreate, ClientCreated, ClientOut, Role
from halsosamtal.core.cli import DryRun, run_in_transaction
from halsosamtal.core.console import console, print_json

app = typer.Typer(help="API clients and their keys.", no_args_is_help=True)


async def create_client(session: AsyncSession, data: ClientCreate) -> ClientCreated:
    """Create a client, its ``--unit`` HSA-ids looked up among the care units."""
    from halsosamtal.units.service import ids_by_hsa

    return await service.create_client(session, data, await ids_by_hsa(session, data.care_units))


async def list_clients(session: AsyncSession, *, include_revoked: bool) -> list[ClientOut]:
    from halsosamtal.units.service import hsa_by_id

    records = await service.list_clients(session, include_revoked=include_revoked)
    names = await hsa_by_id(session, (u for r in records for u in r.care_unit_ids))
    return [r.out(names) for r in records]


async def revoke_client(session: AsyncSession, name: str) -> ClientOut:
    from halsosamtal.units.service import hsa_by_id

    record = await service.revoke_client(session, name)
    return record.out(await hsa_by_id(session, record.care_unit_ids))


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A unique name, e.g. 'portal-1177' or 'ehr-andersberg'.")],
    role: Annotated[Role, typer.Option(help="operator, portal or ehr.")],
    unit: Annotated[
        list[str] | None,
        typer.Option("--unit", help="HSA-id of a unit an ehr client acts for (repeat)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    dry_run: DryRun = False,
) -> None:
    """Create a client and print its key. The key is shown this once; only its hash is kept."""
    from pydantic import ValidationError

    try:
        data = ClientCreate(name=name, role=role, care_units=unit or [])
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"]) from exc
    created = run_in_transaction(lambda s: create_client(s, data), dry_run=dry_run)
    if dry_run:
        console.print(f"would create client {created.name} ({created.role})", highlight=False)
        return
    if json_out:
        print_json(created.model_dump(mode="json"))
        return
    console.print(f"created client [bold]{created.name}[/bold] ({created.role})")
    console.print("API key (shown once, store it now):")
    console.print(created.key, highlight=False, soft_wrap=True)


@app.command("list")
def list_(
    active: Annotated[bool, typer.Option("--active", help="Only clients not revoked.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List clients (never their keys)."""
    clients = run_in_transaction(lambda s: list_clients(s, include_revoked=not active))
    if json_out:
        print_json([c.model_dump(mode="json") for c in clients])
        return
    table = Table("name", "role", "key", "care units", "created", "revoked")
    for c in clients:
        table.add_row(
            c.name,
            c.role,
            c.key_prefix + "…",
            ", ".join(c.care_units),
            f"{c.created_at:%Y-%m-%d %H:%M}",
            f"{c.revoked_at:%Y-%m-%d %H:%M}" if c.revoked_at else "",
        )
    console.print(table)


async def rotate_client(
    session: AsyncSession, name: str, overlap_hours: int
) -> tuple[service.Rotated, ClientOut]:
    from datetime import timedelta

    from halsosamtal.units.service import hsa_by_id

    rotated = await service.rotate_key(session, name, overlap=timedelta(hours=overlap_hours))
    return rotated, rotated.client.out(await hsa_by_id(session, rotated.client.care_unit_ids))


@app.command("rotate")
def rotate(
    name: Annotated[str, typer.Argument(help="The client's name.")],
    overlap_hours: Annotated[
        int,
        typer.Option(
            "--overlap-hours",
            min=0,
            max=24 * 90,
            help="How long the key before keeps working, so the client can switch (0: it stops now).",
        ),
    ] = 24,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    dry_run: DryRun = False,
) -> None:
    """Give a client a new key, shown this once; the key before works for the overlap period."""
    from halsosamtal.core.clock import STOCKHOLM

    rotated, client = run_in_transaction(lambda s: rotate_client(s, name, overlap_hours), dry_run=dry_run)
    until = rotated.previous_valid_until.astimezone(STOCKHOLM)
    if dry_run:
        console.print(
            f"would rotate the key of {client.name}; the key before would work until "
            f"{until:%Y-%m-%d %H:%M %Z}"
        )
        return
    if json_out:
        print_json(
            {
                **client.model_dump(mode="json"),
                "key": rotated.key,
                "previous_key_prefix": rotated.previous_prefix,
                "previous_key_valid_until": until.isoformat(),
            }
        )
        return
    console.print(f"rotated the key of [bold]{client.name}[/bold] ({client.role})")
    console.print(
        f"the key before ({rotated.previous_prefix}…) works until {until:%Y-%m-%d %H:%M %Z}", highlight=False
    )
    console.print("new API key (shown once, store it now):")
    console.print(rotated.key, highlight=False, soft_wrap=True)


@app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The client's name.")], dry_run: DryRun = False) -> None:
    """Revoke a client's key at once."""
    client = run_in_transaction(lambda s: revoke_client(s, name), dry_run=dry_run)
    verb = "would revoke" if dry_run else "revoked"
    console.print(f"{verb} {client.name} at {client.revoked_at:%Y-%m-%d %H:%M:%S %Z}")
