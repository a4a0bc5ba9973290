"""Every API operation that reads or changes a resident's personal data writes access events:
its route takes the ``Audit`` dependency. An operation whose request or response carries a
personnummer or a resident id, or that is about a resident's results or bookings, without it
fails here, so a new route cannot forget the access log."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from halsosamtal.audit.dependencies import audit_trail
from services.api.app import create_app

# Personal data that the schemas do not show by a personnummer or resident id: a resident's
# health results and their bookings (named by invitation or appointment id).
ALSO_PERSONAL = {
    "post_result",
    "retract_result",
    "get_result",
    "get_result_history",
    "get_result_by_external_id",
    "get_invitation_history",
    "import_residents",
    "portal_get_access_log",
    "search_access_log",
}
# Operations whose schemas name residents but that write their events another way.
LOGGED_OTHERWISE = {"import_residents": "register.service.import_register records each changed resident"}


def _uses_audit(dependant: Dependant) -> bool:
    return any(d.call is audit_trail or _uses_audit(d) for d in dependant.dependencies)


def _personal_operations(document: dict[str, Any]) -> set[str]:
    schemas = document["components"]["schemas"]

    def personal(name: str, seen: set[str]) -> bool:
        if name in seen:
            return False
        seen.add(name)
        text = json.dumps(schemas.get(name, {}))
        if '"personnummer"' in text or '"resident_id"' in text:
            return True
        return any(personal(ref.split("/")[-1], seen) for ref in re.findall(r'"\$ref": "([^"]+)"', text))

    found = set()
    for path_item in document["paths"].values():
        for operation in path_item.values():
            refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(operation))
            if any(personal(r.split("/")[-1], set()) for r in refs):
                found.add(operation["operationId"])
    return found


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, also those of included routers (FastAPI keeps them behind a wrapper)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += _api_routes(route.original_router.routes)
    return found


def test_every_operation_on_personal_data_writes_access_events() -> None:
    app = create_app()
    routes = {r.operation_id: r for r in _api_routes(list(app.routes))}
    required = (_personal_operations(app.openapi()) | ALSO_PERSONAL) - set(LOGGED_OTHERWISE)
    assert required <= set(routes), sorted(required - set(routes))
    missing = sorted(op for op in required if not _uses_audit(routes[op].dependant))
    assert not missing, f"these operations touch personal data but take no Audit: {missing}"
    assert len(required) >= 20
