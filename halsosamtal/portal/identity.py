"""Who the portal acts for: the resident its signed token names.

A patient portal calls with its own API key (role ``portal``) and, for the resident logged in
there, forwards the resident's login as a signed JWT in ``X-Resident-Token``
(``halsosamtal.access.tokens`` verifies it). Every portal route then acts for that resident
only: a personnummer in the body is optional, and one that names someone else is a 403.

``HALSOSAMTAL_PORTAL_IDENTITY=asserted`` is the pilots' mode: the portal names the resident in
the body and is trusted. Production refuses it; the API says so at start-up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request

from halsosamtal.access.dependencies import require
from halsosamtal.access.schemas import Principal
from halsosamtal.access.tokens import (
    HEADER,
    OtherResident,
    ResidentTokens,
    TokenInvalidClaim,
    resident_tokens,
)
from halsosamtal.core.errors import InvalidInput
from halsosamtal.core.http import Session
from halsosamtal.core.settings import Settings
from halsosamtal.residents import personnummer as pnr
from halsosamtal.residents.lookup import ResidentNamed, ids_by_personnummer, requested_personnummer

log = logging.getLogger("halsosamtal.portal")

Portal = Annotated[Principal, Depends(require("portal"))]

ResidentToken = Annotated[
    str | None,
    Header(
        alias=HEADER,
        max_length=16_384,
        description="The resident's login, as the region's identity provider signed it (a JWT, RS256 "
        "or ES256): it names the resident the call is for. Required unless the service runs with "
        "asserted identity (pilots).",
    ),
]


def unconfigured(settings: Settings) -> str | None:
    """Why the API cannot take residents' tokens in production (None when it can). Checked when
    the API starts, not in the settings: the worker and the CLI need no identity provider."""
    keys = settings.resident_token_jwks_url or settings.resident_token_jwks_file
    if settings.environment == "production" and settings.portal_identity == "token" and not keys:
        return (
            "production verifies resident tokens with the region's identity provider: set "
            "HALSOSAMTAL_RESIDENT_TOKEN_JWKS_URL (or _JWKS_FILE), _ISSUER and _AUDIENCE"
        )
    return None


def start(settings: Settings) -> ResidentTokens | None:
    """The verifier of resident tokens for the API's lifetime (None in asserted mode, which is
    said at start-up: any portal key may then act for any resident)."""
    if settings.portal_identity == "asserted":
        log.warning(
            "portal identity is ASSERTED (HALSOSAMTAL_PORTAL_IDENTITY=asserted): a portal names the "
            "resident in the body and is trusted; for pilots only, never in production"
        )
        return None
    if (why := unconfigured(settings)) is not None:
        raise RuntimeError(why)
    tokens = resident_tokens(settings)
    log.info(
        "portal identity: resident tokens from %s (issuer %s, audience %s, acr at least %s)",
        tokens.keys.source,
        tokens.policy.issuer,
        tokens.policy.audience,
        tokens.policy.min_acr,
    )
    return tokens


@dataclass(frozen=True)
class ResidentIdentity:
    """The resident a portal call acts for: from the token, or (asserted) from the body."""

    personnummer: str | None
    """The token's resident (12 digits); None when identity is asserted."""

    def named(self, in_body: str | None) -> str:
        """The resident the call is for, given the body's ``personnummer`` (when any)."""
        if self.personnummer is None:
            if in_body is None:
                raise InvalidInput(
                    "name the resident: `personnummer` in the body (asserted identity)", field="personnummer"
                )
            return in_body
        if in_body is not None and requested_personnummer(in_body) != self.personnummer:
            raise OtherResident("the body names another resident than the one the resident token is for")
        return self.personnummer


async def resident_identity(
    request: Request, principal: Portal, session: Session, token: ResidentToken = None
) -> ResidentIdentity:
    """The resident of a portal call, after the portal's own API key (``principal``) is checked.
    With a token, the access log's acting person is that resident (by internal id)."""
    settings: Settings = request.app.state.settings
    if settings.portal_identity == "asserted":
        return ResidentIdentity(None)
    tokens: ResidentTokens | None = getattr(request.app.state, "resident_tokens", None)
    if tokens is None:
        tokens = request.app.state.resident_tokens = resident_tokens(settings)
    verified = await tokens.verify(token)
    try:
        number = pnr.parse(verified.personnummer).personnummer
    except pnr.InvalidPersonnummer as exc:
        raise TokenInvalidClaim(
            f"the token's {tokens.policy.personnummer_claim!r} claim is not a personnummer: {exc.reason}"
        ) from None
    ids = await ids_by_personnummer(session, [number])
    request.state.acting_person = f"resident:{ids[0]}" if ids else "resident"
    return ResidentIdentity(number)


Resident = Annotated[ResidentIdentity, Depends(resident_identity)]


Body = TypeVar("Body", bound=ResidentNamed)


def on_behalf(body: Body, personnummer: str) -> Body:
    """The body with its resident filled in, for the Idempotency-Key's fingerprint: two residents
    of one portal sending the same key and body are two requests, never one's answer replayed
    to the other."""
    return body.model_copy(update={"personnummer": pnr.format_long(requested_personnummer(personnummer))})
