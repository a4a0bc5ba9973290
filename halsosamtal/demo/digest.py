"""A digest of a region's content by natural keys (personnummer, HSA-id, times), never by row
ids: two databases that a simulation with the same seed and day filled give the same digests,
whatever order concurrent writers drew their ids in."""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_PNR = "(SELECT personnummer FROM residents WHERE id = {0})"

QUERIES: dict[str, str] = {
    "residents": """
SELECT r.personnummer, u.hsa_id, r.municipality, r.deso, r.protected_identity, r.language,
       r.deceased_on, r.emigrated_on
FROM residents r LEFT JOIN care_units u ON u.id = r.care_unit_id""",
    "deso_cni": "SELECT deso, cni FROM deso_cni",
    "slots": """
SELECT u.hsa_id, s.starts_at, s.ends_at, s.resource, s.published_at, s.withdrawn_at,
       s.held_by IS NOT NULL
FROM slots s JOIN care_units u ON u.id = s.care_unit_id""",
    "invitations": f"""
SELECT {_PNR.format("i.resident_id")}, i.year, i.age, u.hsa_id, i.status, i.planned_send_on,
       i.sent_at, i.reminders_sent, i.last_message_at, i.valid_until, i.created_at, i.updated_at
FROM invitations i JOIN care_units u ON u.id = i.care_unit_id""",
    "invitation_events": f"""
SELECT {_PNR.format("i.resident_id")}, i.age, e.from_status, e.to_status, e.at, e.reason, e.actor
FROM invitation_events e JOIN invitations i ON i.id = e.invitation_id""",
    "messages": f"""
SELECT {_PNR.format("m.resident_id")}, m.kind, m.sequence, m.status, m.send_on, m.channel,
       m.language, m.queued_at, m.sent_at, m.created_at, m.appointment_at, m.subject, md5(m.body)
FROM messages m""",
    "appointments": f"""
SELECT {_PNR.format("i.resident_id")}, s.starts_at, s.resource, a.status, a.booked_at, a.updated_at,
       a.booked_by
FROM appointments a JOIN invitations i ON i.id = a.invitation_id JOIN slots s ON s.id = a.slot_id""",
    "appointment_events": f"""
SELECT {_PNR.format("i.resident_id")}, e.from_status, e.to_status, s.starts_at, e.at, e.reason, e.actor
FROM appointment_events e JOIN appointments a ON a.id = e.appointment_id
JOIN invitations i ON i.id = a.invitation_id JOIN slots s ON s.id = e.slot_id""",
    "results": f"""
SELECT {_PNR.format("i.resident_id")}, r.external_id, r.status, r.current_version, r.created_at,
       r.updated_at
FROM results r JOIN invitations i ON i.id = r.invitation_id""",
    "result_versions": """
SELECT r.external_id, v.version, v.content_hash, v.derived::text, v.held_at, v.recorded_at,
       v.score2_percent, v.bmi
FROM result_versions v JOIN results r ON r.id = v.result_id""",
    "result_events": """
SELECT r.external_id, e.kind, e.version, e.at, e.actor, e.reason
FROM result_events e JOIN results r ON r.id = e.result_id""",
    "reimbursement_closings": (
        "SELECT month, closed_at, closed_by, lines, total, digest FROM reimbursement_closings"
    ),
}


async def content_digests(session: AsyncSession) -> dict[str, str]:
    """sha256 of each table's rows (by natural keys, sorted), with its row count."""
    out: dict[str, str] = {}
    for table, query in QUERIES.items():
        rows = sorted(repr(tuple(row)) for row in await session.execute(text(query)))
        digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        out[table] = f"{len(rows)} rows {digest[:16]}"
    return out
