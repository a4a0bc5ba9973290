"""Fuzzing the live API (issue 12 §4): schemathesis generates requests from the OpenAPI document
the running ``halsosamtal api`` process serves, for each role with its own key, and checks every
answer: no server error, a body that matches the documented schema, a documented status code and
a documented content type.

The service runs as users start it (``tests.product.conftest.running_product``: a throw-away
database, the API and the worker as subprocesses, real TCP), seeded through the API and the CLI
with the documented examples' care unit and programme year, residents with invitations, published
times and booked appointments, so that generated requests get past "not found" to the code
behind it.

Bounded: a role fuzzes only the operations its key may call (the document's security scopes),
each with at most ``HALSOSAMTAL_FUZZ_EXAMPLES`` valid and as many invalid generated cases (default
10), every case within a deadline; deterministic (the same cases every run, so CI does not
flip), unless ``HALSOSAMTAL_FUZZ_SEED`` names a seed to explore with.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from tests.product.conftest import Product, running_product
from tests.product.support import CARE_UNIT_COLUMNS, OPENAPI, RESIDENT_COLUMNS, personnummer, resident_row

YEAR = 2027  # the documented examples' programme year
UNIT = "SE2321000131-E000000000123"  # the documented examples' care unit
OTHER_UNIT = "SE2321000131-E000000000124"
EXAMPLE_RESIDENT = "19880320-0016"  # the documented examples' resident
ROLES = ("operator", "ehr", "portal")
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
EXAMPLES = int(os.environ.get("HALSOSAMTAL_FUZZ_EXAMPLES", "10"))
SEED = os.environ.get("HALSOSAMTAL_FUZZ_SEED")
DEADLINE = dt.timedelta(seconds=10)  # per case; generous, the machine is shared
REQUEST_TIMEOUT_S = 30


def operations_for(role: str) -> list[str]:
    """The operation ids a role's key may call, from the committed document's security scopes
    (operations without security, /healthz and /readyz, for every role)."""
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    return sorted(
        operation["operationId"]
        for methods in document["paths"].values()
        for operation in methods.values()
        if not operation.get("security")
        or any(role in scopes for requirement in operation["security"] for scopes in requirement.values())
    )


@dataclass
class Target:
    product: Product
    keys: dict[str, dict[str, str]]
    known: dict[str, Any]  # path parameter -> a value the seed made (a unit, a year, ids)


def seed(product: Product) -> dict[str, Any]:
    """The examples' unit and year, residents turning 40, 50 and 60 in it with planned
    invitations, a quarter's times at the unit and a few of them booked."""
    operator = product.operator
    csv_headers = {**operator, "Content-Type": "text/csv"}
    units = f"{CARE_UNIT_COLUMNS}\n{UNIT},Vårdcentralen Fuzz,1380,public,true,40\n"
    units += f"{OTHER_UNIT},Vårdcentralen Utanför,1380,private,false,10\n"
    _ok(product.api.post("/v1/care-units/import", content=units.encode(), headers=csv_headers))
    people = [EXAMPLE_RESIDENT] + [
        personnummer(dt.date(YEAR - age, 1 + serial % 12, 1 + serial), serial, sex="FM"[serial % 2])
        for age in (40, 50, 60)
        for serial in range(1, 9)
    ]
    rows = "\n".join(resident_row(p, UNIT) for p in people)
    _ok(
        product.api.post(
            "/v1/residents/import", content=f"{RESIDENT_COLUMNS}\n{rows}\n".encode(), headers=csv_headers
        )
    )
    rules = {"target_ages": [40, 50, 60], "talk_rate": "1000", "valid_until": f"{YEAR + 1}-03-31"}
    _ok(product.api.put(f"/v1/programme-years/{YEAR}", json=rules, headers=operator))
    product.cli("batch", "run", "--year", str(YEAR))
    ehr = product.key("fuzz-ehr", "ehr", UNIT)
    template = {
        "first_day": f"{YEAR}-01-04",
        "last_day": f"{YEAR}-03-31",
        "weekdays": ["mon", "tue", "wed", "thu", "fri"],
        "day_starts": "08:00",
        "day_ends": "12:00",
        "talk_minutes": 45,
    }
    _ok(product.api.post(f"/v1/care-units/{UNIT}/slots/template", json=template, headers=ehr))
    invitations = _ok(
        product.api.get("/v1/invitations", params={"year": YEAR, "limit": 100}, headers=operator)
    )["items"]
    slots = _ok(
        product.api.get(
            f"/v1/care-units/{UNIT}/slots",
            params={
                "first_day": template["first_day"],
                "last_day": template["last_day"],
                "status": "free",
                "limit": 20,
            },
            headers=ehr,
        )
    )["items"]
    portal = product.key("fuzz-portal", "portal")
    booked = []
    for invitation, slot in zip(invitations[:5], slots, strict=False):
        body = {
            "personnummer": invitation["personnummer"],
            "invitation_id": invitation["id"],
            "slot_id": slot["id"],
        }
        as_resident = {**portal, **product.resident_token(invitation["personnummer"])}
        booked.append(_ok(product.api.post("/v1/portal/bookings", json=body, headers=as_resident)))
    assert booked, "the seed made no bookings"
    assert len(slots) > len(booked), "the seed left no free times"
    return {
        "hsa_id": UNIT,
        "year": YEAR,
        "invitation_id": invitations[-1]["id"],
        "personnummer": invitations[-1]["personnummer"],
        "slot_id": slots[-1]["id"],
        "appointment_id": booked[0]["id"],
    }


