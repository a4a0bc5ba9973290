"""The operator command line, ``halsosamtal``. Each feature adds its own commands."""

from halsosamtal.cli.app import app, main

__all__ = ["app", "main"]
