"""FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from halsosamtal.access.doors import Doors
from halsosamtal.core.http import install_error_handlers, refuse_unknown_query, refuse_unusable_text
from halsosamtal.core.logging import configure_logging
from halsosamtal.core.runtime import Resources, open_resources
from halsosamtal.core.settings import Settings, get_settings
from halsosamtal.portal import identity
from services.api import health, metrics, openapi_shape, status
from services.api.docs import install_docs
from services.api.routers import ROUTERS

DESCRIPTION = """
The service behind a region's targeted health dialogues (riktade hälsosamtal).

**Authentication.** Every endpoint except `/healthz` and `/readyz` needs
`Authorization: Bearer <key>`. Keys are made by operators with `halsosamtal clients create`;
each client has one role: `operator` (regional operators), `portal` (patient portals) or `ehr`
(an EHR adapter, bound to the care units it acts for). A missing, unknown or revoked key gives
401; a key whose role or care units do not allow the call gives 403.

**Residents.** A portal's calls also carry the logged-in resident's login, a JWT signed by the
region's identity provider (RS256 or ES256), in `X-Resident-Token`: the call acts for that
resident only (a personnummer in the body that is someone else's is 403). Each way a token can
fail has its own problem code: `resident-token-missing`, `-malformed`, `-expired`,
`-not-yet-valid`, `-wrong-issuer`, `-wrong-audience`, `-unknown-kid`, `-tampered`, `-alg-none`,
`-alg-refused`, `-low-assurance`, `-missing-claim`, `-invalid-claim`, `-other-resident`.

**Errors** are RFC 9457 `application/problem+json` with a stable `code`. Validation errors (422)
list each field in `errors` with its location and a JSON pointer. An expected conflict is 409.

**Personal data.** Personal identity numbers are never part of a URL: lookups send them in a
body. Addresses of residents with protected identity are never returned.
"""


def create_app(settings: Settings | None = None, resources: Resources | None = None) -> FastAPI:
    """Build the app. ``resources`` lets tests share their own engine and Redis pool."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings)
        owned = resources is None
        res = resources or await open_resources(
            settings,
            application_name="halsosamtal-api",
            statement_timeout_ms=settings.db_statement_timeout_ms,
            pre_ping=False,
            redis_required=False,
        )
        app.state.resources = res
        app.state.settings = settings
        app.state.sessionmaker = res.sessionmaker
        app.state.resident_tokens = identity.start(settings)
        try:
            yield
        finally:
            if owned:
                await res.close()

    app = FastAPI(
        title="halsosamtal",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by install_docs from the API's own assets, not FastAPI's CDN-backed pages.
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(refuse_unusable_text), Depends(refuse_unknown_query)],
    )
    # Inside RequestContext (added by install_error_handlers, so outermost): a refusal at the
    # door has its request id.
    app.add_middleware(Doors)
    install_error_handlers(app)
    install_docs(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    for router in ROUTERS:
        app.include_router(router, prefix="/v1")
    app.include_router(status.router, prefix="/v1")
    openapi_shape.install(app)
    return app
