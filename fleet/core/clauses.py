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

The instant type (:class:`UTCDateTime`) and :func:`now` live here because both these
clauses and the models use them; :mod:`fleet.core.models` re-exports them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Dialect, Integer, String, Text, TypeDecorator
from sqlalchemy.sql import column, table

from fleet.core.clock import now

__all__ = [
    "AUDIT_CLAUSE",
    "EVENT_CLAUSE",
    "MERCHANT_CLAUSE",
    "MESSAGE_CLAUSE",
    "NOTICE_CLAUSE",
    "VERIFICATION_CLAUSE",
    "UTCDateTime",
    "now",
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
