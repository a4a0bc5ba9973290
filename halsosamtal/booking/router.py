"""The centre's side of booking: publish and withdraw times, see who is coming, cancel a time,
record attendance. For the unit's own EHR adapter (an ``ehr`` client bound to it) and operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from halsosamtal.audit.dependencies import Audit
from halsosamtal.booking import service, slots
from halsosamtal.booking.schemas import (
    AppointmentDetail,
    AppointmentStatus,
    AttendanceRequest,
    CentreAppointmentOut,
    CentreCancelRequest,
    PublishResult,
    SlotOut,
    SlotsPublish,
    SlotState,
    WeeklyTemplate,
)
from halsosamtal.core.http import MAX_ID, Page, ServiceDay, Session, TimeCursorQuery, problem_responses
from halsosamtal.core.idempotency import IdempotencyKey, idempotent
from halsosamtal.invitations import service as invitations
from halsosamtal.units.access import ActingUnit, HsaId, OperatorOrEhr

router = APIRouter(tags=["booking (care units)"])

SlotId = Annotated[int, Path(ge=1, le=MAX_ID)]
AppointmentId = Annotated[int, Path(ge=1, le=MAX_ID)]
FirstDay = Annotated[ServiceDay, Query(description="First day (Swedish local), inclusive")]
LastDay = Annotated[ServiceDay, Query(description="Last day (Swedish local), inclusive")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = TimeCursorQuery


@router.post(
    "/care-units/{hsa_id}/slots",
    operation_id="publish_slots",
    response_model=PublishResult,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def publish_slots(
    hsa_id: HsaId,
    unit: ActingUnit,
    body: SlotsPublish,
    request: Request,
    session: Session,
    principal: OperatorOrEhr,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Publish explicit bookable times (aware timestamps). A time already published is left as
    it is; a withdrawn one is published again; 409 `slot-overlaps` names a time that overlaps
    another of the same resource, and nothing is published."""
    return await idempotent(
        session,
        request,
        principal.client_id,
        idempotency_key,
        body,
        lambda: slots.publish_slots(session, unit.id, body.slots, actor=principal.name),
    )


