"""The resident's own access log: who has accessed their data, and when (patientdatalagen gives
a patient the right to be told). Reading it is itself recorded."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from halsosamtal.access.dependencies import require
from halsosamtal.access.schemas import Principal
from halsosamtal.audit.dependencies import Audit
from halsosamtal.audit.service import ResidentAccess, resident_log
from halsosamtal.core.http import Session, problem_responses
from halsosamtal.portal.identity import Resident
from halsosamtal.residents.lookup import ResidentNamed, ids_by_personnummer

router = APIRouter(prefix="/portal", tags=["portal"])

Portal = Annotated[Principal, Depends(require("portal"))]


class ResidentAccessLog(BaseModel):
    accesses: list[ResidentAccess] = Field(description="Newest first (at most the latest 500)")


@router.post(
    "/access-log",
    operation_id="portal_get_access_log",
    response_model=ResidentAccessLog,
    responses=problem_responses(401, 403, 422),
)
async def get_access_log(
    body: ResidentNamed, session: Session, principal: Portal, audit: Audit, resident: Resident
) -> ResidentAccessLog:
    """Who has accessed the resident's data and when: the care unit's system or the portal or an
    operator, the person behind it where one is named, what and why. A resident with no record
    in the register gets an empty list. Only the resident `X-Resident-Token` names: a
    personnummer in the body that is someone else's is a 403. Reading the log is itself recorded."""
    ids = await ids_by_personnummer(session, [resident.named(body.personnummer)])
    accesses = await resident_log(session, ids[0]) if ids else []
    audit.add("read", ids)
    return ResidentAccessLog(accesses=accesses)
