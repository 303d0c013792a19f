"""Engines and schema: a database URL in, an engine out. Nothing is created at import.

The URL comes from ``--db``, else ``POSFLEET_DB``, else the SQLite file ``posfleet.db``
in the current directory. A bare path is taken as a SQLite file; ``postgresql://`` URLs
go through psycopg 3. SQLite runs in WAL mode with foreign keys on, and temporary storage
in memory.

The schema is Alembic's (``fleet/core/migrations``): :func:`upgrade` brings a database to the
newest revision, and :func:`require_current` refuses to work on one that is behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

__all__ = [
    "DEFAULT_DB",
    "DatabaseError",
    "connect",
    "current_revision",
    "display_url",
    "head_revision",
    "require_current",
    "resolve_url",
    "upgrade",
    "writer",
]

DEFAULT_DB = "posfleet.db"
MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseError(Exception):
    """The database can't be used: bad URL, unreachable, or schema not current."""


def resolve_url(db: str | None = None) -> URL:
    """``--db`` value → SQLAlchemy URL (``postgresql://`` is driven by psycopg 3)."""
    raw = db or os.environ.get("POSFLEET_DB") or DEFAULT_DB
    if "://" not in raw:
        raw = f"sqlite:///{raw}"
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise DatabaseError(f"bad database URL {raw!r}: {exc}") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseError(
            f"unsupported database {url.get_backend_name()!r}: SQLite or PostgreSQL"
        )
    return url


def display_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, delimit transactions: the module's legacy
    # mode starts one only before a write, so a SAVEPOINT (begin_nested) outside it would
    # start and, on RELEASE, COMMIT its own (a killed import would leave its first chunks).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    # Statement journals (one per row of an upsert that checks foreign keys) in memory,
    # not in temporary files: halves the time of a 1 M-terminal import.
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Readers begin DEFERRED: in WAL mode they never wait for a writer (a report runs while
    # a 30 s import holds the write lock). Writers (:func:`writer`) begin IMMEDIATE: a
    # deferred transaction that reads and then writes fails at once (SQLITE_BUSY, no busy
    # wait) when another connection wrote in between; an immediate one waits its turn.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def writer(engine: Engine) -> Engine:
    """``engine`` for a transaction that writes: ``with writer(engine).begin() as conn``.

    On SQLite it takes the write lock at BEGIN; on PostgreSQL it changes nothing."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")


def connect(db: str | URL | None = None, **kwargs: Any) -> Engine:
    """An engine for ``db`` (see :func:`resolve_url`)."""
    url = db if isinstance(db, URL) else resolve_url(db)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:":
            parent = Path(database).parent
            if not parent.is_dir():
                raise DatabaseError(f"{database}: directory {parent} does not exist")
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise DatabaseError(f"{display_url(engine.url)}: {_first_line(exc)}") from None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` (idempotent)."""
    try:
        command.upgrade(_config(engine), revision)
    except OperationalError as exc:
        raise DatabaseError(f"{display_url(engine.url)}: {_first_line(exc)}") from None


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(_config(engine), revision)


def require_current(engine: Engine) -> None:
    """Refuse a database whose schema is not at the newest revision."""
    current = current_revision(engine)
    if current != head_revision():
        where = display_url(engine.url)
        if current is None:
            raise DatabaseError(f"{where} has no posfleet schema: run `posfleet db upgrade`")
        raise DatabaseError(
            f"{where} is at schema revision {current}, not {head_revision()}: "
            "run `posfleet db upgrade`"
        )


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
