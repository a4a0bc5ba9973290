"""A portal acts for the resident its signed token names, and for no one else; every way a token
can be wrong is refused with its own problem code."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.access import dev_idp
from halsosamtal.access.tokens import resident_tokens
from halsosamtal.core.runtime import Resources
from halsosamtal.core.settings import Settings
from halsosamtal.portal.identity import unconfigured
from services.api.app import create_app
from tests.conftest import KeyMaker
from tests.factories import make_resident
from tests.tokens import CLAIM, LOA2, TestIdp, tampered, unsigned

SM = async_sessionmaker[AsyncSession]
INVITATION = "/v1/portal/invitation"
PNR = "19870504-0015"
OTHER = "19770504-0017"


@pytest.fixture
async def bare(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends exactly the headers a test gives it (no token added)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def _hs256_with_public_key(idp: TestIdp) -> str:
    """The classic confusion attack: HS256 with the provider's public key as the HMAC secret."""
    secret = idp.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    claims = json.loads(base64.urlsafe_b64decode(idp.token(PNR).split(".")[1] + "=="))
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


REFUSALS: list[tuple[str, Any, int, str]] = [
    ("missing", lambda idp: None, 401, "resident-token-missing"),
    ("not a JWT", lambda idp: "not.a-jwt", 401, "resident-token-malformed"),
    ("expired", lambda idp: idp.token(PNR, expires_in=-120), 401, "resident-token-expired"),
    ("not yet valid", lambda idp: idp.token(PNR, not_before_in=600), 401, "resident-token-not-yet-valid"),
    (
        "wrong audience",
        lambda idp: idp.token(PNR, audience="another-service"),
        401,
        "resident-token-wrong-audience",
    ),
    (
        "wrong issuer",
        lambda idp: idp.token(PNR, issuer="https://evil.example"),
        401,
        "resident-token-wrong-issuer",
    ),
    (
        "unknown kid",
        lambda idp: idp.token(PNR, kid="ec-unpublished", key=idp.unpublished),
        401,
        "resident-token-unknown-kid",
    ),
    (
        "tampered payload",
        lambda idp: tampered(idp.token(PNR), **{CLAIM: "197705040017"}),
        401,
        "resident-token-tampered",
    ),
    (
        "alg none",
        lambda idp: unsigned({"iss": "https://idp.test.example/oidc", CLAIM: "198705040015"}),
        401,
        "resident-token-alg-none",
    ),
    ("HMAC with the public key", _hs256_with_public_key, 401, "resident-token-alg-refused"),
    ("low assurance", lambda idp: idp.token(PNR, acr=LOA2), 401, "resident-token-low-assurance"),
    ("no acr", lambda idp: idp.token(PNR, acr=None), 401, "resident-token-missing-claim"),
    ("no personnummer claim", lambda idp: idp.token(None), 401, "resident-token-missing-claim"),
    ("no exp", lambda idp: idp.token(PNR, drop=("exp",)), 401, "resident-token-missing-claim"),
    ("not a personnummer", lambda idp: idp.token("19870504-0016"), 401, "resident-token-invalid-claim"),
]


