"""Leases: work claimed from a table by any number of workers, on any number of machines.

A row of a leased table (rollout jobs, notice messages) has ``status``, ``attempts``,
``lease_owner`` and ``lease_until``. A worker **claims** rows in one statement::

    UPDATE t SET status = <running>, lease_owner = me, lease_until = now + lease,
                 attempts = attempts + 1
    WHERE id IN (SELECT id FROM t WHERE <ready> OR (status = <running> AND
                 lease_until < now) ORDER BY … LIMIT n FOR UPDATE SKIP LOCKED)
    RETURNING …

``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite runs the same statement under its
single writer lock (``BEGIN IMMEDIATE``, :func:`fleet.core.db.writer`). A worker renews
its lease while it works; one that dies stops renewing, and once its lease has expired
the row is claimable again. A worker records an outcome only while it still holds the
lease (:meth:`Leased.held`), so no row is finished by two workers.

A failed attempt waits :meth:`Backoff.delay`: ``base × 2^(attempt-1)``, capped at
:data:`BACKOFF_CAP_S` — one cap for every kind of work.

>>> Backoff(5.0).delay(1), Backoff(5.0).delay(4), Backoff(30.0).delay(9)
(5.0, 40.0, 600.0)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, Table, and_, or_, update

__all__ = ["BACKOFF_CAP_S", "Backoff", "Leased", "worker_identity"]

BACKOFF_CAP_S = 600.0
"""No retry waits longer than ten minutes, whatever the base and the attempt."""


def worker_identity(name: str | None = None) -> str:
    """Who holds a lease: ``name``, or ``host:pid`` of this process."""
    return name or f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff from ``base_s``, capped at :data:`BACKOFF_CAP_S`."""

    base_s: float

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(BACKOFF_CAP_S, self.base_s * 2 ** max(attempt - 1, 0)))

    def after(self, at: datetime, attempt: int) -> datetime:
        return at + timedelta(seconds=self.delay(attempt))


@dataclass(frozen=True, slots=True)
class Leased:
    """A table whose rows are claimed under leases; ``running`` is the status of a row
    a worker holds (``running`` for jobs, ``sending`` for messages)."""

    table: Table
    running: str

    def claimable(self, ready: ColumnElement[bool], at: datetime) -> ColumnElement[bool]:
        """Rows that are ``ready``, or held under a lease that ran out before ``at``."""
        c = self.table.c
        return or_(ready, and_(c.status == self.running, c.lease_until < at))

    def claim(
        self,
        conn: Connection,
        pick: Select[Any],
        *,
        owner: str,
        until: datetime,
        returning: Sequence[Any] = (),
        values: dict[str, Any] | None = None,
    ) -> Sequence[Row[Any]]:
        """Take the rows ``pick`` selects (their ids, ordered and limited) for ``owner``
        until ``until``, in one statement; returns ``returning`` of each."""
        if conn.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        c = self.table.c
        return conn.execute(
            update(self.table)
            .where(c.id.in_(pick.scalar_subquery()))
            .values(
                status=self.running,
                lease_owner=owner,
                lease_until=until,
                attempts=c.attempts + 1,
                **(values or {}),
            )
            .returning(*(returning or self.table.c))
        ).all()

    def held(self, row_id: Any, owner: Any) -> ColumnElement[bool]:
        """Row ``row_id`` is still ``owner``'s (``owner`` may be a bind parameter)."""
        c = self.table.c
        return and_(c.id == row_id, c.lease_owner == owner, c.status == self.running)

    def renew(self, conn: Connection, row_id: Any, owner: str, until: datetime) -> bool:
        """Extend ``owner``'s lease; False when it is no longer held."""
        done = conn.execute(
            update(self.table).where(self.held(row_id, owner)).values(lease_until=until)
        ).rowcount
        return bool(done)

    def finish(self, conn: Connection, row_id: Any, owner: str, **values: Any) -> bool:
        """Record an outcome and end the lease, if ``owner`` still holds the row (the
        owner stays on the row: who finished it)."""
        done = conn.execute(
            update(self.table).where(self.held(row_id, owner)).values(lease_until=None, **values)
        ).rowcount
        return bool(done)
