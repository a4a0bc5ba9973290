"""Resident tokens: the signed login (a JWT) that a patient portal forwards for the resident it
acts for, as the region's identity provider (1177, a BankID-backed IdP) issued it.

Verified with PyJWT, never by hand: the signature with a key from the provider's JWKS (RS256 or
ES256 only: ``none`` and HMAC are refused before any key is looked at, so a public key can never
be used as an HMAC secret), ``iss``, ``aud``, ``exp`` and ``nbf`` with a small leeway, the
assurance level (``acr``) at least the configured minimum, and the claim that carries the
personnummer. Each way a token can fail has its own problem code.

Keys come from a JWKS URL (fetched with a timeout, cached, fetched again when a token names an
unknown ``kid`` but at most every ``min_refresh_s``, so a stream of made-up ``kid``\\ s never
turns into a stream of fetches) or from a local JWKS file (read the same way).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import jwt
from jwt.api_jwk import PyJWK

from halsosamtal.core.errors import DomainError
from halsosamtal.core.settings import Settings

log = logging.getLogger("halsosamtal.access.tokens")

HEADER = "X-Resident-Token"
ALGORITHMS = ("RS256", "ES256")
DEV_ISSUER = "urn:halsosamtal:dev-idp"
DEV_AUDIENCE = "halsosamtal"
DEV_IDP_DIR = "dev-idp"
"""Under the data folder: the development identity provider's keys (``halsosamtal dev token``)."""


# --- Problems --------------------------------------------------------------------------------


class ResidentTokenRefused(DomainError):
    """The resident token does not prove who the resident is (each reason its own code)."""

    code: ClassVar[str] = "resident-token-invalid"
    status: ClassVar[int] = 401
    title: ClassVar[str] = "Resident token refused"


class TokenMissing(ResidentTokenRefused):
    code = "resident-token-missing"


class TokenMalformed(ResidentTokenRefused):
    code = "resident-token-malformed"


class TokenAlgNone(ResidentTokenRefused):
    code = "resident-token-alg-none"


class TokenAlgRefused(ResidentTokenRefused):
    code = "resident-token-alg-refused"


class TokenUnknownKey(ResidentTokenRefused):
    code = "resident-token-unknown-kid"


class TokenTampered(ResidentTokenRefused):
    code = "resident-token-tampered"


class TokenExpired(ResidentTokenRefused):
    code = "resident-token-expired"


class TokenNotYetValid(ResidentTokenRefused):
    code = "resident-token-not-yet-valid"


class TokenWrongIssuer(ResidentTokenRefused):
    code = "resident-token-wrong-issuer"


class TokenWrongAudience(ResidentTokenRefused):
    code = "resident-token-wrong-audience"


class TokenMissingClaim(ResidentTokenRefused):
    code = "resident-token-missing-claim"


class TokenInvalidClaim(ResidentTokenRefused):
    code = "resident-token-invalid-claim"


class TokenLowAssurance(ResidentTokenRefused):
    code = "resident-token-low-assurance"


class OtherResident(DomainError):
    """The body names another resident than the token's."""

    code = "resident-token-other-resident"
    status = 403
    title = "Another resident"


class KeysUnavailable(DomainError):
    code = "resident-token-keys-unavailable"
    status = 503
    title = "Identity provider keys unavailable"


# --- Keys ------------------------------------------------------------------------------------


