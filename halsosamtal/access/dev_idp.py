"""The development identity provider: an ES256 key pair under ``<data_dir>/dev-idp`` and tokens
signed with it, so that ``make run`` and a newcomer can call the portal routes as a logged-in
resident (``halsosamtal dev token PNR``). Production never uses it: there the settings must name
the region's identity provider.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from halsosamtal.access.tokens import DEV_AUDIENCE, DEV_ISSUER

PRIVATE_KEY = "private-key.pem"
JWKS = "jwks.json"


def _kid(public: ec.EllipticCurvePublicKey) -> str:
    """The RFC 7638 thumbprint of the public key: the same key, the same kid."""
    import base64
    import hashlib

    jwk = json.loads(ECAlgorithm.to_jwk(public))
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")


def ensure_keys(folder: Path) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """The development key pair (made the first time; the private key readable by its owner
    only) and its kid; the JWKS beside it holds the public key."""
    folder.mkdir(parents=True, exist_ok=True)
    private_path = folder / PRIVATE_KEY
    if private_path.exists():
        loaded = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{private_path} is not an EC private key")
        private = loaded
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as f:
            f.write(pem)
    kid = _kid(private.public_key())
    jwks_path = folder / JWKS
    jwk: dict[str, Any] = {**json.loads(ECAlgorithm.to_jwk(private.public_key())), "kid": kid}
    jwk.update(use="sig", alg="ES256")
    wanted = {"keys": [jwk]}
    if not jwks_path.exists() or json.loads(jwks_path.read_text(encoding="utf-8")) != wanted:
        tmp = jwks_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(wanted, indent=2) + "\n", encoding="utf-8")
        tmp.replace(jwks_path)
    return private, kid


def mint(
    folder: Path,
    personnummer: str,
    *,
    claim: str,
    acr: str,
    issuer: str = DEV_ISSUER,
    audience: str = DEV_AUDIENCE,
    lifetime_s: int = 3600,
) -> str:
    """A resident token signed with the development key."""
    private, kid = ensure_keys(folder)
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{issuer}/{personnummer}")),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_s,
        "jti": uuid.uuid4().hex,
        "acr": acr,
        claim: personnummer,
    }
    return jwt.encode(claims, private, algorithm="ES256", headers={"kid": kid})
