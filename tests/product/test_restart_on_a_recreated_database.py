"""A database dropped and created again under the same name, while Redis keeps what arq
remembers of the old one (job results are kept an hour): the service starts anew on it and
its first batch is run, not left ``queued`` behind an old result with the same job id.

This is what a developer does with ``make clean``-style resets, and what a test run does when
it reuses a name. It runs after the chain: it drops the chain's database.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from zoneinfo import ZoneInfo

from tests.product.conftest import Product

YEAR = dt.datetime.now(ZoneInfo("Europe/Stockholm")).year
BATCH_TIMEOUT_S = 45


def _restart_on_a_new_database(product: Product) -> None:
    """Stop the API and the worker, drop the database, ``halsosamtal migrate`` (which creates
    it) and start both again, as an operator would."""
    product.stop_services()
    product.drop_database()
    assert not product.database_exists()
    product.forget_keys()
    product.cli("migrate")
    product.start_services()


def _start_batch(product: Product) -> dict[str, Any]:
    rules = {"target_ages": [40, 50, 60], "talk_rate": "1000", "valid_until": f"{YEAR + 1}-03-31"}
    assert (
        product.api.put(f"/v1/programme-years/{YEAR}", json=rules, headers=product.operator).status_code
        == 201
    )
    started = product.api.post("/v1/batches", json={"year": YEAR}, headers=product.operator)
    assert started.status_code == 202, started.text
    return dict(started.json())


def _wait(product: Product, batch_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + BATCH_TIMEOUT_S
    batch: dict[str, Any] = {}
    while time.monotonic() < deadline:
        batch = product.api.get(f"/v1/batches/{batch_id}", headers=product.operator).json()
        if batch["status"] in ("done", "failed"):
            break
        time.sleep(0.5)
    return batch


def test_a_batch_on_a_recreated_database_is_run_while_redis_keeps_old_results(product: Product) -> None:
    # The first database: its batch 1 was run by the worker (the chain's, else one made here),
    # and arq keeps the job's result for an hour.
    earlier = product.api.get("/v1/batches/1", headers=product.operator)
    by_the_worker = earlier.status_code == 200 and earlier.json()["requested_by"] != "cli"  # API-started
    if not (by_the_worker and earlier.json()["status"] == "done"):
        _restart_on_a_new_database(product)
        first = _start_batch(product)
        assert first["id"] == 1
        assert _wait(product, 1)["status"] == "done"

    # The same name again: batch 1 again, while Redis still remembers the first one.
    _restart_on_a_new_database(product)
    again = _start_batch(product)
    assert again["id"] == 1, "a new database numbers its batches from 1 again"
    batch = _wait(product, 1)
    if batch["status"] != "done":
        r = product.redis()
        try:
            kept = sorted(k.decode() for k in r.scan_iter(match=f"arq:result:*{product.database}*"))
        finally:
            r.close()
        raise AssertionError(
            f"batch 1 of the new database is still {batch['status']} after {BATCH_TIMEOUT_S} s; Redis "
            f"keeps {kept} from the dropped database, and arq does not queue a job whose id has a result"
        )
