"""Every feature's jobs, collected for ``WorkerSettings``."""

from typing import Any

from halsosamtal.invitations import jobs as invitation_jobs

FUNCTIONS: list[Any] = [*invitation_jobs.FUNCTIONS]
CRON_JOBS: list[Any] = [*invitation_jobs.CRON_JOBS]
