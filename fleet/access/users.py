"""Users: add, list, disable, reset a password, change one's own, sign in.

Every change is audited with the acting person as the actor. A password set by someone
else (a one-time password printed once, or one read from stdin for ``users add``) must
be changed at the next sign-in. Disabling a user or resetting their password ends their
live sessions at once (the sessions are rows; :mod:`fleet.access.sessions`).

Signing in is throttled per user name and per client address (:class:`Limits`): past
the limit the password is not even checked, and the answer is the same for a known and
an unknown name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from fleet.access import throttle
from fleet.access.errors import NotSignedInError, ThrottledError
from fleet.access.models import USERS, WEB_SESSIONS
from fleet.access.roles import Role, parse_role
from fleet.access.secrets import (
    MIN_PASSWORD,
    check_password,
    hash_password,
    needs_rehash,
    one_time_password,
)
from fleet.core import audit
from fleet.core.db import writer
from fleet.core.errors import ConflictError, InputError, NotFoundError
from fleet.core.models import now

__all__ = [
    "Limits",
    "User",
    "add_user",
    "change_password",
    "disable_user",
    "get_user",
    "list_users",
    "reset_password",
    "sign_in",
]

_LOGIN_USER = throttle.Limit(5, 900)
_LOGIN_ADDRESS = throttle.Limit(20, 900)
_VERIFY_USER = throttle.Limit(20, 300)
_VERIFY_ADDRESS = throttle.Limit(60, 300)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,79}")


@dataclass(frozen=True, slots=True)
class Limits:
    """Throttles: sign-in failures per user and per address; verifications likewise."""

    login_user: throttle.Limit = _LOGIN_USER
    login_address: throttle.Limit = _LOGIN_ADDRESS
    verify_user: throttle.Limit = _VERIFY_USER
    verify_address: throttle.Limit = _VERIFY_ADDRESS


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: Role
    active: bool
    must_change: bool
    created_at: datetime
    created_by: str
    disabled_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> User:
        m = row._mapping
        return cls(
            id=m["id"],
            name=m["name"],
            role=Role(m["role"]),
            active=bool(m["active"]),
            must_change=bool(m["must_change"]),
            created_at=m["created_at"],
            created_by=m["created_by"],
            disabled_at=m["disabled_at"],
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role.value,
            "active": self.active,
            "must_change_password": self.must_change,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
        }


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InputError(
            "a user name is 1-80 letters, digits, '.', '_', '@' or '-', starting with a "
            "letter or digit",
            where=f"user {name[:80]!r}",
        )
    return name


def check_new_password(password: str, *, name: str = "") -> str:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"a password has at least {MIN_PASSWORD} characters", where="password")
    if name and password.lower() == name.lower():
        raise InputError("a password may not be the user's name", where="password")
    return password


def _row(conn: Connection, name: str) -> Any:
    row = conn.execute(select(USERS).where(USERS.c.name == name)).first()
    if row is None:
        raise NotFoundError("no such user", where=f"user {name}")
    return row


def get_user(engine: Engine, name: str) -> User:
    with engine.connect() as conn:
        return User.of(_row(conn, name))


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        return [User.of(r) for r in conn.execute(select(USERS).order_by(USERS.c.name))]


def add_user(
    engine: Engine, name: str, role: str, *, actor: str, password: str | None = None
) -> tuple[User, str | None]:
    """A new user; with no ``password``, a one-time one is made and returned (shown once,
    to be changed at the first sign-in). A given password is also one-time unless it is
    the user's own choice (``users add`` reads it from stdin for scripts)."""
    check_name(name)
    the_role = parse_role(role)
    made = None
    if password is None:
        made = password = one_time_password()
    else:
        check_new_password(password, name=name)
    at = now()
    with writer(engine).begin() as conn:
        if conn.execute(select(USERS.c.id).where(USERS.c.name == name)).first():
            raise ConflictError("a user of that name exists", where=f"user {name}")
        conn.execute(
            insert(USERS).values(
                name=name,
                role=the_role.value,
                password_hash=hash_password(password),
                active=True,
                must_change=made is not None,
                created_at=at,
                created_by=actor,
            )
        )
        audit.record(
            conn, actor=actor, action="add", target=f"user:{name}", details={"role": the_role.value}
        )
        user = User.of(_row(conn, name))
    return user, made


