"""The API's access logging: a route that touches residents' personal data takes ``Audit`` and
says whose data it read or changed; the events are written in the request's own transaction
when the handler returns (before the commit), or, when the request fails after naming a
resident, in a transaction of their own with the refusal as the outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request

from halsosamtal.audit.trail import ACTING_PERSON_PATTERN, PURPOSE_PATTERN, Trail, Who
from halsosamtal.core.context import current_request_id
from halsosamtal.core.database import session_scope
from halsosamtal.core.errors import DomainError
from halsosamtal.core.http import Session

ActingPerson = Annotated[
    str | None,
    Header(
        alias="X-Acting-Person",
        pattern=ACTING_PERSON_PATTERN.pattern,
        description="The person behind the call, for the access log: an EHR adapter sends the "
        "clinician's HSA-id (e.g. SE2321000131-P000000000042).",
    ),
]
AccessPurpose = Annotated[
    str | None,
    Header(
        alias="X-Access-Purpose",
        pattern=PURPOSE_PATTERN.pattern,
        description="Why the data is accessed, for the access log (e.g. `care`); by default the "
        "role's purpose: care (ehr), resident-self-service (portal), programme-administration (operator).",
    ),
]


def _who(request: Request, acting_person: str | None, purpose: str | None) -> Who:
    principal = getattr(request.state, "principal", None)
    role = getattr(principal, "role", "unknown")
    # A portal acts for the resident its verified token names (set by the portal's identity);
    # no header of the caller's can claim otherwise.
    verified = getattr(request.state, "acting_person", None)
    if role == "portal" and verified is not None:
        acting_person = verified
    elif role == "portal" and acting_person is None:
        acting_person = "resident"
    return Who(
        client_id=getattr(principal, "client_id", None),
        client_name=getattr(principal, "name", "unauthenticated"),
        role=role,
        acting_person=acting_person,
        purpose=purpose,
        request_id=current_request_id(),
    )


async def audit_trail(
    request: Request,
    session: Session,
    acting_person: ActingPerson = None,
    purpose: AccessPurpose = None,
) -> AsyncIterator[Trail]:
    route = request.scope.get("route")
    operation = getattr(route, "operation_id", None) or f"{request.method} {request.url.path}"
    trail = Trail(
        who=Who(client_id=None, client_name="", role=""),
        operation=operation,
        enabled=request.app.state.settings.audit_log,
    )
    try:
        yield trail
    except Exception as exc:
        if trail.pending and trail.enabled:
            trail.who = _who(request, acting_person, purpose)
            status = exc.status if isinstance(exc, DomainError) else 500
            async with session_scope(request.app.state.sessionmaker) as own:
                await trail.flush(own, outcome=f"refused {status}")
        raise
    trail.who = _who(request, acting_person, purpose)
    await trail.flush(session)


Audit = Annotated[Trail, Depends(audit_trail, scope="function")]
"""Whose personal data a route reads or changes: ``audit.add("read", resident_ids)``."""
