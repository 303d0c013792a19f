"""Sessions and API tokens: who is asking.

A browser session is a row: the SHA-256 of a random token (the cookie holds the token),
the user, an absolute expiry and the last time it was seen (for the idle timeout). Any
number of console processes share them through the database; ending one (sign-out, the
user disabled, their password reset) is deleting the row, effective on the next request
everywhere. A new session is made at every sign-in, never taken from the browser, so a
session id planted before sign-in is worthless (no fixation).

An API token is also stored as its SHA-256, with the role it acts as and an expiry; it is
shown once, when made. Both resolve to a :class:`Principal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, bindparam, delete, insert, select, update

from fleet.access.errors import NotSignedInError
from fleet.access.models import TOKENS, USERS, WEB_SESSIONS
from fleet.access.roles import Role, parse_role
from fleet.access.secrets import new_token, token_hash
from fleet.access.users import User
from fleet.core import audit
from fleet.core.db import writer
from fleet.core.errors import InputError, NotFoundError
from fleet.core.models import now

__all__ = [
    "TOKEN_PREFIX",
    "Principal",
    "SessionTimes",
    "TokenInfo",
    "close_session",
    "create_token",
    "list_tokens",
    "open_session",
    "resolve_session",
    "resolve_token",
    "revoke_token",
]

TOKEN_PREFIX = "pft_"
_TOUCH_S = 60
MAX_TOKEN_DAYS = 366


# The two lookups every request makes, built once with bound parameters (SQLAlchemy then
# finds them compiled by the same object; building them per request cost as much as
# running them).
_SESSION_LOOKUP = (
    select(
        WEB_SESSIONS.c.id, WEB_SESSIONS.c.last_seen, USERS.c.name, USERS.c.role,
        USERS.c.must_change,
    )
    .join(USERS, USERS.c.id == WEB_SESSIONS.c.user_id)
    .where(
        WEB_SESSIONS.c.token_hash == bindparam("hash"),
        WEB_SESSIONS.c.expires_at > bindparam("at"),
        WEB_SESSIONS.c.last_seen > bindparam("idle"),
        USERS.c.active.is_(True),
    )
)  # fmt: skip
_TOKEN_LOOKUP = select(TOKENS.c.id, TOKENS.c.name, TOKENS.c.role, TOKENS.c.last_used).where(
    TOKENS.c.token_hash == bindparam("hash"),
    TOKENS.c.expires_at > bindparam("at"),
    TOKENS.c.revoked_at.is_(None),
)


@dataclass(frozen=True, slots=True)
class SessionTimes:
    idle_s: int = 30 * 60
    max_s: int = 12 * 3600


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a signed-in user or a token, with the role they act as."""

    name: str
    role: Role
    via: Literal["session", "token"]
    ref: int
    """The session's or the token's row id."""
    must_change: bool = False

    @property
    def actor(self) -> str:
        """Who the audit log names: the user, or ``token:NAME``."""
        return self.name if self.via == "session" else f"token:{self.name}"


def open_session(
    engine: Engine,
    user: User,
    *,
    address: str = "",
    user_agent: str = "",
    times: SessionTimes = SessionTimes(),
) -> str:
    """A new session for ``user``; the token for the cookie (only its hash is kept)."""
    token = new_token()
    at = now()
    with writer(engine).begin() as conn:
        conn.execute(
            insert(WEB_SESSIONS).values(
                token_hash=token_hash(token),
                user_id=user.id,
                created_at=at,
                expires_at=at + timedelta(seconds=times.max_s),
                last_seen=at,
                address=address[:64],
                user_agent=user_agent[:200],
            )
        )
        # housekeeping: this user's expired sessions
        conn.execute(
            delete(WEB_SESSIONS).where(
                WEB_SESSIONS.c.user_id == user.id, WEB_SESSIONS.c.expires_at < at
            )
        )
    return token


