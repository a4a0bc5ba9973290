"""Residents: lookup by personnummer (the register import is in ``halsosamtal.register``)."""

from __future__ import annotations

from fastapi import APIRouter

from halsosamtal.access.dependencies import Operator
from halsosamtal.audit.dependencies import Audit
from halsosamtal.core.http import Session, problem_responses
from halsosamtal.residents.lookup import ResidentLookup, ResidentOut, lookup, residents_by_personnummer

router = APIRouter(tags=["residents"])


@router.post(
    "/residents/lookup",
    operation_id="lookup_resident",
    response_model=ResidentOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def lookup_resident(
    body: ResidentLookup, session: Session, principal: Operator, audit: Audit
) -> ResidentOut:
    """One resident and their listing history, found by personnummer (sent in the body, so it
    never lands in a URL or an access log). The address of a resident with protected identity
    is never returned."""
    found = await lookup(session, body.personnummer)
    audit.add_query("read", residents_by_personnummer([body.personnummer]))
    return found
