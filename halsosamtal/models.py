"""Every ORM model, imported once so that Alembic and the tests see the whole schema."""

from halsosamtal.access.models import ApiClient, ApiClientCareUnit
from halsosamtal.core.database import Base
from halsosamtal.invitations.models import BatchRun, Invitation, InvitationEvent
from halsosamtal.messaging.models import DeliveryAttempt, Message
from halsosamtal.programmes.models import ProgrammeYear, ProgrammeYearRevision
from halsosamtal.residents.models import ListingPeriod, RegisterImport, Resident
from halsosamtal.units.models import CareUnit

__all__ = [
    "ApiClient",
    "ApiClientCareUnit",
    "Base",
    "BatchRun",
    "CareUnit",
    "DeliveryAttempt",
    "Invitation",
    "InvitationEvent",
    "ListingPeriod",
    "Message",
    "ProgrammeYear",
    "ProgrammeYearRevision",
    "RegisterImport",
    "Resident",
]
