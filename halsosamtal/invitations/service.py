"""Operators' view of invitations and batches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.core.errors import NotFound
from halsosamtal.core.http import Page, decode_id_cursor, encode_id_cursor
from halsosamtal.invitations import batch
from halsosamtal.invitations.models import INVITATION_STATUSES, BatchRun, Invitation
from halsosamtal.invitations.schemas import BatchOut, InvitationOut, PlanLine, PlanOut
from halsosamtal.residents.models import Resident
from halsosamtal.residents.personnummer import format_long
from halsosamtal.units.models import CareUnit


async def plan_out(session: AsyncSession, year: int, as_of: dt.date) -> PlanOut:
    the_plan = await batch.plan(session, year, as_of)
    return PlanOut(
        year=year,
        as_of=as_of,
        expected_uptake=the_plan.expected_uptake,
        total=the_plan.total,
        lines=[
            PlanLine(
                care_unit=ln.hsa_id,
                name=ln.name,
                month=ln.month,
                invitations=ln.invitations,
                already_planned=ln.already_planned,
                expected_bookings=ln.expected_bookings,
                capacity=ln.capacity,
                over_capacity=ln.over_capacity,
            )
            for ln in the_plan.lines
        ],
    )


async def get_batch(session: AsyncSession, batch_id: int) -> BatchOut:
    row = await session.get(BatchRun, batch_id)
    if row is None:
        raise NotFound(f"no batch run {batch_id}")
    return BatchOut.model_validate(row, from_attributes=True)


async def list_batches(session: AsyncSession, year: int | None) -> list[BatchOut]:
    query = select(BatchRun).order_by(BatchRun.id.desc()).limit(100)
    if year is not None:
        query = query.where(BatchRun.year == year)
    return [BatchOut.model_validate(r, from_attributes=True) for r in await session.scalars(query)]


async def list_invitations(
    session: AsyncSession,
    *,
    year: int | None,
    care_unit: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> Page[InvitationOut]:
    query: Any = (
        select(Invitation, Resident.personnummer, CareUnit.hsa_id)
        .join(Resident, Resident.id == Invitation.resident_id)
        .join(CareUnit, CareUnit.id == Invitation.care_unit_id)
        .order_by(Invitation.id)
        .limit(limit + 1)
    )
    if year is not None:
        query = query.where(Invitation.year == year)
    if care_unit is not None:
        query = query.where(CareUnit.hsa_id == care_unit)
    if status is not None:
        assert status in INVITATION_STATUSES
        query = query.where(Invitation.status == status)
    if (after := decode_id_cursor(cursor)) is not None:
        query = query.where(Invitation.id > after)
    rows = (await session.execute(query)).all()
    items = [
        InvitationOut(
            id=inv.id,
            year=inv.year,
            age=inv.age,
            personnummer=format_long(pnr),
            care_unit=hsa,
            status=inv.status,
            planned_send_on=inv.planned_send_on,
            sent_at=inv.sent_at,
            reminders_sent=inv.reminders_sent,
            valid_until=inv.valid_until,
        )
        for inv, pnr, hsa in rows[:limit]
    ]
    return Page[InvitationOut](
        items=items, next_cursor=encode_id_cursor(rows[limit - 1][0].id) if len(rows) > limit else None
    )


async def resident_ids(session: AsyncSession, invitation_ids: Iterable[int]) -> list[int]:
    """Whose invitations these are (resident ids), for the access log."""
    wanted = list(set(invitation_ids))
    if not wanted:
        return []
    rows = await session.scalars(select(Invitation.resident_id).where(Invitation.id.in_(wanted)).distinct())
    return list(rows)


async def unfinished_batches(session: AsyncSession) -> list[BatchOut]:
    """Batch runs waiting for the worker or being run, oldest first: what monitoring follows."""
    query = select(BatchRun).where(BatchRun.state.in_(("queued", "running"))).order_by(BatchRun.id)
    return [BatchOut.model_validate(r, from_attributes=True) for r in await session.scalars(query)]
