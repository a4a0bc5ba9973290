"""Every feature's router, in the order they appear in the API documentation."""

from fastapi import APIRouter

from halsosamtal.booking.router import router as booking
from halsosamtal.cohort.router import router as cohort
from halsosamtal.invitations.history import router as invitation_history
from halsosamtal.invitations.messages_router import router as message_retry
from halsosamtal.invitations.router import router as invitations
from halsosamtal.logreview.router import router as access_log
from halsosamtal.messaging.router import router as messages
from halsosamtal.portal.access_log import router as access_log_portal
from halsosamtal.portal.booking import router as booking_portal
from halsosamtal.portal.invitation import router as portal
from halsosamtal.portal.results import router as results_portal
from halsosamtal.programmes.router import router as programmes
from halsosamtal.register.router import router as register
from halsosamtal.reports.router import router as reports
from halsosamtal.residents.router import router as residents
from halsosamtal.results.router import router as results
from halsosamtal.units.router import router as units

ROUTERS: list[APIRouter] = [
    units,
    register,
    residents,
    programmes,
    cohort,
    invitations,
    invitation_history,
    messages,
    message_retry,
    booking,
    results,
    reports,
    access_log,
    portal,
    booking_portal,
    results_portal,
    access_log_portal,
]
