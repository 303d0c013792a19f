"""Users, sessions, tokens and throttles in the database (SQLite and PostgreSQL), and the
CLI that manages them: nothing secret stored in clear, one-time passwords, expiry,
disabling, throttling windows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, text, update
from typer.testing import CliRunner

from fleet.access import (
    NotSignedInError,
    SessionTimes,
    ThrottledError,
    add_user,
    change_password,
    create_token,
    disable_user,
    list_users,
    open_session,
    resolve_session,
    resolve_token,
    revoke_token,
    sign_in,
)
from fleet.access.models import TOKENS, USERS, WEB_SESSIONS
from fleet.access.roles import MATRIX, Perm, Role, allowed
from fleet.access.throttle import Limit, count, hit
from fleet.cli import app
from fleet.core.errors import ConflictError, InputError
from fleet.core.models import now


def _dump(engine: Engine) -> str:
    with engine.connect() as conn:
        return " ".join(
            str(tuple(r))
            for table in ("app_user", "web_session", "api_token")
            for r in conn.execute(text(f"SELECT * FROM {table}"))
        )


def test_users_passwords_and_sign_in(engine: Engine) -> None:
    user, made = add_user(engine, "ana", "ops", actor="root")
    assert made and len(made) == 16 and user.must_change
    with pytest.raises(ConflictError):
        add_user(engine, "ana", "agent", actor="root")
    with pytest.raises(InputError, match="unknown role"):
        add_user(engine, "bo", "superuser", actor="root")
    with pytest.raises(InputError, match="at least 10"):
        add_user(engine, "bo", "agent", actor="root", password="short")
    with pytest.raises(InputError, match="user name"):
        add_user(engine, "<b>", "agent", actor="root")
    assert sign_in(engine, "ana", made, address="1.2.3.4").name == "ana"
    with pytest.raises(NotSignedInError):
        sign_in(engine, "ana", made + "x", address="1.2.3.4")
    with pytest.raises(NotSignedInError):
        sign_in(engine, "nobody", made, address="1.2.3.4")
    change_password(engine, "ana", made, "correct horse battery")
    assert not list_users(engine)[0].must_change
    with engine.connect() as conn:
        stored = conn.execute(select(USERS.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in _dump(engine)


def test_sessions_end_when_the_user_is_disabled_or_idle(engine: Engine) -> None:
    user, _ = add_user(engine, "li", "agent", actor="root", password="0123456789ab")
    token = open_session(engine, user, address="10.0.0.1")
    principal = resolve_session(engine, token)
    assert principal is not None and principal.role is Role.AGENT
    assert token not in _dump(engine)  # only its hash
    assert resolve_session(engine, token + "x") is None
    with engine.begin() as conn:  # idle for 31 minutes
        conn.execute(update(WEB_SESSIONS).values(last_seen=now() - timedelta(minutes=31)))
    assert resolve_session(engine, token, times=SessionTimes(idle_s=1800)) is None
    token = open_session(engine, user)
    disable_user(engine, "li", actor="root", reason="left")
    assert resolve_session(engine, token) is None
    with pytest.raises(NotSignedInError):
        sign_in(engine, "li", "0123456789ab", address="10.0.0.1")


def test_tokens(engine: Engine) -> None:
    _, token = create_token(engine, "auditor", 30, actor="root", name="reports")
    assert token.startswith("pft_") and token not in _dump(engine)
    assert resolve_token(engine, token).role is Role.AUDITOR
    assert resolve_token(engine, token).actor == "token:reports"
    with engine.begin() as conn:
        conn.execute(update(TOKENS).values(expires_at=now() - timedelta(seconds=1)))
    with pytest.raises(NotSignedInError):
        resolve_token(engine, token)
    info2, token2 = create_token(engine, "ops", 1, actor="root")
    revoke_token(engine, info2.id, actor="root")
    with pytest.raises(NotSignedInError):
        resolve_token(engine, token2)
    with pytest.raises(InputError, match="1 to 366 days"):
        create_token(engine, "ops", 400, actor="root")


def test_throttle_windows_and_sign_in_limits(engine: Engine) -> None:
    limit = Limit(3, 60)
    with engine.begin() as conn:
        assert [hit(conn, "k", limit, at=1000.0) for _ in range(4)] == [1, 2, 3, 4]
        assert hit(conn, "k", limit, at=1061.0) == 1  # the next window
        assert count(conn, "k", limit, at=1000.0) == 4
    add_user(engine, "kim", "ops", actor="root", password="0123456789ab")
    for _ in range(5):
        with pytest.raises(NotSignedInError):
            sign_in(engine, "kim", "wrong-password", address="9.9.9.9")
    with pytest.raises(ThrottledError) as refused:
        sign_in(engine, "kim", "0123456789ab", address="8.8.8.8")
    assert refused.value.http_status == 429 and refused.value.retry_after > 0


def test_the_matrix() -> None:
    assert MATRIX[Role.ADMIN] == frozenset(Perm)
    assert not allowed(Role.AUDITOR, Perm.ROLLOUT_CONTROL)
    assert not any(allowed(r, Perm.USERS) for r in Role if r is not Role.ADMIN)
    assert allowed(Role.AUDITOR, Perm.AUDIT) and not allowed(Role.OPS, Perm.AUDIT)


def test_cli(engine: Engine, db_url: str) -> None:
    runner = CliRunner()
    added = runner.invoke(
        app, ["--db", db_url, "--actor", "root", "users", "add", "zoe", "--role", "agent"]
    )
    assert added.exit_code == 0 and "one-time password: " in added.stdout
    piped = runner.invoke(
        app, ["--db", db_url, "users", "add", "yan", "--role", "ops", "--password-stdin"],
        input="a-long-enough-password\n",
    )  # fmt: skip
    assert piped.exit_code == 0 and "one-time" not in piped.stdout
    listed = runner.invoke(app, ["--db", db_url, "users", "list", "--format", "json"])
    assert {u["name"] for u in __import__("json").loads(listed.stdout)} == {"zoe", "yan"}
    bad = runner.invoke(app, ["--db", db_url, "users", "add", "x1", "--role", "king"])
    assert bad.exit_code == 2 and "unknown role" in bad.stderr
    assert runner.invoke(app, ["--db", db_url, "users", "disable", "zoe"]).exit_code == 0
    reset = runner.invoke(app, ["--db", db_url, "users", "reset-password", "yan"])
    assert reset.exit_code == 0 and "one-time password: " in reset.stdout
    made = runner.invoke(
        app, ["--db", db_url, "tokens", "create", "--role", "ops", "--expires", "2w"]
    )
    assert made.exit_code == 0 and made.stdout.strip().startswith("pft_")
    assert resolve_token(engine, made.stdout.strip()).role is Role.OPS
    listed = runner.invoke(app, ["--db", db_url, "tokens", "list", "--format", "csv"])
    assert "pft_" in listed.stdout and made.stdout.strip() not in listed.stdout
    gone = runner.invoke(app, ["--db", db_url, "users", "disable", "nobody"])
    assert gone.exit_code == 2 and "no such user" in gone.stderr
