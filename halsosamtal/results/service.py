"""Posting, amending, retracting and reading health-talk results.

A result belongs to one invitation and is posted by the EHR adapter of the invitation's unit.
Its content is versioned: the same ``external_id`` with the same content is the stored result
(nothing written), with other content a new version (the earlier kept). Posting completes the
invitation and marks its booked appointment attended; retraction keeps everything, marks the
result retracted and reverses the completion. Every change appends a ``result_events`` row,
from which reimbursement is derived.

Rules where the issue leaves room, decided here:

- SCORE2 uses the age the resident turns in the programme year (the invitation's age): the
  programme's 40-year-olds are scored as 40 even when the talk is held weeks before their
  birthday. "Smoker" for SCORE2 is any current smoking (daily or not).
- A result may be posted for a planned, open, booked or attended invitation, and for an expired
  one when the talk was held before its last valid day (a late post). Not for a declined or
  withdrawn one (409 ``invitation-closed``).
- ``held_at`` may not be in the future (5 minutes' clock skew allowed) nor outside the
  programme year's first day .. the invitation's last valid day.
- Posting after a retraction completes the invitation again (``completed_again``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.access.schemas import Principal
from halsosamtal.booking import service as booking
from halsosamtal.core import clock
from halsosamtal.core.errors import Conflict, InvalidInput, NotFound
from halsosamtal.invitations import lifecycle, validity
from halsosamtal.invitations.lifecycle import InvitationClosed, InvitationNotFound, NoInvitation
from halsosamtal.residents.lookup import requested_personnummer
from halsosamtal.results import habits, ranges
from halsosamtal.results.models import Result, ResultVersion
from halsosamtal.results.schemas import (
    Derived,
    HabitFinding,
    PostedResult,
    ResultEventOut,
    ResultHistory,
    ResultIn,
    ResultOut,
    ResultVersionOut,
    Score2Out,
)
from halsosamtal.results.score2 import score2

CLOCK_SKEW = timedelta(minutes=5)
POSTABLE = ("planned", "open", "booked", "attended", "completed", "expired")

Change = Literal["created", "unchanged", "amended", "completed_again"]


class ResultNotFound(NotFound):
    code = "result-not-found"


class ResultExists(Conflict):
    code = "result-exists"


class ExternalIdInUse(Conflict):
    code = "external-id-in-use"


class ResultInvalid(InvalidInput):
    """Values that are well-formed but implausible: every offending field is named."""

    code = "implausible-values"
    title = "Implausible values"


# --- Derivation ---------------------------------------------------------------------------------


def canonical(body: ResultIn) -> dict[str, Any]:
    """The posted content in one canonical form: references left out, numbers normalised (140
    and 140.0 are the same reading), keys sorted when hashed."""
    content = body.model_dump(mode="python", exclude={"invitation_id", "appointment_id"})

    def norm(value: Any) -> Any:
        if isinstance(value, Decimal):
            return format(value.normalize(), "f")
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return [norm(v) for v in value]
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value

    normalised: dict[str, Any] = norm(content)
    normalised["held_at"] = body.held_at.isoformat()
    return normalised


def content_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def implausible(body: ResultIn) -> list[dict[str, str]]:
    """Every measurement outside its plausible range (and diastolic not below systolic)."""
    m = body.measurements
    values = {name: getattr(m, name) for name in ranges.PLAUSIBLE_RANGES}
    return [
        {
            "location": "body",
            "pointer": f"/measurements/{v.field}",
            "message": v.message,
            "type": "out_of_range" if v.field != "diastolic" or "below" not in v.message else "inconsistent",
        }
        for v in ranges.validate(values)
    ]


def derive(body: ResultIn, *, sex: str, age: int) -> Derived:
    """BMI, SCORE2 and the habit findings, under the current rule versions."""
    m, h = body.measurements, body.habits
    sex_word: habits.Sex = "male" if sex == "M" else "female"
    risk = score2(
        sex_word,
        age,
        m.systolic,
        m.total_cholesterol,
        m.hdl,
        h.tobacco.smoking in ("daily", "non_daily"),
        diabetes=m.known_diabetes,
        cardiovascular_disease=m.known_cvd,
    )
    return Derived(
        bmi=ranges.bmi(m.height, m.weight),
        score2=Score2Out(
            applies=risk.applicable,
            risk_percent=risk.risk_percent,
            category=risk.category,
            not_applicable=risk.not_applicable,
            explanation=risk.explanation,
            age_used=age,
        ),
        tobacco=HabitFinding(
            finding=habits.tobacco_finding(h.tobacco.smoking, h.tobacco.snus), action=h.tobacco.action
        ),
        alcohol=HabitFinding(
            finding=habits.alcohol_finding(sex_word, h.alcohol.audit_c), action=h.alcohol.action
        ),
        physical_activity=HabitFinding(
            finding=habits.physical_activity_finding(
                h.physical_activity.exercise_minutes, h.physical_activity.everyday_minutes
            ),
            action=h.physical_activity.action,
        ),
        activity_minutes=habits.activity_minutes(
            h.physical_activity.exercise_minutes, h.physical_activity.everyday_minutes
        ),
        diet=HabitFinding(finding=habits.diet_finding(h.diet.index), action=h.diet.action),
        score2_version=risk.version,
        habits_version=habits.HABITS_VERSION,
    )


# --- Posting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    invitation_id: int
    status: str
    care_unit_id: int
    hsa_id: str
    year: int
    age: int
    valid_until: date
    sex: str
    appointment_id: int | None


async def _target(session: AsyncSession, body: ResultIn, principal: Principal) -> _Target:
    """The invitation the result is for, locked, and the appointment it names; 403 unless the
    client is the EHR of the invitation's unit."""
    if body.appointment_id is not None:
        found = (
            await session.execute(
                text("SELECT invitation_id FROM appointments WHERE id = :id"), {"id": body.appointment_id}
            )
        ).scalar_one_or_none()
        if found is None:
            raise booking.AppointmentNotFound(f"no appointment {body.appointment_id}", field="appointment_id")
        invitation_id = int(found)
    else:
        assert body.invitation_id is not None
        invitation_id = body.invitation_id
    row = (
        await session.execute(
            text(
                "SELECT i.id, i.status, i.care_unit_id, u.hsa_id, i.year, i.age, i.valid_until, r.sex "
                "FROM invitations i JOIN care_units u ON u.id = i.care_unit_id "
                "JOIN residents r ON r.id = i.resident_id WHERE i.id = :id FOR UPDATE OF i"
            ),
            {"id": invitation_id},
        )
    ).first()
    if row is None or not principal.may_act_for(row.care_unit_id):
        # Another unit's invitation is answered as if it did not exist: an EHR adapter learns
        # neither that the resident was invited nor by which unit.
        raise InvitationNotFound(f"no invitation {invitation_id}", field="invitation_id")
    return _Target(
        row.id,
        row.status,
        row.care_unit_id,
        row.hsa_id,
        row.year,
        row.age,
        row.valid_until,
        row.sex,
        body.appointment_id,
    )


