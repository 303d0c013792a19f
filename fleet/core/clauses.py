"""The tables the quick commands touch, as bare SQLAlchemy Core clauses: no SQLModel.

``posfleet notices verify`` runs on every call to the hotline. Building the SQLModel
classes of :mod:`fleet.core.models` (and importing SQLModel, its ORM and pydantic) costs
more than the rest of the command, so the verification and the audit entry it writes are
built on :func:`sqlalchemy.table` clauses (and so is queueing a notice, which every
domain that queues one imports through :mod:`fleet.notices`): a table's name and the
columns the queries use, with their types. They are not a second schema: no keys,
constraints or DDL, nothing Alembic or ``metadata`` sees; :mod:`fleet.core.models` stays
the one declaration of every table, and ``tests/fleet/core/test_core.py`` checks every
column here against it (same name, same type).

They are also the one source of the SQL ``posfleet notices verify`` runs without
SQLAlchemy: :data:`VERIFY_STATEMENTS` are Core statements on these clauses, and
:func:`render_verify_sql` compiles them for SQLite and for PostgreSQL (psycopg) into
:mod:`fleet.core.verify_sql`, the committed module :mod:`fleet.core.dbapi` runs on plain
DB-API (``scripts/compile_verify_sql.py`` writes it; ``tests/fleet/core/test_verify_sql.py``
fails when it is not what these statements compile to today).

The instant type (:class:`UTCDateTime`) and :func:`now` live here because both these
clauses and the models use them; :mod:`fleet.core.models` re-exports them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Integer,
    String,
    Text,
    TypeDecorator,
    bindparam,
    insert,
    select,
)
from sqlalchemy.sql import column, table
from sqlalchemy.sql.expression import TableClause

from fleet.core.clock import now

__all__ = [
    "AUDIT_CLAUSE",
    "EVENT_CLAUSE",
    "MERCHANT_CLAUSE",
    "MESSAGE_CLAUSE",
    "NOTICE_CLAUSE",
    "VERIFICATION_CLAUSE",
    "VERIFY_STATEMENTS",
    "VERSION_CLAUSE",
    "UTCDateTime",
    "now",
    "render_verify_sql",
]


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware instant stored as naive UTC (SQLite keeps no offset).

    Naive datetimes are refused on the way in: every instant in posfleet carries its zone.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} (give a time zone)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQL on SQLite
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


AUDIT_CLAUSE = table(
    "audit",
    column("at", UTCDateTime()),
    column("actor", String()),
    column("action", String()),
    column("target", String()),
    column("details", JSON()),
    column("reason", String()),
)
"""An audit entry as :func:`fleet.core.audit.record` writes it."""

NOTICE_CLAUSE = table(
    "notice",
    column("id", Integer()),
    column("kind", String()),
    column("merchant_id", String()),
    column("ref", String()),
    column("payload", JSON()),
    column("created_at", UTCDateTime()),
    column("status", String()),
    column("not_before", UTCDateTime()),
    column("channel", String()),
    column("message_id", Integer()),
)
"""A notice as :mod:`fleet.notices.queue` writes it and a verification reads it."""

MESSAGE_CLAUSE = table(
    "message",
    column("id", Integer()),
    column("code", String()),
    column("merchant_id", String()),
    column("channel", String()),
    column("address", String()),
    column("kinds", JSON()),
    column("subject", String()),
    column("body", Text()),
    column("status", String()),
    column("created_at", UTCDateTime()),
    column("sent_at", UTCDateTime()),
)
"""A message as the call centre sees it when it verifies the code."""

MERCHANT_CLAUSE = table(
    "merchant", column("id", String()), column("name", String()), column("region", String())
)
"""A merchant's name and region by id."""

EVENT_CLAUSE = table(
    "event",
    column("id", Integer()),
    column("kind", String()),
    column("payload", JSON()),
    column("occurred_at", UTCDateTime()),
    column("fanned_out", Boolean()),
)
"""An event as :func:`fleet.core.events.emit` writes it."""

VERIFICATION_CLAUSE = table(
    "verification",
    column("id", Integer()),
    column("at", UTCDateTime()),
    column("code", String()),
    column("genuine", Boolean()),
    column("message_id", Integer()),
    column("merchant_id", String()),
    column("region", String()),
    column("actor", String()),
    column("address", String()),
    column("note", String()),
)
"""A check of the verification log, as :mod:`fleet.notices.verify_log` writes it."""

VERSION_CLAUSE = table("alembic_version", column("version_num", String()))
"""Alembic's row: the schema revision a database is at (:func:`fleet.core.db.require_current`)."""


