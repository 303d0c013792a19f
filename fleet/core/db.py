"""Engines and schema: a database URL in, an engine out. Nothing is created at import.

The URL comes from ``--db``, else ``POSFLEET_DB``, else the SQLite file ``posfleet.db``
in the current directory. A bare path is taken as a SQLite file; ``postgresql://`` URLs
go through psycopg 3. SQLite runs in WAL mode with foreign keys on, and temporary storage
in memory.

The schema is Alembic's (``fleet/core/migrations``): :func:`upgrade` brings a database to the
newest revision, and :func:`require_current` refuses to work on one that is behind.

Every command opens an engine and checks its schema, so that check stays cheap: it reads
Alembic's ``alembic_version`` row with one query and compares it with
:data:`HEAD_REVISION` (a test keeps that constant equal to the newest migration). Alembic
itself is imported only to migrate (:func:`upgrade`, :func:`downgrade`), and SQLAlchemy
only by the functions that make or use an engine: ``posfleet notices verify`` uses this
module's constants and errors and runs on plain DB-API (:mod:`fleet.core.dbapi`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.core.errors import JobError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Engine
    from sqlalchemy.engine import URL

__all__ = [
    "DEFAULT_DB",
    "HEAD_REVISION",
    "DatabaseBusyError",
    "DatabaseError",
    "SchemaNotCurrentError",
    "connect",
    "current_revision",
    "display_url",
    "head_revision",
    "require_current",
    "resolve_url",
    "translate",
    "upgrade",
    "writer",
]

DEFAULT_DB = "posfleet.db"
MIGRATIONS = Path(__file__).with_name("migrations")
HEAD_REVISION = "0011"
"""The newest migration's revision: what :func:`require_current` wants to find."""
_VERSION_TABLE = "alembic_version"


class DatabaseError(JobError):
    """The database can't be used: a bad URL, unreachable, or its schema not current.

    ``where`` is the database, its password hidden."""


class DatabaseBusyError(DatabaseError):
    """Another connection held the write lock for longer than the busy timeout."""


BUSY_TIMEOUT_S = 30.0
"""How long a command waits for another writer to finish (SQLite's busy timeout), unless
``POSFLEET_BUSY_TIMEOUT`` (seconds) says otherwise; then it ends with "busy"."""


def busy_timeout_s() -> float:
    """The busy timeout in seconds (``POSFLEET_BUSY_TIMEOUT``, else :data:`BUSY_TIMEOUT_S`)."""
    raw = os.environ.get("POSFLEET_BUSY_TIMEOUT", "")
    try:
        value = float(raw) if raw.strip() else BUSY_TIMEOUT_S
    except ValueError:
        raise DatabaseError(f"POSFLEET_BUSY_TIMEOUT: not a number of seconds: {raw!r}") from None
    return max(0.0, value)


_NOT_A_DATABASE = ("file is not a database", "file is encrypted or is not a database")
_BUSY = ("database is locked", "database table is locked", "lock timeout")


def translate(exc: BaseException, where: str | None = None) -> DatabaseError | None:
    """The database error a person can act on, as one :class:`DatabaseError` naming
    ``where`` (the database): another writer holding the lock past the busy timeout
    (:class:`DatabaseBusyError`), a file that is not a database, a database that can't be
    opened, read or written (SQLite's and PostgreSQL's operational errors). ``None`` for
    anything else (a constraint or a statement that fails is a bug, and keeps its
    traceback). The CLI's root applies it to whatever a command raises."""
    import sqlite3  # noqa: PLC0415 - the standard library's, loaded with SQLAlchemy's dialect

    from sqlalchemy.exc import DatabaseError as DriverDatabaseError  # noqa: PLC0415
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415

    orig = getattr(exc, "orig", None) or exc
    if not isinstance(exc, DriverDatabaseError | sqlite3.DatabaseError):
        return None
    line = _first_line(exc)
    if any(text in line for text in _BUSY):
        return DatabaseBusyError(
            f"busy: another command is writing to the database (waited {busy_timeout_s():g} s); "
            "try again when it ends",
            where=where,
        )
    if any(text in line for text in _NOT_A_DATABASE):
        return DatabaseError("is not a database (not an SQLite file)", where=where)
    if isinstance(exc, OperationalError) or type(orig).__name__ == "OperationalError":
        return DatabaseError(line, where=where)
    return None


class SchemaNotCurrentError(DatabaseError):
    """The database has no posfleet schema, or an older one than this posfleet's."""

    def __init__(self, where: str, current: str | None, head: str) -> None:
        if current is None:
            message = "has no posfleet schema"
        else:
            message = f"is at schema revision {current}, not {head}"
        super().__init__(message, where=where)
        self.current = current
        self.head = head


def resolve_url(db: str | None = None) -> URL:
    """``--db`` value → SQLAlchemy URL (``postgresql://`` is driven by psycopg 3)."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - SQLAlchemy only for an engine
    from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

    raw = db or os.environ.get("POSFLEET_DB") or DEFAULT_DB
    if "://" not in raw:
        raw = f"sqlite:///{raw}"
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise DatabaseError(f"not a database URL: {exc}", where=repr(raw)) from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseError(
            f"unsupported database {url.get_backend_name()!r}: SQLite or PostgreSQL",
            where=display_url(url),
        )
    return url


def display_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def sqlite_pragmas(dbapi_conn: Any, _record: Any = None) -> None:
    """How every SQLite connection is set up (SQLAlchemy's and :mod:`fleet.core.dbapi`'s)."""
    # Let SQLAlchemy, not the sqlite3 module, delimit transactions: the module's legacy
    # mode starts one only before a write, so a SAVEPOINT (begin_nested) outside it would
    # start and, on RELEASE, COMMIT its own (a killed import would leave its first chunks).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s() * 1000)}")
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
    from sqlalchemy import create_engine, event  # noqa: PLC0415 - SQLAlchemy only for an engine
    from sqlalchemy.engine import URL  # noqa: PLC0415

    url = db if isinstance(db, URL) else resolve_url(db)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:":
            parent = Path(database).parent
            if not parent.is_dir():
                raise DatabaseError(f"directory {parent} does not exist", where=database)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _config(engine: Engine) -> Config:
    from alembic.config import Config  # noqa: PLC0415 - Alembic only to migrate

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The newest revision of the migrations (:data:`HEAD_REVISION`)."""
    return HEAD_REVISION


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (Alembic's), or none when it has no schema."""
    from sqlalchemy import inspect, text  # noqa: PLC0415 - SQLAlchemy only for an engine
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415

    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(_VERSION_TABLE):
                return None
            found = conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars()
            versions = list(found)
    except OperationalError as exc:
        raise DatabaseError(_first_line(exc), where=display_url(engine.url)) from None
    if len(versions) > 1:
        raise DatabaseError(
            f"has {len(versions)} schema heads ({', '.join(versions)})",
            where=display_url(engine.url),
        )
    return versions[0] if versions else None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` (idempotent)."""
    from alembic import command  # noqa: PLC0415 - Alembic only to migrate
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415

    try:
        command.upgrade(_config(engine), revision)
    except OperationalError as exc:
        raise DatabaseError(_first_line(exc), where=display_url(engine.url)) from None


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command  # noqa: PLC0415 - Alembic only to migrate

    command.downgrade(_config(engine), revision)


def require_current(engine: Engine) -> None:
    """Refuse a database whose schema is not at the newest revision."""
    current = current_revision(engine)
    if current != HEAD_REVISION:
        raise SchemaNotCurrentError(display_url(engine.url), current, HEAD_REVISION)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