def _check_held_at(body: ResultIn, target: _Target) -> None:
    held = body.held_at
    if held > clock.now() + CLOCK_SKEW:
        raise InvalidInput("held_at is in the future", field="held_at")
    day = clock.local(held).date()
    if not validity.within(day, target.year, target.valid_until):
        raise InvalidInput(
            f"held_at ({day.isoformat()}) is outside the invitation's programme year "
            f"{validity.describe(target.year, target.valid_until)}",
            field="held_at",
        )


async def _event(
    session: AsyncSession, result_id: int, kind: str, version: int, *, actor: str, reason: str | None = None
) -> None:
    await session.execute(
        text(
            "INSERT INTO result_events (result_id, kind, version, actor, reason, at) "
            "VALUES (:id, :kind, :version, :actor, :reason, :now)"
        ),
        {
            "now": clock.now(),
            "id": result_id,
            "kind": kind,
            "version": version,
            "actor": actor,
            "reason": reason,
        },
    )


async def _add_version(
    session: AsyncSession,
    result_id: int,
    version: int,
    body: ResultIn,
    content: dict[str, Any],
    digest: str,
    derived: Derived,
    *,
    age: int,
    sex: str,
    appointment_id: int | None,
    actor: str,
) -> None:
    m = body.measurements
    session.add(
        ResultVersion(
            result_id=result_id,
            version=version,
            content_hash=digest,
            content=content,
            derived=derived.model_dump(mode="json"),
            appointment_id=appointment_id,
            held_at=body.held_at,
            practitioner_hsa_id=body.practitioner_hsa_id,
            sex=sex,
            age=age,
            systolic=m.systolic,
            diastolic=m.diastolic,
            height_cm=m.height,
            weight_kg=m.weight,
            waist_cm=m.waist,
            fasting_glucose=m.fasting_glucose,
            hba1c=m.hba1c,
            total_cholesterol=m.total_cholesterol,
            hdl=m.hdl,
            ldl=m.ldl,
            triglycerides=m.triglycerides,
            known_diabetes=m.known_diabetes,
            known_cvd=m.known_cvd,
            bmi=derived.bmi,
            score2_percent=derived.score2.risk_percent,
            score2_category=derived.score2.category,
            score2_not_applicable=derived.score2.not_applicable,
            tobacco_finding=derived.tobacco.finding,
            alcohol_finding=derived.alcohol.finding,
            physical_activity_finding=derived.physical_activity.finding,
            diet_finding=derived.diet.finding,
            tobacco_action=derived.tobacco.action,
            alcohol_action=derived.alcohol.action,
            physical_activity_action=derived.physical_activity.action,
            diet_action=derived.diet.action,
            referrals=list(body.referrals),
            score2_version=derived.score2_version,
            habits_version=derived.habits_version,
            recorded_by=actor,
            recorded_at=clock.now(),
        )
    )
    await session.flush()


