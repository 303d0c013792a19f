"""Throttling counters in the database, so every process of the console shares them.

A counter is a ``key`` (``login:user:ana``, ``login:addr:10.0.0.7``, ``verify:user:li``)
counted in fixed windows of ``window_s`` seconds: :func:`hit` adds one and returns the
count of the current window (one upsert); :func:`count` reads it. A fixed window lets
through at most twice the limit across a boundary, which is what these limits are set
for. :func:`prune` drops windows older than a day.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from fleet.access.models import THROTTLES

__all__ = ["Limit", "count", "hit", "prune"]


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``limit`` in ``window_s`` seconds."""

    limit: int
    window_s: int

    def window(self, at: float | None = None) -> int:
        t = int(time.time() if at is None else at)
        return t - t % self.window_s

    def retry_after(self, at: float | None = None) -> int:
        """Seconds until the current window ends."""
        t = int(time.time() if at is None else at)
        return self.window(t) + self.window_s - t


def hit(conn: Connection, key: str, limit: Limit, at: float | None = None) -> int:
    """Count one for ``key`` in the current window; the window's count, this one included."""
    window = limit.window(at)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(THROTTLES).values(key=key[:200], window_start=window, count=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[THROTTLES.c.key, THROTTLES.c.window_start],
        set_={"count": THROTTLES.c.count + 1},
    ).returning(THROTTLES.c.count)
    return int(conn.execute(stmt).scalar_one())


def count(conn: Connection, key: str, limit: Limit, at: float | None = None) -> int:
    found = conn.execute(
        select(THROTTLES.c.count).where(
            THROTTLES.c.key == key[:200], THROTTLES.c.window_start == limit.window(at)
        )
    ).scalar()
    return int(found or 0)


def prune(conn: Connection, older_than_s: int = 86_400) -> int:
    cutoff = int(time.time()) - older_than_s
    return conn.execute(delete(THROTTLES).where(THROTTLES.c.window_start < cutoff)).rowcount
