"""``halsosamtal clients``: create, list and revoke API clients."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from halsosamtal.access import service
from halsosamtal.access.schemas import ClientCreate, Role
from halsosamtal.core.cli import DryRun, run_in_transaction
from halsosamtal.core.console import console, print_json

app = typer.Typer(help="API clients and their keys.", no_args_is_help=True)


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
    created = run_in_transaction(lambda s: service.create_client(s, data), dry_run=dry_run)
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
    clients = run_in_transaction(lambda s: service.list_clients(s, include_revoked=not active))
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


@app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The client's name.")], dry_run: DryRun = False) -> None:
    """Revoke a client's key at once."""
    client = run_in_transaction(lambda s: service.revoke_client(s, name), dry_run=dry_run)
    verb = "would revoke" if dry_run else "revoked"
    console.print(f"{verb} {client.name} at {client.revoked_at:%Y-%m-%d %H:%M:%S %Z}")
