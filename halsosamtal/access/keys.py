"""API keys: 256 random bits, shown once, stored only as a SHA-256 hash.

A fast hash is right here (unlike passwords): the key has full entropy, so it cannot be guessed
from its hash, and the lookup stays a single indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "hs_"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def display_prefix(key: str) -> str:
    """The first characters of a key: enough to tell keys apart in a list, useless to an attacker."""
    return key[: len(KEY_PREFIX) + 6]
