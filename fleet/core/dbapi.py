"""Plain DB-API for ``posfleet notices verify``: the stdlib's sqlite3 or psycopg, no
SQLAlchemy.

The call centre runs ``notices verify`` on every call, and importing SQLAlchemy alone
costs more than the rest of the command. So its path (the schema check, the verification,
the audit entry, the verification log and the event) runs here, on the SQL that
SQLAlchemy compiles from the bare clauses of :mod:`fleet.core.clauses`
(:data:`~fleet.core.clauses.VERIFY_STATEMENTS`), kept compiled per dialect in
:mod:`fleet.core.verify_sql`: one source of the queries, not a second copy. Values cross
as SQLAlchemy's types would carry them (:func:`_bind`, :func:`_result`): an instant is
stored as naive UTC (SQLite: SQLAlchemy's text form), JSON as ``json.dumps`` text
(PostgreSQL: psycopg's ``Json``), a boolean as 0/1 on SQLite.

:meth:`QuickDatabase.open` takes the same ``--db`` values as :func:`fleet.core.db.connect`:
a bare path or ``sqlite:///`` URL goes to sqlite3 (set up as every SQLite connection is,
:func:`fleet.core.db.sqlite_pragmas`), ``postgresql://`` to psycopg; any other form (a
query string on a SQLite URL, a percent sign in its path…) is opened through SQLAlchemy's
engine and then used the same way, as is an engine a caller already has
(:meth:`QuickDatabase.from_engine`: the web console). Errors are those of
:mod:`fleet.core.db`, with the same messages; the database's display name for them is
SQLAlchemy's, so an error (never a check that passes) imports it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.core.db import (
    DEFAULT_DB,
    HEAD_REVISION,
    DatabaseError,
    SchemaNotCurrentError,
    sqlite_pragmas,
)
from fleet.core.verify_sql import COLUMNS, PARAMS, STATEMENTS

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["QuickConnection", "QuickDatabase"]

_SQLITE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")
_PG_PREFIXES = ("postgresql://", "postgres://", "postgresql+psycopg://")
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
"""How SQLAlchemy writes a datetime into SQLite."""


def _bind(kind: str, value: Any, dialect: str) -> Any:
    if value is None:
        return None
    if kind == "instant":
        if value.tzinfo is None:  # as fleet.core.clauses.UTCDateTime refuses it
            raise ValueError(f"naive datetime {value.isoformat()} (give a time zone)")
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive.strftime(_SQLITE_TIME) if dialect == "sqlite" else naive
    if kind == "json":
        if dialect == "sqlite":
            return json.dumps(value)
        from psycopg.types.json import Json  # noqa: PLC0415 - psycopg only on PostgreSQL

        return Json(value)
    if kind == "bool":
        return int(value) if dialect == "sqlite" else bool(value)
    return value


def _result(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "instant":
        if isinstance(value, str):  # SQLite
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if kind == "json":
        return json.loads(value) if isinstance(value, str | bytes) else value
    if kind == "bool":
        return bool(value)
    return value


class QuickConnection:
    """A DB-API connection inside one transaction, running the statements of
    :mod:`fleet.core.verify_sql` by name."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect

    def rows(self, name: str, **params: Any) -> list[dict[str, Any]]:
        """Run statement ``name`` with ``params``; its rows (or RETURNING rows) as dicts."""
        kinds = PARAMS[name]
        if set(params) != set(kinds):
            raise TypeError(f"{name} takes {sorted(kinds)}, not {sorted(params)}")
        bound = {key: _bind(kinds[key], value, self.dialect) for key, value in params.items()}
        cur = self.raw.cursor()
        try:
            cur.execute(STATEMENTS[name][self.dialect], bound)
            columns = COLUMNS[name]
            if not columns:
                return []
            return [
                {col: _result(kind, value) for (col, kind), value in zip(columns, row, strict=True)}
                for row in cur.fetchall()
            ]
        finally:
            cur.close()

    def first(self, name: str, **params: Any) -> dict[str, Any] | None:
        found = self.rows(name, **params)
        return found[0] if found else None

    def scalar(self, name: str, **params: Any) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = self.first(name, **params)
        return None if row is None else next(iter(row.values()))

    def scalar_one(self, name: str, **params: Any) -> Any:
        """The first column of the one row ``name`` must return."""
        found = self.rows(name, **params)
        if len(found) != 1:
            raise LookupError(f"{name}: {len(found)} rows where one was expected")
        return next(iter(found[0].values()))


