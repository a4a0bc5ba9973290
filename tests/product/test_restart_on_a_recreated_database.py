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
        if batch["state"] in ("done", "failed"):
            break
        time.sleep(0.5)
    return batch


def test_a_batch_on_a_recreated_database_is_run_while_redis_keeps_old_results(product: Product) -> None:
    result_key = f"arq:result:{product.queue}:batch:1"
    r = product.redis()
    try:
        if not r.exists(result_key):
            # Make what the scenario needs: a first batch run by the worker, remembered by arq.
            _restart_on_a_new_database(product)
            first = _start_batch(product)
            assert first["id"] == 1
            assert _wait(product, 1)["state"] == "done"
        assert r.exists(result_key), "arq keeps the result of the first database's batch 1"

        _restart_on_a_new_database(product)
        again = _start_batch(product)
        assert again["id"] == 1, "a new database numbers its batches from 1 again"
        batch = _wait(product, 1)
        assert batch["state"] == "done", (
            f"batch 1 of the new database is still {batch['state']} after {BATCH_TIMEOUT_S} s; Redis "
            f"still holds {result_key} (ttl {r.ttl(result_key)} s) from the dropped database, and arq "
            "refuses to queue a job whose id has a result"
        )
    finally:
        r.close()
