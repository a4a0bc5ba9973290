"""What the product layer exercised, checked last: every command of the README's command-line
block (and of the real CLI) ran as a subprocess, and every operation of the committed OpenAPI
document was answered with a 2xx by the real API process. A new command or operation fails
here until a product test exercises it.

Named ``test_zz_*`` so that pytest, which runs a folder's modules in name order, runs it after
every other product test (the ``product`` fixture records what they did).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.product.conftest import Product
from tests.product.support import cli_commands, operations, readme_commands

# A command or operation left out on purpose: name -> the reason and the test that covers it.
# None: ``dev run`` and ``dev stop`` run in tests/product/test_chain.py too.
EXEMPT_COMMANDS: dict[str, str] = {}
EXEMPT_OPERATIONS: dict[str, str] = {}
# Only on a machine without local Postgres and Redis, where this session runs on the embedded ones:
EXEMPT_ON_EMBEDDED_SERVERS: dict[str, str] = {
    "dev run": "it stops the embedded servers this session's processes use; "
    "tests/cli/test_dev_run.py::test_dev_run_on_embedded_servers_comes_up_and_stops_cleanly covers it",
}


def _require_every_product_module(request: pytest.FixtureRequest) -> None:
    """The lists only mean something after a run of the whole layer (not ``-k`` or one file)."""
    here = Path(__file__).resolve()
    modules = {p.resolve() for p in here.parent.glob("test_*.py")} - {here}
    ran = {Path(str(item.path)).resolve() for item in request.session.items}
    left_out = sorted(m.name for m in modules - ran)
    if left_out:
        pytest.skip(f"coverage needs the whole product layer; not selected: {', '.join(left_out)}")


def test_every_command_ran_as_a_subprocess(product: Product, request: pytest.FixtureRequest) -> None:
    _require_every_product_module(request)
    documented, real = readme_commands(), cli_commands()
    assert len(documented) > 20, f"the README's command block no longer parses: {sorted(documented)}"
    assert not documented - real, f"the README documents commands the CLI lacks: {sorted(documented - real)}"
    exempt = {**EXEMPT_COMMANDS, **(EXEMPT_ON_EMBEDDED_SERVERS if product.embedded else {})}
    missing = sorted((documented | real) - product.executed_commands() - set(exempt))
    assert not missing, f"commands no product test ran as a subprocess: {missing}"


def test_every_operation_was_answered_with_2xx_by_the_real_api(
    product: Product, request: pytest.FixtureRequest
) -> None:
    _require_every_product_module(request)
    every = {op.operation_id for op in operations()}
    assert len(every) > 40, "the OpenAPI document lost its operations"
    missing = sorted(every - product.answered_2xx() - set(EXEMPT_OPERATIONS))
    failing = sorted(
        {
            f"{a.operation_id} ({a.status})"
            for a in product.answers
            if a.operation_id in missing and a.status >= 500
        }
    )
    assert not missing, f"operations the real API never answered with a 2xx: {missing}; 5xx seen: {failing}"
