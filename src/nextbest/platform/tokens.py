"""Write tokens of experiments: random, shown once, stored as a SHA-256 hash, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token() -> str:
    """A fresh random token (32 random bytes, URL-safe base64, 43 characters); show it once, store its hash."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest of ``token`` (what the database keeps)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def verify_token(token: str, stored_hash: str) -> bool:
    """True when ``token`` hashes to ``stored_hash``; the comparison takes the same time wherever they differ."""
    return hmac.compare_digest(hash_token(token), stored_hash)


def new_salt() -> str:
    """A random assignment salt for a new experiment (hex, 32 characters)."""
    return secrets.token_hex(16)