def resolve_session(
    engine: Engine, token: str, *, times: SessionTimes = SessionTimes()
) -> Principal | None:
    """The user of a live session (not expired, not idle too long, user active)."""
    if not token or len(token) > 100:
        return None
    at = now()
    with engine.connect() as conn:
        row = conn.execute(
            _SESSION_LOOKUP,
            {"hash": token_hash(token), "at": at, "idle": at - timedelta(seconds=times.idle_s)},
        ).first()
    if row is None:
        return None
    if at - row.last_seen > timedelta(seconds=_TOUCH_S):
        with writer(engine).begin() as conn:
            conn.execute(
                update(WEB_SESSIONS).where(WEB_SESSIONS.c.id == row.id).values(last_seen=at)
            )
    return Principal(row.name, Role(row.role), "session", row.id, bool(row.must_change))


def close_session(engine: Engine, token: str) -> bool:
    with writer(engine).begin() as conn:
        return bool(
            conn.execute(
                delete(WEB_SESSIONS).where(WEB_SESSIONS.c.token_hash == token_hash(token))
            ).rowcount
        )


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    prefix: str
    role: Role
    created_at: datetime
    created_by: str
    expires_at: datetime
    revoked_at: datetime | None
    last_used: datetime | None

    @classmethod
    def of(cls, row: Any) -> TokenInfo:
        m = dict(row._mapping)
        m.pop("token_hash", None)
        m["role"] = Role(m["role"])
        return cls(**m)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "role": self.role.value,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "expires_at": self.expires_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used": self.last_used.isoformat() if self.last_used else None,
        }


def create_token(
    engine: Engine, role: str, days: int, *, actor: str, name: str = ""
) -> tuple[TokenInfo, str]:
    """A token acting as ``role`` for ``days`` days; returns it (shown once) and its row."""
    the_role = parse_role(role)
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise InputError(f"a token lives 1 to {MAX_TOKEN_DAYS} days, not {days}", where="expires")
    token = new_token(TOKEN_PREFIX)
    at = now()
    with writer(engine).begin() as conn:
        row_id = conn.execute(
            insert(TOKENS)
            .values(
                token_hash=token_hash(token),
                prefix=token[:10],
                name=name[:80] or f"{the_role.value}-{at:%Y%m%d%H%M%S}",
                role=the_role.value,
                created_at=at,
                created_by=actor,
                expires_at=at + timedelta(days=days),
            )
            .returning(TOKENS.c.id)
        ).scalar_one()
        info = TokenInfo.of(conn.execute(select(TOKENS).where(TOKENS.c.id == row_id)).one())
        audit.record(
            conn,
            actor=actor,
            action="add",
            target=f"token:{info.name}",
            details={"role": the_role.value, "expires_at": info.expires_at.isoformat()},
        )
    return info, token


def list_tokens(engine: Engine) -> list[TokenInfo]:
    with engine.connect() as conn:
        return [TokenInfo.of(r) for r in conn.execute(select(TOKENS).order_by(TOKENS.c.id))]


def revoke_token(engine: Engine, token_id: int, *, actor: str) -> TokenInfo:
    with writer(engine).begin() as conn:
        row = conn.execute(select(TOKENS).where(TOKENS.c.id == token_id)).first()
        if row is None:
            raise NotFoundError("no such token", where=f"token {token_id}")
        conn.execute(update(TOKENS).where(TOKENS.c.id == token_id).values(revoked_at=now()))
        audit.record(conn, actor=actor, action="update", target=f"token:{row.name}",
                     details={"revoked": True})  # fmt: skip
        return TokenInfo.of(conn.execute(select(TOKENS).where(TOKENS.c.id == token_id)).one())


def resolve_token(engine: Engine, token: str) -> Principal:
    """The principal of a bearer token; :class:`NotSignedInError` for an unknown,
    expired or revoked one (the same answer for each)."""
    at = now()
    if token.startswith(TOKEN_PREFIX) and len(token) <= 100:
        with engine.connect() as conn:
            row = conn.execute(_TOKEN_LOOKUP, {"hash": token_hash(token), "at": at}).first()
        if row is not None:
            if row.last_used is None or at - row.last_used > timedelta(seconds=_TOUCH_S):
                with writer(engine).begin() as conn:
                    conn.execute(update(TOKENS).where(TOKENS.c.id == row.id).values(last_used=at))
            return Principal(row.name, Role(row.role), "token", row.id)
    raise NotSignedInError("unknown, expired or revoked token")
