"""Secrets people and scripts hold, and how the database holds them (never in clear).

- passwords: Argon2id (argon2-cffi's defaults: RFC 9106's second recommended set);
  a hash made with older parameters is replaced at the next sign-in;
- session cookies and API tokens: 256 random bits, stored as their SHA-256 (a token is
  already unguessable, so a fast hash is enough, and a lookup is one equality);
- one-time passwords: 16 characters from an unambiguous alphabet (~93 bits).

>>> len(one_time_password()), token_hash("x")[:12]
(16, '2d711642b726')
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "check_password",
    "csrf_token",
    "hash_password",
    "needs_rehash",
    "new_token",
    "one_time_password",
    "token_hash",
]

_hasher = PasswordHasher()
_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_DUMMY = _hasher.hash("posfleet: no such user")
MIN_PASSWORD = 10
"""Shortest password a person may choose."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; with no ``stored`` (an unknown user) the
    same work is done against a dummy hash, so timing does not tell names apart."""
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def one_time_password() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(16))


def new_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(session_token: str, purpose: str = "form") -> str:
    """The form token bound to a session (or to a pre-login cookie): HMAC of the purpose
    under the session's own secret value, so nothing more is stored."""
    return hmac.new(session_token.encode(), purpose.encode(), hashlib.sha256).hexdigest()
