"""The events outbox: what happened, written in the transaction that made it happen.

A domain calls :func:`emit` with its own connection, inside the transaction of the
change (a swap done, a rollout halted, a terminal newly flagged P1…): the event exists
if and only if the change committed. Consumers (the webhook sender,
:mod:`fleet.webhooks`) read the outbox afterwards; this module knows none of them.

An event is ``kind`` (one of :data:`EVENT_KINDS`), a JSON ``payload`` of plain values
(ids, serials, counts, ISO instants: never a secret, a phone number or an email) and
``occurred_at``. ``fanned_out`` is false until a consumer has copied it to its own
queues; rows are never updated otherwise, and the payload never.

>>> sorted(EVENT_KINDS)[:3]
['notice.failed', 'notice.fallback', 'rollout.done']
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fleet.core.clock import now
from fleet.core.dbapi import QuickConnection
from fleet.core.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["EVENT_KINDS", "emit"]

EVENT_KINDS = frozenset(
    {
        "swap.planned",
        "swap.done",
        "rollout.halted",
        "rollout.done",
        "terminal.flagged",
        "notice.failed",
        "notice.fallback",
        "verify.not_genuine",
    }
)
"""Every kind a domain may emit (and a webhook may subscribe to)."""


def emit(
    conn: Connection | QuickConnection,
    kind: str,
    payload: dict[str, Any],
    *,
    at: datetime | None = None,
) -> int:
    """Record event ``kind`` in the caller's transaction; its id.

    Raises :class:`~fleet.core.errors.InputError` for a kind not in :data:`EVENT_KINDS`."""
    if kind not in EVENT_KINDS:
        raise InputError(f"unknown event kind {kind!r}", where="event")
    values = {"kind": kind, "payload": payload, "occurred_at": at or now(), "fanned_out": False}
    if isinstance(conn, QuickConnection):  # plain DB-API (``posfleet notices verify``)
        return int(conn.scalar_one("event_insert", **values))
    from sqlalchemy import insert  # noqa: PLC0415 - SQLAlchemy only where it is used

    from fleet.core.clauses import EVENT_CLAUSE  # noqa: PLC0415

    row = conn.execute(
        insert(EVENT_CLAUSE).values(**values).returning(EVENT_CLAUSE.c.id)
    ).scalar_one()
    return int(row)
