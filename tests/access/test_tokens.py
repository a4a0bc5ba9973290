"""The identity provider's keys from a JWKS URL: fetched once and cached, fetched again for an
unknown kid (a rotated key) but never on every request, and a provider that does not answer
within the timeout is a 503 that says so, not a hung request."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from halsosamtal.access.tokens import (
    KeySet,
    KeysUnavailable,
    ResidentTokens,
    TokenPolicy,
    TokenUnknownKey,
)
from tests.tokens import AUDIENCE, CLAIM, ISSUER, LOA3, TestIdp

LEVELS = ("http://id.elegnamnden.se/loa/1.0/loa2", LOA3)


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 that counts its requests (and can be made slow)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document, self.requests, self.delay_s = document, 0, 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                time.sleep(outer.delay_s)
                body = json.dumps(outer.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def idp(tmp_path: Path) -> TestIdp:  # its own keys: these tests change what the JWKS holds
    return TestIdp(tmp_path / "idp")


@pytest.fixture
def served(idp: TestIdp) -> Iterator[JwksServer]:
    server = JwksServer(idp.jwks())
    yield server
    server.close()


def verifier(keys: KeySet) -> ResidentTokens:
    policy = TokenPolicy(
        issuer=ISSUER, audience=AUDIENCE, personnummer_claim=CLAIM, acr_levels=LEVELS, min_acr=LOA3
    )
    return ResidentTokens(policy, keys)


async def test_keys_are_fetched_once_and_cached(idp: TestIdp, served: JwksServer) -> None:
    tokens = verifier(KeySet(url=served.url, timeout_s=2))
    for _ in range(20):
        assert (await tokens.verify(idp.token("19870504-0015"))).personnummer == "198705040015"
        await tokens.verify(idp.token("19870504-0015", alg="RS256"))
    assert served.requests == 1


async def test_an_unknown_kid_fetches_again_but_at_most_once_per_interval(
    idp: TestIdp, served: JwksServer
) -> None:
    keys = KeySet(url=served.url, timeout_s=2, min_refresh_s=0.5)
    tokens = verifier(keys)
    await tokens.verify(idp.token("19870504-0015"))
    rotated = ec.generate_private_key(ec.SECP256R1())
    new = idp.token("19870504-0015", kid="ec-2", key=rotated)
    for _ in range(10):  # a burst of tokens with a kid nobody published: one fetch, not ten
        with pytest.raises(TokenUnknownKey):
            await tokens.verify(new)
    assert served.requests == 1
    # The provider rotates: publishes the new key. After the interval, the unknown kid is fetched.
    jwk = {**json.loads(ECAlgorithm.to_jwk(rotated.public_key())), "kid": "ec-2", "use": "sig"}
    served.document = idp.jwks(extra=[jwk])
    await asyncio.sleep(0.6)
    assert (await tokens.verify(new)).personnummer == "198705040015"
    assert served.requests == 2


async def test_a_provider_that_does_not_answer_in_time_is_a_503(idp: TestIdp, served: JwksServer) -> None:
    served.delay_s = 2.0
    tokens = verifier(KeySet(url=served.url, timeout_s=0.3))
    started = time.monotonic()
    with pytest.raises(KeysUnavailable) as refused:
        await tokens.verify(idp.token("19870504-0015"))
    assert time.monotonic() - started < 1.5
    assert refused.value.status == 503


async def test_hmac_keys_in_the_jwks_are_never_used(idp: TestIdp, tmp_path: Path) -> None:
    idp.write_jwks(extra=[{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac-1", "alg": "HS256"}])
    keys = KeySet(file=idp.jwks_file)
    await keys.key_for("ec-1", "ES256")
    with pytest.raises(TokenUnknownKey):
        await keys.key_for("hmac-1", "ES256")
