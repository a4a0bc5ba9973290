"""Command groups that several features add commands to."""

import typer

import_app = typer.Typer(help="Load registers from CSV files.", no_args_is_help=True)
