"""A test identity provider: its own RSA and EC keys, a JWKS file, and resident tokens made with
PyJWT as the region's provider would make them (and every way they can be wrong).

A portal forwards the logged-in resident's login with each call; ``sign_portal_calls`` does that
for an in-process client: a portal call whose body names a resident and carries no
``X-Resident-Token`` gets one for that resident. Tests of the token itself send their own.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://idp.test.example/oidc"
AUDIENCE = "halsosamtal-test"
CLAIM = "https://id.oidc.se/claim/personalIdentityNumber"
LOA3 = "http://id.elegnamnden.se/loa/1.0/loa3"
LOA2 = "http://id.elegnamnden.se/loa/1.0/loa2"
HEADER = "X-Resident-Token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class TestIdp:
    """Keys ``rsa-1`` (RS256) and ``ec-1`` (ES256) in a JWKS file, and a key it does not publish."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.unpublished = ec.generate_private_key(ec.SECP256R1())
        self.jwks_file = folder / "jwks.json"
        self.write_jwks()

    def jwks(self, *, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        rsa_jwk = {**json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key())), "kid": "rsa-1", "use": "sig"}
        ec_jwk = {**json.loads(ECAlgorithm.to_jwk(self.ec.public_key())), "kid": "ec-1", "use": "sig"}
        return {"keys": [rsa_jwk, ec_jwk, *(extra or [])]}

    def write_jwks(self, *, extra: list[dict[str, Any]] | None = None) -> None:
        self.jwks_file.write_text(json.dumps(self.jwks(extra=extra)), encoding="utf-8")

    def token(
        self,
        personnummer: str | None,
        *,
        alg: str = "ES256",
        kid: str | None = None,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        acr: str | None = LOA3,
        expires_in: int = 600,
        not_before_in: int = 0,
        drop: tuple[str, ...] = (),
        extra: dict[str, Any] | None = None,
        key: Any = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": "resident-subject",
            "iat": now,
            "nbf": now + not_before_in,
            "exp": now + expires_in,
            "acr": acr,
            CLAIM: (personnummer or "").replace("-", ""),
            **(extra or {}),
        }
        for name in drop:
            claims.pop(name, None)
        if acr is None:
            claims.pop("acr", None)
        if personnummer is None:
            claims.pop(CLAIM, None)
        if key is None:
            key = self.rsa if alg == "RS256" else self.ec
        headers = {"kid": kid or ("rsa-1" if alg == "RS256" else "ec-1")}
        return jwt.encode(claims, key, algorithm=alg, headers=headers)

    def headers(self, personnummer: str, **options: Any) -> dict[str, str]:
        return {HEADER: self.token(personnummer, **options)}


def unsigned(claims: dict[str, Any], *, kid: str = "ec-1") -> str:
    """An ``alg: none`` token, as an attacker writes it."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def tampered(token: str, **changes: Any) -> str:
    """The token with its payload changed and the signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def sign_portal_calls(idp: TestIdp) -> Any:
    """An httpx request hook: a portal call naming a resident in its body, without a token, gets
    the token of that resident (as a portal forwards the logged-in resident's login)."""

    async def hook(request: httpx.Request) -> None:
        if not request.url.path.startswith("/v1/portal/") or HEADER in request.headers:
            return
        try:
            body = json.loads(request.content or b"null")
        except ValueError:
            return
        number = body.get("personnummer") if isinstance(body, dict) else None
        if isinstance(number, str):
            request.headers[HEADER] = idp.token(number)

    return hook
