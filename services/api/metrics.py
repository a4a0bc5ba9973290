"""``GET /metrics``: the API's metrics in the Prometheus text format.

Not part of the JSON API (left out of the OpenAPI document) and guarded: with
``HALSOSAMTAL_METRICS_TOKEN`` set it asks for ``Authorization: Bearer <token>``; without, it
answers only requests from the machine itself (loopback), so a published API never shows it.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Request
from fastapi.responses import Response

from halsosamtal.core.errors import Forbidden, Unauthenticated
from halsosamtal.core.metrics import exposition
from halsosamtal.core.settings import Settings

router = APIRouter()


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_scraper(request: Request, settings: Settings) -> None:
    """Let the scrape through, or raise 401/403 saying what is missing."""
    token = settings.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.get_secret_value().encode()
        ):
            raise Unauthenticated("send HALSOSAMTAL_METRICS_TOKEN as `Authorization: Bearer <token>`")
        return
    if not _loopback(request.client.host if request.client else None):
        raise Forbidden(
            "/metrics answers only the machine itself; set HALSOSAMTAL_METRICS_TOKEN to scrape it "
            "from elsewhere"
        )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Request counts and latency by route template and status class, of every server process."""
    check_scraper(request, request.app.state.settings)
    body, content_type = exposition()
    return Response(body, media_type=content_type)
