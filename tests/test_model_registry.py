"""Every process registers every table, whichever of its modules it starts from.

A fresh interpreter imports one entry module and resolves every foreign key of every table it
knows: a table that points at one nobody imported fails here, as it would at the first flush.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1])
from halsosamtal.core.database import Base
for table in Base.metadata.sorted_tables:
    for fk in table.foreign_keys:
        fk.column
print(len(Base.metadata.tables))
"""


@pytest.mark.parametrize(
    "entry",
    [
        "services.worker.jobs",
        "services.worker.settings",
        "services.worker",
        "services.api.app",
        "services.api",
    ],
)
def test_a_fresh_process_resolves_every_foreign_key(entry: str) -> None:
    done = subprocess.run(  # noqa: S603 - our own interpreter and probe
        [sys.executable, "-c", PROBE, entry], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) >= 20