def disable_user(engine: Engine, name: str, *, actor: str, reason: str = "") -> User:
    """Disable ``name`` and end every live session of theirs (their tokens are theirs
    no more: tokens belong to roles and are revoked on their own)."""
    with writer(engine).begin() as conn:
        row = _row(conn, name)
        if name == actor:
            raise ConflictError("you cannot disable yourself", where=f"user {name}")
        conn.execute(
            update(USERS).where(USERS.c.id == row.id).values(active=False, disabled_at=now())
        )
        ended = conn.execute(delete(WEB_SESSIONS).where(WEB_SESSIONS.c.user_id == row.id)).rowcount
        audit.record(
            conn,
            actor=actor,
            action="update",
            target=f"user:{name}",
            details={"active": [True, False], "sessions_ended": ended},
            reason=reason,
        )
        return User.of(_row(conn, name))


def reset_password(
    engine: Engine, name: str, *, actor: str, password: str | None = None
) -> str | None:
    """A new one-time password for ``name`` (returned, shown once), or the given one;
    their live sessions end; they change it at the next sign-in."""
    made = None
    if password is None:
        made = password = one_time_password()
    else:
        check_new_password(password, name=name)
    with writer(engine).begin() as conn:
        row = _row(conn, name)
        conn.execute(
            update(USERS)
            .where(USERS.c.id == row.id)
            .values(password_hash=hash_password(password), must_change=True)
        )
        ended = conn.execute(delete(WEB_SESSIONS).where(WEB_SESSIONS.c.user_id == row.id)).rowcount
        audit.record(
            conn,
            actor=actor,
            action="update",
            target=f"user:{name}",
            details={"password": "reset", "sessions_ended": ended},
        )
    return made


def change_password(engine: Engine, name: str, old: str, new: str) -> None:
    """``name`` changes their own password (the old one must match)."""
    check_new_password(new, name=name)
    if new == old:
        raise InputError("the new password is the old one", where="password")
    with writer(engine).begin() as conn:
        row = _row(conn, name)
        if not check_password(row.password_hash, old):
            raise NotSignedInError("the current password does not match", where="password")
        conn.execute(
            update(USERS)
            .where(USERS.c.id == row.id)
            .values(password_hash=hash_password(new), must_change=False)
        )
        audit.record(
            conn,
            actor=name,
            action="update",
            target=f"user:{name}",
            details={"password": "changed"},
        )


def sign_in(
    engine: Engine, name: str, password: str, *, address: str, limits: Limits = Limits()
) -> User:
    """The user whose name and password these are, or :class:`NotSignedInError`;
    :class:`ThrottledError` past the failure limits (per name, per address)."""
    user_key, addr_key = f"login:user:{name.lower()[:80]}", f"login:addr:{address}"
    with engine.connect() as conn:
        over = throttle.count(conn, user_key, limits.login_user) >= limits.login_user.limit or (
            throttle.count(conn, addr_key, limits.login_address) >= limits.login_address.limit
        )
        row = conn.execute(select(USERS).where(USERS.c.name == name)).first()
    if over:
        raise ThrottledError(
            "too many failed sign-ins: try again later",
            retry_after=limits.login_user.retry_after(),
        )
    ok = check_password(row.password_hash if row else None, password)
    if not ok or row is None or not row.active:
        with writer(engine).begin() as conn:
            throttle.hit(conn, user_key, limits.login_user)
            throttle.hit(conn, addr_key, limits.login_address)
            audit.record(
                conn,
                actor=name[:80] or "?",
                action="sign_in",
                target=f"user:{name[:80]}",
                details={"ok": False, "address": address},
            )
        raise NotSignedInError("wrong name or password, or the user is disabled")
    with writer(engine).begin() as conn:
        if needs_rehash(row.password_hash):
            conn.execute(
                update(USERS)
                .where(USERS.c.id == row.id)
                .values(password_hash=hash_password(password))
            )
        audit.record(
            conn,
            actor=name,
            action="sign_in",
            target=f"user:{name}",
            details={"ok": True, "address": address},
        )
    return User.of(row)