@router.post(
    "/care-units/{hsa_id}/slots/template",
    operation_id="publish_slot_template",
    response_model=PublishResult,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def publish_slot_template(
    hsa_id: HsaId,
    unit: ActingUnit,
    body: WeeklyTemplate,
    request: Request,
    session: Session,
    principal: OperatorOrEhr,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Publish the times of a weekly template (e.g. Tuesdays and Thursdays 08:00-12:00, 45
    minutes) over a date range, skipping Swedish public holidays and Midsummer, Christmas and
    New Year's Eve; the skipped days are listed. Sending the same template again changes nothing."""
    return await idempotent(
        session,
        request,
        principal.client_id,
        idempotency_key,
        body,
        lambda: slots.publish_template(session, unit.id, body, actor=principal.name),
    )


@router.get(
    "/care-units/{hsa_id}/slots",
    operation_id="list_slots",
    response_model=Page[SlotOut],
    responses=problem_responses(401, 403, 404, 422),
)
async def list_slots(
    hsa_id: HsaId,
    unit: ActingUnit,
    session: Session,
    principal: OperatorOrEhr,
    first_day: FirstDay,
    last_day: LastDay,
    status: Annotated[SlotState | None, Query(description="Only free, booked or withdrawn times")] = None,
    limit: Limit = 200,
    cursor: Cursor = None,
) -> Page[SlotOut]:
    """The unit's times in a range of days, by start, in Swedish local time."""
    return await slots.list_slots(
        session, unit.id, first_day=first_day, last_day=last_day, state=status, limit=limit, cursor=cursor
    )


@router.get(
    "/care-units/{hsa_id}/slots/{slot_id}",
    operation_id="get_slot",
    response_model=SlotOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_slot(
    hsa_id: HsaId, slot_id: SlotId, unit: ActingUnit, session: Session, principal: OperatorOrEhr
) -> SlotOut:
    """One time of the unit."""
    return await slots.get_slot(session, unit.id, slot_id)


@router.delete(
    "/care-units/{hsa_id}/slots/{slot_id}",
    operation_id="withdraw_slot",
    response_model=SlotOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def withdraw_slot(
    hsa_id: HsaId, slot_id: SlotId, unit: ActingUnit, session: Session, principal: OperatorOrEhr
) -> SlotOut:
    """Withdraw an unbooked time; it is kept, marked withdrawn. 409 `slot-booked` while an
    appointment holds it: cancel the appointment first (`cancel_appointment`), which tells the
    resident. Withdrawing twice answers the same."""
    return await slots.withdraw_slot(session, unit.id, slot_id, actor=principal.name)


@router.get(
    "/care-units/{hsa_id}/appointments",
    operation_id="list_unit_appointments",
    response_model=Page[CentreAppointmentOut],
    responses=problem_responses(401, 403, 404, 422),
)
async def list_unit_appointments(
    hsa_id: HsaId,
    unit: ActingUnit,
    session: Session,
    principal: OperatorOrEhr,
    audit: Audit,
    first_day: FirstDay,
    last_day: LastDay,
    status: Annotated[AppointmentStatus | None, Query()] = None,
    limit: Limit = 200,
    cursor: Cursor = None,
) -> Page[CentreAppointmentOut]:
    """Who is coming: the unit's appointments with a time in the range, by time. Each resident
    shown is recorded in the access log."""
    page = await service.list_for_unit(
        session, unit.id, first_day=first_day, last_day=last_day, status=status, limit=limit, cursor=cursor
    )
    audit.add("read", await invitations.resident_ids(session, (a.invitation_id for a in page.items)))
    return page


@router.get(
    "/appointments/{appointment_id}",
    operation_id="get_appointment",
    response_model=AppointmentDetail,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_appointment(
    appointment_id: AppointmentId, session: Session, principal: OperatorOrEhr, audit: Audit
) -> AppointmentDetail:
    """An appointment with its append-only status history (from, to, when, by which client)."""
    found = await service.centre_view(session, appointment_id, principal)
    audit.add("read", await invitations.resident_ids(session, [found.invitation_id]))
    return found


@router.post(
    "/appointments/{appointment_id}/cancel",
    operation_id="cancel_appointment",
    response_model=AppointmentDetail,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def cancel_appointment(
    appointment_id: AppointmentId,
    body: CentreCancelRequest,
    request: Request,
    session: Session,
    principal: OperatorOrEhr,
    audit: Audit,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The unit cancels a booked time: the time is free, the resident gets a cancellation
    message and may book again. Cancelling a cancelled appointment answers the same."""

    async def cancel() -> AppointmentDetail:
        done = await service.cancel_by_centre(session, appointment_id, principal, reason=body.reason)
        audit.add("update", await invitations.resident_ids(session, [done.invitation_id]))
        return done

    return await idempotent(session, request, principal.client_id, idempotency_key, body, cancel)


@router.post(
    "/appointments/{appointment_id}/attendance",
    operation_id="record_attendance",
    response_model=AppointmentDetail,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def record_attendance(
    appointment_id: AppointmentId,
    body: AttendanceRequest,
    request: Request,
    session: Session,
    principal: OperatorOrEhr,
    audit: Audit,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Mark a booked appointment `attended` or `no_show`. A no-show re-opens the invitation so
    the resident can book again, and stays counted as a no-show. The same outcome again answers
    the same; another outcome is a 409 `attendance-recorded`."""

    async def record() -> AppointmentDetail:
        done = await service.record_attendance(session, appointment_id, body.outcome, principal)
        audit.add("update", await invitations.resident_ids(session, [done.invitation_id]))
        return done

    return await idempotent(session, request, principal.client_id, idempotency_key, body, record)
