"""One vocabulary: every operation names a concept the same way.

Integrators write an adapter once against the OpenAPI document. A filter or field named one way
in one operation and another way in the next is how a client ends up sending a filter the API
ignores (`?unit=` once returned every unit's residents). These checks walk the document the app
serves and fail when two operations name the same concept differently.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from services.api.openapi import document as served_document

# Each concept has one name; the others are synonyms someone might reach for. A synonym found
# anywhere (a parameter or a property of any schema) is a second name for the concept.
CONCEPTS: dict[str, set[str]] = {
    "care_unit": {
        "unit",
        "unit_hsa_id",
        "care_unit_hsa_id",
        "care_unit_id",
        "unit_id",
        "hsa",
        "centre",
        "center",
        "clinic",
        "vardcentral",
    },
    "invitation_id": {"invitation", "invite_id", "invitationid"},
    "appointment_id": {"booking_id", "booking"},
    "personnummer": {"pnr", "personal_number", "personal_identity_number", "person_number", "ssn", "pin"},
    "status": {"state", "lifecycle"},
    "first_day": {"from_day", "start_day", "from_date", "start_date", "date_from"},
    "last_day": {"to_day", "end_day", "to_date", "end_date", "date_to"},
    "limit": {"page_size", "per_page", "size", "count_per_page"},
    "cursor": {"page_token", "after", "offset", "page"},
    "next_cursor": {"next_page", "next_page_token", "next"},
    "year": {"programme_year_id", "yr"},
    "reason": {"why", "cause", "comment"},
}

# Where a synonym is the right word for something else, it is allowed by (schema or operation, name).
ALLOWED: set[tuple[str, str]] = {
    # The resident's own invitation, as an object, in the portal's answer.
    ("ResidentInvitation", "appointment"),
}

# A care unit's own identifier is its HSA-id, in its own schema and in its own URL.
HSA_ID_HOMES = {"CareUnitOut"}


def _walk_schema(schema: Any, where: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    if not isinstance(schema, dict):
        return
    for name, prop in (schema.get("properties") or {}).items():
        yield where, name, prop
    for key in ("items", "additionalProperties"):
        yield from _walk_schema(schema.get(key), where)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or []:
            yield from _walk_schema(sub, where)


def names(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, name, schema) for every parameter and every property in the document."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            op = operation.get("operationId", f"{method.upper()} {path}")
            for parameter in operation.get("parameters", []):
                if parameter["in"] in ("query", "path"):
                    yield f"{op} ({parameter['in']})", parameter["name"], parameter.get("schema", {})
    for schema_name, schema in document["components"]["schemas"].items():
        yield from _walk_schema(schema, schema_name)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return served_document()


def test_each_concept_has_one_name(document: dict[str, Any]) -> None:
    synonyms = {alias: concept for concept, aliases in CONCEPTS.items() for alias in aliases}
    found: dict[str, set[str]] = defaultdict(set)
    for where, name, _ in names(document):
        concept = synonyms.get(name.lower())
        if concept is not None and (where, name) not in ALLOWED:
            found[f"{name!r} (say {concept!r})"].add(where)
    assert not found, "second names for a concept: " + "; ".join(
        f"{name} in {sorted(places)}" for name, places in sorted(found.items())
    )


def test_a_care_unit_is_referred_to_as_care_unit(document: dict[str, Any]) -> None:
    """`hsa_id` is a unit's own identifier, in its schema and its URL; everything that points
    at a unit says `care_unit`."""
    strays = sorted(
        where
        for where, name, _ in names(document)
        if name == "hsa_id" and where not in HSA_ID_HOMES and not where.endswith("(path)")
    )
    assert not strays, f"hsa_id used for a reference to a care unit in {strays}; say care_unit"
    for path in document["paths"]:
        assert "{hsa_id}" not in path or path.startswith("/v1/care-units/{hsa_id}"), path


def test_one_spelling_per_name(document: dict[str, Any]) -> None:
    """`bookedAt` beside `booked_at`, or `care-unit` beside `care_unit`, is one name spelled twice."""
    spellings: dict[str, set[str]] = defaultdict(set)
    for _, name, _ in names(document):
        spellings[re.sub(r"[^a-z0-9]", "", name.lower())].add(name)
    twice = {key: sorted(found) for key, found in spellings.items() if len(found) > 1}
    assert not twice, f"one name spelled several ways: {twice}"


def _format(schema: dict[str, Any]) -> str | None:
    if "format" in schema:
        return str(schema["format"])
    for sub in schema.get("anyOf") or []:
        if isinstance(sub, dict) and "format" in sub:
            return str(sub["format"])
    return None


def test_moments_and_days_are_named_apart(document: dict[str, Any]) -> None:
    """A moment (date-time) is `..._at` (or `at`, `since`, `until`); a day (date) never is, so
    a reader knows from the name which one a field holds."""
    wrong = []
    for where, name, schema in names(document):
        kind = _format(schema)
        if kind == "date-time" and not (name == "at" or name.endswith("_at") or name in ("since", "until")):
            wrong.append(f"{where}.{name} is a moment but not named ..._at")
        if kind == "date" and name.endswith("_at"):
            wrong.append(f"{where}.{name} is a day but named ..._at")
    assert not wrong, wrong


def test_personnummer_has_one_form_in_every_answer(document: dict[str, Any]) -> None:
    """Every `personnummer` in a response is described the same way (YYYYMMDD-NNNC)."""
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        prop = (schema.get("properties") or {}).get("personnummer")
        if prop is None or "properties" not in schema or name.endswith(("Request", "Search", "Lookup", "In")):
            continue
        assert "YYYYMMDD-NNNC" in prop.get("description", ""), f"{name}.personnummer does not say its form"


def test_every_amount_names_its_currency(document: dict[str, Any]) -> None:
    """A schema that carries money carries `currency` too, and amounts are numbers."""
    money = {"amount", "unit_amount", "talk_rate", "start_grant"}
    for name, schema in document["components"]["schemas"].items():
        props = schema.get("properties") or {}
        carried = money & set(props)
        if not carried or name in ("ProgrammeRules",):  # the request: always SEK, said in its fields
            continue
        assert "currency" in props, f"{name} has {sorted(carried)} but no currency"
        for field in carried:
            assert props[field].get("type") == "number", f"{name}.{field} is not a number"
