"""Every feature's jobs, collected for ``WorkerSettings.functions``."""

from typing import Any

JOBS: list[Any] = []
