"""The demo region's year in progress as a newcomer meets it: ``halsosamtal demo-data
--simulate`` (the CLI, a subprocess) fills a database of its own, and the real API's reports on
it have data in every figure the HTML report draws."""

from __future__ import annotations

import json
import time

import httpx

from halsosamtal.core import infra
from halsosamtal.core.clock import local_today
from halsosamtal.demo.simulate import simulated_year
from tests.product.conftest import Product, free_port, new_database_name, run_async


def test_the_simulated_year_fills_the_reports_of_the_real_api(product: Product) -> None:
    database = new_database_name()
    env = {**product.env, "HALSOSAMTAL_DATABASE_NAME": database}
    for name in ("DATABASE_URL", "HALSOSAMTAL_DATABASE_URL"):
        if name in env:
            env[name] = infra.with_database(env[name], database)
    env["HALSOSAMTAL_DATA_DIR"] = str(product.tmp / "demo-data")
    url = infra.with_database(product.database_url, database)
    try:
        product.cli("migrate", env=env)
        started = time.monotonic()
        run = product.cli(
            "demo-data", "--simulate", "--residents", "5000", "--seed", "11", env=env, timeout=900
        )
        took = time.monotonic() - started
        assert "simulated programme year" in run.stdout, run.stdout
        assert "results retracted" in run.stdout
        assert "results amended" in run.stdout
        # Into a database that has a region already: refused in one line, nothing changed.
        again = product.cli("demo-data", "--simulate", "--residents", "5000", env=env, check=False)
        assert again.returncode == 1
        assert "empty database" in again.stderr

        key = json.loads(
            product.cli("clients", "create", "demo-reader", "--role", "operator", "--json", env=env).stdout
        )["key"]
        port = free_port()
        server = product.start("demo-api", "api", "--port", str(port), env=env)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/readyz", timeout=3).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.3)
            year = simulated_year(local_today())

            def report(name: str, **params: str) -> dict[str, object]:
                response = httpx.get(
                    f"{base}/v1/reports/{name}",
                    params={"year": str(year), **params},
                    headers=headers,
                    timeout=60,
                )
                assert response.status_code == 200, response.text
                body: dict[str, object] = response.json()
                return body

            participation = report("participation", group_by="sex")
            counts = participation["total"]["counts"]  # type: ignore[index]
            for figure in (
                "cohort",
                "invited",
                "reminded",
                "booked",
                "attended",
                "completed",
                "declined",
                "no_show",
            ):
                assert counts[figure]["value"], (figure, counts)
            assert counts["completed"]["value"] <= counts["attended"]["value"] <= counts["booked"]["value"]
            outcomes = report("outcomes")
            assert outcomes["total"]["completed"]["value"] > 0, outcomes["total"]  # type: ignore[index]
            statement = report("reimbursement")
            kinds = {line["kind"] for line in statement["lines"]}  # type: ignore[attr-defined]
            assert {"talk", "reversal"} <= kinds
            assert any(month["closed_at"] for month in statement["months"])  # type: ignore[attr-defined]
        finally:
            server.stop()
        print(f"demo-data --simulate, 5,000 residents: {took:.0f} s")  # noqa: T201 - shown with -s
    finally:
        run_async(lambda: infra.drop_database(url))