def _ok(response: Any) -> Any:
    assert response.status_code < 300, (
        f"seeding: {response.request.method} {response.request.url}: {response.status_code} {response.text}"
    )
    return response.json()


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with running_product() as product:
        known = seed(product)
        keys = {
            "operator": product.operator,
            "ehr": product.key("fuzz-ehr", "ehr", UNIT),
            # A portal speaks for the resident its token names: the seeded invitation's.
            "portal": {
                **product.key("fuzz-portal", "portal"),
                **product.resident_token(known["personnummer"]),
            },
        }
        yield Target(product, keys, known)


@pytest.fixture(scope="module")
def api_schema(target: Target) -> Any:
    """The document the running API serves."""
    config = schemathesis.config.SchemathesisConfig.from_dict({"request-timeout": REQUEST_TIMEOUT_S})
    return schemathesis.openapi.from_url(f"{target.product.base_url}/openapi.json", config=config)


def cases(operation: Any, mode: GenerationMode, headers: dict[str, str], known: dict[str, Any]) -> Any:
    """The operation's generated cases, with the role's key; valid ones also with the seed's
    unit, year and ids in the path (else nearly every case is a 404) and the documented examples."""
    strategies = [operation.as_strategy(generation_mode=mode, headers=headers)]
    if mode is GenerationMode.POSITIVE:
        path = {p.name for p in operation.iter_parameters() if p.location.value == "path"}
        pinned = {name: value for name, value in known.items() if name in path}
        if pinned:
            strategies.append(
                operation.as_strategy(generation_mode=mode, headers=headers, path_parameters=pinned)
            )
        strategies += operation.get_strategies_from_examples()
    return st.one_of(strategies)


def fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    headers: dict[str, str],
    known: dict[str, Any],
    statuses: Counter[int],
) -> None:
    """Generated cases of one operation, each sent to the API and its answer checked; raises the
    first failure hypothesis keeps (shrunk, with the request to reproduce it)."""

    @hypothesis.given(case=cases(operation, mode, headers, known))
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=DEADLINE,
        derandomize=SEED is None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(headers=headers, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)
        statuses[response.status_code] += 1

    if SEED is not None:
        run = hypothesis.seed(int(SEED))(run)
    run()


@pytest.mark.parametrize("role", ROLES)
def test_every_route_a_role_may_call_answers_as_documented_to_generated_requests(
    role: str, target: Target, api_schema: Any
) -> None:
    """Valid requests (and, fewer, invalid ones) for every operation the role's key may call:
    no 5xx, and status, content type and body as the document says."""
    failures = []
    operations = [r.ok() for r in api_schema.include(operation_id=operations_for(role)).get_all_operations()]
    assert len(operations) == len(operations_for(role)), "the served document lacks operations"
    answered: dict[str, Counter[int]] = {}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            statuses = answered.setdefault(f"{operation.label} ({mode.value})", Counter())
            try:
                fuzz_operation(operation, mode, target.keys[role], target.known, statuses)
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing to make invalid: an operation without parameters or body (negative)
            except (Exception, FailureGroup) as exc:  # every operation's failure, reported together
                failures.append(f"--- {operation.label} ({mode.value}, as {role}):\n{exc}")
    # What the cases got (shown with -s, and with a failure): how many got past 404 to the code.
    for label, statuses in answered.items():
        summary = ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items()))
        print(f"{role:8} {label}: {summary}")  # noqa: T201 - the fuzz's summary, shown with -s
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
