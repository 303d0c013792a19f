"""Cached aggregates every process shares: computed by one, read by all.

A dashboard over a million terminals must not GROUP BY them on every request. A value
is stored under a key with the instant it was computed; a reader gets it at once while
it is younger than its ``ttl``. An older value is still returned at once (stale while it
is refreshed) and exactly one process — the one whose conditional ``UPDATE`` claims the
refresh — recomputes it in a background thread; only a key never computed makes its
first reader wait. The claim expires (``refresh_s``), so a process that dies while
computing does not block the key. Values are JSON.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Column, Engine, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from fleet.core.db import writer
from fleet.core.models import UTCDateTime, now, table_of

__all__ = ["CACHE", "CachedValue", "cached", "invalidate"]

log = logging.getLogger(__name__)
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


class CachedValue(SQLModel, table=True):
    __tablename__ = "cached_value"

    key: str = Field(primary_key=True, max_length=120)
    value: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    computed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    refreshing_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


CACHE = table_of(CachedValue)


def _store(engine: Engine, key: str, value: Any) -> None:
    with writer(engine).begin() as conn:
        done = conn.execute(
            update(CACHE)
            .where(CACHE.c.key == key)
            .values(value=value, computed_at=now(), refreshing_until=None)
        ).rowcount
        if not done:
            conn.execute(insert(CACHE).values(key=key, value=value, computed_at=now()))


def _claim(engine: Engine, key: str, at: datetime, refresh_s: float) -> bool:
    with writer(engine).begin() as conn:
        claimed = conn.execute(
            update(CACHE)
            .where(
                CACHE.c.key == key,
                or_(CACHE.c.refreshing_until.is_(None), CACHE.c.refreshing_until < at),
            )
            .values(refreshing_until=at + timedelta(seconds=refresh_s))
        ).rowcount
    return bool(claimed)


def _refresh(engine: Engine, key: str, compute: Callable[[], Any]) -> None:
    try:
        _store(engine, key, compute())
    except Exception:  # the stale value stays; the claim runs out and another tries
        log.exception("refreshing cached %s failed", key)


def cached(
    engine: Engine,
    key: str,
    compute: Callable[[], Any],
    *,
    ttl_s: float = 60.0,
    refresh_s: float = 300.0,
    background: bool = True,
) -> tuple[Any, datetime]:
    """``(value, computed_at)`` for ``key``: stored, or computed now when there is none.

    A value older than ``ttl_s`` is returned as it is while one process refreshes it (in a
    thread when ``background``, else before returning)."""
    at = now()
    with engine.connect() as conn:
        row = conn.execute(
            select(CACHE.c.value, CACHE.c.computed_at).where(CACHE.c.key == key)
        ).first()
    if row is None or row.computed_at is None:
        value = compute()
        with suppress(IntegrityError):  # another process stored it first: as fresh
            _store(engine, key, value)
        return value, now()
    if at - row.computed_at > timedelta(seconds=ttl_s) and _claim(engine, key, at, refresh_s):
        if background:
            threading.Thread(
                target=_refresh, args=(engine, key, compute), name=f"cache:{key}", daemon=True
            ).start()
        else:
            value = compute()
            _store(engine, key, value)
            return value, now()
    return row.value, row.computed_at


def invalidate(engine: Engine, key: str) -> None:
    """Make ``key`` stale: its next reader starts a refresh."""
    with writer(engine).begin() as conn:
        conn.execute(update(CACHE).where(CACHE.c.key == key).values(computed_at=_LONG_AGO))
