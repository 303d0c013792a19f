"""``posfleet notices verify`` on plain DB-API (fleet.core.dbapi): its SQL is what the bare
clauses compile to today, on both dialects; what it writes is what SQLAlchemy writes and
reads back; its transaction is all or nothing; its schema check and errors are
fleet.core.db's (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from fleet.core import audit, db, verify_sql
from fleet.core.clauses import VERIFY_STATEMENTS, render_verify_sql
from fleet.core.dbapi import QuickConnection, QuickDatabase
from fleet.core.events import emit
from fleet.core.models import AUDIT, EVENTS, VERIFICATIONS
from fleet.notices.verify import verify
from fleet.notices.verify_log import log_verification

ROOT = Path(__file__).resolve().parents[3]
AT = datetime(2026, 3, 1, 17, 30, 5, 120, tzinfo=timezone(timedelta(hours=8)))


def test_the_committed_sql_is_what_the_clauses_compile_to_today() -> None:
    committed = (ROOT / "fleet" / "core" / "verify_sql.py").read_text(encoding="utf-8")
    assert committed == render_verify_sql(), (
        "fleet/core/verify_sql.py is stale: run .venv/bin/python scripts/compile_verify_sql.py"
    )
    assert set(verify_sql.STATEMENTS) == set(VERIFY_STATEMENTS)
    for name, by_dialect in verify_sql.STATEMENTS.items():
        assert set(by_dialect) == {"sqlite", "postgresql"}
        for param in verify_sql.PARAMS[name]:
            assert f":{param}" in by_dialect["sqlite"]
            assert f"%({param})s" in by_dialect["postgresql"]


def _write(where: QuickConnection | Any, n: int) -> tuple[int, int]:
    audit.record(where, actor="agent", action="verify", target=f"t:{n}", details={"n": n}, at=AT)
    log_id = log_verification(
        where, at=AT, code=f"C{n}", genuine=bool(n % 2), actor="agent", merchant_id=None,
        region="north", address="10.0.0.1",
    )  # fmt: skip
    event_id = emit(where, "verify.not_genuine", {"code": f"C{n}", "région": "北"}, at=AT)
    return log_id, event_id


def _rows(engine: Engine) -> list[list[dict[str, Any]]]:
    """Every audit entry, verification and event, oldest first, without their ids."""
    with engine.connect() as conn:
        return [
            [
                {k: v for k, v in row._mapping.items() if k != "id"}
                for row in conn.execute(select(table).order_by(table.c.id))
            ]
            for table in (AUDIT, VERIFICATIONS, EVENTS)
        ]


def test_what_dbapi_writes_is_what_sqlalchemy_writes(engine: Engine, db_url: str) -> None:
    quick = QuickDatabase.open(db_url)
    try:
        with quick.begin() as conn:
            log_id, event_id = _write(conn, 1)
    finally:
        quick.close()
    with db.writer(engine).begin() as sa_conn:
        assert _write(sa_conn, 1) == (log_id + 1, event_id + 1)
    entries, checks, events = _rows(engine)
    assert len(entries) == len(checks) == len(events) == 2
    assert entries[0] == entries[1] and checks[0] == checks[1] and events[0] == events[1]
    assert entries[0]["at"] == AT and entries[0]["details"] == {"n": 1}
    assert checks[0]["genuine"] is True and checks[0]["region"] == "north"
    assert checks[0]["at"] == AT and checks[0]["message_id"] is None
    assert events[0]["payload"] == {"code": "C1", "région": "北"}
    assert events[0]["fanned_out"] is False
    if db_url.startswith("sqlite"):  # stored byte for byte as SQLAlchemy stores them
        with engine.connect() as conn:
            raw = conn.exec_driver_sql("SELECT at, details FROM audit ORDER BY id").all()
        assert tuple(raw[0]) == tuple(raw[1]) == ("2026-03-01 09:30:05.000120", '{"n": 1}')


def test_a_failed_check_writes_nothing(engine: Engine, db_url: str) -> None:
    quick = QuickDatabase.open(db_url)
    try:
        with pytest.raises(ValueError, match="naive datetime"), quick.begin() as conn:
            audit.record(conn, actor="a", action="verify", target="t:9", details={}, at=AT)
            log_verification(conn, at=AT.replace(tzinfo=None), code="X", genuine=False, actor="a")
        with quick.begin() as conn:  # the connection is usable again
            assert conn.first("message_by_code", code="X") is None
    finally:
        quick.close()
    with engine.connect() as conn:
        assert conn.execute(select(AUDIT).where(AUDIT.c.target == "t:9")).first() is None


def test_verify_on_dbapi_answers_as_on_the_engine(loaded: Engine, db_url: str) -> None:
    quick = QuickDatabase.open(db_url)
    try:
        quick.require_current()
        plain = verify(quick, "zzzzz zzzzz", actor="cc", caller="M00000000000004")
    finally:
        quick.close()
    pooled = verify(loaded, "ZZZZZ-ZZZZZ", actor="cc", caller="M00000000000004")
    assert plain == pooled and not plain.genuine
    with loaded.connect() as conn:
        checks = conn.execute(select(VERIFICATIONS.c.region, VERIFICATIONS.c.actor)).all()
        events = conn.execute(select(EVENTS.c.payload).where(EVENTS.c.kind.like("verify%"))).all()
    assert len(checks) == 2 and checks[0] == checks[1] and checks[0][0]
    assert events[0] == events[1]


def _same_error(url: str) -> str:
    with pytest.raises(db.DatabaseError) as by_engine:
        db.require_current(db.connect(url))
    quick = QuickDatabase.open(url)
    try:
        with pytest.raises(db.DatabaseError) as by_dbapi:
            quick.require_current()
    finally:
        quick.close()
    assert type(by_dbapi.value) is type(by_engine.value)
    assert str(by_dbapi.value) == str(by_engine.value)
    return str(by_dbapi.value)


def test_schema_check_and_its_errors_are_the_engines(db_url: str) -> None:
    assert _same_error(db_url).endswith(": has no posfleet schema")
    engine = db.connect(db_url)
    try:
        db.upgrade(engine, "0004")
        assert _same_error(db_url).endswith(f"is at schema revision 0004, not {db.HEAD_REVISION}")
        db.upgrade(engine)
        QuickDatabase.open(db_url).require_current()  # current: no error
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO alembic_version VALUES ('zzzz')"))
        assert "has 2 schema heads" in _same_error(db_url)
    finally:
        engine.dispose()


def test_sqlite_paths_and_urls(tmp_path: Path) -> None:
    with pytest.raises(db.DatabaseError) as info:
        QuickDatabase.open(str(tmp_path / "none" / "x.db"))
    assert (
        str(info.value)
        == f"{tmp_path / 'none' / 'x.db'}: directory {tmp_path / 'none'} does not exist"
    )
    for url in (
        str(tmp_path / "a.db"),
        f"sqlite:///{tmp_path}/b.db",
        f"sqlite:///{tmp_path}/c%20d.db",
    ):
        assert _same_error(url).endswith(": has no posfleet schema")
    assert QuickDatabase.open(f"sqlite:///{tmp_path}/c%20d.db").dialect == "sqlite"
    unreachable = _same_error("postgresql://nobody:secret@127.0.0.1:1/x")
    assert unreachable.startswith("postgresql+psycopg://nobody:***@127.0.0.1:1/x: ")


def test_an_instant_keeps_its_instant() -> None:
    quick = QuickDatabase.open(":memory:")
    try:
        raw = quick._connection()
        raw.execute(
            "CREATE TABLE notice (id INTEGER, kind TEXT, ref TEXT, created_at TEXT, message_id INTEGER)"
        )
        raw.execute("INSERT INTO notice VALUES (1, 'k', 'r', '2026-03-01 09:30:05.000120', 7)")
        with quick.begin() as conn:
            [row] = conn.rows("notices_of_message", message_id=7)
        assert row["created_at"] == AT and row["created_at"].tzinfo is UTC
        with quick.begin() as conn, pytest.raises(TypeError, match="takes"):
            conn.rows("notices_of_message", id=7)
    finally:
        quick.close()