class KeySet:
    """The identity provider's public signing keys by ``kid``, from a JWKS URL or file."""

    def __init__(
        self,
        *,
        url: str | None = None,
        file: Path | None = None,
        timeout_s: float = 5.0,
        max_age_s: float = 3600.0,
        min_refresh_s: float = 30.0,
    ) -> None:
        if (url is None) == (file is None):
            raise ValueError("a key set needs exactly one of a JWKS URL or a JWKS file")
        self.url, self.file = url, file
        self.timeout_s, self.max_age_s, self.min_refresh_s = timeout_s, max_age_s, min_refresh_s
        self._keys: dict[str | None, PyJWK] | None = None
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many times the JWKS was fetched or read (for tests and diagnosis)."""

    @property
    def source(self) -> str:
        return self.url or str(self.file)

    async def _read(self) -> Mapping[str, Any]:
        self.fetches += 1
        if self.file is not None:
            text = await asyncio.to_thread(self.file.read_text, encoding="utf-8")
            loaded: Any = json.loads(text)
        else:
            assert self.url is not None
            async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
                response.raise_for_status()
                loaded = response.json()
        if not isinstance(loaded, dict) or not isinstance(loaded.get("keys"), list):
            raise ValueError("not a JWKS (an object with a 'keys' list)")
        return loaded

    @staticmethod
    def _usable(document: Mapping[str, Any]) -> dict[str | None, PyJWK]:
        """The signing keys of a JWKS that RS256 or ES256 can use; others (HMAC ``oct`` keys,
        encryption keys, other curves) are left out, so they can never verify a token."""
        keys: dict[str | None, PyJWK] = {}
        for raw in document["keys"]:
            if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
                continue
            if (
                raw.get("kty") not in ("RSA", "EC")
                or raw.get("alg", "RS256" if raw.get("kty") == "RSA" else "ES256") not in ALGORITHMS
            ):
                continue
            if raw.get("kty") == "EC" and raw.get("crv") != "P-256":
                continue
            try:
                key = PyJWK(raw)
            except jwt.PyJWTError as exc:
                log.warning("resident token keys: a key in the JWKS is unusable (%s)", exc)
                continue
            keys[raw.get("kid")] = key
        return keys

    async def _refresh(self) -> None:
        try:
            document = await self._read()
        except (OSError, ValueError, httpx.HTTPError) as exc:
            self._loaded_at = time.monotonic()  # try again after min_refresh_s, not at once
            if self._keys is None:
                self._keys = {}
            log.warning("resident token keys: could not load the JWKS from %s: %s", self.source, exc)
            return
        self._keys = self._usable(document)
        self._loaded_at = time.monotonic()

    async def key_for(self, kid: str | None, alg: str) -> PyJWK:
        """The key a token's header names: from the cache while it is fresh; fetched again for
        an unknown ``kid`` at most every ``min_refresh_s``."""
        async with self._lock:
            age = time.monotonic() - self._loaded_at
            if self._keys is None or age > self.max_age_s:
                await self._refresh()
            found = self._find(kid, alg)
            if found is None and time.monotonic() - self._loaded_at >= self.min_refresh_s:
                await self._refresh()
                found = self._find(kid, alg)
        if found is not None:
            return found
        if not self._keys:
            raise KeysUnavailable(
                f"the service has no keys to verify resident tokens with (from {self.source}); "
                "try again shortly"
            )
        raise TokenUnknownKey(
            f"the token's key (kid {kid!r}) is not among the identity provider's keys"
            if kid is not None
            else "the token names no key (kid) and the identity provider has more than one"
        )

    def _find(self, kid: str | None, alg: str) -> PyJWK | None:
        keys = self._keys or {}
        if kid is None:
            fitting = [k for k in keys.values() if k.algorithm_name == alg]
            return fitting[0] if len(fitting) == 1 else None
        return keys.get(kid)


# --- Policy and verification -----------------------------------------------------------------


@dataclass(frozen=True)
class TokenPolicy:
    """What a resident token must say to be accepted."""

    issuer: str
    audience: str
    personnummer_claim: str
    acr_levels: tuple[str, ...]
    """Every assurance level the service knows, lowest first."""
    min_acr: str
    leeway_s: int = 30

    def acr_ok(self, acr: object) -> bool:
        if not isinstance(acr, str) or acr not in self.acr_levels:
            return False
        return self.acr_levels.index(acr) >= self.acr_levels.index(self.min_acr)


@dataclass(frozen=True)
class VerifiedToken:
    personnummer: str
    """The claim's value as the token has it (the caller validates its form)."""
    claims: Mapping[str, Any]


