"""Every ORM model, imported once so that Alembic and the tests see the whole schema."""

from halsosamtal.access.models import ApiClient, ApiClientCareUnit
from halsosamtal.audit.models import AccessEvent, AuditArchive
from halsosamtal.booking.models import Appointment, AppointmentEvent, Slot
from halsosamtal.core.database import Base
from halsosamtal.core.idempotency import IdempotencyRecord
from halsosamtal.core.imports import RegisterImport
from halsosamtal.invitations.models import BatchRun, Invitation, InvitationEvent
from halsosamtal.messaging.models import DeliveryAttempt, Message
from halsosamtal.programmes.models import ProgrammeYear, ProgrammeYearRevision
from halsosamtal.reports.models import DesoCni, ReimbursementClosing
from halsosamtal.residents.models import ListingPeriod, Resident
from halsosamtal.results.models import Result, ResultEvent, ResultVersion
from halsosamtal.units.models import CareUnit

__all__ = [
    "AccessEvent",
    "ApiClient",
    "ApiClientCareUnit",
    "Appointment",
    "AppointmentEvent",
    "AuditArchive",
    "Base",
    "BatchRun",
    "CareUnit",
    "DeliveryAttempt",
    "DesoCni",
    "IdempotencyRecord",
    "Invitation",
    "InvitationEvent",
    "ListingPeriod",
    "Message",
    "ProgrammeYear",
    "ProgrammeYearRevision",
    "RegisterImport",
    "ReimbursementClosing",
    "Resident",
    "Result",
    "ResultEvent",
    "ResultVersion",
    "Slot",
]
