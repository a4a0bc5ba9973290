"""Metrics in the Prometheus format, shared by the API and the worker.

Labels are never personal values or ids: a request is counted under its route *template*
(``/v1/batches/{batch_id}``), its method and its status class (``2xx``); a request no route
matched under ``unmatched``. With several server processes (``halsosamtal api --workers N``)
each process writes its samples to files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape adds
them up (prometheus-client's multiprocess mode): set before the first metric is made, which
``halsosamtal api`` does.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# No ``*_created`` series: they double the output and no alert or graph here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # the library has no hints here

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"

HTTP_REQUESTS = Counter(
    "halsosamtal_http_requests",
    "HTTP requests answered, by method, route template and status class.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "halsosamtal_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method, route template and status class.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_STATIC_PREFIX = re.compile(r"(/[A-Za-z][A-Za-z0-9_.-]*)*")


def route_template(scope: MutableMapping[str, Any]) -> str:
    """The template of the route that handled the request, with the prefix it was included
    under (``/v1/batches/{batch_id}``), never its concrete path, which may carry ids;
    ``unmatched`` when no route did.

    FastAPI leaves the route as declared in ``scope["route"]`` (without the ``/v1`` of
    ``include_router``): the prefix is what the concrete path has before the route's own part,
    taken only when it is plain words (no value of any kind)."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str) or not template:
        return UNMATCHED
    params = scope.get("path_params") or {}
    rendered = _PARAM.sub(lambda m: str(params.get(m.group(1), m.group(0))), template)
    path = str(scope.get("path", ""))
    if path.endswith(rendered):
        prefix = path[: len(path) - len(rendered)]
        if _STATIC_PREFIX.fullmatch(prefix):
            return prefix + template
    return template


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    labels = (method if method in METHODS else "other", route, status_class(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_DURATION.labels(*labels).observe(seconds)


def exposition(*extra: Any) -> tuple[bytes, str]:
    """This process's metrics (every server process's in multiprocess mode), and ``extra``
    collectors, in the text format; with its content type."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # the library has no hints here
    else:
        registry = REGISTRY
    if not extra:
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(Combined(registry, *extra)), CONTENT_TYPE_LATEST


class Combined(Collector):
    """Several registries or collectors exposed as one (what ``generate_latest`` reads)."""

    def __init__(self, *collectors: Any) -> None:
        self.collectors = collectors

    def collect(self) -> Any:
        for collector in self.collectors:
            yield from collector.collect()


def fresh_multiprocess_dir(chosen: str | None) -> str:
    """The folder for the API processes' metric files, emptied: ``chosen`` (the operator's
    ``PROMETHEUS_MULTIPROC_DIR``) or a new temporary one. Files left by an earlier run would be
    added to this run's counts, so they are removed."""
    if not chosen:
        return tempfile.mkdtemp(prefix="halsosamtal-metrics-")
    path = Path(chosen)
    path.mkdir(parents=True, exist_ok=True)
    for child in path.glob("*.db"):  # only the metric files: the folder may hold other things
        child.unlink(missing_ok=True)
    return str(path)