async def _complete_invitation(
    session: AsyncSession, target: _Target, external_id: str, *, actor: str
) -> None:
    """The invitation is completed; its booked appointment (the one named, or the one booked)
    is marked attended; its remaining reminders are not sent."""
    appointment = (
        await session.execute(
            text(
                "SELECT a.id, a.slot_id, a.invitation_id, i.status AS invitation_status FROM appointments a "
                "JOIN invitations i ON i.id = a.invitation_id "
                "WHERE a.invitation_id = :id AND a.status = 'booked' FOR UPDATE OF a"
            ),
            {"id": target.invitation_id},
        )
    ).first()
    if appointment is not None:
        # Marked attended without moving the invitation to 'attended': it goes to 'completed'.
        await booking.mark(
            session,
            appointment,
            "attended",
            actor=actor,
            reason=f"the result {external_id} was posted",
            change_invitation=False,
        )
    await lifecycle.change_status(
        session,
        target.invitation_id,
        "booked" if appointment is not None else target.status,
        "completed",
        reason=f"result {external_id} posted",
        actor=actor,
    )
    await session.execute(
        text(
            "UPDATE messages SET status = 'cancelled' WHERE invitation_id = :id "
            "AND kind IN ('invitation', 'reminder', 'appointment_reminder') "
            "AND status IN ('planned', 'queued')"
        ),
        {"id": target.invitation_id},
    )


