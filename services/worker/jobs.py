"""Every feature's jobs, collected for ``WorkerSettings``."""

from typing import Any

from halsosamtal.invitations import jobs as invitation_jobs
from halsosamtal.invitations import lifecycle_jobs
from halsosamtal.messaging import jobs as message_jobs

FUNCTIONS: list[Any] = [*invitation_jobs.FUNCTIONS, *lifecycle_jobs.FUNCTIONS, *message_jobs.FUNCTIONS]
CRON_JOBS: list[Any] = [*invitation_jobs.CRON_JOBS, *lifecycle_jobs.CRON_JOBS, *message_jobs.CRON_JOBS]
