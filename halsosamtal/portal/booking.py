"""The patient portal's booking calls for the resident it acts for.

Identity: the resident is the one the portal's ``X-Resident-Token`` names (see
``halsosamtal.portal.identity``). Every call checks that the invitation or appointment is that
resident's: another resident's is a 404, as if it did not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from halsosamtal.access.dependencies import require
from halsosamtal.access.schemas import Principal
from halsosamtal.audit.dependencies import Audit
from halsosamtal.booking import service
from halsosamtal.booking.schemas import (
    AppointmentOut,
    BookRequest,
    FreeSlot,
    MoveRequest,
    PortalCancelRequest,
    SlotSearch,
)
from halsosamtal.core.http import MAX_ID, Page, Session, problem_responses
from halsosamtal.core.idempotency import IdempotencyKey, idempotent
from halsosamtal.portal.identity import Resident, on_behalf
from halsosamtal.residents.lookup import residents_by_personnummer

router = APIRouter(prefix="/portal", tags=["portal"])

Portal = Annotated[Principal, Depends(require("portal"))]
AppointmentId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.post(
    "/slots/search",
    operation_id="portal_search_slots",
    response_model=Page[FreeSlot],
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def search_slots(
    body: SlotSearch, session: Session, principal: Portal, audit: Audit, resident: Resident
) -> Page[FreeSlot]:
    """Free times the resident can book for their invitation: at the unit that invited them, at
    least the year's lead time from now (7 days by default, for lab samples), before the
    invitation's last valid day, within `first_day`..`last_day` when given; by time, paged.
    A read: it changes nothing, so it needs no Idempotency-Key."""
    who = resident.named(body.personnummer)
    page = await service.search_free(
        session,
        who,
        body.invitation_id,
        first_day=body.first_day,
        last_day=body.last_day,
        limit=body.limit,
        cursor=body.cursor,
    )
    audit.add_query("read", residents_by_personnummer([who]))
    return page


@router.post(
    "/bookings",
    operation_id="portal_book",
    status_code=201,
    response_model=AppointmentOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def book(
    body: BookRequest,
    request: Request,
    session: Session,
    principal: Portal,
    audit: Audit,
    resident: Resident,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Book a time for the resident's planned or open invitation. 409 `slot-taken` when
    someone else has it (exactly one of many racing requests wins), `already-booked` when the
    invitation has a time (move it instead), `invitation-closed`; 422 `slot-at-other-unit`,
    `slot-too-soon` (inside the lead time), `slot-before-valid-from` (before the programme year
    begins), `slot-after-valid-until`. A confirmation goes out,
    and a reminder before the time."""

    who = resident.named(body.personnummer)

    async def book() -> AppointmentOut:
        done = await service.book(session, who, body.invitation_id, body.slot_id, actor=principal.name)
        audit.add_query("create", residents_by_personnummer([who]))
        return done

    return await idempotent(
        session,
        request,
        principal.client_id,
        idempotency_key,
        on_behalf(body, who),
        book,
        status_code=201,
        locate=lambda appointment: f"/v1/appointments/{appointment['id']}",
    )


@router.post(
    "/bookings/{appointment_id}/move",
    operation_id="portal_move_booking",
    response_model=AppointmentOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def move_booking(
    appointment_id: AppointmentId,
    body: MoveRequest,
    request: Request,
    session: Session,
    principal: Portal,
    audit: Audit,
    resident: Resident,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Move the resident's booked time to another in one step: the new time is held and the old
    one free, or (409 `slot-taken`) nothing changed. Same rules as booking."""

    who = resident.named(body.personnummer)

    async def move() -> AppointmentOut:
        done = await service.move(
            session,
            who,
            appointment_id,
            body.slot_id,
            actor=principal.name,
            invitation_id=body.invitation_id,
        )
        audit.add_query("update", residents_by_personnummer([who]))
        return done

    return await idempotent(
        session, request, principal.client_id, idempotency_key, on_behalf(body, who), move
    )


@router.post(
    "/bookings/{appointment_id}/cancel",
    operation_id="portal_cancel_booking",
    response_model=AppointmentOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def cancel_booking(
    appointment_id: AppointmentId,
    body: PortalCancelRequest,
    request: Request,
    session: Session,
    principal: Portal,
    audit: Audit,
    resident: Resident,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Cancel the resident's time: it is free at once, the invitation is open again, and a
    cancellation confirmation goes out."""

    who = resident.named(body.personnummer)

    async def cancel() -> AppointmentOut:
        done = await service.cancel_by_resident(
            session, who, appointment_id, actor=principal.name, invitation_id=body.invitation_id
        )
        audit.add_query("update", residents_by_personnummer([who]))
        return done

    return await idempotent(
        session, request, principal.client_id, idempotency_key, on_behalf(body, who), cancel
    )
