"""SMS providers allowed to call posfleet back (status callbacks, inbound replies).

Each has a name and a secret made here (``posfleet notices provider add NAME``, shown
once). The database keeps the secret's SHA-256 only; with ``--hmac`` it is also sealed
under the secrets key (:mod:`fleet.webhooks.keybox`, AES-256-GCM), since checking an
HMAC needs the secret itself. A callback proves itself either way:

- the secret as the password of HTTP Basic auth (put it in the callback URL a provider
  such as Twilio calls: ``https://NAME:SECRET@host/hooks/sms/NAME/status``), or in an
  ``X-Posfleet-Secret`` header: its hash is compared in constant time;
- an HMAC-SHA256 over ``timestamp.body`` in ``Posfleet-Signature`` with
  ``Posfleet-Timestamp`` (the webhooks' scheme, :mod:`fleet.webhooks.signing`): only for
  a provider added with ``--hmac``.

The secret never reaches a log, an error or a report.
"""

from __future__ import annotations

import base64
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, insert, select

from fleet.access.secrets import new_token, token_hash
from fleet.core import audit
from fleet.core.db import writer
from fleet.core.errors import ConflictError, InputError, NotFoundError
from fleet.core.models import SMS_PROVIDERS, now

__all__ = ["Provider", "ProviderAuthError", "add_provider", "authenticate", "list_providers"]

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_DUMMY_HASH = token_hash("posfleet: no such provider")


class ProviderAuthError(Exception):
    """A callback that does not prove it comes from the provider it names."""


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    hmac: bool
    created_at: datetime


def add_provider(
    engine: Engine, name: str, *, actor: str, hmac_key: bool = False, rotate: bool = False
) -> str:
    """Add (or, with ``rotate``, re-key) a provider; returns its new secret (shown once)."""
    if not NAME.fullmatch(name):
        raise InputError("a provider name is 1-40 of a-z, 0-9, _ and -", where="name")
    secret = new_token("pfsms_")
    sealed = key_id = None
    if hmac_key:
        from fleet.webhooks.keybox import load_keybox  # noqa: PLC0415

        box = load_keybox()
        sealed, key_id = box.seal(secret), box.key_id
    at = now()
    with writer(engine).begin() as conn:
        exists = conn.execute(
            select(SMS_PROVIDERS.c.name).where(SMS_PROVIDERS.c.name == name)
        ).first()
        if exists and not rotate:
            raise ConflictError(f"provider {name} exists (--rotate gives it a new secret)")
        if exists:
            conn.execute(delete(SMS_PROVIDERS).where(SMS_PROVIDERS.c.name == name))
        conn.execute(
            insert(SMS_PROVIDERS).values(
                name=name, secret_hash=token_hash(secret), secret_box=sealed, key_id=key_id,
                created_at=at, created_by=actor,
            )
        )  # fmt: skip
        audit.record(
            conn, actor=actor, action="update" if exists else "add", target=f"provider:{name}",
            details={"hmac": hmac_key, "rotated": bool(exists)}, at=at,
        )  # fmt: skip
    return secret


def list_providers(engine: Engine) -> list[Provider]:
    with engine.connect() as conn:
        rows = conn.execute(select(SMS_PROVIDERS).order_by(SMS_PROVIDERS.c.name)).all()
    return [Provider(r.name, r.secret_box is not None, r.created_at) for r in rows]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name.lower())
    return value if value is None else str(value)


def _offered_secret(headers: Mapping[str, str]) -> str | None:
    direct = _header(headers, "x-posfleet-secret")
    if direct:
        return direct.strip()
    auth = _header(headers, "authorization") or ""
    if auth[:6].lower() == "basic ":
        try:
            user_pass = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        return user_pass.partition(":")[2]
    return None


def authenticate(engine: Engine, name: str, headers: Mapping[str, str], body: bytes) -> None:
    """Raise :class:`ProviderAuthError` unless the request proves it is from ``name``
    (``headers`` with lower-case names). The same work for an unknown provider."""
    row = None
    if NAME.fullmatch(name):
        with engine.connect() as conn:
            row = conn.execute(select(SMS_PROVIDERS).where(SMS_PROVIDERS.c.name == name)).first()
    signature = _header(headers, "posfleet-signature")
    if signature is not None and row is not None and row.secret_box is not None:
        from fleet.webhooks.keybox import load_keybox  # noqa: PLC0415
        from fleet.webhooks.signing import SignatureError, check  # noqa: PLC0415

        try:
            secret = load_keybox().open(row.secret_box, row.key_id or "")
            check(secret, dict(headers), body, now=time.time())
        except (SignatureError, InputError, Exception) as exc:
            raise ProviderAuthError(f"signature refused: {type(exc).__name__}") from None
        return
    offered = _offered_secret(headers)
    stored = row.secret_hash if row is not None else _DUMMY_HASH
    ok = hmac.compare_digest(token_hash(offered or ""), stored)
    if not (ok and row is not None and offered):
        raise ProviderAuthError("unknown provider or wrong secret")


def require_provider(engine: Engine, name: str) -> None:
    """:class:`NotFoundError` unless ``name`` is a provider (for the CLI)."""
    with engine.connect() as conn:
        if (
            conn.execute(select(SMS_PROVIDERS.c.name).where(SMS_PROVIDERS.c.name == name)).first()
            is None
        ):
            raise NotFoundError(f"unknown provider {name}")