class ResidentTokens:
    """Verifies resident tokens against a policy and a key set."""

    def __init__(self, policy: TokenPolicy, keys: KeySet) -> None:
        self.policy, self.keys = policy, keys

    async def verify(self, token: str | None) -> VerifiedToken:
        if not token:
            raise TokenMissing(f"send the resident's login as a signed token in the {HEADER} header")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenMalformed(f"the resident token is not a JWT: {exc}") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise TokenAlgNone("an unsigned token (alg none) is never accepted")
        if alg not in ALGORITHMS:
            raise TokenAlgRefused(
                f"the token is signed with {alg}; only {' and '.join(ALGORITHMS)} are accepted"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenMalformed("the token's kid is not a string")
        key = await self.keys.key_for(kid, alg)
        if key.algorithm_name != alg:
            raise TokenAlgRefused(f"the key {kid!r} is for {key.algorithm_name}, the token says {alg}")
        claims = self._decode(token, key, alg)
        if "acr" not in claims:
            raise TokenMissingClaim("the token has no assurance level (acr)", claim="acr")
        if not self.policy.acr_ok(claims["acr"]):
            raise TokenLowAssurance(
                f"the login's assurance level {claims['acr']!r} is below the required {self.policy.min_acr!r}"
            )
        number = claims.get(self.policy.personnummer_claim)
        if number is None:
            raise TokenMissingClaim(
                f"the token has no {self.policy.personnummer_claim!r} claim with the personnummer",
                claim=self.policy.personnummer_claim,
            )
        if not isinstance(number, str):
            raise TokenInvalidClaim(f"the {self.policy.personnummer_claim!r} claim is not a string")
        return VerifiedToken(personnummer=number, claims=claims)

    def _decode(self, token: str, key: PyJWK, alg: str) -> dict[str, Any]:
        policy = self.policy
        try:
            return jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=policy.audience,
                issuer=policy.issuer,
                leeway=policy.leeway_s,
                options={"require": ["exp", "iss", "aud"], "strict_aud": False},
            )
        except jwt.InvalidSignatureError:
            raise TokenTampered("the token's signature does not match its content") from None
        except jwt.ExpiredSignatureError:
            raise TokenExpired("the resident's login has expired; log in again") from None
        except jwt.ImmatureSignatureError:
            raise TokenNotYetValid("the token is not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise TokenWrongAudience(
                f"the token is not meant for this service (aud {policy.audience!r})"
            ) from None
        except jwt.InvalidIssuerError:
            raise TokenWrongIssuer("the token is from another issuer than the configured one") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenMissingClaim(f"the token has no {exc.claim!r} claim", claim=exc.claim) from None
        except jwt.DecodeError as exc:
            raise TokenMalformed(f"the resident token cannot be read: {exc}") from None
        except jwt.PyJWTError as exc:
            raise TokenMalformed(f"the resident token is not valid: {exc}") from None


def dev_idp_dir(settings: Settings) -> Path:
    return settings.data_dir / DEV_IDP_DIR


def resident_tokens(settings: Settings) -> ResidentTokens:
    """The verifier the settings describe. Outside production, with no JWKS configured, the
    development identity provider of ``halsosamtal dev token`` (its JWKS under the data folder,
    its issuer and audience)."""
    url, file = settings.resident_token_jwks_url, settings.resident_token_jwks_file
    issuer, audience = settings.resident_token_issuer, settings.resident_token_audience
    if url is None and file is None:
        file = dev_idp_dir(settings) / "jwks.json"
        issuer, audience = issuer or DEV_ISSUER, audience or DEV_AUDIENCE
    keys = KeySet(
        url=url,
        file=None if url is not None else file,
        timeout_s=settings.resident_token_jwks_timeout_s,
        max_age_s=settings.resident_token_jwks_max_age_s,
        min_refresh_s=settings.resident_token_jwks_min_refresh_s,
    )
    policy = TokenPolicy(
        issuer=issuer or DEV_ISSUER,
        audience=audience or DEV_AUDIENCE,
        personnummer_claim=settings.resident_token_personnummer_claim,
        acr_levels=tuple(settings.resident_token_acr_levels),
        min_acr=settings.resident_token_min_acr,
        leeway_s=settings.resident_token_leeway_s,
    )
    return ResidentTokens(policy, keys)
