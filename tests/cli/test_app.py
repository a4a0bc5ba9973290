"""The command line's root: every group loads when used, and the root's help imports nothing
heavy (it answered in 4-7 s when every feature was imported up front)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from halsosamtal.cli.app import GROUPS, app


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_each_group_loads_with_its_commands(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"{name} [OPTIONS] COMMAND [ARGS]" in result.output, result.output


def test_a_group_of_one_command_stays_a_group() -> None:
    result = CliRunner().invoke(app, ["slots", "template", "--help"])
    assert result.exit_code == 0, result.output
    assert "--first-day" in result.output


def test_the_roots_help_lists_every_group_without_importing_the_service() -> None:
    code = (
        "import sys\n"
        "from halsosamtal.cli.app import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('sqlalchemy', 'asyncpg', 'alembic', 'fastapi', 'halsosamtal.models')"
        " if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    command = [sys.executable, "-c", code]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603 - ours
    assert "HEAVY []" in out, out
    for name in GROUPS:
        assert name in out