@pytest.mark.parametrize(("case", "make", "status", "code"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_each_bad_token_is_refused_with_its_own_code(
    bare: httpx.AsyncClient, make_key: KeyMaker, idp: TestIdp, case: str, make: Any, status: int, code: str
) -> None:
    portal = await make_key("portal")
    token = make(idp)
    headers = portal if token is None else {**portal, "X-Resident-Token": token}
    response = await bare.post(INVITATION, json={}, headers=headers)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in response.text


def test_every_refusal_has_a_code_of_its_own() -> None:
    codes = [code for _, _, _, code in REFUSALS]
    assert len(set(codes)) >= 12


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
async def test_a_good_token_acts_for_its_resident_within_the_clock_skew(
    bare: httpx.AsyncClient, make_key: KeyMaker, idp: TestIdp, alg: str
) -> None:
    portal = await make_key("portal")
    # Expired 10 s ago: within the 30 s leeway for clocks that disagree.
    token = idp.token(PNR, alg=alg, expires_in=-10)
    response = await bare.post(INVITATION, json={}, headers={**portal, "X-Resident-Token": token})
    assert (response.status_code, response.json()["code"]) == (404, "no-invitation"), response.text
    same = await bare.post(
        INVITATION, json={"personnummer": "198705040015"}, headers={**portal, "X-Resident-Token": token}
    )
    assert same.json()["code"] == "no-invitation"


async def test_another_residents_number_in_the_body_is_403(
    bare: httpx.AsyncClient, make_key: KeyMaker, idp: TestIdp, sessionmaker: SM
) -> None:
    portal = await make_key("portal")
    for path, body in (
        (INVITATION, {}),
        ("/v1/portal/invitation/decline", {"invitation_id": 1}),
        ("/v1/portal/slots/search", {"invitation_id": 1}),
        ("/v1/portal/bookings", {"invitation_id": 1, "slot_id": 1}),
        ("/v1/portal/bookings/1/move", {"slot_id": 1}),
        ("/v1/portal/bookings/1/cancel", {}),
        ("/v1/portal/results", {}),
        ("/v1/portal/access-log", {}),
    ):
        response = await bare.post(
            path, json={**body, "personnummer": OTHER}, headers={**portal, **idp.headers(PNR)}
        )
        assert (response.status_code, response.json()["code"]) == (403, "resident-token-other-resident"), path


async def test_the_api_key_is_checked_before_the_token(bare: httpx.AsyncClient, idp: TestIdp) -> None:
    response = await bare.post(INVITATION, json={}, headers=idp.headers(PNR))
    assert (response.status_code, response.json()["code"]) == (401, "unauthenticated")


async def test_one_idempotency_key_of_two_residents_is_two_requests(
    bare: httpx.AsyncClient, make_key: KeyMaker, idp: TestIdp
) -> None:
    """The same key and body from one portal for two residents never replays one's answer to the
    other: the resident is part of what the key stands for."""
    portal = {**await make_key("portal"), "Idempotency-Key": "same-key-1"}
    body = {"invitation_id": 1}
    first = await bare.post(
        "/v1/portal/invitation/decline", json=body, headers={**portal, **idp.headers(PNR)}
    )
    assert first.json()["code"] == "no-invitation"
    second = await bare.post(
        "/v1/portal/invitation/decline", json=body, headers={**portal, **idp.headers(OTHER)}
    )
    assert second.headers.get("idempotent-replayed") is None
    assert (second.status_code, second.json()["code"]) == (422, "idempotency-key-reused"), second.text


async def test_the_access_log_names_the_tokens_resident_as_the_acting_person(
    bare: httpx.AsyncClient, make_key: KeyMaker, idp: TestIdp, sessionmaker: SM
) -> None:
    resident = await make_resident(sessionmaker, dt.date(1987, 5, 4))
    portal = await make_key("portal", name="1177")
    headers = {**portal, **idp.headers(resident.personnummer), "X-Acting-Person": "not.me"}
    assert (await bare.post("/v1/portal/access-log", json={}, headers=headers)).status_code == 200
    async with sessionmaker() as s:
        rows = (await s.execute(text("SELECT acting_person, resident_id, outcome FROM access_events"))).all()
    assert [tuple(r) for r in rows] == [(f"resident:{resident.id}", resident.id, "ok")]


# --- Asserted identity (pilots) ------------------------------------------------------------------


async def test_asserted_identity_takes_the_body_and_says_so_at_start_up(
    settings: Settings, resources: Resources, make_key: KeyMaker, caplog: pytest.LogCaptureFixture
) -> None:
    asserted = settings.model_copy(update={"portal_identity": "asserted"})
    app = create_app(asserted, resources)
    with caplog.at_level(logging.WARNING, logger="halsosamtal.portal"):
        async with app.router.lifespan_context(app):
            assert any("ASSERTED" in r.getMessage() for r in caplog.records)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                portal = await make_key("portal")
                named = await c.post(INVITATION, json={"personnummer": PNR}, headers=portal)
                assert named.json()["code"] == "no-invitation"
                unnamed = await c.post(INVITATION, json={}, headers=portal)
                assert (unnamed.status_code, unnamed.json()["errors"][0]["pointer"]) == (422, "/personnummer")


def test_production_allows_token_identity_only() -> None:
    base: dict[str, Any] = {
        "environment": "production",
        "database_url": "postgresql://u@db/h",
        "redis_url": "redis://r:6379/0",
        "resident_token_jwks_url": "https://idp.example/jwks",
        "resident_token_issuer": "https://idp.example",
        "resident_token_audience": "halsosamtal",
    }
    assert Settings(**base).portal_identity == "token"
    with pytest.raises(ValueError, match="must be token"):
        Settings(**{**base, "portal_identity": "asserted"})
    without_keys = Settings(**{k: v for k, v in base.items() if k != "resident_token_jwks_url"})
    assert "JWKS_URL" in (unconfigured(without_keys) or "")  # the API refuses to start; the worker runs
    assert unconfigured(Settings(**base)) is None
    with pytest.raises(ValueError, match="must be https"):
        Settings(**{**base, "resident_token_jwks_url": "http://idp.example/jwks"})
    with pytest.raises(ValueError, match="ISSUER"):
        Settings(**{k: v for k, v in base.items() if k != "resident_token_issuer"})
    with pytest.raises(ValueError, match="MIN_ACR"):
        Settings(**{**base, "resident_token_min_acr": "loa9"})


# --- The development identity provider -----------------------------------------------------------


async def test_a_dev_token_verifies_against_the_dev_jwks_only_outside_configured_keys(tmp_path: Path) -> None:
    settings = Settings(environment="development", data_dir=tmp_path)
    folder = tmp_path / "dev-idp"
    token = dev_idp.mint(folder, "198705040015", claim=settings.resident_token_personnummer_claim, acr="x")
    verifier = resident_tokens(settings)
    assert verifier.keys.source == str(folder / "jwks.json")
    with pytest.raises(Exception, match="assurance"):
        await verifier.verify(token)
    good = dev_idp.mint(
        folder,
        "198705040015",
        claim=settings.resident_token_personnummer_claim,
        acr=settings.resident_token_min_acr,
    )
    assert (await verifier.verify(good)).personnummer == "198705040015"
    assert oct(((folder / "private-key.pem").stat().st_mode) & 0o777) == "0o600"
