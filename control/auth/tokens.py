"""Opaque bearer tokens: random, shown once, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["hash_token", "new_token"]

# 32 random bytes: guessing one is hopeless, so a plain (unsalted, fast) hash is enough to
# keep a copy of the database from being a list of working tokens.
_TOKEN_BYTES = 32


def new_token() -> tuple[str, str]:
    """A new token and the hex SHA-256 to store for it."""
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