async def post(session: AsyncSession, body: ResultIn, principal: Principal) -> tuple[PostedResult, int]:
    """Store a posted result (see the module docstring); returns it with 201 or 200."""
    target = await _target(session, body, principal)
    problems = implausible(body)
    if problems:
        raise ResultInvalid("; ".join(p["message"] for p in problems), errors=problems)
    _check_held_at(body, target)
    by_external = (
        await session.execute(
            text(
                "SELECT id, invitation_id, status, current_version FROM results "
                "WHERE care_unit_id = :unit AND external_id = :external FOR UPDATE"
            ),
            {"unit": target.care_unit_id, "external": body.external_id},
        )
    ).first()
    if by_external is not None and by_external.invitation_id != target.invitation_id:
        raise ExternalIdInUse(
            f"external_id {body.external_id!r} is the result of another invitation at this unit",
            field="external_id",
        )
    if by_external is None:
        other = (
            await session.execute(
                text("SELECT id, external_id FROM results WHERE invitation_id = :id"),
                {"id": target.invitation_id},
            )
        ).first()
        if other is not None:
            raise ResultExists(
                f"the invitation has a result already, external_id {other.external_id!r}; post to that "
                "external_id to amend it",
                result_id=other.id,
            )
    if target.status not in POSTABLE:
        raise InvitationClosed(
            f"the invitation is {target.status}; a result cannot be posted for it",
            invitation_status=target.status,
        )
    content = canonical(body)
    digest = content_hash(content)
    derived = derive(body, sex=target.sex, age=target.age)
    actor = principal.name
    version_args = {
        "age": target.age,
        "sex": target.sex,
        "appointment_id": target.appointment_id,
        "actor": actor,
    }
    change: Change
    if by_external is None:
        result = Result(
            invitation_id=target.invitation_id,
            care_unit_id=target.care_unit_id,
            external_id=body.external_id,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(result)
        await session.flush()
        result_id = result.id
        await _add_version(session, result_id, 1, body, content, digest, derived, **version_args)  # type: ignore[arg-type]
        await _event(session, result_id, "completed", 1, actor=actor)
        await _complete_invitation(session, target, body.external_id, actor=actor)
        change = "created"
    else:
        result_id = by_external.id
        version = by_external.current_version
        current_hash = (
            await session.execute(
                text("SELECT content_hash FROM result_versions WHERE result_id = :id AND version = :v"),
                {"id": result_id, "v": version},
            )
        ).scalar_one()
        if current_hash != digest:
            version += 1
            await _add_version(session, result_id, version, body, content, digest, derived, **version_args)  # type: ignore[arg-type]
        if by_external.status == "retracted":
            await _event(
                session,
                result_id,
                "completed",
                version,
                actor=actor,
                reason="posted again after a retraction",
            )
            await _complete_invitation(session, target, body.external_id, actor=actor)
            change = "completed_again"
        elif version != by_external.current_version:
            await _event(session, result_id, "amended", version, actor=actor)
            change = "amended"
        else:
            change = "unchanged"
        if change != "unchanged":
            await session.execute(
                text(
                    "UPDATE results SET status = 'completed', current_version = :v, updated_at = :now "
                    "WHERE id = :id"
                ),
                {"id": result_id, "v": version, "now": clock.now()},
            )
    out = await _read(session, result_id)
    status = 201 if change in ("created", "completed_again") else 200
    return PostedResult(**out.model_dump(), change=change), status


# --- Retraction ---------------------------------------------------------------------------------


async def retract(session: AsyncSession, result_id: int, principal: Principal, *, reason: str) -> ResultOut:
    """Mark a result retracted (entered in error): the record and its versions are kept, and the
    invitation is no longer completed: booked again when the result had marked a time that has
    not come yet (the time is the resident's again), attended when the resident came to a booked
    time, else open (planned when its letter never went out). Retracting twice answers the same."""
    invitation_id = (
        await session.execute(text("SELECT invitation_id FROM results WHERE id = :id"), {"id": result_id})
    ).scalar_one_or_none()
    if invitation_id is None:
        raise ResultNotFound(f"no result {result_id}")
    # The invitation first, as every change of an invitation's booking or result locks them.
    await session.execute(text("SELECT 1 FROM invitations WHERE id = :id FOR UPDATE"), {"id": invitation_id})
    row = (
        await session.execute(
            text(
                "SELECT r.id, r.status, r.current_version, r.invitation_id, r.care_unit_id, u.hsa_id "
                "FROM results r JOIN care_units u ON u.id = r.care_unit_id WHERE r.id = :id FOR UPDATE OF r"
            ),
            {"id": result_id},
        )
    ).one()
    if not principal.may_act_for(row.care_unit_id):
        raise ResultNotFound(f"no result {result_id}")  # another unit's: as if it did not exist
    if row.status == "completed":
        await session.execute(
            text("UPDATE results SET status = 'retracted', updated_at = :now WHERE id = :id"),
            {"id": result_id, "now": clock.now()},
        )
        await _event(
            session, result_id, "retracted", row.current_version, actor=principal.name, reason=reason
        )
        why = f"result retracted: {reason}"
        # A time the result marked attended but that has not come yet is the resident's again.
        if not await booking.restore_booking(session, row.invitation_id, reason=why, actor=principal.name):
            attended = (
                await session.execute(
                    text(
                        "SELECT 1 FROM appointments WHERE invitation_id = :id AND status = 'attended' LIMIT 1"
                    ),
                    {"id": row.invitation_id},
                )
            ).first()
            if attended is not None:
                await lifecycle.change_status(
                    session, row.invitation_id, "completed", "attended", reason=why, actor=principal.name
                )
            else:
                await booking.reopen_invitation(
                    session, row.invitation_id, reason=why, actor=principal.name, from_status="completed"
                )
    return await _read(session, result_id)


# --- Reading ------------------------------------------------------------------------------------

_READ = """
SELECT r.id, r.invitation_id, r.external_id, r.status, r.current_version, r.care_unit_id, u.hsa_id,
       v.appointment_id, v.held_at, v.practitioner_hsa_id, v.content, v.derived, v.recorded_at, v.recorded_by
FROM results r
JOIN care_units u ON u.id = r.care_unit_id
JOIN result_versions v ON v.result_id = r.id AND v.version = r.current_version
"""


def _out(row: Any) -> ResultOut:
    content = row.content
    return ResultOut(
        id=row.id,
        invitation_id=row.invitation_id,
        appointment_id=row.appointment_id,
        care_unit=row.hsa_id,
        external_id=row.external_id,
        status=row.status,
        version=row.current_version,
        held_at=clock.local(row.held_at),
        practitioner_hsa_id=row.practitioner_hsa_id,
        measurements=content["measurements"],
        habits=content["habits"],
        referrals=content["referrals"],
        health_curve=content.get("health_curve"),
        derived=Derived.model_validate(row.derived),
        recorded_at=row.recorded_at,
        recorded_by=row.recorded_by,
    )


async def _read(session: AsyncSession, result_id: int) -> ResultOut:
    row = (await session.execute(text(_READ + " WHERE r.id = :id"), {"id": result_id})).first()
    if row is None:
        raise ResultNotFound(f"no result {result_id}")
    return _out(row)


async def get(session: AsyncSession, result_id: int, principal: Principal) -> ResultOut:
    """A result's current version; the unit's own EHR clients and operators."""
    row = (await session.execute(text(_READ + " WHERE r.id = :id"), {"id": result_id})).first()
    if row is None or not principal.may_act_for(row.care_unit_id):
        raise ResultNotFound(f"no result {result_id}")  # another unit's: as if it did not exist
    return _out(row)


async def by_external_id(session: AsyncSession, unit_id: int, external_id: str) -> ResultOut:
    row = (
        await session.execute(
            text(_READ + " WHERE r.care_unit_id = :unit AND r.external_id = :external"),
            {"unit": unit_id, "external": external_id},
        )
    ).first()
    if row is None:
        # Not quoted back: an external id is the EHR's free text and may hold anything.
        raise ResultNotFound("the unit has no result with this external_id")
    return _out(row)


async def history(session: AsyncSession, result_id: int, principal: Principal) -> ResultHistory:
    """Every version (oldest first) and every event of a result."""
    current = await get(session, result_id, principal)
    versions = await session.execute(
        text(
            "SELECT version, recorded_at, recorded_by, content, derived FROM result_versions "
            "WHERE result_id = :id ORDER BY version"
        ),
        {"id": result_id},
    )
    events = await session.execute(
        text("SELECT kind, version, at, actor, reason FROM result_events WHERE result_id = :id ORDER BY id"),
        {"id": result_id},
    )
    return ResultHistory(
        result_id=result_id,
        status=current.status,
        versions=[
            ResultVersionOut(
                version=v.version,
                recorded_at=v.recorded_at,
                recorded_by=v.recorded_by,
                held_at=clock.local(datetime.fromisoformat(v.content["held_at"])),
                practitioner_hsa_id=v.content["practitioner_hsa_id"],
                measurements=v.content["measurements"],
                habits=v.content["habits"],
                referrals=v.content["referrals"],
                health_curve=v.content.get("health_curve"),
                derived=Derived.model_validate(v.derived),
            )
            for v in versions
        ],
        events=[ResultEventOut(**e._mapping) for e in events],
    )


async def resident_result(
    session: AsyncSession, personnummer: str, invitation_id: int | None
) -> tuple[ResultOut, str]:
    """The resident's own completed result (the latest, or the invitation's) and the unit name."""
    sql = (
        _READ
        + " JOIN invitations i ON i.id = r.invitation_id JOIN residents p ON p.id = i.resident_id"
        + " WHERE p.personnummer = :pnr AND r.status = 'completed'"
        + (" AND r.invitation_id = :inv" if invitation_id is not None else "")
        + " ORDER BY v.held_at DESC LIMIT 1"
    )
    row = (
        await session.execute(text(sql), {"pnr": requested_personnummer(personnummer), "inv": invitation_id})
    ).first()
    if row is None:
        raise NoInvitation("the resident has no completed health talk with a result")
    unit = (
        await session.execute(text("SELECT name FROM care_units WHERE id = :id"), {"id": row.care_unit_id})
    ).scalar_one()
    return _out(row), cast(str, unit)


async def resident_ids(session: AsyncSession, result_ids: Iterable[int]) -> list[int]:
    """Whose results these are (resident ids), for the access log."""
    wanted = list(set(result_ids))
    if not wanted:
        return []
    rows = await session.execute(
        text(
            "SELECT DISTINCT i.resident_id FROM results r JOIN invitations i ON i.id = r.invitation_id "
            "WHERE r.id = ANY(CAST(:ids AS bigint[]))"
        ),
        {"ids": wanted},
    )
    return [int(r[0]) for r in rows]