class QuickDatabase:
    """One database connection for a quick command (opened on first use, closed by
    :meth:`close`); :meth:`begin` is a transaction, :meth:`require_current` the schema
    check of :func:`fleet.core.db.require_current`."""

    def __init__(
        self,
        dialect: str,
        opener: Callable[[], Any],
        where: Callable[[], str],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.dialect = dialect
        self._opener = opener
        self._where = where
        self._on_close = on_close
        self._raw: Any = None

    @classmethod
    def open(cls, db: str | None = None) -> QuickDatabase:
        """The database ``--db`` names (else ``POSFLEET_DB``, else ``posfleet.db``)."""
        raw = db or os.environ.get("POSFLEET_DB") or DEFAULT_DB

        def where() -> str:
            from fleet.core.db import display_url, resolve_url  # noqa: PLC0415

            return display_url(resolve_url(raw))

        path = raw if "://" not in raw else None
        for prefix in _SQLITE_PREFIXES:
            if raw.startswith(prefix):
                path = raw.removeprefix(prefix)
        if path is not None and "?" not in path and "%" not in path:
            if path and path != ":memory:":
                parent = Path(path).parent
                if not parent.is_dir():
                    raise DatabaseError(f"directory {parent} does not exist", where=path)
            return cls("sqlite", lambda: _open_sqlite(path), where)
        pg = next((p for p in _PG_PREFIXES if raw.startswith(p)), None)
        if pg is not None:
            conninfo = "postgresql://" + raw.removeprefix(pg)
            return cls("postgresql", lambda: _open_pg(conninfo), where)
        from fleet.core.db import connect  # noqa: PLC0415 - any other form: SQLAlchemy's

        return cls.from_engine(connect(raw), dispose=True)

    @classmethod
    def from_engine(cls, engine: Engine, *, dispose: bool = False) -> QuickDatabase:
        """A connection of ``engine``'s pool, used as plain DB-API (given back on close)."""
        from fleet.core.db import display_url  # noqa: PLC0415

        holder: list[Any] = []

        def opener() -> Any:
            holder.append(engine.raw_connection())
            return holder[-1].driver_connection

        def on_close() -> None:
            for pooled in holder:
                pooled.close()
            if dispose:
                engine.dispose()

        return cls(engine.dialect.name, opener, lambda: display_url(engine.url), on_close)

    @property
    def where(self) -> str:
        """The database as errors name it (its password hidden)."""
        return self._where()

    def _connection(self) -> Any:
        if self._raw is None:
            self._raw = self._opener()
        return self._raw

    @contextmanager
    def begin(self) -> Iterator[QuickConnection]:
        """A transaction that writes (on SQLite it takes the write lock at BEGIN, as
        :func:`fleet.core.db.writer` does): committed when the block ends, rolled back
        when it raises."""
        raw = self._connection()
        if self.dialect == "sqlite":
            raw.execute("BEGIN IMMEDIATE")
        try:
            yield QuickConnection(raw, self.dialect)
        except BaseException:
            if self.dialect == "sqlite":
                raw.execute("ROLLBACK")
            else:
                raw.rollback()
            raise
        if self.dialect == "sqlite":
            raw.execute("COMMIT")
        else:
            raw.commit()

    def current_revision(self) -> str | None:
        """The schema revision (Alembic's), or none when there is no schema."""
        errors, missing = _errors(self.dialect)
        try:
            raw = self._connection()
            try:
                rows = QuickConnection(raw, self.dialect).rows("schema_revision")
            except missing as exc:
                if self.dialect == "sqlite" and "no such table" not in str(exc):
                    raise
                rows = []
            finally:
                if self.dialect != "sqlite":
                    raw.rollback()  # end the read (or the failed) transaction
        except errors as exc:
            from fleet.core.db import _first_line  # noqa: PLC0415

            raise DatabaseError(_first_line(exc), where=self.where) from None
        versions = [r["version_num"] for r in rows]
        if len(versions) > 1:
            raise DatabaseError(
                f"has {len(versions)} schema heads ({', '.join(versions)})", where=self.where
            )
        return versions[0] if versions else None

    def require_current(self) -> None:
        """Refuse a database whose schema is not at the newest revision."""
        current = self.current_revision()
        if current != HEAD_REVISION:
            raise SchemaNotCurrentError(self.where, current, HEAD_REVISION)

    def close(self) -> None:
        raw, self._raw = self._raw, None
        if self._on_close is not None:
            self._on_close()
        elif raw is not None:
            raw.close()


def _open_sqlite(path: str) -> Any:
    import sqlite3  # noqa: PLC0415

    conn = sqlite3.connect(path or ":memory:", check_same_thread=False)
    sqlite_pragmas(conn)
    return conn


def _open_pg(conninfo: str) -> Any:
    import psycopg  # noqa: PLC0415 - psycopg only on PostgreSQL

    return psycopg.connect(conninfo)


def _errors(dialect: str) -> tuple[type[Exception], type[Exception]]:
    """The driver's operational error (can't connect, locked…) and its missing-table one."""
    if dialect == "sqlite":
        import sqlite3  # noqa: PLC0415

        return sqlite3.OperationalError, sqlite3.OperationalError
    import psycopg  # noqa: PLC0415

    return psycopg.OperationalError, psycopg.errors.UndefinedTable
