"""Every feature's jobs, collected for ``WorkerSettings``."""

from typing import Any

from halsosamtal.access import jobs as access_jobs
from halsosamtal.audit import jobs as audit_jobs
from halsosamtal.invitations import jobs as invitation_jobs
from halsosamtal.invitations import lifecycle_jobs
from halsosamtal.messaging import jobs as message_jobs

_MODULES = (invitation_jobs, lifecycle_jobs, message_jobs, access_jobs, audit_jobs)
FUNCTIONS: list[Any] = [f for m in _MODULES for f in m.FUNCTIONS]
CRON_JOBS: list[Any] = [c for m in _MODULES for c in m.CRON_JOBS]
