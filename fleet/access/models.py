"""The access tables: users, their sessions, API tokens and throttling counters.

No secret is stored in clear: a password is an Argon2id hash; a session cookie and an
API token are 256-bit random values stored as their SHA-256 (a database reader learns
nothing usable from it, and a lookup is one indexed equality). Declarations only.

==================  ===============================================================
table               holds
==================  ===============================================================
``app_user``        a person (or a script's owner): name, role, password hash, active
``web_session``     a signed-in browser: token hash, user, expiry, last seen, address
``api_token``       a script's bearer token: hash, role, expiry, who made it
``throttle``        failure/attempt counters per key and time window
==================  ===============================================================
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKeyConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from fleet.core.models import UTCDateTime, table_of

__all__ = [
    "THROTTLES",
    "TOKENS",
    "USERS",
    "WEB_SESSIONS",
    "ApiToken",
    "AppUser",
    "Throttle",
    "WebSession",
]


class AppUser(SQLModel, table=True):
    __tablename__ = "app_user"
    __table_args__ = (UniqueConstraint("name", name="uq_app_user_name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80)
    role: str = Field(max_length=12)
    password_hash: str = Field(max_length=200)
    active: bool = True
    must_change: bool = False
    """The password was set by someone else (one-time): change it at next sign-in."""
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_by: str = Field(max_length=80)
    disabled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class WebSession(SQLModel, table=True):
    __tablename__ = "web_session"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_web_session_token"),
        ForeignKeyConstraint(["user_id"], ["app_user.id"], name="fk_web_session_user"),
        Index("ix_web_session_user", "user_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64)
    user_id: int
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    """Absolute end: no session outlives it, however active."""
    last_seen: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    """Idle timeout runs from here (refreshed at most once a minute)."""
    address: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=200)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_api_token_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64)
    prefix: str = Field(max_length=16)
    """The first characters of the token (``pft_AbCd``): to tell tokens apart in a list."""
    name: str = Field(default="", max_length=80)
    role: str = Field(max_length=12)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_by: str = Field(max_length=80)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_used: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class Throttle(SQLModel, table=True):
    """Counts in fixed windows: ``key`` (``login:user:ana``), ``window_start`` (its start, in
    seconds since the epoch), ``count``."""

    __tablename__ = "throttle"
    __table_args__ = (Index("ix_throttle_window", "window_start"),)

    key: str = Field(primary_key=True, max_length=200)
    window_start: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    count: int = 0


USERS = table_of(AppUser)
WEB_SESSIONS = table_of(WebSession)
TOKENS = table_of(ApiToken)
THROTTLES = table_of(Throttle)