def _insert(clause: TableClause, *, returning_id: bool = False) -> Any:
    """``INSERT`` of every column but ``id``, each bound by its own name (and type)."""
    values = {c.name: bindparam(c.name, type_=c.type) for c in clause.c if c.name != "id"}
    stmt = insert(clause).values(values)
    return stmt.returning(clause.c.id) if returning_id else stmt


VERIFY_STATEMENTS: dict[str, Any] = {
    "schema_revision": select(VERSION_CLAUSE.c.version_num),
    "message_by_code": select(MESSAGE_CLAUSE).where(MESSAGE_CLAUSE.c.code == bindparam("code")),
    "merchant_region": select(MERCHANT_CLAUSE.c.region).where(
        MERCHANT_CLAUSE.c.id == bindparam("id")
    ),
    "merchant_name": select(MERCHANT_CLAUSE.c.name).where(MERCHANT_CLAUSE.c.id == bindparam("id")),
    "notices_of_message": select(
        NOTICE_CLAUSE.c.id, NOTICE_CLAUSE.c.kind, NOTICE_CLAUSE.c.ref, NOTICE_CLAUSE.c.created_at
    )
    .where(NOTICE_CLAUSE.c.message_id == bindparam("message_id"))
    .order_by(NOTICE_CLAUSE.c.id),
    "audit_insert": _insert(AUDIT_CLAUSE),
    "verification_insert": _insert(VERIFICATION_CLAUSE, returning_id=True),
    "event_insert": _insert(EVENT_CLAUSE, returning_id=True),
}
"""Every statement of ``posfleet notices verify``'s path, by name: the schema check, the
verification's reads, and the audit entry, verification log row and event it writes."""


def _kind(type_: Any) -> str:
    """How :mod:`fleet.core.dbapi` converts a value of this column type."""
    for cls, kind in (
        (UTCDateTime, "instant"),
        (JSON, "json"),
        (Boolean, "bool"),
        (Integer, "int"),
        (String, "text"),  # and Text
    ):
        if isinstance(type_, cls):
            return kind
    raise TypeError(f"no plain DB-API conversion for {type_!r}")


def render_verify_sql() -> str:
    """The source of :mod:`fleet.core.verify_sql`: :data:`VERIFY_STATEMENTS` as SQLAlchemy
    compiles them for SQLite (named parameters, as the sqlite3 module takes them) and for
    PostgreSQL through psycopg (what SQLAlchemy sends, bind casts included), with the kind
    of every parameter and result column."""
    from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg  # noqa: PLC0415
    from sqlalchemy.dialects.sqlite.pysqlite import dialect as pysqlite  # noqa: PLC0415

    sqlite = pysqlite(paramstyle="named")
    sqlite.insert_returning = True  # SQLite ≥ 3.35, as SQLAlchemy finds when it connects
    dialects = {"sqlite": sqlite, "postgresql": psycopg()}  # type: ignore[no-untyped-call]
    lines = [
        '"""The SQL of ``posfleet notices verify``, per dialect: GENERATED, do not edit.',
        "",
        "Written by ``scripts/compile_verify_sql.py`` from",
        ":data:`fleet.core.clauses.VERIFY_STATEMENTS` (what SQLAlchemy compiles them to); run",
        "by :mod:`fleet.core.dbapi` on plain DB-API. ``tests/fleet/core/test_verify_sql.py``",
        'fails when this differs from what the statements compile to today."""',
        "",
        "# fmt: off",
        "# ruff: noqa: E501",
        "",
        "STATEMENTS: dict[str, dict[str, str]] = {",
    ]
    params: list[str] = []
    columns: list[str] = []
    for name, stmt in VERIFY_STATEMENTS.items():
        lines.append(f"    {name!r}: {{")
        for dialect_name, dialect in dialects.items():
            compiled = stmt.compile(dialect=dialect)
            lines.append(f"        {dialect_name!r}: {str(compiled)!r},")
        lines.append("    },")
        compiled = stmt.compile(dialect=sqlite)
        kinds = {key: _kind(bind.type) for key, bind in compiled.binds.items()}
        params.append(f"    {name!r}: {kinds!r},")
        result = tuple((c.name, _kind(c.type)) for c in stmt.exported_columns)
        columns.append(f"    {name!r}: {result!r},")
    lines += [
        "}",
        '"""Each statement\'s text per dialect (sqlite: ``:name``, postgresql: ``%(name)s``)."""',
        "",
        "PARAMS: dict[str, dict[str, str]] = {",
        *params,
        "}",
        '"""Each statement\'s parameters and their kinds."""',
        "",
        "COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {",
        *columns,
        "}",
        '"""Each statement\'s result columns (in order) and their kinds."""',
        "",
    ]
    return "\n".join(lines)
